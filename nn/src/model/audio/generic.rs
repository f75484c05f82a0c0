//! M5 written with candle tensor ops only, so that it runs, and trains through candle's
//! autograd, on any device (the hand-written [`super::kernel`] is CPU code).
//!
//! It computes the kernel's function on the kernel's flat parameter and running-statistics
//! vectors (same layout, so checkpoints move between the two), and gives the gradients the
//! kernel gives:
//!
//! - Each conv is im2col + one matmul. candle's `conv1d` is avoided: its CPU backward is
//!   wrong in 0.11.1, and a path that trains differently on the CPU than on a GPU could not be
//!   tested here. Activations are channels-last (`[n, time, channels]`) like the kernel's, so
//!   a window of `k` rows is `k · c_in` consecutive values: grouping the rows in frames of
//!   `stride` makes window `t` the frames `t … t + ⌈k / stride⌉ − 1`, and the im2col matrix
//!   is `⌈k / stride⌉` shifted views of the frames side by side (`narrow` + `cat`, whose
//!   backward is plain slicing and adding: no scatter, no atomics, the same sums on every run).
//! - Max-pooling sends the gradient to the *first* maximum of each window, as the kernel does.
//!   candle's `max` backward sends it to every tied element, and ties are the rule, not the
//!   exception, where a clip is zero-padded: every window of zeros pools four equal zeros, and
//!   the input gradient there would be counted `pool` times.
//! - The ReLU passes gradient only where its input is above zero (the kernel's rule; candle's
//!   `relu` passes it at zero too).
//! - Batch norm: batch statistics (biased variance) with gradients through them in training
//!   mode, running ones otherwise; the running statistics are updated on the device, with the
//!   kernel's momentum (a cumulative average over the first ten batches, then 0.1), without
//!   reading anything back to the host.
//!
//! The sums run in another order than the kernel's (and its statistics in f32 rather than
//! f64), so the two agree to rounding, not bit for bit; the tests below state how closely.

use candle_core::{DType, Tensor, Var};

use crate::model::cpu::m5::{Arch, BN_EPS, BN_MOMENTUM, BlockArch};

/// Logits `[n, classes]` of the waveforms `x` (`[n, length]`) under the flat `params`
/// (detached or not: gradients reach whatever is tracked). `train`: batch statistics, and
/// `running` is updated; else the running statistics are used.
pub(super) fn forward(
    arch: &Arch,
    params: &Tensor,
    running: &Var,
    x: &Tensor,
    train: bool,
) -> candle_core::Result<Tensor> {
    let (n, width) = x.dims2()?;
    if width != arch.length {
        candle_core::bail!("M5 expects waveforms of {} samples, got {width}", arch.length);
    }
    if n == 0 {
        // Batch statistics and maxima of nothing are undefined; the kernel answers no rows.
        return Tensor::zeros((0, arch.classes), DType::F32, x.device());
    }
    let b0 = &arch.blocks[0];
    let mut h = x.to_dtype(DType::F32)?;
    if b0.l_in > arch.length {
        h = h.pad_with_zeros(1, 0, b0.l_in - arch.length)?;
    }
    let mut h = h.reshape((n, b0.l_in, 1))?;
    // The running statistics are read as values, never differentiated.
    let stored = running.as_tensor().detach();
    let mut batch_stats = Vec::new();
    for blk in &arch.blocks {
        let c = blk.c_out;
        if blk.pad > 0 {
            h = h.pad_with_zeros(1, blk.pad, blk.pad)?;
        }
        let w = params.narrow(0, blk.w, c * blk.kc())?.reshape((c, blk.kc()))?;
        let z = max_pool(&conv(&h, &w, blk)?, arch.pool)?;
        let y = if arch.norm {
            let (mu, var) = if train {
                let flat = z.reshape((n * blk.p_out, c))?;
                let mu = flat.mean_keepdim(0)?;
                let var = flat.broadcast_sub(&mu)?.sqr()?.mean_keepdim(0)?;
                batch_stats.push((blk, mu.detach(), var.detach()));
                (mu, var)
            } else {
                (stored.narrow(0, blk.rm, c)?.reshape((1, c))?, stored.narrow(0, blk.rv, c)?.reshape((1, c))?)
            };
            let inv_std = (var + BN_EPS)?.sqrt()?.recip()?;
            let gamma = params.narrow(0, blk.a, c)?;
            let beta = params.narrow(0, blk.b, c)?;
            z.broadcast_sub(&mu)?.broadcast_mul(&inv_std)?.broadcast_mul(&gamma)?.broadcast_add(&beta)?
        } else {
            z.broadcast_add(&params.narrow(0, blk.a, c)?)?
        };
        h = relu(&y)?;
    }
    if !batch_stats.is_empty() {
        update_running(arch, running, &stored, n, &batch_stats)?;
    }
    let (c, k) = (arch.channels(), arch.classes);
    let hw = params.narrow(0, arch.head_w, c * k)?.reshape((c, k))?;
    let hb = params.narrow(0, arch.head_b, k)?;
    h.mean(1)?.matmul(&hw)?.broadcast_add(&hb)
}

/// `h` `[n, l_in + 2·pad, c_in]` convolved with `w` `[c_out, k · c_in]` (row `o` is the
/// `[k, c_in]` window it dots with): `[n, t_out, c_out]`.
fn conv(h: &Tensor, w: &Tensor, blk: &BlockArch) -> candle_core::Result<Tensor> {
    let (n, rows, c_in) = h.dims3()?;
    let (k, s, t) = (blk.k, blk.stride, blk.t_out);
    let q = k.div_ceil(s);
    let frames = t - 1 + q;
    let need = frames * s;
    let h = if need > rows {
        h.pad_with_zeros(1, 0, need - rows)?
    } else if need < rows {
        h.narrow(1, 0, need)?
    } else {
        h.clone()
    };
    let framed = h.reshape((n, frames, s * c_in))?;
    let mut cols = if q == 1 {
        framed.narrow(1, 0, t)?
    } else {
        let shifted = (0..q).map(|i| framed.narrow(1, i, t)).collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&shifted, 2)?
    };
    if q * s > k {
        cols = cols.narrow(2, 0, k * c_in)?;
    }
    let cols = cols.contiguous()?.reshape((n * t, k * c_in))?;
    cols.matmul(&w.t()?)?.reshape((n, t, blk.c_out))
}

/// Max over windows of `pool` rows of `z` `[n, t, c]` (a remainder shorter than `pool` is
/// dropped): `[n, t / pool, c]`, with the gradient going to the first maximum of each window.
fn max_pool(z: &Tensor, pool: usize) -> candle_core::Result<Tensor> {
    let (n, t, c) = z.dims3()?;
    let p = t / pool;
    let z4 = z.narrow(1, 0, p * pool)?.reshape((n, p, pool, c))?;
    let values = z4.detach();
    let ties = values.broadcast_eq(&values.max_keepdim(2)?)?.to_dtype(DType::F32)?;
    // How many maxima come earlier in the window: a product with a strictly upper
    // triangular matrix of ones, exact on small integers on every device.
    let idx = Tensor::arange(0u32, pool as u32, z.device())?;
    let earlier = idx.reshape((1, pool))?.broadcast_gt(&idx.reshape((pool, 1))?)?.to_dtype(DType::F32)?;
    let by_row = ties.transpose(2, 3)?.contiguous()?.reshape((n * p * c, pool))?;
    let before = by_row.matmul(&earlier)?;
    let first =
        (by_row * before.eq(0f32)?.to_dtype(DType::F32)?)?.reshape((n, p, c, pool))?.transpose(2, 3)?;
    // Every term but the first maximum is an exact zero, so the sum is that maximum.
    z4.broadcast_mul(&first)?.sum(2)
}

/// `max(y, 0)`, with gradient only where `y > 0`.
fn relu(y: &Tensor) -> candle_core::Result<Tensor> {
    y.broadcast_mul(&y.detach().gt(0f32)?.to_dtype(DType::F32)?)
}

/// Moves the running statistics towards one training batch's, as the kernel does:
/// weight `max(1 / (batches seen + 1), momentum)`, the unbiased variance.
fn update_running(
    arch: &Arch,
    running: &Var,
    stored: &Tensor,
    n: usize,
    batch_stats: &[(&BlockArch, Tensor, Tensor)],
) -> candle_core::Result<()> {
    let seen = stored.narrow(0, arch.n_running - 1, 1)?;
    let weight = seen.affine(1.0, 1.0)?.recip()?.maximum(BN_MOMENTUM)?;
    let keep = weight.affine(-1.0, 1.0)?;
    let mut parts = Vec::with_capacity(2 * batch_stats.len() + 1);
    for (blk, mu, var) in batch_stats {
        let c = blk.c_out;
        let count = (n * blk.p_out) as f64;
        let unbiased = if count > 1.0 { (var * (count / (count - 1.0)))? } else { var.clone() };
        for (off, batch) in [(blk.rm, mu), (blk.rv, &unbiased)] {
            let old = stored.narrow(0, off, c)?;
            parts.push((old.broadcast_mul(&keep)? + batch.flatten_all()?.broadcast_mul(&weight)?)?);
        }
    }
    parts.push(seen.affine(1.0, 1.0)?);
    running.set(&Tensor::cat(&parts, 0)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device};
    use candle_nn::Optimizer;

    use super::super::{AudioModelConfig, M5, Norm};
    use super::*;
    use crate::model::{Classifier, Mode, input_loss_grad_autograd};

    fn small(norm: Norm) -> AudioModelConfig {
        AudioModelConfig { channels: vec![4, 6], kernel: 8, stride: 2, pool: 2, norm, ..Default::default() }
    }

    /// Waveforms whose last `silent` samples are zero, as a zero-padded clip's are: windows
    /// of zeros make every pooling window a tie.
    fn waves(n: usize, len: usize, silent: usize, salt: f32) -> Tensor {
        let data: Vec<f32> = (0..n * len)
            .map(|i| {
                if i % len >= len - silent {
                    0.0
                } else {
                    ((i as f32 * 0.37 + salt).sin() * 0.5) * (1.0 + (i % 7) as f32 * 0.1)
                }
            })
            .collect();
        Tensor::from_vec(data, (n, len), &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// Largest difference, and the tolerance it is held to: relative to the largest
    /// magnitude of `want`.
    fn assert_close(got: &[f32], want: &[f32], rel: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(0f32, |s, v| s.max(v.abs())).max(1e-3);
        let err = got.iter().zip(want).fold(0f32, |s, (a, b)| s.max((a - b).abs()));
        assert!(err <= rel * scale, "{what}: max error {err} against scale {scale} (allowed {rel} × scale)");
    }

    const LABELS: [u32; 7] = [0, 1, 2, 3, 4, 0, 1];

    /// Logits, mean cross-entropy, and its gradients for the parameters and the input.
    fn pass(m: &M5, x: &Tensor, mode: Mode) -> (Vec<f32>, f32, Option<Vec<f32>>, Vec<f32>) {
        let xv = Var::from_tensor(x).unwrap();
        let logits = m.forward(xv.as_tensor(), mode).unwrap();
        let n = x.dim(0).unwrap();
        let y = Tensor::new(&LABELS[..n], &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        let dp = grads.get(m.params.as_tensor()).map(flat);
        let dx = flat(grads.get(xv.as_tensor()).expect("input gradient"));
        (flat(&logits), loss.to_scalar::<f32>().unwrap(), dp, dx)
    }

    /// The kernel model and the same model on the generic path, with the same weights and
    /// running statistics.
    fn pair(cfg: &AudioModelConfig, len: usize, classes: usize) -> (M5, M5) {
        let k = M5::new(cfg, len, classes, 3, &Device::Cpu).unwrap();
        let g = M5::new(cfg, len, classes, 3, &Device::Cpu).unwrap().with_generic_path();
        assert!(!k.uses_generic_path() && g.uses_generic_path());
        (k, g)
    }

    /// Logits, loss and every gradient of the generic path against the kernel's, in
    /// training mode (batch statistics, gradients through them) and eval mode (running
    /// statistics, moved away from their initial values first), with and without norm.
    #[test]
    fn generic_path_matches_the_kernel() {
        for norm in [Norm::Batch, Norm::None] {
            for train in [true, false] {
                let (k, g) = pair(&small(norm), 101, 5);
                // A training pass on each: the running statistics must move alike.
                let warm = waves(6, 101, 20, 2.0);
                k.forward(&warm, Mode::TRAIN).unwrap();
                g.forward(&warm, Mode::TRAIN).unwrap();
                let (rk, rg) = (flat(k.running.as_tensor()), flat(g.running.as_tensor()));
                assert_close(&rg, &rk, 1e-5, &format!("{norm:?}: running statistics"));
                // From here on the same statistics, so eval mode compares the passes alone.
                g.running.set(k.running.as_tensor()).unwrap();
                let x = waves(7, 101, 30, 0.5);
                let mode = Mode { train, param_grads: true };
                let (lk, loss_k, pk, xk) = pass(&k, &x, mode);
                let (lg, loss_g, pg, xg) = pass(&g, &x, mode);
                let what = |s: &str| format!("{norm:?} train={train}: {s}");
                assert_close(&lg, &lk, 1e-5, &what("logits"));
                assert_close(&[loss_g], &[loss_k], 1e-5, &what("loss"));
                assert_close(&pg.unwrap(), &pk.unwrap(), 1e-4, &what("parameter gradient"));
                assert_close(&xg, &xk, 1e-4, &what("input gradient"));
                // The silent tail gets gradient (through the first maxima), as with the kernel.
                assert!(xk[70..101].iter().any(|&v| v != 0.0));
            }
        }
    }

    /// The same at the shipped speech model's shapes: a first conv of 80 taps at stride 4
    /// (20 shifted frames in the im2col), pooling by 4, four blocks.
    #[test]
    fn generic_path_matches_the_kernel_at_speech_shapes() {
        let cfg = AudioModelConfig { channels: vec![16, 16, 32, 32], ..Default::default() };
        let (k, g) = pair(&cfg, 4000, 10);
        let x = waves(4, 4000, 1500, 0.2);
        for mode in [Mode::TRAIN, Mode::EVAL] {
            let (lk, loss_k, pk, xk) = pass(&k, &x, mode);
            let (lg, loss_g, pg, xg) = pass(&g, &x, mode);
            // Sums over 80-tap windows and 16–32 channels: more rounding than the small model.
            assert_close(&lg, &lk, 5e-5, &format!("{mode:?}: logits"));
            assert_close(&[loss_g], &[loss_k], 1e-5, &format!("{mode:?}: loss"));
            if let (Some(pg), Some(pk)) = (pg, pk) {
                assert_close(&pg, &pk, 1e-4, &format!("{mode:?}: parameter gradient"));
            }
            assert_close(&xg, &xk, 1e-4, &format!("{mode:?}: input gradient"));
        }
    }

    /// Attacks ask for per-row losses and the input gradient: off the kernel the model has
    /// no hand-written one, and the oracle's autograd fallback gives the kernel's numbers.
    #[test]
    fn the_oracle_falls_back_to_autograd_on_the_generic_path() {
        let (k, g) = pair(&small(Norm::Batch), 101, 5);
        let warm = waves(6, 101, 0, 2.0);
        k.forward(&warm, Mode::TRAIN).unwrap();
        g.running.set(k.running.as_tensor()).unwrap();
        let x = flat(&waves(5, 101, 25, 0.1));
        let labels = [0u32, 1, 2, 3, 4];
        let (mut loss, mut grad) = (vec![0f32; 5], vec![0f32; 505]);
        assert!(g.input_loss_grad(&x, &labels, &mut loss, &mut grad).is_none());
        k.input_loss_grad(&x, &labels, &mut loss, &mut grad).unwrap().unwrap();
        let view = crate::examples::ExamplesRef::Dense { data: &x, width: 101 };
        let (gl, gg) = input_loss_grad_autograd(&g, &view, &labels).unwrap();
        assert_close(&gl, &loss, 1e-5, "per-row loss");
        assert_close(&gg, &grad, 1e-4, "input gradient");
    }

    /// A few AdamW steps on a fixed batch, on the generic path or the kernel; the loss
    /// trace, the final parameters and running statistics.
    fn train_run(generic: bool, steps: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut m = M5::new(&small(Norm::Batch), 101, 5, 11, &Device::Cpu).unwrap();
        if generic {
            m = m.with_generic_path();
        }
        let x = waves(7, 101, 10, 1.3);
        let y = Tensor::new(&LABELS, &Device::Cpu).unwrap();
        let params = candle_nn::ParamsAdamW { lr: 1e-2, ..Default::default() };
        let mut opt = candle_nn::AdamW::new(m.trainable(), params).unwrap();
        let mut trace = Vec::new();
        for _ in 0..steps {
            let loss = candle_nn::loss::cross_entropy(&m.forward(&x, Mode::TRAIN).unwrap(), &y).unwrap();
            trace.push(loss.to_scalar::<f32>().unwrap());
            opt.backward_step(&loss).unwrap();
        }
        (trace, flat(m.params.as_tensor()), flat(m.running.as_tensor()))
    }

    #[test]
    fn training_on_the_generic_path_follows_the_kernel_and_repeats_exactly() {
        let (trace, params, running) = train_run(true, 30);
        let (first, last) = (trace[0], *trace.last().unwrap());
        assert!(last < 0.9 * first, "loss went from {first} to {last}");
        // Rounding differences may grow over the steps; the losses stay within 0.1 %.
        let (kernel, ..) = train_run(false, 30);
        for (i, (g, k)) in trace.iter().zip(&kernel).enumerate() {
            assert!((g - k).abs() <= 1e-3 * k, "step {i}: loss {g} on the generic path, {k} on the kernel");
        }
        let again = train_run(true, 30);
        assert_eq!((trace, params, running), again, "a seeded run repeats bit for bit");
    }

    /// The pooling's gradient goes to the first of tied maxima only; candle's own `max`
    /// (the obvious way to write it) would hand it to every tie.
    #[test]
    fn pooling_sends_the_gradient_to_the_first_maximum() {
        // One example, one channel, two windows of 4: ties at rows 1 and 3, then 4..8 all zero.
        let z =
            Var::from_vec(vec![0.5f32, 2.0, -1.0, 2.0, 0.0, 0.0, 0.0, 0.0], (1, 8, 1), &Device::Cpu).unwrap();
        let pooled = max_pool(z.as_tensor(), 4).unwrap();
        assert_eq!(flat(&pooled), vec![2.0, 0.0]);
        let g = flat(pooled.sum_all().unwrap().backward().unwrap().get(z.as_tensor()).unwrap());
        assert_eq!(g, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        let stock = z.as_tensor().reshape((1, 2, 4)).unwrap().max(D::Minus1).unwrap();
        let gs = flat(stock.sum_all().unwrap().backward().unwrap().get(z.as_tensor()).unwrap());
        assert_ne!(gs, g, "candle's max would have counted the ties");
    }

    #[test]
    fn an_empty_batch_gives_no_rows_and_leaves_the_statistics_alone() {
        let (k, g) = pair(&small(Norm::Batch), 101, 5);
        let empty = Tensor::zeros((0, 101), DType::F32, &Device::Cpu).unwrap();
        for m in [&k, &g] {
            let before = flat(m.running.as_tensor());
            for mode in [Mode::TRAIN, Mode::EVAL] {
                assert_eq!(m.forward(&empty, mode).unwrap().dims(), &[0, 5]);
            }
            assert_eq!(flat(m.running.as_tensor()), before, "generic path: {}", m.uses_generic_path());
        }
    }

    #[test]
    fn relu_passes_no_gradient_at_zero() {
        let y = Var::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu).unwrap();
        let out = relu(y.as_tensor()).unwrap();
        assert_eq!(flat(&out), vec![0.0, 0.0, 2.0]);
        let g = flat(out.sum_all().unwrap().backward().unwrap().get(y.as_tensor()).unwrap());
        assert_eq!(g, vec![0.0, 0.0, 1.0]);
    }

    /// The im2col conv against a direct sum, at a stride that does not divide the kernel
    /// (the frames are padded and the last shifted view cut).
    #[test]
    fn conv_matches_a_direct_sum() {
        let (n, c_in, c_out, k, s, rows) = (2, 3, 4, 5, 2, 17);
        let t = (rows - k) / s + 1;
        let hs: Vec<f32> = (0..n * rows * c_in).map(|i| (i as f32 * 0.7).sin()).collect();
        let ws: Vec<f32> = (0..c_out * k * c_in).map(|i| (i as f32 * 1.3).cos()).collect();
        let blk = BlockArch {
            c_in,
            c_out,
            k,
            stride: s,
            pad: 0,
            l_in: rows,
            t_out: t,
            p_out: t,
            w: 0,
            a: 0,
            b: 0,
            rm: 0,
            rv: 0,
        };
        let h = Tensor::from_vec(hs.clone(), (n, rows, c_in), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(ws.clone(), (c_out, k * c_in), &Device::Cpu).unwrap();
        let got = flat(&conv(&h, &w, &blk).unwrap());
        let mut want = vec![0f32; n * t * c_out];
        for b in 0..n {
            for tt in 0..t {
                for o in 0..c_out {
                    let mut acc = 0f32;
                    for j in 0..k {
                        for c in 0..c_in {
                            acc += hs[(b * rows + tt * s + j) * c_in + c] * ws[(o * k + j) * c_in + c];
                        }
                    }
                    want[(b * t + tt) * c_out + o] = acc;
                }
            }
        }
        assert_close(&got, &want, 1e-6, "conv");
    }
}
