//! What a run produced: `metrics.json` for scripts ([`Metrics`]), `report.md` for people
//! ([`render`]), a terminal [`summary`], and PNG [`plots`]. [`scores`] holds the
//! binary-classification scoring (PR-AUC, recall at a false-positive budget) they report.

mod checks;
mod format;
pub mod markdown;
pub mod metrics;
pub mod plots;
pub mod scores;
mod summary;

pub use checks::failed;
pub use markdown::{Section, render};
pub use metrics::{
    AttackMetrics, BudgetCheck, Clean, CleanMetrics, HardeningStats, Metrics, Modality, Phase, Skipped,
    SweepPoint,
};
pub use summary::summary;
