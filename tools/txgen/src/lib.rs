//! Synthetic card-transaction tables with a fraud label, for hardening fraud models on data
//! that looks like an issuer's transaction log (issue 12).
//!
//! It exists because no real fraud table with named categorical columns and a licence that
//! lets us ship it was found; the ULB data in `data/creditcard-ulb` is all PCA components.
//! `data/transactions/README.md` documents every column and the fraud mechanism.
//!
//! Design choices, and why:
//! - Rows are generated one at a time and written as they come, so ten million rows take the
//!   memory of one: the only tables kept are the customers (capped at 200,000) and the hour
//!   weights of the time span.
//! - The label comes from a latent logit built from *interactions* (night x online x digital
//!   goods, foreign x manual entry, new account x large amount, ...) plus an unobserved
//!   "compromised card" state and Gaussian noise. No single column decides it, and no model
//!   can separate the classes perfectly, which is what makes attacks and hardening on this
//!   table meaningful.
//! - A compromised card also *moves the raw features* the way a fraudster would (larger
//!   amounts, card-not-present, manual entry, foreign merchants, bursts of activity), so
//!   directional constraints downstream (amount only up, time only forward) have a real
//!   meaning.
//! - The intercept of the logit is solved on a pilot run of the same generator, so
//!   `--fraud-rate` is hit without changing any feature: the same seed at two fraud rates gives
//!   the same rows with different labels.

mod category;
mod clock;
mod config;
mod csv;
mod customer;
mod fraud;
mod generator;
mod random;
mod row;
mod schema;
mod text;

pub use config::Config;
pub use csv::{Summary, format_row, write_csv};
pub use fraud::{PILOT_ROWS, rows};
pub use generator::Rows;
pub use row::Row;
pub use schema::{
    BRANDS, CARD_TYPES, CHANNELS, COLUMNS, COUNTRIES, CURRENCIES, DEVICES, ENTRY_MODES, MAYBE_MISSING,
    SEGMENTS, TIERS,
};
