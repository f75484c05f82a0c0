//! What a run produced: `metrics.json` for scripts ([`Metrics`]), `report.md` for people
//! ([`render`]), a terminal [`summary`], and PNG [`plots`]. [`scores`] holds the
//! binary-classification scoring (PR-AUC, recall at a false-positive budget) they report.

mod checks;
pub mod defences;
mod format;
pub mod markdown;
pub mod metrics;
pub mod plots;
pub mod scores;
mod summary;
pub mod tradeoff;

pub use checks::{MIN_DETECTED, failed};
pub use markdown::{Section, render};
pub use metrics::{
    AtThreshold, AttackMetrics, BudgetCheck, Clean, CleanMetrics, HardeningStats, Metrics, Modality,
    OperatingPointMetrics, Phase, Skipped, SweepPoint,
};
pub use summary::summary;
