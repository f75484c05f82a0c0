//! Models behind one [`Classifier`] trait, so the trainer, the oracle and the evaluator
//! never name a specific architecture. Every model builds its vars through one
//! [`params::ParamBuilder`] (path, seeded values, trainability) and is saved as safetensors.

pub mod audio;
pub mod bert;
pub mod checkpoint;
pub mod cpu;
pub mod mlp;
pub mod params;
pub mod synonym_encoding;
pub mod text;
pub mod word_cnn;

use std::path::Path;

use candle_core::{D, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::examples::ExamplesRef;
use crate::{Error, Result};

pub use mlp::{Mlp, TabularModelConfig, TabularModelKind};

/// How a forward pass is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Dropout and friends on.
    pub train: bool,
    /// Whether gradients should reach the weights. Attacks only need the input gradient;
    /// detaching the weights lets backward skip every parameter.
    pub param_grads: bool,
}

impl Mode {
    pub const TRAIN: Mode = Mode { train: true, param_grads: true };
    pub const EVAL: Mode = Mode { train: false, param_grads: false };
}

/// Dense rows and their labels, entering a training loss as `weight` times their mean
/// cross-entropy.
#[derive(Debug, Clone, Copy)]
pub struct TrainPart<'a> {
    pub x: &'a [f32],
    pub labels: &'a [u32],
    pub weight: f32,
}

pub trait Classifier: Send + Sync {
    /// The architecture, as errors from inside its passes name it ("word-CNN").
    fn name(&self) -> &str {
        "model"
    }
    fn n_classes(&self) -> usize;
    fn device(&self) -> &Device;
    /// Examples → the model's input tensor.
    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor>;
    /// Logits, `[n, n_classes]`.
    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor>;
    /// Every tensor of the model (trainable or not), as saved in a checkpoint.
    fn varmap(&self) -> &VarMap;
    /// The tensors the optimiser updates.
    fn trainable(&self) -> Vec<Var>;
    /// Whether `encode` is the identity on dense examples, so the input gradient is the
    /// gradient with respect to the examples themselves.
    fn dense_input(&self) -> bool {
        true
    }
    /// A hand-written input gradient for the oracle's dense `loss_grad`, when the model
    /// has one: per-row cross-entropy of `labels` into `loss` and ∂loss/∂x into `grad`.
    /// `None`: the oracle uses autograd.
    fn input_loss_grad(
        &self,
        _x: &[f32],
        _labels: &[u32],
        _loss: &mut [f32],
        _grad: &mut [f32],
    ) -> Option<Result<()>> {
        None
    }
    /// A hand-written training step, when the model has one (dense inputs, no dropout or
    /// other randomness in training mode): the loss `Σ_p weight_p · mean CE(part_p)` and
    /// its gradient with respect to each tensor of [`Classifier::trainable`], in that order,
    /// written into `grads` (one buffer per tensor, resized to its element count).
    /// `None`: the trainer uses autograd.
    fn train_grads(&self, _parts: &[TrainPart<'_>], _grads: &mut [Vec<f32>]) -> Option<Result<f32>> {
        None
    }
    /// Text models: per-word saliency of the loss against `labels` (e.g. the norm of the
    /// gradient at each word's embedding), `texts.len() × max words` values, where words
    /// are whitespace-separated and shorter rows are padded with 0.
    fn word_saliency(&self, _texts: &[&str], _labels: &[u32]) -> Result<Vec<f32>> {
        Err(Error::invalid("this model offers no word saliency"))
    }
    /// Text models: whether each word reaches the model as itself rather than as its
    /// unknown token, so an attack does not spend queries on edits the model cannot see.
    fn known_words(&self, _words: &[&str]) -> Result<Vec<bool>> {
        Err(Error::invalid("this model has no word vocabulary"))
    }
    /// Text models with a word vocabulary: every word the model reads as itself (special
    /// tokens left out), most frequent in the training split first, ties in byte order. What
    /// a spelling defence corrects misspellings towards.
    fn vocabulary(&self) -> Result<Vec<String>> {
        Err(Error::invalid("this model has no word vocabulary"))
    }
    /// The state of a random generator the model draws from in training mode and carries
    /// from one batch to the next (dropout masks), as bytes: a checkpoint keeps it so that a
    /// resumed run draws the masks the uninterrupted run would have. `None`: no such state.
    fn rng_state(&self) -> Option<Vec<u8>> {
        None
    }
    /// Puts back what [`Classifier::rng_state`] returned.
    fn set_rng_state(&self, _state: &[u8]) -> Result<()> {
        Err(Error::invalid("this model keeps no random state"))
    }
}

/// Per-row cross-entropy and its gradient with respect to the (dense) input, through
/// autograd. The weights are detached, so backward visits the input path only.
pub fn input_loss_grad_autograd(
    model: &dyn Classifier,
    x: &ExamplesRef<'_>,
    labels: &[u32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let input = Var::from_tensor(&model.encode(x)?)?;
    let logits = model.forward(input.as_tensor(), Mode::EVAL)?;
    let y = Tensor::from_slice(labels, labels.len(), model.device())?;
    let per_row =
        candle_nn::ops::log_softmax(&logits, D::Minus1)?.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let grads = per_row.sum_all()?.backward()?;
    let g = grads.get(input.as_tensor()).ok_or_else(|| Error::Internal("no gradient reached the input"))?;
    Ok((per_row.to_vec1::<f32>()?, g.flatten_all()?.to_vec1::<f32>()?))
}

/// A sentence encoder offered to text attacks through the oracle's `similarity`.
pub trait SentenceEncoder: Send + Sync {
    /// Cosine similarity of the embeddings of `a[i]` and `b[i]`.
    fn similarity(&self, a: &[&str], b: &[&str]) -> Result<Vec<f32>>;
}

/// Saves every tensor of `model` to `path`.
pub fn save(model: &dyn Classifier, path: &Path) -> Result<()> {
    checkpoint::write(path, &tensors(model), Default::default())
}

/// Loads the tensors of a checkpoint written by [`save`] (or a trainer commit) into
/// `model` (same architecture); every tensor is checked first, so a damaged file changes
/// nothing.
pub fn load(model: &dyn Classifier, path: &Path) -> Result<()> {
    load_from(model, &checkpoint::Reader::open(path)?, "")
}

/// Loads the tensors named `prefix` + the model's names from `file` into `model`.
pub fn load_from(model: &dyn Classifier, file: &checkpoint::Reader, prefix: &str) -> Result<()> {
    let read = read_tensors(model, file, prefix)?;
    restore(model, &read)
}

/// The model's tensors as `file` holds them under `prefix` + their names, checked
/// (present, same dtype and shape, finite) but not loaded.
pub fn read_tensors(
    model: &dyn Classifier,
    file: &checkpoint::Reader,
    prefix: &str,
) -> Result<Vec<(String, Tensor)>> {
    tensors(model)
        .into_iter()
        .map(|(name, t)| {
            let read = file.tensor(&format!("{prefix}{name}"), &checkpoint::Expected::of(&t), t.device())?;
            Ok((name, read))
        })
        .collect()
}

/// Every tensor of the model by name (shared, not copied), in name order.
pub fn tensors(model: &dyn Classifier) -> Vec<(String, Tensor)> {
    let data = model.varmap().data().lock().expect("varmap lock");
    let mut out: Vec<(String, Tensor)> =
        data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A snapshot of every tensor's values, to restore the best epoch without touching disk.
pub fn snapshot(model: &dyn Classifier) -> Result<Vec<(String, Tensor)>> {
    let data = model.varmap().data().lock().expect("varmap lock");
    data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?))).collect()
}

pub fn restore(model: &dyn Classifier, snap: &[(String, Tensor)]) -> Result<()> {
    let data = model.varmap().data().lock().expect("varmap lock");
    for (k, t) in snap {
        if let Some(v) = data.get(k) {
            v.set(t)?;
        }
    }
    Ok(())
}

/// Parameter count, for logs and reports.
pub fn n_params(model: &dyn Classifier) -> usize {
    model.trainable().iter().map(|v| v.elem_count()).sum()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub params: usize,
}
