//! The row generator: one transaction at a time from the customers, the clock and the row
//! stream, so memory stays flat however many rows are asked for.

use crate::category::{C_CASH, C_HOTELS, C_TRAVEL, CATEGORIES, weights_by_time};
use crate::clock::Clock;
use crate::config::Config;
use crate::customer::{Customer, make_customers};
use crate::fraud::{Signals, latent_score, sigmoid};
use crate::random::{Source, cumulative};
use crate::row::{Row, cents};
use crate::schema::{
    ATM, CONTACTLESS, COUNTRY_CURRENCY, COUNTRY_KM, E_CHIP, E_CONTACTLESS, E_ECOM, E_MANUAL, E_SWIPE, ONLINE,
    PHONE, POS,
};

/// Mean ticket of an average customer, the base of `avg_amount_30d`.
const MEAN_TICKET_EUR: f64 = 48.0;

/// Streams [`Row`]s. Built by [`rows`](crate::rows), which first solves the intercept.
pub struct Rows {
    missing: f64,
    intercept: f64,
    total: u64,
    emitted: u64,
    customers: Vec<Customer>,
    customer_cum: Vec<f64>,
    clock: Clock,
    clock_rng: Source,
    rng: Source,
    /// [compromised][night, day, evening] category weights.
    category_cum: [[Vec<f64>; 3]; 2],
    /// Foreign countries (index 1..) for card-present, online, and compromised use.
    foreign_cum: [Vec<f64>; 3],
}

impl Rows {
    pub(crate) fn new(cfg: &Config, rows: u64, intercept: f64) -> Self {
        let customers = make_customers(cfg);
        let customer_cum = cumulative(&customers.iter().map(|c| c.lambda).collect::<Vec<_>>());
        let mut clock_rng = Source::new(cfg.seed, 2);
        let clock = Clock::new(rows, cfg.days, &mut clock_rng);
        let category_cum = weights_by_time();
        let foreign_cum = [
            cumulative(&[2.0, 1.5, 2.0, 1.2, 1.5, 0.8, 0.8, 0.6, 0.5, 0.4]),
            cumulative(&[1.5, 1.5, 0.8, 0.8, 1.0, 0.6, 1.8, 3.0, 0.6, 0.5]),
            cumulative(&[0.5, 0.6, 0.2, 0.4, 0.5, 0.6, 1.2, 2.0, 1.0, 0.9]),
        ];
        Rows {
            missing: cfg.missing,
            intercept,
            total: rows,
            emitted: 0,
            customers,
            customer_cum,
            clock,
            clock_rng,
            rng: Source::new(cfg.seed, 3),
            category_cum,
            foreign_cum,
        }
    }

    fn row(&mut self) -> Row {
        let ts = self.clock.next(&mut self.clock_rng);
        let rng = &mut self.rng;
        let hour = (ts / 3600) % 24;
        let day = (ts / 86_400) as u32;
        let night = hour < 6;

        let u = rng.uniform();
        let ci = self.customer_cum.partition_point(|&c| c <= u).min(self.customers.len() - 1);
        let cust = &mut self.customers[ci];

        // The unobserved state that drives most fraud: the card's details are in a fraudster's
        // hands. More likely at night and for new, prepaid, very young or old customers.
        let time_risk = if night {
            3.0
        } else if hour >= 20 {
            1.4
        } else {
            1.0
        };
        let compromised = rng.chance(0.025 * cust.risk * time_risk);

        let group = if night {
            0
        } else if hour < 18 {
            1
        } else {
            2
        };
        let category = rng.pick(&self.category_cum[usize::from(compromised)][group]);
        let c = &CATEGORIES[category as usize];

        let mut channel = if category == C_CASH {
            ATM
        } else {
            let (online, phone) = if compromised {
                (c.online + (1.0 - c.online) * 0.55, c.phone + 0.03)
            } else {
                (c.online, c.phone)
            };
            let r = rng.uniform();
            if r < online {
                ONLINE
            } else if r < online + phone {
                PHONE
            } else if rng.chance(if compromised { 0.2 } else { 0.55 }) {
                CONTACTLESS
            } else {
                POS
            }
        };

        let p_foreign = if compromised {
            0.45
        } else {
            0.03 + if category == C_TRAVEL || category == C_HOTELS { 0.30 } else { 0.0 }
                + if channel == ONLINE { 0.07 } else { 0.0 }
        };
        let country = if rng.chance(p_foreign) {
            let table = if compromised {
                2
            } else if channel == ONLINE {
                1
            } else {
                0
            };
            1 + rng.pick(&self.foreign_cum[table])
        } else {
            0
        };
        let foreign = country != 0;

        let mut amount = rng.lognormal(c.median * cust.spend, c.sigma);
        if compromised {
            // Fraudsters cash out: about 2.5 times the usual ticket.
            amount *= rng.lognormal(2.5, 0.5);
        }
        if category == C_CASH {
            amount = ((amount / 10.0).round() * 10.0).max(20.0);
        }
        amount = amount.clamp(0.5, 25_000.0);
        // Above the no-PIN contactless limit the terminal asks for the chip.
        if channel == CONTACTLESS && amount > 50.0 {
            channel = POS;
        }
        let card_present = matches!(channel, POS | CONTACTLESS | ATM);

        let entry = match channel {
            CONTACTLESS => E_CONTACTLESS,
            PHONE => E_MANUAL,
            ATM => {
                if rng.chance(if compromised { 0.6 } else { 0.04 }) {
                    E_SWIPE
                } else {
                    E_CHIP
                }
            }
            ONLINE => {
                if rng.chance(if compromised { 0.4 } else { 0.07 }) {
                    E_MANUAL
                } else {
                    E_ECOM
                }
            }
            _ => {
                let w = if compromised { [35.0, 0.0, 50.0, 15.0] } else { [88.0, 0.0, 9.0, 3.0] };
                rng.pick_weights(&w)
            }
        };

        let (amount_cents, balance_before) = cust.pay(cents(amount));
        let amount = amount_cents as f64 / 100.0;
        let utilization_milli = cust.utilization_milli(balance_before);

        let avg_30d_cents = cents(MEAN_TICKET_EUR * cust.spend * rng.lognormal(1.0, 0.15));
        let max_30d_cents = (avg_30d_cents as f64 * rng.lognormal(3.7, 0.35)).round() as i64;
        let ratio = amount_cents as f64 / avg_30d_cents as f64;

        let (three_ds, new_device) = if channel == ONLINE {
            let p3 = if compromised {
                0.25
            } else if foreign {
                0.55
            } else {
                0.8
            };
            (rng.chance(p3), rng.chance(if compromised { 0.45 } else { 0.08 }))
        } else {
            (false, false)
        };
        let device = match channel {
            ONLINE if new_device => rng.pick_weights(&[30.0, 30.0, 30.0, 10.0]),
            ONLINE => cust.device,
            PHONE => 5,
            _ => 4,
        };

        let n_tx_24h = rng.poisson(cust.lambda * 0.9) + if compromised { rng.poisson(3.5) } else { 0 };
        let n_tx_7d = n_tx_24h + rng.poisson(cust.lambda * 6.0);
        let n_merchants_24h = if n_tx_24h == 0 {
            0
        } else if compromised {
            n_tx_24h
        } else {
            ((n_tx_24h as f64 * rng.range(0.55, 1.0)).round() as u32).max(1)
        };
        let n_declined_24h = rng.poisson(if compromised { 1.1 } else { 0.04 });
        let pin_failures_24h = if channel == ATM || (card_present && entry == E_CHIP) {
            rng.poisson(if compromised { 0.5 } else { 0.03 })
        } else {
            0
        };
        let n_countries_7d = 1 + u32::from(foreign) + rng.poisson(if compromised { 0.6 } else { 0.05 });
        let minutes = if compromised && rng.chance(0.7) {
            rng.exponential(8.0)
        } else {
            rng.exponential(1440.0 / cust.lambda)
        }
        .min(43_200.0);
        let distance_km = if foreign {
            rng.lognormal(COUNTRY_KM[country as usize], 0.25)
        } else {
            let mean = match (card_present, compromised) {
                (true, false) => 7.0,
                (true, true) => 90.0,
                (false, false) => 35.0,
                (false, true) => 150.0,
            };
            0.2 + rng.exponential(mean)
        };
        let merchant_rate =
            (rng.lognormal(c.merchant_rate, 0.8) * if compromised { 1.8 } else { 1.0 }).min(0.2);
        let tier_signal = merchant_rate * rng.lognormal(1.0, 0.3);
        let tier = if tier_signal < 0.0015 {
            0
        } else if tier_signal < 0.006 {
            1
        } else {
            2
        };
        let merchant_age_days = if compromised && rng.chance(0.3) {
            rng.below(1, 90)
        } else {
            (60.0 + rng.lognormal(1500.0, 0.9)).min(20_000.0) as u32
        };
        let currency =
            if foreign && channel == ONLINE && COUNTRY_CURRENCY[country as usize] != 0 && rng.chance(0.25) {
                3
            } else {
                COUNTRY_CURRENCY[country as usize]
            };
        let account_age_days = cust.account_age0 + day;

        let score = latent_score(
            &Signals {
                compromised,
                night,
                card_present,
                foreign,
                channel,
                category,
                entry,
                amount,
                ratio,
                account_age_days,
                n_tx_24h,
                minutes,
                three_ds,
                new_device,
                n_declined_24h,
                pin_failures_24h,
                distance_km,
                card_type: cust.card_type,
                segment: cust.segment,
            },
            rng,
        );
        let is_fraud = rng.uniform() < sigmoid(self.intercept + score);

        // Drawn on every row so that the rows do not depend on the missing fraction.
        let missing = [rng.uniform(), rng.uniform(), rng.uniform()].map(|u| u < self.missing);

        self.emitted += 1;
        Row {
            id: self.emitted,
            ts,
            customer: ci as u32,
            category,
            channel,
            country,
            device: (!missing[0]).then_some(device),
            card_type: cust.card_type,
            brand: cust.brand,
            entry,
            segment: cust.segment,
            tier,
            currency,
            international: foreign,
            card_present,
            three_ds,
            new_device,
            amount_cents,
            balance_before_cents: balance_before,
            credit_limit_cents: cust.credit_limit,
            utilization_milli,
            customer_age: cust.age,
            account_age_days,
            avg_30d_cents,
            max_30d_cents,
            ratio_milli: (ratio * 1000.0).round() as i64,
            n_tx_24h,
            n_tx_7d,
            n_merchants_24h,
            n_declined_24h,
            pin_failures_24h,
            n_countries_7d,
            minutes_since_last: (!missing[1]).then_some(minutes as u32),
            distance_dkm: (!missing[2]).then_some((distance_km * 10.0).round() as i64),
            merchant_rate_e5: (merchant_rate * 1e5).round() as i64,
            merchant_age_days,
            is_fraud,
            score,
        }
    }

    /// The intercept that makes the expected fraud rate equal to the target.
    pub fn intercept(&self) -> f64 {
        self.intercept
    }
}

impl Iterator for Rows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        (self.emitted < self.total).then(|| self.row())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.total - self.emitted) as usize;
        (left, Some(left))
    }
}
