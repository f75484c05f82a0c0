//! The folder's `tokenizer.json`, with its own padding and truncation replaced.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::config::HfConfig;
use crate::{Error, Result};

/// The tokenizer with its built-in padding and truncation replaced: truncation at
/// `max_tokens`, no padding (batches are padded here, to their longest sequence).
pub(super) struct Tok {
    pub(super) tokenizer: Tokenizer,
    pub(super) pad_id: u32,
}

impl Tok {
    pub(super) fn load(dir: &Path, cfg: &HfConfig, max_tokens: usize) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::data(&path, "missing (the model folder needs a tokenizer.json)"));
        }
        let mut tokenizer =
            Tokenizer::from_file(&path).map_err(|e| Error::external(path.display().to_string(), e))?;
        let pad_id = match tokenizer.get_padding() {
            Some(p) => p.pad_id,
            None => tokenizer.token_to_id("[PAD]").or(cfg.pad_token_id).unwrap_or(0),
        };
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| {
                Error::external(format!("{}: cannot truncate at {max_tokens} tokens", path.display()), e)
            })?;
        Ok(Self { tokenizer, pad_id })
    }

    pub(super) fn encode(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::external("tokenizer", e))
    }

    /// `[n, longest]` token ids, padded with the pad id.
    pub(super) fn ids(&self, encodings: &[Encoding], device: &Device) -> Result<Tensor> {
        let len = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let mut data = vec![self.pad_id; encodings.len() * len];
        for (row, e) in data.chunks_mut(len).zip(encodings) {
            row[..e.get_ids().len()].copy_from_slice(e.get_ids());
        }
        Ok(Tensor::from_vec(data, (encodings.len(), len), device)?)
    }
}
