//! The shared trainer: one short loop for clean training and every adversarial strategy.
//!
//! Each batch: loss = (1 − w) · CE(clean) + w · CE(adversarial), where the adversarial
//! examples come from an [`Adversary`] (an attack plugin through the oracle) and w = 0
//! for clean epochs. AdamW; early stopping on the validation objective (the same mix, so
//! hardening is not stopped for losing a little clean loss); the best epoch's weights are
//! restored at the end. Every epoch ends in one atomic commit (`commit.rs`) from which an
//! interrupted run resumes to the numbers it would have given uninterrupted.

use std::sync::Arc;

use candle_core::{D, Tensor};
use candle_nn::ParamsAdamW;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Examples, Labelled};
use crate::error::Context;
use crate::model::{self, Classifier, Mode, TrainPart};
use crate::progress::Progress;
use crate::{Error, Result};

mod adamw;
mod commit;
mod failpoint;
pub use adamw::AdamW;
pub use commit::Checkpoints;
pub(crate) use failpoint::unit_done;
use failpoint::{FailPoint, Point};

/// Makes adversarial versions of training examples against the current model.
pub trait Adversary {
    fn generate(&mut self, model: &dyn Classifier, x: &Examples, y: &[u32], seed: u64) -> Result<Examples>;
    /// What the adversary accumulates over a phase (counters for the report), saved with
    /// every commit so that a resumed phase ends with the uninterrupted phase's totals.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Puts back what [`Adversary::state`] gave at the commit a phase resumes from.
    fn restore(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    /// Whether examples of class `label` are attacked (a fraud attack attacks frauds only).
    /// Robust and probe accuracies count those rows alone: the others come back unchanged,
    /// and with 1 % frauds they would hide any collapse.
    fn attacks_class(&self, _label: u32) -> bool {
        true
    }
    /// Trains with the [`probe`](Adversary::probe)'s attack from now on, for good; false
    /// when there is no probe to switch to.
    fn escalate(&mut self) -> bool {
        false
    }
    /// A stronger attack than the one trained with (PGD when training with FGSM), to watch
    /// for catastrophic overfitting on validation; `None` when there is none.
    fn probe(
        &mut self,
        _model: &dyn Classifier,
        _x: &Examples,
        _y: &[u32],
        _seed: u64,
    ) -> Option<Result<Examples>> {
        None
    }
}

/// Catastrophic overfitting (Wong et al. 2020): fast FGSM training can lose its robustness
/// against PGD within an epoch while FGSM accuracy looks fine. Robust accuracy `now`
/// against the probe has collapsed when it fell below half of the best seen so far, and by
/// at least 20 points.
pub fn collapsed(best_so_far: Option<f64>, now: f64) -> bool {
    best_so_far.is_some_and(|best| now < 0.5 * best && best - now >= 0.2)
}

/// How one training phase runs.
#[derive(Debug, Clone)]
pub struct Fit {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// 0: never stop early.
    pub patience: usize,
    pub adversarial_weight: f64,
    /// Share of each batch that is attacked.
    pub share: f64,
    /// Epochs without adversarial examples first.
    pub clean_epochs: usize,
    /// Examples of the validation split attacked to score the objective (caps the cost).
    pub validation_attack_examples: usize,
    /// TRADES (Zhang et al. 2019): the loss is `CE(clean) + β · KL(p_clean ‖ p_adv)`
    /// instead of the weighted mix, and the attack aims away from the model's own clean
    /// prediction rather than the label.
    pub trades_beta: Option<f64>,
    /// Keep the epoch with the best accuracy on the attacked validation examples rather
    /// than the best loss objective (adversarial epochs only).
    pub stop_on_robust_accuracy: bool,
}

/// How a phase corrects for rare classes (`[train] class_weight` and `sampling`), for clean
/// training and adversarial fine-tuning alike. The default changes nothing: the trainer
/// then takes exactly the steps it takes without it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Balance {
    /// One weight per class: every loss (training, validation, the early-stopping
    /// objective) is the weighted mean `Σ c_y · CE / Σ c_y`.
    pub class_weights: Option<Vec<f64>>,
    /// Each epoch draws as many examples as the training split holds, with replacement,
    /// a class chosen uniformly first. Drawn from the epoch's own seed, so a resumed epoch
    /// draws the same examples: nothing more is saved with the commits.
    pub sampling: bool,
}

/// Per-epoch record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    /// The early-stopping objective: clean and adversarial validation loss, mixed (or
    /// `1 − robust_accuracy` when stopping on it).
    pub objective: f64,
    pub seconds: f64,
    /// Accuracy on the attacked validation examples, in adversarial epochs: the curve that
    /// shows robust overfitting (Rice et al. 2020) when it peaks and falls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robust_accuracy: Option<f64>,
    /// Accuracy on the validation examples attacked by the adversary's probe (PGD while
    /// training with FGSM): what catastrophic overfitting destroys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_accuracy: Option<f64>,
}

/// What survives a restart: saved with every commit.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct TrainState {
    pub phase: String,
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub best_objective: Option<f64>,
    pub bad_epochs: usize,
    pub finished: bool,
    pub log: Vec<EpochLog>,
    /// The epoch whose probe accuracy collapsed, if one did: training stopped there and the
    /// best epoch before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapsed_at: Option<usize>,
    /// The epoch after which training switched to the probe's attack, if it did: the
    /// trained-with examples were beaten while the probe's still won.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<usize>,
}

/// Fast FGSM training whose own examples the model beats by this much more often than the
/// probe's (accuracy under FGSM − accuracy under PGD, on validation) has learnt to beat
/// FGSM, not the threat: hardening switches to the probe's attack.
pub const ESCALATE_GAP: f64 = 0.2;

/// Mean cross-entropy of `logits` against `y`.
fn cross_entropy(logits: &Tensor, y: &[u32]) -> candle_core::Result<Tensor> {
    let y = Tensor::from_slice(y, y.len(), logits.device())?;
    candle_nn::loss::cross_entropy(logits, &y)
}

/// Mean loss and accuracy of `model` on `data`, in eval mode.
pub fn evaluate_loss(model: &dyn Classifier, data: &Labelled, batch_size: usize) -> Result<(f64, f64)> {
    evaluate_loss_in(model, data, batch_size, "evaluation")
}

/// [`evaluate_loss`], a failing batch named as `{model}, {what}, batch {k}`.
fn evaluate_loss_in(
    model: &dyn Classifier,
    data: &Labelled,
    batch_size: usize,
    what: &str,
) -> Result<(f64, f64)> {
    let idx: Vec<usize> = (0..data.len()).collect();
    evaluate_loss_rows(model, data, &idx, batch_size, what)
}

/// [`evaluate_loss_in`] over the examples `rows` of `data`, read `batch_size` at a time (a
/// split on disk is never read whole).
fn evaluate_loss_rows(
    model: &dyn Classifier,
    data: &Labelled,
    rows: &[usize],
    batch_size: usize,
    what: &str,
) -> Result<(f64, f64)> {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (b, chunk) in rows.chunks(batch_size.max(1)).enumerate() {
        let batch_loss = || -> Result<(f32, usize)> {
            let part = data.select(chunk)?;
            let logits = model.forward(&model.encode(&part.x.view()?)?, Mode::EVAL)?;
            let l = cross_entropy(&logits, &part.y)?.to_scalar::<f32>()?;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            Ok((l, pred.iter().zip(&part.y).filter(|(p, y)| p == y).count()))
        };
        let (l, right) =
            batch_loss().with_context(|| format!("{}, {what}, batch {}", model.name(), b + 1))?;
        loss += l as f64 * chunk.len() as f64;
        correct += right;
    }
    let n = rows.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Rows of `batch` split by class, each class entering with `scale · c_k · n_k / Σ c_j n_j`
/// times its mean cross-entropy: summed, `scale` times the class-weighted mean loss.
fn class_parts(batch: &Labelled, weights: &[f64], scale: f64) -> Result<Vec<(Labelled, f64)>> {
    class_rows(&batch.y, weights, scale)
        .into_iter()
        .map(|(r, share)| Ok((batch.select(&r)?, share)))
        .collect()
}

/// The rows of [`class_parts`] (indices into `y`) and their shares.
fn class_rows(y: &[u32], weights: &[f64], scale: f64) -> Vec<(Vec<usize>, f64)> {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); weights.len()];
    for (i, &y) in y.iter().enumerate() {
        if let Some(r) = rows.get_mut(y as usize) {
            r.push(i);
        }
    }
    let total: f64 = rows.iter().zip(weights).map(|(r, w)| r.len() as f64 * w).sum();
    rows.into_iter()
        .zip(weights)
        .filter(|(r, _)| !r.is_empty())
        // A batch holding only zero-weighted classes contributes nothing, rather than 0 / 0.
        .map(|(r, &w)| {
            let share = if total > 0.0 { w * r.len() as f64 / total } else { 0.0 };
            (r, scale * share)
        })
        .collect()
}

/// The class-weighted step: clean rows at `1 − w`, adversarial rows at `w`, each by class.
fn step_weighted(
    model: &dyn Classifier,
    opt: &mut AdamW,
    grads: &mut [Vec<f32>],
    batch: &Labelled,
    adv: Option<&Labelled>,
    w: f64,
    weights: &[f64],
) -> Result<f32> {
    let mut parts = class_parts(batch, weights, if adv.is_some() { 1.0 - w } else { 1.0 })?;
    if let Some(adv) = adv {
        parts.extend(class_parts(adv, weights, w)?);
    }
    let refs: Vec<(&Labelled, f64)> = parts.iter().map(|(l, s)| (l, *s)).collect();
    if let Some(loss) = step_parts_by_hand(model, opt, grads, &refs)? {
        return Ok(loss);
    }
    let mut loss: Option<Tensor> = None;
    for (part, scale) in &refs {
        let ce = cross_entropy(&model.forward(&model.encode(&part.x.view()?)?, Mode::TRAIN)?, &part.y)?;
        let term = (ce * *scale)?;
        loss = Some(match loss {
            Some(l) => (l + term)?,
            None => term,
        });
    }
    let loss = loss.ok_or_else(|| Error::msg("an empty training batch"))?;
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
}

/// Mean loss and accuracy on `data` with the loss class-weighted by `weights` (unweighted
/// without them).
/// The rows of `labels` whose class `adv` attacks.
fn attacked_rows(adv: &dyn Adversary, labels: &[u32]) -> Vec<usize> {
    (0..labels.len()).filter(|&i| adv.attacks_class(labels[i])).collect()
}

/// Accuracy over `rows` of `data`; `None` over no rows.
fn accuracy_at(model: &dyn Classifier, data: &Labelled, rows: &[usize], what: &str) -> Result<Option<f64>> {
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(evaluate_loss_rows(model, data, rows, 1024, what)?.1))
}

fn validation_loss(
    model: &dyn Classifier,
    data: &Labelled,
    weights: Option<&[f64]>,
    what: &str,
) -> Result<(f64, f64)> {
    let Some(weights) = weights else { return evaluate_loss_in(model, data, 1024, what) };
    let (mut loss, mut right) = (0.0, 0.0);
    // By rows, not by parts: `data` is a whole split, maybe on disk.
    for (rows, share) in class_rows(&data.y, weights, 1.0) {
        let (l, acc) = evaluate_loss_rows(model, data, &rows, 1024, what)?;
        loss += share * l;
        right += acc * rows.len() as f64;
    }
    Ok((loss, right / data.len().max(1) as f64))
}

/// One epoch's order of training examples: a permutation, or with balanced sampling
/// `n` draws with replacement, each from a class drawn uniformly.
fn epoch_order(y: &[u32], balanced: bool, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let n = y.len();
    if !balanced {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        return order;
    }
    let mut by_class: Vec<Vec<usize>> = Vec::new();
    for (i, &c) in y.iter().enumerate() {
        if by_class.len() <= c as usize {
            by_class.resize(c as usize + 1, Vec::new());
        }
        by_class[c as usize].push(i);
    }
    by_class.retain(|r| !r.is_empty());
    (0..n)
        .map(|_| {
            let rows = &by_class[rng.random_range(0..by_class.len())];
            rows[rng.random_range(0..rows.len())]
        })
        .collect()
}

/// One optimiser step on `(1 − w) · CE(batch) + w · CE(adv)` (just `CE(batch)` without
/// adversarial examples) through candle's autograd. Returns the loss.
fn step_by_autograd(
    model: &dyn Classifier,
    opt: &mut AdamW,
    batch: &Labelled,
    adv: Option<&Labelled>,
    w: f64,
) -> Result<f32> {
    let clean = cross_entropy(&model.forward(&model.encode(&batch.x.view()?)?, Mode::TRAIN)?, &batch.y)?;
    let loss = match adv {
        Some(adv) => {
            let adv_loss =
                cross_entropy(&model.forward(&model.encode(&adv.x.view()?)?, Mode::TRAIN)?, &adv.y)?;
            ((clean * (1.0 - w))? + (adv_loss * w)?)?
        }
        None => clean,
    };
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
}

/// `KL(softmax(clean) ‖ softmax(adv))` of each row: how far the adversarial examples moved
/// the model's prediction from its clean one.
fn kl_rows(clean: &Tensor, adv: &Tensor) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(clean, D::Minus1)?;
    let log_q = candle_nn::ops::log_softmax(adv, D::Minus1)?;
    let p = log_p.exp()?;
    (p * (log_p - log_q)?)?.sum(D::Minus1)
}

/// The mean of [`kl_rows`], or with class weights the mean weighted by each row's class.
fn kl_clean_adv(
    clean: &Tensor,
    adv: &Tensor,
    weighted: Option<(&[u32], &[f64])>,
) -> candle_core::Result<Tensor> {
    let kl = kl_rows(clean, adv)?;
    match weighted {
        None => kl.mean_all(),
        Some((y, weights)) => weighted_mean(&kl, y, weights),
    }
}

/// `Σ w_{y_i} v_i / Σ w_{y_i}`: the class-weighted mean that [`class_parts`] gives a loss.
fn weighted_mean(v: &Tensor, y: &[u32], weights: &[f64]) -> candle_core::Result<Tensor> {
    let w: Vec<f32> = y.iter().map(|&c| weights.get(c as usize).copied().unwrap_or(1.0) as f32).collect();
    let total: f32 = w.iter().sum();
    let w = Tensor::from_vec(w, y.len(), v.device())?;
    (v * w)?.sum_all()? / f64::from(total.max(f32::MIN_POSITIVE))
}

/// The TRADES loss of a batch whose first `adv.len()` rows were attacked:
/// `CE(clean, y) + β · KL(p_clean ‖ p_adv)` over the attacked rows; with class weights both
/// terms are means weighted by each row's class, so a rare class counts as it does in
/// clean training.
fn trades_loss(
    model: &dyn Classifier,
    batch: &Labelled,
    adv: &Labelled,
    beta: f64,
    weights: Option<&[f64]>,
    mode: Mode,
) -> Result<Tensor> {
    let clean = model.forward(&model.encode(&batch.x.view()?)?, mode)?;
    let ce = match weights {
        None => cross_entropy(&clean, &batch.y)?,
        Some(w) => {
            let log_p = candle_nn::ops::log_softmax(&clean, D::Minus1)?;
            let y = Tensor::from_slice(&batch.y, batch.y.len(), clean.device())?.unsqueeze(1)?;
            let nll = log_p.gather(&y, 1)?.squeeze(1)?.neg()?;
            weighted_mean(&nll, &batch.y, w)?
        }
    };
    let adv_logits = model.forward(&model.encode(&adv.x.view()?)?, mode)?;
    let kl = kl_clean_adv(&clean.narrow(0, 0, adv.len())?, &adv_logits, weights.map(|w| (&adv.y[..], w)))?;
    Ok((ce + (kl * beta)?)?)
}

fn step_trades(
    model: &dyn Classifier,
    opt: &mut AdamW,
    batch: &Labelled,
    adv: &Labelled,
    beta: f64,
    weights: Option<&[f64]>,
) -> Result<f32> {
    let loss = trades_loss(model, batch, adv, beta, weights, Mode::TRAIN)?;
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
}

/// The model's predicted classes for `x`, in eval mode: what a TRADES attack moves away from.
fn predicted(model: &dyn Classifier, x: &crate::data::Examples) -> Result<Vec<u32>> {
    let logits = model.forward(&model.encode(&x.view()?)?, Mode::EVAL)?;
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

/// One optimiser step through the model's hand-written gradients, when it has them and
/// the optimiser can take them: returns the loss, or `None` to leave the step to autograd.
fn step_by_hand(
    model: &dyn Classifier,
    opt: &mut AdamW,
    grads: &mut [Vec<f32>],
    batch: &Labelled,
    adv: Option<&Labelled>,
    w: f64,
) -> Result<Option<f32>> {
    let parts = match adv {
        None => vec![(batch, 1.0)],
        Some(adv) => vec![(batch, 1.0 - w), (adv, w)],
    };
    step_parts_by_hand(model, opt, grads, &parts)
}

/// [`step_by_hand`] on the loss `Σ weight · mean CE(part)`.
fn step_parts_by_hand(
    model: &dyn Classifier,
    opt: &mut AdamW,
    grads: &mut [Vec<f32>],
    parts: &[(&Labelled, f64)],
) -> Result<Option<f32>> {
    fn part(l: &Labelled, weight: f64) -> Option<TrainPart<'_>> {
        match &l.x {
            Examples::Dense { data, .. } => Some(TrainPart { x: data, labels: &l.y, weight: weight as f32 }),
            // Batches are selected, so never on disk; texts have no hand-written gradients.
            Examples::Text(_) | Examples::Stored(_) => None,
        }
    }
    if !opt.takes_slices() {
        return Ok(None);
    }
    let parts = parts.iter().map(|&(l, w)| part(l, w));
    let Some(parts) = parts.collect::<Option<Vec<_>>>() else { return Ok(None) };
    let Some(loss) = model.train_grads(&parts, grads) else { return Ok(None) };
    let loss = loss?;
    opt.step_slices(grads)?;
    Ok(Some(loss))
}

/// The pipeline setting a phase's learning rate comes from, for error messages.
/// The pipeline section whose `lr` a phase trains with.
fn lr_section(phase: &str) -> &'static str {
    if phase.starts_with("harden") { "harden" } else { "train" }
}

/// Trains `model` on `data` for one phase, or continues it from its newest commit in
/// `checkpoints`. Returns the phase's state (its epoch log).
pub fn fit(
    model: &dyn Classifier,
    data: &Dataset,
    fit: &Fit,
    adversary: Option<&mut dyn Adversary>,
    seed: u64,
    checkpoints: &Checkpoints,
) -> Result<TrainState> {
    fit_balanced(model, data, fit, &Balance::default(), adversary, seed, checkpoints)
}

/// [`fit`] with the rare classes weighted or oversampled as `balance` says.
pub fn fit_balanced(
    model: &dyn Classifier,
    data: &Dataset,
    fit: &Fit,
    balance: &Balance,
    adversary: Option<&mut dyn Adversary>,
    seed: u64,
    checkpoints: &Checkpoints,
) -> Result<TrainState> {
    let fail = FailPoint::from_env(&checkpoints.phase)?;
    fit_with(model, data, fit, balance, adversary, seed, checkpoints, fail.as_ref())
}

#[allow(clippy::too_many_arguments)]
fn fit_with(
    model: &dyn Classifier,
    data: &Dataset,
    fit: &Fit,
    balance: &Balance,
    mut adversary: Option<&mut dyn Adversary>,
    seed: u64,
    checkpoints: &Checkpoints,
    fail: Option<&FailPoint>,
) -> Result<TrainState> {
    let weights = balance.class_weights.as_deref();
    checkpoints.remove_temporaries();
    let phase = checkpoints.phase.as_str();
    let latest = checkpoints.latest()?;
    if let Some(commit::Latest::Finished(file)) = &latest {
        let done = commit::load(file, phase, model, None)?;
        checkpoints.remove_commits_before(file.path())?;
        if let (Some(adv), Some(state)) = (adversary.as_deref_mut(), &done.adversary) {
            adv.restore(state)?;
        }
        tracing::info!("{phase}: already trained, loaded {}", file.path().display());
        return Ok(done.state);
    }
    let params = ParamsAdamW { lr: fit.lr, weight_decay: fit.weight_decay, ..Default::default() };
    let trainable = model.trainable();
    // One gradient buffer per parameter, reused by every hand-written step.
    let mut grads: Vec<Vec<f32>> = vec![Vec::new(); trainable.len()];
    let mut opt = AdamW::new(trainable, params)?;
    let (mut state, mut best) = match &latest {
        Some(commit::Latest::Epoch(file)) => {
            let resumed = commit::load(file, phase, model, Some(&mut opt))?;
            if let (Some(adv), Some(state)) = (adversary.as_deref_mut(), &resumed.adversary) {
                adv.restore(state)?;
            }
            tracing::info!("{phase}: resuming after epoch {}", resumed.state.epochs_done);
            (resumed.state, Some(resumed.best))
        }
        _ => (TrainState { phase: phase.to_owned(), ..Default::default() }, None),
    };
    drop(latest);
    // A resumed phase that had switched attacks goes on with the one it switched to.
    if state.escalated_at.is_some()
        && let Some(adv) = adversary.as_deref_mut()
    {
        adv.escalate();
    }
    // Hashed once: the optimiser never changes these, and every epoch commit records them.
    let frozen = commit::Frozen::of(model)?;
    let n = data.train.len();
    let batches = n.div_ceil(fit.batch_size.max(1));
    let val_adv: Vec<usize> = (0..data.validation.len().min(fit.validation_attack_examples)).collect();
    while state.epochs_done < fit.epochs {
        let epoch = state.epochs_done + 1;
        let adversarial = adversary.is_some()
            && epoch > fit.clean_epochs
            && (fit.adversarial_weight > 0.0 || fit.trades_beta.is_some());
        let w = if adversarial { fit.adversarial_weight } else { 0.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let order: Arc<[usize]> = epoch_order(&data.train.y, balance.sampling, &mut rng).into();
        // Rows on disk are read a batch ahead, on a thread of their own, while this one trains.
        let mut ahead = match &data.train.x {
            Examples::Stored(rows) => Some((rows.prefetch(order.clone(), fit.batch_size), rows.width())),
            _ => None,
        };
        let mut progress = Progress::new(&format!("{phase} epoch {epoch}/{}", fit.epochs), batches as u64);
        let mut total = 0.0f64;
        for (b, chunk) in order.chunks(fit.batch_size.max(1)).enumerate() {
            let batch = match ahead.as_mut() {
                Some((rows, width)) => Labelled {
                    x: Examples::Dense { data: rows.next_batch()?, width: *width },
                    y: chunk.iter().map(|&i| data.train.y[i]).collect(),
                },
                None => data.train.select(chunk)?,
            };
            // The attack leaves the weights alone, so its examples can come first.
            let adv = match adversary.as_deref_mut() {
                Some(adv) if adversarial => {
                    let k = ((chunk.len() as f64 * fit.share).ceil() as usize).clamp(1, chunk.len());
                    let part = batch.select(&(0..k).collect::<Vec<_>>())?;
                    let batch_seed = seed ^ ((epoch as u64) << 32) ^ b as u64;
                    // TRADES pushes away from what the model now predicts, not from the label.
                    let target = match fit.trades_beta {
                        Some(_) => predicted(model, &part.x)?,
                        None => part.y.clone(),
                    };
                    let x_adv = adv.generate(model, &part.x, &target, batch_seed)?;
                    Some(Labelled { x: x_adv, y: part.y })
                }
                _ => None,
            };
            let mut step = || -> Result<f32> {
                if let (Some(beta), Some(adv)) = (fit.trades_beta, adv.as_ref()) {
                    return step_trades(model, &mut opt, &batch, adv, beta, weights);
                }
                if let Some(weights) = weights {
                    return step_weighted(model, &mut opt, &mut grads, &batch, adv.as_ref(), w, weights);
                }
                match step_by_hand(model, &mut opt, &mut grads, &batch, adv.as_ref(), w)? {
                    Some(loss) => Ok(loss),
                    None => step_by_autograd(model, &mut opt, &batch, adv.as_ref(), w),
                }
            };
            let loss = step()
                .with_context(|| format!("{}, {phase} epoch {epoch}, batch {}", model.name(), b + 1))?;
            if !loss.is_finite() {
                return Err(Error::Diverged {
                    section: lr_section(phase),
                    msg: format!(
                        "{phase} epoch {epoch}, batch {}: the training loss is {loss} (lr = {:e}): lower [{}] lr",
                        b + 1,
                        fit.lr,
                        lr_section(phase)
                    ),
                });
            }
            total += loss as f64;
            progress.inc(1);
            failpoint::reached(fail, phase, epoch, Point::Batch(b + 1))?;
        }
        let seconds = progress.finish().as_secs_f64();
        let what = format!("{phase} epoch {epoch} validation");
        let (val_loss, val_acc) = validation_loss(model, &data.validation, weights, &what)?;
        if !val_loss.is_finite() {
            return Err(Error::Diverged {
                section: lr_section(phase),
                msg: format!(
                    "{phase} epoch {epoch}: the validation loss is {val_loss} (lr = {:e}): lower [{}] lr",
                    fit.lr,
                    lr_section(phase)
                ),
            });
        }
        let mut robust_accuracy = None;
        let objective = match adversary.as_deref_mut() {
            Some(adv) if adversarial && !val_adv.is_empty() => {
                let part = data.validation.select(&val_adv)?;
                if let Some(beta) = fit.trades_beta {
                    // The TRADES objective on validation: its clean loss plus β · KL.
                    let x_adv = adv.generate(model, &part.x, &predicted(model, &part.x)?, seed ^ 0xA11CE)?;
                    let adv_part = Labelled { x: x_adv, y: part.y.clone() };
                    let clean = model.forward(&model.encode(&part.x.view()?)?, Mode::EVAL)?;
                    let adv_logits = model.forward(&model.encode(&adv_part.x.view()?)?, Mode::EVAL)?;
                    let weighted = weights.map(|w| (&adv_part.y[..], w));
                    let kl = f64::from(kl_clean_adv(&clean, &adv_logits, weighted)?.to_scalar::<f32>()?);
                    let hits = adv_logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
                    let attacked = attacked_rows(adv, &part.y);
                    let right = attacked.iter().filter(|&&i| hits[i] == part.y[i]).count();
                    robust_accuracy = (!attacked.is_empty()).then(|| right as f64 / attacked.len() as f64);
                    val_loss + beta * kl
                } else {
                    let x_adv = adv.generate(model, &part.x, &part.y, seed ^ 0xA11CE)?;
                    let adv_part = Labelled { x: x_adv, y: part.y };
                    let what = format!("{phase} epoch {epoch} attacked validation");
                    let (adv_loss, _) = validation_loss(model, &adv_part, weights, &what)?;
                    robust_accuracy = accuracy_at(model, &adv_part, &attacked_rows(adv, &adv_part.y), &what)?;
                    if !adv_loss.is_finite() {
                        return Err(Error::msg(format!(
                            "{phase} epoch {epoch}: the loss on the attacked validation examples is {adv_loss}"
                        )));
                    }
                    (1.0 - w) * val_loss + w * adv_loss
                }
            }
            _ => val_loss,
        };
        let objective = match robust_accuracy {
            Some(acc) if fit.stop_on_robust_accuracy => 1.0 - acc,
            _ => objective,
        };
        let mut probe_accuracy = None;
        if let Some(adv) = adversary.as_deref_mut().filter(|_| adversarial && !val_adv.is_empty()) {
            let part = data.validation.select(&val_adv)?;
            if let Some(x_probe) = adv.probe(model, &part.x, &part.y, seed ^ 0x9_20BE) {
                let probed = Labelled { x: x_probe?, y: part.y };
                let what = format!("{phase} epoch {epoch} probe");
                probe_accuracy = accuracy_at(model, &probed, &attacked_rows(adv, &probed.y), &what)?;
            }
        }
        let entry = EpochLog {
            epoch,
            train_loss: total / batches.max(1) as f64,
            validation_loss: val_loss,
            validation_accuracy: val_acc,
            objective,
            seconds,
            robust_accuracy,
            probe_accuracy,
        };
        tracing::info!(
            "{phase} epoch {epoch}: train loss {:.4}, validation loss {val_loss:.4}, accuracy {:.2}%, objective {objective:.4} ({seconds:.1} s)",
            entry.train_loss,
            val_acc * 100.0
        );
        let best_probe = state
            .log
            .iter()
            .filter_map(|e| e.probe_accuracy)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        let collapse = probe_accuracy.is_some_and(|now| collapsed(best_probe, now));
        state.log.push(entry);
        state.epochs_done = epoch;
        if collapse {
            tracing::warn!(
                "{phase} epoch {epoch}: catastrophic overfitting: accuracy under the probe attack fell from {:.1}% to {:.1}%; stopping and keeping the best epoch before it",
                best_probe.unwrap_or(0.0) * 100.0,
                probe_accuracy.unwrap_or(0.0) * 100.0
            );
            state.collapsed_at = Some(epoch);
        }
        // FGSM beaten, the probe not: switch for the epochs left (after this epoch's bookkeeping).
        let lagging = !collapse
            && state.escalated_at.is_none()
            && matches!((robust_accuracy, probe_accuracy), (Some(r), Some(p)) if r - p >= ESCALATE_GAP);
        // A new adversarial phase changes the objective's meaning: compare within it only.
        let comparable = !(adversarial && epoch == fit.clean_epochs + 1);
        // A collapsed epoch is never kept, whatever its objective says.
        let improved = !collapse && (state.best_objective.is_none_or(|b| objective < b) || !comparable);
        if improved {
            state.best_objective = Some(objective);
            state.best_epoch = epoch;
            state.bad_epochs = 0;
            best = Some(model::snapshot(model)?);
        } else {
            state.bad_epochs += 1;
        }
        if lagging && adversary.as_deref_mut().is_some_and(|a| a.escalate()) {
            tracing::warn!(
                "{phase} epoch {epoch}: the model beats the training examples ({:.1}%) far more often than the probe attack's ({:.1}%): training with the probe attack from now on",
                robust_accuracy.unwrap_or(0.0) * 100.0,
                probe_accuracy.unwrap_or(0.0) * 100.0
            );
            state.escalated_at = Some(epoch);
            // Its objective means something else now: the next epoch starts the comparison.
            state.best_objective = None;
            state.bad_epochs = 0;
        }
        let stop = (fit.patience > 0 && state.bad_epochs >= fit.patience) || state.collapsed_at.is_some();
        if stop {
            tracing::info!("{phase}: no better validation objective for {} epochs, stopping", fit.patience);
        }
        if stop || epoch == fit.epochs {
            // The final commit ends this epoch.
            break;
        }
        let commit = commit::Commit {
            model,
            state: &state,
            opt: Some(&opt),
            best: if improved { None } else { best.as_deref() },
            frozen: Some(&frozen),
            adversary: adversary.as_deref().map(|a| a.state()),
        };
        commit::write(checkpoints, &commit, epoch, fail)?;
        failpoint::reached(fail, phase, epoch, Point::End)?;
    }
    if let Some(best) = &best {
        model::restore(model, best)?;
    }
    state.finished = true;
    let commit = commit::Commit {
        model,
        state: &state,
        opt: None,
        best: None,
        frozen: None,
        adversary: adversary.as_deref().map(|a| a.state()),
    };
    commit::write(checkpoints, &commit, state.epochs_done, fail)?;
    failpoint::reached(fail, phase, state.epochs_done, Point::End)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mlp, TabularModelConfig};
    use candle_core::Device;

    fn data() -> Dataset {
        // Two Gaussian-ish blobs from a fixed formula: class = sign of x0 + x1.
        let make = |n: usize, off: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let a = (((i + off) * 37) % 101) as f32 / 50.0 - 1.0;
                let b = (((i + off) * 53) % 97) as f32 / 48.0 - 1.0;
                x.extend([a, b]);
                y.push(u32::from(a + b > 0.0));
            }
            Labelled { x: Examples::Dense { data: x, width: 2 }, y }
        };
        Dataset { n_classes: 2, train: make(200, 0), validation: make(50, 1000), test: make(50, 2000) }
    }

    fn fit_cfg(epochs: usize) -> Fit {
        Fit {
            epochs,
            batch_size: 32,
            lr: 1e-2,
            weight_decay: 0.0,
            patience: 0,
            adversarial_weight: 0.0,
            share: 1.0,
            clean_epochs: 0,
            validation_attack_examples: 0,
            trades_beta: None,
            stop_on_robust_accuracy: false,
        }
    }

    fn model() -> Mlp {
        Mlp::new(&TabularModelConfig::default(), &[0.0, 0.0], &[1.0, 1.0], 2, 3, &Device::Cpu).unwrap()
    }

    /// A small MLP, a batch of three rows and adversarial versions of the first two.
    fn trades_case() -> (Mlp, Labelled, Labelled) {
        let cfg = TabularModelConfig { hidden: vec![5], ..Default::default() };
        let m = Mlp::new(&cfg, &[0.0, 0.0], &[1.0, 1.0], 2, 5, &Device::Cpu).unwrap();
        let batch = Labelled {
            x: Examples::Dense { data: vec![0.3, -0.2, -0.5, 0.8, 0.1, 0.4], width: 2 },
            y: vec![1, 0, 1],
        };
        let adv =
            Labelled { x: Examples::Dense { data: vec![0.6, -0.5, -0.2, 0.5], width: 2 }, y: vec![1, 0] };
        (m, batch, adv)
    }

    /// Checks autograd's gradient of `loss` against central finite differences at the first,
    /// middle and last weight of every tensor; returns how many weights were checked.
    fn gradient_matches_finite_differences(m: &Mlp, loss: &dyn Fn(&Mlp) -> Tensor) -> usize {
        let value = |m: &Mlp| f64::from(loss(m).to_scalar::<f32>().unwrap());
        let grads = loss(m).backward().unwrap();
        let mut checked = 0;
        for var in &m.trainable() {
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let w0 = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let set = |w: Vec<f32>| {
                var.set(&Tensor::from_vec(w, var.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap()
            };
            for k in [0, w0.len() / 2, w0.len() - 1] {
                let h = 1e-2f32;
                let at = |d: f32| {
                    let mut w = w0.clone();
                    w[k] += d;
                    set(w);
                    value(m)
                };
                let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
                set(w0.clone());
                assert!(
                    (numeric - f64::from(g[k])).abs() <= 2e-3 * (1.0 + numeric.abs()),
                    "weight {k}: finite difference {numeric}, autograd {}",
                    g[k]
                );
                checked += 1;
            }
        }
        checked
    }

    /// Class-weighted TRADES: equal weights give the plain loss; other weights give each
    /// term's class-weighted mean (checked against the rows' own CE and KL), and the
    /// gradient still matches finite differences.
    #[test]
    fn class_weighted_trades_weighs_both_terms_by_class() {
        let (m, batch, adv) = trades_case();
        let loss = |m: &Mlp, w: Option<&[f64]>| {
            f64::from(trades_loss(m, &batch, &adv, 6.0, w, Mode::TRAIN).unwrap().to_scalar::<f32>().unwrap())
        };
        assert!((loss(&m, Some(&[1.0, 1.0])) - loss(&m, None)).abs() < 1e-6);
        let logits = |x: &Examples| m.forward(&m.encode(&x.view().unwrap()).unwrap(), Mode::TRAIN).unwrap();
        let (clean, adv_logits) = (logits(&batch.x), logits(&adv.x));
        let lp = candle_nn::ops::log_softmax(&clean, D::Minus1).unwrap().to_vec2::<f32>().unwrap();
        let kl = kl_rows(&clean.narrow(0, 0, 2).unwrap(), &adv_logits).unwrap().to_vec1::<f32>().unwrap();
        let w = [1.0f64, 4.0];
        let wy = |y: u32| w[y as usize];
        let ce: f64 =
            batch.y.iter().enumerate().map(|(i, &y)| -wy(y) * f64::from(lp[i][y as usize])).sum::<f64>()
                / batch.y.iter().map(|&y| wy(y)).sum::<f64>();
        let kl: f64 = adv.y.iter().zip(&kl).map(|(&y, &k)| wy(y) * f64::from(k)).sum::<f64>()
            / adv.y.iter().map(|&y| wy(y)).sum::<f64>();
        let weighted = loss(&m, Some(&w));
        assert!((weighted - (ce + 6.0 * kl)).abs() < 1e-5, "{weighted} vs {}", ce + 6.0 * kl);
        assert!((weighted - loss(&m, None)).abs() > 1e-4, "the weights matter here");
        let weighted_loss = |m: &Mlp| trades_loss(m, &batch, &adv, 6.0, Some(&w), Mode::TRAIN).unwrap();
        assert!(gradient_matches_finite_differences(&m, &weighted_loss) >= 6);
    }

    /// TRADES' gradient, by autograd, against central finite differences of its loss.
    #[test]
    fn the_trades_gradient_matches_finite_differences() {
        let (m, batch, adv) = trades_case();
        let loss = |m: &Mlp| trades_loss(m, &batch, &adv, 6.0, None, Mode::TRAIN).unwrap();
        let checked = gradient_matches_finite_differences(&m, &loss);
        assert!(checked >= 6);
        // With the adversarial rows equal to the clean ones the KL term vanishes.
        let same =
            Labelled { x: Examples::Dense { data: vec![0.3, -0.2, -0.5, 0.8], width: 2 }, y: vec![1, 0] };
        let ce = |m: &Mlp| {
            f64::from(
                cross_entropy(
                    &m.forward(&m.encode(&batch.x.view().unwrap()).unwrap(), Mode::TRAIN).unwrap(),
                    &batch.y,
                )
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            )
        };
        let with_same = f64::from(
            trades_loss(&m, &batch, &same, 6.0, None, Mode::TRAIN).unwrap().to_scalar::<f32>().unwrap(),
        );
        assert!((with_same - ce(&m)).abs() < 1e-6);
    }

    /// The hand-written step and autograd take the same AdamW steps, clean and mixed.
    #[test]
    fn the_hand_written_step_matches_autograd() {
        let cfg = TabularModelConfig { hidden: vec![16, 8], ..Default::default() };
        let make = || Mlp::new(&cfg, &[0.5, -1.0, 2.0], &[2.0, 0.5, 1.0], 3, 11, &Device::Cpu).unwrap();
        let (fast, slow) = (make(), make());
        let params = ParamsAdamW { lr: 1e-2, weight_decay: 1e-2, ..Default::default() };
        let mut opt_fast = AdamW::new(fast.trainable(), params.clone()).unwrap();
        let mut opt_slow = AdamW::new(slow.trainable(), params).unwrap();
        let mut grads = vec![Vec::new(); fast.trainable().len()];
        let rows = |n: usize, off: usize| {
            let x: Vec<f32> = (0..n * 3).map(|i| (((i + off) * 37 % 23) as f32 - 11.0) / 4.0).collect();
            let y: Vec<u32> = (0..n).map(|i| ((i + off) % 3) as u32).collect();
            Labelled { x: Examples::Dense { data: x, width: 3 }, y }
        };
        for step in 0..6 {
            let batch = rows(20, step * 7);
            // Clean steps first, then mixed ones with fewer adversarial rows than clean.
            let adv = (step >= 2).then(|| rows(13, 100 + step));
            let w = if step >= 2 { 0.3 } else { 0.0 };
            let a = step_by_hand(&fast, &mut opt_fast, &mut grads, &batch, adv.as_ref(), w).unwrap();
            let b = step_by_autograd(&slow, &mut opt_slow, &batch, adv.as_ref(), w).unwrap();
            let a = a.expect("the MLP takes the hand-written path on the CPU");
            assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "step {step}: loss {a} vs {b}");
            for (p, q) in fast.trainable().iter().zip(slow.trainable()) {
                let (p, q) = (p.flatten_all().unwrap().to_vec1::<f32>().unwrap(), q.flatten_all().unwrap());
                for (u, v) in p.iter().zip(q.to_vec1::<f32>().unwrap()) {
                    assert!((u - v).abs() < 1e-5 * (1.0 + v.abs()), "step {step}: weight {u} vs {v}");
                }
            }
        }
    }

    /// Every tensor of `m`, by name, as bits.
    fn weights(m: &dyn Classifier) -> Vec<(String, Vec<u32>)> {
        model::tensors(m)
            .into_iter()
            .map(|(n, t)| {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (n, v.iter().map(|x| x.to_bits()).collect())
            })
            .collect()
    }

    /// The state without timings, the only numbers allowed to differ.
    fn untimed(mut s: TrainState) -> TrainState {
        s.log.iter_mut().for_each(|e| e.seconds = 0.0);
        s
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tempered-train-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn killer(epoch: usize, point: Point) -> FailPoint {
        FailPoint { epoch, point, action: failpoint::Action::Fail }
    }

    /// Stops a run at each kill point (the in-process stand-in for SIGKILL: nothing after it
    /// runs) and resumes it with a fresh model: the log and the weights are the
    /// uninterrupted run's, bit for bit.
    fn resumes_exactly<M: Classifier>(
        make: impl Fn() -> M,
        data: &Dataset,
        cfg: &Fit,
        points: &[(usize, Point)],
        name: &str,
    ) -> TrainState {
        resumes_exactly_with(make, data, cfg, &Balance::default(), points, name)
    }

    fn resumes_exactly_with<M: Classifier>(
        make: impl Fn() -> M,
        data: &Dataset,
        cfg: &Fit,
        balance: &Balance,
        points: &[(usize, Point)],
        name: &str,
    ) -> TrainState {
        let root = scratch(name);
        let full_model = make();
        let ck = |d: &str| {
            std::fs::create_dir_all(root.join(d)).unwrap();
            Checkpoints { dir: root.join(d), phase: "clean".into() }
        };
        let full = fit_balanced(&full_model, data, cfg, balance, None, 9, &ck("full")).unwrap();
        for (i, &(epoch, point)) in points.iter().enumerate() {
            let ck = ck(&format!("kill-{i}"));
            let killed = fit_with(&make(), data, cfg, balance, None, 9, &ck, Some(&killer(epoch, point)));
            let err = killed.expect_err("the fail point stops the run").to_string();
            assert!(err.contains(failpoint::VAR), "{err}");
            let m = make();
            let resumed = fit_balanced(&m, data, cfg, balance, None, 9, &ck).unwrap();
            let at = format!("killed at epoch {epoch}, {point:?}");
            assert_eq!(untimed(resumed), untimed(full.clone()), "{at}");
            assert!(weights(&m) == weights(&full_model), "{at}: the weights differ");
            // A finished phase reloads to the same weights too.
            let again = make();
            let reloaded = fit_balanced(&again, data, cfg, balance, None, 9, &ck).unwrap();
            assert_eq!(untimed(reloaded), untimed(full.clone()));
            assert!(weights(&again) == weights(&full_model), "{at}: reloaded weights differ");
            let left: Vec<String> = std::fs::read_dir(&ck.dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(left, ["clean.safetensors"], "{at}: one final commit, nothing else");
        }
        let _ = std::fs::remove_dir_all(&root);
        full
    }

    #[test]
    fn training_learns_and_resumes_exactly_from_any_point() {
        // A high learning rate, so that some epochs are worse than the best one so far and
        // the commits carry the best weights besides the current ones.
        let cfg = Fit { lr: 0.3, ..fit_cfg(5) };
        let mut points = Vec::new();
        for epoch in 1..=5 {
            points.extend([(epoch, Point::Batch(1)), (epoch, Point::Batch(4)), (epoch, Point::Tmp)]);
            points.extend([(epoch, Point::Renamed), (epoch, Point::End)]);
        }
        let full = resumes_exactly(model, &data(), &cfg, &points, "mlp");
        assert!(full.log.last().unwrap().validation_accuracy > 0.9, "{:?}", full.log);
        assert!(full.best_epoch < full.epochs_done, "a worse last epoch: {:?}", full.log);
    }

    /// Labels of `data()` turned into a rare class: one row in ten is class 1.
    fn rare(mut d: Dataset) -> Dataset {
        for split in [&mut d.train, &mut d.validation, &mut d.test] {
            let Examples::Dense { data, .. } = &split.x else { unreachable!() };
            let data = data.clone();
            for (i, y) in split.y.iter_mut().enumerate() {
                *y = u32::from(data[2 * i] + data[2 * i + 1] > 1.0);
            }
        }
        d
    }

    /// Weighted and oversampled phases resume to the uninterrupted run's numbers too: the
    /// weights come from the split, the draws from the epoch's seed.
    #[test]
    fn weighted_and_balanced_phases_resume_exactly() {
        let data = rare(data());
        let share = data.train.y.iter().filter(|&&y| y == 1).count() as f64 / data.train.len() as f64;
        assert!(share > 0.02 && share < 0.2, "a rare class: {share}");
        let cfg = Fit { lr: 0.05, ..fit_cfg(3) };
        let points = [(1, Point::End), (2, Point::Batch(3)), (3, Point::Renamed)];
        let weighted = Balance { class_weights: Some(vec![1.0, 8.0]), sampling: false };
        resumes_exactly_with(model, &data, &cfg, &weighted, &points, "weighted");
        let sampled = Balance { class_weights: None, sampling: true };
        resumes_exactly_with(model, &data, &cfg, &sampled, &points, "sampled");
    }

    /// The class-weighted step through the hand-written gradients and through autograd
    /// agree, and equal the weighted mean `Σ c_y · CE / Σ c_y`.
    #[test]
    fn the_weighted_step_matches_autograd_and_the_weighted_mean() {
        let (fast, slow) = (model(), model());
        let params = ParamsAdamW { lr: 1e-2, ..Default::default() };
        let mut opt_fast = AdamW::new(fast.trainable(), params.clone()).unwrap();
        let mut opt_slow = AdamW::new(slow.trainable(), params).unwrap();
        let mut grads = vec![Vec::new(); fast.trainable().len()];
        let batch = rare(data()).train.select(&(0..40).collect::<Vec<_>>()).unwrap();
        let weights = [1.0, 5.0];
        // The expected loss, before any step: per-row CE by autograd, weighted by hand.
        let logits = fast.forward(&fast.encode(&batch.x.view().unwrap()).unwrap(), Mode::EVAL).unwrap();
        let y = Tensor::from_slice(&batch.y, batch.y.len(), &Device::Cpu).unwrap();
        let per_row: Vec<f32> = candle_nn::ops::log_softmax(&logits, D::Minus1)
            .unwrap()
            .gather(&y.unsqueeze(1).unwrap(), 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .neg()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (num, den) = per_row.iter().zip(&batch.y).fold((0.0, 0.0), |(n, d), (&l, &c)| {
            (n + weights[c as usize] * l as f64, d + weights[c as usize])
        });
        let a = step_weighted(&fast, &mut opt_fast, &mut grads, &batch, None, 0.0, &weights).unwrap();
        assert!(((a as f64) - num / den).abs() < 1e-5, "{a} vs {}", num / den);
        let adv = Labelled { x: batch.x.clone(), y: batch.y.clone() };
        let b = step_weighted(&fast, &mut opt_fast, &mut grads, &batch, Some(&adv), 0.3, &weights).unwrap();
        let parts = class_parts(&batch, &weights, 1.0).unwrap();
        let total: f64 = parts.iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-12, "the shares sum to 1: {total}");
        // The same loss through autograd, from the same starting weights.
        let a2 = {
            let mut loss: Option<Tensor> = None;
            for (part, scale) in &parts {
                let ce = cross_entropy(
                    &slow.forward(&slow.encode(&part.x.view().unwrap()).unwrap(), Mode::TRAIN).unwrap(),
                    &part.y,
                )
                .unwrap();
                let t = (ce * *scale).unwrap();
                loss = Some(match loss {
                    Some(l) => (l + t).unwrap(),
                    None => t,
                });
            }
            let loss = loss.unwrap();
            opt_slow.backward_step(&loss).unwrap();
            loss.to_scalar::<f32>().unwrap()
        };
        assert!((a - a2).abs() < 1e-5, "{a} vs {a2}");
        assert!(b.is_finite());
    }

    /// On a rare class, weighting the loss makes the model flag more of it than the
    /// unweighted loss does.
    #[test]
    fn weighting_flags_more_of_the_rare_class() {
        let data = rare(data());
        let cfg = Fit { lr: 0.05, ..fit_cfg(8) };
        let flagged = |balance: &Balance, name: &str| {
            let dir = scratch(name);
            let m = model();
            let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
            fit_balanced(&m, &data, &cfg, balance, None, 9, &ck).unwrap();
            let logits = m.forward(&m.encode(&data.train.x.view().unwrap()).unwrap(), Mode::EVAL).unwrap();
            let pred = logits.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            pred.iter().zip(&data.train.y).filter(|&(&p, &y)| p == 1 && y == 1).count()
        };
        let plain = flagged(&Balance::default(), "plain");
        let weighted = flagged(&Balance { class_weights: Some(vec![1.0, 9.0]), sampling: false }, "weighted");
        let sampled = flagged(&Balance { class_weights: None, sampling: true }, "sampled");
        assert!(weighted > plain, "weighted {weighted} vs unweighted {plain}");
        assert!(sampled > plain, "balanced sampling {sampled} vs {plain}");
    }

    /// The word-CNN draws dropout masks from a generator that runs across batches and
    /// epochs: the commits carry its position.
    #[test]
    fn a_model_with_dropout_resumes_exactly() {
        use crate::model::text::TextModelConfig;
        use crate::model::word_cnn::{Vocab, WordCnn};
        let words = ["good", "great", "fine", "bad", "awful", "poor", "the", "film", "plot", "was"];
        let make_split = |n: usize, off: usize| {
            let mut texts = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let k = (i + off) * 7;
                let label = (k / 3) % 2;
                let sentiment = &words[label * 3..label * 3 + 3];
                texts.push(format!(
                    "{} {} {} {}",
                    words[6 + k % 4],
                    sentiment[k % 3],
                    words[6 + (k / 5) % 4],
                    sentiment[(k / 7) % 3]
                ));
                y.push(label as u32);
            }
            Labelled { x: Examples::Text(texts), y }
        };
        let data = Dataset {
            n_classes: 2,
            train: make_split(60, 0),
            validation: make_split(20, 100),
            test: make_split(4, 200),
        };
        let Examples::Text(texts) = &data.train.x else { unreachable!() };
        let make = || {
            let vocab = Vocab::build(texts.iter(), 1).unwrap();
            let cfg =
                TextModelConfig { embedding_dim: 8, filters: 4, word_dropout: 0.2, ..Default::default() };
            WordCnn::new(&cfg, vocab, 2, 3, &Device::Cpu).unwrap()
        };
        let cfg = Fit { batch_size: 16, ..fit_cfg(3) };
        let points = [(1, Point::End), (2, Point::Batch(2)), (3, Point::Batch(1)), (3, Point::Renamed)];
        resumes_exactly(make, &data, &cfg, &points, "word-cnn");
    }

    /// Shifts every value by an amount drawn from the seed, and counts what it was given.
    struct Nudge {
        seen: usize,
    }

    impl Adversary for Nudge {
        fn generate(&mut self, _: &dyn Classifier, x: &Examples, y: &[u32], seed: u64) -> Result<Examples> {
            self.seen += y.len();
            let Examples::Dense { data, width } = x else { unreachable!("dense rows") };
            let shift = (seed % 7) as f32 * 0.05;
            Ok(Examples::Dense { data: data.iter().map(|v| v + shift).collect(), width: *width })
        }
        fn state(&self) -> serde_json::Value {
            self.seen.into()
        }
        fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
            self.seen = state.as_u64().ok_or_else(|| Error::msg("a count"))? as usize;
            Ok(())
        }
    }

    /// Adversarial epochs resume exactly too, and the adversary gets its counters back,
    /// from an epoch commit and from the final one.
    #[test]
    fn an_adversarial_phase_resumes_exactly_with_the_adversary_state() {
        let root = scratch("adversarial");
        let cfg = Fit {
            adversarial_weight: 0.5,
            share: 0.5,
            clean_epochs: 1,
            validation_attack_examples: 20,
            ..fit_cfg(3)
        };
        let data = data();
        let ck = |d: &str| {
            std::fs::create_dir_all(root.join(d)).unwrap();
            Checkpoints { dir: root.join(d), phase: "hardened".into() }
        };
        let (full_model, mut full_adv) = (model(), Nudge { seen: 0 });
        let full = fit(&full_model, &data, &cfg, Some(&mut full_adv), 9, &ck("full")).unwrap();
        assert!(full_adv.seen > 0);
        for (i, (epoch, point)) in
            [(2, Point::Batch(3)), (2, Point::End), (3, Point::Tmp)].into_iter().enumerate()
        {
            let ck = ck(&format!("kill-{i}"));
            let mut adv = Nudge { seen: 0 };
            let killed = fit_with(
                &model(),
                &data,
                &cfg,
                &Balance::default(),
                Some(&mut adv),
                9,
                &ck,
                Some(&killer(epoch, point)),
            );
            assert!(killed.is_err());
            let (m, mut adv) = (model(), Nudge { seen: 0 });
            let resumed = fit(&m, &data, &cfg, Some(&mut adv), 9, &ck).unwrap();
            assert_eq!(untimed(resumed), untimed(full.clone()), "killed at epoch {epoch}, {point:?}");
            assert!(weights(&m) == weights(&full_model), "killed at epoch {epoch}, {point:?}");
            assert_eq!(adv.seen, full_adv.seen, "killed at epoch {epoch}, {point:?}");
            let mut again = Nudge { seen: 0 };
            fit(&model(), &data, &cfg, Some(&mut again), 9, &ck).unwrap();
            assert_eq!(again.seen, full_adv.seen, "the finished phase's counters");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A dataset whose splits are on disk trains to the in-memory dataset's weights and log,
    /// bit for bit: clean, class-weighted with balanced sampling (validation by class),
    /// adversarial and TRADES; and predicts and evaluates the same.
    #[test]
    fn a_dataset_on_disk_trains_and_evaluates_to_the_same_bits() {
        let rows = tempfile::tempdir().unwrap();
        let root = scratch("stored");
        let dense = rare(data());
        let disk = crate::data::stored_dataset(&dense, rows.path());
        assert!(matches!(disk.train.x, Examples::Stored(_)));
        let adversarial = Fit {
            adversarial_weight: 0.5,
            share: 0.5,
            clean_epochs: 1,
            validation_attack_examples: 20,
            ..fit_cfg(3)
        };
        let weighted = Balance { class_weights: Some(vec![1.0, 8.0]), sampling: true };
        let cases = [
            ("clean", fit_cfg(2), Balance::default(), false),
            ("balanced", Fit { lr: 0.05, ..fit_cfg(2) }, weighted.clone(), false),
            ("adversarial", adversarial.clone(), weighted, true),
            ("trades", Fit { trades_beta: Some(6.0), ..adversarial }, Balance::default(), true),
        ];
        for (name, cfg, balance, attacked) in cases {
            let run = |d: &Dataset, tag: &str| {
                let dir = root.join(format!("{name}-{tag}"));
                std::fs::create_dir_all(&dir).unwrap();
                let ck = Checkpoints { dir, phase: "hardened".into() };
                let (m, mut adv) = (model(), Nudge { seen: 0 });
                let adv_ref = attacked.then_some(&mut adv as &mut dyn Adversary);
                let state = fit_balanced(&m, d, &cfg, &balance, adv_ref, 9, &ck).unwrap();
                (untimed(state), weights(&m), adv.seen, m)
            };
            let (a, b) = (run(&dense, "memory"), run(&disk, "disk"));
            assert_eq!(a.0, b.0, "{name}: the logs differ");
            assert!(a.1 == b.1, "{name}: the weights differ");
            assert_eq!(a.2, b.2, "{name}: the adversary saw other rows");
            assert!(!attacked || a.2 > 0, "{name}: the adversary was used");
            let m = a.3;
            for (x, y) in [(&dense.test, &disk.test), (&dense.validation, &disk.validation)] {
                let (p, q) = (
                    crate::evaluate::predict(&m, &x.x, 7).unwrap(),
                    crate::evaluate::predict(&m, &y.x, 7).unwrap(),
                );
                assert_eq!(p.0, q.0);
                let bits = |v: &[Vec<f32>]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&p.1), bits(&q.1), "{name}: the probabilities differ");
                let (l, r) = (evaluate_loss(&m, x, 16).unwrap(), evaluate_loss(&m, y, 16).unwrap());
                assert_eq!((l.0.to_bits(), l.1.to_bits()), (r.0.to_bits(), r.1.to_bits()));
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Flips the value of tensor `name` in the safetensors file `path` to NaN.
    fn poison(path: &std::path::Path, name: &str) {
        let mut bytes = std::fs::read(path).unwrap();
        let (n, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let at = 8 + n + meta.info(name).unwrap().data_offsets.0;
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_naming_the_file_and_the_tensor() {
        let dir = scratch("damaged");
        let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
        let data = data();
        // Killed after epoch 1: an epoch commit with weights and moments.
        let killed = fit_with(
            &model(),
            &data,
            &fit_cfg(3),
            &Balance::default(),
            None,
            9,
            &ck,
            Some(&killer(1, Point::End)),
        );
        assert!(killed.is_err());
        let commit = dir.join("clean-epoch-0001.safetensors");
        for tensor in ["@adamw/v/1", "layer0.weight"] {
            poison(&commit, tensor);
            let m = model();
            let before = weights(&m);
            let e = fit(&m, &data, &fit_cfg(3), None, 9, &ck).unwrap_err().to_string();
            assert!(e.contains(&commit.display().to_string()), "{e}");
            // The file's own hash catches it before any tensor is read (a NaN written as
            // such is named by its tensor: `checkpoint::tests`).
            assert!(e.contains("do not match the hash written with them"), "{tensor}: {e}");
            assert!(weights(&m) == before, "nothing was loaded");
        }

        // The final commit of another architecture: every tensor's shape is checked.
        std::fs::remove_file(&commit).unwrap();
        fit(&model(), &data, &fit_cfg(1), None, 9, &ck).unwrap();
        let cfg = TabularModelConfig { hidden: vec![5, 7], ..Default::default() };
        let other = Mlp::new(&cfg, &[0.0, 0.0], &[1.0, 1.0], 2, 3, &Device::Cpu).unwrap();
        let e = fit(&other, &data, &fit_cfg(1), None, 9, &ck).unwrap_err().to_string();
        assert!(e.contains("clean.safetensors") && e.contains("shape"), "{e}");
        poison(&ck.best(), "layer1.bias");
        let e = fit(&model(), &data, &fit_cfg(1), None, 9, &ck).unwrap_err().to_string();
        assert!(e.contains("clean.safetensors: its tensors do not match the hash written with them"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_collapse_is_half_the_best_and_twenty_points_down() {
        assert!(!collapsed(None, 0.0), "nothing to compare with yet");
        assert!(collapsed(Some(0.6), 0.2));
        assert!(!collapsed(Some(0.6), 0.35), "not below half");
        assert!(collapsed(Some(0.4), 0.2 - 1e-9));
        assert!(!collapsed(Some(0.25), 0.1), "a drop of 15 points is noise at this level");
    }

    /// Trains on the clean rows; its probe answers with the rows' mirror image from the
    /// third call on, which the model gets wrong: a constructed catastrophic overfit.
    struct Collapsing {
        probes: usize,
    }

    impl Adversary for Collapsing {
        fn generate(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Result<Examples> {
            Ok(x.clone())
        }
        fn probe(
            &mut self,
            _m: &dyn Classifier,
            x: &Examples,
            _y: &[u32],
            _s: u64,
        ) -> Option<Result<Examples>> {
            self.probes += 1;
            let Examples::Dense { data, width } = x else { unreachable!("dense") };
            let flip = if self.probes >= 3 { -1.0 } else { 1.0 };
            Some(Ok(Examples::Dense { data: data.iter().map(|v| v * flip).collect(), width: *width }))
        }
    }

    #[test]
    fn a_collapse_under_the_probe_stops_training_and_keeps_the_epoch_before() {
        let dir = scratch("collapse");
        let ck = Checkpoints { dir: dir.clone(), phase: "hardened".into() };
        let cfg = Fit { lr: 0.05, adversarial_weight: 0.5, validation_attack_examples: 50, ..fit_cfg(6) };
        let mut adv = Collapsing { probes: 0 };
        let m = model();
        let state = fit(&m, &data(), &cfg, Some(&mut adv), 9, &ck).unwrap();
        assert_eq!(state.collapsed_at, Some(3), "{:?}", state.log);
        assert_eq!(state.epochs_done, 3, "training stopped at the collapse");
        assert!(state.best_epoch < 3, "the collapsed epoch is never kept");
        let probe: Vec<f64> = state.log.iter().map(|e| e.probe_accuracy.unwrap()).collect();
        assert!(probe[2] < 0.5 * probe[1], "{probe:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Attacks class 1 only, and from the third probe on mirrors those rows, which the model
    /// then gets wrong: a collapse that all-rows accuracy would halve, not reveal.
    struct CollapsingOnOneClass {
        probes: usize,
    }

    impl Adversary for CollapsingOnOneClass {
        fn generate(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Result<Examples> {
            Ok(x.clone())
        }
        fn attacks_class(&self, label: u32) -> bool {
            label == 1
        }
        fn probe(
            &mut self,
            _m: &dyn Classifier,
            x: &Examples,
            y: &[u32],
            _s: u64,
        ) -> Option<Result<Examples>> {
            self.probes += 1;
            let Examples::Dense { data, width } = x else { unreachable!("dense") };
            let mut out = data.clone();
            if self.probes >= 3 {
                for (row, _) in out.chunks_mut(*width).zip(y).filter(|(_, y)| **y == 1) {
                    row.iter_mut().for_each(|v| *v = -*v);
                }
            }
            Some(Ok(Examples::Dense { data: out, width: *width }))
        }
    }

    #[test]
    fn robust_and_probe_accuracies_count_only_the_attacked_class() {
        let dir = scratch("collapse-one-class");
        let ck = Checkpoints { dir: dir.clone(), phase: "hardened".into() };
        let cfg = Fit { lr: 0.05, adversarial_weight: 0.5, validation_attack_examples: 50, ..fit_cfg(6) };
        let mut adv = CollapsingOnOneClass { probes: 0 };
        let state = fit(&model(), &data(), &cfg, Some(&mut adv), 9, &ck).unwrap();
        let probe: Vec<f64> = state.log.iter().map(|e| e.probe_accuracy.unwrap()).collect();
        assert_eq!(state.collapsed_at, Some(3), "probe accuracy per epoch: {probe:?}");
        assert!(probe[2] < 0.2, "class-1 rows only, all mirrored: {probe:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Hands back the rows unchanged (so the model "beats" its examples) while its probe
    /// mirrors them (so the probe always wins): FGSM-style robustness that is not real.
    #[derive(Default)]
    struct Beaten {
        escalated: bool,
    }

    impl Adversary for Beaten {
        fn generate(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Result<Examples> {
            Ok(x.clone())
        }
        fn escalate(&mut self) -> bool {
            self.escalated = true;
            true
        }
        fn probe(
            &mut self,
            _m: &dyn Classifier,
            x: &Examples,
            _y: &[u32],
            _s: u64,
        ) -> Option<Result<Examples>> {
            let Examples::Dense { data, width } = x else { unreachable!("dense") };
            Some(Ok(Examples::Dense { data: data.iter().map(|v| -v).collect(), width: *width }))
        }
    }

    #[test]
    fn beaten_training_examples_switch_hardening_to_the_probe_also_after_a_resume() {
        let dir = scratch("escalate");
        let ck = Checkpoints { dir: dir.clone(), phase: "hardened".into() };
        let cfg = Fit { lr: 0.05, adversarial_weight: 0.5, validation_attack_examples: 50, ..fit_cfg(4) };
        let mut adv = Beaten::default();
        let state = fit(&model(), &data(), &cfg, Some(&mut adv), 9, &ck).unwrap();
        assert!(adv.escalated);
        assert_eq!(state.escalated_at, Some(1), "{:?}", state.log);
        assert_eq!(state.epochs_done, 4, "training goes on with the probe's attack");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();

        // Killed after epoch 2: the resumed phase trains with the probe's attack again.
        let killed = fit_with(
            &model(),
            &data(),
            &cfg,
            &Balance::default(),
            Some(&mut Beaten::default()),
            9,
            &ck,
            Some(&killer(2, Point::End)),
        );
        assert!(killed.is_err());
        let mut resumed = Beaten::default();
        let again = fit(&model(), &data(), &cfg, Some(&mut resumed), 9, &ck).unwrap();
        assert!(resumed.escalated, "a resume goes on with the attack it had switched to");
        assert_eq!(again.escalated_at, Some(1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_diverging_run_stops_naming_the_phase_epoch_batch_and_learning_rate() {
        let dir = scratch("diverging");
        let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
        let e =
            fit(&model(), &data(), &Fit { lr: 1e30, ..fit_cfg(3) }, None, 9, &ck).unwrap_err().to_string();
        assert!(e.starts_with("clean epoch 1, batch "), "{e}");
        assert!(e.contains("the training loss is NaN (lr = 1e30): lower [train] lr"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing was committed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
