//! The CPU fast paths: hand-written forward and backward passes that a model uses when its
//! tensors live in CPU memory, and steps aside from otherwise.
//!
//! Every model also has one path made of candle tensor ops with candle's autograd, which is
//! what runs on any other device; the trainer and the oracle reach a fast path only
//! through [`super::Classifier::input_loss_grad`] and [`super::Classifier::train_grads`],
//! which return `None` when it does not apply. The tests of each model hold its fast path
//! to its generic one. `docs/gpu.md` has the table of what runs where.
//!
//! Two smaller fast paths stay with their models because they are caches over the model's
//! own tensors rather than passes of their own: the word-CNN's per-word projections
//! (`word_cnn::forward_fast`) and BERT's GELU custom op (`bert::ops`).

pub mod m5;
pub mod mlp;
