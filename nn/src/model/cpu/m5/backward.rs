//! The backward pass, through the max-pooling first: each pooled value's gradient goes to
//! the one input window its maximum read.

use super::forward::Forward;
use super::simd::{axpy, simd};
use super::{Arch, par_chunks};

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
pub(in crate::model) fn backward(
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
