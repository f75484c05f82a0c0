//! The forward pass: conv, max-pool, batch norm (batch or running statistics) and ReLU
//! per block, the mean over time and the head; it keeps what the backward pass needs.

use super::simd::{mm, simd};
use super::{Arch, BN_EPS, BN_MOMENTUM, BlockArch, par_chunks};

simd! {
    /// Max-pools `conv` (`[t, c]`) over windows of `pool` rows into `z` (`[p, c]`), noting
    /// each maximum's row in its window in `am`. Branch-free, so it vectorises: the row is
    /// tracked as an f32 next to the maximum.
    fn max_pool(conv: &[f32], z: &mut [f32], am: &mut [u8], idx: &mut [f32], pool: usize) {
        let c = idx.len();
        for (p, (zrow, arow)) in z.chunks_exact_mut(c).zip(am.chunks_exact_mut(c)).enumerate() {
            zrow.copy_from_slice(&conv[p * pool * c..(p * pool + 1) * c]);
            idx.fill(0.0);
            for i in 1..pool {
                let row = &conv[(p * pool + i) * c..(p * pool + i + 1) * c];
                let fi = i as f32;
                for ((zv, iv), &v) in zrow.iter_mut().zip(idx.iter_mut()).zip(row) {
                    let gt = v > *zv;
                    *zv = if gt { v } else { *zv };
                    *iv = if gt { fi } else { *iv };
                }
            }
            for (a, &i) in arow.iter_mut().zip(idx.iter()) {
                *a = i as u8;
            }
        }
    }
}

simd! {
    /// Per-channel Σ z and Σ z² of one example's `[p, c]` rows, added to `s1`, `s2`.
    fn moments(z: &[f32], s1: &mut [f64], s2: &mut [f64], t1: &mut [f32], t2: &mut [f32]) {
        let c = t1.len();
        t1.fill(0.0);
        t2.fill(0.0);
        for zrow in z.chunks_exact(c) {
            for ((a, b), &v) in t1.iter_mut().zip(t2.iter_mut()).zip(zrow) {
                *a += v;
                *b += v * v;
            }
        }
        for (((a, b), &x), &y) in s1.iter_mut().zip(s2.iter_mut()).zip(t1.iter()).zip(t2.iter()) {
            *a += x as f64;
            *b += y as f64;
        }
    }
}

simd! {
    /// `out = max(scale · z + shift, 0)`, row by row.
    fn affine_relu(z: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32]) {
        let c = scale.len();
        for (orow, zrow) in out.chunks_exact_mut(c).zip(z.chunks_exact(c)) {
            for (((o, &v), a), b) in orow.iter_mut().zip(zrow).zip(scale).zip(shift) {
                *o = (a * v + b).max(0.0);
            }
        }
    }
}

/// What the forward pass keeps of one example for the backward pass.
#[derive(Debug, Clone, Default)]
pub(super) struct Example {
    /// Per block: its zero-padded input `[(l_in + 2·pad), c_in]` (block 0: the waveform).
    pub(super) inputs: Vec<Vec<f32>>,
    /// Per block: pooled conv output before the norm `[p_out, c_out]` (bias included).
    pub(super) z: Vec<Vec<f32>>,
    /// Per block: which row of its pooling window each pooled value came from.
    pub(super) argmax: Vec<Vec<u8>>,
    /// Mean over time of the last block's output.
    pub(super) pooled: Vec<f32>,
    pub(super) logits: Vec<f32>,
}

/// A forward pass over a batch.
#[derive(Debug, Clone)]
pub(in crate::model) struct Forward {
    pub(super) examples: Vec<Example>,
    /// Per block: the statistics used (batch or running) as (mean, 1/σ), and the affine map
    /// `scale · z + shift` they give with γ and β (identity without norm).
    pub(super) mean: Vec<Vec<f32>>,
    pub(super) inv_std: Vec<Vec<f32>>,
    pub(super) scale: Vec<Vec<f32>>,
    pub(super) shift: Vec<Vec<f32>>,
    pub(super) train: bool,
}

impl Forward {
    /// Logits, row-major `[n, classes]`.
    pub fn logits(&self) -> Vec<f32> {
        self.examples.iter().flat_map(|e| e.logits.iter().copied()).collect()
    }
}

/// Conv + max-pool of one example's block input into `z` / `argmax`.
fn conv_pool(
    arch: &Arch,
    blk: &BlockArch,
    theta: &[f32],
    input: &[f32],
    conv: &mut Vec<f32>,
    z: &mut [f32],
    am: &mut [u8],
) {
    let (c, kc) = (blk.c_out, blk.kc());
    conv.resize(blk.t_out * c, 0.0);
    mm(
        (blk.t_out, c, kc),
        conv,
        (c, 1),
        false,
        input,
        (blk.stride * blk.c_in, 1),
        &theta[blk.w..blk.w + c * kc],
        (1, kc),
    );
    let mut idx = vec![0f32; c];
    max_pool(conv, z, am, &mut idx, arch.pool);
    if !arch.norm {
        let bias = &theta[blk.a..blk.a + c];
        for zrow in z.chunks_exact_mut(c) {
            for (zv, b) in zrow.iter_mut().zip(bias) {
                *zv += b;
            }
        }
    }
}

/// Runs the model on `n` waveforms `x` (`n × length`). `train`: batch statistics (and the
/// running statistics are updated in `running`); else the running ones.
pub(in crate::model) fn forward(
    arch: &Arch,
    theta: &[f32],
    running: &mut [f32],
    x: &[f32],
    n: usize,
    train: bool,
    threads: usize,
) -> Forward {
    assert_eq!(theta.len(), arch.n_params);
    assert_eq!(running.len(), arch.n_running);
    assert_eq!(x.len(), n * arch.length);
    let nb = arch.blocks.len();
    let mut examples: Vec<Example> = (0..n)
        .map(|i| {
            let mut input = vec![0f32; arch.blocks[0].in_len()];
            input[..arch.length].copy_from_slice(&x[i * arch.length..(i + 1) * arch.length]);
            let mut inputs = vec![input];
            inputs.extend(arch.blocks[1..].iter().map(|b| vec![0f32; b.in_len()]));
            Example {
                inputs,
                z: arch.blocks.iter().map(|b| vec![0f32; b.p_out * b.c_out]).collect(),
                argmax: arch.blocks.iter().map(|b| vec![0u8; b.p_out * b.c_out]).collect(),
                pooled: vec![0f32; arch.channels()],
                logits: vec![0f32; arch.classes],
            }
        })
        .collect();
    let mut fwd =
        Forward { examples: Vec::new(), mean: vec![], inv_std: vec![], scale: vec![], shift: vec![], train };
    let seen = running[arch.n_running - 1] as f64;
    for (bi, blk) in arch.blocks.iter().enumerate() {
        let c = blk.c_out;
        // Conv + pool, and the per-chunk sums of z and z² for batch statistics.
        let sums = par_chunks(&mut examples, threads, |_, chunk| {
            let mut conv = Vec::new();
            let (mut s1, mut s2) = (vec![0f64; c], vec![0f64; c]);
            let (mut t1, mut t2) = (vec![0f32; c], vec![0f32; c]);
            for e in chunk.iter_mut() {
                let (input, z, am) = (&e.inputs[bi], &mut e.z[bi], &mut e.argmax[bi]);
                conv_pool(arch, blk, theta, input, &mut conv, z, am);
                if train && arch.norm {
                    moments(z, &mut s1, &mut s2, &mut t1, &mut t2);
                }
            }
            (s1, s2)
        });
        let (mut mean, mut inv_std) = (vec![0f32; c], vec![1f32; c]);
        let (mut scale, mut shift) = (vec![1f32; c], vec![0f32; c]);
        if arch.norm {
            let (gamma, beta) = (&theta[blk.a..blk.a + c], &theta[blk.b..blk.b + c]);
            let count = (n * blk.p_out) as f64;
            for ch in 0..c {
                // An empty batch has no statistics: averaging 0/0 into the running mean
                // would make every later eval-mode output NaN.
                let (mu, var) = if train && n > 0 {
                    let s1: f64 = sums.iter().map(|(a, _)| a[ch]).sum();
                    let s2: f64 = sums.iter().map(|(_, b)| b[ch]).sum();
                    let mu = s1 / count;
                    let var = (s2 / count - mu * mu).max(0.0);
                    // Running statistics: a cumulative average until the weight is 0.1.
                    let momentum = (1.0 / (seen + 1.0)).max(BN_MOMENTUM);
                    let unbiased = if count > 1.0 { var * count / (count - 1.0) } else { var };
                    let (rm, rv) = (blk.rm + ch, blk.rv + ch);
                    running[rm] = ((1.0 - momentum) * running[rm] as f64 + momentum * mu) as f32;
                    running[rv] = ((1.0 - momentum) * running[rv] as f64 + momentum * unbiased) as f32;
                    (mu, var)
                } else {
                    (running[blk.rm + ch] as f64, running[blk.rv + ch] as f64)
                };
                let istd = 1.0 / (var + BN_EPS).sqrt();
                mean[ch] = mu as f32;
                inv_std[ch] = istd as f32;
                scale[ch] = (gamma[ch] as f64 * istd) as f32;
                shift[ch] = (beta[ch] as f64 - mu * gamma[ch] as f64 * istd) as f32;
            }
        }
        // Norm + ReLU into the next block's input (or the mean over time, last block).
        let last = bi + 1 == nb;
        par_chunks(&mut examples, threads, |_, chunk| {
            for e in chunk.iter_mut() {
                let (z_all, inputs, pooled) = (&e.z, &mut e.inputs, &mut e.pooled);
                let z = &z_all[bi];
                if last {
                    let mut out = vec![0f32; z.len()];
                    affine_relu(z, &scale, &shift, &mut out);
                    pooled.fill(0.0);
                    for orow in out.chunks_exact(c) {
                        for (g, &v) in pooled.iter_mut().zip(orow) {
                            *g += v;
                        }
                    }
                    let inv = 1.0 / blk.p_out as f32;
                    pooled.iter_mut().for_each(|g| *g *= inv);
                } else {
                    let next = &arch.blocks[bi + 1];
                    let out = &mut inputs[bi + 1][next.pad * c..(next.pad + blk.p_out) * c];
                    affine_relu(z, &scale, &shift, out);
                }
            }
        });
        fwd.mean.push(mean);
        fwd.inv_std.push(inv_std);
        fwd.scale.push(scale);
        fwd.shift.push(shift);
    }
    if train && arch.norm && n > 0 {
        running[arch.n_running - 1] = (seen + 1.0) as f32;
    }
    // Head.
    let (cl, k) = (arch.channels(), arch.classes);
    let (hw, hb) = (&theta[arch.head_w..arch.head_w + cl * k], &theta[arch.head_b..arch.head_b + k]);
    for e in &mut examples {
        e.logits.copy_from_slice(hb);
        for (ch, &g) in e.pooled.iter().enumerate() {
            for (l, w) in e.logits.iter_mut().zip(&hw[ch * k..(ch + 1) * k]) {
                *l += g * w;
            }
        }
    }
    fwd.examples = examples;
    fwd
}
