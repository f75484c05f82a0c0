//! A tiny BERT folder in the real Hugging Face format, for tests that need a BERT
//! without downloading one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use crate::model::params;
use crate::{Error, Result};

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
        let mut rng = params::rng_for(seed, &name);
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| centre + rng.random_range(-bound..=bound)).collect();
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path)
        .map_err(|e| Error::from(e).context(path.display().to_string()))?;
    Ok(())
}
