//! Windowed-sinc resampling, and fitting a clip into its fixed-length row.

use super::config::Align;

/// Windowed-sinc resampling (Hann window, 16 zero crossings each side), low-passed at the
/// lower of the two Nyquist frequencies; output clipped to [-1, 1].
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let f = Resampler::new(x.len(), from, to);
    (0..f.n_out).map(|n| f.output(x, 0, n)).collect()
}

/// The filter of [`resample`] for an input of `n_in` samples. Any one output can be
/// computed from the input samples its taps cover, which is what lets a crop be resampled
/// without the rest of the file, to the same bits.
pub(super) struct Resampler {
    ratio: f64,
    /// Cutoff in cycles per input sample.
    fc: f64,
    /// Half the filter's width, in input samples.
    half: f64,
    n_in: usize,
    pub(super) n_out: usize,
}

impl Resampler {
    pub(super) fn new(n_in: usize, from: u32, to: u32) -> Self {
        const ZEROS: f64 = 16.0;
        let ratio = to as f64 / from as f64;
        let n_out = ((n_in as f64 * ratio).round() as usize).max(1);
        let fc = 0.5 * ratio.min(1.0);
        Self { ratio, fc, half: ZEROS / (2.0 * fc), n_in, n_out }
    }

    /// The input samples `lo..=hi` that output `n` reads (none when `lo > hi`).
    pub(super) fn taps(&self, n: usize) -> (usize, usize) {
        let p = n as f64 / self.ratio;
        let lo = ((p - self.half).ceil().max(0.0)) as usize;
        let hi = ((p + self.half).floor() as usize).min(self.n_in - 1);
        (lo, hi)
    }

    /// Output `n`, from `x` holding the input from sample `offset` on (at least up to the
    /// last tap of `n`).
    pub(super) fn output(&self, x: &[f32], offset: usize, n: usize) -> f32 {
        let p = n as f64 / self.ratio;
        let (lo, hi) = self.taps(n);
        let (mut acc, mut norm) = (0.0f64, 0.0f64);
        for k in lo..=hi {
            let v = x[k - offset];
            let t = k as f64 - p;
            let arg = 2.0 * self.fc * t;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
            };
            let window = 0.5 + 0.5 * (std::f64::consts::PI * t / self.half).cos();
            let h = sinc * window;
            acc += h * v as f64;
            norm += h;
        }
        // Normalising by the taps' sum keeps DC gain 1 (also at the edges).
        let v = if norm.abs() > 1e-9 { acc / norm } else { 0.0 };
        (v as f32).clamp(-1.0, 1.0)
    }
}

/// Where [`fit_length`] puts a clip of `n` samples in a row of `len`: `k` samples from `src`
/// on go to `dst` on.
pub(super) fn placement(n: usize, len: usize, align: Align) -> (usize, usize, usize) {
    let (src, dst) = match align {
        Align::Start => (0, 0),
        Align::Center if n > len => ((n - len) / 2, 0),
        Align::Center => (0, (len - n) / 2),
    };
    (src, dst, (n - src).min(len - dst))
}

/// Pads with zeros or trims `x` into `out` (whose length is the target).
pub fn fit_length(x: &[f32], out: &mut [f32], align: Align) {
    let (src, dst, k) = placement(x.len(), out.len(), align);
    out.fill(0.0);
    out[dst..dst + k].copy_from_slice(&x[src..src + k]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_a_tone_and_removes_what_cannot_be_represented() {
        let tone = |f: f64, rate: u32, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin()) as f32)
                .collect()
        };
        // 440 Hz at 16 kHz → 8 kHz: the same tone.
        let y = resample(&tone(440.0, 16000, 16000), 16000, 8000);
        let want = tone(440.0, 8000, 8000);
        assert_eq!(y.len(), 8000);
        let err =
            y[200..7800].iter().zip(&want[200..7800]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 0.01, "{err}");
        // 6 kHz is above the new Nyquist (4 kHz): filtered out.
        let y = resample(&tone(6000.0, 16000, 16000), 16000, 8000);
        let rms = (y[200..7800].iter().map(|v| v * v).sum::<f32>() / 7600.0).sqrt();
        assert!(rms < 0.01, "{rms}");
        // Upsampling 8 → 11.025 kHz keeps the length ratio.
        assert_eq!(resample(&tone(440.0, 8000, 8000), 8000, 11025).len(), 11025);
    }

    #[test]
    fn fixed_length_pads_and_trims() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut out = [9.0; 3];
        fit_length(&x, &mut out, Align::Center);
        assert_eq!(out, [2.0, 3.0, 4.0]);
        fit_length(&x, &mut out, Align::Start);
        assert_eq!(out, [1.0, 2.0, 3.0]);
        let mut out = [9.0; 8];
        fit_length(&x, &mut out, Align::Center);
        assert_eq!(out, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]);
        fit_length(&x, &mut out, Align::Start);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0, 0.0]);
    }
}
