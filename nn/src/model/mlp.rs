//! Tabular classifiers: an MLP (ReLU) or logistic regression over standardised features.
//! The standardisation is part of the model, so attacks and the oracle work in raw units
//! and input gradients come out in raw units too.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::cpu;
use super::params::ParamBuilder;
use super::{Classifier, Mode, TrainPart};
use crate::examples::ExamplesRef;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TabularModelKind {
    #[default]
    Mlp,
    Logistic,
}

/// `[model]` of a tabular pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TabularModelConfig {
    pub kind: TabularModelKind,
    /// Hidden layer widths of the MLP (ignored by `logistic`).
    pub hidden: Vec<usize>,
}

impl Default for TabularModelConfig {
    fn default() -> Self {
        Self { kind: TabularModelKind::Mlp, hidden: vec![64, 64] }
    }
}

pub struct Mlp {
    varmap: VarMap,
    /// The layers' weights and biases, in order (the standardisation is frozen).
    trainable: Vec<Var>,
    /// (weight `[in, out]`, bias `[out]`) per layer.
    layers: Vec<(Var, Var)>,
    mean: Tensor,
    inv_std: Tensor,
    width: usize,
    n_classes: usize,
    device: Device,
}

impl Mlp {
    /// `mean` and `std` are the train split's per-feature statistics.
    pub fn new(
        cfg: &TabularModelConfig,
        mean: &[f32],
        std: &[f32],
        n_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let width = mean.len();
        let pb = ParamBuilder::new(seed, device);
        let hidden: &[usize] = match cfg.kind {
            TabularModelKind::Mlp => &cfg.hidden,
            TabularModelKind::Logistic => &[],
        };
        let mut dims = vec![width];
        dims.extend_from_slice(hidden);
        dims.push(n_classes);
        let mut layers = Vec::new();
        for (i, pair) in dims.windows(2).enumerate() {
            // PyTorch's default: U(±1/√fan_in) for weights and biases alike.
            let bound = 1.0 / (pair[0] as f32).sqrt();
            let layer = pb.pp(format!("layer{i}"));
            layers.push((
                layer.uniform("weight", &[pair[0], pair[1]], bound)?,
                layer.uniform("bias", &[pair[1]], bound)?,
            ));
        }
        let inv: Vec<f32> =
            std.iter().map(|&s| if s > 0.0 && s.is_finite() { 1.0 / s } else { 1.0 }).collect();
        let stats = pb.pp("standardize").frozen();
        let mean = stats.var("mean", Tensor::from_slice(mean, (1, width), device)?)?;
        let inv_std = stats.var("inv_std", Tensor::from_slice(&inv, (1, width), device)?)?;
        let (varmap, trainable) = pb.build();
        Ok(Self {
            varmap,
            trainable,
            layers,
            mean: mean.as_tensor().detach(),
            inv_std: inv_std.as_tensor().detach(),
            width,
            n_classes,
            device: device.clone(),
        })
    }
}

impl Classifier for Mlp {
    fn name(&self) -> &str {
        "MLP"
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
        match x {
            ExamplesRef::Dense { data, width } if *width == self.width => {
                Ok(Tensor::from_slice(data, (data.len() / width, *width), &self.device)?)
            }
            ExamplesRef::Dense { width, .. } => {
                Err(Error::invalid(format!("model expects rows of {} features, got {width}", self.width)))
            }
            ExamplesRef::Text(_) => Err(Error::invalid("a tabular model cannot read text")),
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let mut h = x.broadcast_sub(&self.mean)?.broadcast_mul(&self.inv_std)?;
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            let (w, b) = if mode.param_grads {
                (w.as_tensor().clone(), b.as_tensor().clone())
            } else {
                (w.as_tensor().detach(), b.as_tensor().detach())
            };
            // The bias enters through a matmul with a ones column: its gradient is then a
            // gemm instead of candle's slow reduction over the batch dimension.
            let ones = Tensor::ones((h.dim(0)?, 1), DType::F32, h.device())?;
            h = (h.matmul(&w)? + ones.matmul(&b.unsqueeze(0)?)?)?;
            if i < last {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn trainable(&self) -> Vec<Var> {
        self.trainable.clone()
    }

    fn input_loss_grad(
        &self,
        x: &[f32],
        labels: &[u32],
        loss: &mut [f32],
        grad: &mut [f32],
    ) -> Option<Result<()>> {
        self.with_slices(|layers, mean, inv_std| {
            cpu::mlp::input_loss_grad(layers, mean, inv_std, x, labels, loss, grad);
            Ok(())
        })
    }

    fn train_grads(&self, parts: &[TrainPart<'_>], grads: &mut [Vec<f32>]) -> Option<Result<f32>> {
        if parts.iter().any(|p| p.x.len() != p.labels.len() * self.width) {
            return Some(Err(Error::invalid(format!("model expects rows of {} features", self.width))));
        }
        let classes = self.n_classes as u32;
        if let Some(l) = parts.iter().flat_map(|p| p.labels).find(|&&l| l >= classes) {
            return Some(Err(Error::invalid(format!(
                "label {l} is not a class of this {classes}-class model"
            ))));
        }
        self.with_slices(|layers, mean, inv_std| {
            Ok(cpu::mlp::train_grads(layers, mean, inv_std, parts, grads))
        })
    }
}

impl Mlp {
    /// Runs `f` on the layers, mean and inverse std as CPU slices, holding the tensors'
    /// read locks meanwhile (so `f` must not update them). `None` off the CPU.
    fn with_slices<R>(
        &self,
        f: impl FnOnce(&[cpu::mlp::Layer<'_>], &[f32], &[f32]) -> Result<R>,
    ) -> Option<Result<R>> {
        if !self.device.is_cpu() {
            return None;
        }
        let mut tensors: Vec<&Tensor> = vec![&self.mean, &self.inv_std];
        for (w, b) in &self.layers {
            tensors.push(w.as_tensor());
            tensors.push(b.as_tensor());
        }
        let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
        let mut slices: Vec<&[f32]> = Vec::with_capacity(guards.len());
        for (storage, layout) in &guards {
            let candle_core::Storage::Cpu(cpu) = &**storage else { return None };
            slices.push(crate::tensor::cpu_f32(cpu, layout, "MLP").ok()?);
        }
        let layers: Vec<cpu::mlp::Layer<'_>> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, (w, _))| {
                let (inputs, outputs) = w.as_tensor().dims2().expect("2-d weight");
                cpu::mlp::Layer { weight: slices[2 + 2 * i], bias: slices[3 + 2 * i], inputs, outputs }
            })
            .collect();
        Some(f(&layers, slices[0], slices[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::D;

    fn model(seed: u64) -> Mlp {
        Mlp::new(&TabularModelConfig::default(), &[1.0, 2.0], &[2.0, 0.5], 2, seed, &Device::Cpu).unwrap()
    }

    #[test]
    fn same_seed_same_weights_and_logits() {
        let x = Tensor::new(&[[1.0f32, 2.0], [3.0, -1.0]], &Device::Cpu).unwrap();
        let a = model(3).forward(&x, Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        let b = model(3).forward(&x, Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        let c = model(4).forward(&x, Mode::EVAL).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn gradients_reach_every_trainable_tensor_and_the_input() {
        let m = model(1);
        let x = Var::new(&[[1.0f32, 2.0], [3.0, -1.0]], &Device::Cpu).unwrap();
        let loss = m.forward(x.as_tensor(), Mode::TRAIN).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        for v in m.trainable() {
            let g = grads.get(v.as_tensor()).expect("gradient for every trainable tensor");
            assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
        }
        assert!(grads.get(x.as_tensor()).is_some());
    }

    #[test]
    fn the_hand_written_input_gradient_matches_autograd() {
        let m = model(5);
        let x = [1.5f32, -2.0, 0.25, 3.0, -0.5, 0.0];
        let labels = [1u32, 0, 1];
        let (mut loss, mut grad) = (vec![0f32; 3], vec![0f32; 6]);
        m.input_loss_grad(&x, &labels, &mut loss, &mut grad).unwrap().unwrap();
        let view = crate::examples::ExamplesRef::Dense { data: &x, width: 2 };
        let (l2, g2) = crate::model::input_loss_grad_autograd(&m, &view, &labels).unwrap();
        for (a, b) in loss.iter().zip(&l2).chain(grad.iter().zip(&g2)) {
            assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    /// Gradients, not just AdamW steps (which hardly depend on the gradient's scale).
    #[test]
    fn the_hand_written_training_gradients_match_autograd() {
        let m = model(7);
        let (x, y) = ([1.5f32, -2.0, 0.25, 3.0, -0.5, 0.0], [1u32, 0, 1]);
        let (xa, ya) = ([0.5f32, 1.0, -3.0, 2.0], [0u32, 0]);
        let w = 0.3f32;
        let parts =
            [TrainPart { x: &x, labels: &y, weight: 1.0 - w }, TrainPart { x: &xa, labels: &ya, weight: w }];
        let mut grads = vec![Vec::new(); m.trainable().len()];
        let loss = m.train_grads(&parts, &mut grads).unwrap().unwrap();

        let ce = |x: &[f32], y: &[u32]| {
            let logits = m.forward(&Tensor::from_slice(x, (y.len(), 2), &Device::Cpu).unwrap(), Mode::TRAIN);
            let y = Tensor::from_slice(y, y.len(), &Device::Cpu).unwrap();
            candle_nn::loss::cross_entropy(&logits.unwrap(), &y).unwrap()
        };
        let reference =
            ((ce(&x, &y) * (1.0 - w as f64)).unwrap() + (ce(&xa, &ya) * w as f64).unwrap()).unwrap();
        let expected = reference.to_scalar::<f32>().unwrap();
        assert!((loss - expected).abs() < 1e-5 * (1.0 + expected.abs()), "loss {loss} vs {expected}");
        let store = reference.backward().unwrap();
        for (v, g) in m.trainable().iter().zip(&grads) {
            let want = store.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(g.len(), want.len());
            for (a, b) in g.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn eval_mode_sends_gradients_to_the_input_only() {
        let m = model(1);
        let x = Var::new(&[[1.0f32, 2.0]], &Device::Cpu).unwrap();
        let loss = m.forward(x.as_tensor(), Mode::EVAL).unwrap().max(D::Minus1).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(m.trainable().iter().all(|v| grads.get(v.as_tensor()).is_none()));
    }
}
