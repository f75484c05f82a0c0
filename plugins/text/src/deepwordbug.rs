//! DeepWordBug (Gao et al., 2018): character-level typos in the words that matter most.
//!
//! Word importance is measured as TextFooler's is, by deleting the word and watching the
//! true-class probability ([`deletion_importance`]; the probes of a whole batch share one
//! oracle call). Words are then visited in descending importance; each gets candidates made
//! by the paper's four edits — a swap of two adjacent characters, a substitution, a
//! deletion, an insertion of a random letter — `candidates` draws of each kind, every
//! draw applying `max_edits_per_word` edits of that kind. All candidates of a word go to
//! the model in one call. One that flips the label ends the search (the lowest true-class
//! probability among several); otherwise the one that lowers the true-class probability
//! most is kept, if it lowers it at all, and the next word is visited. No word is edited
//! twice, at most `max_change_ratio` of the words are edited, stop words never.
//!
//! Every edit keeps a word a word: letters only are inserted or substituted, and a word
//! keeps at least one character, so the text keeps its word count, which the host checks
//! as for every text attack. The attack declares [`Budget::CharEdits`] with its own
//! `max_edits_per_word` and `max_change_ratio`, the query budget, and its stop words: the
//! host verifies each on every example.
//!
//! Randomness comes from the batch seed (one stream per example), so a seeded run repeats.
//!
//! ```toml
//! [[attack]]
//! plugin = "text"
//! attack = "deepwordbug"
//! [attack.params]
//! stopwords = "data/stopwords/english.txt"   # default: none
//! max_change_ratio = 0.2      # default 0.2
//! max_edits_per_word = 1      # default 1: edits in each chosen word
//! candidates = 1              # default 1: draws of each of the four edits per word
//! query_budget = 2000         # default 2000, per example
//! ```

use std::collections::HashSet;

use serde::Deserialize;
use tempered_plugin::judge::char_edits_within;
use tempered_plugin::{
    Attack, Batch, Budget, Oracle, PipelinePath, PluginError, Result, Rng, TextBatch, ThreatModel,
};

use crate::search::{Queries, deletion_importance, flipped, order_by};
use crate::tokens::{Sub, Tokens};

fn default_max_change_ratio() -> f64 {
    crate::constraints::default_max_change_ratio()
}

fn default_query_budget() -> u64 {
    crate::constraints::default_query_budget()
}

fn one_u32() -> u32 {
    1
}

fn one_usize() -> usize {
    1
}

/// Parameters of [`DeepWordBug`]; see the module docs for a pipeline example.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepWordBugParams {
    /// Stop-word file (one per line, any case); those words are never edited. Default: none.
    #[serde(default)]
    pub stopwords: Option<PipelinePath>,
    /// At most this share of an example's words is edited (rounded down). Default 0.2.
    #[serde(default = "default_max_change_ratio")]
    pub max_change_ratio: f64,
    /// Character edits made in each chosen word, and the most the host allows. Default 1.
    #[serde(default = "one_u32")]
    pub max_edits_per_word: u32,
    /// Random draws of each of the four edits tried per word. Default 1 (the paper's one
    /// transformation per word, tried in all four kinds).
    #[serde(default = "one_usize")]
    pub candidates: usize,
    /// At most this many model queries per example. Default 2000.
    #[serde(default = "default_query_budget")]
    pub query_budget: u64,
}

/// DeepWordBug: greedy character edits in the words that matter most.
#[derive(Debug)]
pub struct DeepWordBug {
    p: DeepWordBugParams,
    stopwords: HashSet<String>,
}

/// The four edits of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Swap,
    Substitute,
    Delete,
    Insert,
}

const EDITS: [Edit; 4] = [Edit::Swap, Edit::Substitute, Edit::Delete, Edit::Insert];

/// Tries at finding a draw that changes the word (a swap of two equal letters does not).
const TRIES: usize = 8;

fn letter(rng: &mut Rng) -> char {
    char::from(b'a' + (rng.next_u64() % 26) as u8)
}

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// One edit of `kind` applied to `w` in place; `false` when `w` admits none (a deletion
/// from a one-letter word, a swap in a word of one character).
fn apply(kind: Edit, w: &mut Vec<char>, rng: &mut Rng) -> bool {
    let n = w.len();
    match kind {
        Edit::Swap if n >= 2 => {
            let i = below(rng, n - 1);
            w.swap(i, i + 1);
        }
        Edit::Substitute if n >= 1 => {
            let i = below(rng, n);
            let c = w[i];
            // One of the 25 other letters, so the edit is never a no-op.
            let mut d = letter(rng);
            while d == c {
                d = letter(rng);
            }
            w[i] = d;
        }
        Edit::Delete if n >= 2 => {
            w.remove(below(rng, n));
        }
        Edit::Insert => {
            let i = below(rng, n + 1);
            w.insert(i, letter(rng));
        }
        _ => return false,
    }
    true
}

/// Up to `draws` distinct misspellings of `word` per edit kind, each `k` edits of that kind
/// and within `k` edits of `word` as the host measures them.
fn misspellings(word: &str, k: u32, draws: usize, rng: &mut Rng) -> Vec<String> {
    let original: Vec<char> = word.chars().collect();
    let mut out: Vec<String> = Vec::new();
    for kind in EDITS {
        let mut found = 0;
        for _ in 0..draws * TRIES {
            if found == draws {
                break;
            }
            let mut w = original.clone();
            if !(0..k).all(|_| apply(kind, &mut w, rng)) {
                break;
            }
            let cand: String = w.into_iter().collect();
            if cand != word && !out.contains(&cand) && char_edits_within(word, &cand, k as usize).is_some() {
                out.push(cand);
                found += 1;
            }
        }
    }
    out
}

impl DeepWordBug {
    /// A word worth editing: not a stop word, and with a letter in it (punctuation tokens
    /// carry no typo anyone would read as one).
    fn editable(&self, word: &str) -> bool {
        word.chars().any(char::is_alphabetic) && !self.stopwords.contains(&word.to_lowercase())
    }

    fn max_changes(&self, n_words: usize) -> usize {
        (n_words as f64 * self.p.max_change_ratio + 1e-9).floor() as usize
    }

    fn attack(&self, batch: &TextBatch<'_>, oracle: &Oracle<'_>) -> Result<Vec<String>> {
        let k = oracle.n_classes();
        if let Some(&y) = batch.labels.iter().find(|&&y| y as usize >= k) {
            return Err(PluginError(format!("label {y} but the model has {k} classes")));
        }
        // The host's cap, when lower, is the one that binds: asking past it would have the
        // whole batched call refused.
        let budget = batch.query_budget.map_or(self.p.query_budget, |h| h.min(self.p.query_budget));
        let mut q = Queries::new(oracle, batch.len(), budget);
        let clean: Vec<(usize, &str)> = batch.texts.iter().copied().enumerate().collect();
        let p0 = q.predict(&clean)?;
        let tokens: Vec<Tokens<'_>> = batch.texts.iter().map(|t| Tokens::new(t)).collect();
        // Per example: its editable word positions, if it is worth a search.
        let slots: Vec<Vec<usize>> = (0..batch.len())
            .map(|i| {
                let y = batch.labels[i] as usize;
                let right = p0[i].as_ref().is_some_and(|p| !flipped(p, y));
                if !right || self.max_changes(tokens[i].len()) == 0 {
                    return Vec::new();
                }
                (0..tokens[i].len()).filter(|&j| self.editable(tokens[i].word(j))).collect()
            })
            .collect();
        // Deletion probes of every example in one call.
        let probes: Vec<Vec<String>> =
            slots.iter().zip(&tokens).map(|(s, t)| s.iter().map(|&j| t.without(j)).collect()).collect();
        let requests: Vec<(usize, &str)> =
            probes.iter().enumerate().flat_map(|(i, ps)| ps.iter().map(move |p| (i, p.as_str()))).collect();
        let mut answers = q.predict(&requests)?.into_iter();
        let mut out = Vec::with_capacity(batch.len());
        for i in 0..batch.len() {
            let probe: Vec<Option<Vec<f32>>> = answers.by_ref().take(slots[i].len()).collect();
            let text = match &p0[i] {
                Some(p0) if !slots[i].is_empty() => {
                    let y = batch.labels[i] as usize;
                    let scores: Vec<Option<f32>> =
                        probe.iter().map(|p| p.as_ref().map(|p| deletion_importance(p0, p, y))).collect();
                    let order: Vec<usize> = order_by(&scores).into_iter().map(|s| slots[i][s]).collect();
                    let mut rng = Rng::new(batch.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    self.greedy(&mut q, i, &tokens[i], y, p0[y], &order, &mut rng)?
                }
                _ => batch.texts[i].to_owned(),
            };
            out.push(text);
            q.forget(i);
        }
        Ok(out)
    }

    /// Edits the words of example `ex` in `order` until the label flips, the share of words
    /// or the queries run out; returns the flip, else the text with the lowest P(y) reached.
    // Each argument is one piece of the example's state; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn greedy(
        &self,
        q: &mut Queries<'_, '_>,
        ex: usize,
        tokens: &Tokens<'_>,
        y: usize,
        p_clean: f32,
        order: &[usize],
        rng: &mut Rng,
    ) -> Result<String> {
        let max = self.max_changes(tokens.len());
        let mut subs: Vec<Sub> = Vec::new();
        let mut text = tokens.render(&[], None);
        let mut p_y = p_clean;
        for &pos in order {
            if subs.len() == max || q.left(ex) == 0 {
                break;
            }
            let words = misspellings(tokens.word(pos), self.p.max_edits_per_word, self.p.candidates, rng);
            let candidates: Vec<String> =
                words.iter().map(|w| tokens.render(&subs, Some((pos, w)))).collect();
            let requests: Vec<(usize, &str)> = candidates.iter().map(|t| (ex, t.as_str())).collect();
            let scored: Vec<(usize, Vec<f32>)> = q
                .predict(&requests)?
                .into_iter()
                .enumerate()
                .filter_map(|(c, p)| p.map(|p| (c, p)))
                .collect();
            // Ties go to the earlier candidate, so the result is repeatable.
            let lowest = |it: &mut dyn Iterator<Item = &(usize, Vec<f32>)>| {
                it.min_by(|a, b| a.1[y].total_cmp(&b.1[y])).map(|(c, p)| (*c, p[y]))
            };
            if let Some((c, _)) = lowest(&mut scored.iter().filter(|(_, p)| flipped(p, y))) {
                return Ok(candidates[c].clone());
            }
            if let Some((c, p)) = lowest(&mut scored.iter())
                && p < p_y
            {
                subs.push((pos, words[c].clone()));
                text = candidates[c].clone();
                p_y = p;
            }
        }
        Ok(text)
    }
}

impl Attack for DeepWordBug {
    type Params = DeepWordBugParams;
    const NAME: &'static str = "deepwordbug";
    const DESCRIPTION: &'static str = "DeepWordBug (Gao et al. 2018): greedy character edits (swap, substitute, delete, insert) in the most important words";

    fn new(p: DeepWordBugParams) -> Result<Self> {
        if !(0.0..=1.0).contains(&p.max_change_ratio) {
            return Err(PluginError(format!(
                "max_change_ratio must be in [0, 1], got {}",
                p.max_change_ratio
            )));
        }
        if p.max_edits_per_word == 0 {
            return Err("max_edits_per_word must be at least 1".into());
        }
        if p.candidates == 0 {
            return Err("candidates must be at least 1".into());
        }
        if p.query_budget == 0 {
            return Err("query_budget must be at least 1".into());
        }
        let mut stopwords = HashSet::new();
        if let Some(path) = &p.stopwords {
            let text = std::fs::read_to_string(path.as_path()).map_err(|e| {
                PluginError(format!("cannot read the stop-word file {}: {e}", path.as_path().display()))
            })?;
            stopwords.extend(text.lines().map(|l| l.trim().to_lowercase()).filter(|l| !l.is_empty()));
        }
        Ok(Self { p, stopwords })
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([
            Budget::CharEdits { max_per_word: self.p.max_edits_per_word, max_ratio: self.p.max_change_ratio },
            Budget::Queries { max: self.p.query_budget },
        ])
        .with_opt(
            self.p
                .stopwords
                .as_ref()
                .map(|s| Budget::StopWords { files: vec![s.as_path().to_string_lossy().into_owned()] }),
        )
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<tempered_plugin::Perturbed> {
        let batch = batch.text()?;
        if batch.texts.len() != batch.len() {
            return Err(PluginError(format!("{} texts but {} labels", batch.texts.len(), batch.len())));
        }
        self.attack(batch, oracle).map(tempered_plugin::Perturbed::Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_makes_its_edit_and_stays_within_k() {
        let mut rng = Rng::new(3);
        for k in 1..=3u32 {
            for cand in misspellings("terrible", k, 4, &mut rng) {
                let d = tempered_plugin::judge::char_edits("terrible", &cand);
                assert!((1..=k as usize).contains(&d), "{cand}: {d} edits for k = {k}");
                assert!(!cand.contains(char::is_whitespace));
            }
        }
        // Four kinds, one draw each, all different from the word and from each other.
        let one = misspellings("good", 1, 1, &mut Rng::new(5));
        assert_eq!(one.len(), 4, "{one:?}");
        assert_eq!(one[0].len(), 4, "a swap keeps the length: {one:?}");
        assert_eq!(one[2].len(), 3, "a deletion shortens: {one:?}");
        assert_eq!(one[3].len(), 5, "an insertion lengthens: {one:?}");
        // A one-letter word can be neither shortened nor swapped: it never disappears.
        let a = misspellings("a", 1, 3, &mut Rng::new(1));
        assert!(a.iter().all(|w| !w.is_empty() && w.chars().count() <= 2), "{a:?}");
        assert_eq!(
            misspellings("good", 1, 2, &mut Rng::new(9)),
            misspellings("good", 1, 2, &mut Rng::new(9))
        );
    }
}
