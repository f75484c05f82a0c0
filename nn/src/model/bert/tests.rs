//! What the tests of every part of the BERT models share (the tiny folder, the real one
//! when `just models` installed it, comparisons of tensors), and the fine-tune benchmark.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::ParamsAdamW;

use super::{BertClassifier, BertConfig, Pooling, write_tiny_model};
use crate::examples::ExamplesRef;
use crate::model::{Classifier, Mode};

pub(super) const TEXTS: [&str; 4] = [
    "the film was great fun",
    "a boring plot and the worst acting",
    "not very good , but funny",
    "this movie is terrible !",
];
pub(super) const LABELS: [u32; 4] = [1, 0, 1, 0];

pub(super) fn tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 5).unwrap();
    dir
}

/// all-MiniLM-L6-v2 from `just models`, when it is there.
pub(super) fn minilm() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!("note: {} is absent (`just models`): real-weights checks skipped", dir.display());
        None
    }
}

pub(super) fn cfg(dir: &Path, train_layers: Option<usize>) -> BertConfig {
    BertConfig { path: dir.to_path_buf(), train_layers, max_tokens: 16, pooling: Pooling::Mean }
}

pub(super) fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

pub(super) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Seconds per fine-tune step of all-MiniLM-L6-v2, batch 32 × 64 tokens (a benchmark,
/// not a CI test):
/// `CARGO_TARGET_DIR=/tmp/target-rel cargo test --release -p tempered-nn --lib
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
        let m =
            BertClassifier::load(&BertConfig { max_tokens: 64, ..cfg(&dir, None) }, &dir, 2, 0, &Device::Cpu)
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
            crate::train::AdamW::new(m.trainable(), ParamsAdamW { lr: 1e-5, ..Default::default() }).unwrap();
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
