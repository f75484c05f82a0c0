//! The `[model]` section of a BERT text pipeline ([`BertConfig`], documented in the
//! [parent module](super)) and the fields of the folder's `config.json` this model reads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ops::Act;
use crate::{Error, Result};

/// How the classifier turns the last hidden states into one vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    #[default]
    Mean,
    Cls,
}

/// `bert = { ... }` in `[model]`. See the [module docs](super).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertConfig {
    /// The local HF folder, relative to the pipeline's base dir.
    pub path: PathBuf,
    /// `None`: fine-tune every tensor; `Some(n)`: the top `n` encoder layers and the head.
    #[serde(default)]
    pub train_layers: Option<usize>,
    /// Tokens per sequence at most, `[CLS]` and `[SEP]` included.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    #[serde(default)]
    pub pooling: Pooling,
}

fn default_max_tokens() -> usize {
    64
}

impl BertConfig {
    /// Checks what can be checked without reading the folder.
    pub fn validate(&self) -> std::result::Result<(), crate::error::Invalid> {
        if !(2..=4096).contains(&self.max_tokens) {
            return Err(format!("max_tokens must be between 2 and 4096, got {}", self.max_tokens).into());
        }
        Ok(())
    }
}

/// The fields of a HF `config.json` this model reads (others are ignored).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct HfConfig {
    pub(super) vocab_size: usize,
    pub(super) hidden_size: usize,
    pub(super) num_hidden_layers: usize,
    pub(super) num_attention_heads: usize,
    pub(super) intermediate_size: usize,
    #[serde(default = "hf_default_act")]
    hidden_act: String,
    pub(super) max_position_embeddings: usize,
    #[serde(default = "hf_default_type_vocab")]
    pub(super) type_vocab_size: usize,
    #[serde(default = "hf_default_eps")]
    pub(super) layer_norm_eps: f64,
    #[serde(default)]
    position_embedding_type: Option<String>,
    #[serde(default)]
    pub(super) pad_token_id: Option<u32>,
    #[serde(default)]
    model_type: Option<String>,
}

fn hf_default_act() -> String {
    "gelu".into()
}
fn hf_default_type_vocab() -> usize {
    2
}
fn hf_default_eps() -> f64 {
    1e-12
}

pub(super) fn read_config(dir: &Path) -> Result<(HfConfig, Act)> {
    let path = dir.join("config.json");
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            "no such model folder (for all-MiniLM-L6-v2, `just models` installs it into models/)",
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let cfg: HfConfig =
        serde_json::from_str(&text).map_err(|e| Error::external(path.display().to_string(), e))?;
    if let Some(t) = cfg.model_type.as_deref().filter(|t| *t != "bert") {
        return Err(Error::data(&path, format!("model_type `{t}` is not supported (BERT only)")));
    }
    if let Some(t) = cfg.position_embedding_type.as_deref().filter(|t| *t != "absolute") {
        return Err(Error::data(&path, format!("position_embedding_type `{t}` is not supported")));
    }
    if cfg.hidden_size.checked_rem(cfg.num_attention_heads) != Some(0) {
        return Err(Error::data(
            &path,
            format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            ),
        ));
    }
    let act = match cfg.hidden_act.as_str() {
        "gelu" => Act::GeluErf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
        "relu" => Act::Relu,
        other => return Err(Error::data(&path, format!("hidden_act `{other}` is not supported"))),
    };
    Ok((cfg, act))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: BertConfig = toml::from_str("path = \"models/x\"").unwrap();
        assert_eq!((c.train_layers, c.max_tokens, c.pooling), (None, 64, Pooling::Mean));
        let c: BertConfig = toml::from_str("path = \"m\"\ntrain_layers = 2\npooling = \"cls\"").unwrap();
        assert_eq!((c.train_layers, c.pooling), (Some(2), Pooling::Cls));
        assert!(toml::from_str::<BertConfig>("path = \"m\"\nlayers = 2").is_err());
    }
}
