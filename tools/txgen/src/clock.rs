//! Transaction times: increasing, with daily and weekly seasonality, in constant memory.

use crate::random::Source;

/// 2024-01-01T00:00:00, a Monday, as days since 1970-01-01. Fixed so that the same seed gives
/// the same file on any day it is run.
pub const START_EPOCH_DAY: i64 = 19_723;

/// Relative transaction volume per hour of the day (card networks see a trough around 4 a.m.,
/// a lunch peak and an early-evening peak).
const HOUR_WEIGHT: [f64; 24] = [
    0.25, 0.15, 0.10, 0.08, 0.08, 0.15, 0.35, 0.65, 0.95, 1.05, 1.15, 1.30, 1.45, 1.35, 1.20, 1.20, 1.30,
    1.50, 1.55, 1.40, 1.15, 0.90, 0.65, 0.40,
];

/// Relative volume per day of the week, Monday first: Friday and Saturday shopping, quiet Sunday.
const WEEKDAY_WEIGHT: [f64; 7] = [0.95, 0.97, 1.00, 1.00, 1.12, 1.20, 0.80];

/// Hands out `rows` timestamps (seconds since the start) in non-decreasing order.
///
/// Rows are spread over hour buckets in proportion to the seasonal weights by cumulative
/// rounding, so the count is exact and no bucket list is stored. Inside an hour the times are
/// the order statistics of uniform draws, produced one at a time (the minimum of the `k`
/// uniforms still to come on `[u, 1)` is `1 - (1 - u) * V^(1/k)`), which keeps the memory flat
/// whatever the number of rows per hour.
pub struct Clock {
    cum: Vec<f64>,
    rows: u64,
    hour: usize,
    left: u64,
    u: f64,
}

impl Clock {
    pub fn new(rows: u64, days: u32, rng: &mut Source) -> Self {
        let hours = days as usize * 24;
        let mut cum = Vec::with_capacity(hours + 1);
        cum.push(0.0);
        let mut total = 0.0;
        for day in 0..days as i64 {
            let (_, _, dom) = civil_from_days(START_EPOCH_DAY + day);
            // Pay day at the end of the month, and some day-to-day variation so that no two
            // Mondays look exactly alike.
            let payday = if dom >= 25 { 1.10 } else { 1.0 };
            let noise = (0.06 * rng.normal()).exp();
            let day_weight = WEEKDAY_WEIGHT[(day % 7) as usize] * payday * noise;
            for w in HOUR_WEIGHT {
                total += w * day_weight;
                cum.push(total);
            }
        }
        for c in &mut cum {
            *c /= total;
        }
        cum[hours] = 1.0;
        Clock { cum, rows, hour: usize::MAX, left: 0, u: 0.0 }
    }

    fn rows_before(&self, hour: usize) -> u64 {
        (self.rows as f64 * self.cum[hour]).round() as u64
    }

    /// The next timestamp, in seconds since the start. Call it at most `rows` times.
    pub fn next(&mut self, rng: &mut Source) -> i64 {
        while self.left == 0 {
            self.hour = self.hour.wrapping_add(1);
            self.left = self.rows_before(self.hour + 1) - self.rows_before(self.hour);
            self.u = 0.0;
        }
        let v = rng.uniform();
        self.u = 1.0 - (1.0 - self.u) * v.powf(1.0 / self.left as f64);
        self.left -= 1;
        let second = ((self.u * 3600.0) as i64).min(3599);
        self.hour as i64 * 3600 + second
    }
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(START_EPOCH_DAY), (2024, 1, 1));
        assert_eq!(civil_from_days(START_EPOCH_DAY + 59), (2024, 2, 29));
        assert_eq!(civil_from_days(START_EPOCH_DAY + 366), (2025, 1, 1));
    }
}
