//! The host's judge for waveforms: `tempered_plugin::judge::audio` (samples finite and
//! within [-1, 1], then the declared `snr_floor`, `linf` and `time_shift`). The
//! perturbation is the SNR over the whole row, padding included.

use tempered_plugin::{Budget, Modality, judge};

use super::{DenseRow, Judge, Measure};
use crate::data::Examples;
use crate::error::Invalid;

pub use tempered_plugin::judge::{SNR_CAP_DB, snr_and_linf};

pub struct AudioJudge {
    /// Samples per second of every row, to turn a shift in seconds into samples.
    pub sample_rate: u32,
}

impl Judge for AudioJudge {
    fn unit(&self) -> &'static str {
        "snr_db"
    }

    fn verifies(&self, budget: &Budget) -> Result<(), Invalid> {
        judge::verifies(Modality::Audio, budget, false).map_err(Invalid::from)
    }

    fn measure(&self, original: &Examples, adversarial: &Examples, i: usize, budgets: &[Budget]) -> Measure {
        const WAVEFORM: DenseRow = DenseRow { name: "a waveform", unit: "samples" };
        match WAVEFORM.pair(original, adversarial, i) {
            Ok((a, b)) => judge::audio(self.sample_rate, a, b, budgets),
            Err(violation) => violation,
        }
    }
}
