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
//! ## `moeva`: black-box evolutionary search (MOEVA-style)
//!
//! A fraudster without gradients: each example evolves a population of candidate rows,
//! asking the model only for probabilities (`predict`). Children mix two parents gene by
//! gene (a continuous or integer column, a binary column, a whole one-hot group), then
//! mutate: Gaussian steps inside the L∞ ball and the column's direction, binary flips, and
//! category switches to categories the pipeline's transitions allow from the original.
//! Every child is projected with the batch's constraints (relations recomputed), pulled
//! inside the cost budget and checked with the host's own judge before it is queried.
//! NSGA-II keeps the candidates best on two objectives: the true class's margin (capped
//! once the model is fooled with a margin of 0.05, where more confidence buys nothing) and
//! the attacker's cost. Each example returns the cheapest row that fooled the model, else
//! the row closest to fooling it. Declares `L∞ ≤ epsilon std`, `cost ≤ budget` (when
//! given) and `≤ population × (generations + 1) queries`; stops asking for an example at
//! the host's `query_budget`.
//! Queries per example: `population × (generations + 1)`, or the host's cap if lower.
//!
//! ```toml
//! [[attack]]
//! id = "moeva"
//! plugin = "tabular"
//! attack = "moeva"
//! classes = [1]
//! [attack.params]
//! epsilon = 1.0         # L∞ radius, standardised units (continuous and integer columns)
//! budget = 6.0          # optional: most cost Σ cost_j·|Δ_j| (a switch pays both columns)
//! population = 20       # candidates per example, 2..=4096
//! generations = 30      # >= 1
//! mutation_rate = 0.3   # chance a continuous/integer column moves in a child
//! mutation_size = 0.5   # step standard deviation, as a fraction of epsilon
//! switch_rate = 0.1     # chance a binary column flips or a category switches
//! crossover_rate = 0.7  # chance a child mixes two parents
//! ```
//!
//! All randomness comes from the batch seed, so a seeded run repeats; `moeva` draws one
//! stream per example, so its result does not depend on how work is scheduled.

mod budget;
mod fraudster;
mod lowprofool;
mod moeva;
mod pgd;
mod shared;

pub use fraudster::{Fraudster, FraudsterParams};
pub use lowprofool::{LowProFool, LowProFoolParams};
pub use moeva::{Moeva, MoevaParams};
pub use pgd::{Norm, Pgd, PgdParams};

tempered_plugin::export_plugin! {
    name: "tabular",
    version: env!("CARGO_PKG_VERSION"),
    modality: tempered_plugin::Modality::Tabular,
    attacks: [Pgd, Fraudster, LowProFool, Moeva],
}
