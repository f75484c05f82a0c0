//! `model.safetensors`, handed out tensor by tensor as the layers are built: a hand-made
//! VarBuilder that checks every shape and marks each var trainable or frozen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::layers::{Linear, Norm, Param};
use crate::model::init;
use crate::{Error, Result};

/// `model.safetensors`, handed out tensor by tensor into a `VarMap`.
pub(super) struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
    pub(super) path: PathBuf,
}

impl Weights {
    pub(super) fn load(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join("model.safetensors");
        if !path.is_file() {
            return Err(Error::data(&path, "missing (the model folder needs a model.safetensors)"));
        }
        let tensors = candle_core::safetensors::load(&path, device)
            .map_err(|e| Error::from(e).context(path.display().to_string()))?;
        let prefix = ["", "bert."]
            .into_iter()
            .find(|p| tensors.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| {
                Error::data(&path, "no tensor `embeddings.word_embeddings.weight`: not a BERT checkpoint")
            })?;
        Ok(Self { tensors, prefix, path })
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(&format!("{}{name}", self.prefix))
    }

    /// Registers tensor `name` (checked against `shape`) in `map` as a var.
    pub(super) fn take(&mut self, map: &VarMap, name: &str, shape: &[usize], train: bool) -> Result<Param> {
        let full = format!("{}{name}", self.prefix);
        // Old checkpoints name LayerNorm parameters gamma / beta.
        let alias = name
            .strip_suffix("LayerNorm.weight")
            .map(|s| format!("{}{s}LayerNorm.gamma", self.prefix))
            .or_else(|| {
                name.strip_suffix("LayerNorm.bias").map(|s| format!("{}{s}LayerNorm.beta", self.prefix))
            });
        let t = match self.tensors.remove(&full) {
            Some(t) => t,
            None => alias
                .and_then(|a| self.tensors.remove(&a))
                .ok_or_else(|| Error::data(&self.path, format!("no tensor `{full}`")))?,
        };
        if t.dims() != shape {
            return Err(Error::data(
                &self.path,
                format!("tensor `{full}` has shape {:?}, expected {shape:?}", t.dims()),
            ));
        }
        Ok(Param { var: init::insert(map, name, t)?, train })
    }

    pub(super) fn linear(
        &mut self,
        map: &VarMap,
        name: &str,
        n_in: usize,
        n_out: usize,
        train: bool,
    ) -> Result<Linear> {
        Ok(Linear {
            w: self.take(map, &format!("{name}.weight"), &[n_out, n_in], train)?,
            b: self.take(map, &format!("{name}.bias"), &[n_out], train)?,
        })
    }

    pub(super) fn norm(
        &mut self,
        map: &VarMap,
        name: &str,
        size: usize,
        eps: f64,
        train: bool,
    ) -> Result<Norm> {
        Ok(Norm {
            w: self.take(map, &format!("{name}.weight"), &[size], train)?,
            b: self.take(map, &format!("{name}.bias"), &[size], train)?,
            eps,
        })
    }
}
