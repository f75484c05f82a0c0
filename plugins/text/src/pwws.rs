//! PWWS, probability weighted word saliency (Ren et al., ACL 2019).
//!
//! For word i: saliency S_i = P(y|x) − P(y|x with word i replaced by `unk_token`); best
//! swap gain ΔP_i = max over its synonyms w of P(y|x) − P(y|x with w at i); score
//! softmax(S)_i · ΔP_i. Swaps are applied in descending score order until the label flips.
//!
//! Where the queries go, and what this implementation saves (an MR review has ~21 words,
//! about a third of them swappable, with 60 to 80 WordNet candidates in all):
//! - The clean text: 1 query. A misclassified example stops there.
//! - Saliency only for swappable words (not stop words, at least one candidate): a word
//!   that cannot be swapped has no score to rank. Those probes go out for the whole batch
//!   in one oracle call. The softmax runs over the swappable words only.
//! - ΔP needs one query per candidate, the bulk of the cost. With `lazy` (the default),
//!   words are evaluated one at a time in descending saliency, and evaluation pauses as
//!   soon as the best `room` gains found so far look enough to flip, judged in log-margin
//!   space, where word effects add up: Σ (margin(x) − margin(x_i)) ≥ margin(current). The
//!   evaluated swaps are then applied in PWWS score order. If that does not flip the label
//!   and changes are left, evaluation resumes where it paused. Words of low saliency,
//!   whose weight in the score is low too, are often never paid for.
//! - Any single swap that flips the label on its own ends the search at once with a
//!   one-word adversarial example: no ordering can do better.
//! - The first applied swap is a sentence already scored: it costs nothing (every sentence
//!   is cached per example), and so does any repeat.
//! - Swaps that do not lower P(y) are never applied: they cannot help the flip.
//! - When the lazy pass ends without a flip (its changes spent on the swaps it saw first),
//!   the remaining words are evaluated in one call and the paper's full order is replayed
//!   from the clean text. So, budget permitting, `lazy` flips whatever `lazy = false`
//!   flips; only the examples it cannot flip cheaply pay for the full evaluation. On MR
//!   (`tests/mr_benchmark.rs`) that is ~39 queries per example against ~82, at the same
//!   success rate.
//! - With `in_context` (the default), an example that replay still cannot flip gets
//!   TextAttack's greedy step as a last resort: the words are gone through in score order
//!   again, each time scoring all of a word's synonyms on the text as changed so far and
//!   keeping the best if it lowers P(y). A word's best synonym on the clean text need not
//!   be its best next to the other swaps. On the MR word-CNN this flips 2 more of 824
//!   examples for about 3 more queries per example.
//!
//! `lazy = false` evaluates every word's candidates in one oracle call before applying
//! any, which is the paper's order of work.

use tempered_plugin::{Attack, Batch, Oracle, Perturbed, PluginError, Result, ThreatModel};

use crate::constraints::{Constraints, attack_params};
use crate::search::{Example, Greedy, Scored, Search, flipped, greedy, log_margin, order_by};
use crate::tokens::Sub;

fn default_unk() -> String {
    "<unk>".into()
}

attack_params! {
    /// Parameters of [`Pwws`]; see the crate docs for a pipeline example.
    pub struct PwwsParams {
        /// At most this many WordNet candidates per word. Default: all of them.
        #[serde(default)]
        pub max_candidates: Option<usize>,
        /// The word that stands in for a removed word in the saliency probes. Default "<unk>".
        #[serde(default = "default_unk")]
        pub unk_token: String,
        /// Evaluate swaps most salient word first, only as far as needed (module docs).
        /// false: evaluate all words' swaps before applying any. Default true.
        #[serde(default = "crate::constraints::yes")]
        pub lazy: bool,
        /// When the fixed swaps fail, replay re-scoring each word's candidates in context.
        #[serde(default = "crate::constraints::yes")]
        pub in_context: bool,
    }
}

/// PWWS with WordNet synonyms.
#[derive(Debug)]
pub struct Pwws {
    c: Constraints,
    unk: String,
    lazy: bool,
    in_context: bool,
}

impl Attack for Pwws {
    type Params = PwwsParams;
    const NAME: &'static str = "pwws";
    const DESCRIPTION: &'static str =
        "PWWS (Ren et al. 2019): WordNet synonym swaps in order of probability-weighted word saliency";

    fn new(p: PwwsParams) -> Result<Self> {
        if p.unk_token.is_empty() || p.unk_token.contains(char::is_whitespace) {
            return Err(PluginError(format!("unk_token must be one word, got {:?}", p.unk_token)));
        }
        let c = p.constraints(None, p.max_candidates)?;
        Ok(Self { c, unk: p.unk_token, lazy: p.lazy, in_context: p.in_context })
    }

    fn threat_model(&self) -> ThreatModel {
        self.c.threat_model()
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.text()?;
        let mut s = Search::new(Self::NAME, &self.c, batch, oracle)?;
        let examples = s.prepare(batch)?;
        let probes = s.probe(&examples, |ex, slot| ex.tokens.render(&[], Some((slot.pos, &self.unk))))?;
        s.attack_each(&examples, probes, |s, ex, probe| self.attack(s, ex, &probe)).map(Perturbed::Text)
    }
}

/// A word's best swap, evaluated on the clean text.
struct Gain {
    /// The slot (index into the example's slots) it swaps.
    slot: usize,
    swap: Sub,
    /// softmax(S)_i · ΔP_i.
    score: f32,
    /// How far the swap alone moves the log margin towards a flip.
    effect: f32,
}

/// How applying a sequence of swaps ended.
enum Applied {
    Flipped(String),
    Done,
    OutOfBudget,
}

/// One example's search.
struct Run<'e, 't> {
    ex: &'e Example<'t>,
    /// Slot indices by descending saliency, and their softmax weights.
    order: Vec<usize>,
    weights: Vec<f32>,
    /// Slots `order[..next]` have been evaluated.
    next: usize,
    /// Every swap found that lowers P(y), in evaluation order.
    found: Vec<Gain>,
    /// The lowest true-class probability reached, and its text.
    best: (String, f32),
}

impl Run<'_, '_> {
    /// Scores all candidates of the next `n` slots in one oracle call. Returns a text when a
    /// single swap flips the label.
    fn evaluate(&mut self, s: &mut Search<'_, '_, '_>, n: usize) -> Result<Option<String>> {
        let (ex, y) = (self.ex, self.ex.y);
        let end = self.next.saturating_add(n).min(self.order.len());
        let chunk = &self.order[self.next..end];
        self.next = end;
        if chunk.is_empty() {
            return Ok(None);
        }
        let mut candidates = Vec::new();
        for &k in chunk {
            let slot = &ex.slots[k];
            for c in &slot.candidates {
                candidates.push((vec![(slot.pos, c.clone())], ex.tokens.render(&[], Some((slot.pos, c)))));
            }
        }
        let scored = s.score(ex, candidates)?;
        let (flips, rest): (Vec<Scored>, Vec<Scored>) =
            scored.into_iter().partition(|c| flipped(&c.probs, y));
        if !flips.is_empty() {
            return Ok(Some(s.pick_flip(ex, flips)?.text));
        }
        let (p0, margin0) = (ex.p0[y], log_margin(&ex.p0, y));
        for &k in chunk {
            let pos = ex.slots[k].pos;
            let lowest = rest.iter().filter(|c| c.subs[0].0 == pos).fold(None::<&Scored>, |b, c| match b {
                Some(b) if b.probs[y] <= c.probs[y] => Some(b),
                _ => Some(c),
            });
            if let Some(c) = lowest.filter(|c| c.probs[y] < p0) {
                self.found.push(Gain {
                    slot: k,
                    swap: c.subs[0].clone(),
                    score: self.weights[k] * (p0 - c.probs[y]),
                    effect: margin0 - log_margin(&c.probs, y),
                });
            }
        }
        Ok(None)
    }

    /// Applies the swaps `gains` (indices into `found`) one by one on top of `subs`,
    /// querying each new sentence, until the label flips or no change is left. `used`
    /// records every swap taken up, including one the similarity floor turns down.
    fn apply(
        &mut self,
        s: &mut Search<'_, '_, '_>,
        subs: &mut Vec<Sub>,
        current: &mut Vec<f32>,
        used: &mut Vec<usize>,
        gains: &[usize],
    ) -> Result<Applied> {
        let (ex, y) = (self.ex, self.ex.y);
        for &g in gains {
            if subs.len() == ex.max_changes {
                break;
            }
            used.push(g);
            let mut trial = subs.clone();
            trial.push(self.found[g].swap.clone());
            let text = ex.tokens.render(&trial, None);
            if !s.similar_enough(ex, &text)? {
                continue;
            }
            let Some(probs) = s.q.predict(&[(ex.id, &text)])?.pop().flatten() else {
                return Ok(Applied::OutOfBudget);
            };
            *subs = trial;
            *current = probs;
            if flipped(current, y) {
                return Ok(Applied::Flipped(text));
            }
            if current[y] < self.best.1 {
                self.best = (text, current[y]);
            }
        }
        Ok(Applied::Done)
    }

    /// Indices into `found` by descending score, ties in evaluation order.
    fn by_score(&self, mut gains: Vec<usize>) -> Vec<usize> {
        gains.sort_by(|&a, &b| self.found[b].score.total_cmp(&self.found[a].score));
        gains
    }

    /// The summed effect of the `room` strongest swaps not used yet.
    fn reach(&self, used: &[usize], room: usize) -> f32 {
        let mut effects: Vec<f32> = (0..self.found.len())
            .filter(|g| !used.contains(g))
            .map(|g| self.found[g].effect.max(0.0))
            .collect();
        effects.sort_by(|a, b| b.total_cmp(a));
        effects.iter().take(room).sum()
    }
}

impl Pwws {
    fn attack(
        &self,
        s: &mut Search<'_, '_, '_>,
        ex: &Example<'_>,
        probe: &[Option<Vec<f32>>],
    ) -> Result<String> {
        let y = ex.y;
        let saliency: Vec<Option<f32>> = probe.iter().map(|p| p.as_ref().map(|p| ex.p0[y] - p[y])).collect();
        let mut run = Run {
            ex,
            order: order_by(&saliency),
            weights: softmax(&saliency),
            next: 0,
            found: Vec::new(),
            best: (ex.text.to_owned(), ex.p0[y]),
        };

        if self.lazy {
            let (mut subs, mut current, mut used) = (Vec::new(), ex.p0.clone(), Vec::new());
            while subs.len() < ex.max_changes {
                let room = ex.max_changes - subs.len();
                // A tie at the decision boundary still needs some push.
                let needed = log_margin(&current, y).max(1e-6);
                while run.next < run.order.len() && run.reach(&used, room) < needed && s.q.left(ex.id) > 0 {
                    if let Some(text) = run.evaluate(s, 1)? {
                        return Ok(text);
                    }
                }
                let round = run.by_score((0..run.found.len()).filter(|g| !used.contains(g)).collect());
                if round.is_empty() {
                    break;
                }
                match run.apply(s, &mut subs, &mut current, &mut used, &round)? {
                    Applied::Flipped(text) => return Ok(text),
                    Applied::OutOfBudget => return Ok(run.best.0),
                    Applied::Done => {}
                }
            }
        }

        // The paper's order of work: every word evaluated, then the swaps applied to the
        // clean text in score order. For `lazy` this is the fallback, paid only by examples
        // the cheap pass could not flip; sentences it already scored come from the cache.
        if let Some(text) = run.evaluate(s, usize::MAX)? {
            return Ok(text);
        }
        let all = run.by_score((0..run.found.len()).collect());
        let (mut subs, mut current, mut used) = (Vec::new(), ex.p0.clone(), Vec::new());
        match run.apply(s, &mut subs, &mut current, &mut used, &all)? {
            Applied::Flipped(text) => return Ok(text),
            Applied::OutOfBudget => return Ok(run.best.0),
            Applied::Done => {}
        }
        // TextAttack's greedy step, as a last resort: the fixed swaps were chosen on the
        // clean text; next to the other swaps, another synonym of a word can do better.
        if self.in_context {
            let order: Vec<usize> = all.iter().map(|&g| run.found[g].slot).collect();
            match greedy(s, ex, &order)? {
                Greedy::Flipped(text) => return Ok(text),
                Greedy::Best(text, p) if p < run.best.1 => return Ok(text),
                Greedy::Best(..) => {}
            }
        }
        Ok(run.best.0)
    }
}

/// Softmax over the known saliencies; a word whose probe the budget did not cover gets
/// the lowest possible saliency, −1.
fn softmax(saliency: &[Option<f32>]) -> Vec<f32> {
    let s: Vec<f32> = saliency.iter().map(|s| s.unwrap_or(-1.0)).collect();
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = s.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}
