//! The merchant categories: one table row each, read by the row generator for the mix and
//! amounts and by the CSV writer for the names.

use crate::random::cumulative;

/// One merchant category: how common it is, when, how much is spent, how it is paid, and how
/// attractive it is to a fraudster.
pub(crate) struct Category {
    pub(crate) name: &'static str,
    pub(crate) weight: f64,
    pub(crate) night: f64,
    pub(crate) evening: f64,
    /// Median amount in EUR for an average customer, and the lognormal spread.
    pub(crate) median: f64,
    pub(crate) sigma: f64,
    pub(crate) online: f64,
    pub(crate) phone: f64,
    /// Typical 30-day fraud rate of its merchants (what a merchant-risk feed would report).
    pub(crate) merchant_rate: f64,
    /// Weight multiplier on a compromised card: fraudsters go for resaleable goods.
    pub(crate) compromised: f64,
}

#[expect(clippy::too_many_arguments, reason = "one row of the category table, read positionally")]
const fn cat(
    name: &'static str,
    weight: f64,
    night: f64,
    evening: f64,
    median: f64,
    sigma: f64,
    online: f64,
    phone: f64,
    merchant_rate: f64,
    compromised: f64,
) -> Category {
    Category { name, weight, night, evening, median, sigma, online, phone, merchant_rate, compromised }
}

/// name, weight, night (0-6 h) and evening (18-24 h) weight multipliers, median EUR, sigma,
/// online share, phone share, merchant fraud rate, weight multiplier when compromised.
/// Medians and shares are of the order public card-spending statistics show; they only need
/// to be plausible, not exact.
pub(crate) const CATEGORIES: [Category; 16] = [
    cat("grocery", 22.0, 0.15, 0.8, 32.0, 0.6, 0.05, 0.0, 0.0008, 0.3),
    cat("restaurants", 12.0, 0.6, 1.8, 26.0, 0.6, 0.08, 0.0, 0.0010, 0.3),
    cat("fuel", 8.0, 0.5, 1.0, 55.0, 0.35, 0.0, 0.0, 0.0015, 0.6),
    cat("transport", 6.0, 0.7, 1.0, 12.0, 0.8, 0.35, 0.0, 0.0015, 0.6),
    cat("pharmacy", 4.0, 0.3, 0.8, 18.0, 0.6, 0.15, 0.0, 0.0008, 0.3),
    cat("clothing", 6.0, 0.3, 1.0, 55.0, 0.7, 0.45, 0.0, 0.0025, 1.0),
    cat("electronics", 3.0, 0.6, 1.0, 160.0, 0.9, 0.6, 0.02, 0.0060, 3.0),
    cat("home_garden", 4.0, 0.3, 0.8, 65.0, 0.9, 0.35, 0.0, 0.0015, 0.5),
    cat("entertainment", 5.0, 1.3, 1.8, 24.0, 0.7, 0.5, 0.0, 0.0020, 1.0),
    cat("digital_goods", 6.0, 2.5, 1.4, 14.0, 1.0, 0.96, 0.0, 0.0080, 3.5),
    cat("travel", 2.5, 0.8, 1.0, 320.0, 0.9, 0.7, 0.08, 0.0040, 2.0),
    cat("hotels", 2.0, 0.7, 1.0, 170.0, 0.7, 0.55, 0.1, 0.0030, 1.2),
    cat("jewelry", 0.6, 0.2, 1.0, 380.0, 1.0, 0.3, 0.03, 0.0070, 3.0),
    cat("gambling", 1.2, 3.0, 1.5, 45.0, 1.1, 0.9, 0.0, 0.0090, 2.5),
    cat("cash_withdrawal", 6.0, 0.6, 1.0, 110.0, 0.6, 0.0, 0.0, 0.0020, 1.5),
    cat("bills", 4.0, 0.4, 1.0, 48.0, 0.5, 0.8, 0.1, 0.0005, 0.2),
];

/// Cumulative category weights, [compromised][night, day, evening], for
/// [`Source::pick`](crate::random::Source::pick).
pub(crate) fn weights_by_time() -> [[Vec<f64>; 3]; 2] {
    [false, true].map(|compromised| {
        [0, 1, 2].map(|group| {
            let weights: Vec<f64> = CATEGORIES
                .iter()
                .map(|c| {
                    let time = [c.night, 1.0, c.evening][group];
                    c.weight * time * if compromised { c.compromised } else { 1.0 }
                })
                .collect();
            cumulative(&weights)
        })
    })
}

pub(crate) const C_DIGITAL: u8 = 9;
pub(crate) const C_TRAVEL: u8 = 10;
pub(crate) const C_HOTELS: u8 = 11;
pub(crate) const C_JEWELRY: u8 = 12;
pub(crate) const C_GAMBLING: u8 = 13;
pub(crate) const C_CASH: u8 = 14;
pub(crate) const C_ELECTRONICS: u8 = 6;
