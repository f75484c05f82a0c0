//! Audio: bit-depth reduction, median smoothing and a low-pass filter over each waveform.

use super::Preprocess;
use crate::{Error, Result};

/// Samples rounded to `2^(bits−1)` levels per unit of amplitude, within [−1, 1].
pub struct BitDepth {
    bits: u32,
    levels: f32,
}

impl BitDepth {
    pub fn new(bits: u32) -> Self {
        Self { bits, levels: (1u32 << (bits.clamp(1, 16) - 1)) as f32 }
    }
}

impl Preprocess for BitDepth {
    fn apply(&self, x: &mut [f32], _width: usize, _draw: u64) {
        for v in x {
            *v = ((*v * self.levels).round() / self.levels).clamp(-1.0, 1.0);
        }
    }

    /// A step function's derivative is zero wherever it is defined.
    fn backward(&self, _x: &[f32], _width: usize, _draw: u64, g: &mut [f32]) {
        g.fill(0.0);
    }

    fn describe(&self) -> String {
        format!("samples reduced to {} bits", self.bits)
    }
}

/// Each sample replaced by the median of the `window` samples centred on it (the edge
/// sample repeated past either end).
pub struct Median {
    window: usize,
}

impl Median {
    pub fn new(window: usize) -> Self {
        Self { window: window.max(1) | 1 }
    }

    /// For sample `t` of `row`, the index whose value is the window's median.
    fn argmedians(&self, row: &[f32], out: &mut Vec<usize>) {
        let (h, n) = (self.window / 2, row.len());
        let mut win: Vec<usize> = Vec::with_capacity(self.window);
        out.clear();
        for t in 0..n {
            win.clear();
            win.extend((0..self.window).map(|k| (t + k).saturating_sub(h).min(n - 1)));
            let mid = self.window / 2;
            let (_, m, _) =
                win.select_nth_unstable_by(mid, |&a, &b| row[a].total_cmp(&row[b]).then(a.cmp(&b)));
            out.push(*m);
        }
    }
}

impl Preprocess for Median {
    fn apply(&self, x: &mut [f32], width: usize, _draw: u64) {
        let mut idx = Vec::new();
        for row in x.chunks_mut(width) {
            self.argmedians(row, &mut idx);
            let filtered: Vec<f32> = idx.iter().map(|&i| row[i]).collect();
            row.copy_from_slice(&filtered);
        }
    }

    /// The median selects one input sample: the gradient of output `t` goes to it.
    fn backward(&self, x: &[f32], width: usize, _draw: u64, g: &mut [f32]) {
        let mut idx = Vec::new();
        for (row, gr) in x.chunks(width).zip(g.chunks_mut(width)) {
            self.argmedians(row, &mut idx);
            let mut out = vec![0f32; row.len()];
            for (t, &i) in idx.iter().enumerate() {
                out[i] += gr[t];
            }
            gr.copy_from_slice(&out);
        }
    }

    fn describe(&self) -> String {
        format!("running median over {} samples", self.window)
    }
}

/// A windowed-sinc (Hamming) FIR low-pass of odd length, unit gain at 0 Hz, zero past
/// either end of the waveform.
pub struct LowPass {
    cutoff_hz: f64,
    taps: Vec<f32>,
}

impl LowPass {
    pub fn new(cutoff_hz: f64, sample_rate: u32, taps: usize) -> Result<Self> {
        if sample_rate == 0 || !(cutoff_hz > 0.0 && cutoff_hz < f64::from(sample_rate) / 2.0) {
            return Err(Error::invalid(format!(
                "low-pass cut-off {cutoff_hz} Hz: below half the sample rate ({sample_rate} Hz)"
            )));
        }
        let fc = cutoff_hz / f64::from(sample_rate);
        let m = (taps.max(3) | 1) as i64;
        let h = m / 2;
        let mut k: Vec<f64> = (-h..=h)
            .map(|i| {
                let sinc = if i == 0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * i as f64).sin() / (std::f64::consts::PI * i as f64)
                };
                let hamming = 0.54 + 0.46 * (std::f64::consts::PI * i as f64 / h as f64).cos();
                sinc * hamming
            })
            .collect();
        let sum: f64 = k.iter().sum();
        k.iter_mut().for_each(|v| *v /= sum);
        Ok(Self { cutoff_hz, taps: k.into_iter().map(|v| v as f32).collect() })
    }

    /// `y[t] = Σ_k h[k] x[t + k − H]`; with `flip` the transpose, `Σ_k h[k] x[t − k + H]`.
    fn filter(&self, row: &[f32], flip: bool) -> Vec<f32> {
        let (n, h) = (row.len() as i64, (self.taps.len() / 2) as i64);
        (0..n)
            .map(|t| {
                let mut acc = 0f32;
                for (k, &w) in self.taps.iter().enumerate() {
                    let s = if flip { t - k as i64 + h } else { t + k as i64 - h };
                    if (0..n).contains(&s) {
                        acc += w * row[s as usize];
                    }
                }
                acc
            })
            .collect()
    }
}

impl Preprocess for LowPass {
    fn apply(&self, x: &mut [f32], width: usize, _draw: u64) {
        for row in x.chunks_mut(width) {
            let y = self.filter(row, false);
            row.copy_from_slice(&y);
        }
    }

    /// A linear filter's backward is its transpose.
    fn backward(&self, _x: &[f32], width: usize, _draw: u64, g: &mut [f32]) {
        for row in g.chunks_mut(width) {
            let y = self.filter(row, true);
            row.copy_from_slice(&y);
        }
    }

    fn describe(&self) -> String {
        format!("low-pass at {} Hz ({} taps)", self.cutoff_hz, self.taps.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ⟨J v, u⟩ = ⟨v, Jᵀ u⟩ for a linear preprocessing, with J from `apply` and Jᵀ from
    /// `backward`.
    fn adjoint_holds(p: &dyn Preprocess, n: usize) {
        let v: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
        let u: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) / 5.0).collect();
        let mut jv = v.clone();
        p.apply(&mut jv, n, 0);
        let mut jtu = u.clone();
        p.backward(&v, n, 0, &mut jtu);
        let a: f32 = jv.iter().zip(&u).map(|(a, b)| a * b).sum();
        let b: f32 = v.iter().zip(&jtu).map(|(a, b)| a * b).sum();
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }

    #[test]
    fn the_low_pass_backward_is_its_transpose_and_it_passes_dc() {
        let lp = LowPass::new(1000.0, 8000, 15).unwrap();
        adjoint_holds(&lp, 64);
        let mut dc = vec![0.5f32; 64];
        lp.apply(&mut dc, 64, 0);
        assert!((dc[32] - 0.5).abs() < 1e-5, "{}", dc[32]);
        assert!(LowPass::new(4000.0, 8000, 15).is_err());
    }

    #[test]
    fn the_median_removes_a_spike_and_routes_the_gradient_to_the_median_sample() {
        let m = Median::new(3);
        let x = vec![0.0f32, 0.1, 0.9, 0.2, 0.3];
        let mut y = x.clone();
        m.apply(&mut y, 5, 0);
        assert_eq!(y, vec![0.0, 0.1, 0.2, 0.3, 0.3]);
        // Piecewise a selection: locally linear, so the adjoint identity holds at x.
        let mut g = vec![1.0f32; 5];
        m.backward(&x, 5, 0, &mut g);
        assert_eq!(g, vec![1.0, 1.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn bit_depth_rounds_to_its_levels() {
        let b = BitDepth::new(3);
        let mut x = vec![0.1f32, 0.2, -0.9, 1.0];
        b.apply(&mut x, 4, 0);
        assert_eq!(x, vec![0.0, 0.25, -1.0, 1.0]);
    }
}
