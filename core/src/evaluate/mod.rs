//! Runs one attack over a split and measures what it did: success over the examples the
//! model got right, robust accuracy, oracle queries (counted by the host), perturbation
//! size and constraint violations (judged by the host, never taken from the plugin).
//!
//! The host judges two kinds of rule: the modality's own (a table's schema, a waveform's
//! range, a text's word count), always; and every budget the attack declares in its
//! threat model. A budget the attack does not declare is never guessed, and a plugin that
//! cannot declare one (ABI 1.0) has its budgets reported as not verified.

pub mod audio;
pub mod tabular;
pub mod text;

use std::time::Instant;

use candle_core::D;
use tempered_plugin::Budget;

use crate::Result;
use crate::data::{Examples, Labelled};
use crate::error::Context;
use crate::error::Invalid;
use crate::model::{Classifier, Mode};
use crate::pipeline::{AttackConfig, Pipeline};
use crate::plugin_host::{AttackHandle, BatchContext};
use crate::progress::Progress;

/// The host's verdict on one adversarial example: the definition shared with the
/// plugin test harness.
pub type Measure = tempered_plugin::judge::Verdict;

/// Measures perturbations and checks constraints for one modality.
pub trait Judge: Send + Sync {
    fn unit(&self) -> &'static str;
    /// Whether [`Judge::measure`] checks `budget`; the reason when it cannot (reported as
    /// "not verified by the host"). [`Budget::Queries`] is checked by the evaluation itself.
    fn verifies(&self, budget: &Budget) -> std::result::Result<(), Invalid>;
    /// Compares example `i` of `original` with example `i` of `adversarial`: the
    /// modality's own rules, and each budget of `budgets` that [`Judge::verifies`].
    fn measure(&self, original: &Examples, adversarial: &Examples, i: usize, budgets: &[Budget]) -> Measure;
}

/// What a dense example is called in a judge's notes: `a waveform` of so many `samples`.
pub struct DenseRow {
    pub name: &'static str,
    pub unit: &'static str,
}

impl DenseRow {
    /// Example `i` of `original` and of `adversarial`, or the verdict of one violation when
    /// the adversarial example is not such a row or is not of the original's width.
    pub fn pair<'a>(
        &self,
        original: &'a Examples,
        adversarial: &'a Examples,
        i: usize,
    ) -> std::result::Result<(&'a [f32], &'a [f32]), Measure> {
        let violation = |note: String| Measure { violations: 1, notes: vec![note], ..Default::default() };
        let (Examples::Dense { data: a, width }, Examples::Dense { data: b, width: w2 }) =
            (original, adversarial)
        else {
            return Err(violation(format!("not {}", self.name)));
        };
        if width != w2 || b.len() < (i + 1) * width {
            return Err(violation(format!("{} of {w2} {}, expected {width}", self.name, self.unit)));
        }
        let row = |x: &'a [f32]| &x[i * width..(i + 1) * width];
        Ok((row(a), row(b)))
    }
}

/// How one declared budget fared over an evaluation: `violations` is `None` when the host
/// could not check it, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetTally {
    pub budget: Budget,
    pub violations: Option<usize>,
    pub reason: Option<String>,
}

/// The tallies of an attack's declared budgets, each marked checked or not.
pub fn tallies(judge: &dyn Judge, budgets: &[Budget]) -> Vec<BudgetTally> {
    budgets
        .iter()
        .map(|b| {
            let verdict = if matches!(b, Budget::Queries { .. }) { Ok(()) } else { judge.verifies(b) };
            match verdict {
                Ok(()) => BudgetTally { budget: b.clone(), violations: Some(0), reason: None },
                Err(why) => {
                    BudgetTally { budget: b.clone(), violations: None, reason: Some(why.into_message()) }
                }
            }
        })
        .collect()
}

/// Judges example `i` and its query count against `budgets`, adding each broken budget to
/// `tallies` (same order as `budgets`).
pub fn judge_example(
    judge: &dyn Judge,
    original: &Examples,
    adversarial: &Examples,
    i: usize,
    queries: u64,
    budgets: &[Budget],
    tallies: &mut [BudgetTally],
) -> Measure {
    let mut m = judge.measure(original, adversarial, i, budgets);
    for (k, b) in budgets.iter().enumerate() {
        if let Budget::Queries { max } = b
            && queries > *max
        {
            m.fail_budget(k, format!("{queries} queries, over the declared {max}"));
        }
    }
    for &k in &m.broken {
        if let Some(v) = tallies.get_mut(k).and_then(|t| t.violations.as_mut()) {
            *v += 1;
        }
    }
    m
}

/// One adversarial example kept for the report.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index in the evaluated split.
    pub index: usize,
    pub label: u32,
    pub original: Examples,
    pub adversarial: Examples,
    pub original_prob: f32,
    pub adversarial_prob: f32,
    pub adversarial_pred: u32,
    pub success: bool,
}

/// What an attack did to a split.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub examples: usize,
    /// Correct before the attack: the denominator of the success rate.
    pub attacked: usize,
    pub successes: usize,
    pub total_queries: u64,
    pub max_queries: u64,
    /// Summed over successful examples.
    pub perturbation_sum: f64,
    pub violations: usize,
    pub violation_notes: Vec<String>,
    /// Each declared budget and its violations; `None` when the plugin could not declare
    /// any (ABI 1.0): nothing beyond the modality's own rules was verified.
    pub budgets: Option<Vec<BudgetTally>>,
    pub extra_sums: Vec<(&'static str, f64)>,
    pub samples: Vec<Sample>,
    pub seconds: f64,
}

impl Outcome {
    // A rate over zero examples is NaN (`null` in metrics.json, a dash in reports), never 0:
    // "0 % success" over nothing attacked would read as a perfectly robust model.
    pub fn success_rate(&self) -> f64 {
        if self.attacked == 0 { f64::NAN } else { self.successes as f64 / self.attacked as f64 }
    }
    pub fn robust_accuracy(&self) -> f64 {
        if self.examples == 0 {
            f64::NAN
        } else {
            (self.attacked - self.successes) as f64 / self.examples as f64
        }
    }
    pub fn mean_queries(&self) -> f64 {
        if self.attacked == 0 { f64::NAN } else { self.total_queries as f64 / self.attacked as f64 }
    }
    /// Mean over successful adversarial examples (as TextAttack reports it); NaN (`null` in
    /// metrics.json, "–" in reports) when nothing succeeded, rather than a perturbation of 0
    /// that no example had.
    pub fn mean_perturbation(&self) -> f64 {
        self.per_success(self.perturbation_sum)
    }
    pub fn extra_means(&self) -> Vec<(&'static str, f64)> {
        self.extra_sums.iter().map(|&(k, v)| (k, self.per_success(v))).collect()
    }
    fn per_success(&self, sum: f64) -> f64 {
        if self.successes == 0 { f64::NAN } else { sum / self.successes as f64 }
    }
}

/// Predicted class and its probabilities for every example, in batches.
pub fn predict(model: &dyn Classifier, x: &Examples, batch: usize) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
    predict_in(model, x, batch, "prediction")
}

/// [`predict`], a failing batch named as `{model}, {what}, batch {k}`.
fn predict_in(
    model: &dyn Classifier,
    x: &Examples,
    batch: usize,
    what: &str,
) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
    let idx: Vec<usize> = (0..x.len()).collect();
    predict_rows(model, x, &idx, batch, what)
}

/// [`predict_in`] on the examples `rows` of `x`, read `batch` at a time (a split on disk is
/// never read whole).
fn predict_rows(
    model: &dyn Classifier,
    x: &Examples,
    rows: &[usize],
    batch: usize,
    what: &str,
) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
    let (mut preds, mut probs) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
    for (b, chunk) in rows.chunks(batch.max(1)).enumerate() {
        let pass = || -> Result<_> {
            let part = x.select(chunk)?;
            let logits = model.forward(&model.encode(&part.view()?)?, Mode::EVAL)?;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            Ok((pred, candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?))
        };
        let (pred, prob) = pass().with_context(|| format!("{}, {what}, batch {}", model.name(), b + 1))?;
        preds.extend(pred);
        probs.extend(prob);
    }
    Ok((preds, probs))
}

/// Which examples of `data` an attack runs on: those of the given classes, at most `limit`.
pub fn select(data: &Labelled, classes: Option<&[u32]>, limit: Option<usize>) -> Vec<usize> {
    let mut idx: Vec<usize> =
        (0..data.len()).filter(|&i| classes.is_none_or(|c| c.contains(&data.y[i]))).collect();
    if let Some(l) = limit {
        idx.truncate(l);
    }
    idx
}

/// A binary operating point: the positive class is decided when its probability is at
/// least `threshold` (argmax is the threshold 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub positive: u32,
    pub threshold: f32,
}

impl Decision {
    /// The class decided for one example's probabilities (two classes).
    pub fn decide(&self, probs: &[f32]) -> u32 {
        if probs[self.positive as usize] >= self.threshold { self.positive } else { 1 - self.positive.min(1) }
    }
}

/// The model as deployed at an operating point: the positive logit is lowered by
/// logit(threshold), so that its argmax, which is what an attack sets out to flip, is the
/// thresholded decision. An attack handed the raw model would stop as soon as p(fraud)
/// fell below 0.5, though a fraud at 0.3 is still flagged at a threshold of 0.1.
pub struct AtOperatingPoint<'a> {
    inner: &'a dyn Classifier,
    shift: candle_core::Tensor,
}

impl<'a> AtOperatingPoint<'a> {
    pub fn new(inner: &'a dyn Classifier, d: Decision) -> Result<Self> {
        // A threshold outside (0, 1) flags nothing or everything; a finite shift keeps the
        // logits finite.
        let t = f64::from(d.threshold).clamp(1e-7, 1.0 - 1e-7);
        let mut shift = vec![0f32; inner.n_classes()];
        shift[d.positive as usize] = (-(t / (1.0 - t)).ln()) as f32;
        let shift = candle_core::Tensor::from_vec(shift, (1, inner.n_classes()), inner.device())?;
        Ok(Self { inner, shift })
    }
}

impl Classifier for AtOperatingPoint<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn n_classes(&self) -> usize {
        self.inner.n_classes()
    }
    fn device(&self) -> &candle_core::Device {
        self.inner.device()
    }
    fn encode(&self, x: &crate::data::ExamplesRef<'_>) -> Result<candle_core::Tensor> {
        self.inner.encode(x)
    }
    fn forward(&self, x: &candle_core::Tensor, mode: Mode) -> candle_core::Result<candle_core::Tensor> {
        let logits = self.inner.forward(x, mode)?;
        logits.broadcast_add(&self.shift.to_dtype(logits.dtype())?)
    }
    fn varmap(&self) -> &candle_nn::VarMap {
        self.inner.varmap()
    }
    fn trainable(&self) -> Vec<candle_core::Var> {
        self.inner.trainable()
    }
    fn dense_input(&self) -> bool {
        self.inner.dense_input()
    }
}

/// Settings of one evaluation.
pub struct Run<'a> {
    /// Decide at an operating point instead of argmax: an example counts as right, and an
    /// attack as successful, by the thresholded decision.
    pub decision: Option<Decision>,
    pub batch_size: usize,
    pub classes: Option<&'a [u32]>,
    pub limit: Option<usize>,
    pub seed: u64,
    pub samples: usize,
    pub label: &'a str,
}

impl<'a> Run<'a> {
    /// The run of attack `config` on the examples `[evaluate]` selects, seeded by the
    /// pipeline's seed and the attack's id, so that every phase that runs the attack (attack
    /// phase, sweeps, trade-off points, defences) faces the same examples with the same
    /// randomness. Keeps no samples.
    pub fn of_attack(
        pipeline: &Pipeline,
        config: &'a AttackConfig,
        decision: Option<Decision>,
        label: &'a str,
    ) -> Self {
        Self {
            decision,
            batch_size: config.batch_size,
            classes: config.classes.as_deref(),
            limit: pipeline.spec.evaluate().examples,
            seed: mix(pipeline.seed(), crate::hash::fnv1a(config.id.as_bytes())),
            samples: 0,
            label,
        }
    }
}

/// Attacks the selected examples of `data` with `handle` and judges every result.
pub fn run(
    handle: &mut AttackHandle,
    model: &dyn Classifier,
    data: &Labelled,
    ctx: BatchContext<'_>,
    judge: &dyn Judge,
    run: &Run<'_>,
) -> Result<Outcome> {
    let started = Instant::now();
    // The attacked examples are rows `idx` of `data`, read a batch at a time.
    let idx = select(data, run.classes, run.limit);
    let (pred, probs) = predict_rows(model, &data.x, &idx, 1024, &format!("{}, clean", run.label))?;
    let pred = decided(pred, &probs, run.decision);
    let at_point = run.decision.map(|d| AtOperatingPoint::new(model, d)).transpose()?;
    let attacked_model: &dyn Classifier = match &at_point {
        Some(m) => m,
        None => model,
    };
    let correct: Vec<usize> = (0..idx.len()).filter(|&i| pred[i] == data.y[idx[i]]).collect();
    let budgets: Vec<Budget> = handle.threat().map(|t| t.budgets.clone()).unwrap_or_default();
    let mut tally = tallies(judge, &budgets);
    let mut out = Outcome { examples: idx.len(), attacked: correct.len(), ..Default::default() };
    let mut progress = Progress::new(run.label, correct.len() as u64);
    for (b, chunk) in correct.chunks(run.batch_size.max(1)).enumerate() {
        let rows: Vec<usize> = chunk.iter().map(|&i| idx[i]).collect();
        let part = data.select(&rows)?;
        let batch_ctx = BatchContext { seed: mix(run.seed, b as u64), ..ctx };
        let result = handle.perturb(attacked_model, &part.x, &part.y, batch_ctx)?;
        let what = format!("{}, attack batch {}", run.label, b + 1);
        let (adv_pred, adv_probs) = predict_in(model, &result.examples, 1024, &what)?;
        let adv_pred = decided(adv_pred, &adv_probs, run.decision);
        for (k, &i) in chunk.iter().enumerate() {
            let q = result.queries[k];
            out.total_queries += q;
            out.max_queries = out.max_queries.max(q);
            let m = judge_example(judge, &part.x, &result.examples, k, q, &budgets, &mut tally);
            // An example that breaks the rules of the threat model fools nobody who enforces them.
            let success = adv_pred[k] != part.y[k] && m.violations == 0;
            out.violations += usize::from(m.violations > 0);
            if m.violations > 0 && out.violation_notes.len() < 20 {
                out.violation_notes.extend(m.notes.iter().map(|n| format!("example {}: {n}", idx[i])));
            }
            if success {
                out.successes += 1;
                out.perturbation_sum += m.perturbation;
                for (key, v) in m.extra {
                    match out.extra_sums.iter_mut().find(|(k2, _)| *k2 == key) {
                        Some(slot) => slot.1 += v,
                        None => out.extra_sums.push((key, v)),
                    }
                }
            }
            if out.samples.len() < run.samples && success {
                let y = part.y[k] as usize;
                out.samples.push(Sample {
                    index: idx[i],
                    label: part.y[k],
                    original: part.x.select(&[k])?,
                    adversarial: result.examples.select(&[k])?,
                    original_prob: probs[i][y],
                    adversarial_prob: adv_probs[k][y],
                    adversarial_pred: adv_pred[k],
                    success,
                });
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    out.budgets = handle.threat().map(|_| tally);
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Argmax predictions, or the operating point's decisions when there is one.
pub fn decided(argmax: Vec<u32>, probs: &[Vec<f32>], decision: Option<Decision>) -> Vec<u32> {
    match decision {
        Some(d) => probs.iter().map(|p| d.decide(p)).collect(),
        None => argmax,
    }
}

/// A per-batch seed: the same for "before" and "after", so both face the same randomness.
pub fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_over_successes_are_missing_when_nothing_succeeded() {
        let mut o =
            Outcome { examples: 10, attacked: 8, extra_sums: vec![("linf", 0.0)], ..Default::default() };
        assert!(o.mean_perturbation().is_nan(), "no example was perturbed, so no mean of 0");
        assert!(o.extra_means()[0].1.is_nan());
        assert_eq!(o.success_rate(), 0.0);
        (o.successes, o.perturbation_sum, o.extra_sums[0].1) = (2, 0.3, 0.1);
        assert!((o.mean_perturbation() - 0.15).abs() < 1e-12);
        assert!((o.extra_means()[0].1 - 0.05).abs() < 1e-12);
    }

    #[test]
    fn rates_over_zero_examples_are_missing_not_zero() {
        let nothing_right = Outcome { examples: 4, attacked: 0, ..Default::default() };
        assert!(nothing_right.success_rate().is_nan());
        assert!(nothing_right.mean_queries().is_nan());
        assert_eq!(nothing_right.robust_accuracy(), 0.0, "0 of 4 examples right under attack");
        let nothing = Outcome::default();
        assert!(nothing.success_rate().is_nan() && nothing.robust_accuracy().is_nan());
    }
}
