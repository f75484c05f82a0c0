//! The fraud label: the latent score and the intercept that calibrates it to `--fraud-rate`.

use crate::category::{C_DIGITAL, C_ELECTRONICS, C_GAMBLING, C_HOTELS, C_JEWELRY, C_TRAVEL};
use crate::config::Config;
use crate::generator::Rows;
use crate::random::Source;
use crate::schema::{ATM, E_MANUAL, ONLINE, PREPAID};

/// Rows of the calibration run. Enough that the realised rate on a large table lands within a
/// couple of percent (relative) of the target; tables this size or smaller are calibrated on
/// exactly their own rows.
pub const PILOT_ROWS: u64 = 200_000;

/// What the latent score looks at: a row's features before they are rounded for printing, and
/// the unobserved compromise.
pub(crate) struct Signals {
    pub(crate) compromised: bool,
    pub(crate) night: bool,
    pub(crate) card_present: bool,
    pub(crate) foreign: bool,
    pub(crate) channel: u8,
    pub(crate) category: u8,
    pub(crate) entry: u8,
    /// EUR.
    pub(crate) amount: f64,
    pub(crate) ratio: f64,
    pub(crate) account_age_days: u32,
    pub(crate) n_tx_24h: u32,
    pub(crate) minutes: f64,
    pub(crate) three_ds: bool,
    pub(crate) new_device: bool,
    pub(crate) n_declined_24h: u32,
    pub(crate) pin_failures_24h: u32,
    pub(crate) distance_km: f64,
    pub(crate) card_type: u8,
    pub(crate) segment: u8,
}

/// The latent fraud score, without the intercept.
///
/// Interaction terms only, each needing two or more columns to see, plus the unobserved
/// compromise and noise.
pub(crate) fn latent_score(s: &Signals, rng: &mut Source) -> f64 {
    let digital = s.category == C_DIGITAL || s.category == C_GAMBLING;
    let high_value = matches!(s.category, C_ELECTRONICS | C_JEWELRY | C_TRAVEL);
    let cnp = !s.card_present;
    let term = |on: bool, w: f64| if on { w } else { 0.0 };
    term(s.compromised, 2.6)
        + term(s.night && cnp && digital, 2.2)
        + term(s.ratio > 3.0 && cnp, 1.6)
        + term(high_value && s.ratio > 4.0, 1.4)
        + term(s.foreign && s.entry == E_MANUAL, 2.0)
        + term(s.account_age_days < 60 && s.ratio > 2.0, 1.6)
        + term(s.n_tx_24h >= 6 && s.minutes < 15.0, 1.4)
        + term(!s.three_ds && s.channel == ONLINE && s.amount > 150.0, 1.0)
        + term(s.card_type == PREPAID && digital, 1.2)
        + term(s.new_device && s.ratio > 1.5, 1.0)
        + term(s.n_declined_24h >= 2 && cnp, 0.9)
        + term(s.pin_failures_24h >= 1 && s.channel == ATM, 1.4)
        + term(s.distance_km > 100.0 && s.card_present && !s.foreign, 1.0)
        + term(s.segment >= 3 && (s.category == C_TRAVEL || s.category == C_HOTELS), -0.8)
        + 0.8 * rng.normal()
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Solves the intercept on a pilot run, then returns the rows.
///
/// The pilot is the same generator with the same seed, over the same days and customers but
/// at most [`PILOT_ROWS`] rows; features never depend on the intercept, so a table of at most
/// that size is calibrated on its own rows and a larger one on a sample with the same
/// distribution. Bisection on the mean probability is monotone and needs no tuning.
pub fn rows(cfg: &Config) -> Result<Rows, String> {
    cfg.validate()?;
    let pilot: Vec<f64> = Rows::new(cfg, cfg.rows.min(PILOT_ROWS), 0.0).map(|r| r.score).collect();
    let mean_rate = |b: f64| pilot.iter().map(|s| sigmoid(b + s)).sum::<f64>() / pilot.len() as f64;
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if mean_rate(mid) < cfg.fraud_rate {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Rows::new(cfg, cfg.rows, 0.5 * (lo + hi)))
}
