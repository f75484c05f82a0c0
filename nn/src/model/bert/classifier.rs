//! The fine-tunable BERT text classifier: encoder, pooling and a seeded linear head.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use tempered_plugin::words::{word_count, word_spans};

use super::CHUNK;
use super::config::{BertConfig, Pooling, read_config};
use super::layers::{Linear, Param};
use super::network::{Bert, mean_pool};
use super::tokenizer::Tok;
use super::weights::Weights;
use crate::examples::ExamplesRef;
use crate::model::params::ParamBuilder;
use crate::model::{Classifier, Mode};
use crate::{Error, Result};

pub struct BertClassifier {
    pub(super) bert: Bert,
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
        let pb = ParamBuilder::new(seed, device);
        let bert =
            Bert::load(&hf, act, &mut weights, &pb, first_trained, cfg.train_layers.is_none(), tok.pad_id)?;
        let h = hf.hidden_size;
        let pooler = match cfg.pooling {
            Pooling::Cls if weights.has("pooler.dense.weight") => {
                Some(weights.linear(&pb, "pooler.dense", h, h)?)
            }
            _ => None,
        };
        // PyTorch's nn.Linear default: U(±1/√fan_in).
        let bound = 1.0 / (h as f32).sqrt();
        let classifier = pb.pp("classifier");
        let head = Linear {
            w: Param { var: classifier.uniform("weight", &[n_classes, h], bound)?, train: true },
            b: Param { var: classifier.uniform("bias", &[n_classes], bound)?, train: true },
        };
        let (varmap, trainable) = pb.build();
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
                .ok_or_else(|| Error::Internal("no gradient reached the embeddings"))?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    use super::super::load_classifier;
    use super::super::tests::{LABELS, TEXTS, cfg, max_diff, minilm, tiny, values};
    use super::*;

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
}
