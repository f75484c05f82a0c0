//! Kim (2014)'s word-CNN ("CNN-rand"): word embeddings trained from a seeded random start,
//! one convolution per width (3, 4, 5 words by default) with `filters` outputs, max-pool
//! over time, ReLU, dropout, a linear layer; optionally word dropout (words read as `[UNK]`
//! at random while training).
//!
//! Words are whitespace tokens — what the MR data holds (lower-cased, pre-tokenised) and
//! what the text attacks swap. The vocabulary is built from the train split with the
//! `tokenizers` crate (a `WordLevel` model over a whitespace pre-tokenizer, `[PAD]` = 0,
//! `[UNK]` = 1) and saved with the run as a standard `tokenizer.json`.
//!
//! A convolution is an im2col and one matmul: the batch is embedded once (one
//! `index_select` into the table, so one sparse backward into it), and each width's window
//! rows are gathered from the embedded words (another `index_select`). Only windows that start inside the text count for
//! the max-pool (texts shorter than a width get the one window at 0, padded with `[PAD]`),
//! so a text's logits do not depend on how long the other texts of its batch are. The
//! bias and ReLU come after the max (they commute with it), on `[batch, filters]` only.
//! Dropout masks come from a seeded ChaCha stream, so training repeats exactly.
//!
//! Inference (`Mode::EVAL` on the CPU: validation, clean evaluation and every oracle query
//! of an attack) takes a second, exact path. A convolution's output at a window is a sum
//! over its words of `embedding(word) · W[offset]`, so the product of every word's
//! embedding with every width's and offset's filter bank is a per-word constant: it is
//! computed once per word (in blocks of word ids, on first use, cached) and a text then
//! costs table lookups and additions instead of a matmul per window, about 10× less work
//! per sentence. The cache is dropped when the weights may have changed: after any forward
//! with parameter gradients (training), and whenever a cheap fingerprint of the weights
//! differs (a checkpoint or best-epoch restore). A test checks both paths agree.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;
use tempered_plugin::words::word_count;
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
    TokenizerImpl,
};

use super::params::{self, ParamBuilder};
use super::text::TextModelConfig;
use super::{Classifier, Mode};
use crate::examples::ExamplesRef;
use crate::{Error, Result};

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;

/// Word ids whose projections are computed together (see [`WordCnn::forward_fast`]).
const BLOCK: usize = 64;

/// Below this, a masked-out window can never win the max-pool.
const MASKED: f32 = -1e30;

/// The word vocabulary: a `tokenizers` WordLevel tokenizer and, for the hot path, its
/// word → id table (the same ids the tokenizer gives: a test checks it).
pub struct Vocab {
    tokenizer: Tokenizer,
    /// The tokenizer's words and, after them, any [aliases](Self::alias).
    ids: HashMap<String, u32>,
    /// Rows of the embedding table: the tokenizer's words, aliases not counted.
    size: usize,
}

fn tk_err(what: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::external(what, e)
}

impl Vocab {
    /// Every whitespace word of `texts` seen at least `min_count` times, most frequent
    /// first (ties in byte order), after `[PAD]` and `[UNK]`.
    pub fn build<S: AsRef<str> + Send>(
        texts: impl Iterator<Item = S> + Send,
        min_count: usize,
    ) -> Result<Self> {
        let model =
            WordLevel::builder().unk_token("[UNK]".into()).build().map_err(|e| tk_err("vocabulary", e))?;
        let mut tk: TokenizerImpl<
            WordLevel,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        > = TokenizerImpl::new(model);
        tk.with_pre_tokenizer(Some(WhitespaceSplit));
        let mut trainer = WordLevelTrainer::builder()
            .min_frequency(min_count as u64)
            .vocab_size(usize::MAX)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from("[PAD]", true), AddedToken::from("[UNK]", true)])
            .build()
            .map_err(|e| tk_err("vocabulary", e))?;
        tk.train(&mut trainer, texts).map_err(|e| tk_err("vocabulary", e))?;
        Self::from_tokenizer(tk.into())
    }

    fn from_tokenizer(tokenizer: Tokenizer) -> Result<Self> {
        let ids = tokenizer.get_vocab(true);
        if ids.get("[PAD]") != Some(&PAD) || ids.get("[UNK]") != Some(&UNK) {
            return Err(Error::invalid("a word-CNN vocabulary needs [PAD] = 0 and [UNK] = 1"));
        }
        let size = ids.len();
        Ok(Self { tokenizer, ids, size })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let tokenizer =
            Tokenizer::from_file(path).map_err(|e| tk_err(&format!("cannot read {}", path.display()), e))?;
        Self::from_tokenizer(tokenizer)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.tokenizer.to_string(false).map_err(|e| tk_err("vocabulary", e))?;
        crate::files::write(path, json.as_bytes())
    }

    /// Distinct ids: the rows of the embedding table.
    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Reads `word` as `to` from now on (a [synonym encoding](super::synonym_encoding)):
    /// whether it took, which it does only when `to` is in the vocabulary and `word` is not.
    /// Aliases are not saved with the tokenizer; they are rebuilt from the same word lists.
    pub fn alias(&mut self, word: &str, to: &str) -> bool {
        match (self.ids.get(word), self.ids.get(to)) {
            (None, Some(&id)) if id != PAD && id != UNK => {
                self.ids.insert(word.to_owned(), id);
                true
            }
            _ => false,
        }
    }

    pub fn id(&self, word: &str) -> u32 {
        self.ids.get(word).copied().unwrap_or(UNK)
    }

    /// Every word but `[PAD]` and `[UNK]`, in id order: most frequent first, as built
    /// (aliases not listed: each id once).
    pub fn words(&self) -> Vec<String> {
        let mut by_id: Vec<(String, u32)> = self.tokenizer.get_vocab(true).into_iter().collect();
        by_id.retain(|&(_, id)| id != PAD && id != UNK);
        by_id.sort_unstable_by_key(|&(_, id)| id);
        by_id.into_iter().map(|(w, _)| w).collect()
    }

    /// The ids through the `tokenizers` pipeline itself (slow; for tests).
    pub fn encode_with_tokenizer(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false).map_err(|e| tk_err("tokenize", e))?.get_ids().to_vec())
    }
}

pub struct WordCnn {
    varmap: VarMap,
    /// Embedding, convolutions, output layer: every var, in the order they were made.
    trainable: Vec<Var>,
    emb: Var,
    /// (width, weight `[width · dim, filters]`, bias `[filters]`).
    convs: Vec<(usize, Var, Var)>,
    out_w: Var,
    out_b: Var,
    vocab: Vocab,
    dim: usize,
    max_words: usize,
    min_len: usize,
    dropout: f32,
    word_dropout: f32,
    n_classes: usize,
    device: Device,
    rng: Mutex<rand_chacha::ChaCha8Rng>,
    /// The inference path's per-word projections (see the module docs).
    fast: Mutex<Option<Projections>>,
}

/// Every width's and offset's filter bank applied to the embeddings of the words seen so
/// far: row `w` holds, per width `k` (in order) and offset `j < k`, the `filters` values of
/// `embedding(w) · W_k[j·dim..(j+1)·dim]`.
struct Projections {
    fingerprint: u64,
    cols: usize,
    table: Vec<f32>,
    ready: Vec<bool>,
    /// `[dim, cols]`, the filter banks side by side.
    banks: Tensor,
    biases: Vec<Vec<f32>>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
}

/// Runs `f` on the values of a CPU tensor without copying them.
fn cpu_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else { return None };
    Some(f(crate::tensor::cpu_f32(cpu, layout, "word-CNN").ok()?))
}

impl WordCnn {
    pub fn new(
        cfg: &TextModelConfig,
        vocab: Vocab,
        n_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        cfg.check_word_cnn()?;
        let pb = ParamBuilder::new(seed, device);
        let (v, d, f) = (vocab.len(), cfg.embedding_dim, cfg.filters);
        // Kim's CNN-rand: U(±0.25); [PAD] and [UNK] start at zero (no information).
        let mut rng = pb.rng("embedding.weight");
        let table: Vec<f32> =
            (0..v * d).map(|i| if i < 2 * d { 0.0 } else { rng.random_range(-0.25f32..=0.25) }).collect();
        let emb = pb.var("embedding.weight", Tensor::from_vec(table, (v, d), device)?)?;
        let mut convs = Vec::new();
        for &k in &cfg.widths {
            let bound = 1.0 / ((k * d) as f32).sqrt();
            let conv = pb.pp(format!("conv{k}"));
            convs.push((k, conv.uniform("weight", &[k * d, f], bound)?, conv.uniform("bias", &[f], bound)?));
        }
        let features = f * cfg.widths.len();
        let bound = 1.0 / (features as f32).sqrt();
        let out = pb.pp("out");
        let (out_w, out_b) = (
            out.uniform("weight", &[features, n_classes], bound)?,
            out.uniform("bias", &[n_classes], bound)?,
        );
        let (varmap, trainable) = pb.build();
        Ok(Self {
            varmap,
            trainable,
            emb,
            convs,
            out_w,
            out_b,
            vocab,
            dim: d,
            max_words: cfg.max_words,
            min_len: cfg.widths.iter().copied().max().unwrap_or(1),
            dropout: cfg.dropout as f32,
            word_dropout: cfg.word_dropout as f32,
            n_classes,
            device: device.clone(),
            rng: Mutex::new(params::rng_for(seed, "dropout")),
            fast: Mutex::new(None),
        })
    }

    /// A hash of a sample of the weights: every bias and output weight, a strided sample of
    /// the filters and the embeddings. Any optimiser step or restore changes it.
    fn fingerprint(&self) -> Option<u64> {
        let mut h = crate::hash::Fnv::new();
        let mut eat = |v: &[f32], step: usize| {
            for x in v.iter().step_by(step) {
                h.word(x.to_bits() as u64);
            }
        };
        cpu_values(self.out_w.as_tensor(), |v| eat(v, 1))?;
        cpu_values(self.out_b.as_tensor(), |v| eat(v, 1))?;
        for (_, w, b) in &self.convs {
            cpu_values(b.as_tensor(), |v| eat(v, 1))?;
            cpu_values(w.as_tensor(), |v| eat(v, 61))?;
        }
        cpu_values(self.emb.as_tensor(), |v| eat(v, 97))?;
        Some(h.finish())
    }

    fn projections(&self, fingerprint: u64) -> candle_core::Result<Projections> {
        let f = self.convs[0].1.dim(1)?;
        let mut banks = Vec::new();
        let mut biases = Vec::new();
        for (k, w, b) in &self.convs {
            for j in 0..*k {
                banks.push(w.as_tensor().detach().narrow(0, j * self.dim, self.dim)?);
            }
            biases.push(b.as_tensor().to_vec1::<f32>()?);
        }
        let banks = Tensor::cat(&banks, 1)?.contiguous()?;
        let cols = banks.dim(1)?;
        debug_assert_eq!(cols, f * self.convs.iter().map(|c| c.0).sum::<usize>());
        let v = self.emb.dim(0)?;
        Ok(Projections {
            fingerprint,
            cols,
            table: vec![0.0; v * cols],
            ready: vec![false; v],
            banks,
            biases,
            out_w: self.out_w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
            out_b: self.out_b.as_tensor().to_vec1::<f32>()?,
        })
    }

    /// Inference logits `[n, classes]` through the per-word projections.
    fn forward_fast(
        &self,
        ids: &[u32],
        n: usize,
        len: usize,
        lens: &[usize],
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(fp) = self.fingerprint() else { return Ok(None) };
        let mut guard = self.fast.lock().expect("projection cache");
        if guard.as_ref().is_none_or(|p| p.fingerprint != fp) {
            *guard = Some(self.projections(fp)?);
        }
        let p = guard.as_mut().expect("just built");
        // Project the words not seen yet, in fixed blocks of word ids: a word's values then
        // never depend on which other words happened to be asked for with it (a resumed run
        // computes exactly what the first run did).
        let mut blocks: Vec<usize> =
            ids.iter().filter(|&&w| !p.ready[w as usize]).map(|&w| w as usize / BLOCK).collect();
        blocks.sort_unstable();
        blocks.dedup();
        let words = p.ready.len();
        for b in blocks {
            let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(words));
            let rows = self.emb.as_tensor().detach().narrow(0, start, end - start)?.matmul(&p.banks)?;
            let rows = rows.flatten_all()?.to_vec1::<f32>()?;
            p.table[start * p.cols..end * p.cols].copy_from_slice(&rows);
            p.ready[start..end].fill(true);
        }
        let f = p.biases[0].len();
        let features = f * self.convs.len();
        let c = self.n_classes;
        let mut logits = Vec::with_capacity(n * c);
        let (mut acc, mut best, mut h) = (vec![0.0f32; f], vec![0.0f32; f], vec![0.0f32; features]);
        for (i, &words) in lens.iter().enumerate() {
            let row = &ids[i * len..(i + 1) * len];
            let mut col = 0;
            for (g, (k, ..)) in self.convs.iter().enumerate() {
                best.fill(f32::NEG_INFINITY);
                for s in 0..words.saturating_sub(*k) + 1 {
                    acc.fill(0.0);
                    for j in 0..*k {
                        let at = row[s + j] as usize * p.cols + col + j * f;
                        for (a, t) in acc.iter_mut().zip(&p.table[at..at + f]) {
                            *a += t;
                        }
                    }
                    for (b, a) in best.iter_mut().zip(&acc) {
                        *b = b.max(*a);
                    }
                }
                for ((o, b), bias) in h[g * f..(g + 1) * f].iter_mut().zip(&best).zip(&p.biases[g]) {
                    *o = (b + bias).max(0.0);
                }
                col += k * f;
            }
            for cl in 0..c {
                let mut z = p.out_b[cl];
                for (q, x) in h.iter().enumerate() {
                    z += x * p.out_w[q * c + cl];
                }
                logits.push(z);
            }
        }
        Ok(Some(Tensor::from_vec(logits, (n, c), &self.device)?))
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Word ids `[n, len]`, `[PAD]`-filled, and each text's word count (cut at `max_words`).
    fn ids(&self, texts: &[&str]) -> (Vec<u32>, Vec<usize>, usize) {
        let mut words: Vec<Vec<u32>> = Vec::with_capacity(texts.len());
        for t in texts {
            // A literal "[PAD]" in a text reads as unknown: PAD marks the end of the words.
            let id = |w: &str| match self.vocab.id(w) {
                PAD => UNK,
                id => id,
            };
            words.push(tempered_plugin::words::words(t).take(self.max_words).map(id).collect());
        }
        let len = words.iter().map(Vec::len).max().unwrap_or(0).max(self.min_len);
        let mut ids = vec![PAD; texts.len() * len];
        let mut lens = Vec::with_capacity(texts.len());
        for (i, w) in words.iter().enumerate() {
            ids[i * len..i * len + w.len()].copy_from_slice(w);
            lens.push(w.len());
        }
        (ids, lens, len)
    }

    /// Per width: the embedded-word rows (`i · len + j` for word `j` of text `i`) each
    /// window position reads, `[n · windows · k]`, and the window mask (0 or [`MASKED`]).
    fn windows(&self, len: usize, lens: &[usize]) -> Result<Vec<(Tensor, Tensor)>> {
        let n = lens.len();
        let mut out = Vec::with_capacity(self.convs.len());
        for &(k, ..) in &self.convs {
            let t = len + 1 - k;
            let mut idx = Vec::with_capacity(n * t * k);
            let mut mask = Vec::with_capacity(n * t);
            for (i, &words) in lens.iter().enumerate() {
                let valid = words.saturating_sub(k) + 1;
                for s in 0..t {
                    for j in 0..k {
                        idx.push((i * len + s + j) as u32);
                    }
                    mask.push(if s < valid { 0.0f32 } else { MASKED });
                }
            }
            out.push((
                Tensor::from_vec(idx, n * t * k, &self.device)?,
                Tensor::from_vec(mask, (n, t, 1), &self.device)?,
            ));
        }
        Ok(out)
    }

    /// Logits from the embedded words `[n · len, dim]`.
    fn head(
        &self,
        src: &Tensor,
        windows: &[(Tensor, Tensor)],
        n: usize,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let p = |v: &Var| if mode.param_grads { v.as_tensor().clone() } else { v.as_tensor().detach() };
        let mut pooled = Vec::with_capacity(self.convs.len());
        for ((k, w, b), (idx, mask)) in self.convs.iter().zip(windows) {
            let t = mask.dim(1)?;
            let x = src.index_select(idx, 0)?.reshape((n * t, k * self.dim))?;
            let h = x.matmul(&p(w))?.reshape((n, t, w.dim(1)?))?.broadcast_add(mask)?;
            pooled.push(h.max(1)?.broadcast_add(&p(b))?.relu()?);
        }
        let mut h = Tensor::cat(&pooled, 1)?;
        if mode.train && self.dropout > 0.0 {
            let keep = 1.0 - self.dropout;
            let mut rng = self.rng.lock().expect("dropout rng");
            let m: Vec<f32> = (0..h.elem_count())
                .map(|_| if rng.random::<f32>() < keep { 1.0 / keep } else { 0.0 })
                .collect();
            h = h.mul(&Tensor::from_vec(m, h.shape(), &self.device)?)?;
        }
        h.matmul(&p(&self.out_w))?.broadcast_add(&p(&self.out_b))
    }
}

impl Classifier for WordCnn {
    fn name(&self) -> &str {
        "word-CNN"
    }

    /// In the vocabulary, as the model reads a whitespace word (a literal `[PAD]` or
    /// `[UNK]` is unknown).
    fn known_words(&self, words: &[&str]) -> Result<Vec<bool>> {
        Ok(words.iter().map(|w| !matches!(self.vocab.id(w), PAD | UNK)).collect())
    }
    fn vocabulary(&self) -> Result<Vec<String>> {
        Ok(self.vocab.words())
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Word ids `[n, len]` (u32); `len` is the longest text of the batch (at most
    /// `max_words`, at least the widest convolution).
    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
        let ExamplesRef::Text(texts) = x else {
            return Err(Error::invalid("a word-CNN reads text"));
        };
        let (ids, _, len) = self.ids(texts);
        Ok(Tensor::from_vec(ids, (texts.len(), len), &self.device)?)
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let (n, len) = x.dims2()?;
        let ids = x.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
        let lens: Vec<usize> =
            ids.chunks(len.max(1)).map(|r| r.iter().rposition(|&w| w != PAD).map_or(0, |p| p + 1)).collect();
        if mode.param_grads {
            // The weights are about to change: the projections will be stale.
            *self.fast.lock().expect("projection cache") = None;
        } else if !mode.train
            && n > 0
            && let Some(logits) = self.forward_fast(&ids, n, len, &lens)?
        {
            return Ok(logits);
        }
        let table =
            if mode.param_grads { self.emb.as_tensor().clone() } else { self.emb.as_tensor().detach() };
        let words = if mode.train && self.word_dropout > 0.0 {
            let mut rng = self.rng.lock().expect("dropout rng");
            let dropped: Vec<u32> = ids
                .iter()
                .map(|&w| if w != PAD && rng.random::<f32>() < self.word_dropout { UNK } else { w })
                .collect();
            Tensor::from_vec(dropped, n * len, &self.device)?
        } else {
            x.flatten_all()?
        };
        // Embed once (one backward into the table), then gather the windows from the words.
        let embedded = table.embedding(&words)?;
        let windows = self.windows(len, &lens).map_err(candle_core::Error::wrap)?;
        self.head(&embedded, &windows, n, mode)
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn trainable(&self) -> Vec<Var> {
        self.trainable.clone()
    }

    fn dense_input(&self) -> bool {
        false
    }

    fn rng_state(&self) -> Option<Vec<u8>> {
        Some(super::checkpoint::chacha_state(&self.rng.lock().expect("dropout rng")))
    }

    fn set_rng_state(&self, state: &[u8]) -> Result<()> {
        *self.rng.lock().expect("dropout rng") = super::checkpoint::chacha_from_state(state)?;
        Ok(())
    }

    /// The norm of the loss gradient at each word's embedding.
    fn word_saliency(&self, texts: &[&str], labels: &[u32]) -> Result<Vec<f32>> {
        let n = texts.len();
        let width = texts.iter().map(|t| word_count(t)).max().unwrap_or(0);
        if n == 0 {
            return Ok(Vec::new());
        }
        let (ids, lens, len) = self.ids(texts);
        let words = Tensor::from_vec(ids, n * len, &self.device)?;
        let embedded = Var::from_tensor(&self.emb.as_tensor().detach().embedding(&words)?)?;
        let windows = self.windows(len, &lens)?;
        let logits = self.head(embedded.as_tensor(), &windows, n, Mode::EVAL)?;
        let y = Tensor::from_slice(labels, n, &self.device)?;
        let loss =
            candle_nn::ops::log_softmax(&logits, D::Minus1)?.gather(&y.unsqueeze(1)?, 1)?.neg()?.sum_all()?;
        let grads = loss.backward()?;
        let g = grads
            .get(embedded.as_tensor())
            .ok_or_else(|| Error::Internal("no gradient reached the embeddings"))?;
        let norms = g.sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?;
        let mut out = vec![0.0f32; n * width];
        for i in 0..n {
            for j in 0..lens[i].min(width) {
                out[i * width + j] = norms[i * len + j];
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: [&str; 4] = [
        "a gripping , funny film",
        "dull and tedious",
        "the best film of the year , funny and moving",
        "tedious",
    ];

    fn model(seed: u64) -> WordCnn {
        let vocab = Vocab::build(TEXTS.iter(), 1).unwrap();
        let cfg = TextModelConfig { embedding_dim: 8, filters: 4, ..Default::default() };
        WordCnn::new(&cfg, vocab, 2, seed, &Device::Cpu).unwrap()
    }

    fn logits(m: &WordCnn, texts: &[&str], mode: Mode) -> Vec<Vec<f32>> {
        let x = m.encode(&ExamplesRef::Text(texts.to_vec())).unwrap();
        m.forward(&x, mode).unwrap().to_vec2::<f32>().unwrap()
    }

    #[test]
    fn vocabulary_matches_the_tokenizers_pipeline_and_round_trips() {
        let m = model(1);
        let v = m.vocab();
        assert_eq!((v.id("[PAD]"), v.id("[UNK]")), (PAD, UNK));
        assert_eq!(v.len(), 2 + 13, "every distinct train word");
        // Most frequent first: "," "film" "funny" "tedious" "and" "the" appear twice.
        assert!(v.id(",") < v.id("gripping"));
        for text in ["a funny  film\tof unseen words", "[UNK] tedious", ""] {
            let fast: Vec<u32> = tempered_plugin::words::words(text).map(|w| v.id(w)).collect();
            assert_eq!(fast, v.encode_with_tokenizer(text).unwrap(), "{text:?}");
        }
        let path = std::env::temp_dir().join(format!("tempered-vocab-{}.json", std::process::id()));
        v.save(&path).unwrap();
        let back = Vocab::load(&path).unwrap();
        assert_eq!(back.ids, v.ids);
        let twice = Vocab::build(TEXTS.iter(), 2).unwrap();
        assert_eq!(twice.len(), 2 + 6);
    }

    fn close(a: &[Vec<f32>], b: &[Vec<f32>]) -> bool {
        a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-4)
    }

    /// Inference without dropout, through candle's graph (the training path).
    const GRAPH: Mode = Mode { train: false, param_grads: true };

    #[test]
    fn the_vocabulary_lists_words_most_frequent_first_ties_in_byte_order() {
        let words = model(1).vocabulary().unwrap();
        let want = [
            ",", "and", "film", "funny", "tedious", "the", "a", "best", "dull", "gripping", "moving", "of",
            "year",
        ];
        assert_eq!(words, want);
    }

    #[test]
    fn an_alias_reads_as_its_word_and_adds_no_row() {
        let mut vocab = Vocab::build(TEXTS.iter(), 1).unwrap();
        assert!(vocab.alias("riveting", "gripping"));
        // Neither a word already known nor one aimed at an unknown word or [UNK] takes.
        assert!(!vocab.alias("dull", "tedious"));
        assert!(!vocab.alias("boring", "unseen"));
        assert!(!vocab.alias("boring", "[UNK]"));
        assert_eq!(vocab.id("riveting"), vocab.id("gripping"));
        assert_eq!(vocab.len(), 2 + 13, "an alias is no new embedding row");
        assert!(!vocab.words().contains(&"riveting".to_owned()));
        let cfg = TextModelConfig { embedding_dim: 8, filters: 4, ..Default::default() };
        let m = WordCnn::new(&cfg, vocab, 2, 3, &Device::Cpu).unwrap();
        assert_eq!(m.known_words(&["riveting", "boring"]).unwrap(), [true, false]);
        let swapped = logits(&m, &["a riveting , funny film", "a boring , funny film"], Mode::EVAL);
        assert_eq!(swapped[0], logits(&m, &[TEXTS[0]], Mode::EVAL)[0]);
        assert_ne!(swapped[1], swapped[0], "a word that is no alias still reads as [UNK]");
    }

    #[test]
    fn known_words_are_the_vocabulary_as_the_model_reads_it() {
        let m = model(1);
        let known = m.known_words(&["funny", "Funny", "fnuny", "[UNK]", "[PAD]", "tedious"]).unwrap();
        assert_eq!(known, [true, false, false, false, false, true]);
    }

    #[test]
    fn the_inference_path_matches_the_graph_and_follows_weight_changes() {
        use candle_nn::Optimizer;
        let m = model(6);
        let texts = [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[3], "unknown words only", ""];
        let fast = logits(&m, &texts, Mode::EVAL);
        assert!(close(&fast, &logits(&m, &texts, GRAPH)), "{fast:?}");
        let snapshot = crate::model::snapshot(&m).unwrap();
        let x = m.encode(&ExamplesRef::Text(TEXTS.to_vec())).unwrap();
        let y = Tensor::new(&[1u32, 0, 1, 0], &Device::Cpu).unwrap();
        let mut opt = candle_nn::AdamW::new(m.trainable(), Default::default()).unwrap();
        opt.backward_step(&candle_nn::loss::cross_entropy(&m.forward(&x, Mode::TRAIN).unwrap(), &y).unwrap())
            .unwrap();
        let stepped = logits(&m, &texts, Mode::EVAL);
        assert_ne!(stepped, fast, "a training step invalidates the projections");
        assert!(close(&stepped, &logits(&m, &texts, GRAPH)));
        crate::model::restore(&m, &snapshot).unwrap();
        assert!(close(&logits(&m, &texts, Mode::EVAL), &fast), "a restore is noticed too");
        // Bit for bit the same whatever was asked before (a resumed run repeats the first).
        let (a, b) = (model(6), model(6));
        let _ = logits(&a, &[TEXTS[0]], Mode::EVAL);
        assert_eq!(logits(&a, &TEXTS, Mode::EVAL), logits(&b, &TEXTS, Mode::EVAL));
    }

    #[test]
    fn logits_do_not_depend_on_the_batch_and_seeds_repeat() {
        let m = model(3);
        let alone = logits(&m, &[TEXTS[3]], Mode::EVAL);
        let batch = logits(&m, &TEXTS, Mode::EVAL);
        for (a, b) in alone[0].iter().zip(&batch[3]) {
            assert!((a - b).abs() < 1e-5, "{alone:?} vs {batch:?}");
        }
        assert_eq!(batch, logits(&model(3), &TEXTS, Mode::EVAL));
        assert_ne!(batch, logits(&model(4), &TEXTS, Mode::EVAL));
        // Dropout draws from the model's seeded stream: two fresh models agree.
        let (a, b) = (model(5), model(5));
        assert_eq!(logits(&a, &TEXTS, Mode::TRAIN), logits(&b, &TEXTS, Mode::TRAIN));
    }

    #[test]
    fn word_dropout_reads_words_as_unknown_while_training_only() {
        let make = || {
            let vocab = Vocab::build(TEXTS.iter(), 1).unwrap();
            let cfg = TextModelConfig {
                embedding_dim: 8,
                filters: 4,
                dropout: 0.0,
                word_dropout: 0.5,
                ..Default::default()
            };
            WordCnn::new(&cfg, vocab, 2, 9, &Device::Cpu).unwrap()
        };
        let (a, b) = (make(), make());
        let train = logits(&a, &TEXTS, Mode::TRAIN);
        assert_eq!(train, logits(&b, &TEXTS, Mode::TRAIN), "seeded");
        assert!(!close(&train, &logits(&a, &TEXTS, GRAPH)), "words were dropped");
        assert!(close(&logits(&a, &TEXTS, Mode::EVAL), &logits(&a, &TEXTS, GRAPH)), "not at inference");
    }

    #[test]
    fn gradients_reach_every_trainable_tensor() {
        let m = model(1);
        let x = m.encode(&ExamplesRef::Text(TEXTS.to_vec())).unwrap();
        let y = Tensor::new(&[1u32, 0, 1, 0], &Device::Cpu).unwrap();
        let logits = m.forward(&x, Mode { train: false, param_grads: true }).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        for v in m.trainable() {
            let g = grads.get(v.as_tensor()).expect("gradient for every trainable tensor");
            assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
        }
        let frozen = m.forward(&x, Mode::EVAL).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(m.trainable().iter().all(|v| frozen.get(v.as_tensor()).is_none()));
    }

    #[test]
    fn training_steps_lower_the_loss() {
        use candle_nn::Optimizer;
        let m = model(2);
        let x = m.encode(&ExamplesRef::Text(TEXTS.to_vec())).unwrap();
        let y = Tensor::new(&[1u32, 0, 1, 0], &Device::Cpu).unwrap();
        let mut opt =
            candle_nn::AdamW::new(m.trainable(), candle_nn::ParamsAdamW { lr: 0.01, ..Default::default() })
                .unwrap();
        let loss = |m: &WordCnn| {
            candle_nn::loss::cross_entropy(&m.forward(&x, Mode::EVAL).unwrap(), &y)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let before = loss(&m);
        for _ in 0..30 {
            let l = candle_nn::loss::cross_entropy(&m.forward(&x, Mode::TRAIN).unwrap(), &y).unwrap();
            opt.backward_step(&l).unwrap();
        }
        assert!(loss(&m) < before * 0.5, "{before} → {}", loss(&m));
    }

    #[test]
    fn saliency_has_one_value_per_word() {
        let m = model(1);
        let texts = ["dull and tedious", "a gripping , funny film"];
        let s = m.word_saliency(&texts, &[0, 1]).unwrap();
        assert_eq!(s.len(), 2 * 5);
        assert!(s[..3].iter().all(|&v| v > 0.0), "{s:?}");
        assert_eq!(&s[3..5], &[0.0, 0.0], "padding past the words");
        assert!(s[5..].iter().all(|&v| v > 0.0), "{s:?}");
        // A text longer than max_words: the words past the cut have no saliency.
        let long = vec!["film"; 70].join(" ");
        let s = m.word_saliency(&[&long], &[1]).unwrap();
        assert_eq!(s.len(), 70);
        assert!(s[..64].iter().any(|&v| v > 0.0) && s[64..].iter().all(|&v| v == 0.0));
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p tempered-nn --lib word_cnn_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "timing"]
    fn word_cnn_speed() {
        let words: Vec<String> = (0..19_000).map(|i| format!("w{i}")).collect();
        let texts: Vec<String> = (0..2000)
            .map(|s| {
                (0..21)
                    .map(|j| words[(s * 7919 + j * 104_729) % words.len()].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let vocab = Vocab::build(words.iter(), 1).unwrap();
        let m = WordCnn::new(&TextModelConfig::default(), vocab, 2, 1, &Device::Cpu).unwrap();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let y: Vec<u32> = (0..50).map(|i| i % 2).collect();
        let yt = Tensor::new(y.as_slice(), &Device::Cpu).unwrap();
        let mut opt = crate::train::AdamW::new(m.trainable(), candle_nn::ParamsAdamW::default()).unwrap();
        let (mut tf, mut tb, mut to) = (0.0, 0.0, 0.0);
        for b in 0..20 {
            let x = m.encode(&ExamplesRef::Text(refs[b * 50..(b + 1) * 50].to_vec())).unwrap();
            let t = Instant::now();
            let loss = candle_nn::loss::cross_entropy(&m.forward(&x, Mode::TRAIN).unwrap(), &yt).unwrap();
            tf += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let g = loss.backward().unwrap();
            tb += t.elapsed().as_secs_f64();
            let t = Instant::now();
            opt.step(&g).unwrap();
            to += t.elapsed().as_secs_f64();
        }
        println!(
            "train step (batch 50): forward {:.1} ms, backward {:.1} ms, AdamW {:.1} ms",
            tf * 50.0,
            tb * 50.0,
            to * 50.0
        );
        for (name, mode) in [("projections", Mode::EVAL), ("graph", Mode { train: false, param_grads: true })]
        {
            for n in [1usize, 30, 256] {
                let t = Instant::now();
                let reps = 2000 / n;
                for r in 0..reps {
                    let part = refs[(r * n) % 1700..(r * n) % 1700 + n].to_vec();
                    let x = m.encode(&ExamplesRef::Text(part)).unwrap();
                    let _ = m.forward(&x, mode).unwrap().to_vec2::<f32>().unwrap();
                }
                let s = t.elapsed().as_secs_f64();
                println!("predict ({name}) batch {n}: {:.0} sentences/s", (reps * n) as f64 / s);
            }
        }
    }
}
