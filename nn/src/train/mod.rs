//! The shared trainer: one short loop for clean training and every adversarial strategy.
//!
//! Each batch: loss = (1 − w) · CE(clean) + w · CE(adversarial), where the adversarial
//! examples come from an [`Adversary`] (an attack plugin through the oracle) and w = 0
//! for clean epochs. AdamW; early stopping on the validation objective (the same mix, so
//! hardening is not stopped for losing a little clean loss); the best epoch's weights are
//! restored at the end; with `weight_average`, what is validated and kept is a moving
//! average of the weights (`average.rs`). Every epoch ends in one atomic commit
//! (`commit.rs`) from which an interrupted run resumes to the numbers it would have given
//! uninterrupted.
//! The losses and their optimiser steps are in `step.rs`, the optimiser in `adamw.rs`.

use std::sync::Arc;

use candle_core::D;
use candle_nn::ParamsAdamW;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Context;
use crate::examples::{Dataset, Examples, Labelled};
use crate::model::{self, Classifier, Mode};
use crate::progress::Progress;
use crate::{Error, Result};

mod adamw;
mod average;
mod commit;
mod config;
mod failpoint;
mod step;
pub use adamw::AdamW;
use average::WeightAverage;
pub use commit::Checkpoints;
pub use config::{Balance, Fit};
pub use failpoint::unit_done;
use failpoint::{FailPoint, Point};
use step::{
    class_rows, cross_entropy, kl_clean_adv, step_by_autograd, step_by_hand, step_trades, step_weighted,
};

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
    /// The decay of the average of the weights that was validated and kept, if the phase
    /// kept one (the train losses are still those of the weights as trained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_average: Option<f64>,
}

/// Fast FGSM training whose own examples the model beats by this much more often than the
/// probe's (accuracy under FGSM − accuracy under PGD, on validation) has learnt to beat
/// FGSM, not the threat: hardening switches to the probe's attack.
pub const ESCALATE_GAP: f64 = 0.2;

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

/// Mean loss and accuracy on `data` with the loss class-weighted by `weights` (unweighted
/// without them).
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

/// The model's predicted classes for `x`, in eval mode: what a TRADES attack moves away from.
fn predicted(model: &dyn Classifier, x: &crate::examples::Examples) -> Result<Vec<u32>> {
    let logits = model.forward(&model.encode(&x.view()?)?, Mode::EVAL)?;
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

/// The pipeline section whose `lr` a phase trains with, for error messages.
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
        let done = commit::load(file, phase, model, None, None)?;
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
    let mut average = fit.weight_average.map(|d| WeightAverage::new(model, d)).transpose()?;
    let mut opt = AdamW::new(trainable, params)?;
    let (mut state, mut best) = match &latest {
        Some(commit::Latest::Epoch(file)) => {
            let resumed = commit::load(file, phase, model, Some(&mut opt), average.as_mut())?;
            if let (Some(adv), Some(state)) = (adversary.as_deref_mut(), &resumed.adversary) {
                adv.restore(state)?;
            }
            tracing::info!("{phase}: resuming after epoch {}", resumed.state.epochs_done);
            (resumed.state, Some(resumed.best))
        }
        _ => (
            TrainState { phase: phase.to_owned(), weight_average: fit.weight_average, ..Default::default() },
            None,
        ),
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
            if let Some(average) = average.as_mut() {
                average.update()?;
            }
            total += loss as f64;
            progress.inc(1);
            failpoint::reached(fail, phase, epoch, Point::Batch(b + 1))?;
        }
        let seconds = progress.finish().as_secs_f64();
        // Validated, attacked, probed and (if best) kept: the average, when there is one.
        if let Some(average) = average.as_mut() {
            average.swap_in()?;
        }
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
                        return Err(Error::Diverged {
                            section: lr_section(phase),
                            msg: format!(
                                "{phase} epoch {epoch}: the loss on the attacked validation examples is {adv_loss} (lr = {:e}): lower [{}] lr",
                                fit.lr,
                                lr_section(phase)
                            ),
                        });
                    }
                    (1.0 - w) * val_loss + w * adv_loss
                }
            }
            _ => val_loss,
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
        // Watched by a probe, robust accuracy is accuracy under it: the training attack's own
        // is what catastrophic overfitting inflates (Wong et al. stop on PGD's, not FGSM's).
        let objective = match probe_accuracy.or(robust_accuracy) {
            Some(acc) if fit.stop_on_robust_accuracy => 1.0 - acc,
            _ => objective,
        };
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
        // Training goes on from the optimiser's weights.
        if let Some(average) = average.as_mut() {
            average.swap_out()?;
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
            average: average.as_ref(),
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
        average: None,
        adversary: adversary.as_deref().map(|a| a.state()),
    };
    commit::write(checkpoints, &commit, state.epochs_done, fail)?;
    failpoint::reached(fail, phase, state.epochs_done, Point::End)?;
    Ok(state)
}

#[cfg(test)]
mod tests;
