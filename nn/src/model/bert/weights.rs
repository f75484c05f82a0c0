//! `model.safetensors`, handed out tensor by tensor as the layers are built: a hand-made
//! VarBuilder that checks every shape and marks each var trainable or frozen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::layers::{Linear, Norm, Param};
use crate::model::params::ParamBuilder;
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
    pub(super) fn take(&mut self, pb: &ParamBuilder, name: &str, shape: &[usize]) -> Result<Param> {
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
        Ok(Param { var: pb.var(name, t)?, train: pb.is_trained() })
    }

    pub(super) fn linear(
        &mut self,
        pb: &ParamBuilder,
        name: &str,
        n_in: usize,
        n_out: usize,
    ) -> Result<Linear> {
        Ok(Linear {
            w: self.take(pb, &format!("{name}.weight"), &[n_out, n_in])?,
            b: self.take(pb, &format!("{name}.bias"), &[n_out])?,
        })
    }

    pub(super) fn norm(&mut self, pb: &ParamBuilder, name: &str, size: usize, eps: f64) -> Result<Norm> {
        Ok(Norm {
            w: self.take(pb, &format!("{name}.weight"), &[size])?,
            b: self.take(pb, &format!("{name}.bias"), &[size])?,
            eps,
        })
    }
}
