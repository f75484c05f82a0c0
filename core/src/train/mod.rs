//! The shared trainer: one short loop for clean training and every adversarial strategy.
//!
//! Each batch: loss = (1 − w) · CE(clean) + w · CE(adversarial), where the adversarial
//! examples come from an [`Adversary`] (an attack plugin through the oracle) and w = 0
//! for clean epochs. AdamW; early stopping on the validation objective (the same mix, so
//! hardening is not stopped for losing a little clean loss); the best epoch's weights are
//! restored at the end. Every epoch leaves a checkpoint and a state file, and a run
//! resumes from them.

use std::path::{Path, PathBuf};

use candle_core::{D, Tensor};
use candle_nn::ParamsAdamW;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Examples, Labelled};
use crate::model::{self, Classifier, Mode, TrainPart};
use crate::progress::Progress;
use crate::{Error, Result};

mod adamw;
pub use adamw::AdamW;

/// Makes adversarial versions of training examples against the current model.
pub trait Adversary {
    fn generate(&mut self, model: &dyn Classifier, x: &Examples, y: &[u32], seed: u64) -> Result<Examples>;
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
}

/// Per-epoch record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    /// The early-stopping objective: clean and adversarial validation loss, mixed.
    pub objective: f64,
    pub seconds: f64,
}

/// What survives a restart: written after every epoch.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainState {
    pub phase: String,
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub best_objective: Option<f64>,
    pub bad_epochs: usize,
    pub finished: bool,
    pub log: Vec<EpochLog>,
}

/// Where a phase keeps its checkpoints.
pub struct Checkpoints {
    pub dir: PathBuf,
    pub phase: String,
}

impl Checkpoints {
    fn last(&self) -> PathBuf {
        self.dir.join(format!("{}-last.safetensors", self.phase))
    }
    pub fn best(&self) -> PathBuf {
        self.dir.join(format!("{}.safetensors", self.phase))
    }
    fn state(&self) -> PathBuf {
        self.dir.join(format!("{}-state.json", self.phase))
    }

    pub fn read_state(&self) -> Result<Option<TrainState>> {
        let path = self.state();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| Error::data(&path, e.to_string()))
    }

    fn write_state(&self, s: &TrainState) -> Result<()> {
        let path = self.state();
        let text = serde_json::to_string_pretty(s).expect("state serializes");
        write_atomically(&path, text.as_bytes())
    }
}

/// Writes via a temporary file and a rename, so a crash never leaves half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn save_atomically(model: &dyn Classifier, path: &Path) -> Result<()> {
    let tmp = path.with_extension("tmp.safetensors");
    model::save(model, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Mean cross-entropy of `logits` against `y`.
fn cross_entropy(logits: &Tensor, y: &[u32]) -> candle_core::Result<Tensor> {
    let y = Tensor::from_slice(y, y.len(), logits.device())?;
    candle_nn::loss::cross_entropy(logits, &y)
}

/// Mean loss and accuracy of `model` on `data`, in eval mode.
pub fn evaluate_loss(model: &dyn Classifier, data: &Labelled, batch_size: usize) -> Result<(f64, f64)> {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let part = data.select(chunk);
        let logits = model.forward(&model.encode(&part.x.view())?, Mode::EVAL)?;
        loss += cross_entropy(&logits, &part.y)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        correct += pred.iter().zip(&part.y).filter(|(p, y)| p == y).count();
    }
    let n = data.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
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
    let clean = cross_entropy(&model.forward(&model.encode(&batch.x.view())?, Mode::TRAIN)?, &batch.y)?;
    let loss = match adv {
        Some(adv) => {
            let adv_loss =
                cross_entropy(&model.forward(&model.encode(&adv.x.view())?, Mode::TRAIN)?, &adv.y)?;
            ((clean * (1.0 - w))? + (adv_loss * w)?)?
        }
        None => clean,
    };
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
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
    fn part(l: &Labelled, weight: f64) -> Option<TrainPart<'_>> {
        match &l.x {
            Examples::Dense { data, .. } => Some(TrainPart { x: data, labels: &l.y, weight: weight as f32 }),
            Examples::Text(_) => None,
        }
    }
    if !opt.takes_slices() {
        return Ok(None);
    }
    let parts = match adv {
        None => vec![part(batch, 1.0)],
        Some(adv) => vec![part(batch, 1.0 - w), part(adv, w)],
    };
    let Some(parts) = parts.into_iter().collect::<Option<Vec<_>>>() else { return Ok(None) };
    let Some(loss) = model.train_grads(&parts, grads) else { return Ok(None) };
    let loss = loss?;
    opt.step_slices(grads)?;
    Ok(Some(loss))
}

/// Trains `model` on `data` for one phase. Returns the epoch log.
pub fn fit(
    model: &dyn Classifier,
    data: &Dataset,
    fit: &Fit,
    mut adversary: Option<&mut dyn Adversary>,
    seed: u64,
    checkpoints: &Checkpoints,
) -> Result<TrainState> {
    let mut state = match checkpoints.read_state()? {
        Some(s) if s.finished => {
            model::load(model, &checkpoints.best())?;
            tracing::info!("{}: already trained, loaded {}", s.phase, checkpoints.best().display());
            return Ok(s);
        }
        Some(s) => {
            model::load(model, &checkpoints.last())?;
            tracing::info!("{}: resuming after epoch {}", s.phase, s.epochs_done);
            s
        }
        None => TrainState { phase: checkpoints.phase.clone(), ..Default::default() },
    };
    let params = ParamsAdamW { lr: fit.lr, weight_decay: fit.weight_decay, ..Default::default() };
    let trainable = model.trainable();
    // One gradient buffer per parameter, reused by every hand-written step.
    let mut grads: Vec<Vec<f32>> = vec![Vec::new(); trainable.len()];
    let mut opt = AdamW::new(trainable, params)?;
    let mut best = if state.best_objective.is_some() && checkpoints.best().exists() {
        let current = model::snapshot(model)?;
        model::load(model, &checkpoints.best())?;
        let best = model::snapshot(model)?;
        model::restore(model, &current)?;
        Some(best)
    } else {
        None
    };
    let n = data.train.len();
    let batches = n.div_ceil(fit.batch_size.max(1));
    let val_adv: Vec<usize> = (0..data.validation.len().min(fit.validation_attack_examples)).collect();
    while state.epochs_done < fit.epochs {
        let epoch = state.epochs_done + 1;
        let adversarial = adversary.is_some() && epoch > fit.clean_epochs && fit.adversarial_weight > 0.0;
        let w = if adversarial { fit.adversarial_weight } else { 0.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut progress =
            Progress::new(&format!("{} epoch {epoch}/{}", state.phase, fit.epochs), batches as u64);
        let mut total = 0.0f64;
        for (b, chunk) in order.chunks(fit.batch_size.max(1)).enumerate() {
            let batch = data.train.select(chunk);
            // The attack leaves the weights alone, so its examples can come first.
            let adv = match adversary.as_deref_mut() {
                Some(adv) if adversarial => {
                    let k = ((chunk.len() as f64 * fit.share).ceil() as usize).clamp(1, chunk.len());
                    let part = batch.select(&(0..k).collect::<Vec<_>>());
                    let batch_seed = seed ^ ((epoch as u64) << 32) ^ b as u64;
                    let x_adv = adv.generate(model, &part.x, &part.y, batch_seed)?;
                    Some(Labelled { x: x_adv, y: part.y })
                }
                _ => None,
            };
            let loss = match step_by_hand(model, &mut opt, &mut grads, &batch, adv.as_ref(), w)? {
                Some(loss) => loss,
                None => step_by_autograd(model, &mut opt, &batch, adv.as_ref(), w)?,
            };
            total += loss as f64;
            progress.inc(1);
        }
        let seconds = progress.finish().as_secs_f64();
        let (val_loss, val_acc) = evaluate_loss(model, &data.validation, 1024)?;
        let objective = match adversary.as_deref_mut() {
            Some(adv) if adversarial && !val_adv.is_empty() => {
                let part = data.validation.select(&val_adv);
                let x_adv = adv.generate(model, &part.x, &part.y, seed ^ 0xA11CE)?;
                let adv_part = Labelled { x: x_adv, y: part.y };
                let (adv_loss, _) = evaluate_loss(model, &adv_part, 1024)?;
                (1.0 - w) * val_loss + w * adv_loss
            }
            _ => val_loss,
        };
        let entry = EpochLog {
            epoch,
            train_loss: total / batches.max(1) as f64,
            validation_loss: val_loss,
            validation_accuracy: val_acc,
            objective,
            seconds,
        };
        tracing::info!(
            "{} epoch {epoch}: train loss {:.4}, validation loss {val_loss:.4}, accuracy {:.2}%, objective {objective:.4} ({seconds:.1} s)",
            state.phase,
            entry.train_loss,
            val_acc * 100.0
        );
        state.log.push(entry);
        state.epochs_done = epoch;
        // A new adversarial phase changes the objective's meaning: compare within it only.
        let comparable = !(adversarial && epoch == fit.clean_epochs + 1);
        if state.best_objective.is_none_or(|b| objective < b) || !comparable {
            state.best_objective = Some(objective);
            state.best_epoch = epoch;
            state.bad_epochs = 0;
            best = Some(model::snapshot(model)?);
            save_atomically(model, &checkpoints.best())?;
        } else {
            state.bad_epochs += 1;
        }
        save_atomically(model, &checkpoints.last())?;
        if fit.patience > 0 && state.bad_epochs >= fit.patience {
            tracing::info!(
                "{}: no better validation objective for {} epochs, stopping",
                state.phase,
                fit.patience
            );
            break;
        }
        checkpoints.write_state(&state)?;
    }
    if let Some(best) = &best {
        model::restore(model, best)?;
    }
    state.finished = true;
    checkpoints.write_state(&state)?;
    let _ = std::fs::remove_file(checkpoints.last());
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
        }
    }

    fn model() -> Mlp {
        Mlp::new(&TabularModelConfig::default(), &[0.0, 0.0], &[1.0, 1.0], 2, 3, &Device::Cpu).unwrap()
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

    #[test]
    fn training_learns_and_resumes_after_the_last_finished_epoch() {
        let dir = std::env::temp_dir().join(format!("tempered-train-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
        let data = data();

        // An uninterrupted 4-epoch run, for reference.
        let full_dir = dir.join("full");
        std::fs::create_dir_all(&full_dir).unwrap();
        let full =
            fit(&model(), &data, &fit_cfg(4), None, 9, &Checkpoints { dir: full_dir, phase: "clean".into() })
                .unwrap();
        assert!(full.log.last().unwrap().validation_accuracy > 0.9, "{:?}", full.log);

        // The same run, "killed" after epoch 2: its state says unfinished, its last
        // checkpoint holds epoch 2's weights.
        let m = model();
        let two = fit(&m, &data, &fit_cfg(2), None, 9, &ck).unwrap();
        std::fs::copy(ck.best(), ck.last()).unwrap();
        ck.write_state(&TrainState { finished: false, ..two }).unwrap();

        let resumed = fit(&model(), &data, &fit_cfg(4), None, 9, &ck).unwrap();
        let epochs: Vec<usize> = resumed.log.iter().map(|e| e.epoch).collect();
        assert_eq!(epochs, [1, 2, 3, 4], "epochs 3 and 4 were added to the log of 1 and 2");
        assert!(resumed.finished);
        // Same seed, same shuffles; only AdamW's moments restart, so numbers are close.
        let (a, b) = (resumed.log[3].validation_loss, full.log[3].validation_loss);
        assert!((a - b).abs() < 0.1, "resumed {a} vs uninterrupted {b}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
