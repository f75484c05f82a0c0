//! `kind = "spelling"`: a text defence against character-level noise (DeepWordBug-style
//! typos). Before the model reads a text, each word it does not know is replaced by the word
//! of its vocabulary at the fewest character edits (insertions, deletions, substitutions,
//! swaps of neighbours: [`tempered_plugin::judge::char_edits`], the distance the host
//! judges the attack's budget by), when that is at most `max_distance`; ties go to the word
//! more frequent in the training split, then to the first in byte order (the vocabulary's
//! own order). Known words, and unknown words with nothing near, are left alone, and every
//! separator is kept, so the text keeps its words where they were.
//!
//! Text attacks query the model rather than differentiate it, so the two runs of the
//! defence phase are, for text: **normal** (`transfer`), the attack crafted against the
//! undefended model, as in the attack phase, and its texts handed to the defended one; and
//! **adaptive** (`query-defended`), the attack run with the defence inside the oracle, so
//! that it can search for edits the normaliser does not undo (a typo that makes another
//! real word). Both are judged by the host as usual.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use tempered_plugin::judge::osa_within;
use tempered_plugin::words::word_spans;

use super::judging::{Attack, Judging, failed, log_outcome, rates};
use crate::data::{Examples, ExamplesRef, Labelled};
use crate::evaluate::{self, Decision};
use crate::modality;
use crate::model::{Classifier, Mode};
use crate::pipeline::defence::DefenceConfig;
use crate::report::defences::{DefenceMetrics, DefendedAttack, QUERY_DEFENDED, Rates, TRANSFER, judge};
use crate::{Error, Result};

/// The spelling normaliser: a vocabulary and how far a correction may reach.
pub struct Spelling {
    known: HashSet<String>,
    /// The vocabulary as characters, by character count; within a length, in rank order.
    by_len: Vec<Vec<(usize, Vec<char>)>>,
    words: Vec<String>,
    max_distance: usize,
    /// Corrections already looked up (`None`: nothing within reach). Attacks ask about the
    /// same typo many times.
    cache: Mutex<HashMap<String, Option<usize>>>,
}

impl Spelling {
    /// `vocabulary` in rank order (most frequent first): the first of equally near words wins.
    pub fn new(vocabulary: Vec<String>, max_distance: usize) -> Self {
        let mut by_len: Vec<Vec<(usize, Vec<char>)>> = Vec::new();
        for (rank, w) in vocabulary.iter().enumerate() {
            let chars: Vec<char> = w.chars().collect();
            if by_len.len() <= chars.len() {
                by_len.resize_with(chars.len() + 1, Vec::new);
            }
            by_len[chars.len()].push((rank, chars));
        }
        Self {
            known: vocabulary.iter().cloned().collect(),
            by_len,
            words: vocabulary,
            max_distance,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The word `word` is read as: itself when known or when no known word is within
    /// `max_distance` edits, else the nearest known word (ties to the higher-ranked one).
    pub fn correct<'w>(&'w self, word: &'w str) -> &'w str {
        if self.known.contains(word) {
            return word;
        }
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(word).copied();
        let best = match cached {
            Some(b) => b,
            None => {
                let b = self.nearest(word);
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(word.to_owned(), b);
                b
            }
        };
        best.map_or(word, |rank| self.words[rank].as_str())
    }

    /// The rank of the nearest known word within reach.
    fn nearest(&self, word: &str) -> Option<usize> {
        let w: Vec<char> = word.chars().collect();
        let mut best: Option<(usize, usize)> = None;
        let lo = w.len().saturating_sub(self.max_distance);
        let hi = (w.len() + self.max_distance).min(self.by_len.len().saturating_sub(1));
        for bucket in self.by_len.iter().take(hi + 1).skip(lo) {
            for (rank, v) in bucket {
                // Only strictly nearer words, or equally near ones of better rank, can win.
                let reach = best.map_or(self.max_distance, |(d, _)| d);
                if let Some(d) = osa_within(&w, v, reach)
                    && best.is_none_or(|(bd, br)| d < bd || (d == bd && *rank < br))
                {
                    best = Some((d, *rank));
                }
            }
        }
        best.map(|(_, rank)| rank)
    }

    /// `text` with every word corrected, separators as they were.
    pub fn normalise(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in word_spans(text) {
            out.push_str(&text[at..s]);
            out.push_str(self.correct(&text[s..e]));
            at = e;
        }
        out.push_str(&text[at..]);
        out
    }

    pub fn describe(&self) -> String {
        format!(
            "a word outside the model's {} words is read as the nearest of them within {} character edit{}",
            self.words.len(),
            self.max_distance,
            if self.max_distance == 1 { "" } else { "s" }
        )
    }
}

/// A text model behind the spelling normaliser: every text the model reads, from the
/// evaluation or from an attack's oracle, is normalised first.
pub struct Normalised<'a> {
    inner: &'a dyn Classifier,
    spelling: Arc<Spelling>,
    /// Word-saliency (gradient) requests answered: zero after an attack that only queried.
    gradient_calls: AtomicU64,
}

impl<'a> Normalised<'a> {
    pub fn new(inner: &'a dyn Classifier, spelling: Arc<Spelling>) -> Self {
        Self { inner, spelling, gradient_calls: AtomicU64::new(0) }
    }

    pub fn gradient_calls(&self) -> u64 {
        self.gradient_calls.load(Ordering::Relaxed)
    }

    fn texts(&self, texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| self.spelling.normalise(t)).collect()
    }
}

impl Classifier for Normalised<'_> {
    same_model_as_inner!();
    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
        match x {
            ExamplesRef::Text(texts) => {
                let fixed = self.texts(texts);
                self.inner.encode(&ExamplesRef::Text(fixed.iter().map(String::as_str).collect()))
            }
            ExamplesRef::Dense { .. } => Err(Error::invalid("the spelling defence reads text")),
        }
    }
    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.inner.forward(x, mode)
    }
    fn dense_input(&self) -> bool {
        false
    }
    /// The saliency of each normalised word, at its own position: a correction replaces a
    /// word by one word, so positions stay.
    fn word_saliency(&self, texts: &[&str], labels: &[u32]) -> Result<Vec<f32>> {
        self.gradient_calls.fetch_add(1, Ordering::Relaxed);
        let fixed = self.texts(texts);
        self.inner.word_saliency(&fixed.iter().map(String::as_str).collect::<Vec<_>>(), labels)
    }
    /// Whether each word reaches the model as a word it knows, once corrected.
    fn known_words(&self, words: &[&str]) -> Result<Vec<bool>> {
        let fixed: Vec<&str> = words.iter().map(|w| self.spelling.correct(w)).collect();
        self.inner.known_words(&fixed)
    }
    fn vocabulary(&self) -> Result<Vec<String>> {
        self.inner.vocabulary()
    }
}

/// The spelling defence of `config` for `model`'s vocabulary.
pub fn spelling(config: &DefenceConfig, model: &dyn Classifier) -> Result<Arc<Spelling>> {
    let vocabulary = model.vocabulary().map_err(|e| {
        Error::invalid(format!("defence `{}`: needs the model's word vocabulary: {e}", config.id))
    })?;
    let max = config.max_distance.ok_or_else(|| Error::invalid("spelling needs `max_distance`"))?;
    Ok(Arc::new(Spelling::new(vocabulary, max)))
}

/// An attack's texts crafted against the undefended model, for every evaluated example (the
/// original where the model was already wrong or the host refused the example), kept so
/// that several text defences reuse one crafting.
pub struct Crafted {
    texts: Vec<String>,
    violations: usize,
}

/// Judges the text defence `config` against every evaluated attack of the pipeline.
pub(super) fn run(
    on: &Judging<'_>,
    attacks: &mut [Attack<'_>],
    config: &DefenceConfig,
    crafted: &mut HashMap<String, Crafted>,
) -> Result<DefenceMetrics> {
    let Judging { pipeline, task, phase, .. } = *on;
    let model = task.parts().model.as_ref();
    let spelling = spelling(config, model)?;
    let defended = Normalised::new(model, spelling.clone());
    let clean = on.clean(&defended)?;
    tracing::info!("defence `{}`: clean accuracy {:.1}% with it", config.id, clean.accuracy * 100.0);
    let ev = pipeline.spec.evaluate();
    let mut rows = Vec::new();
    for a in attacks.iter_mut() {
        if ev.attacks.as_ref().is_some_and(|ids| !ids.contains(&a.config.id)) {
            continue;
        }
        rows.push(judge_attack(on, a, &spelling, config, crafted)?);
    }
    Ok(DefenceMetrics {
        id: config.id.clone(),
        kind: config.kind.as_str().to_owned(),
        description: spelling.describe(),
        phase,
        clean,
        plain_gradient: TRANSFER.to_owned(),
        adaptive_gradient: QUERY_DEFENDED.to_owned(),
        attacks: rows,
    })
}

/// `a`'s texts crafted against the undefended model exactly as the attack phase crafted them
/// (its examples, batches and seeds), each judged by the host.
fn craft(on: &Judging<'_>, a: &mut Attack<'_>) -> Result<Crafted> {
    let Judging { pipeline, task, split, decision, .. } = *on;
    let model = task.parts().model.as_ref();
    let label = format!("{} (undefended, for transfer)", a.config.id);
    let run = evaluate::Run::of_attack(pipeline, a.config, decision, &label);
    let idx = evaluate::select(split, run.classes, run.limit);
    let subset = split.select(&idx)?;
    let Examples::Text(originals) = &subset.x else {
        return Err(Error::invalid("a text defence needs text examples"));
    };
    let (pred, probs) = evaluate::predict(model, &subset.x, 1024)?;
    let pred = evaluate::decided(pred, &probs, decision);
    let at_point = decision.map(|d| evaluate::AtOperatingPoint::new(model, d)).transpose()?;
    let attacked: &dyn Classifier = match &at_point {
        Some(m) => m,
        None => model,
    };
    let correct: Vec<usize> = (0..subset.len()).filter(|&i| pred[i] == subset.y[i]).collect();
    let budgets = a.handle.threat().map(|t| t.budgets.clone()).unwrap_or_default();
    let mut tally = evaluate::tallies(task.parts().judge.as_ref(), &budgets);
    let mut texts = originals.clone();
    let mut violations = 0;
    let ctx = modality::context(task, pipeline.seed(), a.config.query_budget);
    for (b, chunk) in correct.chunks(run.batch_size.max(1)).enumerate() {
        let part = subset.select(chunk)?;
        let batch_ctx = crate::plugin_host::BatchContext { seed: evaluate::mix(run.seed, b as u64), ..ctx };
        let result = a.handle.perturb(attacked, &part.x, &part.y, batch_ctx)?;
        let Examples::Text(adv) = &result.examples else {
            return Err(Error::invalid("a text attack returned no texts"));
        };
        for (k, &i) in chunk.iter().enumerate() {
            let m = evaluate::judge_example(
                task.parts().judge.as_ref(),
                &part.x,
                &result.examples,
                k,
                result.queries[k],
                &budgets,
                &mut tally,
            );
            // An example that breaks the threat model fools nobody who enforces it: the
            // defended model gets the original.
            if m.violations == 0 {
                texts[i] = adv[k].clone();
            } else {
                violations += 1;
            }
        }
    }
    Ok(Crafted { texts, violations })
}

/// The crafted texts given to the defended model: an example counts as attacked when the
/// defended model gets its original right, and as a success when it then gets the crafted
/// text wrong.
fn transfer(
    defended: &dyn Classifier,
    split: &Labelled,
    idx: &[usize],
    crafted: &Crafted,
    decision: Option<Decision>,
) -> Result<Rates> {
    let subset = split.select(idx)?;
    let (pred, probs) = evaluate::predict(defended, &subset.x, 1024)?;
    let pred = evaluate::decided(pred, &probs, decision);
    let adv = Examples::Text(crafted.texts.clone());
    let (adv_pred, adv_probs) = evaluate::predict(defended, &adv, 1024)?;
    let adv_pred = evaluate::decided(adv_pred, &adv_probs, decision);
    let right: Vec<usize> = (0..subset.len()).filter(|&i| pred[i] == subset.y[i]).collect();
    let successes = right.iter().filter(|&&i| adv_pred[i] != subset.y[i]).count();
    Ok(Rates::new(subset.len(), right.len(), successes, crafted.violations))
}

fn judge_attack(
    on: &Judging<'_>,
    a: &mut Attack<'_>,
    spelling: &Arc<Spelling>,
    config: &DefenceConfig,
    crafted: &mut HashMap<String, Crafted>,
) -> Result<DefendedAttack> {
    let Judging { pipeline, task, split, phase, decision, metrics } = *on;
    let id = a.config.id.clone();
    let defence = &config.id;
    let undefended = metrics.attack(&id, phase).map(Rates::of);
    let defended = Normalised::new(task.parts().model.as_ref(), spelling.clone());

    // Normal: crafted on the undefended model (once per attack, whatever the defences).
    if !crafted.contains_key(&id) {
        match craft(on, a) {
            Ok(c) => {
                crafted.insert(id.clone(), c);
            }
            Err(e) => return failed(a.config, defence, undefended, e, "transferred"),
        }
    }
    let idx = evaluate::select(split, a.config.classes.as_deref(), pipeline.spec.evaluate().examples);
    let plain = transfer(&defended, split, &idx, &crafted[&id], decision)?;
    tracing::info!(
        "{id} vs {defence} ({TRANSFER}): success {} of {} attacked, robust accuracy {}",
        plain.successes,
        plain.attacked,
        plain.robust_accuracy.map_or("–".into(), |r| format!("{:.1}%", r * 100.0))
    );

    // Adaptive: the attack asks the defended model.
    let label = format!("{id} vs {defence} ({QUERY_DEFENDED})");
    let run = evaluate::Run::of_attack(pipeline, a.config, decision, &label);
    let ctx = modality::context(task, pipeline.seed(), a.config.query_budget);
    let adaptive = match evaluate::run(a.handle, &defended, split, ctx, task.parts().judge.as_ref(), &run) {
        Ok(o) => o,
        Err(e) => return failed(a.config, defence, undefended, e, "adaptive"),
    };
    log_outcome(&label, &adaptive);
    let adaptive = rates(&adaptive);
    let missing = undefended.is_none().then_some("the undefended attack did not run (skipped)");
    // Both runs always exist for text: the full rule applies, whatever the attack asked.
    let (verdict, reason) = judge(undefended.as_ref(), Some(&plain), Some(&adaptive), Some(true), missing);
    tracing::info!("defence `{defence}` against `{id}`: {} ({reason})", verdict.words());
    Ok(DefendedAttack {
        id,
        uses_gradients: Some(defended.gradient_calls() > 0),
        undefended,
        plain: Some(plain),
        adaptive: Some(adaptive),
        verdict,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn misspellings_are_undone_and_known_words_left_alone() {
        let s = Spelling::new(vocab(&["the", "film", "is", "good", "bad", "god", "terrible"]), 1);
        // A swap, a substitution, a deletion, an insertion: one edit each.
        assert_eq!(s.normalise("the flim is godo"), "the film is good");
        assert_eq!(s.normalise("the fiim is goood"), "the film is good");
        assert_eq!(s.normalise("the film is terible"), "the film is terrible");
        // "god" is a word the model knows: a typo that lands on it is not undone.
        assert_eq!(s.normalise("the film is god"), "the film is god");
        // Two edits away is out of reach at 1, and left as it is (the model reads [UNK]).
        assert_eq!(s.normalise("the film is gxxd"), "the film is gxxd");
        let two = Spelling::new(vocab(&["good"]), 2);
        assert_eq!(two.correct("gxxd"), "good");
        // Separators are kept, and so is the word count.
        assert_eq!(s.normalise("  the\tflim  "), "  the\tfilm  ");
    }

    #[test]
    fn ties_go_to_the_more_frequent_word_then_the_earlier_in_byte_order() {
        // "bat" is one edit from both "bad" and "cat"; the vocabulary lists them by rank.
        let s = Spelling::new(vocab(&["cat", "bad"]), 1);
        assert_eq!(s.correct("bat"), "cat");
        let s = Spelling::new(vocab(&["bad", "cat"]), 1);
        assert_eq!(s.correct("bat"), "bad");
        // A nearer word wins over a better-ranked farther one.
        let s = Spelling::new(vocab(&["boat", "bat"]), 2);
        assert_eq!(s.correct("bta"), "bat");
        // The same answer every time (cached or not).
        assert_eq!((s.correct("bta"), s.correct("bta")), ("bat", "bat"));
    }
}
