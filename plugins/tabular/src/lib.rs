//! # tempered-tabular
//!
//! The first-party tabular attacks of Tempered, loaded by the engine as the plugin
//! `tabular`. Every attack works on raw rows, asks the model only through the host's oracle,
//! and returns rows that satisfy the schema (immutable columns untouched, bounds, integers,
//! binaries, one-hot groups) and the attack's own budget, exactly.
//!
//! ## `pgd`: constrained projected gradient descent
//!
//! Maximises the true label's cross-entropy inside an L∞ or L2 ball measured in
//! standardised units (raw change / the column's `scale`). Only mutable continuous and
//! integer columns move; integers are rounded inside the ball. With `discrete = true`,
//! binary columns and one-hot groups may also flip once each, outside the norm.
//! Queries per example and restart: `steps`, plus 1 when `restarts > 1`, or plus 2 with
//! `discrete` (a later restart only runs on examples still classified correctly).
//!
//! ```toml
//! [[attack]]
//! id = "pgd-linf"
//! plugin = "tabular"
//! attack = "pgd"
//! [attack.params]
//! norm = "linf"        # or "l2"
//! epsilon = 0.5        # required, standardised units
//! steps = 10
//! step_size = 0.125    # default 2.5 * epsilon / steps
//! restarts = 1
//! random_start = true
//! discrete = false
//! ```
//!
//! ## `fraudster`: cost-budgeted evasion
//!
//! For rows labelled `fraud_class`, the cheapest change it can find (total
//! `sum_j cost_j * |Δraw_j|` at most `budget`) that makes the model predict `target_class`,
//! by greedy moves with the best expected loss decrease per unit cost. Other rows come back
//! unchanged and cost no queries. A row that cannot be flipped comes back as far as the
//! search got, still within the budget.
//! Queries per fraud row: one per move plus one, plus up to 6 to shorten the last move
//! (twice per move for a model with more than two classes).
//!
//! ```toml
//! [[attack]]
//! id = "fraudster"
//! plugin = "tabular"
//! attack = "fraudster"
//! [attack.params]
//! budget = 10.0        # required, in the schema's cost units
//! fraud_class = 1
//! target_class = 0
//! step = 0.25          # standardised units per move
//! max_iters = 100
//! ```
//!
//! ## `lowprofool`: LowProFool-style weighted perturbation
//!
//! Gradient descent on `CE(target_class) + lambda * ||cost ⊙ δ_std||²` (the column's cost
//! stands in for the paper's feature importance, which needs data statistics a plugin does
//! not see), clipped to an L∞ ball of `epsilon` standardised units. Returns the last iterate
//! that the model assigns to the target class, else the final one.
//! Queries per fraud row: `steps + 1` (twice that for more than two classes); 1 for a row the
//! model already assigns to the target.
//!
//! ```toml
//! [[attack]]
//! id = "lowprofool"
//! plugin = "tabular"
//! attack = "lowprofool"
//! [attack.params]
//! lambda = 1.0
//! steps = 50
//! step_size = 0.05
//! epsilon = 1.0
//! fraud_class = 1
//! target_class = 0
//! ```
//!
//! All randomness comes from the batch seed, so a seeded run repeats.

mod budget;
mod fraudster;
mod lowprofool;
mod pgd;
mod shared;

pub use fraudster::{Fraudster, FraudsterParams};
pub use lowprofool::{LowProFool, LowProFoolParams};
pub use pgd::{Norm, Pgd, PgdParams};

tempered_plugin::export_plugin! {
    name: "tabular",
    version: env!("CARGO_PKG_VERSION"),
    modality: tempered_plugin::Modality::Tabular,
    attacks: [Pgd, Fraudster, LowProFool],
}
