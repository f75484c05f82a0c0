//! Activations, LayerNorm and softmax with a backward wherever a gradient may flow:
//! candle's fused `LayerNorm` and `softmax_last_dim` have none, and gradients would
//! silently stop there; where none can (inference, frozen layers) the fused kernels run.
//! GELU (erf) is a CPU custom op with a one-pass backward.

use candle_core::cpu::erf::erf_f32;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, DType, Layout, Shape, Tensor};

#[derive(Debug, Clone, Copy)]
pub(super) enum Act {
    GeluErf,
    GeluTanh,
    Relu,
}

impl Act {
    pub(super) fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Act::GeluErf => gelu_erf(x),
            Act::GeluTanh => x.gelu(),
            Act::Relu => x.relu(),
        }
    }
}

/// GELU, erf form (HF's `"gelu"`). On CPU a custom op with a one-pass backward: candle's
/// own `gelu_erf` is exact too, but its backward is a dozen separate tensor passes (over a
/// tenth of a fine-tune step's CPU time). Elsewhere candle's op.
fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = crate::tensor::cpu_f32(s, l, "gelu")?;
        let y = x.iter().map(|&v| 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))).collect();
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &GeluErfGrad)?))
    }
}

/// `grad · gelu'(x)`, gelu'(x) = Φ(x) + x φ(x).
struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (
            crate::tensor::cpu_f32(s1, l1, "gelu backward")?,
            crate::tensor::cpu_f32(s2, l2, "gelu backward")?,
        );
        if x.len() != g.len() {
            candle_core::bail!("gelu backward: {} values, {} gradients", x.len(), g.len());
        }
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let out = x
            .iter()
            .zip(g)
            .map(|(&v, &g)| {
                let cdf = 0.5 * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
                g * (cdf + v * INV_SQRT_2PI * (-0.5 * v * v).exp())
            })
            .collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// LayerNorm over the last dimension. Wherever a gradient may be needed it is made of ops
/// that all have a backward: candle's fused `candle_nn::LayerNorm` has none, and gradients
/// would silently stop there.
pub(super) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if !(x.track_op() || w.track_op() || b.track_op()) {
        // Nothing here needs a gradient (inference, frozen layers): candle's fused op is
        // faster and matches within 1e-5 (tested).
        return candle_nn::ops::layer_norm(&x.contiguous()?, w, b, eps as f32);
    }
    layer_norm_basic(x, w, b, eps)
}

/// LayerNorm from mean / sub / sqr / sqrt / div, with the affine part as in [`add_rows`].
fn layer_norm_basic(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let std = (centred.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
    let normed = centred.broadcast_div(&std)?;
    if x.rank() == 2 && w.track_op() {
        add_rows(&(normed * rows(w, x.dim(0)?)?)?, b)
    } else {
        normed.broadcast_mul(w)?.broadcast_add(b)
    }
}

/// `v` (`[d]`) repeated as `n` rows. A tracked `v` is expanded by a matmul with a column
/// of ones, so that backward sums its gradient over the rows with a matmul too: candle's
/// sum over a leading dimension (what `broadcast_add` leaves to backward) is much slower
/// (BENCHMARKS.md).
fn rows(v: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    if v.track_op() {
        Tensor::ones((n, 1), v.dtype(), v.device())?.matmul(&v.unsqueeze(0)?)
    } else {
        v.unsqueeze(0)?.broadcast_as((n, v.dim(0)?))
    }
}

/// `x + v` for `x: [n, d]` and a bias `v: [d]` (see [`rows`]).
pub(super) fn add_rows(x: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    if v.track_op() { x + rows(v, x.dim(0)?)? } else { x.broadcast_add(v) }
}

/// Softmax over the last dimension. Where a gradient may be needed, from basic ops with
/// the max detached: softmax does not depend on the shift, so its gradient is exact and
/// backward skips the max's mask.
pub(super) fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.track_op() {
        // No gradient needed: candle's fused (backward-less) kernel.
        return candle_nn::ops::softmax_last_dim(&x.contiguous()?);
    }
    let e = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::bert::tests::max_diff;
    use crate::model::params;

    #[test]
    fn layer_norm_matches_candle_fused_forward() {
        let mut rng = params::rng_for(1, "ln");
        use rand::Rng;
        let mut draw = |n: usize, scale: f32, centre: f32| -> Vec<f32> {
            (0..n).map(|_| centre + scale * rng.random_range(-1.0f32..1.0)).collect()
        };
        let x = Tensor::from_vec(draw(3 * 5 * 64, 3.0, 0.5), (3, 5, 64), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(draw(64, 0.2, 1.0), 64, &Device::Cpu).unwrap();
        let b = Tensor::from_vec(draw(64, 0.2, 0.0), 64, &Device::Cpu).unwrap();
        let stock = candle_nn::LayerNorm::new(w.clone(), b.clone(), 1e-12);
        let ours = layer_norm_basic(&x, &w, &b, 1e-12).unwrap();
        let theirs = candle_core::Module::forward(&stock, &x).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-5, "{}", max_diff(&ours, &theirs));
    }

    #[test]
    fn fused_gelu_matches_candle_forward_and_gradient() {
        let x = Var::new((-600..600).map(|i| i as f32 / 80.0).collect::<Vec<_>>(), &Device::Cpu).unwrap();
        let w = Tensor::new((0..1200).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), &Device::Cpu)
            .unwrap();
        let ours = gelu_erf(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-6);
        let g_ours = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d = max_diff(g_ours.get(x.as_tensor()).unwrap(), g_theirs.get(x.as_tensor()).unwrap());
        assert!(d < 1e-5, "{d}");
    }
}
