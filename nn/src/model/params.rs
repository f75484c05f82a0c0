//! How every model builds its parameters, in the style of candle's `VarBuilder`: a
//! [`ParamBuilder`] knows the path of the tensor it makes next, the seed its values are
//! drawn from, and whether the optimiser trains it. Each layer is built from a builder and
//! its config, so the three rules of construction (path, seeded values, trainability)
//! live here once.
//!
//! Values come from a ChaCha stream keyed by the pipeline seed and the tensor's full path:
//! candle's CPU `rand` cannot be seeded, and keying by path makes a tensor's values
//! independent of the order in which layers are built.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;

/// A generator for the tensor at `path`: independent of creation order.
pub fn rng_for(seed: u64, path: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ crate::hash::fnv1a(path.as_bytes()))
}

/// What all the builders of one model share: the map every var is registered in (what a
/// checkpoint saves) and the trained vars in the order they were made (the optimiser's
/// order).
struct Shared {
    map: VarMap,
    trained: Mutex<Vec<Var>>,
    seed: u64,
    device: Device,
}

/// Builds a model's vars under a path prefix; cheap to clone, and [`ParamBuilder::pp`] /
/// [`ParamBuilder::frozen`] give builders for the parts below.
#[derive(Clone)]
pub struct ParamBuilder {
    shared: Arc<Shared>,
    prefix: String,
    train: bool,
}

impl ParamBuilder {
    /// The root builder of a model: empty path, trained vars.
    pub fn new(seed: u64, device: &Device) -> Self {
        let shared =
            Shared { map: VarMap::new(), trained: Mutex::new(Vec::new()), seed, device: device.clone() };
        Self { shared: Arc::new(shared), prefix: String::new(), train: true }
    }

    /// A builder for the part `name` below this one (`layer0` → `layer0.weight`).
    pub fn pp(&self, name: impl AsRef<str>) -> Self {
        Self { prefix: self.path(name.as_ref()), ..self.clone() }
    }

    /// The same path, its vars kept by checkpoints but never trained.
    pub fn frozen(&self) -> Self {
        self.trained(false)
    }

    /// The same path, its vars trained or not as `train` says.
    pub fn trained(&self, train: bool) -> Self {
        Self { train, ..self.clone() }
    }

    /// Whether the vars this builder makes are trained.
    pub fn is_trained(&self) -> bool {
        self.train
    }

    pub fn device(&self) -> &Device {
        &self.shared.device
    }

    /// The full path of `name` below this builder.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_owned() } else { format!("{}.{name}", self.prefix) }
    }

    /// The seeded generator for `name`, for initialisations that are not a plain uniform
    /// draw (a zeroed row, a reordered layout).
    pub fn rng(&self, name: &str) -> ChaCha8Rng {
        rng_for(self.shared.seed, &self.path(name))
    }

    /// A var `name` of `shape`, uniform in `[-bound, bound]`.
    pub fn uniform(&self, name: &str, shape: &[usize], bound: f32) -> Result<Var> {
        let mut rng = self.rng(name);
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..=bound)).collect();
        self.var(name, Tensor::from_vec(data, shape, self.device())?)
    }

    /// A var `name` holding `values` (pretrained weights, statistics, a custom draw), as f32.
    pub fn var(&self, name: &str, values: Tensor) -> Result<Var> {
        let var = Var::from_tensor(&values.to_dtype(DType::F32)?)?;
        let path = self.path(name);
        self.shared.map.data().lock().expect("varmap lock").insert(path, var.clone());
        if self.train {
            self.shared.trained.lock().expect("param list lock").push(var.clone());
        }
        Ok(var)
    }

    /// Every var made through this builder's family (what checkpoints hold) and the
    /// trained ones, in the order they were made.
    pub fn build(&self) -> (VarMap, Vec<Var>) {
        (self.shared.map.clone(), self.shared.trained.lock().expect("param list lock").clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_path_not_the_order_of_creation() {
        let (a, b) = (ParamBuilder::new(7, &Device::Cpu), ParamBuilder::new(7, &Device::Cpu));
        let a1 = a.pp("layer0").uniform("weight", &[3, 2], 0.5).unwrap();
        let _ = a.pp("layer1").uniform("weight", &[3, 2], 0.5).unwrap();
        let _ = b.pp("layer1").uniform("weight", &[3, 2], 0.5).unwrap();
        let b1 = b.uniform("layer0.weight", &[3, 2], 0.5).unwrap();
        let v = |x: &Var| x.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(&a1), v(&b1));
        assert!(v(&a1).iter().all(|x| x.abs() <= 0.5));
        let other = ParamBuilder::new(8, &Device::Cpu).uniform("layer0.weight", &[3, 2], 0.5).unwrap();
        assert_ne!(v(&a1), v(&other), "another seed draws other values");
    }

    #[test]
    fn frozen_vars_are_saved_but_not_trained() {
        let pb = ParamBuilder::new(1, &Device::Cpu);
        let w = pb.pp("dense").uniform("weight", &[2, 2], 1.0).unwrap();
        pb.pp("stats").frozen().var("mean", Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let b = pb.pp("dense").trained(true).uniform("bias", &[2], 1.0).unwrap();
        let (map, trained) = pb.build();
        let mut names: Vec<String> = map.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["dense.bias", "dense.weight", "stats.mean"]);
        assert_eq!(trained.len(), 2);
        assert_eq!(trained[0].as_tensor().id(), w.as_tensor().id(), "creation order");
        assert_eq!(trained[1].as_tensor().id(), b.as_tensor().id());
    }
}
