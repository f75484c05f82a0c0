//! # tempered-plugin
//!
//! All a Tempered attack-plugin author needs. Implement [`Attack`] for each attack, list
//! them in [`export_plugin!`], build the crate as a `cdylib`, and the engine loads it:
//!
//! ```ignore
//! use serde::Deserialize;
//! use tempered_plugin::{Attack, Batch, Oracle, Perturbed, Result};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Params { epsilon: f32 }
//!
//! struct Nudge { epsilon: f32 }
//!
//! impl Attack for Nudge {
//!     type Params = Params;
//!     const NAME: &'static str = "nudge";
//!     const DESCRIPTION: &'static str = "adds epsilon to every mutable feature";
//!     fn new(p: Params) -> Result<Self> { Ok(Self { epsilon: p.epsilon }) }
//!     fn perturb(&mut self, batch: &Batch<'_>, _oracle: &Oracle<'_>) -> Result<Perturbed> {
//!         Ok(Perturbed::Dense(batch.data.iter().map(|v| v + self.epsilon).collect()))
//!     }
//! }
//!
//! tempered_plugin::export_plugin! {
//!     name: "nudge", version: env!("CARGO_PKG_VERSION"),
//!     modality: tempered_plugin::Modality::Tabular, attacks: [Nudge],
//! }
//! ```
//!
//! The C ABI underneath lives in [`abi`]; nothing in a plugin needs to touch it.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod abi;
#[doc(hidden)]
pub mod export;
mod paths;
mod rng;
mod safe;
pub mod testing;
mod threat;

pub use abi::{ABI_VERSION, FeatureKind, Modality};
pub use paths::PipelinePath;
pub use rng::Rng;
pub use safe::{Attack, Batch, Feature, Input, Oracle, Perturbed, PluginError, Result, project_row};
pub use threat::{Budget, ThreatModel};

/// Re-exported so `export_plugin!` and plugins agree on one version.
#[doc(hidden)]
pub use serde_json;
