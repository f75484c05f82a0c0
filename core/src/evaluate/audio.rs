//! The host's judge for waveforms: the perturbation's SNR, its L∞ size, and the attack's
//! budget, measured on the rows the plugin handed back (never taken from the plugin).
//!
//! - Perturbation: `SNR = 10·log10(Σx² / Σ(x_adv − x)²)` in dB over the whole row (padding
//!   included), summed in `f64`. Higher is quieter. An unchanged row is +∞ dB (reported as
//!   [`SNR_CAP_DB`]); noise on a silent row is −∞ dB.
//! - Budgets, read from the attack's params by convention (documented for plugin authors):
//!   `snr_db` is a floor on the SNR unless `budget = "linf"`, so the `noise` attack's
//!   `snr_db` is checked as well as PGD's; `epsilon` bounds the L∞ change unless
//!   `budget = "snr"`. Attacks with neither (e.g. `shift`) have no amplitude budget.
//! - Every sample must be finite and within [-1, 1].
//!
//! Each broken rule counts one violation for the example.

use super::{Judge, Measure};
use crate::data::Examples;

/// How an infinite SNR (an unchanged row) is reported in means.
pub const SNR_CAP_DB: f64 = 200.0;

/// Slack for the plugin's float arithmetic, far below anything audible or reportable.
const SNR_TOL_DB: f64 = 1e-6;

pub struct AudioJudge;

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

    fn measure(
        &self,
        original: &Examples,
        adversarial: &Examples,
        i: usize,
        params: &serde_json::Value,
    ) -> Measure {
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
        let mut fail = |note: String| {
            m.violations += 1;
            m.notes.push(note);
        };
        if let Some(j) = z.iter().position(|v| !v.is_finite() || !(-1.0..=1.0).contains(v)) {
            let count = z.iter().filter(|v| !v.is_finite() || !(-1.0..=1.0).contains(*v)).count();
            fail(format!("{count} samples outside [-1, 1] (first: sample {j} = {})", z[j]));
        }
        let (snr, linf) = snr_and_linf(x, z);
        let budget = params.get("budget").and_then(|v| v.as_str());
        if let Some(floor) = params.get("snr_db").and_then(|v| v.as_f64())
            && budget != Some("linf")
            && (snr.is_nan() || snr < floor - SNR_TOL_DB)
        {
            fail(format!("SNR {snr:.4} dB is below the budget of {floor} dB"));
        }
        if let Some(eps) = params.get("epsilon").and_then(|v| v.as_f64())
            && budget != Some("snr")
            && linf > eps
        {
            fail(format!("L∞ change {linf:.6} exceeds epsilon {eps}"));
        }
        m.perturbation = snr.clamp(-SNR_CAP_DB, SNR_CAP_DB);
        m.extra = vec![("linf", linf)];
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let m = AudioJudge.measure(&a, &b, 0, &json!({}));
        // Σx² = 1, Σδ² ≈ 0.01 → 20 dB.
        assert!((m.perturbation - 20.0).abs() < 1e-3, "{}", m.perturbation);
        assert_eq!(m.violations, 0);
        assert!((m.extra[0].1 - 0.05).abs() < 1e-6);
    }

    #[test]
    fn budgets_are_read_from_the_params() {
        let x = [0.5f32, -0.5, 0.5, -0.5];
        let z = [0.55f32, -0.45, 0.55, -0.45];
        let (a, b) = rows(&x, &z);
        let v = |p| AudioJudge.measure(&a, &b, 0, &p).violations;
        assert_eq!(v(json!({"budget": "snr", "snr_db": 19.0})), 0);
        assert_eq!(v(json!({"budget": "snr", "snr_db": 21.0})), 1);
        assert_eq!(v(json!({"kind": "white", "snr_db": 21.0})), 1, "noise's snr_db is a floor too");
        assert_eq!(v(json!({"epsilon": 0.06})), 0);
        assert_eq!(v(json!({"budget": "linf", "epsilon": 0.04})), 1);
        assert_eq!(v(json!({"budget": "linf", "epsilon": 0.06, "snr_db": 40.0})), 0, "linf ignores snr_db");
        assert_eq!(v(json!({"max_shift": 0.1})), 0);
    }

    #[test]
    fn samples_out_of_range_and_degenerate_rows() {
        let (a, b) = rows(&[0.9, 0.0], &[1.2, f32::NAN]);
        let m = AudioJudge.measure(&a, &b, 0, &json!({}));
        assert_eq!(m.violations, 1);
        assert!(m.notes[0].contains("2 samples outside"), "{:?}", m.notes);
        let (a, b) = rows(&[0.3, 0.2], &[0.3, 0.2]);
        assert_eq!(AudioJudge.measure(&a, &b, 0, &json!({"snr_db": 30.0})).perturbation, SNR_CAP_DB);
        let (a, b) = rows(&[0.0, 0.0], &[0.1, 0.0]);
        let m = AudioJudge.measure(&a, &b, 0, &json!({"snr_db": 30.0}));
        assert_eq!((m.perturbation, m.violations), (-SNR_CAP_DB, 1));
    }
}
