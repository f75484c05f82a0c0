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
//! The normalisation is batch norm written from basic tensor ops (candle-nn's fused ops have
//! no backward for some paths; these do, tested below): batch statistics in training mode,
//! running statistics (momentum 0.1) otherwise, so attacks (which run the model in eval
//! mode) see a fixed function of each waveform. Weights are initialised like PyTorch's
//! defaults, from a seeded ChaCha stream.
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

use candle_core::{CpuStorage, CustomOp2, D, DType, Device, Layout, Shape, Storage, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{Classifier, Mode, init};
use crate::data::ExamplesRef;
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
        Self { kind: AudioModelKind::M5, channels: vec![32, 32, 64, 64], kernel: 80, stride: 4, pool: 4, norm: Norm::Batch }
    }
}

impl AudioModelConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err("model.channels needs at least one block, each with at least one channel".into());
        }
        if self.kernel == 0 || self.stride == 0 || self.pool == 0 {
            return Err("model.kernel, model.stride and model.pool must be at least 1".into());
        }
        Ok(())
    }
}

struct Block {
    weight: Var,
    /// Without normalisation only (batch norm's shift makes a bias redundant).
    bias: Option<Var>,
    norm: Option<BatchNorm>,
    stride: usize,
    padding: usize,
}

struct BatchNorm {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    /// Training batches seen (a scalar, saved with the checkpoint).
    batches: Var,
}

const BN_EPS: f64 = 1e-5;
/// The running statistics are a cumulative average of the batch statistics until this
/// weight is reached, then an exponential one. (A fixed 0.1 from the start, PyTorch's
/// default, leaves the initial variance of 1 dominating for dozens of batches, while the
/// first conv's outputs have a variance near 1e-3: eval-mode predictions of a model trained
/// for one small epoch were then constant.)
const BN_MOMENTUM: f64 = 0.1;

pub struct M5 {
    varmap: VarMap,
    blocks: Vec<Block>,
    head: (Var, Var),
    length: usize,
    /// Zeros appended so that the first conv's windows tile the input exactly.
    pad: usize,
    pool: usize,
    n_classes: usize,
    device: Device,
}

impl M5 {
    /// A fresh model for waveforms of `length` samples.
    pub fn new(cfg: &AudioModelConfig, length: usize, n_classes: usize, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate().map_err(Error::msg)?;
        if length < cfg.kernel {
            return Err(Error::msg(format!(
                "waveforms of {length} samples are shorter than the first conv's kernel ({})",
                cfg.kernel
            )));
        }
        let pad = (cfg.stride - (length - cfg.kernel) % cfg.stride) % cfg.stride;
        let varmap = VarMap::new();
        let mut blocks = Vec::new();
        let mut c_in = 1;
        for (i, &c_out) in cfg.channels.iter().enumerate() {
            let (kernel, stride, padding) = if i == 0 { (cfg.kernel, cfg.stride, 0) } else { (3, 1, 1) };
            let fan_in = (c_in * kernel) as f32;
            let bound = 1.0 / fan_in.sqrt();
            let p = |s: &str| format!("block{i}.{s}");
            let weight = init::uniform(&varmap, seed, &p("conv.weight"), &[c_out, c_in, kernel], bound, device)?;
            let (bias, norm) = match cfg.norm {
                Norm::None => (Some(init::uniform(&varmap, seed, &p("conv.bias"), &[c_out], bound, device)?), None),
                Norm::Batch => {
                    let shape = (1, c_out, 1);
                    let ones = Tensor::ones(shape, DType::F32, device)?;
                    let zeros = Tensor::zeros(shape, DType::F32, device)?;
                    let bn = BatchNorm {
                        gamma: init::insert(&varmap, &p("norm.weight"), ones.clone())?,
                        beta: init::insert(&varmap, &p("norm.bias"), zeros.clone())?,
                        running_mean: init::insert(&varmap, &p("norm.running_mean"), zeros)?,
                        running_var: init::insert(&varmap, &p("norm.running_var"), ones)?,
                        batches: init::insert(&varmap, &p("norm.batches"), Tensor::zeros((), DType::F32, device)?)?,
                    };
                    (None, Some(bn))
                }
            };
            blocks.push(Block { weight, bias, norm, stride, padding });
            c_in = c_out;
        }
        let bound = 1.0 / (c_in as f32).sqrt();
        let w = init::uniform(&varmap, seed, "head.weight", &[c_in, n_classes], bound, device)?;
        let b = init::uniform(&varmap, seed, "head.bias", &[n_classes], bound, device)?;
        let model = Self {
            varmap,
            blocks,
            head: (w, b),
            length,
            pad,
            pool: cfg.pool,
            n_classes,
            device: device.clone(),
        };
        // Fail now, not in the first batch, when the waveform is too short for the blocks.
        let mut len = (length + pad - cfg.kernel) / cfg.stride + 1;
        for i in 0..model.blocks.len() {
            if len < cfg.pool {
                return Err(Error::msg(format!(
                    "waveforms of {length} samples shrink to {len} before block {} (pool {}): use fewer blocks or longer waveforms",
                    i + 1,
                    cfg.pool
                )));
            }
            len /= cfg.pool;
        }
        Ok(model)
    }

    /// Samples per waveform.
    pub fn length(&self) -> usize {
        self.length
    }
}

/// A var as used in this forward pass: tracked for training, detached for attacks.
fn use_var(v: &Var, mode: Mode) -> Tensor {
    if mode.param_grads { v.as_tensor().clone() } else { v.as_tensor().detach() }
}

/// Max over windows of `pool` along the last dim (a trailing partial window is dropped).
fn max_pool(x: &Tensor, pool: usize) -> candle_core::Result<Tensor> {
    if pool == 1 {
        return Ok(x.clone());
    }
    let (b, c, t) = x.dims3()?;
    let keep = t / pool * pool;
    let x = if keep == t { x.clone() } else { x.narrow(2, 0, keep)?.contiguous()? };
    x.reshape((b, c, keep / pool, pool))?.max(D::Minus1)
}

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

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = tensor_of(s1, l1)?.conv1d(&tensor_of(s2, l2)?, 0, self.stride, 1, 1)?.contiguous()?;
        let shape = y.shape().clone();
        let (storage, layout) = y.storage_and_layout();
        let (start, n) = (layout.start_offset(), shape.elem_count());
        match &*storage {
            Storage::Cpu(c) if start == 0 && c.as_slice::<f32>()?.len() == n => Ok((c.clone(), shape)),
            Storage::Cpu(c) => Ok((CpuStorage::F32(c.as_slice::<f32>()?[start..start + n].to_vec()), shape)),
            _ => candle_core::bail!("m5 conv1d: expected a CPU result"),
        }
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
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
            let g = x.transpose(0, 1)?.conv1d(&grad.transpose(0, 1)?.contiguous()?, 0, 1, self.stride, 1)?;
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

impl BatchNorm {
    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let (gamma, beta) = (use_var(&self.gamma, mode), use_var(&self.beta, mode));
        if mode.train {
            let (b, _, t) = x.dims3()?;
            let n = (b * t) as f64;
            let mean = (x.sum_keepdim(2)?.sum_keepdim(0)? / n)?;
            let centred = x.broadcast_sub(&mean)?;
            let var = (centred.sqr()?.sum_keepdim(2)?.sum_keepdim(0)? / n)?;
            // Running statistics (unbiased variance, as PyTorch keeps them).
            let unbiased = if n > 1.0 { (var.detach() * (n / (n - 1.0)))? } else { var.detach() };
            let seen = self.batches.as_tensor().to_scalar::<f32>()? as f64;
            let momentum = (1.0 / (seen + 1.0)).max(BN_MOMENTUM);
            let rm = ((self.running_mean.as_tensor() * (1.0 - momentum))? + (mean.detach() * momentum)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - momentum))? + (unbiased * momentum)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            self.batches.set(&Tensor::new((seen + 1.0) as f32, x.device())?)?;
            let scale = gamma.broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
            centred.broadcast_mul(&scale)?.broadcast_add(&beta)
        } else {
            let scale = gamma.broadcast_div(&(self.running_var.as_tensor().detach() + BN_EPS)?.sqrt()?)?;
            let shift = (beta - self.running_mean.as_tensor().detach().broadcast_mul(&scale)?)?;
            x.broadcast_mul(&scale)?.broadcast_add(&shift)
        }
    }
}

impl Classifier for M5 {
    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
        match x {
            ExamplesRef::Dense { data, width } if *width == self.length => {
                Ok(Tensor::from_slice(data, (data.len() / width, *width), &self.device)?)
            }
            ExamplesRef::Dense { width, .. } => {
                Err(Error::msg(format!("model expects waveforms of {} samples, got {width}", self.length)))
            }
            ExamplesRef::Text(_) => Err(Error::msg("an audio model cannot read text")),
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let mut h = x.unsqueeze(1)?;
        if self.pad > 0 {
            h = h.pad_with_zeros(2, 0, self.pad)?;
        }
        for block in &self.blocks {
            if block.padding > 0 {
                h = h.pad_with_zeros(2, block.padding, block.padding)?;
            }
            h = conv1d(&h, &use_var(&block.weight, mode), block.stride)?;
            if let Some(b) = &block.bias {
                h = h.broadcast_add(&use_var(b, mode).reshape((1, (), 1))?)?;
            }
            h = max_pool(&h, self.pool)?;
            if let Some(norm) = &block.norm {
                h = norm.forward(&h, mode)?;
            }
            h = h.relu()?;
        }
        let pooled = h.mean(D::Minus1)?;
        pooled.matmul(&use_var(&self.head.0, mode))?.broadcast_add(&use_var(&self.head.1, mode))
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn trainable(&self) -> Vec<Var> {
        let mut out = Vec::new();
        for b in &self.blocks {
            out.push(b.weight.clone());
            out.extend(b.bias.clone());
            if let Some(n) = &b.norm {
                out.push(n.gamma.clone());
                out.push(n.beta.clone());
            }
        }
        out.push(self.head.0.clone());
        out.push(self.head.1.clone());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(norm: Norm) -> AudioModelConfig {
        AudioModelConfig { channels: vec![4, 6], kernel: 8, stride: 2, pool: 2, norm, ..Default::default() }
    }

    fn waves(n: usize, len: usize, salt: f32) -> Tensor {
        let data: Vec<f32> = (0..n * len).map(|i| (i as f32 * 0.37 + salt).sin() * 0.5).collect();
        Tensor::from_vec(data, (n, len), &Device::Cpu).unwrap()
    }

    #[test]
    fn same_seed_same_logits() {
        let x = waves(3, 101, 0.0);
        let run = |seed| {
            M5::new(&small(Norm::Batch), 101, 5, seed, &Device::Cpu)
                .unwrap()
                .forward(&x, Mode::EVAL)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert_eq!(run(1).len(), 3);
        assert_eq!(run(1)[0].len(), 5);
    }

    #[test]
    fn gradients_reach_every_trainable_tensor_and_the_input() {
        for norm in [Norm::Batch, Norm::None] {
            let m = M5::new(&small(norm), 101, 5, 3, &Device::Cpu).unwrap();
            let x = Var::from_tensor(&waves(4, 101, 1.0)).unwrap();
            let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
            let logits = m.forward(x.as_tensor(), Mode::TRAIN).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
            let grads = loss.backward().unwrap();
            for (i, v) in m.trainable().iter().enumerate() {
                let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{norm:?}: no gradient for trainable #{i}"));
                let size = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(size > 0.0, "{norm:?}: zero gradient for trainable #{i}");
            }
            let gx = grads.get(x.as_tensor()).expect("input gradient");
            assert_eq!(gx.dims(), &[4, 101]);
            // The padded tail is cut off again: every real sample gets a gradient entry.
            let nonzero = gx.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().filter(|v| **v != 0.0).count();
            assert!(nonzero > 300, "{nonzero} of 404 input samples have a gradient");
        }
    }

    /// The conv op's gradients against direct sums (exact: the conv is linear).
    #[test]
    fn conv_gradients_are_exact() {
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
        let got = |v: &Var| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (name, a, e) in [("input", got(&x), gx), ("weight", got(&w), gw)] {
            let err = a.iter().zip(&e).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
            assert!(err < 1e-4, "{name} gradient off by {err}");
        }
        // Only what is needed: a detached weight gets nothing, and neither does a plain input.
        let y = conv1d(x.as_tensor(), &w.as_tensor().detach(), stride).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some() && grads.get(w.as_tensor()).is_none());
    }

    /// Central differences against autograd, for every trainable tensor and the input.
    #[test]
    fn gradients_match_finite_differences() {
        for norm in [Norm::Batch, Norm::None] {
            let m = M5::new(&small(norm), 101, 5, 3, &Device::Cpu).unwrap();
            let x = Var::from_tensor(&waves(4, 101, 0.5)).unwrap();
            let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
            // Eval statistics with weight gradients: a fixed function of the weights.
            let mode = Mode { train: false, param_grads: true };
            let loss = |x: &Tensor| {
                let logits = m.forward(x, mode).unwrap();
                candle_nn::loss::cross_entropy(&logits, &y).unwrap()
            };
            let grads = loss(x.as_tensor()).backward().unwrap();
            let mut vars = m.trainable();
            vars.push(x.clone());
            for (vi, v) in vars.iter().enumerate() {
                let g = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let orig = v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for j in [0, orig.len() / 3, orig.len() / 2, orig.len() - 1] {
                    let at = |d: f32| {
                        let mut p = orig.clone();
                        p[j] += d;
                        v.set(&Tensor::from_vec(p, v.shape(), &Device::Cpu).unwrap()).unwrap();
                        let l = loss(x.as_tensor()).to_scalar::<f32>().unwrap();
                        v.set(&Tensor::from_vec(orig.clone(), v.shape(), &Device::Cpu).unwrap()).unwrap();
                        l
                    };
                    // A tiny model is full of ReLU and max-pool kinks, and f32 round-off
                    // limits the step: loose bounds, but far tighter than a wrong gradient
                    // (candle's own conv1d backward gave 0.021 where this gives -0.005).
                    let fd = [1e-2f32, 3e-3].map(|h| (at(h) - at(-h)) / (2.0 * h));
                    let fd = if (fd[0] - g[j]).abs() < (fd[1] - g[j]).abs() { fd[0] } else { fd[1] };
                    assert!(
                        (fd - g[j]).abs() <= 2e-3 + 0.25 * fd.abs(),
                        "{norm:?}, tensor #{vi}[{j}]: autograd {} vs finite difference {fd}",
                        g[j]
                    );
                }
            }
        }
    }

    #[test]
    fn eval_mode_uses_running_statistics_and_gives_the_input_gradient_only() {
        let m = M5::new(&small(Norm::Batch), 101, 5, 3, &Device::Cpu).unwrap();
        let x = waves(4, 101, 2.0);
        let before = m.forward(&x, Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        // A training pass moves the running statistics, and so the eval output.
        m.forward(&x, Mode::TRAIN).unwrap();
        let after = m.forward(&x, Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        assert_ne!(before, after);
        // Eval output of one row does not depend on the rest of the batch.
        let one = m.forward(&x.narrow(0, 0, 1).unwrap(), Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        for (a, b) in one[0].iter().zip(&after[0]) {
            assert!((a - b).abs() < 1e-5);
        }
        let xv = Var::from_tensor(&x).unwrap();
        let loss = m.forward(xv.as_tensor(), Mode::EVAL).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        assert!(grads.get(xv.as_tensor()).is_some());
        assert!(m.trainable().iter().all(|v| grads.get(v.as_tensor()).is_none()));
    }

    #[test]
    fn too_short_waveforms_are_refused() {
        assert!(M5::new(&AudioModelConfig::default(), 50, 10, 0, &Device::Cpu).is_err());
        assert!(M5::new(&AudioModelConfig::default(), 1000, 10, 0, &Device::Cpu).is_err());
        assert!(M5::new(&AudioModelConfig::default(), 8000, 10, 0, &Device::Cpu).is_ok());
    }
}


#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p tempered-core --lib model::audio::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn m5_step_times() {
        let stride: usize = std::env::var("M5_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
        let cfg = AudioModelConfig { stride, ..Default::default() };
        println!("stride {stride}");
        let (b, len) = (64, 8000);
        let m = M5::new(&cfg, len, 10, 1, &Device::Cpu).unwrap();
        let data: Vec<f32> = (0..b * len).map(|i| (i as f32 * 0.013).sin() * 0.3).collect();
        let x = Tensor::from_vec(data, (b, len), &Device::Cpu).unwrap();
        let y = Tensor::new((0..b as u32).map(|i| i % 10).collect::<Vec<_>>(), &Device::Cpu).unwrap();
        let time = |name: &str, f: &dyn Fn()| {
            f();
            let t = Instant::now();
            let n = 5;
            for _ in 0..n {
                f();
            }
            println!("{name}: {:.1} ms per batch of {b}", t.elapsed().as_secs_f64() * 1e3 / n as f64);
        };
        time("forward eval", &|| {
            m.forward(&x, Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        });
        time("forward train", &|| {
            m.forward(&x, Mode::TRAIN).unwrap().to_vec2::<f32>().unwrap();
        });
        time("train step (fwd + bwd)", &|| {
            let l = candle_nn::loss::cross_entropy(&m.forward(&x, Mode::TRAIN).unwrap(), &y).unwrap();
            l.backward().unwrap();
        });
        time("input gradient (eval)", &|| {
            let xv = Var::from_tensor(&x).unwrap();
            let l = candle_nn::loss::cross_entropy(&m.forward(xv.as_tensor(), Mode::EVAL).unwrap(), &y).unwrap();
            l.backward().unwrap();
        });
    }
}
