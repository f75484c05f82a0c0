//! The cardholder population: fixed per seed, drawn once before any row, and the only state
//! that carries from one row to the next (balances).

use crate::config::Config;
use crate::random::Source;
use crate::row::cents;
use crate::schema::{CREDIT, PREPAID, SEGMENT_SPEND};

pub(crate) struct Customer {
    pub(crate) age: u8,
    pub(crate) segment: u8,
    pub(crate) card_type: u8,
    pub(crate) brand: u8,
    pub(crate) device: u8,
    pub(crate) account_age0: u32,
    pub(crate) lambda: f64,
    pub(crate) spend: f64,
    pub(crate) credit_limit: i64,
    pub(crate) balance: i64,
    pub(crate) top_up: i64,
    pub(crate) risk: f64,
}

impl Customer {
    /// Charges `amount_cents` and returns what was charged and the funds before it.
    ///
    /// Balances: a card only spends what is there. Debit and prepaid accounts are topped
    /// up when low; a credit card is repaid in full, and a purchase above the whole limit
    /// is capped at it (the declined remainder is not in the log).
    pub(crate) fn pay(&mut self, mut amount_cents: i64) -> (i64, i64) {
        let mut balance = self.balance;
        if balance < amount_cents {
            match self.card_type {
                CREDIT => {
                    balance = self.credit_limit;
                    amount_cents = amount_cents.min(balance);
                }
                _ => balance += self.top_up.max(amount_cents - balance + self.top_up / 2),
            }
        }
        self.balance = balance - amount_cents;
        (amount_cents, balance)
    }

    /// Share of the credit limit in use before a purchase, in thousandths; 0 without credit.
    pub(crate) fn utilization_milli(&self, balance_before: i64) -> i64 {
        if self.card_type == CREDIT {
            ((self.credit_limit - balance_before) * 1000 + self.credit_limit / 2) / self.credit_limit
        } else {
            0
        }
    }
}

pub(crate) fn make_customers(cfg: &Config) -> Vec<Customer> {
    let mut rng = Source::new(cfg.seed, 1);
    (0..cfg.customers())
        .map(|_| {
            let age = (42.0 + 15.0 * rng.normal()).clamp(18.0, 90.0) as u8;
            let segment =
                if age < 26 && rng.chance(0.6) { 0 } else { 1 + rng.pick_weights(&[55.0, 25.0, 8.0, 7.0]) };
            let spend_level = SEGMENT_SPEND[segment as usize];
            let card_weights: [f64; 3] = match segment {
                0 => [75.0, 10.0, 15.0],
                1 => [62.0, 30.0, 8.0],
                2 => [50.0, 47.0, 3.0],
                3 => [30.0, 69.0, 1.0],
                _ => [35.0, 63.0, 2.0],
            };
            let card_type = rng.pick_weights(&card_weights);
            let brand_weights: [f64; 4] = match card_type {
                0 => [35.0, 30.0, 0.0, 35.0],
                CREDIT => [50.0, 40.0, 10.0, 0.0],
                _ => [50.0, 50.0, 0.0, 0.0],
            };
            let brand = rng.pick_weights(&brand_weights);
            let device = rng.pick_weights(&[40.0, 40.0, 15.0, 5.0]);
            let new_account = rng.chance(0.07);
            let account_age0 = if new_account {
                rng.below(0, 60)
            } else {
                (60.0 + rng.lognormal(1700.0, 0.8)).min(20_000.0) as u32
            };
            let lambda = rng.lognormal(1.2, 0.6);
            let spend = spend_level * rng.lognormal(1.0, 0.35);
            let (credit_limit, balance, top_up) = match card_type {
                CREDIT => {
                    let limit =
                        ((2500.0 * spend_level * rng.lognormal(1.0, 0.4) / 500.0).round() * 500.0).max(500.0);
                    let limit = cents(limit);
                    let available = (limit as f64 * rng.range(0.3, 1.0)) as i64;
                    (limit, available, limit)
                }
                PREPAID => (0, cents(rng.range(20.0, 400.0)), cents(rng.range(100.0, 300.0))),
                _ => (
                    0,
                    cents(rng.lognormal(1800.0 * spend_level, 0.7)),
                    cents(rng.lognormal(2500.0 * spend_level, 0.3)),
                ),
            };
            let mut risk = 1.0;
            if new_account {
                risk *= 3.0;
            }
            if card_type == PREPAID {
                risk *= 1.6;
            }
            if age >= 70 {
                risk *= 1.5;
            }
            if age < 23 {
                risk *= 1.3;
            }
            Customer {
                age,
                segment,
                card_type,
                brand,
                device,
                account_age0,
                lambda,
                spend,
                credit_limit,
                balance,
                top_up,
                risk,
            }
        })
        .collect()
}
