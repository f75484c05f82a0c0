//! # tempered-plugin
//!
//! All a Tempered attack-plugin author needs. Implement [`Attack`] for each attack, list
//! them in [`export_plugin!`], build the crate as a `cdylib`, and the engine loads it:
//!
//! ```ignore
//! use serde::Deserialize;
//! use tempered_plugin::{Attack, Batch, Budget, Oracle, Perturbed, Result, ThreatModel};
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
//!     const DESCRIPTION: &'static str = "moves every column by epsilon standard deviations";
//!     fn new(p: Params) -> Result<Self> { Ok(Self { epsilon: p.epsilon }) }
//!     // What the engine checks on every example: here, each column moves by at most
//!     // `epsilon` standard deviations.
//!     fn threat_model(&self) -> ThreatModel {
//!         ThreatModel::new([Budget::LinfStd { epsilon: f64::from(self.epsilon) }])
//!     }
//!     fn perturb(&mut self, batch: &Batch<'_>, _oracle: &Oracle<'_>) -> Result<Perturbed> {
//!         let batch = batch.table()?; // the rows, columns and constraints of a table
//!         let mut out = batch.data.to_vec();
//!         for (i, row) in out.chunks_mut(batch.width).enumerate() {
//!             for (v, f) in row.iter_mut().zip(&batch.features) {
//!                 *v += self.epsilon * f.scale;
//!             }
//!             tempered_plugin::project_row(&batch.features, batch.row(i), row);
//!         }
//!         Ok(Perturbed::Dense(out))
//!     }
//! }
//!
//! tempered_plugin::export_plugin! {
//!     name: "nudge", version: env!("CARGO_PKG_VERSION"),
//!     modality: tempered_plugin::Modality::Tabular, attacks: [Nudge],
//! }
//! ```
//!
//! The C ABI underneath lives in [`abi`]; nothing in a plugin needs to touch it. Hosts (the
//! engine, and the test harness in [`testing`]) answer the oracle through [`host`].

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod abi;
mod column;
mod constraints;
mod error;
#[doc(hidden)]
pub mod export;
pub mod host;
pub mod judge;
pub mod ledger;
pub mod lexicon;
mod paths;
mod rng;
mod safe;
pub mod testing;
mod threat;
pub mod words;

pub use abi::{ABI_VERSION, FeatureKind, Modality};
pub use column::{Column, project_row};
pub use constraints::{Direction, Relation, TabularConstraints, Transitions};
pub use paths::PipelinePath;
pub use rng::Rng;
pub use safe::{
    Attack, AudioBatch, Batch, Input, Oracle, Perturbed, PluginError, Result, TableBatch, TextBatch,
};
pub use threat::{Budget, SynonymSource, ThreatModel};

/// Re-exported so `export_plugin!` and plugins agree on one version.
#[doc(hidden)]
pub use serde_json;
