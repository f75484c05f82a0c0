//! BERT-family models read from a local Hugging Face folder (`config.json`,
//! `tokenizer.json`, `model.safetensors`): a fine-tunable text classifier and a
//! mean-pooling sentence encoder (all-MiniLM-L6-v2 is a sentence-transformer).
//!
//! The forward pass is written here rather than taken from candle-transformers: candle's
//! fused `LayerNorm` and `softmax_last_dim` have no backward, so a stock `BertModel`
//! silently trains its head only. Wherever a gradient may flow, LayerNorm is made of mean /
//! sub / sqr / sqrt / div and softmax of exp / sum / div; where none can (inference, frozen
//! lower layers) the fused kernels run, which is faster. GELU (erf) is a CPU custom op with
//! a one-pass backward. The tests check that every trainable tensor receives a gradient
//! and moves, that frozen ones do not, and that the hidden states match
//! candle-transformers' `BertModel` on the same folder.
//!
//! # `[model]` of a text pipeline with `kind = "bert"`
//!
//! ```toml
//! bert = { path = "models/all-MiniLM-L6-v2", train_layers = 2, max_tokens = 64 }
//! ```
//!
//! - `path`: the HF folder, relative to the pipeline's base dir (`just models` installs
//!   all-MiniLM-L6-v2 into `models/`; nothing is downloaded at run time).
//! - `train_layers`: absent: fine-tune everything; `n`: only the top `n` encoder layers and
//!   the head (embeddings and the lower layers frozen, which also keeps backward out of
//!   them: much faster on CPU).
//! - `max_tokens` (default 64): sequences are truncated to this many tokens, `[CLS]` and
//!   `[SEP]` included, and a batch is padded to its longest sequence. The tokenizer.json's
//!   own padding and truncation are replaced.
//! - `pooling` (default `"mean"`): the head reads the mask-weighted mean of the last hidden
//!   states (how sentence-transformers pool), or `"cls"`: the `[CLS]` state through the
//!   checkpoint's pooler (dense + tanh) when it has one, as `BertForSequenceClassification`.
//!
//! The head is a seeded linear layer (`classifier.weight`, `classifier.bias`). Dropout is
//! off: runs stay deterministic for a seed. Only `model_type = "bert"` checkpoints are
//! read; weight names may carry a `bert.` prefix or none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::cpu::erf::erf_f32;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, DType, Device, Layout, Shape, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use tempered_plugin::words::{word_count, word_spans};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::{Classifier, Mode, SentenceEncoder, init};
use crate::data::ExamplesRef;
use crate::{Error, Result};

/// How the classifier turns the last hidden states into one vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    #[default]
    Mean,
    Cls,
}

/// `bert = { ... }` in `[model]`. See the [module docs](self).
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

/// Sentence-transformers' MiniLM reads at most 256 tokens.
const ENCODER_MAX_TOKENS: usize = 256;
/// Sentences per forward pass in `word_saliency` and `similarity`.
const CHUNK: usize = 64;

/// A BERT classifier: encoder + pooling + a seeded linear head.
pub fn load_classifier(
    cfg: &BertConfig,
    base_dir: &Path,
    n_classes: usize,
    seed: u64,
    device: &Device,
) -> Result<Box<dyn Classifier>> {
    Ok(Box::new(BertClassifier::load(cfg, base_dir, n_classes, seed, device)?))
}

/// A frozen mean-pooling sentence encoder; `similarity` is the cosine of the embeddings.
pub fn load_encoder(dir: &Path, device: &Device) -> Result<Box<dyn SentenceEncoder>> {
    Ok(Box::new(BertSentenceEncoder::load(dir, device)?))
}

// ---------------------------------------------------------------------------------------
// The folder

/// The fields of a HF `config.json` this model reads (others are ignored).
#[derive(Debug, Clone, Deserialize)]
struct HfConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "hf_default_act")]
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "hf_default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "hf_default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    position_embedding_type: Option<String>,
    #[serde(default)]
    pad_token_id: Option<u32>,
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

#[derive(Debug, Clone, Copy)]
enum Act {
    GeluErf,
    GeluTanh,
    Relu,
}

impl Act {
    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Act::GeluErf => gelu_erf(x),
            Act::GeluTanh => x.gelu(),
            Act::Relu => x.relu(),
        }
    }
}

/// GELU, erf form (HF's `"gelu"`). On CPU a custom op with a one-pass backward: candle's
/// own `gelu_erf` is exact too, but its backward is a dozen separate tensor passes (over a
/// tenth of a fine-tune step's CPU time). Elsewhere candle's op.
fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = crate::tensor::cpu_f32(s, l, "gelu")?;
        let y = x.iter().map(|&v| 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))).collect();
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &GeluErfGrad)?))
    }
}

/// `grad · gelu'(x)`, gelu'(x) = Φ(x) + x φ(x).
struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (
            crate::tensor::cpu_f32(s1, l1, "gelu backward")?,
            crate::tensor::cpu_f32(s2, l2, "gelu backward")?,
        );
        if x.len() != g.len() {
            candle_core::bail!("gelu backward: {} values, {} gradients", x.len(), g.len());
        }
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let out = x
            .iter()
            .zip(g)
            .map(|(&v, &g)| {
                let cdf = 0.5 * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
                g * (cdf + v * INV_SQRT_2PI * (-0.5 * v * v).exp())
            })
            .collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

fn read_config(dir: &Path) -> Result<(HfConfig, Act)> {
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

/// The tokenizer with its built-in padding and truncation replaced: truncation at
/// `max_tokens`, no padding (batches are padded here, to their longest sequence).
struct Tok {
    tokenizer: Tokenizer,
    pad_id: u32,
}

impl Tok {
    fn load(dir: &Path, cfg: &HfConfig, max_tokens: usize) -> Result<Self> {
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

    fn encode(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::external("tokenizer", e))
    }

    /// `[n, longest]` token ids, padded with the pad id.
    fn ids(&self, encodings: &[Encoding], device: &Device) -> Result<Tensor> {
        let len = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let mut data = vec![self.pad_id; encodings.len() * len];
        for (row, e) in data.chunks_mut(len).zip(encodings) {
            row[..e.get_ids().len()].copy_from_slice(e.get_ids());
        }
        Ok(Tensor::from_vec(data, (encodings.len(), len), device)?)
    }
}

/// `model.safetensors`, handed out tensor by tensor into a `VarMap`.
struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
    path: PathBuf,
}

impl Weights {
    fn load(dir: &Path, device: &Device) -> Result<Self> {
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

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(&format!("{}{name}", self.prefix))
    }

    /// Registers tensor `name` (checked against `shape`) in `map` as a var.
    fn take(&mut self, map: &VarMap, name: &str, shape: &[usize], train: bool) -> Result<Param> {
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

    fn linear(&mut self, map: &VarMap, name: &str, n_in: usize, n_out: usize, train: bool) -> Result<Linear> {
        Ok(Linear {
            w: self.take(map, &format!("{name}.weight"), &[n_out, n_in], train)?,
            b: self.take(map, &format!("{name}.bias"), &[n_out], train)?,
        })
    }

    fn norm(&mut self, map: &VarMap, name: &str, size: usize, eps: f64, train: bool) -> Result<Norm> {
        Ok(Norm {
            w: self.take(map, &format!("{name}.weight"), &[size], train)?,
            b: self.take(map, &format!("{name}.bias"), &[size], train)?,
            eps,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The network

/// A var and whether the optimiser trains it. Frozen vars are always detached, so
/// backward never enters what lies below the lowest trainable layer.
#[derive(Clone)]
struct Param {
    var: Var,
    train: bool,
}

impl Param {
    fn get(&self, mode: Mode) -> Tensor {
        if self.train && mode.param_grads {
            self.var.as_tensor().clone()
        } else {
            self.var.as_tensor().detach()
        }
    }
}

/// HF layout: weight `[out, in]`.
struct Linear {
    w: Param,
    b: Param,
}

impl Linear {
    /// `x`: `[n, in]` → `[n, out]`.
    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        add_rows(&x.matmul(&self.w.get(mode).t()?)?, &self.b.get(mode))
    }
}

struct Norm {
    w: Param,
    b: Param,
    eps: f64,
}

impl Norm {
    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        layer_norm(x, &self.w.get(mode), &self.b.get(mode), self.eps)
    }
}

/// LayerNorm over the last dimension. Wherever a gradient may be needed it is made of ops
/// that all have a backward: candle's fused `candle_nn::LayerNorm` has none, and gradients
/// would silently stop there.
fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if !(x.track_op() || w.track_op() || b.track_op()) {
        // Nothing here needs a gradient (inference, frozen layers): candle's fused op is
        // faster and matches within 1e-5 (tested).
        return candle_nn::ops::layer_norm(&x.contiguous()?, w, b, eps as f32);
    }
    layer_norm_basic(x, w, b, eps)
}

/// LayerNorm from mean / sub / sqr / sqrt / div, with the affine part as in [`add_rows`].
fn layer_norm_basic(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let std = (centred.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
    let normed = centred.broadcast_div(&std)?;
    if x.rank() == 2 && w.track_op() {
        add_rows(&(normed * rows(w, x.dim(0)?)?)?, b)
    } else {
        normed.broadcast_mul(w)?.broadcast_add(b)
    }
}

/// `v` (`[d]`) repeated as `n` rows. A tracked `v` is expanded by a matmul with a column
/// of ones, so that backward sums its gradient over the rows with a matmul too: candle's
/// sum over a leading dimension (what `broadcast_add` leaves to backward) is much slower
/// (BENCHMARKS.md).
fn rows(v: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    if v.track_op() {
        Tensor::ones((n, 1), v.dtype(), v.device())?.matmul(&v.unsqueeze(0)?)
    } else {
        v.unsqueeze(0)?.broadcast_as((n, v.dim(0)?))
    }
}

/// `x + v` for `x: [n, d]` and a bias `v: [d]` (see [`rows`]).
fn add_rows(x: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    if v.track_op() { x + rows(v, x.dim(0)?)? } else { x.broadcast_add(v) }
}

/// Softmax over the last dimension. Where a gradient may be needed, from basic ops with
/// the max detached: softmax does not depend on the shift, so its gradient is exact and
/// backward skips the max's mask.
fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.track_op() {
        // No gradient needed: candle's fused (backward-less) kernel.
        return candle_nn::ops::softmax_last_dim(&x.contiguous()?);
    }
    let e = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

impl Layer {
    /// `x`: `[b·l, h]`; `bias`: `[b, 1, 1, l]` (0 or −∞ for padding).
    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        b: usize,
        l: usize,
        net: &Bert,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let (n, h) = x.dims2()?;
        let heads = net.heads;
        let dh = h / heads;
        let split = |t: Tensor| t.reshape((b, l, heads, dh))?.transpose(1, 2)?.contiguous();
        let q = split((self.query.forward(x, mode)? * (1.0 / (dh as f64).sqrt()))?)?;
        let k = split(self.key.forward(x, mode)?)?;
        let v = split(self.value.forward(x, mode)?)?;
        let probs = softmax(&q.matmul(&k.t()?)?.broadcast_add(bias)?)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((n, h))?;
        let a = self.attn_norm.forward(&(self.attn_out.forward(&ctx, mode)? + x)?, mode)?;
        let i = net.act.apply(&self.inter.forward(&a, mode)?)?;
        self.out_norm.forward(&(self.out.forward(&i, mode)? + &a)?, mode)
    }
}

struct Bert {
    word: Param,
    position: Param,
    token_type: Param,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    act: Act,
    pad_id: u32,
}

impl Bert {
    /// Loads the encoder's tensors into `map`. Layers `first_trained..` and, with
    /// `train_embeddings`, the embeddings are marked trainable.
    fn load(
        cfg: &HfConfig,
        act: Act,
        weights: &mut Weights,
        map: &VarMap,
        first_trained: usize,
        train_embeddings: bool,
        pad_id: u32,
    ) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let e = train_embeddings;
        let word = weights.take(map, "embeddings.word_embeddings.weight", &[cfg.vocab_size, h], e)?;
        let position = weights.take(
            map,
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
            e,
        )?;
        let token_type =
            weights.take(map, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h], e)?;
        let emb_norm = weights.norm(map, "embeddings.LayerNorm", h, eps, e)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let t = i >= first_trained;
            let (h, m) = (h, cfg.intermediate_size);
            layers.push(Layer {
                query: weights.linear(map, &format!("{p}.attention.self.query"), h, h, t)?,
                key: weights.linear(map, &format!("{p}.attention.self.key"), h, h, t)?,
                value: weights.linear(map, &format!("{p}.attention.self.value"), h, h, t)?,
                attn_out: weights.linear(map, &format!("{p}.attention.output.dense"), h, h, t)?,
                attn_norm: weights.norm(map, &format!("{p}.attention.output.LayerNorm"), h, eps, t)?,
                inter: weights.linear(map, &format!("{p}.intermediate.dense"), h, m, t)?,
                out: weights.linear(map, &format!("{p}.output.dense"), m, h, t)?,
                out_norm: weights.norm(map, &format!("{p}.output.LayerNorm"), h, eps, t)?,
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
    fn mask(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        ids.ne(self.pad_id)?.to_dtype(DType::F32)
    }

    /// `[b, l]` ids → `[b, l, h]` word embeddings.
    fn word_embeddings(&self, ids: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let (b, l) = ids.dims2()?;
        self.word.get(mode).index_select(&ids.flatten_all()?, 0)?.reshape((b, l, self.hidden))
    }

    /// Word embeddings `[b, l, h]` and mask `[b, l]` → last hidden states `[b·l, h]`.
    fn hidden_states(&self, word: &Tensor, mask: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
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
            x = layer.forward(&x, &bias, b, l, self, mode)?;
        }
        Ok(x)
    }
}

/// Mask-weighted mean of `h` (`[b·l, d]`) per sequence → `[b, d]`, as a batched matmul
/// (its backward is a matmul too, not a reduction over a leading dimension).
fn mean_pool(h: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, l) = mask.dims2()?;
    let d = h.dim(1)?;
    let weights = mask.broadcast_div(&mask.sum_keepdim(1)?.clamp(1.0, f64::INFINITY)?)?;
    weights.unsqueeze(1)?.matmul(&h.reshape((b, l, d))?)?.squeeze(1)
}

// ---------------------------------------------------------------------------------------
// The classifier

pub struct BertClassifier {
    bert: Bert,
    tok: Tok,
    pooling: Pooling,
    pooler: Option<Linear>,
    head: Linear,
    varmap: VarMap,
    trainable: Vec<Var>,
    n_classes: usize,
    device: Device,
}

impl BertClassifier {
    pub fn load(
        cfg: &BertConfig,
        base_dir: &Path,
        n_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let dir = if cfg.path.is_absolute() { cfg.path.clone() } else { base_dir.join(&cfg.path) };
        let (hf, act) = read_config(&dir)?;
        if cfg.max_tokens > hf.max_position_embeddings {
            return Err(Error::data(
                dir.join("config.json"),
                format!(
                    "max_tokens {} exceeds the model's {} positions",
                    cfg.max_tokens, hf.max_position_embeddings
                ),
            ));
        }
        let n_layers = hf.num_hidden_layers;
        let first_trained = match cfg.train_layers {
            None => 0,
            Some(n) if n <= n_layers => n_layers - n,
            Some(n) => {
                return Err(Error::Config(format!(
                    "train_layers = {n}, but {} has {n_layers} encoder layers",
                    dir.display()
                )));
            }
        };
        let tok = Tok::load(&dir, &hf, cfg.max_tokens)?;
        let mut weights = Weights::load(&dir, device)?;
        let varmap = VarMap::new();
        let bert = Bert::load(
            &hf,
            act,
            &mut weights,
            &varmap,
            first_trained,
            cfg.train_layers.is_none(),
            tok.pad_id,
        )?;
        let h = hf.hidden_size;
        let pooler = match cfg.pooling {
            Pooling::Cls if weights.has("pooler.dense.weight") => {
                Some(weights.linear(&varmap, "pooler.dense", h, h, true)?)
            }
            _ => None,
        };
        // PyTorch's nn.Linear default: U(±1/√fan_in).
        let bound = 1.0 / (h as f32).sqrt();
        let head = Linear {
            w: Param {
                var: init::uniform(&varmap, seed, "classifier.weight", &[n_classes, h], bound, device)?,
                train: true,
            },
            b: Param {
                var: init::uniform(&varmap, seed, "classifier.bias", &[n_classes], bound, device)?,
                train: true,
            },
        };
        let mut params: Vec<&Param> = Vec::new();
        params.extend([&bert.word, &bert.position, &bert.token_type, &bert.emb_norm.w, &bert.emb_norm.b]);
        for l in &bert.layers {
            for lin in [&l.query, &l.key, &l.value, &l.attn_out, &l.inter, &l.out] {
                params.extend([&lin.w, &lin.b]);
            }
            params.extend([&l.attn_norm.w, &l.attn_norm.b, &l.out_norm.w, &l.out_norm.b]);
        }
        if let Some(p) = &pooler {
            params.extend([&p.w, &p.b]);
        }
        params.extend([&head.w, &head.b]);
        let trainable = params.into_iter().filter(|p| p.train).map(|p| p.var.clone()).collect();
        Ok(Self {
            bert,
            tok,
            pooling: cfg.pooling,
            pooler,
            head,
            varmap,
            trainable,
            n_classes,
            device: device.clone(),
        })
    }

    /// Word embeddings `[b, l, h]` and mask `[b, l]` → logits `[b, n_classes]`.
    fn logits(&self, word: &Tensor, mask: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let (b, l, h) = word.dims3()?;
        let states = self.bert.hidden_states(word, mask, mode)?;
        let pooled = match self.pooling {
            Pooling::Mean => mean_pool(&states, mask)?,
            Pooling::Cls => {
                let cls = states.reshape((b, l, h))?.narrow(1, 0, 1)?.squeeze(1)?;
                match &self.pooler {
                    Some(p) => p.forward(&cls, mode)?.tanh()?,
                    None => cls,
                }
            }
        };
        self.head.forward(&pooled, mode)
    }

    fn text<'a>(&self, x: &ExamplesRef<'a>) -> Result<Vec<&'a str>> {
        match x {
            ExamplesRef::Text(t) => Ok(t.clone()),
            ExamplesRef::Dense { .. } => Err(Error::invalid("a BERT model reads text, not dense rows")),
        }
    }
}

impl Classifier for BertClassifier {
    fn name(&self) -> &str {
        "BERT"
    }

    /// Whether the WordPiece tokenizer spells the word without its unknown token (a word
    /// split into known pieces is known: the model sees its pieces).
    fn known_words(&self, words: &[&str]) -> Result<Vec<bool>> {
        let unk = self.tok.tokenizer.token_to_id("[UNK]");
        words
            .iter()
            .map(|w| {
                let e = self.tok.tokenizer.encode(*w, false).map_err(|e| Error::external("tokenizer", e))?;
                Ok(!e.get_ids().is_empty() && unk.is_none_or(|u| !e.get_ids().contains(&u)))
            })
            .collect()
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Token ids `[n, l]` (u32), `l` the longest sequence (≤ `max_tokens`), padded with
    /// the tokenizer's pad id.
    fn encode(&self, x: &ExamplesRef<'_>) -> Result<Tensor> {
        let texts = self.text(x)?;
        self.tok.ids(&self.tok.encode(&texts)?, &self.device)
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let x = x.to_dtype(DType::U32)?;
        if x.dim(0)? == 0 {
            return Tensor::zeros((0, self.n_classes), DType::F32, &self.device);
        }
        let mask = self.bert.mask(&x)?;
        self.logits(&self.bert.word_embeddings(&x, mode)?, &mask, mode)
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

    /// The norm of the loss gradient at each sub-token's word embedding, summed over the
    /// sub-tokens of each whitespace word (words cut off by `max_tokens` get 0).
    fn word_saliency(&self, texts: &[&str], labels: &[u32]) -> Result<Vec<f32>> {
        if labels.len() != texts.len() {
            return Err(Error::invalid(format!("{} texts but {} labels", texts.len(), labels.len())));
        }
        let width = texts.iter().map(|t| word_count(t)).max().unwrap_or(0);
        let mut out = vec![0f32; texts.len() * width];
        for (c, part) in texts.chunks(CHUNK).enumerate() {
            let start = c * CHUNK;
            let encodings = self.tok.encode(part)?;
            let ids = self.tok.ids(&encodings, &self.device)?;
            let mask = self.bert.mask(&ids)?;
            let word = Var::from_tensor(&self.bert.word_embeddings(&ids, Mode::EVAL)?)?;
            let logits = self.logits(word.as_tensor(), &mask, Mode::EVAL)?;
            let y = Tensor::from_slice(&labels[start..start + part.len()], part.len(), &self.device)?;
            let loss = candle_nn::ops::log_softmax(&logits, D::Minus1)?
                .gather(&y.unsqueeze(1)?, 1)?
                .sum_all()?
                .neg()?;
            let grads = loss.backward()?;
            let g = grads
                .get(word.as_tensor())
                .ok_or_else(|| Error::msg("no gradient reached the embeddings"))?;
            let norms = g.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec2::<f32>()?;
            for (k, (text, enc)) in part.iter().zip(&encodings).enumerate() {
                let spans = word_spans(text);
                let row = &mut out[(start + k) * width..(start + k + 1) * width];
                let tokens = enc.get_special_tokens_mask().iter().zip(enc.get_offsets()).enumerate();
                for (t, (&special, &(from, to))) in tokens {
                    if special != 0 || from == to {
                        continue;
                    }
                    let w = spans.partition_point(|&(a, _)| a <= from);
                    if w > 0 && from < spans[w - 1].1 {
                        row[w - 1] += norms[k][t];
                    }
                }
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// The sentence encoder

pub struct BertSentenceEncoder {
    bert: Bert,
    tok: Tok,
    device: Device,
    _varmap: VarMap,
}

impl BertSentenceEncoder {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (hf, act) = read_config(dir)?;
        let tok = Tok::load(dir, &hf, ENCODER_MAX_TOKENS.min(hf.max_position_embeddings))?;
        let mut weights = Weights::load(dir, device)?;
        let varmap = VarMap::new();
        let bert = Bert::load(&hf, act, &mut weights, &varmap, hf.num_hidden_layers, false, tok.pad_id)?;
        Ok(Self { bert, tok, device: device.clone(), _varmap: varmap })
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

// ---------------------------------------------------------------------------------------
// A tiny folder in the real format, for tests

/// Writes a tiny BERT folder in the Hugging Face on-disk format into `dir`: `config.json`
/// (2 layers, hidden 32, 2 heads), a WordPiece `tokenizer.json` (a few dozen English
/// words, `##` pieces for every letter; padding and truncation at 128 built in, as
/// all-MiniLM-L6-v2's) and `model.safetensors` with seeded random weights under the HF
/// names (no prefix). For tests that need a BERT without downloading one.
pub fn write_tiny_model(dir: &Path, seed: u64) -> Result<()> {
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{AddedToken, PaddingParams, PaddingStrategy};

    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let words = "the a an and or but of to in is was it this that film movie story plot acting \
                 good great fun funny best love bad boring dull worst terrible not no very too \
                 with as for its one all . , ! ? ' - s ing ed ly"
        .split(' ')
        .filter(|w| !w.is_empty());
    let mut vocab: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    vocab.extend(words.map(str::to_string));
    for c in 'a'..='z' {
        vocab.push(c.to_string());
        vocab.push(format!("##{c}"));
    }
    for piece in ["##s", "##ing", "##ed", "##ly"] {
        vocab.push(piece.to_string());
    }
    vocab.dedup();
    let vocab_path = dir.join("vocab.txt");
    std::fs::write(&vocab_path, vocab.join("\n") + "\n").map_err(|e| Error::io(&vocab_path, e))?;
    let tok_err = |e: tokenizers::Error| Error::external("tiny tokenizer", e);
    let model = WordPiece::from_file(&vocab_path.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()
        .map_err(tok_err)?;
    let id = |t: &str| vocab.iter().position(|v| v == t).expect("special token") as u32;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::default())).map_err(tok_err)?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    let template = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(|e| Error::external("tiny tokenizer", e))?
        .special_tokens(vec![("[CLS]", id("[CLS]")), ("[SEP]", id("[SEP]"))])
        .build()
        .map_err(|e| Error::external("tiny tokenizer", e))?;
    tokenizer.with_post_processor(Some(template));
    tokenizer.add_special_tokens(specials.iter().map(|s| AddedToken::from(*s, true))).map_err(tok_err)?;
    tokenizer
        .with_padding(Some(PaddingParams { strategy: PaddingStrategy::Fixed(128), ..Default::default() }));
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: 128, ..Default::default() }))
        .map_err(tok_err)?;
    tokenizer.save(dir.join("tokenizer.json"), true).map_err(tok_err)?;

    let (h, m, layers, heads, positions) = (32usize, 64usize, 2usize, 2usize, 128usize);
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab.len(),
        "hidden_size": h,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": m,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": positions,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).expect("json"))
        .map_err(|e| Error::io(&config_path, e))?;

    /// A tensor of uniform draws in `centre ± bound`.
    struct Draw {
        name: String,
        shape: Vec<usize>,
        centre: f32,
        bound: f32,
    }
    fn draw(d: &mut Vec<Draw>, name: String, shape: &[usize], centre: f32, bound: f32) {
        d.push(Draw { name, shape: shape.to_vec(), centre, bound });
    }
    fn dense(d: &mut Vec<Draw>, name: &str, n_in: usize, n_out: usize) {
        draw(d, format!("{name}.weight"), &[n_out, n_in], 0.0, 0.1);
        draw(d, format!("{name}.bias"), &[n_out], 0.0, 0.02);
    }
    fn norm(d: &mut Vec<Draw>, name: &str, size: usize) {
        draw(d, format!("{name}.weight"), &[size], 1.0, 0.1);
        draw(d, format!("{name}.bias"), &[size], 0.0, 0.02);
    }
    let mut d = Vec::new();
    draw(&mut d, "embeddings.word_embeddings.weight".into(), &[vocab.len(), h], 0.0, 0.1);
    draw(&mut d, "embeddings.position_embeddings.weight".into(), &[positions, h], 0.0, 0.1);
    draw(&mut d, "embeddings.token_type_embeddings.weight".into(), &[2, h], 0.0, 0.1);
    norm(&mut d, "embeddings.LayerNorm", h);
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        for part in ["query", "key", "value"] {
            dense(&mut d, &format!("{p}.attention.self.{part}"), h, h);
        }
        dense(&mut d, &format!("{p}.attention.output.dense"), h, h);
        norm(&mut d, &format!("{p}.attention.output.LayerNorm"), h);
        dense(&mut d, &format!("{p}.intermediate.dense"), h, m);
        dense(&mut d, &format!("{p}.output.dense"), m, h);
        norm(&mut d, &format!("{p}.output.LayerNorm"), h);
    }
    dense(&mut d, "pooler.dense", h, h);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for Draw { name, shape, centre, bound } in d {
        use rand::Rng;
        let mut rng = init::rng_for(seed, &name);
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| centre + rng.random_range(-bound..=bound)).collect();
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path)
        .map_err(|e| Error::from(e).context(path.display().to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    const TEXTS: [&str; 4] = [
        "the film was great fun",
        "a boring plot and the worst acting",
        "not very good , but funny",
        "this movie is terrible !",
    ];
    const LABELS: [u32; 4] = [1, 0, 1, 0];

    fn tiny() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_model(dir.path(), 5).unwrap();
        dir
    }

    /// all-MiniLM-L6-v2 from `just models`, when it is there.
    fn minilm() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
        if dir.join("model.safetensors").is_file() {
            Some(dir)
        } else {
            eprintln!("note: {} is absent (`just models`): real-weights checks skipped", dir.display());
            None
        }
    }

    fn cfg(dir: &Path, train_layers: Option<usize>) -> BertConfig {
        BertConfig { path: dir.to_path_buf(), train_layers, max_tokens: 16, pooling: Pooling::Mean }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: BertConfig = toml::from_str("path = \"models/x\"").unwrap();
        assert_eq!((c.train_layers, c.max_tokens, c.pooling), (None, 64, Pooling::Mean));
        let c: BertConfig = toml::from_str("path = \"m\"\ntrain_layers = 2\npooling = \"cls\"").unwrap();
        assert_eq!((c.train_layers, c.pooling), (Some(2), Pooling::Cls));
        assert!(toml::from_str::<BertConfig>("path = \"m\"\nlayers = 2").is_err());
    }

    /// Loads a folder through `load_classifier` and checks what the engine relies on.
    fn check_folder(dir: &Path, max_tokens: usize) {
        let c = BertConfig { max_tokens, ..cfg(dir, Some(1)) };
        let m = load_classifier(&c, Path::new("/nonexistent"), 3, 11, &Device::Cpu).unwrap();
        assert!(!m.dense_input());
        let x = m.encode(&ExamplesRef::Text(TEXTS.to_vec())).unwrap();
        let (n, l) = x.dims2().unwrap();
        // Padded to the batch's longest sequence, not the tokenizer.json's 128.
        assert!(n == 4 && l < max_tokens, "encoded shape {:?}", x.dims());
        let logits = m.forward(&x, Mode::EVAL).unwrap();
        assert_eq!(logits.dims(), &[4, 3]);
        assert!(values(&logits).iter().all(|v| v.is_finite()));
        // Same seed, same head; padding does not change a sentence's logits.
        let again = load_classifier(&c, Path::new("/"), 3, 11, &Device::Cpu).unwrap();
        let alone =
            again.forward(&again.encode(&ExamplesRef::Text(vec![TEXTS[3]])).unwrap(), Mode::EVAL).unwrap();
        assert!(max_diff(&alone, &logits.narrow(0, 3, 1).unwrap()) < 1e-4);
        // Truncation at max_tokens overrides the tokenizer.json's 128.
        let long = "the movie was fun and ".repeat(40);
        let x = m.encode(&ExamplesRef::Text(vec![long.as_str(), "fun"])).unwrap();
        assert_eq!(x.dims(), &[2, max_tokens]);
        // Every tensor is in the varmap; train_layers = 1 trains 16 tensors + the head.
        assert_eq!(m.trainable().len(), 18);
        assert!(m.varmap().data().lock().unwrap().contains_key("encoder.layer.0.output.LayerNorm.weight"));
        let s = m.word_saliency(&["the film was   great", "bad"], &[1, 0]).unwrap();
        assert_eq!(s.len(), 8);
        assert!(s[..4].iter().all(|&v| v > 0.0), "{s:?}");
        assert!(s[4] > 0.0 && s[5..].iter().all(|&v| v == 0.0), "{s:?}");
    }

    #[test]
    fn loads_a_real_hf_folder() {
        let dir = tiny();
        check_folder(dir.path(), 16);
        if let Some(real) = minilm() {
            check_folder(&real, 64);
        }
        let missing = load_classifier(&cfg(Path::new("models/nope"), None), dir.path(), 2, 0, &Device::Cpu);
        let err = missing.err().expect("missing folder").to_string();
        assert!(err.contains("models/nope") && err.contains("just models"), "{err}");
        let too_many = load_classifier(&cfg(dir.path(), Some(3)), dir.path(), 2, 0, &Device::Cpu);
        assert!(too_many.err().expect("3 of 2 layers").to_string().contains("2 encoder layers"));
    }

    /// One AdamW step: every trainable tensor gets a non-zero gradient and moves; frozen
    /// ones do not. (With candle's fused LayerNorm this fails below the top LayerNorm.)
    fn fine_tune_step(dir: &Path, train_layers: Option<usize>, pooling: Pooling) {
        let m =
            BertClassifier::load(&BertConfig { pooling, ..cfg(dir, train_layers) }, dir, 2, 3, &Device::Cpu)
                .unwrap();
        let all: Vec<(String, Var)> =
            m.varmap().data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let before: HashMap<String, Vec<f32>> =
            all.iter().map(|(k, v)| (k.clone(), values(v.as_tensor()))).collect();
        let trained: std::collections::HashSet<_> =
            m.trainable().iter().map(|v| v.as_tensor().id()).collect();
        match train_layers {
            None => assert_eq!(trained.len(), all.len()),
            Some(n) => assert_eq!(trained.len(), 16 * n + 2 + if pooling == Pooling::Cls { 2 } else { 0 }),
        }

        let x = m.encode(&ExamplesRef::Text(TEXTS.to_vec())).unwrap();
        let y = Tensor::new(&LABELS, &Device::Cpu).unwrap();
        let logits = m.forward(&x, Mode::TRAIN).unwrap();
        // Inference takes candle's fused LayerNorm and softmax; training our basic ops.
        assert!(max_diff(&logits, &m.forward(&x, Mode::EVAL).unwrap()) < 1e-5);
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        for (name, v) in &all {
            let g = grads.get(v.as_tensor());
            if trained.contains(&v.as_tensor().id()) {
                let g = g.unwrap_or_else(|| panic!("no gradient for {name}"));
                assert!(values(g).iter().any(|&x| x != 0.0), "zero gradient for {name}");
            } else {
                assert!(g.is_none(), "frozen {name} got a gradient");
            }
        }
        let mut opt = AdamW::new(m.trainable(), ParamsAdamW { lr: 1e-3, ..Default::default() }).unwrap();
        opt.step(&grads).unwrap();
        for (name, v) in &all {
            let changed = values(v.as_tensor()) != before[name];
            assert_eq!(changed, trained.contains(&v.as_tensor().id()), "{name}: changed = {changed}");
        }
        // The attack path: gradients reach the input only.
        let word = Var::from_tensor(&m.bert.word_embeddings(&x, Mode::EVAL).unwrap()).unwrap();
        let mask = m.bert.mask(&x).unwrap();
        let grads =
            m.logits(word.as_tensor(), &mask, Mode::EVAL).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(word.as_tensor()).is_some());
        assert!(all.iter().all(|(_, v)| grads.get(v.as_tensor()).is_none()));
    }

    #[test]
    fn one_step_trains_every_trainable_tensor_and_nothing_else() {
        let dir = tiny();
        fine_tune_step(dir.path(), None, Pooling::Mean);
        fine_tune_step(dir.path(), Some(1), Pooling::Mean);
        fine_tune_step(dir.path(), Some(0), Pooling::Cls);
        if let Some(real) = minilm() {
            fine_tune_step(&real, Some(1), Pooling::Mean);
        }
    }

    #[test]
    fn layer_norm_matches_candle_fused_forward() {
        let mut rng = init::rng_for(1, "ln");
        use rand::Rng;
        let mut draw = |n: usize, scale: f32, centre: f32| -> Vec<f32> {
            (0..n).map(|_| centre + scale * rng.random_range(-1.0f32..1.0)).collect()
        };
        let x = Tensor::from_vec(draw(3 * 5 * 64, 3.0, 0.5), (3, 5, 64), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(draw(64, 0.2, 1.0), 64, &Device::Cpu).unwrap();
        let b = Tensor::from_vec(draw(64, 0.2, 0.0), 64, &Device::Cpu).unwrap();
        let stock = candle_nn::LayerNorm::new(w.clone(), b.clone(), 1e-12);
        let ours = layer_norm_basic(&x, &w, &b, 1e-12).unwrap();
        let theirs = candle_core::Module::forward(&stock, &x).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-5, "{}", max_diff(&ours, &theirs));
    }

    #[test]
    fn fused_gelu_matches_candle_forward_and_gradient() {
        let x = Var::new((-600..600).map(|i| i as f32 / 80.0).collect::<Vec<_>>(), &Device::Cpu).unwrap();
        let w = Tensor::new((0..1200).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), &Device::Cpu)
            .unwrap();
        let ours = gelu_erf(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-6);
        let g_ours = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d = max_diff(g_ours.get(x.as_tensor()).unwrap(), g_theirs.get(x.as_tensor()).unwrap());
        assert!(d < 1e-5, "{d}");
    }

    /// Our hidden states against candle-transformers' `BertModel` on the same folder,
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

    /// Seconds per fine-tune step of all-MiniLM-L6-v2, batch 32 × 64 tokens (a benchmark,
    /// not a CI test):
    /// `CARGO_TARGET_DIR=/tmp/target-rel cargo test --release -p tempered-core --lib
    /// model::bert::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: needs models/all-MiniLM-L6-v2 and a release build"]
    fn bench_fine_tune_step() {
        let Some(dir) = minilm() else { return };
        let text = "a sprawling , ambitious and often very funny story about love and loss , told with care \
                    by actors who are all at their best , and a plot that never quite lets go of you "
            .repeat(2);
        let texts = vec![text.as_str(); 32];
        let y = Tensor::new(&[0u32, 1].repeat(16)[..], &Device::Cpu).unwrap();
        // Process CPU seconds (Linux), which a busy machine inflates less than wall time.
        fn cpu_seconds() -> f64 {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
            let f: Vec<f64> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect();
            f.get(11).zip(f.get(12)).map_or(f64::NAN, |(u, s)| (u + s) / 100.0)
        }
        // The fastest of `n` runs (the machine may be shared) and the mean CPU seconds.
        let best = |n: usize, f: &mut dyn FnMut()| {
            f();
            let cpu = cpu_seconds();
            let wall = (0..n)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min);
            (wall, (cpu_seconds() - cpu) / n as f64)
        };
        // Calibration: one FFN-sized matmul, and candle-transformers' forward of the same batch.
        let a = Tensor::ones((2048, 384), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::ones((1536, 384), DType::F32, &Device::Cpu).unwrap();
        let (mm, _) = best(5, &mut || drop(a.matmul(&w.t().unwrap()).unwrap()));
        eprintln!("matmul 2048x384 @ 384x1536: {:.1} GFLOP/s", 2.0 * 2048.0 * 384.0 * 1536.0 / mm / 1e9);
        {
            use candle_transformers::models::bert as reference;
            let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
            let rc: reference::Config = serde_json::from_str(&text).unwrap();
            let weights = [dir.join("model.safetensors")];
            let vb = unsafe {
                candle_nn::VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &Device::Cpu).unwrap()
            };
            let stock = reference::BertModel::load(vb, &rc).unwrap();
            let m = BertClassifier::load(
                &BertConfig { max_tokens: 64, ..cfg(&dir, None) },
                &dir,
                2,
                0,
                &Device::Cpu,
            )
            .unwrap();
            let ids = m.encode(&ExamplesRef::Text(texts.clone())).unwrap();
            let tt = ids.zeros_like().unwrap();
            let (t, cpu) = best(3, &mut || drop(stock.forward(&ids, &tt, None).unwrap()));
            eprintln!("candle-transformers BertModel forward: {t:.3} s ({cpu:.2} CPU s)");
        }
        for train_layers in [None, Some(2), Some(1)] {
            let c = BertConfig { max_tokens: 64, ..cfg(&dir, train_layers) };
            let m = BertClassifier::load(&c, &dir, 2, 0, &Device::Cpu).unwrap();
            let t = std::time::Instant::now();
            let x = m.encode(&ExamplesRef::Text(texts.clone())).unwrap();
            let encode = t.elapsed().as_secs_f64();
            assert_eq!(x.dims(), &[32, 64]);
            // The trainer's optimiser (fused, in place), as a pipeline run uses it.
            let mut opt =
                crate::train::AdamW::new(m.trainable(), ParamsAdamW { lr: 1e-5, ..Default::default() })
                    .unwrap();
            let mut step = || {
                let logits = m.forward(&x, Mode::TRAIN).unwrap();
                let grads = candle_nn::loss::cross_entropy(&logits, &y).unwrap().backward().unwrap();
                opt.step(&grads).unwrap();
            };
            let (per_step, step_cpu) = best(3, &mut step);
            let (forward, forward_cpu) = best(3, &mut || drop(m.forward(&x, Mode::EVAL).unwrap()));
            eprintln!(
                "train_layers {train_layers:?}: step {per_step:.3} s ({step_cpu:.2} CPU s), forward {forward:.3} s \
                 ({forward_cpu:.2} CPU s), tokenise {encode:.4} s; {} trainable tensors",
                m.trainable().len()
            );
        }
    }
}
