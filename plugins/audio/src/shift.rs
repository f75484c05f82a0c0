//! `shift`: random time shift (zero-fill) and optional speed change.

use serde::Deserialize;
use tempered_plugin::{Attack, Batch, Budget, Oracle, Perturbed, Result, Rng, ThreatModel};

use crate::budget;

const SALT: u64 = 0x7368_6966_7400_0002;

fn default_max_shift() -> f64 {
    0.1
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ShiftParams {
    /// Largest shift in seconds, earlier or later (default 0.1).
    #[serde(default = "default_max_shift")]
    pub max_shift: f64,
    /// Largest relative speed change: the factor is drawn from [1 − s, 1 + s] (default 0: off).
    #[serde(default)]
    pub max_stretch: f64,
}

/// Per row: stretch by a factor `f` (linear-interpolation resampling, so pitch moves with
/// speed; `f > 1` is slower and longer), then shift by a whole number of samples drawn
/// uniformly from `[-S, S]`, `S = round(max_shift · sample_rate)`.
///
/// Zero-fill, not circular: what leaves the window is lost and silence comes in, as with a
/// late or early start of a real recording. Wrapping would splice the end of a recording
/// onto its start, a click no microphone produces. The budget is counted in samples (`S`),
/// not dB: a shifted waveform has a large sample-wise difference from the original while
/// sounding the same, so the host's SNR / L∞ check does not apply to this attack.
pub struct Shift {
    max_shift: f64,
    max_stretch: f64,
}

impl Attack for Shift {
    type Params = ShiftParams;
    const NAME: &'static str = "shift";
    const DESCRIPTION: &'static str =
        "random time shift (zero-fill, up to max_shift seconds) and optional time stretch";

    fn new(p: ShiftParams) -> Result<Self> {
        if !(p.max_shift.is_finite() && p.max_shift >= 0.0) {
            return Err(format!("shift: max_shift must be >= 0 seconds, got {}", p.max_shift).into());
        }
        if !(0.0..1.0).contains(&p.max_stretch) {
            return Err(format!("shift: max_stretch must be in [0, 1), got {}", p.max_stretch).into());
        }
        Ok(Self { max_shift: p.max_shift, max_stretch: p.max_stretch })
    }

    /// A pure shift is checked by the host to the bit; with a stretch the row is resampled,
    /// which no declared budget describes, so only the query count is promised.
    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([Budget::Queries { max: 0 }])
            .with_opt((self.max_stretch == 0.0).then_some(Budget::TimeShift { max_seconds: self.max_shift }))
    }

    fn perturb(&mut self, batch: &Batch<'_>, _oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.audio()?;
        let (n, w) = (batch.len(), batch.width);
        if self.max_shift > 0.0 && batch.sample_rate == 0 {
            return Err("shift: the batch has no sample rate, so max_shift (seconds) has no length".into());
        }
        let max = (self.max_shift * f64::from(batch.sample_rate)).round() as usize;
        // Shifting further than the row is just silence.
        let max = max.min(w) as i64;
        let mut rng = Rng::new(batch.seed ^ SALT);
        let mut out = vec![0f32; n * w];
        for (i, y) in out.chunks_exact_mut(w.max(1)).enumerate().take(n) {
            let x = batch.row(i);
            let shift = rng.below(2 * max as usize + 1) as i64 - max;
            let factor = if self.max_stretch > 0.0 {
                f64::from(rng.uniform((1.0 - self.max_stretch) as f32, (1.0 + self.max_stretch) as f32))
            } else {
                1.0
            };
            resample(x, shift, factor, y);
        }
        Ok(Perturbed::Dense(out))
    }
}

/// `y[t] = x((t − shift) / factor)`, linearly interpolated, silence outside the recording.
pub fn resample(x: &[f32], shift: i64, factor: f64, y: &mut [f32]) {
    let w = x.len() as i64;
    if factor == 1.0 {
        // Exact copy for a plain shift: no interpolation error to explain in a report.
        y.fill(0.0);
        let (from, to) = if shift >= 0 { (0, shift) } else { (-shift, 0) };
        let len = (w - shift.abs()).max(0) as usize;
        y[to as usize..to as usize + len].copy_from_slice(&x[from as usize..from as usize + len]);
    } else {
        let last = (w - 1) as f64;
        for (t, v) in y.iter_mut().enumerate() {
            let u = (t as i64 - shift) as f64 / factor;
            *v = if u < 0.0 || u > last {
                0.0
            } else {
                let i = u.floor() as usize;
                let frac = (u - i as f64) as f32;
                let next = if i + 1 < x.len() { x[i + 1] } else { x[i] };
                x[i] + frac * (next - x[i])
            };
        }
    }
    for v in y {
        *v = budget::clip(*v);
    }
}
