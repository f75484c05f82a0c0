//! Seeded initialisation: candle's CPU `rand` cannot be seeded, so weights come from a
//! ChaCha stream keyed by the pipeline seed and the tensor's name.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;

/// A generator for tensor `name`: independent of creation order.
pub fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ crate::hash::fnv1a(name.as_bytes()))
}

/// Registers a var under `name` with values uniform in `[-bound, bound]`.
pub fn uniform(
    map: &VarMap,
    seed: u64,
    name: &str,
    shape: &[usize],
    bound: f32,
    dev: &Device,
) -> Result<Var> {
    let mut rng = rng_for(seed, name);
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..=bound)).collect();
    insert(map, name, Tensor::from_vec(data, shape, dev)?)
}

/// Registers a var under `name` with the given values.
pub fn insert(map: &VarMap, name: &str, t: Tensor) -> Result<Var> {
    let var = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
    map.data().lock().expect("varmap lock").insert(name.to_owned(), var.clone());
    Ok(var)
}
