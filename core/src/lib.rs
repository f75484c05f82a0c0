//! # tempered-core
//!
//! The engine behind `tempered run`: a declarative pipeline (train → attack →
//! adversarially fine-tune → attack again → report) over candle models and attack plugins
//! loaded at run time through the `tempered-plugin` C ABI.
//!
//! Data flows one way: [`pipeline`] → [`data`] → [`model`] ⇄ attack (through
//! [`plugin_host`]'s oracle) → [`train`] → [`report`].

pub mod bench;
pub mod data;
pub mod defence;
pub mod engine;
pub mod evaluate;
pub mod modality;
pub mod pipeline;
pub mod plugin_host;
pub mod report;

// The layer below, under the paths the engine has always used: models, the trainer, the
// error type and the write discipline live in `tempered-nn`, which cannot reach up here.
pub use tempered_nn::{Error, Result};
pub use tempered_nn::{error, files, hash, interrupt, model, progress, tensor, train};
