//! A text as whitespace-separated words, and substitutions on it: what the constraints and
//! the searches both read, so neither reaches into the other for it.

/// A substitution: word position, new word.
pub type Sub = (usize, String);

/// A text as whitespace-separated words, keeping the original separators so that an
/// untouched stretch comes back byte for byte.
#[derive(Debug, Clone)]
pub struct Tokens<'t> {
    text: &'t str,
    spans: Vec<(usize, usize)>,
}

impl<'t> Tokens<'t> {
    pub fn new(text: &'t str) -> Self {
        Self { text, spans: tempered_plugin::words::word_spans(text) }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn word(&self, i: usize) -> &'t str {
        let (s, e) = self.spans[i];
        &self.text[s..e]
    }

    /// The text with `subs` applied, and `extra` on top.
    pub fn render(&self, subs: &[Sub], extra: Option<(usize, &str)>) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut at = 0;
        for (i, &(s, e)) in self.spans.iter().enumerate() {
            let new = match extra {
                Some((p, w)) if p == i => Some(w),
                _ => subs.iter().find(|(p, _)| *p == i).map(|(_, w)| w.as_str()),
            };
            if let Some(w) = new {
                out.push_str(&self.text[at..s]);
                out.push_str(w);
                at = e;
            }
        }
        out.push_str(&self.text[at..]);
        out
    }

    /// The text without word `i` and the whitespace before it (after it, for the first).
    pub fn without(&self, i: usize) -> String {
        let (s, e) = self.spans[i];
        let (cut_s, cut_e) = match (i, self.spans.get(1)) {
            (0, Some(&(next, _))) => (s, next),
            (0, None) => (s, e),
            _ => (self.spans[i - 1].1, e),
        };
        format!("{}{}", &self.text[..cut_s], &self.text[cut_e..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_delete_keep_the_original_spacing() {
        let t = Tokens::new("  a  good\tfilm ");
        assert_eq!(t.len(), 3);
        assert_eq!(t.word(1), "good");
        assert_eq!(t.render(&[], None), "  a  good\tfilm ");
        assert_eq!(t.render(&[(1, "fine".into())], Some((2, "movie"))), "  a  fine\tmovie ");
        assert_eq!(t.without(0), "  good\tfilm ");
        assert_eq!(t.without(1), "  a\tfilm ");
        assert_eq!(t.without(2), "  a  good ");
        assert_eq!(Tokens::new(" ").len(), 0);
    }
}
