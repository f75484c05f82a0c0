//! What the searches share: the per-example query ledger, the examples
//! prepared for attack, scoring a set of candidate sentences, and picking among flips.

use std::collections::{HashMap, HashSet};

use tempered_plugin::{Input, Oracle, PluginError, Result, TextBatch};

use crate::constraints::{Constraints, Slot};
use crate::tokens::{Sub, Tokens};

/// The model no longer predicts `y` (ties go to the lower class, like an argmax does).
pub fn flipped(probs: &[f32], y: usize) -> bool {
    let top = (0..probs.len()).fold(0, |best, c| if probs[c] > probs[best] { c } else { best });
    top != y
}

/// `ln p(y) − ln max_{c≠y} p(c)`: positive while the model is right. Log space because
/// effects of separate words add up there (exactly, for a linear model), not in
/// probability space, where a confident model hides them in the sigmoid's flat tail.
pub fn log_margin(probs: &[f32], y: usize) -> f32 {
    let other = (0..probs.len()).filter(|&c| c != y).map(|c| probs[c]).fold(0.0f32, f32::max);
    probs[y].max(1e-30).ln() - other.max(1e-30).ln()
}

/// Query accounting and a per-example cache of every sentence already asked about, so no
/// sentence is ever paid for twice.
pub struct Queries<'o, 'a> {
    oracle: &'o Oracle<'a>,
    n_classes: usize,
    left: Vec<u64>,
    known: Vec<HashMap<String, Vec<f32>>>,
}

impl<'o, 'a> Queries<'o, 'a> {
    pub(crate) fn new(oracle: &'o Oracle<'a>, n: usize, budget: u64) -> Self {
        Self { oracle, n_classes: oracle.n_classes(), left: vec![budget; n], known: vec![HashMap::new(); n] }
    }

    /// Queries example `ex` may still spend.
    pub fn left(&self, ex: usize) -> u64 {
        self.left[ex]
    }

    /// Class probabilities of `(example, text)` pairs, in one oracle call. A text already
    /// known costs nothing; a new one that its example's budget no longer covers comes back
    /// `None`. Earlier requests of an example get the budget first.
    pub fn predict(&mut self, requests: &[(usize, &str)]) -> Result<Vec<Option<Vec<f32>>>> {
        let mut fresh: Vec<(usize, &str)> = Vec::new();
        let mut asked: HashSet<(usize, &str)> = HashSet::new();
        for &(ex, text) in requests {
            if self.left[ex] == 0 || self.known[ex].contains_key(text) || !asked.insert((ex, text)) {
                continue;
            }
            self.left[ex] -= 1;
            fresh.push((ex, text));
        }
        if !fresh.is_empty() {
            let texts: Vec<&str> = fresh.iter().map(|f| f.1).collect();
            let ids: Vec<u32> = fresh.iter().map(|f| f.0 as u32).collect();
            let probs = self.oracle.predict(Input::Text(&texts), &ids)?;
            if probs.len() != fresh.len() * self.n_classes {
                return Err(PluginError(format!(
                    "host returned {} probabilities for {} texts and {} classes",
                    probs.len(),
                    fresh.len(),
                    self.n_classes
                )));
            }
            for (row, &(ex, text)) in probs.chunks(self.n_classes).zip(&fresh) {
                self.known[ex].insert(text.to_owned(), row.to_vec());
            }
        }
        Ok(requests.iter().map(|&(ex, text)| self.known[ex].get(text).cloned()).collect())
    }

    /// Drops the cache of a finished example.
    pub fn forget(&mut self, ex: usize) {
        self.known[ex] = HashMap::new();
    }
}

/// One example as the searches see it.
pub struct Example<'t> {
    /// Its index in the batch: the id its queries are counted against.
    pub id: usize,
    pub text: &'t str,
    pub tokens: Tokens<'t>,
    pub y: usize,
    /// Probabilities of the clean text; empty if the budget did not even cover that.
    pub p0: Vec<f32>,
    /// Swappable words in text order.
    pub slots: Vec<Slot>,
    pub max_changes: usize,
}

impl Example<'_> {
    /// Worth a search: correctly classified, with something to swap and room to swap it.
    /// A misclassified example costs its one clean query and comes back unchanged.
    pub fn attackable(&self) -> bool {
        !self.p0.is_empty() && !flipped(&self.p0, self.y) && self.max_changes > 0 && !self.slots.is_empty()
    }
}

/// A candidate sentence the model has scored.
#[derive(Debug, Clone)]
pub struct Scored {
    pub subs: Vec<Sub>,
    pub text: String,
    pub probs: Vec<f32>,
    /// Similarity to the original, where it was computed.
    pub sim: Option<f32>,
}

/// One perturb call's search context.
pub struct Search<'c, 'o, 'a> {
    pub c: &'c Constraints,
    oracle: &'o Oracle<'a>,
    pub q: Queries<'o, 'a>,
    /// The host has a sentence encoder.
    encoder: bool,
}

impl<'c, 'o, 'a> Search<'c, 'o, 'a> {
    /// Fails when `min_similarity` is set and the host has no encoder: better to stop at
    /// the first batch than to return examples that were never checked.
    pub fn new(
        attack: &str,
        c: &'c Constraints,
        batch: &TextBatch<'_>,
        oracle: &'o Oracle<'a>,
    ) -> Result<Self> {
        let encoder = match batch.texts.first() {
            None => false,
            Some(t) => match oracle.similarity(&[t], &[t]) {
                Ok(_) => true,
                Err(e) => match c.min_similarity {
                    Some(m) => {
                        return Err(PluginError(format!(
                            "attack `{attack}`: min_similarity = {m} needs a sentence encoder, but the \
                             host's similarity failed ({e}); configure a sentence encoder in the \
                             pipeline or remove min_similarity"
                        )));
                    }
                    None => false,
                },
            },
        };
        // The host's cap, when lower, is the one that binds: asking past it would have the
        // whole batched call refused.
        let budget = batch.query_budget.map_or(c.query_budget, |host| host.min(c.query_budget));
        Ok(Self { c, oracle, q: Queries::new(oracle, batch.len(), budget), encoder })
    }

    /// Splits the batch into examples and scores the clean texts in one call.
    pub fn prepare<'t>(&mut self, batch: &TextBatch<'t>) -> Result<Vec<Example<'t>>> {
        let k = self.oracle.n_classes();
        if batch.texts.len() != batch.len() {
            return Err(PluginError(format!("{} texts but {} labels", batch.texts.len(), batch.len())));
        }
        if let Some(&y) = batch.labels.iter().find(|&&y| y as usize >= k) {
            return Err(PluginError(format!("label {y} but the model has {k} classes")));
        }
        let requests: Vec<(usize, &str)> = batch.texts.iter().copied().enumerate().collect();
        let p0 = self.q.predict(&requests)?;
        Ok(batch
            .texts
            .iter()
            .zip(p0)
            .enumerate()
            .map(|(id, (&text, p0))| {
                let tokens = Tokens::new(text);
                Example {
                    id,
                    text,
                    y: batch.labels[id] as usize,
                    p0: p0.unwrap_or_default(),
                    slots: self.c.slots(&tokens),
                    max_changes: self.c.max_changes(tokens.len()),
                    tokens,
                }
            })
            .collect())
    }

    /// One probe per slot of every attackable example (the word masked or deleted), all in
    /// one oracle call across the batch. Non-attackable examples get an empty list.
    pub fn probe(
        &mut self,
        examples: &[Example<'_>],
        variant: impl Fn(&Example<'_>, &Slot) -> String,
    ) -> Result<Vec<Vec<Option<Vec<f32>>>>> {
        let texts: Vec<Vec<String>> =
            examples
                .iter()
                .map(|ex| {
                    if ex.attackable() {
                        ex.slots.iter().map(|s| variant(ex, s)).collect()
                    } else {
                        Vec::new()
                    }
                })
                .collect();
        let requests: Vec<(usize, &str)> =
            examples.iter().zip(&texts).flat_map(|(ex, ts)| ts.iter().map(|t| (ex.id, t.as_str()))).collect();
        let mut answers = self.q.predict(&requests)?.into_iter();
        Ok(texts.iter().map(|ts| answers.by_ref().take(ts.len()).collect()).collect())
    }

    /// The batch's output texts: `attack(self, ex, per_ex)` for each attackable example
    /// (with its item of `per_example`), the clean text for the others. Each example's
    /// query ledger is dropped once it is done.
    pub fn attack_each<T>(
        &mut self,
        examples: &[Example<'_>],
        per_example: Vec<T>,
        mut attack: impl FnMut(&mut Self, &Example<'_>, T) -> Result<String>,
    ) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(examples.len());
        for (ex, item) in examples.iter().zip(per_example) {
            out.push(if ex.attackable() { attack(self, ex, item)? } else { ex.text.to_owned() });
            self.q.forget(ex.id);
        }
        Ok(out)
    }

    /// Scores candidate sentences of `ex` in one oracle call. Those under `min_similarity`
    /// are dropped before they cost a query; those the budget no longer covers are dropped.
    pub fn score(&mut self, ex: &Example<'_>, candidates: Vec<(Vec<Sub>, String)>) -> Result<Vec<Scored>> {
        let mut candidates: Vec<(Vec<Sub>, String, Option<f32>)> =
            candidates.into_iter().map(|(s, t)| (s, t, None)).collect();
        if let Some(min) = self.c.min_similarity {
            let texts: Vec<&str> = candidates.iter().map(|c| c.1.as_str()).collect();
            let sims = self.similarities(ex, &texts)?;
            candidates = candidates
                .into_iter()
                .zip(sims)
                .filter(|(_, s)| *s >= min)
                .map(|((subs, text, _), s)| (subs, text, Some(s)))
                .collect();
        }
        let requests: Vec<(usize, &str)> = candidates.iter().map(|c| (ex.id, c.1.as_str())).collect();
        let probs = self.q.predict(&requests)?;
        Ok(candidates
            .into_iter()
            .zip(probs)
            .filter_map(|((subs, text, sim), p)| p.map(|probs| Scored { subs, text, probs, sim }))
            .collect())
    }

    /// `text` passes the similarity floor (always, when none is set).
    pub fn similar_enough(&self, ex: &Example<'_>, text: &str) -> Result<bool> {
        match self.c.min_similarity {
            None => Ok(true),
            Some(min) => Ok(self.similarities(ex, &[text])?[0] >= min),
        }
    }

    fn similarities(&self, ex: &Example<'_>, texts: &[&str]) -> Result<Vec<f32>> {
        let originals = vec![ex.text; texts.len()];
        let sims = self.oracle.similarity(&originals, texts)?;
        // NaN from a degenerate embedding must fail the floor, not pass it.
        Ok(sims.into_iter().map(|s| if s.is_nan() { f32::NEG_INFINITY } else { s }).collect())
    }

    /// The flip to return when several candidates flip: the one most similar to the
    /// original when the host has an encoder, else the one with the lowest true-class
    /// probability. Ties go to the earlier candidate, so the result is repeatable.
    pub fn pick_flip(&self, ex: &Example<'_>, mut flips: Vec<Scored>) -> Result<Scored> {
        if flips.len() > 1 && self.encoder && flips.iter().any(|f| f.sim.is_none()) {
            let texts: Vec<&str> = flips.iter().map(|f| f.text.as_str()).collect();
            let sims = self.similarities(ex, &texts)?;
            for (f, s) in flips.iter_mut().zip(sims) {
                f.sim = Some(s);
            }
        }
        let better = |a: &Scored, b: &Scored| match (a.sim, b.sim) {
            (Some(x), Some(y)) => x > y,
            _ => a.probs[ex.y] < b.probs[ex.y],
        };
        let mut best = 0;
        for i in 1..flips.len() {
            if better(&flips[i], &flips[best]) {
                best = i;
            }
        }
        Ok(flips.swap_remove(best))
    }
}

/// How a [`greedy`] pass ended.
pub enum Greedy {
    Flipped(String),
    /// No flip: the text with the lowest true-class probability reached, and that.
    Best(String, f32),
}

impl Greedy {
    pub fn text(self) -> String {
        match self {
            Greedy::Flipped(t) | Greedy::Best(t, _) => t,
        }
    }
}

/// TextFooler's search (and PWWS's last resort): through the slots `order`, score all of
/// a slot's candidates on the text as changed so far, and keep the one with the lowest
/// P(y) if it lowers P(y); stop at the first flip.
pub fn greedy(s: &mut Search<'_, '_, '_>, ex: &Example<'_>, order: &[usize]) -> Result<Greedy> {
    let y = ex.y;
    let mut subs: Vec<Sub> = Vec::new();
    let mut text = ex.text.to_owned();
    let mut p_y = ex.p0[y];
    for &k in order {
        if subs.len() == ex.max_changes || s.q.left(ex.id) == 0 {
            break;
        }
        let scored = s.score(ex, expand(&ex.tokens, &subs, &ex.slots[k]))?;
        let (flips, rest): (Vec<Scored>, Vec<Scored>) =
            scored.into_iter().partition(|c| flipped(&c.probs, y));
        if !flips.is_empty() {
            return Ok(Greedy::Flipped(s.pick_flip(ex, flips)?.text));
        }
        // Ties go to the earlier candidate, so the result is repeatable.
        let lowest = rest.into_iter().min_by(|a, b| a.probs[y].total_cmp(&b.probs[y]));
        if let Some(c) = lowest.filter(|c| c.probs[y] < p_y) {
            (subs, text, p_y) = (c.subs, c.text, c.probs[y]);
        }
    }
    Ok(Greedy::Best(text, p_y))
}

/// Slot indices by descending score; `None` (a probe the budget did not cover) last. The
/// sort is stable, so ties keep text order and the result is repeatable.
pub fn order_by(scores: &[Option<f32>]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| match (scores[a], scores[b]) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    idx
}

/// TextFooler's word importance from a deletion probe: the drop in true-class
/// probability, plus, when the deletion alone changes the prediction to ȳ, the rise of ȳ.
pub fn deletion_importance(p0: &[f32], deleted: &[f32], y: usize) -> f32 {
    let drop = p0[y] - deleted[y];
    if flipped(deleted, y) {
        let top = (0..deleted.len()).fold(0, |b, c| if deleted[c] > deleted[b] { c } else { b });
        drop + (deleted[top] - p0[top])
    } else {
        drop
    }
}

/// Candidate sentences for one slot on top of `subs`.
pub fn expand(tokens: &Tokens<'_>, subs: &[Sub], slot: &Slot) -> Vec<(Vec<Sub>, String)> {
    slot.candidates
        .iter()
        .map(|c| {
            let mut next = subs.to_vec();
            next.push((slot.pos, c.clone()));
            let text = tokens.render(&next, None);
            (next, text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_flips_and_importance() {
        assert!(!flipped(&[0.3, 0.7], 1));
        assert!(flipped(&[0.7, 0.3], 1));
        assert!((log_margin(&[0.2, 0.8], 1) - 4f32.ln()).abs() < 1e-6);
        // Deleting the word flips 1 → 0: drop 0.5 plus class 0's rise 0.5.
        assert!((deletion_importance(&[0.2, 0.8], &[0.7, 0.3], 1) - 1.0).abs() < 1e-6);
        assert!((deletion_importance(&[0.2, 0.8], &[0.3, 0.7], 1) - 0.1).abs() < 1e-6);
        assert_eq!(order_by(&[Some(0.1), None, Some(0.5), Some(0.1)]), [2, 0, 3, 1]);
    }
}
