//! One generated transaction, as the generator produces it and the CSV writer prints it.

/// One transaction, with every decimal kept as a scaled integer (what is written is exact).
/// Categorical fields are indices into the name tables ([`CHANNELS`](crate::CHANNELS),
/// [`COUNTRIES`](crate::COUNTRIES), ...; `category` into the order of `merchant_category` in
/// `data/transactions/README.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub id: u64,
    /// Seconds since 2024-01-01T00:00:00.
    pub ts: i64,
    pub customer: u32,
    pub category: u8,
    pub channel: u8,
    pub country: u8,
    pub device: Option<u8>,
    pub card_type: u8,
    pub brand: u8,
    pub entry: u8,
    pub segment: u8,
    pub tier: u8,
    pub currency: u8,
    pub international: bool,
    pub card_present: bool,
    pub three_ds: bool,
    pub new_device: bool,
    pub amount_cents: i64,
    pub balance_before_cents: i64,
    pub credit_limit_cents: i64,
    pub utilization_milli: i64,
    pub customer_age: u8,
    pub account_age_days: u32,
    pub avg_30d_cents: i64,
    pub max_30d_cents: i64,
    pub ratio_milli: i64,
    pub n_tx_24h: u32,
    pub n_tx_7d: u32,
    pub n_merchants_24h: u32,
    pub n_declined_24h: u32,
    pub pin_failures_24h: u32,
    pub n_countries_7d: u32,
    pub minutes_since_last: Option<u32>,
    /// Tenths of a km.
    pub distance_dkm: Option<i64>,
    /// Units of 1e-5.
    pub merchant_rate_e5: i64,
    pub merchant_age_days: u32,
    pub is_fraud: bool,
    /// The latent score without the intercept (not written; for calibration and tests).
    pub score: f64,
}

impl Row {
    pub fn hour(&self) -> i64 {
        (self.ts / 3600) % 24
    }

    pub fn day_of_week(&self) -> i64 {
        (self.ts / 86_400) % 7
    }

    pub fn balance_after_cents(&self) -> i64 {
        self.balance_before_cents - self.amount_cents
    }
}

/// Money is drawn as `f64` EUR and kept as cents from then on, so that sums and differences
/// (`balance_after`) are exact.
pub(crate) fn cents(eur: f64) -> i64 {
    (eur * 100.0).round() as i64
}
