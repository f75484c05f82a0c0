//! Text models: the `[model]` section of a text pipeline. The word-CNN lives in
//! [`super::word_cnn`]; BERT-family fine-tuning in [`super::bert`].
//!
//! ```toml
//! [model]
//! kind = "word-cnn"        # or "bert" (with a [model.bert] table)
//! embedding_dim = 128      # word-CNN: random, trained embeddings of this size
//! filters = 100            # per width
//! widths = [3, 4, 5]       # convolution widths in words
//! dropout = 0.5            # on the pooled features, while training
//! word_dropout = 0.0       # share of words read as [UNK] while training
//! max_words = 64           # longer texts are cut (MR: at most 59 words)
//! min_count = 1            # train-split words seen fewer times are [UNK]
//! # synonym_encoding = { synonyms = "data/wordnet-synonyms/wordnet-synonyms.tsv" }
//! #                        # synonyms read as one word (see super::synonym_encoding)
//! # encoder = "models/all-MiniLM-L6-v2"   # a local HF sentence encoder offered to attacks
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::bert::BertConfig;
use super::synonym_encoding::SynonymEncodingConfig;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextModelKind {
    /// Kim (2014)'s CNN over randomly initialised word embeddings: the CPU default.
    #[default]
    WordCnn,
    /// A BERT-family encoder fine-tuned from a local Hugging Face folder (`[model.bert]`).
    Bert,
}

/// `[model]` of a text pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextModelConfig {
    pub kind: TextModelKind,
    pub embedding_dim: usize,
    pub filters: usize,
    pub widths: Vec<usize>,
    pub dropout: f64,
    /// While training, each word is read as `[UNK]` with this probability (Iyyer et al.
    /// 2015's word dropout): the model learns not to hang on single words.
    pub word_dropout: f64,
    pub max_words: usize,
    pub min_count: usize,
    /// Word-CNN: synonyms of the listed word lists are read as one word.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synonym_encoding: Option<SynonymEncodingConfig>,
    /// Settings of `kind = "bert"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bert: Option<BertConfig>,
    /// A local Hugging Face sentence-encoder folder; attacks use it through the oracle's
    /// `similarity` (e.g. TextFooler's `min_similarity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<PathBuf>,
}

impl Default for TextModelConfig {
    fn default() -> Self {
        Self {
            kind: TextModelKind::WordCnn,
            embedding_dim: 128,
            filters: 100,
            widths: vec![3, 4, 5],
            dropout: 0.5,
            word_dropout: 0.0,
            max_words: 64,
            min_count: 1,
            synonym_encoding: None,
            bert: None,
            encoder: None,
        }
    }
}

impl TextModelConfig {
    /// The word-CNN's settings make a model.
    pub fn check_word_cnn(&self) -> Result<(), crate::error::Invalid> {
        if self.embedding_dim == 0 || self.filters == 0 {
            return Err("model.embedding_dim and model.filters must be at least 1".into());
        }
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err("model.widths needs at least one width, each at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("model.dropout must be in [0, 1), got {}", self.dropout).into());
        }
        if !(0.0..1.0).contains(&self.word_dropout) {
            return Err(format!("model.word_dropout must be in [0, 1), got {}", self.word_dropout).into());
        }
        if self.max_words < self.widths.iter().copied().max().unwrap_or(1) {
            return Err("model.max_words must be at least the widest convolution".into());
        }
        if self.min_count == 0 {
            return Err("model.min_count must be at least 1".into());
        }
        if let Some(e) = &self.synonym_encoding {
            e.check()?;
        }
        Ok(())
    }
}
