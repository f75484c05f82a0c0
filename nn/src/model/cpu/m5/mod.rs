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
//!
//! Here the layout and the thread pool; `forward` and `backward` hold the passes and the
//! loops each one runs, `simd` the matrix product and the AVX2 dispatch.

mod backward;
mod forward;
mod simd;

use std::thread;

pub(in crate::model) use backward::backward;
pub(in crate::model) use forward::{Forward, forward};

/// Examples per unit of parallel work (and per partial sum).
const CHUNK: usize = 4;
pub(in crate::model) const BN_EPS: f64 = 1e-5;
pub(in crate::model) const BN_MOMENTUM: f64 = 0.1;

/// One conv block: conv → max-pool → norm → ReLU.
#[derive(Debug, Clone)]
pub(in crate::model) struct BlockArch {
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
    pub(in crate::model) fn kc(&self) -> usize {
        self.k * self.c_in
    }
    /// Length of the padded input buffer.
    pub(in crate::model) fn in_len(&self) -> usize {
        (self.l_in + 2 * self.pad) * self.c_in
    }
}

#[derive(Debug, Clone)]
pub(in crate::model) struct Arch {
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

    pub(in crate::model) fn channels(&self) -> usize {
        self.blocks.last().map_or(1, |b| b.c_out)
    }
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
