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
pub mod error;
pub mod evaluate;
pub mod files;
pub mod hash;
pub mod interrupt;
pub mod modality;
pub mod model;
pub mod pipeline;
pub mod plugin_host;
pub mod progress;
pub mod report;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
