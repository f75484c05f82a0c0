//! # tempered-nn
//!
//! The neural half of Tempered: candle classifiers behind one [`model::Classifier`] trait,
//! the one trainer ([`train::fit`]: clean, PGD, FGSM, attack-in-the-loop, TRADES, with an
//! atomic commit per epoch), checkpoints, and the modality-neutral [`examples`] they consume.
//!
//! It knows no file format, pipeline or plugin: `tempered-core` reads the data, runs the
//! attacks and drives this crate. That keeps the layering a compile-time fact, and a CUDA
//! build of the models (`--features cuda`) free of polars and plotters.

pub mod error;
pub mod examples;
pub mod files;
pub mod hash;
pub mod interrupt;
pub mod model;
pub mod progress;
pub mod rows;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
