//! Audio models: M5, a raw-waveform 1-D CNN (Dai et al. 2017, "Very deep convolutional
//! neural networks for raw waveforms"), so that gradients reach every sample.
//!
//! ```text
//! waveform [n, length]
//!   → conv1d(kernel 80, stride 4) → max-pool 4 → norm → ReLU        (block 1)
//!   → conv1d(kernel 3, "same") → max-pool 4 → norm → ReLU           (blocks 2…, one per `channels` entry)
//!   → mean over time → linear → logits [n, classes]
//! ```
//!
//! Two departures from the paper, both for speed on a CPU: pooling comes before the
//! normalisation (max-pooling commutes with ReLU and with a per-channel affine map of positive
//! scale, so this is the paper's block whenever the learnt scale stays positive, and the
//! norm and ReLU run on a quarter of the samples), and the default widths are the small
//! `[32, 32, 64, 64]` of the PyTorch M5 tutorial rather than the paper's `[128, 128, 256, 512]`.
//!
//! The normalisation is batch norm: batch statistics in training mode, running statistics
//! otherwise (a cumulative average over the first ten batches, then momentum 0.1), so
//! attacks, which run the model in eval mode, see a fixed function of each waveform.
//! Weights are initialised like PyTorch's defaults, from a seeded ChaCha stream.
//!
//! On the CPU the forward and backward passes are written by hand ([`m5`], in `model::cpu`) and wired into
//! candle's autograd as one custom op over the waveforms and a flat parameter vector, so the
//! shared trainer and AdamW work on it unchanged; the oracle's input gradient skips candle
//! altogether ([`Classifier::input_loss_grad`]). A test checks both against the same model
//! written with candle tensor ops.
//!
//! On any other device (CUDA) the model runs the same function built from candle ops
//! ([`generic`]: im2col + matmul convs, never candle's `conv1d`), with candle's autograd for
//! every gradient, on the same parameter vector: a checkpoint moves between the two. Tests
//! hold the generic path to the kernel's logits, loss and gradients on the CPU
//! ([`M5::with_generic_path`] forces it there).
//!
//! ```toml
//! [model]
//! kind = "m5"
//! channels = [32, 32, 64, 64]   # one conv block per entry
//! kernel = 80                   # first conv: 10 ms at 8 kHz
//! stride = 4
//! pool = 4
//! norm = "batch"                # or "none"
//! ```

mod generic;

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::cpu::m5;
use super::params::ParamBuilder;
use super::{Classifier, Mode};
use crate::error::Invalid;
use crate::examples::ExamplesRef;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioModelKind {
    #[default]
    M5,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    #[default]
    Batch,
    None,
}

/// `[model]` of an audio pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioModelConfig {
    pub kind: AudioModelKind,
    /// Output channels of each conv block.
    pub channels: Vec<usize>,
    /// Kernel size of the first conv (later convs use 3).
    pub kernel: usize,
    /// Stride of the first conv.
    pub stride: usize,
    /// Max-pooling window (and stride) after every conv.
    pub pool: usize,
    pub norm: Norm,
}

impl Default for AudioModelConfig {
    fn default() -> Self {
        Self {
            kind: AudioModelKind::M5,
            channels: vec![32, 32, 64, 64],
            kernel: 80,
            stride: 4,
            pool: 4,
            norm: Norm::Batch,
        }
    }
}

impl AudioModelConfig {
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err("model.channels needs at least one block, each with at least one channel".into());
        }
        if self.kernel == 0 || self.stride == 0 || !(1..=255).contains(&self.pool) {
            return Err(
                "model.kernel and model.stride must be at least 1, model.pool between 1 and 255".into()
            );
        }
        Ok(())
    }
}

pub struct M5 {
    varmap: VarMap,
    /// Every trainable value, laid out as [`m5::Arch`] says.
    params: Var,
    /// Running means and variances, then the number of training batches seen.
    running: Var,
    arch: Arc<m5::Arch>,
    device: Device,
    /// Whether passes go through [`generic`] (candle ops) rather than the CPU kernel.
    generic: bool,
}

impl M5 {
    /// A fresh model for waveforms of `length` samples.
    pub fn new(
        cfg: &AudioModelConfig,
        length: usize,
        n_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let norm = cfg.norm == Norm::Batch;
        let arch = m5::Arch::new(length, &cfg.channels, cfg.kernel, cfg.stride, cfg.pool, norm, n_classes)?;
        // PyTorch's defaults: U(±1/√fan_in) for conv and linear weights and biases; γ = 1, β = 0.
        let mut theta = vec![0f32; arch.n_params];
        let root = ParamBuilder::new(seed, device);
        // Drawn under PyTorch's layer names, then packed into the kernel's one flat vector
        // of parameters (`m5.params`).
        let uniform = |name: &str, n: usize, bound: f32| -> Vec<f32> {
            let mut rng = root.rng(name);
            (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
        };
        for (i, b) in arch.blocks.iter().enumerate() {
            let bound = 1.0 / ((b.c_in * b.k) as f32).sqrt();
            // Drawn in PyTorch's [c_out, c_in, k] order, stored as [c_out, k, c_in].
            let w = uniform(&format!("block{i}.conv.weight"), b.c_out * b.c_in * b.k, bound);
            for o in 0..b.c_out {
                for c in 0..b.c_in {
                    for j in 0..b.k {
                        theta[b.w + (o * b.k + j) * b.c_in + c] = w[(o * b.c_in + c) * b.k + j];
                    }
                }
            }
            if norm {
                theta[b.a..b.a + b.c_out].fill(1.0);
            } else {
                theta[b.a..b.a + b.c_out].copy_from_slice(&uniform(
                    &format!("block{i}.conv.bias"),
                    b.c_out,
                    bound,
                ));
            }
        }
        let c = arch.blocks.last().expect("validated: at least one block").c_out;
        let bound = 1.0 / (c as f32).sqrt();
        theta[arch.head_w..arch.head_b].copy_from_slice(&uniform("head.weight", c * n_classes, bound));
        theta[arch.head_b..].copy_from_slice(&uniform("head.bias", n_classes, bound));
        let mut running = vec![0f32; arch.n_running];
        for b in &arch.blocks {
            running[b.rv..b.rv + b.c_out].fill(1.0);
        }
        let pb = root.pp("m5");
        let params = pb.var("params", Tensor::from_vec(theta, arch.n_params, device)?)?;
        let running = pb.frozen().var("running", Tensor::from_vec(running, arch.n_running, device)?)?;
        let (varmap, _) = pb.build();
        Ok(Self {
            varmap,
            params,
            running,
            arch: Arc::new(arch),
            device: device.clone(),
            generic: !device.is_cpu(),
        })
    }

    /// The same model on the candle-ops path even on the CPU, where it would otherwise use
    /// the hand-written kernel: what the tests compare the two with, and a way to rehearse
    /// on the CPU what a GPU run computes. Off the CPU the generic path is the only one.
    pub fn with_generic_path(mut self) -> Self {
        self.generic = true;
        self
    }

    /// Whether passes run on candle ops ([`generic`]) rather than the CPU kernel.
    pub fn uses_generic_path(&self) -> bool {
        self.generic
    }

    /// Samples per waveform.
    pub fn length(&self) -> usize {
        self.arch.length
    }
}

fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// The whole model as one autograd op: `(waveforms [n, length], params) → logits`.
struct M5Op {
    arch: Arc<m5::Arch>,
    running: Var,
    train: bool,
    need_x: bool,
    need_params: bool,
    /// The forward pass's activations, for the backward pass.
    cache: Mutex<Option<m5::Forward>>,
}

impl CustomOp2 for M5Op {
    fn name(&self) -> &'static str {
        "m5"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, width) = l1.shape().dims2()?;
        if width != self.arch.length {
            candle_core::bail!("M5 expects waveforms of {} samples, got {width}", self.arch.length);
        }
        let (x, theta) = (crate::tensor::cpu_f32(s1, l1, "m5")?, crate::tensor::cpu_f32(s2, l2, "m5")?);
        let mut running = self.running.as_tensor().to_vec1::<f32>()?;
        let fwd = m5::forward(&self.arch, theta, &mut running, x, n, self.train, threads());
        if self.train {
            self.running.set(&Tensor::from_vec(running, self.arch.n_running, &Device::Cpu)?)?;
        }
        let logits = fwd.logits();
        if self.need_x || self.need_params {
            *self.cache.lock().expect("M5 cache") = Some(fwd);
        }
        Ok((CpuStorage::F32(logits), Shape::from((n, self.arch.classes))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let theta = params.to_vec1::<f32>()?;
        let fwd = match self.cache.lock().expect("M5 cache").take() {
            Some(f) => f,
            None => {
                // Recomputed with the same statistics; the running ones are not touched again.
                let mut running = self.running.as_tensor().to_vec1::<f32>()?;
                let (n, _) = x.dims2()?;
                m5::forward(
                    &self.arch,
                    &theta,
                    &mut running,
                    &x.flatten_all()?.to_vec1::<f32>()?,
                    n,
                    self.train,
                    threads(),
                )
            }
        };
        let dl = grad.flatten_all()?.to_vec1::<f32>()?;
        let (dx, dp) = m5::backward(&self.arch, &theta, &fwd, &dl, self.need_x, self.need_params, threads());
        let dx = dx.map(|v| Tensor::from_vec(v, x.shape(), x.device())).transpose()?;
        let dp = dp.map(|v| Tensor::from_vec(v, params.shape(), params.device())).transpose()?;
        Ok((dx, dp))
    }
}

impl Classifier for M5 {
    fn name(&self) -> &str {
        "M5"
    }
    fn n_classes(&self) -> usize {
        self.arch.classes
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
        match x {
            ExamplesRef::Dense { data, width } if *width == self.arch.length => {
                Ok(Tensor::from_slice(data, (data.len() / width, *width), &self.device)?)
            }
            ExamplesRef::Dense { width, .. } => Err(Error::invalid(format!(
                "model expects waveforms of {} samples, got {width}",
                self.arch.length
            ))),
            ExamplesRef::Text(_) => Err(Error::invalid("an audio model cannot read text")),
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let params =
            if mode.param_grads { self.params.as_tensor().clone() } else { self.params.as_tensor().detach() };
        if self.generic {
            return generic::forward(&self.arch, &params, &self.running, x, mode.train);
        }
        let op = M5Op {
            arch: self.arch.clone(),
            running: self.running.clone(),
            train: mode.train,
            need_x: x.track_op(),
            need_params: mode.param_grads,
            cache: Mutex::new(None),
        };
        x.to_dtype(DType::F32)?.contiguous()?.apply_op2(&params, op)
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn trainable(&self) -> Vec<Var> {
        vec![self.params.clone()]
    }

    /// Eval-mode forward and backward to the waveform only, without candle: the PGD step.
    /// `None` on the generic path: the kernel reads the weights as host memory, so off the
    /// CPU the oracle's autograd fallback runs the model where it lives.
    fn input_loss_grad(
        &self,
        x: &[f32],
        labels: &[u32],
        loss: &mut [f32],
        grad: &mut [f32],
    ) -> Option<Result<()>> {
        if self.generic {
            return None;
        }
        let mut run = || -> Result<()> {
            let theta = self.params.as_tensor().to_vec1::<f32>()?;
            let mut running = self.running.as_tensor().to_vec1::<f32>()?;
            let (n, k) = (labels.len(), self.arch.classes);
            if x.len() != n * self.arch.length || grad.len() != x.len() || loss.len() != n {
                return Err(Error::invalid("M5 input gradient: buffer sizes do not match the batch"));
            }
            let fwd = m5::forward(&self.arch, &theta, &mut running, x, n, false, threads());
            let logits = fwd.logits();
            let mut dl = vec![0f32; n * k];
            for i in 0..n {
                let row = &logits[i * k..(i + 1) * k];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
                let y = labels[i] as usize;
                loss[i] = (sum.ln() + max - row[y] as f64) as f32;
                for (j, d) in dl[i * k..(i + 1) * k].iter_mut().enumerate() {
                    *d = ((row[j] as f64 - max).exp() / sum - (j == y) as u8 as f64) as f32;
                }
            }
            let (dx, _) = m5::backward(&self.arch, &theta, &fwd, &dl, true, false, threads());
            grad.copy_from_slice(&dx.expect("asked for the input gradient"));
            Ok(())
        };
        Some(run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Storage};

    fn small(norm: Norm) -> AudioModelConfig {
        AudioModelConfig { channels: vec![4, 6], kernel: 8, stride: 2, pool: 2, norm, ..Default::default() }
    }

    fn waves(n: usize, len: usize, salt: f32) -> Tensor {
        let data: Vec<f32> = (0..n * len)
            .map(|i| ((i as f32 * 0.37 + salt).sin() * 0.5) * (1.0 + (i % 7) as f32 * 0.1))
            .collect();
        Tensor::from_vec(data, (n, len), &Device::Cpu).unwrap()
    }

    fn vec2(t: &Tensor) -> Vec<Vec<f32>> {
        t.to_vec2::<f32>().unwrap()
    }

    /// The same model written with candle tensor ops (and the conv op below, whose gradients
    /// are checked against direct sums), as the reference for the kernel.
    fn reference(m: &M5, params: &Tensor, running: &[f32], x: &Tensor, train: bool) -> Tensor {
        let a = &m.arch;
        let b0 = &a.blocks[0];
        let mut h = x.unsqueeze(1).unwrap();
        let padded = b0.l_in;
        if padded > a.length {
            h = h.pad_with_zeros(2, 0, padded - a.length).unwrap();
        }
        for blk in &a.blocks {
            if blk.pad > 0 {
                h = h.pad_with_zeros(2, blk.pad, blk.pad).unwrap();
            }
            let w = params
                .narrow(0, blk.w, blk.c_out * blk.k * blk.c_in)
                .unwrap()
                .reshape((blk.c_out, blk.k, blk.c_in))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap();
            h = conv1d(&h, &w, blk.stride).unwrap();
            let (n, c, t) = h.dims3().unwrap();
            let keep = t / a.pool * a.pool;
            h = h
                .narrow(2, 0, keep)
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape((n, c, keep / a.pool, a.pool))
                .unwrap();
            h = h.max(D::Minus1).unwrap();
            let col =
                |off: usize| params.narrow(0, off, blk.c_out).unwrap().reshape((1, blk.c_out, 1)).unwrap();
            if a.norm {
                let (mu, var) = if train {
                    let cnt = (n * h.dim(2).unwrap()) as f64;
                    let mu = (h.sum_keepdim(2).unwrap().sum_keepdim(0).unwrap() / cnt).unwrap();
                    let d = h.broadcast_sub(&mu).unwrap();
                    let var =
                        (d.sqr().unwrap().sum_keepdim(2).unwrap().sum_keepdim(0).unwrap() / cnt).unwrap();
                    (mu, var)
                } else {
                    let r = |off| {
                        Tensor::from_slice(&running[off..off + blk.c_out], (1, blk.c_out, 1), &Device::Cpu)
                            .unwrap()
                    };
                    (r(blk.rm), r(blk.rv))
                };
                let zhat = h
                    .broadcast_sub(&mu)
                    .unwrap()
                    .broadcast_div(&(var + m5::BN_EPS).unwrap().sqrt().unwrap())
                    .unwrap();
                h = zhat.broadcast_mul(&col(blk.a)).unwrap().broadcast_add(&col(blk.b)).unwrap();
            } else {
                h = h.broadcast_add(&col(blk.a)).unwrap();
            }
            h = h.relu().unwrap();
        }
        let c = a.blocks.last().unwrap().c_out;
        let hw = params.narrow(0, a.head_w, c * a.classes).unwrap().reshape((c, a.classes)).unwrap();
        let hb = params.narrow(0, a.head_b, a.classes).unwrap();
        h.mean(D::Minus1).unwrap().matmul(&hw).unwrap().broadcast_add(&hb).unwrap()
    }

    #[test]
    fn kernel_matches_candle_ops_forward_and_backward() {
        for norm in [Norm::Batch, Norm::None] {
            for train in [true, false] {
                let m = M5::new(&small(norm), 101, 5, 3, &Device::Cpu).unwrap();
                // Running statistics away from their initial values, for the eval case.
                m.forward(&waves(6, 101, 2.0), Mode::TRAIN).unwrap();
                let running = m.running.as_tensor().to_vec1::<f32>().unwrap();
                let x = Var::from_tensor(&waves(7, 101, 0.5)).unwrap();
                let r = waves(7, 5, 1.5);
                let mode = Mode { train, param_grads: true };
                let got = m.forward(x.as_tensor(), mode).unwrap();
                let g = (&got * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let want = reference(&m, m.params.as_tensor(), &running, x.as_tensor(), train);
                let w = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let close = |a: &Tensor, b: &Tensor, what: &str| {
                    let (a, b) = (
                        a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                        b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    );
                    let scale = b.iter().fold(0f32, |s, v| s.max(v.abs())).max(1e-3);
                    let err = a.iter().zip(&b).fold(0f32, |s, (a, b)| s.max((a - b).abs()));
                    assert!(
                        err <= 1e-4 * scale + 1e-6,
                        "{norm:?} train={train} {what}: max error {err} (scale {scale})"
                    );
                };
                close(&got, &want, "logits");
                close(
                    g.get(m.params.as_tensor()).unwrap(),
                    w.get(m.params.as_tensor()).unwrap(),
                    "parameter gradient",
                );
                close(g.get(x.as_tensor()).unwrap(), w.get(x.as_tensor()).unwrap(), "input gradient");
            }
        }
    }

    #[test]
    fn the_oracle_path_gives_the_autograd_input_gradient() {
        let m = M5::new(&small(Norm::Batch), 101, 5, 3, &Device::Cpu).unwrap();
        m.forward(&waves(6, 101, 2.0), Mode::TRAIN).unwrap();
        let x = waves(5, 101, 0.1);
        let labels = [0u32, 1, 2, 3, 4];
        let (mut loss, mut grad) = (vec![0f32; 5], vec![0f32; 505]);
        m.input_loss_grad(&x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), &labels, &mut loss, &mut grad)
            .unwrap()
            .unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let logits = m.forward(xv.as_tensor(), Mode::EVAL).unwrap();
        let y = Tensor::new(&labels, &Device::Cpu).unwrap();
        let per_row = candle_nn::ops::log_softmax(&logits, D::Minus1)
            .unwrap()
            .gather(&y.unsqueeze(1).unwrap(), 1)
            .unwrap()
            .neg()
            .unwrap();
        let want_loss = per_row.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = per_row
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(xv.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in loss.iter().zip(&want_loss) {
            assert!((a - b).abs() < 1e-5);
        }
        let err = grad.iter().zip(&want).fold(0f32, |s, (a, b)| s.max((a - b).abs()));
        assert!(err < 1e-6, "{err}");
        assert!(grad.iter().any(|&g| g != 0.0));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let cfg = AudioModelConfig { channels: vec![8, 8], kernel: 16, stride: 4, ..Default::default() };
        let m = M5::new(&cfg, 400, 4, 9, &Device::Cpu).unwrap();
        let arch = &m.arch;
        let theta = m.params.as_tensor().to_vec1::<f32>().unwrap();
        let x = waves(19, 400, 0.3).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let dl: Vec<f32> = (0..19 * 4).map(|i| (i as f32 * 0.3).cos()).collect();
        let run = |threads| {
            let mut running = m.running.as_tensor().to_vec1::<f32>().unwrap();
            let f = m5::forward(arch, &theta, &mut running, &x, 19, true, threads);
            let (dx, dp) = m5::backward(arch, &theta, &f, &dl, true, true, threads);
            (f.logits(), running, dx.unwrap(), dp.unwrap())
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn same_seed_same_logits() {
        let x = waves(3, 101, 0.0);
        let run = |seed| {
            vec2(
                &M5::new(&small(Norm::Batch), 101, 5, seed, &Device::Cpu)
                    .unwrap()
                    .forward(&x, Mode::EVAL)
                    .unwrap(),
            )
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert_eq!((run(1).len(), run(1)[0].len()), (3, 5));
    }

    #[test]
    fn gradients_reach_every_parameter_and_the_input() {
        for norm in [Norm::Batch, Norm::None] {
            let m = M5::new(&small(norm), 101, 5, 3, &Device::Cpu).unwrap();
            let x = Var::from_tensor(&waves(4, 101, 1.0)).unwrap();
            let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
            let loss =
                candle_nn::loss::cross_entropy(&m.forward(x.as_tensor(), Mode::TRAIN).unwrap(), &y).unwrap();
            let grads = loss.backward().unwrap();
            let g = grads.get(m.params.as_tensor()).expect("parameter gradient").to_vec1::<f32>().unwrap();
            let a = &m.arch;
            let mut parts: Vec<(String, std::ops::Range<usize>)> = Vec::new();
            for (i, b) in a.blocks.iter().enumerate() {
                parts.push((format!("block {i} weights"), b.w..b.w + b.c_out * b.k * b.c_in));
                parts.push((format!("block {i} γ / bias"), b.a..b.a + b.c_out));
                if norm == Norm::Batch {
                    parts.push((format!("block {i} β"), b.b..b.b + b.c_out));
                }
            }
            parts.push(("head weights".into(), a.head_w..a.head_b));
            parts.push(("head bias".into(), a.head_b..a.n_params));
            for (name, r) in parts {
                assert!(g[r].iter().any(|&v| v != 0.0), "{norm:?}: no gradient reaches {name}");
            }
            let gx = grads
                .get(x.as_tensor())
                .expect("input gradient")
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(
                gx.iter().filter(|v| **v != 0.0).count() > 300,
                "every real sample gets a gradient entry"
            );
        }
    }

    #[test]
    fn eval_mode_uses_running_statistics_and_gives_the_input_gradient_only() {
        let m = M5::new(&small(Norm::Batch), 101, 5, 3, &Device::Cpu).unwrap();
        let x = waves(4, 101, 2.0);
        let before = vec2(&m.forward(&x, Mode::EVAL).unwrap());
        // A training pass moves the running statistics, and so the eval output.
        m.forward(&x, Mode::TRAIN).unwrap();
        let after = vec2(&m.forward(&x, Mode::EVAL).unwrap());
        assert_ne!(before, after);
        // The first training batch sets the running statistics to its own (cumulative average).
        let one = vec2(&m.forward(&x.narrow(0, 0, 1).unwrap(), Mode::EVAL).unwrap());
        for (a, b) in one[0].iter().zip(&after[0]) {
            assert!((a - b).abs() < 1e-5, "eval output of a row does not depend on the batch");
        }
        let xv = Var::from_tensor(&x).unwrap();
        let grads = m.forward(xv.as_tensor(), Mode::EVAL).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(xv.as_tensor()).is_some());
        assert!(grads.get(m.params.as_tensor()).is_none());
    }

    #[test]
    fn too_short_waveforms_are_refused() {
        assert!(M5::new(&AudioModelConfig::default(), 50, 10, 0, &Device::Cpu).is_err());
        assert!(M5::new(&AudioModelConfig::default(), 1000, 10, 0, &Device::Cpu).is_err());
        assert!(M5::new(&AudioModelConfig::default(), 8000, 10, 0, &Device::Cpu).is_ok());
    }

    /// The conv op's gradients against direct sums (exact: the conv is linear).
    #[test]
    fn reference_conv_gradients_are_exact() {
        let (b, ci, l, co, k, stride) = (3, 2, 23, 4, 5, 2);
        let lo = (l - k) / stride + 1;
        let xs: Vec<f32> = (0..b * ci * l).map(|i| (i as f32 * 0.7).sin()).collect();
        let ws: Vec<f32> = (0..co * ci * k).map(|i| (i as f32 * 1.3).cos()).collect();
        let rs: Vec<f32> = (0..b * co * lo).map(|i| (i as f32 * 0.11).sin()).collect();
        let x = Var::from_vec(xs.clone(), (b, ci, l), &Device::Cpu).unwrap();
        let w = Var::from_vec(ws.clone(), (co, ci, k), &Device::Cpu).unwrap();
        let r = Tensor::from_vec(rs.clone(), (b, co, lo), &Device::Cpu).unwrap();
        let y = conv1d(x.as_tensor(), w.as_tensor(), stride).unwrap();
        let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (mut gx, mut gw) = (vec![0f32; xs.len()], vec![0f32; ws.len()]);
        for bb in 0..b {
            for o in 0..co {
                for t in 0..lo {
                    let g = rs[(bb * co + o) * lo + t];
                    for i in 0..ci {
                        for j in 0..k {
                            gx[(bb * ci + i) * l + t * stride + j] += g * ws[(o * ci + i) * k + j];
                            gw[(o * ci + i) * k + j] += g * xs[(bb * ci + i) * l + t * stride + j];
                        }
                    }
                }
            }
        }
        let got =
            |v: &Var| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (name, a, e) in [("input", got(&x), gx), ("weight", got(&w), gw)] {
            let err = a.iter().zip(&e).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
            assert!(err < 1e-4, "{name} gradient off by {err}");
        }
    }

    // The reference's conv: candle's forward (checked against direct sums above) with a
    // correct backward. candle 0.11.1's own `Conv1D` backward is wrong on the CPU.
    /// `conv1d` (no padding, no dilation) with a backward that is correct and computes only the
    /// gradients someone needs.
    ///
    /// candle 0.11.1's `Conv1D` backward is wrong on the CPU, for both arguments (caught by the
    /// finite-difference test below): the weight gradient convolves with the transposed output
    /// gradient, a non-contiguous kernel, and `cpu_backend::conv1d` copies such a kernel to a
    /// contiguous buffer but then multiplies with the original storage; the input gradient's
    /// `conv_transpose1d` (col2im path) disagrees with a direct sum as well. It also always
    /// computes both gradients, so an attack (weights detached) would pay for weight gradients
    /// and training for the gradient of the waveform.
    ///
    /// This op runs candle's forward (checked against a direct sum), and in backward: for the
    /// input, `grad` times the weights (a batched matmul) scattered back over the windows
    /// (col2im, a plain loop); for the weights, candle's forward conv of the input with the
    /// output gradient made contiguous as the kernel. Each only when `need_input` /
    /// `need_weight` says so.
    struct Conv1d {
        stride: usize,
        need_input: bool,
        need_weight: bool,
    }

    /// A contiguous copy of a CPU storage as a tensor without history.
    fn tensor_of(s: &CpuStorage, l: &Layout) -> candle_core::Result<Tensor> {
        let data = s.as_slice::<f32>()?;
        if !l.is_contiguous() {
            candle_core::bail!("m5 conv1d expects contiguous inputs");
        }
        let n = l.shape().elem_count();
        Tensor::from_slice(&data[l.start_offset()..l.start_offset() + n], l.shape(), &Device::Cpu)
    }

    impl CustomOp2 for Conv1d {
        fn name(&self) -> &'static str {
            "m5-conv1d"
        }

        fn cpu_fwd(
            &self,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            let y = tensor_of(s1, l1)?.conv1d(&tensor_of(s2, l2)?, 0, self.stride, 1, 1)?.contiguous()?;
            let shape = y.shape().clone();
            let (storage, layout) = y.storage_and_layout();
            let (start, n) = (layout.start_offset(), shape.elem_count());
            match &*storage {
                Storage::Cpu(c) if start == 0 && c.as_slice::<f32>()?.len() == n => Ok((c.clone(), shape)),
                Storage::Cpu(c) => {
                    Ok((CpuStorage::F32(c.as_slice::<f32>()?[start..start + n].to_vec()), shape))
                }
                _ => candle_core::bail!("m5 conv1d: expected a CPU result"),
            }
        }

        fn bwd(
            &self,
            x: &Tensor,
            w: &Tensor,
            _res: &Tensor,
            grad: &Tensor,
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
            let (b, c_in, l) = x.dims3()?;
            let (c_out, _, k) = w.dims3()?;
            let t_out = grad.dim(2)?;
            let gx = if self.need_input {
                // cols[b, t, (i, j)] = Σ_o grad[b, o, t] · w[o, i, j], then each window's column
                // is added back where it was read from: dx[b, i, t·stride + j].
                let w2 = w.reshape((c_out, c_in * k))?;
                let cols = grad.transpose(1, 2)?.broadcast_matmul(&w2)?.flatten_all()?.to_vec1::<f32>()?;
                let mut dx = vec![0f32; b * c_in * l];
                let ck = c_in * k;
                for bb in 0..b {
                    for t in 0..t_out {
                        let col = &cols[(bb * t_out + t) * ck..][..ck];
                        for i in 0..c_in {
                            let row = &mut dx[(bb * c_in + i) * l + t * self.stride..][..k];
                            for (d, &c) in row.iter_mut().zip(&col[i * k..(i + 1) * k]) {
                                *d += c;
                            }
                        }
                    }
                }
                Some(Tensor::from_vec(dx, (b, c_in, l), x.device())?)
            } else {
                None
            };
            let gw = if self.need_weight {
                // dw[o, i, j] = Σ_b,t grad[b, o, t] · x[b, i, t·stride + j]: a convolution over
                // (batch, time) with the output gradient as the (contiguous) kernel, dilated by
                // the stride.
                let g =
                    x.transpose(0, 1)?.conv1d(&grad.transpose(0, 1)?.contiguous()?, 0, 1, self.stride, 1)?;
                Some(g.narrow(2, 0, k)?.transpose(0, 1)?.contiguous()?)
            } else {
                None
            };
            Ok((gx, gw))
        }
    }

    /// `x` `[b, c_in, l]` (with `(l − k)` a multiple of `stride`) convolved with `w` `[c_out, c_in, k]`.
    fn conv1d(x: &Tensor, w: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
        if !x.device().is_cpu() {
            // Other devices: candle's own op (its weight gradient is the CPU one's to check).
            return x.conv1d(w, 0, stride, 1, 1);
        }
        let op = Conv1d { stride, need_input: x.track_op(), need_weight: w.track_op() };
        x.contiguous()?.apply_op2(&w.contiguous()?, op)
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p tempered-nn --lib model::audio::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn m5_step_times() {
        let stride: usize = std::env::var("M5_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
        let cfg = AudioModelConfig { stride, ..Default::default() };
        let (b, len) = (64, 8000);
        let m = M5::new(&cfg, len, 10, 1, &Device::Cpu).unwrap();
        println!("stride {stride}, {} threads", threads());
        let data: Vec<f32> = (0..b * len).map(|i| (i as f32 * 0.013).sin() * 0.3).collect();
        let x = Tensor::from_vec(data.clone(), (b, len), &Device::Cpu).unwrap();
        let labels: Vec<u32> = (0..b as u32).map(|i| i % 10).collect();
        let y = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
        // The fastest of ten: the machine is shared.
        let time = |name: &str, f: &dyn Fn()| {
            let best = (0..10)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min);
            println!("{name}: {:.1} ms per batch of {b}", best * 1e3);
        };
        time("forward eval", &|| {
            m.forward(&x, Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        });
        time("train step (fwd + bwd)", &|| {
            let l = candle_nn::loss::cross_entropy(&m.forward(&x, Mode::TRAIN).unwrap(), &y).unwrap();
            l.backward().unwrap();
        });
        time("input gradient (oracle path)", &|| {
            let (mut loss, mut grad) = (vec![0f32; b], vec![0f32; b * len]);
            m.input_loss_grad(&data, &labels, &mut loss, &mut grad).unwrap().unwrap();
        });
    }
}
