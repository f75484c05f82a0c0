//! A small raw-waveform model and batches shaped like padded FSDD clips.

#![allow(dead_code)]

use tempered_plugin::testing::{TestBatch, TestModel, run};
use tempered_plugin::{Attack, Input, Modality, Perturbed, Rng};

pub const RATE: u32 = 8000;

/// logits = U·tanh(V·x) + b: non-linear, so a single gradient step is not optimal and PGD has
/// something to gain over FGSM.
pub struct TanhNet {
    pub width: usize,
    pub hidden: usize,
    pub classes: usize,
    v: Vec<f32>,
    u: Vec<f32>,
    b: Vec<f32>,
}

impl TanhNet {
    pub fn new(width: usize, hidden: usize, classes: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let sv = 3.0 / (width as f32).sqrt();
        let v = (0..hidden * width).map(|_| rng.normal() * sv).collect();
        let u = (0..classes * hidden).map(|_| rng.normal() * 1.5).collect();
        let b = (0..classes).map(|_| rng.normal() * 0.1).collect();
        Self { width, hidden, classes, v, u, b }
    }

    /// Hidden activations and class probabilities of one row.
    fn forward(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let h: Vec<f32> = self.v.chunks_exact(self.width).map(|v| dot(v, x).tanh()).collect();
        let logits: Vec<f32> =
            self.u.chunks_exact(self.hidden).zip(&self.b).map(|(u, b)| dot(u, &h) + b).collect();
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
        let s: f32 = e.iter().sum();
        (h, e.iter().map(|e| e / s).collect())
    }

    pub fn probs(&self, data: &[f32]) -> Vec<Vec<f32>> {
        data.chunks_exact(self.width).map(|x| self.forward(x).1).collect()
    }

    pub fn losses(&self, data: &[f32], labels: &[u32]) -> Vec<f32> {
        self.loss_grad(Input::Dense { data, width: self.width }, labels).0
    }

    /// The class the model gives each row: used as labels, so clean rows start correct.
    pub fn argmax(&self, data: &[f32]) -> Vec<u32> {
        self.probs(data)
            .iter()
            .map(|p| (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap() as u32)
            .collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

impl TestModel for TanhNet {
    fn n_classes(&self) -> usize {
        self.classes
    }

    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        let Input::Dense { data, width } = input else { panic!("dense only") };
        assert_eq!(width, self.width);
        self.probs(data).concat()
    }

    fn loss_grad(&self, input: Input<'_>, labels: &[u32]) -> (Vec<f32>, Vec<f32>) {
        let Input::Dense { data, width } = input else { panic!("dense only") };
        assert_eq!(width, self.width);
        let mut loss = Vec::new();
        let mut grad = vec![0f32; data.len()];
        for ((x, g), &y) in data.chunks_exact(width).zip(grad.chunks_exact_mut(width)).zip(labels) {
            let (h, p) = self.forward(x);
            loss.push(-p[y as usize].max(1e-30).ln());
            let dlogit: Vec<f32> =
                p.iter().enumerate().map(|(c, &p)| p - if c == y as usize { 1.0 } else { 0.0 }).collect();
            for (k, (h, v)) in h.iter().zip(self.v.chunks_exact(width)).enumerate() {
                let dh: f32 = (0..self.classes).map(|c| self.u[c * self.hidden + k] * dlogit[c]).sum();
                let dz = dh * (1.0 - h * h);
                for (g, v) in g.iter_mut().zip(v) {
                    *g += dz * v;
                }
            }
        }
        (loss, grad)
    }
}

/// `n` decaying tones of different pitch and loudness, the last quarter of each row zero
/// padding; every fifth row is nearly full scale so that clipping matters.
pub fn clips(n: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut data = vec![0f32; n * width];
    let sound = width * 3 / 4;
    for (i, row) in data.chunks_exact_mut(width).enumerate() {
        let freq = rng.uniform(150.0, 1500.0);
        let amp = if i % 5 == 0 { 0.98 } else { rng.uniform(0.05, 0.6) };
        for (t, v) in row[..sound].iter_mut().enumerate() {
            let s = t as f32 / RATE as f32;
            let env = (-3.0 * t as f32 / sound as f32).exp();
            *v = amp * env * (std::f32::consts::TAU * freq * s).sin() + 0.02 * amp * rng.normal();
            *v = v.clamp(-1.0, 1.0);
        }
    }
    data
}

pub fn batch(data: Vec<f32>, width: usize, labels: Vec<u32>, seed: u64) -> TestBatch {
    let mut b = TestBatch::dense(Modality::Audio, data, width, labels);
    b.sample_rate = RATE;
    b.seed = seed;
    b
}

pub fn dense(p: Perturbed) -> Vec<f32> {
    match p {
        Perturbed::Dense(d) => d,
        Perturbed::Text(_) => panic!("audio attacks return dense rows"),
    }
}

/// The host's SNR: over the whole row, in f64.
pub fn snr_db(x: &[f32], adv: &[f32]) -> f64 {
    let s: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
    let d: f64 = x.iter().zip(adv).map(|(&a, &b)| (f64::from(b) - f64::from(a)).powi(2)).sum();
    10.0 * (s / d).log10()
}

/// The host's L∞ distance, exact.
pub fn linf(x: &[f32], adv: &[f32]) -> f64 {
    x.iter().zip(adv).map(|(&a, &b)| (f64::from(b) - f64::from(a)).abs()).fold(0.0, f64::max)
}

pub fn assert_valid_audio(out: &[f32], len: usize) {
    assert_eq!(out.len(), len);
    for &v in out {
        assert!(v.is_finite() && (-1.0..=1.0).contains(&v), "sample {v} out of range");
    }
}

pub fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&v| f64::from(v)).sum::<f64>() / v.len() as f64
}

/// Checks that `A` refuses each params JSON of `cases` with an error that says every one of
/// the words given with it.
pub fn assert_param_errors<A: Attack>(cases: &[(&str, &[&str])]) {
    const W: usize = 400;
    let (b, model) = (batch(clips(1, W, 1), W, vec![0], 0), TanhNet::new(W, 4, 3, 1));
    for (params, words) in cases {
        let e = run::<A>(params, &b, &model).err().unwrap_or_else(|| panic!("{params} was accepted")).0;
        assert!(words.iter().all(|w| e.contains(w)), "{params}: {e}");
    }
}
