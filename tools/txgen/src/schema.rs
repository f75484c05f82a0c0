//! The table's columns, and the names behind each categorical index a [`Row`](crate::Row)
//! carries. Index-aligned tables (`COUNTRY_KM`, `COUNTRY_CURRENCY`, `SEGMENT_SPEND`) sit next
//! to the names they follow so that reordering one shows up beside the other.

/// The header, in file order.
pub const COLUMNS: [&str; 40] = [
    "transaction_id",
    "timestamp",
    "customer_id",
    "merchant_category",
    "channel",
    "country",
    "device_type",
    "card_type",
    "card_brand",
    "entry_mode",
    "customer_segment",
    "merchant_risk_tier",
    "currency",
    "is_international",
    "card_present",
    "3ds_authenticated",
    "new_device",
    "amount",
    "balance_before",
    "balance_after",
    "credit_limit",
    "utilization",
    "customer_age",
    "account_age_days",
    "avg_amount_30d",
    "max_amount_30d",
    "amount_to_avg_ratio",
    "n_tx_last_24h",
    "n_tx_last_7d",
    "n_distinct_merchants_24h",
    "n_declined_24h",
    "pin_failures_24h",
    "n_countries_7d",
    "minutes_since_last_tx",
    "distance_from_home_km",
    "merchant_fraud_rate_30d",
    "merchant_age_days",
    "hour_of_day",
    "day_of_week",
    "is_fraud",
];

/// Columns left empty in a `missing` fraction of rows, each independently.
pub const MAYBE_MISSING: [&str; 3] = ["device_type", "minutes_since_last_tx", "distance_from_home_km"];

pub const SEGMENTS: [&str; 5] = ["student", "mass", "affluent", "premium", "business"];
pub(crate) const SEGMENT_SPEND: [f64; 5] = [0.6, 1.0, 1.5, 2.3, 2.0];
pub const CARD_TYPES: [&str; 3] = ["debit", "credit", "prepaid"];
pub const BRANDS: [&str; 4] = ["visa", "mastercard", "amex", "girocard"];
pub const DEVICES: [&str; 6] = ["ios", "android", "desktop", "tablet", "terminal", "phone_call"];
pub const CHANNELS: [&str; 5] = ["pos", "contactless", "online", "atm", "phone"];
pub const ENTRY_MODES: [&str; 5] = ["chip", "contactless", "swipe", "manual", "ecom"];
pub const TIERS: [&str; 3] = ["low", "medium", "high"];
pub const COUNTRIES: [&str; 11] = ["DE", "FR", "NL", "AT", "IT", "ES", "PL", "GB", "US", "TR", "NG"];
/// Rough distance from the cardholders' home (Germany) to each country, in km.
pub(crate) const COUNTRY_KM: [f64; 11] =
    [0.0, 800.0, 450.0, 550.0, 1000.0, 1700.0, 700.0, 900.0, 7000.0, 2200.0, 5000.0];
pub const CURRENCIES: [&str; 6] = ["EUR", "PLN", "GBP", "USD", "TRY", "NGN"];
pub(crate) const COUNTRY_CURRENCY: [u8; 11] = [0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5];

pub(crate) const POS: u8 = 0;
pub(crate) const CONTACTLESS: u8 = 1;
pub(crate) const ONLINE: u8 = 2;
pub(crate) const ATM: u8 = 3;
pub(crate) const PHONE: u8 = 4;
pub(crate) const E_CHIP: u8 = 0;
pub(crate) const E_CONTACTLESS: u8 = 1;
pub(crate) const E_SWIPE: u8 = 2;
pub(crate) const E_MANUAL: u8 = 3;
pub(crate) const E_ECOM: u8 = 4;
pub(crate) const CREDIT: u8 = 1;
pub(crate) const PREPAID: u8 = 2;
