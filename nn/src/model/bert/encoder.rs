//! The frozen mean-pooling sentence encoder offered to text attacks: `similarity` is the
//! cosine of the embeddings.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::CHUNK;
use super::config::read_config;
use super::network::{Bert, mean_pool};
use super::tokenizer::Tok;
use super::weights::Weights;
use crate::model::params::ParamBuilder;
use crate::model::{Mode, SentenceEncoder};
use crate::{Error, Result};

/// Sentence-transformers' MiniLM reads at most 256 tokens.
const ENCODER_MAX_TOKENS: usize = 256;

pub struct BertSentenceEncoder {
    bert: Bert,
    tok: Tok,
    device: Device,
}

impl BertSentenceEncoder {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (hf, act) = read_config(dir)?;
        let tok = Tok::load(dir, &hf, ENCODER_MAX_TOKENS.min(hf.max_position_embeddings))?;
        let mut weights = Weights::load(dir, device)?;
        // Frozen and pretrained throughout: no value is drawn, so the seed is never used.
        let pb = ParamBuilder::new(0, device).frozen();
        let bert = Bert::load(&hf, act, &mut weights, &pb, hf.num_hidden_layers, false, tok.pad_id)?;
        Ok(Self { bert, tok, device: device.clone() })
    }

    /// Unit-length mean-pooled embeddings, `[n, h]`.
    fn embed(&self, texts: &[&str]) -> Result<Tensor> {
        let mut parts = Vec::new();
        for part in texts.chunks(CHUNK) {
            let ids = self.tok.ids(&self.tok.encode(part)?, &self.device)?;
            let mask = self.bert.mask(&ids)?;
            let states =
                self.bert.hidden_states(&self.bert.word_embeddings(&ids, Mode::EVAL)?, &mask, Mode::EVAL)?;
            let e = mean_pool(&states, &mask)?;
            let norm = e.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
            parts.push(e.broadcast_div(&norm)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

impl SentenceEncoder for BertSentenceEncoder {
    fn similarity(&self, a: &[&str], b: &[&str]) -> Result<Vec<f32>> {
        if a.len() != b.len() {
            return Err(Error::invalid(format!("similarity of {} sentences against {}", a.len(), b.len())));
        }
        if a.is_empty() {
            return Ok(Vec::new());
        }
        // Attacks compare one original against many candidates: embed each text once.
        let mut unique: Vec<&str> = Vec::new();
        let mut index: HashMap<&str, u32> = HashMap::new();
        let mut slots = Vec::with_capacity(a.len() + b.len());
        for &s in a.iter().chain(b) {
            let next = unique.len() as u32;
            let i = *index.entry(s).or_insert(next);
            if i == next {
                unique.push(s);
            }
            slots.push(i);
        }
        let (ia, ib) = slots.split_at(a.len());
        let e = self.embed(&unique)?;
        let ea = e.index_select(&Tensor::new(ia, &self.device)?, 0)?;
        let eb = e.index_select(&Tensor::new(ib, &self.device)?, 0)?;
        Ok((ea * eb)?.sum(1)?.to_vec1::<f32>()?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::super::load_encoder;
    use super::super::tests::{TEXTS, minilm, tiny};

    #[test]
    fn sentence_encoder_similarity() {
        let dir = tiny();
        let e = load_encoder(dir.path(), &Device::Cpu).unwrap();
        let s = e.similarity(&[TEXTS[0], TEXTS[1], TEXTS[0]], &[TEXTS[0], TEXTS[2], TEXTS[1]]).unwrap();
        assert!((s[0] - 1.0).abs() < 1e-5 && s[1] < 0.9999, "{s:?}");
        assert!(e.similarity(&[TEXTS[1]], &[TEXTS[0]]).unwrap()[0] - s[2] < 1e-6);
        assert!(e.similarity(&[], &[]).unwrap().is_empty());
        let Some(real) = minilm() else { return };
        let e = load_encoder(&real, &Device::Cpu).unwrap();
        let a = "A man is playing a guitar.";
        let s = e
            .similarity(&[a, a, a], &[a, "Someone plays the guitar.", "The stock market fell sharply today."])
            .unwrap();
        assert!((s[0] - 1.0).abs() < 1e-4, "{s:?}");
        assert!(s[1] > s[2] + 0.3, "paraphrase {} vs unrelated {}", s[1], s[2]);
    }
}
