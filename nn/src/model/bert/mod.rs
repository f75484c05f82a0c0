//! BERT-family models read from a local Hugging Face folder (`config.json`,
//! `tokenizer.json`, `model.safetensors`): a fine-tunable text classifier and a
//! mean-pooling sentence encoder (all-MiniLM-L6-v2 is a sentence-transformer).
//!
//! The forward pass is written here rather than taken from candle-transformers: candle's
//! fused `LayerNorm` and `softmax_last_dim` have no backward, so a stock `BertModel`
//! silently trains its head only. Wherever a gradient may flow, LayerNorm is made of mean /
//! sub / sqr / sqrt / div and softmax of exp / sum / div; where none can (inference, frozen
//! lower layers) the fused kernels run, which is faster. GELU (erf) is a CPU custom op with
//! a one-pass backward. The tests check that every trainable tensor receives a gradient
//! and moves, that frozen ones do not, and that the hidden states match
//! candle-transformers' `BertModel` on the same folder.
//!
//! # `[model]` of a text pipeline with `kind = "bert"`
//!
//! ```toml
//! bert = { path = "models/all-MiniLM-L6-v2", train_layers = 2, max_tokens = 64 }
//! ```
//!
//! - `path`: the HF folder, relative to the pipeline's base dir (`just models` installs
//!   all-MiniLM-L6-v2 into `models/`; nothing is downloaded at run time).
//! - `train_layers`: absent: fine-tune everything; `n`: only the top `n` encoder layers and
//!   the head (embeddings and the lower layers frozen, which also keeps backward out of
//!   them: much faster on CPU).
//! - `max_tokens` (default 64): sequences are truncated to this many tokens, `[CLS]` and
//!   `[SEP]` included, and a batch is padded to its longest sequence. The tokenizer.json's
//!   own padding and truncation are replaced.
//! - `pooling` (default `"mean"`): the head reads the mask-weighted mean of the last hidden
//!   states (how sentence-transformers pool), or `"cls"`: the `[CLS]` state through the
//!   checkpoint's pooler (dense + tanh) when it has one, as `BertForSequenceClassification`.
//!
//! The head is a seeded linear layer (`classifier.weight`, `classifier.bias`). Dropout is
//! off: runs stay deterministic for a seed. Only `model_type = "bert"` checkpoints are
//! read; weight names may carry a `bert.` prefix or none.
//!
//! # Layout
//!
//! - `config`: the `[model]` section ([`BertConfig`]) and the folder's `config.json`;
//! - `tokenizer`: the folder's `tokenizer.json`, with padding and truncation replaced;
//! - `weights`: `model.safetensors`, handed out tensor by tensor (a hand-made VarBuilder);
//! - `ops`: activations, LayerNorm and softmax with a backward wherever one is needed;
//! - `layers`: trainable-or-frozen parameters, linear and norm layers, one encoder layer;
//! - `network`: embeddings and the stack of layers, mean pooling;
//! - `classifier` and `encoder`: the two models built on it ([`BertClassifier`],
//!   [`BertSentenceEncoder`]);
//! - `fixture`: a tiny folder in the real format, for tests ([`write_tiny_model`]).

mod classifier;
mod config;
mod encoder;
mod fixture;
mod layers;
mod network;
mod ops;
#[cfg(test)]
mod tests;
mod tokenizer;
mod weights;

use std::path::Path;

use candle_core::Device;

pub use classifier::BertClassifier;
pub use config::{BertConfig, Pooling};
pub use encoder::BertSentenceEncoder;
pub use fixture::write_tiny_model;

use super::{Classifier, SentenceEncoder};
use crate::Result;

/// Sentences per forward pass in `word_saliency` and `similarity`.
const CHUNK: usize = 64;

/// A BERT classifier: encoder + pooling + a seeded linear head.
pub fn load_classifier(
    cfg: &BertConfig,
    base_dir: &Path,
    n_classes: usize,
    seed: u64,
    device: &Device,
) -> Result<Box<dyn Classifier>> {
    Ok(Box::new(BertClassifier::load(cfg, base_dir, n_classes, seed, device)?))
}

/// A frozen mean-pooling sentence encoder; `similarity` is the cosine of the embeddings.
pub fn load_encoder(dir: &Path, device: &Device) -> Result<Box<dyn SentenceEncoder>> {
    Ok(Box::new(BertSentenceEncoder::load(dir, device)?))
}
