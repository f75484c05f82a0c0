//! The run's parameters and the ranges in which the generator keeps its promises.

/// What the command line sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub rows: u64,
    pub seed: u64,
    pub fraud_rate: f64,
    /// Fraction of rows in which each of [`MAYBE_MISSING`](crate::MAYBE_MISSING) is empty.
    pub missing: f64,
    pub days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config { rows: 1_000_000, seed: 7, fraud_rate: 0.03, missing: 0.02, days: 30 }
    }
}

impl Config {
    /// The ranges are where the generator keeps its promises: outside 0.001–0.2 the intercept
    /// either drowns the interaction terms or leaves too few frauds to learn from.
    pub fn validate(&self) -> Result<(), String> {
        if self.rows == 0 {
            return Err("--rows must be at least 1".into());
        }
        if !(0.001..=0.2).contains(&self.fraud_rate) {
            return Err(format!("--fraud-rate must be between 0.001 and 0.2, got {}", self.fraud_rate));
        }
        if !(0.0..=0.5).contains(&self.missing) {
            return Err(format!("--missing must be between 0 and 0.5, got {}", self.missing));
        }
        if !(1..=3650).contains(&self.days) {
            return Err(format!("--days must be between 1 and 3650, got {}", self.days));
        }
        Ok(())
    }

    /// About twenty transactions per customer, so that customers repeat and their balances
    /// carry over; capped so memory stays flat however many rows are asked for.
    pub fn customers(&self) -> usize {
        (self.rows / 20).clamp(100, 200_000) as usize
    }
}
