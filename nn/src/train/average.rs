//! An exponential moving average of the trained weights (Polyak averaging), the model that
//! a phase validates, keeps and hands on when `weight_average` is set.
//!
//! SGD's last iterate wanders around a minimum; the average of the recent iterates sits
//! nearer its centre, where the loss surface is flatter. In adversarial training it curbs
//! robust overfitting and raises clean and robust accuracy together (Chen et al. 2021,
//! "Robust overfitting may be mitigated by properly learned smoothening"; Gowal et al.
//! 2020 average every run's weights this way).
//!
//! The average trails the optimiser: each step moves it by `1 − decay` towards the weights,
//! so it spans about `1 / (1 − decay)` steps. It starts at zero and is read divided by
//! `1 − decay^t` after `t` steps (Adam's bias correction), so the weights a phase started
//! from weigh nothing and the first epochs are averaged like the later ones.
//!
//! Training always continues from the optimiser's own weights; the average is swapped in
//! only to be validated (and, when it is the best epoch's, snapshotted), then swapped out.
//! Both live in every epoch commit, so a resumed phase averages what the uninterrupted one
//! would have.

use candle_core::{Tensor, Var};

use crate::model::{self, Classifier};
use crate::{Error, Result};

pub(super) struct WeightAverage {
    decay: f64,
    updates: usize,
    /// The trained tensors under their names in the model (a commit saves the average as
    /// `@average/<name>`).
    names: Vec<String>,
    vars: Vec<Var>,
    /// The running sum `Σ (1 − d) d^(t−k) w_k`, one tensor per var in the order of
    /// [`crate::model::Classifier::trainable`]: not yet bias-corrected.
    sum: Vec<Tensor>,
    /// The optimiser's weights while the average is swapped in.
    live: Option<Vec<Tensor>>,
}

impl WeightAverage {
    /// An average of `model`'s trained tensors, empty until the first update.
    pub fn new(model: &dyn Classifier, decay: f64) -> Result<Self> {
        let vars = model.trainable();
        let all = model::tensors(model);
        let names = vars
            .iter()
            .map(|v| {
                let id = v.as_tensor().id();
                all.iter().find(|(_, t)| t.id() == id).map(|(n, _)| n.clone()).ok_or_else(|| {
                    Error::invalid(format!("{}: a trained tensor is not among its named ones", model.name()))
                })
            })
            .collect::<Result<_>>()?;
        let sum = vars.iter().map(|v| v.as_tensor().zeros_like()).collect::<candle_core::Result<_>>()?;
        Ok(Self { decay, updates: 0, names, vars, sum, live: None })
    }

    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// Moves the average towards the weights after an optimiser step.
    pub fn update(&mut self) -> Result<()> {
        debug_assert!(self.live.is_none(), "the average is updated from the optimiser's weights");
        let d = self.decay;
        for (sum, var) in self.sum.iter_mut().zip(&self.vars) {
            // Detached: an op on a var records its inputs for backprop, and each sum would
            // hold on to the one before it, every step's copy of the weights kept alive.
            *sum = (sum.affine(d, 0.0)? + var.as_tensor().detach().affine(1.0 - d, 0.0)?)?;
        }
        self.updates += 1;
        Ok(())
    }

    /// Puts the average into the model (to validate it, or keep it), the optimiser's
    /// weights aside. Before any update the average is the weights themselves.
    pub fn swap_in(&mut self) -> Result<()> {
        debug_assert!(self.live.is_none(), "swapped in twice");
        let live = self
            .vars
            .iter()
            .map(|v| v.as_tensor().detach().copy())
            .collect::<candle_core::Result<Vec<_>>>()?;
        if let Some(c) = correction(self.decay, self.updates) {
            for (sum, var) in self.sum.iter().zip(&self.vars) {
                var.set(&sum.affine(c, 0.0)?)?;
            }
        }
        self.live = Some(live);
        Ok(())
    }

    /// Puts the optimiser's weights back, exactly.
    pub fn swap_out(&mut self) -> Result<()> {
        if let Some(live) = self.live.take() {
            for (w, var) in live.iter().zip(&self.vars) {
                var.set(w)?;
            }
        }
        Ok(())
    }

    /// The decay, the update count and the running sum under the tensors' names, for a
    /// commit (taken with the optimiser's weights in the model).
    pub fn saved(&self) -> (f64, usize, impl Iterator<Item = (&str, &Tensor)>) {
        debug_assert!(self.live.is_none(), "a commit holds the optimiser's weights");
        (self.decay, self.updates, self.names.iter().map(String::as_str).zip(&self.sum))
    }

    /// The averaged tensors' names and current values (for their dtypes and shapes).
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(String::as_str).zip(self.vars.iter().map(|v| v.as_tensor()))
    }

    /// Puts back what [`WeightAverage::saved`] gave, in the order of its names.
    pub fn restore(&mut self, updates: usize, average: Vec<Tensor>) -> Result<()> {
        if average.len() != self.vars.len() {
            return Err(Error::invalid(format!(
                "{} averaged tensors saved for {} trained ones",
                average.len(),
                self.vars.len()
            )));
        }
        self.updates = updates;
        self.sum = average;
        self.live = None;
        Ok(())
    }
}

/// What the running sum is multiplied by to read the average after `updates` steps of
/// `decay`; `None` before the first.
pub(super) fn correction(decay: f64, updates: usize) -> Option<f64> {
    (updates > 0).then(|| 1.0 / (1.0 - decay.powi(updates.min(i32::MAX as usize) as i32)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mlp, TabularModelConfig};
    use candle_core::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// An average of one var, whatever model it belongs to.
    fn average_of_one(var: &Var, decay: f64) -> WeightAverage {
        WeightAverage {
            decay,
            updates: 0,
            names: vec!["w".into()],
            vars: vec![var.clone()],
            sum: vec![var.as_tensor().zeros_like().unwrap()],
            live: None,
        }
    }

    #[test]
    fn every_trained_tensor_is_averaged_under_its_name() {
        let m =
            Mlp::new(&TabularModelConfig::default(), &[0.0, 0.0], &[1.0, 1.0], 2, 3, &Device::Cpu).unwrap();
        let avg = WeightAverage::new(&m, 0.99).unwrap();
        let named: Vec<(String, Tensor)> = model::tensors(&m);
        let mut seen = 0;
        for (name, t) in avg.tensors() {
            let (_, same) = named.iter().find(|(n, _)| n == name).expect("a model tensor's name");
            assert_eq!(values(same), values(t));
            seen += 1;
        }
        assert_eq!(seen, m.trainable().len());
    }

    #[test]
    fn the_average_is_bias_corrected_and_swaps_out_exactly() {
        let dev = Device::Cpu;
        let var = Var::new(&[0.0f32, 10.0], &dev).unwrap();
        let mut avg = average_of_one(&var, 0.5);
        // Before any step the average is the weights as they are.
        avg.swap_in().unwrap();
        assert_eq!(values(var.as_tensor()), [0.0, 10.0]);
        avg.swap_out().unwrap();
        // Steps to [1, 0] then [3, 2]: weights 0.5 and 1 over their sum 0.75, the start
        // weighing nothing.
        for w in [[1.0f32, 0.0], [3.0, 2.0]] {
            var.set(&Tensor::new(&w, &dev).unwrap()).unwrap();
            avg.update().unwrap();
        }
        avg.swap_in().unwrap();
        let read = values(var.as_tensor());
        assert!((read[0] - 1.75 / 0.75).abs() < 1e-6 && (read[1] - 1.0 / 0.75).abs() < 1e-6, "{read:?}");
        avg.swap_out().unwrap();
        assert_eq!(values(var.as_tensor()), [3.0, 2.0], "the optimiser's weights come back to the bit");
        assert_eq!(avg.saved().1, 2);
        assert!(!avg.sum[0].track_op(), "the average must not chain every step's weights for backprop");
        // A long run forgets where it started: the average settles on a constant weight.
        for _ in 0..60 {
            avg.update().unwrap();
        }
        avg.swap_in().unwrap();
        let settled = values(var.as_tensor());
        assert!((settled[0] - 3.0).abs() < 1e-5 && (settled[1] - 2.0).abs() < 1e-5, "{settled:?}");
    }

    #[test]
    fn a_restore_of_the_wrong_length_is_refused() {
        let var = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let mut avg = average_of_one(&var, 0.9);
        assert!(avg.restore(3, Vec::new()).is_err());
    }
}
