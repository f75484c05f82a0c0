//! M5's forward and backward written out by hand.
//!
//! Through candle's autograd a training step of M5 spends most of its time on allocation,
//! page faults, strided copies and thread barriers between ~60 small ops rather than on the
//! math, and candle's `Conv1D` backward is wrong on the CPU anyway. BENCHMARKS.md ("Measured
//! numbers that used to sit in comments") has the timings; `model::audio::timing` re-measures.
//!
//! - Activations are channels-last (`[time, channels]`), so each conv's forward is one
//!   `gemm` per example whose im2col matrix is the input itself, read with a row stride of
//!   `stride × channels`.
//! - Backward goes through the max-pooling first: each pooled value came from one conv
//!   output, which read one input window, so its gradient is added to that window only (for
//!   the input gradient) and to its channel's weights times that window (for the weight
//!   gradient) — a quarter of a dense conv backward, and nothing where the ReLU was off in
//!   eval mode.
//! - Pooling, normalisation, ReLU and the backward loops vectorise across channels, compiled
//!   for AVX2 + FMA as well as the baseline and picked at run time (`simd!`).
//! - The batch is split into fixed chunks of [`CHUNK`] examples that run on `threads`
//!   threads; per-chunk partial sums (batch-norm statistics, parameter gradients) are added in
//!   chunk order, so results do not depend on the thread count.
//!
//! Parameters live in one flat vector (see [`Arch`] for the layout); running statistics in
//! another.

use std::thread;

/// Examples per unit of parallel work (and per partial sum).
const CHUNK: usize = 4;
pub(super) const BN_EPS: f64 = 1e-5;
pub(super) const BN_MOMENTUM: f64 = 0.1;

/// One conv block: conv → max-pool → norm → ReLU.
#[derive(Debug, Clone)]
pub(super) struct BlockArch {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    /// Zero rows added before and after the input ("same" convs: 1).
    pub pad: usize,
    /// Input rows (time steps), before `pad`.
    pub l_in: usize,
    pub t_out: usize,
    pub p_out: usize,
    /// Offsets into the parameters: weights `[c_out, k, c_in]` (row-major, so row `o` is
    /// the `k × c_in` window it dots with), then `γ`, `β` (norm) or a bias (no norm).
    pub w: usize,
    pub a: usize,
    pub b: usize,
    /// Offsets into the running statistics: mean `[c_out]`, variance `[c_out]`.
    pub rm: usize,
    pub rv: usize,
}

impl BlockArch {
    fn kc(&self) -> usize {
        self.k * self.c_in
    }
    /// Length of the padded input buffer.
    fn in_len(&self) -> usize {
        (self.l_in + 2 * self.pad) * self.c_in
    }
}

#[derive(Debug, Clone)]
pub(super) struct Arch {
    /// Samples per waveform.
    pub length: usize,
    pub blocks: Vec<BlockArch>,
    pub pool: usize,
    pub norm: bool,
    pub classes: usize,
    /// Head weights `[channels, classes]` and bias `[classes]`.
    pub head_w: usize,
    pub head_b: usize,
    pub n_params: usize,
    /// Running statistics, then the number of training batches seen.
    pub n_running: usize,
}

impl Arch {
    /// `channels[i]` outputs per block; the first conv has `kernel` and `stride`, later ones
    /// kernel 3, stride 1 and one zero row each side.
    pub fn new(
        length: usize,
        channels: &[usize],
        kernel: usize,
        stride: usize,
        pool: usize,
        norm: bool,
        classes: usize,
    ) -> Result<Arch, crate::error::Invalid> {
        if length < kernel {
            return Err(format!(
                "waveforms of {length} samples are shorter than the first conv's kernel ({kernel})"
            )
            .into());
        }
        // Zeros appended so that the first conv's windows tile the input exactly.
        let padded = length + (stride - (length - kernel) % stride) % stride;
        let (mut blocks, mut c_in, mut l_in, mut off, mut roff) = (Vec::new(), 1, padded, 0, 0);
        for (i, &c_out) in channels.iter().enumerate() {
            let (k, s, pad) = if i == 0 { (kernel, stride, 0) } else { (3, 1, 1) };
            let t_out = (l_in + 2 * pad - k) / s + 1;
            if t_out < pool {
                return Err(format!(
                    "waveforms of {length} samples shrink to {t_out} steps in block {} (pool {pool}): use fewer blocks or longer waveforms",
                    i + 1
                )
                .into());
            }
            let w = off;
            off += c_out * k * c_in;
            let (a, b) = (off, off + c_out);
            off += if norm { 2 * c_out } else { c_out };
            blocks.push(BlockArch {
                c_in,
                c_out,
                k,
                stride: s,
                pad,
                l_in,
                t_out,
                p_out: t_out / pool,
                w,
                a,
                b,
                rm: roff,
                rv: roff + c_out,
            });
            roff += 2 * c_out;
            c_in = c_out;
            l_in = t_out / pool;
        }
        let head_w = off;
        let head_b = head_w + c_in * classes;
        Ok(Arch {
            length,
            blocks,
            pool,
            norm,
            classes,
            head_w,
            head_b,
            n_params: head_b + classes,
            n_running: roff + 1,
        })
    }

    fn channels(&self) -> usize {
        self.blocks.last().map_or(1, |b| b.c_out)
    }
}

/// `dst(r, c) (+)= Σ_i lhs(r, i) · rhs(i, c)` with `m(r, c)` at `m[r·rs + c·cs]`.
#[allow(clippy::too_many_arguments)]
fn mm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (d_rs, d_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (l_rs, l_cs): (usize, usize),
    rhs: &[f32],
    (r_rs, r_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, d_rs, d_cs) < dst.len(), "gemm: destination out of bounds");
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    assert!(
        last(m, k, l_rs, l_cs) < lhs.len() && last(k, n, r_rs, r_cs) < rhs.len(),
        "gemm: operand out of bounds"
    );
    // Safety: every element addressed by (rows, cols, strides) is inside its slice (checked
    // above); `dst` does not alias the operands (it is a distinct `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d_cs as isize,
            d_rs as isize,
            accumulate,
            lhs.as_ptr(),
            l_cs as isize,
            l_rs as isize,
            rhs.as_ptr(),
            r_cs as isize,
            r_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// A function compiled twice, for the baseline x86-64 (SSE2) and for AVX2 + FMA, picked at
/// run time: the loops below vectorise across channels, and 8 lanes beat 4. (`gemm` does its
/// own dispatch.)
macro_rules! simd {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($a: $t),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($a: $t),*) {
                    imp($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // Safety: the CPU has the features `fast` is compiled for.
                    return unsafe { fast($($a),*) };
                }
            }
            imp($($a),*)
        }
    };
}

/// `y += a · x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

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

simd! {
    /// The ReLU's mask on `dy` (where `scale · z + shift ≤ 0`), and per-channel Σ dy and
    /// Σ dy · ẑ (ẑ = (z − mean) · inv_std) added to `s1`, `s2`.
    fn relu_back(
        dy: &mut [f32],
        z: &[f32],
        scale: &[f32],
        shift: &[f32],
        mean: &[f32],
        inv_std: &[f32],
        s1: &mut [f64],
        s2: &mut [f64],
        t1: &mut [f32],
        t2: &mut [f32],
    ) {
        let c = scale.len();
        t1.fill(0.0);
        t2.fill(0.0);
        for (drow, zrow) in dy.chunks_exact_mut(c).zip(z.chunks_exact(c)) {
            for ch in 0..c {
                let v = zrow[ch];
                let d = if scale[ch] * v + shift[ch] > 0.0 { drow[ch] } else { 0.0 };
                drow[ch] = d;
                t1[ch] += d;
                t2[ch] += d * ((v - mean[ch]) * inv_std[ch]);
            }
        }
        for (((a, b), &x), &y) in s1.iter_mut().zip(s2.iter_mut()).zip(t1.iter()).zip(t2.iter()) {
            *a += x as f64;
            *b += y as f64;
        }
    }
}

simd! {
    /// One example's conv backward through max-pooling: each pooled value's gradient
    /// `dz = scale · (dy − m1 − ẑ · m2)` goes to the one input window its maximum read,
    /// into the weight gradient `dw` and the input gradient `din` (either may be empty).
    fn window_back(
        dy: &[f32],
        z: &[f32],
        am: &[u8],
        input: &[f32],
        wts: &[f32],
        k: &BackCoefficients,
        dw: &mut [f32],
        din: &mut [f32],
    ) {
        let (c, kc) = (k.scale.len(), k.kc);
        let (need_w, need_in) = (!dw.is_empty(), !din.is_empty());
        for (p, (drow, zrow)) in dy.chunks_exact(c).zip(z.chunks_exact(c)).enumerate() {
            for ch in 0..c {
                let dz = if k.batch_terms {
                    let zhat = (zrow[ch] - k.mean[ch]) * k.inv_std[ch];
                    k.scale[ch] * (drow[ch] - k.m1[ch] - zhat * k.m2[ch])
                } else {
                    k.scale[ch] * drow[ch]
                };
                if dz == 0.0 {
                    continue;
                }
                let at = (p * k.pool + am[p * c + ch] as usize) * k.step;
                if need_w {
                    axpy(&mut dw[ch * kc..(ch + 1) * kc], dz, &input[at..at + kc]);
                }
                if need_in {
                    axpy(&mut din[at..at + kc], dz, &wts[ch * kc..(ch + 1) * kc]);
                }
            }
        }
    }
}

/// What [`window_back`] needs of a block and its batch statistics.
struct BackCoefficients<'a> {
    scale: &'a [f32],
    mean: &'a [f32],
    inv_std: &'a [f32],
    /// Σ dy / N and Σ dy·ẑ / N (training-mode batch norm only).
    m1: &'a [f32],
    m2: &'a [f32],
    batch_terms: bool,
    pool: usize,
    step: usize,
    kc: usize,
}

/// Runs `f(first_index, chunk)` over `items` in chunks of [`CHUNK`] on up to `threads`
/// threads; results in chunk order.
fn par_chunks<S: Send, R: Send>(
    items: &mut [S],
    threads: usize,
    f: impl Fn(usize, &mut [S]) -> R + Sync,
) -> Vec<R> {
    let chunks: Vec<(usize, &mut [S])> =
        items.chunks_mut(CHUNK).enumerate().map(|(i, c)| (i * CHUNK, c)).collect();
    let threads = threads.clamp(1, chunks.len().max(1));
    if threads == 1 {
        return chunks.into_iter().map(|(i, c)| f(i, c)).collect();
    }
    let mut groups: Vec<Vec<(usize, usize, &mut [S])>> = (0..threads).map(|_| Vec::new()).collect();
    for (j, (i, c)) in chunks.into_iter().enumerate() {
        groups[j % threads].push((j, i, c));
    }
    let f = &f;
    let mut out: Vec<(usize, R)> = thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|g| s.spawn(move || g.into_iter().map(|(j, i, c)| (j, f(i, c))).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("M5 worker thread panicked")).collect()
    });
    out.sort_by_key(|(j, _)| *j);
    out.into_iter().map(|(_, r)| r).collect()
}

/// What the forward pass keeps of one example for the backward pass.
#[derive(Debug, Clone, Default)]
struct Example {
    /// Per block: its zero-padded input `[(l_in + 2·pad), c_in]` (block 0: the waveform).
    inputs: Vec<Vec<f32>>,
    /// Per block: pooled conv output before the norm `[p_out, c_out]` (bias included).
    z: Vec<Vec<f32>>,
    /// Per block: which row of its pooling window each pooled value came from.
    argmax: Vec<Vec<u8>>,
    /// Mean over time of the last block's output.
    pooled: Vec<f32>,
    logits: Vec<f32>,
}

/// A forward pass over a batch.
#[derive(Debug, Clone)]
pub(super) struct Forward {
    examples: Vec<Example>,
    /// Per block: the statistics used (batch or running) as (mean, 1/σ), and the affine map
    /// `scale · z + shift` they give with γ and β (identity without norm).
    mean: Vec<Vec<f32>>,
    inv_std: Vec<Vec<f32>>,
    scale: Vec<Vec<f32>>,
    shift: Vec<Vec<f32>>,
    train: bool,
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
pub(super) fn forward(
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
                let (mu, var) = if train {
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
    if train && arch.norm {
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

/// Per-example gradient buffer flowing down the blocks.
#[derive(Default)]
struct Grad {
    /// ∂loss/∂(output of the current block), `[p_out, c_out]`.
    dy: Vec<f32>,
    /// ∂loss/∂waveform, once block 0 is done.
    dx: Vec<f32>,
}

/// Gradients of `Σ_i Σ_k dlogits[i, k] · logits[i, k]`: with respect to the waveforms
/// (`n × length`) when `need_x`, and to the parameters when `need_params`.
pub(super) fn backward(
    arch: &Arch,
    theta: &[f32],
    fwd: &Forward,
    dlogits: &[f32],
    need_x: bool,
    need_params: bool,
    threads: usize,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let n = fwd.examples.len();
    let (cl, k) = (arch.channels(), arch.classes);
    assert_eq!(dlogits.len(), n * k);
    let mut dtheta = if need_params { vec![0f32; arch.n_params] } else { Vec::new() };
    let hw = &theta[arch.head_w..arch.head_w + cl * k];
    let last = arch.blocks.last().expect("at least one block");
    let mut grads: Vec<Grad> = (0..n).map(|_| Grad::default()).collect();
    // Head: ∂/∂pooled, then spread over time (mean) for the last block's output.
    for (i, g) in grads.iter_mut().enumerate() {
        let dl = &dlogits[i * k..(i + 1) * k];
        let e = &fwd.examples[i];
        let mut dpool = vec![0f32; cl];
        for (ch, d) in dpool.iter_mut().enumerate() {
            *d = hw[ch * k..(ch + 1) * k].iter().zip(dl).map(|(w, l)| w * l).sum();
        }
        if need_params {
            for (ch, &p) in e.pooled.iter().enumerate() {
                for (dw, l) in dtheta[arch.head_w + ch * k..arch.head_w + (ch + 1) * k].iter_mut().zip(dl) {
                    *dw += p * l;
                }
            }
            for (db, l) in dtheta[arch.head_b..arch.head_b + k].iter_mut().zip(dl) {
                *db += l;
            }
        }
        let inv = 1.0 / last.p_out as f32;
        g.dy = (0..last.p_out).flat_map(|_| dpool.iter().map(|d| d * inv)).collect();
    }
    for (bi, blk) in arch.blocks.iter().enumerate().rev() {
        let c = blk.c_out;
        let (scale, shift) = (&fwd.scale[bi], &fwd.shift[bi]);
        let (mean, inv_std) = (&fwd.mean[bi], &fwd.inv_std[bi]);
        // ReLU mask, and the per-channel sums Σ dpre and Σ dpre·ẑ.
        let sums = par_chunks(&mut grads, threads, |start, chunk| {
            let (mut s1, mut s2) = (vec![0f64; c], vec![0f64; c]);
            let (mut t1, mut t2) = (vec![0f32; c], vec![0f32; c]);
            for (j, g) in chunk.iter_mut().enumerate() {
                let z = &fwd.examples[start + j].z[bi];
                relu_back(&mut g.dy, z, scale, shift, mean, inv_std, &mut s1, &mut s2, &mut t1, &mut t2);
            }
            (s1, s2)
        });
        let s1: Vec<f64> = (0..c).map(|ch| sums.iter().map(|(a, _)| a[ch]).sum()).collect();
        let s2: Vec<f64> = (0..c).map(|ch| sums.iter().map(|(_, b)| b[ch]).sum()).collect();
        if need_params {
            if arch.norm {
                for ch in 0..c {
                    dtheta[blk.a + ch] = s2[ch] as f32;
                    dtheta[blk.b + ch] = s1[ch] as f32;
                }
            } else {
                for ch in 0..c {
                    dtheta[blk.a + ch] = s1[ch] as f32;
                }
            }
        }
        // dz = scale · (dpre − [train] (Σ dpre + ẑ · Σ dpre·ẑ) / N).
        let count = (n * blk.p_out) as f64;
        let batch_terms = fwd.train && arch.norm;
        let (m1, m2): (Vec<f32>, Vec<f32>) = if batch_terms {
            (
                (0..c).map(|ch| (s1[ch] / count) as f32).collect(),
                (0..c).map(|ch| (s2[ch] / count) as f32).collect(),
            )
        } else {
            (vec![0.0; c], vec![0.0; c])
        };
        let need_input = bi > 0 || need_x;
        let kc = blk.kc();
        let step = blk.stride * blk.c_in;
        let wts = &theta[blk.w..blk.w + c * kc];
        // Each pooled value came from one conv output, which read one window of the input:
        // its gradient goes back to that window only (a quarter of a dense conv backward,
        // and none at all where the ReLU was off in eval mode).
        let coef = BackCoefficients {
            scale,
            mean,
            inv_std,
            m1: &m1,
            m2: &m2,
            batch_terms,
            pool: arch.pool,
            step,
            kc,
        };
        let partials = par_chunks(&mut grads, threads, |start, chunk| {
            let mut dw = if need_params { vec![0f32; c * kc] } else { Vec::new() };
            for (j, g) in chunk.iter_mut().enumerate() {
                let e = &fwd.examples[start + j];
                let mut din = if need_input { vec![0f32; blk.in_len()] } else { Vec::new() };
                window_back(&g.dy, &e.z[bi], &e.argmax[bi], &e.inputs[bi], wts, &coef, &mut dw, &mut din);
                if need_input {
                    if bi > 0 {
                        g.dy = din[blk.pad * blk.c_in..(blk.pad + blk.l_in) * blk.c_in].to_vec();
                    } else {
                        din.truncate(arch.length);
                        g.dx = din;
                    }
                }
            }
            dw
        });
        if need_params {
            for dw in partials {
                for (d, s) in dtheta[blk.w..blk.w + c * kc].iter_mut().zip(&dw) {
                    *d += s;
                }
            }
        }
    }
    let dx = need_x.then(|| grads.into_iter().flat_map(|g| g.dx).collect());
    (dx, need_params.then_some(dtheta))
}
