//! The host's judge for waveforms: `tempered_plugin::judge::audio` (samples finite and
//! within [-1, 1], then the declared `snr_floor`, `linf` and `time_shift`). The
//! perturbation is the SNR over the whole row, padding included.

use tempered_plugin::{Budget, Modality, judge};

use super::{Judge, Measure};
use crate::data::Examples;

pub use tempered_plugin::judge::{SNR_CAP_DB, snr_and_linf};

pub struct AudioJudge {
    /// Samples per second of every row, to turn a shift in seconds into samples.
    pub sample_rate: u32,
}

impl Judge for AudioJudge {
    fn unit(&self) -> &'static str {
        "snr_db"
    }

    fn verifies(&self, budget: &Budget) -> Result<(), String> {
        judge::verifies(Modality::Audio, budget, false)
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
        judge::audio(
            self.sample_rate,
            &a[i * width..(i + 1) * width],
            &b[i * width..(i + 1) * width],
            budgets,
        )
    }
}
