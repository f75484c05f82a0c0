//! Input-preprocessing defences (`[[defence]]`), judged the way Athalye et al. (2018) ask:
//! against the plain gradient attack, and against an adaptive one that sees past the
//! preprocessing (BPDA: backward as if it were the identity; EOT: the gradient averaged
//! over draws of a randomised one).
//!
//! A defence wraps the run's model as another [`Classifier`] ([`Defended`]), so the attack
//! plugins run against it through the ordinary oracle and need no change: `predict` sees
//! the preprocessing as deployed, and `loss_grad` answers with the gradient flavour the
//! wrapper was built with. The text defence ([`text`]) wraps a text model the same way
//! ([`Normalised`]); text attacks only query, so it is judged by transfer and by queries
//! through it instead.

/// The [`Classifier`] methods a defence leaves to the model it wraps (its `inner`): it
/// changes what the model sees, never what the model is.
macro_rules! same_model_as_inner {
    () => {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn n_classes(&self) -> usize {
            self.inner.n_classes()
        }
        fn device(&self) -> &Device {
            self.inner.device()
        }
        fn varmap(&self) -> &VarMap {
            self.inner.varmap()
        }
        fn trainable(&self) -> Vec<Var> {
            self.inner.trainable()
        }
    };
}

mod audio;
pub mod judging;
mod noise;
pub mod phase;
mod tabular;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor, Var};
use candle_nn::VarMap;

use crate::data::ExamplesRef;
use crate::modality::Task;
use crate::model::{Classifier, Mode, input_loss_grad_autograd};
use crate::pipeline::defence::{DEFAULT_SAMPLES, DEFAULT_TAPS, DefenceConfig, DefenceKind, StepUnit};
use crate::{Error, Result};

pub use audio::{BitDepth, LowPass, Median};
pub use noise::RandomNoise;
pub use tabular::Quantise;
pub use text::{Normalised, Spelling};

/// A preprocessing of dense rows, with its true backward.
pub trait Preprocess: Send + Sync {
    /// Preprocesses the rows of `x` (`width` values each) in place. `draw` picks the
    /// randomness of a randomised defence; a deterministic one ignores it.
    fn apply(&self, x: &mut [f32], width: usize, draw: u64);
    /// The true backward at the original rows `x`: overwrites `g`, the gradient with respect
    /// to the preprocessed rows, with the gradient with respect to `x` (Jᵀ g).
    fn backward(&self, x: &[f32], width: usize, draw: u64, g: &mut [f32]);
    /// Whether [`Preprocess::apply`] depends on `draw`.
    fn randomised(&self) -> bool {
        false
    }
    /// Its settings in words ("grid of 0.5 std per column").
    fn describe(&self) -> String;
}

/// Which input gradient the defended model answers `loss_grad` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gradient {
    /// The true gradient of preprocessing∘model (of the one deployed draw, for a randomised
    /// defence): what a naive attack sees. Zero almost everywhere through a quantiser.
    Through,
    /// Backward pass differentiable approximation: forward through the preprocessing,
    /// backward as if it were the identity.
    Bpda,
    /// Expectation over transformation: the true gradient averaged over `samples` draws of
    /// the randomness (draws 1…samples; draw 0 is the one predictions use).
    Eot { samples: usize },
}

impl Gradient {
    pub fn name(self) -> String {
        match self {
            Gradient::Through => "through".into(),
            Gradient::Bpda => "bpda".into(),
            Gradient::Eot { samples } => format!("eot-{samples}"),
        }
    }

    /// The adaptive gradient for `pre`: EOT for a randomised defence, BPDA otherwise.
    pub fn adaptive(pre: &dyn Preprocess, samples: usize) -> Self {
        if pre.randomised() { Gradient::Eot { samples } } else { Gradient::Bpda }
    }
}

/// A dense `[[defence]]` made ready for `task`'s data: column scales (tabular), sample rate
/// (audio). The text defence is [`text::spelling`].
pub fn build(config: &DefenceConfig, task: &dyn Task, seed: u64) -> Result<Arc<dyn Preprocess>> {
    let scales = || -> Result<Vec<(f32, bool)>> {
        let schema =
            task.schema().ok_or_else(|| Error::invalid("a tabular defence needs the table's columns"))?;
        let integer = tempered_plugin::FeatureKind::Integer as u32;
        Ok(schema.specs().iter().map(|s| (s.scale, s.kind == integer)).collect())
    };
    let per_column = |v: f64| -> Result<Vec<f32>> {
        Ok(match config.unit.unwrap_or_default() {
            StepUnit::Std => scales()?.iter().map(|&(s, _)| v as f32 * s).collect(),
            StepUnit::Raw => vec![v as f32; scales()?.len()],
        })
    };
    let seed = crate::evaluate::mix(seed, crate::hash::fnv1a(config.id.as_bytes()));
    Ok(match config.kind {
        DefenceKind::Quantise => {
            let step = config.step.ok_or_else(|| Error::invalid("quantise needs `step`"))?;
            let integer: Vec<bool> = scales()?.iter().map(|&(_, i)| i).collect();
            let unit = config.unit.unwrap_or_default();
            Arc::new(Quantise::new(per_column(step)?, &integer, step, unit))
        }
        DefenceKind::BitDepth => Arc::new(BitDepth::new(config.bits.unwrap_or(8))),
        DefenceKind::Median => Arc::new(Median::new(config.window.unwrap_or(3))),
        DefenceKind::LowPass => Arc::new(LowPass::new(
            config.cutoff_hz.unwrap_or_default(),
            task.sample_rate(),
            config.taps.unwrap_or(DEFAULT_TAPS),
        )?),
        DefenceKind::RandomNoise => {
            let sigma = config.sigma.unwrap_or_default();
            let per = match task.schema() {
                Some(_) => per_column(sigma)?,
                None => Vec::new(),
            };
            Arc::new(RandomNoise::new(sigma as f32, per, seed))
        }
        DefenceKind::Spelling => {
            return Err(Error::invalid("`spelling` preprocesses text, not dense rows: see defence::text"));
        }
    })
}

/// EOT draws of `config`.
pub fn samples(config: &DefenceConfig) -> usize {
    config.samples.unwrap_or(DEFAULT_SAMPLES)
}

/// `inner` behind a preprocessing, answering input gradients with `gradient`.
pub struct Defended<'a> {
    inner: &'a dyn Classifier,
    pre: Arc<dyn Preprocess>,
    gradient: Gradient,
    /// Input-gradient requests answered: zero after an attack that only queried.
    gradient_calls: Arc<AtomicU64>,
}

impl<'a> Defended<'a> {
    pub fn new(inner: &'a dyn Classifier, pre: Arc<dyn Preprocess>, gradient: Gradient) -> Self {
        Self { inner, pre, gradient, gradient_calls: Arc::new(AtomicU64::new(0)) }
    }

    /// How many input gradients were asked of this model.
    pub fn gradient_calls(&self) -> u64 {
        self.gradient_calls.load(Ordering::Relaxed)
    }

    /// Per-row loss and input gradient of `inner` at the dense rows `x`.
    fn inner_loss_grad(&self, x: &[f32], width: usize, labels: &[u32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mut l, mut g) = (vec![0f32; labels.len()], vec![0f32; x.len()]);
        match self.inner.input_loss_grad(x, labels, &mut l, &mut g) {
            Some(done) => done.map(|()| (l, g)),
            None => input_loss_grad_autograd(self.inner, &ExamplesRef::Dense { data: x, width }, labels),
        }
    }
}

impl Classifier for Defended<'_> {
    same_model_as_inner!();
    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
        self.inner.encode(x)
    }
    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let op = PreOp { pre: self.pre.clone(), gradient: self.gradient, calls: self.gradient_calls.clone() };
        // The preprocessing runs on the CPU; the moves are tracked by autograd.
        let y = if x.device().is_cpu() {
            x.apply_op1(op)?
        } else {
            x.to_device(&Device::Cpu)?.apply_op1(op)?.to_device(x.device())?
        };
        self.inner.forward(&y, mode)
    }
    fn dense_input(&self) -> bool {
        self.inner.dense_input()
    }
    fn input_loss_grad(
        &self,
        x: &[f32],
        labels: &[u32],
        loss: &mut [f32],
        grad: &mut [f32],
    ) -> Option<Result<()>> {
        self.gradient_calls.fetch_add(1, Ordering::Relaxed);
        let n = labels.len();
        if n == 0 {
            return Some(Ok(()));
        }
        if !x.len().is_multiple_of(n) {
            return Some(Err(Error::invalid(format!("{} values for {n} labels", x.len()))));
        }
        let width = x.len() / n;
        let draws: Vec<u64> = match self.gradient {
            Gradient::Eot { samples } => (1..=samples as u64).collect(),
            Gradient::Through | Gradient::Bpda => vec![0],
        };
        let k = draws.len() as f32;
        loss.fill(0.0);
        grad.fill(0.0);
        let mut xp = vec![0f32; x.len()];
        for d in draws {
            xp.copy_from_slice(x);
            self.pre.apply(&mut xp, width, d);
            let (l, mut g) = match self.inner_loss_grad(&xp, width, labels) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            if self.gradient != Gradient::Bpda {
                self.pre.backward(x, width, d, &mut g);
            }
            loss.iter_mut().zip(&l).for_each(|(a, b)| *a += b / k);
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b / k);
        }
        Some(Ok(()))
    }
}

/// The preprocessing as a candle op, so that an autograd pass through [`Defended::forward`]
/// (a model at an operating point differentiates its own logits) gets the same flavour of
/// gradient as [`Defended::input_loss_grad`]: candle's own `round` would cut the graph.
struct PreOp {
    pre: Arc<dyn Preprocess>,
    gradient: Gradient,
    calls: Arc<AtomicU64>,
}

fn rows_of(shape: &Shape) -> candle_core::Result<usize> {
    shape
        .dims()
        .last()
        .copied()
        .filter(|&w| w > 0)
        .ok_or_else(|| candle_core::Error::Msg("empty input".into()))
}

impl CustomOp1 for PreOp {
    fn name(&self) -> &'static str {
        "defence"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            return Err(candle_core::Error::Msg("a defence preprocesses f32 inputs".into()));
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("a defence needs a contiguous input".into()))?;
        let mut out = data[start..end].to_vec();
        self.pre.apply(&mut out, rows_of(layout.shape())?, 0);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.gradient == Gradient::Bpda {
            return Ok(Some(grad_res.clone()));
        }
        // Through, and one draw of EOT (a randomised defence is refused with an operating
        // point, the one caller that differentiates through `forward`).
        let width = rows_of(arg.shape())?;
        let x = arg.flatten_all()?.to_vec1::<f32>()?;
        let mut g = grad_res.flatten_all()?.to_vec1::<f32>()?;
        self.pre.backward(&x, width, 0, &mut g);
        Ok(Some(Tensor::from_vec(g, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand model: logits `[0, Σ w·x]`, so the input gradient is known in closed form.
    struct Linear {
        w: Vec<f32>,
        varmap: VarMap,
    }

    impl Classifier for Linear {
        fn n_classes(&self) -> usize {
            2
        }
        fn device(&self) -> &Device {
            &Device::Cpu
        }
        fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
            let ExamplesRef::Dense { data, width } = x else { unreachable!() };
            Ok(Tensor::from_slice(data, (data.len() / width, *width), &Device::Cpu)?)
        }
        fn forward(&self, x: &Tensor, _: Mode) -> candle_core::Result<Tensor> {
            let w = Tensor::from_slice(&self.w, (self.w.len(), 1), &Device::Cpu)?;
            let s = x.matmul(&w)?;
            Tensor::cat(&[&s.zeros_like()?, &s], 1)
        }
        fn varmap(&self) -> &VarMap {
            &self.varmap
        }
        fn trainable(&self) -> Vec<Var> {
            Vec::new()
        }
    }

    fn linear() -> Linear {
        Linear { w: vec![1.0, -2.0, 0.5], varmap: VarMap::new() }
    }

    #[test]
    fn autograd_through_forward_gives_the_flavour_asked_for() {
        let m = linear();
        let q: Arc<dyn Preprocess> = Arc::new(Quantise::new(vec![1.0; 3], &[false; 3], 1.0, StepUnit::Raw));
        let x = [0.3f32, 0.4, -1.2, 2.6, 0.1, 0.2];
        let data = ExamplesRef::Dense { data: &x, width: 3 };
        let through = Defended::new(&m, q.clone(), Gradient::Through);
        let (_, g) = input_loss_grad_autograd(&through, &data, &[1, 0]).unwrap();
        assert!(g.iter().all(|&v| v == 0.0), "{g:?}");
        let bpda = Defended::new(&m, q, Gradient::Bpda);
        let (_, g) = input_loss_grad_autograd(&bpda, &data, &[1, 0]).unwrap();
        // BPDA: the model's own gradient, taken at the preprocessed point.
        let rounded = [0f32, 0.0, -1.0, 3.0, 0.0, 0.0];
        let at = ExamplesRef::Dense { data: &rounded, width: 3 };
        let (_, plain) = input_loss_grad_autograd(&m, &at, &[1, 0]).unwrap();
        assert!(g.iter().all(|&v| v != 0.0));
        assert_eq!(g, plain);
        // The hand path (the oracle's) agrees with autograd through `forward`.
        let (mut l, mut h) = (vec![0f32; 2], vec![0f32; 6]);
        bpda.input_loss_grad(&x, &[1, 0], &mut l, &mut h).unwrap().unwrap();
        assert_eq!(h, plain);
        let (mut l, mut h) = (vec![0f32; 2], vec![1f32; 6]);
        through.input_loss_grad(&x, &[1, 0], &mut l, &mut h).unwrap().unwrap();
        assert!(h.iter().all(|&v| v == 0.0) && l.iter().all(|&v| v > 0.0));
        assert!(bpda.gradient_calls() > 0);
    }
}
