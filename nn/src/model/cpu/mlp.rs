//! The MLP's gradients written out by hand: the inner loop of every PGD step, and the
//! training step itself.
//!
//! An attack needs ∂loss/∂x only, ten times per training batch. Through candle's
//! autograd that is ~20 small tensor allocations plus a graph walk per call; here it is
//! six `gemm` calls into reused buffers. A training step likewise needs only the weight
//! gradients of one small network, which candle spends most of its time allocating and
//! reducing around. The layout matches [`crate::model::Mlp`]: weights are `[in, out]` row-major,
//! inputs are standardised inside the model, ReLU between layers.

use std::cell::RefCell;

use crate::model::TrainPart;

/// One dense layer's parameters, borrowed from the model's CPU tensors.
pub struct Layer<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub inputs: usize,
    pub outputs: usize,
}

/// Activations per layer, and two gradient buffers.
#[derive(Default)]
struct Scratch {
    acts: Vec<Vec<f32>>,
    g: Vec<f32>,
    g_in: Vec<f32>,
}

thread_local! {
    /// Grown once per thread and reused by every call.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A row-major matrix argument of [`matmul`]: element (r, c) is at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A contiguous row-major matrix with `cols` columns.
    fn rows(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: cols, cs: 1 }
    }

    /// The transpose of a contiguous row-major matrix with `cols` columns.
    fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: 1, cs: cols }
    }
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]`, `dst` contiguous row-major.
fn matmul(dst: &mut [f32], lhs: Mat<'_>, rhs: Mat<'_>, (m, k, n): (usize, usize, usize)) {
    let last = |a: Mat<'_>, r: usize, c: usize| (r.max(1) - 1) * a.rs + (c.max(1) - 1) * a.cs;
    assert!(dst.len() >= m * n);
    assert!(m * k == 0 || last(lhs, m, k) < lhs.data.len());
    assert!(k * n == 0 || last(rhs, k, n) < rhs.data.len());
    // Safety: the asserts above keep every address the strides reach inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Standardises rows `x` into `z` (which it extends).
fn standardize(z: &mut Vec<f32>, x: &[f32], mean: &[f32], inv_std: &[f32]) {
    for xr in x.chunks_exact(mean.len()) {
        z.extend(xr.iter().zip(mean).zip(inv_std).map(|((&v, &m), &s)| (v - m) * s));
    }
}

/// Runs the layers on the `n` standardised rows in `acts[0]`, leaving every layer's output
/// (after ReLU) in `acts[1..]` and the logits last.
fn forward(layers: &[Layer<'_>], acts: &mut Vec<Vec<f32>>, n: usize) {
    acts.resize_with(layers.len() + 1, Vec::new);
    let last = layers.len() - 1;
    for (l, layer) in layers.iter().enumerate() {
        let (before, after) = acts.split_at_mut(l + 1);
        let (input, out) = (&before[l], &mut after[0]);
        out.resize(n * layer.outputs, 0.0);
        let shape = (n, layer.inputs, layer.outputs);
        matmul(out, Mat::rows(input, layer.inputs), Mat::rows(layer.weight, layer.outputs), shape);
        // Branch-free loops, so they vectorise.
        for row in out.chunks_exact_mut(layer.outputs) {
            if l < last {
                row.iter_mut().zip(layer.bias).for_each(|(v, b)| *v = (*v + b).max(0.0));
            } else {
                row.iter_mut().zip(layer.bias).for_each(|(v, b)| *v += b);
            }
        }
    }
}

/// Softmax cross-entropy of one row of logits against label `y`, computed stably: returns
/// the loss and leaves `p − onehot(y)` in `g`.
fn cross_entropy_row(logits: &[f32], y: usize, g: &mut [f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (gc, &z) in g.iter_mut().zip(logits) {
        *gc = (z - max).exp();
        sum += *gc;
    }
    g.iter_mut().for_each(|gc| *gc /= sum);
    g[y] -= 1.0;
    max + sum.ln() - logits[y]
}

/// Zeroes the entries of gradient `g` where the ReLU output `h` was not positive.
fn relu_mask(g: &mut [f32], h: &[f32]) {
    g.iter_mut().zip(h).for_each(|(gv, &h)| *gv = if h > 0.0 { *gv } else { 0.0 });
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
        let Scratch { acts, g, g_in } = &mut *s.borrow_mut();
        acts.resize_with(layers.len() + 1, Vec::new);
        acts[0].clear();
        standardize(&mut acts[0], x, mean, inv_std);
        forward(layers, acts, n);
        let last = layers.len() - 1;
        let k = layers[last].outputs;
        g.resize(n * k, 0.0);
        for (i, (logits, gi)) in acts[last + 1].chunks_exact(k).zip(g.chunks_exact_mut(k)).enumerate() {
            loss[i] = cross_entropy_row(logits, labels[i] as usize, gi);
        }
        for l in (0..layers.len()).rev() {
            let layer = &layers[l];
            g_in.resize(n * layer.inputs, 0.0);
            let shape = (n, layer.outputs, layer.inputs);
            matmul(g_in, Mat::rows(g, layer.outputs), Mat::transposed(layer.weight, layer.outputs), shape);
            if l > 0 {
                relu_mask(g_in, &acts[l]);
            }
            std::mem::swap(g, g_in);
        }
        for (row, gr) in grad.chunks_exact_mut(width).zip(g.chunks_exact(width)) {
            row.iter_mut().zip(gr).zip(inv_std).for_each(|((o, &gv), &s)| *o = gv * s);
        }
    });
}

/// The training loss `Σ_p weight_p · mean CE(part_p)` and its gradient with respect to
/// every layer's weight and bias, written to `grads` in the order weight 0, bias 0,
/// weight 1, … (each exactly as long as the parameter). Returns the loss.
///
/// All parts go through the layers as one stacked batch: the weight gradients are then
/// one `gemm` per layer, with each row's share of the loss folded into its softmax
/// gradient.
pub fn train_grads(
    layers: &[Layer<'_>],
    mean: &[f32],
    inv_std: &[f32],
    parts: &[TrainPart<'_>],
    grads: &mut [Vec<f32>],
) -> f32 {
    assert_eq!(grads.len(), 2 * layers.len(), "a weight and a bias gradient per layer");
    let n: usize = parts.iter().map(|p| p.labels.len()).sum();
    SCRATCH.with(|s| {
        let Scratch { acts, g, g_in } = &mut *s.borrow_mut();
        acts.resize_with(layers.len() + 1, Vec::new);
        acts[0].clear();
        for p in parts {
            standardize(&mut acts[0], p.x, mean, inv_std);
        }
        forward(layers, acts, n);
        let last = layers.len() - 1;
        let k = layers[last].outputs;
        g.resize(n * k, 0.0);
        let mut total = 0.0f64;
        let mut rows = acts[last + 1].chunks_exact(k).zip(g.chunks_exact_mut(k));
        for p in parts {
            if p.labels.is_empty() {
                continue;
            }
            let scale = p.weight / p.labels.len() as f32;
            let mut sum = 0.0f64;
            // Labels first: `zip` asks its left side first, so no row is consumed past the part.
            for (&y, (logits, gi)) in p.labels.iter().zip(rows.by_ref()) {
                sum += cross_entropy_row(logits, y as usize, gi) as f64;
                gi.iter_mut().for_each(|v| *v *= scale);
            }
            total += p.weight as f64 * sum / p.labels.len() as f64;
        }
        for l in (0..layers.len()).rev() {
            let layer = &layers[l];
            let (gw, gb) = grads[2 * l..2 * l + 2].split_at_mut(1);
            let (gw, gb) = (&mut gw[0], &mut gb[0]);
            gw.resize(layer.inputs * layer.outputs, 0.0);
            // ∂W = inputᵀ · g: the input's rows become the reduction dimension.
            let shape = (layer.inputs, n, layer.outputs);
            matmul(gw, Mat::transposed(&acts[l], layer.inputs), Mat::rows(g, layer.outputs), shape);
            gb.clear();
            gb.resize(layer.outputs, 0.0);
            for row in g.chunks_exact(layer.outputs) {
                gb.iter_mut().zip(row).for_each(|(b, &v)| *b += v);
            }
            if l > 0 {
                g_in.resize(n * layer.inputs, 0.0);
                let shape = (n, layer.outputs, layer.inputs);
                matmul(
                    g_in,
                    Mat::rows(g, layer.outputs),
                    Mat::transposed(layer.weight, layer.outputs),
                    shape,
                );
                relu_mask(g_in, &acts[l]);
                std::mem::swap(g, g_in);
            }
        }
        total as f32
    })
}
