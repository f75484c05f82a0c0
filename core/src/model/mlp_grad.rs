//! The MLP's input gradient written out by hand: the inner loop of every PGD step.
//!
//! An attack needs ∂loss/∂x only, ten times per training batch. Through candle's
//! autograd that is ~20 small tensor allocations plus a graph walk per call; here it is
//! six `gemm` calls into reused buffers. The layout matches [`super::Mlp`]: weights are
//! `[in, out]` row-major, inputs are standardised inside the model, ReLU between layers.

use std::cell::RefCell;

/// One dense layer's parameters, borrowed from the model's CPU tensors.
pub struct Layer<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub inputs: usize,
    pub outputs: usize,
}

/// Activations per layer, and two gradient buffers.
type Scratch = (Vec<Vec<f32>>, Vec<f32>, Vec<f32>);

thread_local! {
    /// Grown once per thread and reused by every call.
    static SCRATCH: RefCell<Scratch> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// `dst[m×n] = lhs[m×k] · rhs`, where `rhs(r, c)` is at `rhs[r·rhs_rs + c·rhs_cs]`.
fn matmul(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    (m, k, n): (usize, usize, usize),
    rhs_rs: usize,
    rhs_cs: usize,
) {
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // Safety: the slices hold at least the m×k, k×n and m×n elements the strides address.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Per-row cross-entropy of `labels` and its gradient with respect to the raw rows `x`
/// (`n × width`), written to `loss` (`n`) and `grad` (`n × width`).
pub fn input_loss_grad(
    layers: &[Layer<'_>],
    mean: &[f32],
    inv_std: &[f32],
    x: &[f32],
    labels: &[u32],
    loss: &mut [f32],
    grad: &mut [f32],
) {
    let width = mean.len();
    let n = labels.len();
    SCRATCH.with(|s| {
        let (acts, g, g_in) = &mut *s.borrow_mut();
        acts.resize_with(layers.len() + 1, Vec::new);
        let z0 = &mut acts[0];
        z0.resize(n * width, 0.0);
        for (row, xr) in z0.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
            for (((z, &v), &m), &s) in row.iter_mut().zip(xr).zip(mean).zip(inv_std) {
                *z = (v - m) * s;
            }
        }
        let last = layers.len() - 1;
        for (l, layer) in layers.iter().enumerate() {
            let (before, after) = acts.split_at_mut(l + 1);
            let (input, out) = (&before[l], &mut after[0]);
            out.resize(n * layer.outputs, 0.0);
            matmul(out, input, layer.weight, (n, layer.inputs, layer.outputs), layer.outputs, 1);
            // Branch-free loops, so they vectorise.
            for row in out.chunks_exact_mut(layer.outputs) {
                if l < last {
                    row.iter_mut().zip(layer.bias).for_each(|(v, b)| *v = (*v + b).max(0.0));
                } else {
                    row.iter_mut().zip(layer.bias).for_each(|(v, b)| *v += b);
                }
            }
        }
        // Softmax cross-entropy: g = p − onehot(y), computed stably from the logits.
        let k = layers[last].outputs;
        g.resize(n * k, 0.0);
        for (i, (logits, gi)) in acts[last + 1].chunks_exact(k).zip(g.chunks_exact_mut(k)).enumerate() {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for (gc, &z) in gi.iter_mut().zip(logits) {
                *gc = (z - max).exp();
                sum += *gc;
            }
            let y = labels[i] as usize;
            loss[i] = max + sum.ln() - logits[y];
            gi.iter_mut().for_each(|gc| *gc /= sum);
            gi[y] -= 1.0;
        }
        for l in (0..layers.len()).rev() {
            let layer = &layers[l];
            g_in.resize(n * layer.inputs, 0.0);
            // g_in = g · Wᵀ: element (o, i) of Wᵀ is weight[i·outputs + o].
            matmul(g_in, g, layer.weight, (n, layer.outputs, layer.inputs), 1, layer.outputs);
            if l > 0 {
                g_in.iter_mut().zip(&acts[l]).for_each(|(gv, &h)| *gv = if h > 0.0 { *gv } else { 0.0 });
            }
            std::mem::swap(g, g_in);
        }
        for (row, gr) in grad.chunks_exact_mut(width).zip(g.chunks_exact(width)) {
            row.iter_mut().zip(gr).zip(inv_std).for_each(|((o, &gv), &s)| *o = gv * s);
        }
    });
}
