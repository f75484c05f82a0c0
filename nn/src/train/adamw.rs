//! AdamW that updates each parameter in place, in one pass.
//!
//! candle-nn's `AdamW` is the reference (same update, same defaults), but it spells a step
//! as about ten tensor operations per parameter, each allocating a tensor the size of the
//! parameter. For a word-CNN that is a dozen passes and fresh pages over a 1.2 M-weight
//! embedding table per batch, most of a training step (BENCHMARKS.md). Here a step reads the
//! gradient once and writes the weight and both moments in the same loop (an in-place
//! custom op on the weight's CPU storage), so it costs one sweep of memory.
//!
//! Off the CPU (the `cuda` feature) the moments live on the device, so the update is
//! candle-nn's, spelled out op for op in [`Tensors`] (same numbers) so that the moments can
//! be saved with a checkpoint: candle-nn keeps them private.
//!
//! [`AdamW::moments`] and [`AdamW::restore`] carry the step count and both moments of every
//! parameter through a checkpoint, so a resumed run takes the steps the uninterrupted one
//! would have.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp1, InplaceOp2, Layout, Tensor, Var};
use candle_nn::ParamsAdamW;

use crate::model::checkpoint::Expected;
use crate::tensor::{cpu_f32, cpu_f32_mut};

pub enum AdamW {
    Fused(Fused),
    Tensors(Tensors),
}

impl AdamW {
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> candle_core::Result<Self> {
        let fused = vars.iter().all(|v| v.device().is_cpu() && v.dtype() == DType::F32);
        if fused {
            let slots = vars
                .into_iter()
                .map(|v| {
                    let n = v.elem_count();
                    (v, Mutex::new(Moments::new(n)))
                })
                .collect();
            Ok(Self::Fused(Fused { slots, params, step_t: 0 }))
        } else {
            Ok(Self::Tensors(Tensors::new(vars, params)?))
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        match self {
            Self::Fused(f) => f.step(grads),
            Self::Tensors(t) => t.step(grads),
        }
    }

    pub fn backward_step(&mut self, loss: &candle_core::Tensor) -> candle_core::Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Whether [`AdamW::step_slices`] works here.
    pub fn takes_slices(&self) -> bool {
        matches!(self, Self::Fused(_))
    }

    /// A step from gradients computed outside autograd (a model's hand-written training
    /// step): `grads[i]` is the gradient of the `i`-th var given to [`AdamW::new`].
    /// CPU f32 parameters only, the only ones such gradients exist for.
    pub fn step_slices(&mut self, grads: &[Vec<f32>]) -> candle_core::Result<()> {
        match self {
            Self::Fused(f) => f.step_slices(grads),
            Self::Tensors(_) => candle_core::bail!("AdamW: slice gradients need CPU f32 parameters"),
        }
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> usize {
        match self {
            Self::Fused(f) => f.step_t,
            Self::Tensors(t) => t.step_t,
        }
    }

    /// The dtype and shape of each parameter's moments, in order.
    pub fn expected(&self) -> Vec<Expected> {
        match self {
            Self::Fused(f) => f.slots.iter().map(|(v, _)| Expected::of(v.as_tensor())).collect(),
            Self::Tensors(t) => t.slots.iter().map(|s| Expected::of(s.var.as_tensor())).collect(),
        }
    }

    /// Each parameter's first and second moment, in order. They may share storage with the
    /// optimiser: write them out before the next step.
    pub fn moments(&self) -> candle_core::Result<Vec<(Tensor, Tensor)>> {
        match self {
            Self::Fused(f) => f
                .slots
                .iter()
                .map(|(var, mo)| {
                    let mo = mo.lock().expect("AdamW moments");
                    Ok((
                        Tensor::from_slice(&mo.m, var.shape(), &Device::Cpu)?,
                        Tensor::from_slice(&mo.v, var.shape(), &Device::Cpu)?,
                    ))
                })
                .collect(),
            Self::Tensors(t) => {
                Ok(t.slots.iter().map(|s| (s.m.as_tensor().clone(), s.v.as_tensor().clone())).collect())
            }
        }
    }

    /// Puts back the step count and the moments [`AdamW::moments`] gave.
    pub fn restore(&mut self, step: usize, moments: &[(Tensor, Tensor)]) -> candle_core::Result<()> {
        let n = match self {
            Self::Fused(f) => f.slots.len(),
            Self::Tensors(t) => t.slots.len(),
        };
        if moments.len() != n {
            candle_core::bail!("AdamW: {} saved moments for {n} parameters", moments.len());
        }
        match self {
            Self::Fused(f) => {
                for ((var, mo), (m, v)) in f.slots.iter().zip(moments) {
                    let mut mo = mo.lock().expect("AdamW moments");
                    let (m, v) = (m.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?);
                    if m.len() != var.elem_count() || v.len() != var.elem_count() {
                        candle_core::bail!("AdamW: saved moments of another size");
                    }
                    *mo = Moments { m, v };
                }
                f.step_t = step;
            }
            Self::Tensors(t) => {
                for (slot, (m, v)) in t.slots.iter().zip(moments) {
                    slot.m.set(m)?;
                    slot.v.set(v)?;
                }
                t.step_t = step;
            }
        }
        Ok(())
    }
}

/// One parameter of [`Tensors`] and its moments.
struct Slot {
    var: Var,
    m: Var,
    v: Var,
}

/// candle-nn's `AdamW` (0.11), the same ops in the same order, with its moments reachable.
pub struct Tensors {
    slots: Vec<Slot>,
    params: ParamsAdamW,
    step_t: usize,
}

impl Tensors {
    fn new(vars: Vec<Var>, params: ParamsAdamW) -> candle_core::Result<Self> {
        let slots = vars
            .into_iter()
            .filter(|var| var.dtype().is_float())
            .map(|var| {
                let (dtype, shape, device) = (var.dtype(), var.shape().clone(), var.device().clone());
                let m = Var::zeros(&shape, dtype, &device)?;
                let v = Var::zeros(&shape, dtype, &device)?;
                Ok(Slot { var, m, v })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { slots, params, step_t: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step_t += 1;
        let lr = self.params.lr;
        let lambda = self.params.weight_decay;
        let lr_lambda = lr * lambda;
        let beta1 = self.params.beta1;
        let beta2 = self.params.beta2;
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step_t as i32));
        for slot in &self.slots {
            let (theta, m, v) = (&slot.var, &slot.m, &slot.v);
            if let Some(g) = grads.get(theta) {
                let next_m = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
                let next_v = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                let m_hat = (&next_m * scale_m)?;
                let v_hat = (&next_v * scale_v)?;
                let next_theta = (theta.as_tensor() * (1f64 - lr_lambda))?;
                let adjusted_grad = (m_hat / (v_hat.sqrt()? + self.params.eps)?)?;
                let next_theta = (next_theta - (adjusted_grad * lr)?)?;
                m.set(&next_m)?;
                v.set(&next_v)?;
                theta.set(&next_theta)?;
            }
        }
        Ok(())
    }
}

struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    fn new(n: usize) -> Self {
        Self { m: vec![0.0; n], v: vec![0.0; n] }
    }
}

pub struct Fused {
    slots: Vec<(Var, Mutex<Moments>)>,
    params: ParamsAdamW,
    step_t: usize,
}

/// One parameter's update, with the step's constants.
struct Update<'a> {
    moments: &'a Mutex<Moments>,
    beta1: f32,
    beta2: f32,
    scale_m: f32,
    scale_v: f32,
    decay: f32,
    lr: f32,
    eps: f32,
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        self.apply(cpu_f32_mut(s1, l1, "fused AdamW")?, cpu_f32(s2, l2, "fused AdamW")?)
    }
}

impl Update<'_> {
    fn apply(&self, theta: &mut [f32], grad: &[f32]) -> candle_core::Result<()> {
        let mut mo = self.moments.lock().expect("AdamW moments");
        let Moments { m, v } = &mut *mo;
        if theta.len() != grad.len() || theta.len() != m.len() {
            candle_core::bail!("fused AdamW: {} weights, {} gradients", theta.len(), grad.len());
        }
        let (b1, b2) = (self.beta1, self.beta2);
        for (((w, &g), m), v) in theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let step = (*m * self.scale_m) / ((*v * self.scale_v).sqrt() + self.eps);
            *w = *w * self.decay - self.lr * step;
        }
        Ok(())
    }
}

/// [`Update`] with a gradient that lives outside candle.
struct UpdateFrom<'a> {
    update: Update<'a>,
    grad: &'a [f32],
}

impl InplaceOp1 for UpdateFrom<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        self.update.apply(cpu_f32_mut(s, l, "fused AdamW")?, self.grad)
    }
}

impl Fused {
    /// The update of one parameter at step `t`.
    fn update<'a>(params: &ParamsAdamW, t: usize, moments: &'a Mutex<Moments>) -> Update<'a> {
        let (p, t) = (params, t as i32);
        Update {
            moments,
            beta1: p.beta1 as f32,
            beta2: p.beta2 as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(t))) as f32,
            decay: (1.0 - p.lr * p.weight_decay) as f32,
            lr: p.lr as f32,
            eps: p.eps as f32,
        }
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step_t += 1;
        for (var, moments) in &self.slots {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = g.contiguous()?;
            var.as_tensor().inplace_op2(&g, &Self::update(&self.params, self.step_t, moments))?;
        }
        Ok(())
    }

    fn step_slices(&mut self, grads: &[Vec<f32>]) -> candle_core::Result<()> {
        if grads.len() != self.slots.len() {
            candle_core::bail!("AdamW: {} gradients for {} parameters", grads.len(), self.slots.len());
        }
        self.step_t += 1;
        for ((var, moments), grad) in self.slots.iter().zip(grads) {
            let update = Self::update(&self.params, self.step_t, moments);
            var.as_tensor().inplace_op1(&UpdateFrom { update, grad })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Optimizer;

    /// The fused step follows candle-nn's AdamW step for step, weight decay included.
    #[test]
    fn matches_candle_adamw() {
        let dev = Device::Cpu;
        let init = Tensor::new(&[[0.5f32, -1.0, 2.0], [0.0, 3.0, -0.25]], &dev).unwrap();
        let (a, b) = (Var::from_tensor(&init).unwrap(), Var::from_tensor(&init).unwrap());
        let params = ParamsAdamW { lr: 0.05, weight_decay: 0.1, ..Default::default() };
        let mut fused = AdamW::new(vec![a.clone()], params.clone()).unwrap();
        assert!(matches!(fused, AdamW::Fused(_)));
        let mut reference = candle_nn::AdamW::new(vec![b.clone()], params).unwrap();
        let target = Tensor::new(&[[1.0f32, 2.0, 3.0], [-1.0, 0.5, 0.0]], &dev).unwrap();
        for _ in 0..20 {
            fused
                .backward_step(&(a.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap())
                .unwrap();
            reference
                .backward_step(&(b.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap())
                .unwrap();
        }
        let (x, y) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_ne!(x, init.flatten_all().unwrap().to_vec1::<f32>().unwrap(), "it moved");
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-5, "{x:?} vs {y:?}");
        }
    }

    /// A parameter without a gradient (frozen or unused this step) is left alone.
    #[test]
    fn skips_parameters_without_gradient() {
        let dev = Device::Cpu;
        let used = Var::new(&[1.0f32, 2.0], &dev).unwrap();
        let unused = Var::new(&[5.0f32], &dev).unwrap();
        let mut opt = AdamW::new(vec![used.clone(), unused.clone()], ParamsAdamW::default()).unwrap();
        opt.backward_step(&used.as_tensor().sum_all().unwrap()).unwrap();
        assert_eq!(unused.to_vec1::<f32>().unwrap(), vec![5.0]);
        assert_ne!(used.to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
    }

    fn quadratic(var: &Var, target: &Tensor) -> Tensor {
        (var.as_tensor() - target).unwrap().sqr().unwrap().sum_all().unwrap()
    }

    fn values(var: &Var) -> Vec<f32> {
        var.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// The spelled-out path takes candle-nn's steps bit for bit.
    #[test]
    fn the_tensor_path_is_candle_nn_exactly() {
        let dev = Device::Cpu;
        let init = Tensor::new(&[[0.5f32, -1.0, 2.0], [0.0, 3.0, -0.25]], &dev).unwrap();
        let (a, b) = (Var::from_tensor(&init).unwrap(), Var::from_tensor(&init).unwrap());
        let params = ParamsAdamW { lr: 0.05, weight_decay: 0.1, ..Default::default() };
        let mut ours = AdamW::Tensors(Tensors::new(vec![a.clone()], params.clone()).unwrap());
        let mut reference = candle_nn::AdamW::new(vec![b.clone()], params).unwrap();
        let target = Tensor::new(&[[1.0f32, 2.0, 3.0], [-1.0, 0.5, 0.0]], &dev).unwrap();
        for _ in 0..20 {
            ours.backward_step(&quadratic(&a, &target)).unwrap();
            reference.backward_step(&quadratic(&b, &target)).unwrap();
        }
        assert_eq!(values(&a), values(&b));
    }

    /// An optimiser restored from another's step count and moments continues exactly as
    /// the other does, on both paths.
    #[test]
    fn restored_moments_continue_exactly() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[[1.0f32, 2.0, 3.0], [-1.0, 0.5, 0.0]], &dev).unwrap();
        let params = ParamsAdamW { lr: 0.05, weight_decay: 0.1, ..Default::default() };
        let makers: [fn(Var, ParamsAdamW) -> AdamW; 2] = [
            |v, p| AdamW::new(vec![v], p).unwrap(),
            |v, p| AdamW::Tensors(Tensors::new(vec![v], p).unwrap()),
        ];
        for make in makers {
            let a = Var::new(&[[0.5f32, -1.0, 2.0], [0.0, 3.0, -0.25]], &dev).unwrap();
            let mut first = make(a.clone(), params.clone());
            for _ in 0..7 {
                first.backward_step(&quadratic(&a, &target)).unwrap();
            }
            let b = Var::from_tensor(&a.as_tensor().copy().unwrap()).unwrap();
            let mut second = make(b.clone(), params.clone());
            let saved: Vec<(Tensor, Tensor)> = first
                .moments()
                .unwrap()
                .into_iter()
                .map(|(m, v)| (m.copy().unwrap(), v.copy().unwrap()))
                .collect();
            assert_eq!(saved[0].0.dims(), first.expected()[0].shape.dims());
            second.restore(first.step_count(), &saved).unwrap();
            for _ in 0..7 {
                first.backward_step(&quadratic(&a, &target)).unwrap();
                second.backward_step(&quadratic(&b, &target)).unwrap();
            }
            assert_eq!(values(&a), values(&b));
            assert_eq!(first.step_count(), 14);
        }
    }
}
