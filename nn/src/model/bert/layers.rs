//! The pieces of the network: parameters that are trained or frozen, linear and norm
//! layers, and one encoder layer (self-attention and feed-forward).

use candle_core::{Tensor, Var};

use super::ops::{Act, add_rows, layer_norm, softmax};
use crate::model::Mode;

/// A var and whether the optimiser trains it. Frozen vars are always detached, so
/// backward never enters what lies below the lowest trainable layer.
#[derive(Clone)]
pub(super) struct Param {
    pub(super) var: Var,
    pub(super) train: bool,
}

impl Param {
    pub(super) fn get(&self, mode: Mode) -> Tensor {
        if self.train && mode.param_grads {
            self.var.as_tensor().clone()
        } else {
            self.var.as_tensor().detach()
        }
    }
}

/// HF layout: weight `[out, in]`.
pub(super) struct Linear {
    pub(super) w: Param,
    pub(super) b: Param,
}

impl Linear {
    /// `x`: `[n, in]` → `[n, out]`.
    pub(super) fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        add_rows(&x.matmul(&self.w.get(mode).t()?)?, &self.b.get(mode))
    }
}

pub(super) struct Norm {
    pub(super) w: Param,
    pub(super) b: Param,
    pub(super) eps: f64,
}

impl Norm {
    pub(super) fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        layer_norm(x, &self.w.get(mode), &self.b.get(mode), self.eps)
    }
}

pub(super) struct Layer {
    pub(super) query: Linear,
    pub(super) key: Linear,
    pub(super) value: Linear,
    pub(super) attn_out: Linear,
    pub(super) attn_norm: Norm,
    pub(super) inter: Linear,
    pub(super) out: Linear,
    pub(super) out_norm: Norm,
}

impl Layer {
    /// `x`: `[b·l, h]`; `bias`: `[b, 1, 1, l]` (0 or −∞ for padding); `heads` attention
    /// heads and the feed-forward activation `act` are the network's.
    pub(super) fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        heads: usize,
        act: Act,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let (n, h) = x.dims2()?;
        let (b, _, _, l) = bias.dims4()?;
        let dh = h / heads;
        let split = |t: Tensor| t.reshape((b, l, heads, dh))?.transpose(1, 2)?.contiguous();
        let q = split((self.query.forward(x, mode)? * (1.0 / (dh as f64).sqrt()))?)?;
        let k = split(self.key.forward(x, mode)?)?;
        let v = split(self.value.forward(x, mode)?)?;
        let probs = softmax(&q.matmul(&k.t()?)?.broadcast_add(bias)?)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((n, h))?;
        let a = self.attn_norm.forward(&(self.attn_out.forward(&ctx, mode)? + x)?, mode)?;
        let i = act.apply(&self.inter.forward(&a, mode)?)?;
        self.out_norm.forward(&(self.out.forward(&i, mode)? + &a)?, mode)
    }
}
