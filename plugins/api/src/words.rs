//! The one rule of what a word is, shared by the host (models, saliency, the judge) and
//! text plugins: a maximal run of non-whitespace characters, whitespace being Unicode's
//! `White_Space` (exactly `str::split_whitespace`). A word budget, a saliency index and a
//! substitution position all count words this way, so they always agree.

/// The words of `text`.
pub fn words(text: &str) -> std::str::SplitWhitespace<'_> {
    text.split_whitespace()
}

/// How many words `text` holds.
pub fn word_count(text: &str) -> usize {
    words(text).count()
}

/// Byte ranges `(start, end)` of the words of `text`, in order: `&text[start..end]` is the
/// word [`words`] yields at that position, and the bytes between ranges are separators.
pub fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_the_words_of_split_whitespace() {
        for t in ["", "  ", "a", " a  b\tc\n", "naïve café\u{3000}x", "end "] {
            let spans: Vec<&str> = word_spans(t).iter().map(|&(s, e)| &t[s..e]).collect();
            assert_eq!(spans, words(t).collect::<Vec<_>>(), "{t:?}");
            assert_eq!(word_count(t), spans.len());
        }
    }
}
