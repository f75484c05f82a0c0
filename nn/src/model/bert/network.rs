//! The BERT encoder: embeddings and the stack of layers, up to the last hidden states;
//! and the mask-weighted mean pooling both models read them through.

use crate::model::params::ParamBuilder;
use candle_core::{DType, Tensor};

use super::config::HfConfig;
use super::layers::{Layer, Norm, Param};
use super::ops::Act;
use super::weights::Weights;
use crate::model::Mode;
use crate::{Error, Result};

pub(super) struct Bert {
    pub(super) word: Param,
    pub(super) position: Param,
    pub(super) token_type: Param,
    pub(super) emb_norm: Norm,
    pub(super) layers: Vec<Layer>,
    pub(super) heads: usize,
    hidden: usize,
    pub(super) act: Act,
    pad_id: u32,
}

impl Bert {
    /// Loads the encoder's tensors through `pb`. Layers `first_trained..` and, with
    /// `train_embeddings`, the embeddings are trained. Within a layer the vars are made in
    /// the optimiser's order: the six linear layers, then the two norms.
    pub(super) fn load(
        cfg: &HfConfig,
        act: Act,
        weights: &mut Weights,
        pb: &ParamBuilder,
        first_trained: usize,
        train_embeddings: bool,
        pad_id: u32,
    ) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let e = pb.trained(train_embeddings);
        let word = weights.take(&e, "embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?;
        let position =
            weights.take(&e, "embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?;
        let token_type =
            weights.take(&e, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?;
        let emb_norm = weights.norm(&e, "embeddings.LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let t = pb.trained(i >= first_trained);
            let (h, m) = (h, cfg.intermediate_size);
            layers.push(Layer {
                query: weights.linear(&t, &format!("{p}.attention.self.query"), h, h)?,
                key: weights.linear(&t, &format!("{p}.attention.self.key"), h, h)?,
                value: weights.linear(&t, &format!("{p}.attention.self.value"), h, h)?,
                attn_out: weights.linear(&t, &format!("{p}.attention.output.dense"), h, h)?,
                inter: weights.linear(&t, &format!("{p}.intermediate.dense"), h, m)?,
                out: weights.linear(&t, &format!("{p}.output.dense"), m, h)?,
                attn_norm: weights.norm(&t, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                out_norm: weights.norm(&t, &format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        if pad_id as usize >= cfg.vocab_size {
            return Err(Error::data(&weights.path, format!("pad id {pad_id} is outside the vocabulary")));
        }
        Ok(Self {
            word,
            position,
            token_type,
            emb_norm,
            layers,
            heads: cfg.num_attention_heads,
            hidden: h,
            act,
            pad_id,
        })
    }

    /// `[b, l]` ids → `[b, l]` f32 mask (1 for tokens, 0 for padding).
    pub(super) fn mask(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        ids.ne(self.pad_id)?.to_dtype(DType::F32)
    }

    /// `[b, l]` ids → `[b, l, h]` word embeddings.
    pub(super) fn word_embeddings(&self, ids: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let (b, l) = ids.dims2()?;
        self.word.get(mode).index_select(&ids.flatten_all()?, 0)?.reshape((b, l, self.hidden))
    }

    /// Word embeddings `[b, l, h]` and mask `[b, l]` → last hidden states `[b·l, h]`.
    pub(super) fn hidden_states(
        &self,
        word: &Tensor,
        mask: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let (b, l, h) = word.dims3()?;
        if l > self.position.var.dim(0)? {
            candle_core::bail!("{l} tokens, but the model has {} positions", self.position.var.dim(0)?);
        }
        let pos = self.position.get(mode).narrow(0, 0, l)?;
        let pos = pos.broadcast_add(&self.token_type.get(mode).narrow(0, 0, 1)?)?;
        let mut x = self.emb_norm.forward(&word.broadcast_add(&pos)?.reshape((b * l, h))?, mode)?;
        // (1 − mask) · f32::MIN, as HF does.
        let bias = mask.affine(-1.0, 1.0)?.affine(f32::MIN as f64, 0.0)?.reshape((b, 1, 1, l))?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.heads, self.act, mode)?;
        }
        Ok(x)
    }
}

/// Mask-weighted mean of `h` (`[b·l, d]`) per sequence → `[b, d]`, as a batched matmul
/// (its backward is a matmul too, not a reduction over a leading dimension).
pub(super) fn mean_pool(h: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, l) = mask.dims2()?;
    let d = h.dim(1)?;
    let weights = mask.broadcast_div(&mask.sum_keepdim(1)?.clamp(1.0, f64::INFINITY)?)?;
    weights.unsqueeze(1)?.matmul(&h.reshape((b, l, d))?)?.squeeze(1)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::{DType, Device};

    use super::super::tests::{TEXTS, cfg, max_diff, minilm, tiny};
    use super::*;
    use crate::examples::ExamplesRef;
    use crate::model::Classifier;
    use crate::model::bert::BertClassifier;

    /// with padding in the batch.
    fn matches_candle_transformers(dir: &Path) {
        use candle_transformers::models::bert as reference;
        let dev = Device::Cpu;
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let rc: reference::Config = serde_json::from_str(&text).unwrap();
        let weights = [dir.join("model.safetensors")];
        let vb =
            unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &dev).unwrap() };
        let stock = reference::BertModel::load(vb, &rc).unwrap();
        let m = BertClassifier::load(&cfg(dir, None), dir, 2, 0, &dev).unwrap();
        let ids = m.encode(&ExamplesRef::Text(TEXTS.to_vec())).unwrap();
        let mask = m.bert.mask(&ids).unwrap();
        let (b, l) = ids.dims2().unwrap();
        let ours = m
            .bert
            .hidden_states(&m.bert.word_embeddings(&ids, Mode::EVAL).unwrap(), &mask, Mode::EVAL)
            .unwrap();
        let theirs = stock.forward(&ids, &ids.zeros_like().unwrap(), Some(&mask)).unwrap();
        let d = max_diff(&ours.reshape((b, l, ())).unwrap(), &theirs);
        assert!(d < 1e-4, "hidden states differ by {d}");
    }

    #[test]
    fn forward_matches_candle_transformers_bert() {
        let dir = tiny();
        matches_candle_transformers(dir.path());
        if let Some(real) = minilm() {
            matches_candle_transformers(&real);
        }
    }
}
