//! The host's judge for waveforms, measured on the rows the plugin handed back.
//!
//! - Perturbation: `SNR = 10·log10(Σx² / Σ(x_adv − x)²)` in dB over the whole row (padding
//!   included), summed in `f64`. Higher is quieter. An unchanged row is +∞ dB (reported as
//!   [`SNR_CAP_DB`]); noise on a silent row is −∞ dB.
//! - Always: every sample finite and within [-1, 1].
//! - Declared budgets: `snr_floor` (the SNR above), `linf` (largest sample change), and
//!   `time_shift`: the row must be the original moved by a whole number of samples within
//!   the bound, zero-filled, to the bit.
//!
//! Each broken rule counts one violation for the example.

use tempered_plugin::Budget;

use super::{Judge, Measure};
use crate::data::Examples;

/// How an infinite SNR (an unchanged row) is reported in means.
pub const SNR_CAP_DB: f64 = 200.0;

/// Slack for the plugin's float arithmetic, far below anything audible or reportable.
const SNR_TOL_DB: f64 = 1e-6;

pub struct AudioJudge {
    /// Samples per second of every row, to turn a shift in seconds into samples.
    pub sample_rate: u32,
}

/// The SNR (dB) and L∞ distance of `adv` against `x`.
pub fn snr_and_linf(x: &[f32], adv: &[f32]) -> (f64, f64) {
    let (mut signal, mut noise, mut linf) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(adv) {
        let (a, b) = (f64::from(a), f64::from(b));
        signal += a * a;
        noise += (b - a) * (b - a);
        linf = linf.max((b - a).abs());
    }
    let snr = if noise == 0.0 {
        f64::INFINITY
    } else if signal == 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (signal / noise).log10()
    };
    (snr, linf)
}

impl Judge for AudioJudge {
    fn unit(&self) -> &'static str {
        "snr_db"
    }

    fn verifies(&self, budget: &Budget) -> Result<(), String> {
        match budget {
            Budget::Linf { .. } | Budget::SnrFloor { .. } | Budget::TimeShift { .. } => Ok(()),
            b => Err(format!("`{b}` is not a budget of waveforms")),
        }
    }

    fn measure(&self, original: &Examples, adversarial: &Examples, i: usize, budgets: &[Budget]) -> Measure {
        let (Examples::Dense { data: a, width }, Examples::Dense { data: b, width: w2 }) =
            (original, adversarial)
        else {
            return Measure { violations: 1, notes: vec!["not a waveform".into()], ..Default::default() };
        };
        if width != w2 || b.len() < (i + 1) * width {
            return Measure {
                violations: 1,
                notes: vec![format!("waveform of {w2} samples, expected {width}")],
                ..Default::default()
            };
        }
        let (x, z) = (&a[i * width..(i + 1) * width], &b[i * width..(i + 1) * width]);
        let mut m = Measure::default();
        if let Some(j) = z.iter().position(|v| !v.is_finite() || !(-1.0..=1.0).contains(v)) {
            let count = z.iter().filter(|v| !v.is_finite() || !(-1.0..=1.0).contains(*v)).count();
            m.fail(format!("{count} samples outside [-1, 1] (first: sample {j} = {})", z[j]));
        }
        let (snr, linf) = snr_and_linf(x, z);
        for (k, b) in budgets.iter().enumerate() {
            match *b {
                Budget::SnrFloor { db } if snr.is_nan() || snr < db - SNR_TOL_DB => {
                    m.fail_budget(k, format!("SNR {snr:.4} dB is below the budget of {db} dB"))
                }
                Budget::Linf { epsilon } if linf > epsilon => {
                    m.fail_budget(k, format!("L∞ change {linf:.6} exceeds {epsilon}"))
                }
                Budget::TimeShift { max_seconds } => {
                    let max = (max_seconds * f64::from(self.sample_rate)).round() as usize;
                    if shift_of(x, z, max).is_none() {
                        m.fail_budget(
                            k,
                            format!("not the original shifted by at most {max} samples ({max_seconds} s)"),
                        );
                    }
                }
                _ => {}
            }
        }
        m.perturbation = snr.clamp(-SNR_CAP_DB, SNR_CAP_DB);
        m.extra = vec![("linf", linf)];
        m
    }
}

/// The shift `s` (|s| ≤ `max`) with `z[t] = x[t − s]`, silence where `t − s` falls outside
/// the row, if there is one. Mismatches show within a few samples for any wrong shift, so
/// the search costs little more than one pass per candidate tried.
pub fn shift_of(x: &[f32], z: &[f32], max: usize) -> Option<i64> {
    if x.len() != z.len() {
        return None;
    }
    let n = x.len() as i64;
    let max = (max as i64).min(n);
    let matches = |s: i64| {
        (0..n).all(|t| {
            let src = t - s;
            let want = if (0..n).contains(&src) { x[src as usize] } else { 0.0 };
            z[t as usize].to_bits() == want.to_bits() || z[t as usize] == want
        })
    };
    (0..=max).flat_map(|d| [d, -d]).find(|&s| matches(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUDGE: AudioJudge = AudioJudge { sample_rate: 10 };

    fn rows(x: &[f32], z: &[f32]) -> (Examples, Examples) {
        (
            Examples::Dense { data: x.to_vec(), width: x.len() },
            Examples::Dense { data: z.to_vec(), width: z.len() },
        )
    }

    #[test]
    fn snr_is_signal_over_perturbation_energy() {
        let x = [0.5f32, -0.5, 0.5, -0.5];
        let z = [0.55f32, -0.45, 0.55, -0.45];
        let (a, b) = rows(&x, &z);
        let m = JUDGE.measure(&a, &b, 0, &[]);
        // Σx² = 1, Σδ² ≈ 0.01 → 20 dB.
        assert!((m.perturbation - 20.0).abs() < 1e-3, "{}", m.perturbation);
        assert_eq!(m.violations, 0);
        assert!((m.extra[0].1 - 0.05).abs() < 1e-6);
    }

    #[test]
    fn declared_budgets_are_checked_and_nothing_is_guessed() {
        let x = [0.5f32, -0.5, 0.5, -0.5];
        let z = [0.55f32, -0.45, 0.55, -0.45];
        let (a, b) = rows(&x, &z);
        let v = |budgets: &[Budget]| JUDGE.measure(&a, &b, 0, budgets);
        assert_eq!(v(&[Budget::SnrFloor { db: 19.0 }]).violations, 0);
        let m = v(&[Budget::Linf { epsilon: 0.06 }, Budget::SnrFloor { db: 21.0 }]);
        assert_eq!((m.violations, m.broken.as_slice()), (1, &[1][..]), "{:?}", m.notes);
        assert!(m.notes[0].starts_with("SNR 20.0000 dB is below the budget of 21 dB"), "{:?}", m.notes);
        let m = v(&[Budget::Linf { epsilon: 0.04 }]);
        assert_eq!(m.broken, [0]);
        assert!(m.notes[0].starts_with("L∞ change 0.05"), "{:?}", m.notes);
        assert_eq!(v(&[]).violations, 0, "nothing declared, nothing but the range checked");
        assert!(JUDGE.verifies(&Budget::Cost { budget: 1.0 }).is_err());
    }

    #[test]
    fn a_time_shift_is_verified_to_the_bit() {
        let x = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let shifted = [0.0f32, 0.0, 0.1, 0.2, 0.3, 0.4];
        assert_eq!(shift_of(&x, &shifted, 2), Some(2));
        assert_eq!(shift_of(&x, &[0.3, 0.4, 0.5, 0.6, 0.0, 0.0], 2), Some(-2));
        assert_eq!(shift_of(&x, &x, 0), Some(0));
        assert_eq!(shift_of(&x, &shifted, 1), None, "two samples is past the bound");
        let (a, b) = rows(&x, &shifted);
        // 10 samples per second: 0.2 s is 2 samples.
        assert_eq!(JUDGE.measure(&a, &b, 0, &[Budget::TimeShift { max_seconds: 0.2 }]).violations, 0);
        let m = JUDGE.measure(&a, &b, 0, &[Budget::TimeShift { max_seconds: 0.1 }]);
        assert_eq!(m.broken, [0], "{:?}", m.notes);
        let mut noisy = shifted;
        noisy[4] += 1e-3;
        let (a, b) = rows(&x, &noisy);
        assert_eq!(JUDGE.measure(&a, &b, 0, &[Budget::TimeShift { max_seconds: 0.5 }]).broken, [0]);
    }

    #[test]
    fn samples_out_of_range_and_degenerate_rows() {
        let (a, b) = rows(&[0.9, 0.0], &[1.2, f32::NAN]);
        let m = JUDGE.measure(&a, &b, 0, &[]);
        assert_eq!(m.violations, 1);
        assert!(m.notes[0].contains("2 samples outside"), "{:?}", m.notes);
        let (a, b) = rows(&[0.3, 0.2], &[0.3, 0.2]);
        let floor = [Budget::SnrFloor { db: 30.0 }];
        assert_eq!(JUDGE.measure(&a, &b, 0, &floor).perturbation, SNR_CAP_DB);
        let (a, b) = rows(&[0.0, 0.0], &[0.1, 0.0]);
        let m = JUDGE.measure(&a, &b, 0, &floor);
        assert_eq!((m.perturbation, m.violations), (-SNR_CAP_DB, 1));
    }
}
