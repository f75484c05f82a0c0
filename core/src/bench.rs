//! `tempered bench`: training throughput of the shared trainer, clean and adversarial,
//! measured in one process so the ratio between them is meaningful.
//!
//! The adversarial epoch uses a real plugin attack through the C ABI (every PGD step is an
//! FFI round trip into the plugin and back into the host's oracle), exactly as
//! `tempered run` does.

use std::time::Instant;

use crate::data::Dataset;
use crate::engine;
use crate::model::{Mlp, TabularModelConfig};
use crate::pipeline::{Pipeline, Spec};
use crate::plugin_host::BatchContext;
use crate::report::CleanMetrics;
use crate::train::{self, Adversary, Checkpoints, Fit};
use crate::{Error, Result, evaluate};

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub threads: usize,
    pub train_examples: usize,
    pub clean_samples_per_sec: f64,
    pub adversarial_samples_per_sec: f64,
    pub test_pr_auc: f64,
    pub attack: String,
    /// One input-gradient call on a 256-row batch: (autograd, hand-written) microseconds.
    pub input_grad_micros: (f64, f64),
}

impl BenchResult {
    pub fn ratio(&self) -> f64 {
        self.clean_samples_per_sec / self.adversarial_samples_per_sec
    }
}

/// Times `epochs` clean epochs, then `epochs` adversarial epochs against the pipeline's
/// `attack_id` with `overrides` applied to its params (e.g. `steps = 10, epsilon = 0.1`).
pub fn tabular(
    pipeline: &Pipeline,
    attack_id: &str,
    overrides: &serde_json::Map<String, serde_json::Value>,
    epochs: usize,
) -> Result<BenchResult> {
    let Spec::Tabular(spec) = &pipeline.spec else {
        return Err(Error::msg("tempered bench measures tabular pipelines"));
    };
    let data = crate::data::tabular::load(&spec.data, &pipeline.base_dir, pipeline.seed())?;
    let width = data.features.len();
    let split = |s: &crate::data::tabular::Split| crate::data::Labelled {
        x: crate::data::Examples::Dense { data: s.x.clone(), width },
        y: s.y.clone(),
    };
    let dataset = Dataset {
        n_classes: data.n_classes,
        train: split(&data.train),
        validation: split(&data.validation),
        test: split(&data.test),
    };
    let mean: Vec<f32> = data.features.iter().map(|f| f.mean).collect();
    let std: Vec<f32> = data.features.iter().map(|f| f.std).collect();
    let cfg = TabularModelConfig { hidden: vec![64, 64], ..Default::default() };
    let device = engine::device(spec.pipeline.device)?;
    let model = Mlp::new(&cfg, &mean, &std, data.n_classes, pipeline.seed(), &device)?;
    let tmp = std::env::temp_dir().join(format!("tempered-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let fit = |adversarial_weight: f64| Fit {
        epochs,
        batch_size: 256,
        lr: 1e-3,
        weight_decay: 1e-4,
        patience: 0,
        adversarial_weight,
        share: 1.0,
        clean_epochs: 0,
        validation_attack_examples: 0,
    };
    let epoch_seconds = |s: &train::TrainState| s.log.iter().map(|e| e.seconds).sum::<f64>();
    let n = dataset.train.len() as f64;

    let ck = Checkpoints { dir: tmp.clone(), phase: "bench-clean".into() };
    let clean = train::fit(&model, &dataset, &fit(0.0), None, pipeline.seed(), &ck)?;
    let clean_rate = n * epochs as f64 / epoch_seconds(&clean);

    let (_, probs) = evaluate::predict(&model, &dataset.test.x, 1024)?;
    let scores: Vec<f32> = probs.iter().map(|p| p[1]).collect();
    let labels: Vec<bool> = dataset.test.y.iter().map(|&y| y == 1).collect();
    let pr_auc = CleanMetrics::from_binary_scores(&scores, &labels, 0.5).pr_auc.unwrap_or(f64::NAN);

    let input_grad_micros = input_grad_timings(&model, &dataset)?;

    let config = spec
        .attacks
        .iter()
        .find(|a| a.id == attack_id)
        .ok_or_else(|| Error::msg(format!("the pipeline has no [[attack]] `{attack_id}`")))?;
    let mut params = serde_json::to_value(&config.params).expect("TOML is JSON");
    if let Some(p) = params.as_object_mut() {
        p.extend(overrides.clone());
    }
    let plugin = engine::load_plugin(pipeline, config)?;
    let handle = plugin.create(&config.attack, &params)?;
    let schema = engine::tabular_schema(&data.features);
    let mut adversary = BenchAdversary {
        handle,
        ctx: BatchContext {
            modality: tempered_plugin::Modality::Tabular,
            schema: Some(&schema),
            sample_rate: 0,
            seed: 0,
            query_budget: None,
            encoder: None,
        },
    };
    let ck = Checkpoints { dir: tmp.clone(), phase: "bench-adversarial".into() };
    let started = Instant::now();
    let adv = train::fit(&model, &dataset, &fit(0.5), Some(&mut adversary), pipeline.seed(), &ck)?;
    tracing::debug!("adversarial phase took {:.2} s in all", started.elapsed().as_secs_f64());
    let adv_rate = n * epochs as f64 / epoch_seconds(&adv);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(BenchResult {
        threads: candle_core::utils::get_num_threads(),
        train_examples: dataset.train.len(),
        clean_samples_per_sec: clean_rate,
        adversarial_samples_per_sec: adv_rate,
        test_pr_auc: pr_auc,
        attack: format!("{}/{} {}", config.plugin, config.attack, params),
        input_grad_micros,
    })
}

/// Times the oracle's two input-gradient paths on the same batch, interleaved so that
/// machine load hits both alike.
fn input_grad_timings(model: &Mlp, data: &Dataset) -> Result<(f64, f64)> {
    use crate::model::Classifier;
    let idx: Vec<usize> = (0..256.min(data.train.len())).collect();
    let part = data.train.select(&idx);
    let crate::data::Examples::Dense { data: x, .. } = &part.x else { unreachable!("tabular rows") };
    let (mut loss, mut grad) = (vec![0f32; idx.len()], vec![0f32; x.len()]);
    let (mut autograd, mut manual) = (0f64, 0f64);
    let rounds = 200;
    for _ in 0..rounds {
        let t = Instant::now();
        crate::plugin_host::oracle::input_loss_grad_autograd(model, &part.x.view(), &part.y)?;
        autograd += t.elapsed().as_secs_f64();
        let t = Instant::now();
        model.input_loss_grad(x, &part.y, &mut loss, &mut grad).expect("the MLP has a CPU fast path")?;
        manual += t.elapsed().as_secs_f64();
    }
    Ok((autograd / rounds as f64 * 1e6, manual / rounds as f64 * 1e6))
}

struct BenchAdversary<'a> {
    handle: crate::plugin_host::AttackHandle,
    ctx: BatchContext<'a>,
}

impl Adversary for BenchAdversary<'_> {
    fn generate(
        &mut self,
        model: &dyn crate::model::Classifier,
        x: &crate::data::Examples,
        y: &[u32],
        seed: u64,
    ) -> Result<crate::data::Examples> {
        Ok(self.handle.perturb(model, x, y, BatchContext { seed, ..self.ctx })?.examples)
    }
}

/// What [`audio`] measured: waveforms per second, clean and adversarial.
#[derive(Debug, Clone)]
pub struct AudioBenchResult {
    pub threads: usize,
    pub train_examples: usize,
    pub width: usize,
    pub params: usize,
    pub batch_size: usize,
    pub clean_per_sec: f64,
    pub adversarial_per_sec: f64,
    pub steps: u64,
    /// Clean test accuracy after the clean epochs.
    pub test_accuracy: f64,
    pub attack: String,
}

impl AudioBenchResult {
    pub fn ratio(&self) -> f64 {
        self.clean_per_sec / self.adversarial_per_sec
    }
}

/// Times `epochs` clean epochs of the pipeline's M5 on its train split, then `epochs`
/// PGD-AT epochs (adversarial weight 0.5, every example attacked) against the pipeline's
/// `attack_id` with `overrides` applied to its params (e.g. `steps = 10, snr_db = 30`),
/// through the real plugin, with the pipeline's batch size.
pub fn audio(
    pipeline: &Pipeline,
    attack_id: &str,
    overrides: &serde_json::Map<String, serde_json::Value>,
    epochs: usize,
) -> Result<AudioBenchResult> {
    use crate::model::Classifier;
    let Spec::Audio(spec) = &pipeline.spec else {
        return Err(Error::msg("bench::audio measures audio pipelines"));
    };
    let data = crate::data::audio::load(&spec.data, &pipeline.base_dir, pipeline.seed())?;
    let width = data.length;
    let split = |s: &crate::data::audio::AudioSplit| crate::data::Labelled {
        x: crate::data::Examples::Dense { data: s.x.clone(), width },
        y: s.y.clone(),
    };
    let dataset = Dataset {
        n_classes: data.classes.len(),
        train: split(&data.train),
        validation: split(&data.validation),
        test: split(&data.test),
    };
    let device = engine::device(spec.pipeline.device)?;
    let model =
        crate::model::audio::M5::new(&spec.model, width, data.classes.len(), pipeline.seed(), &device)?;
    let tmp = std::env::temp_dir().join(format!("tempered-bench-audio-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let fit = |adversarial_weight: f64| Fit {
        epochs,
        batch_size: spec.train.batch_size,
        lr: spec.train.lr,
        weight_decay: spec.train.weight_decay,
        patience: 0,
        adversarial_weight,
        share: 1.0,
        clean_epochs: 0,
        validation_attack_examples: 0,
    };
    let epoch_seconds = |s: &train::TrainState| s.log.iter().map(|e| e.seconds).sum::<f64>();
    let n = dataset.train.len() as f64;
    let ck = Checkpoints { dir: tmp.clone(), phase: "bench-clean".into() };
    let clean = train::fit(&model, &dataset, &fit(0.0), None, pipeline.seed(), &ck)?;
    let clean_rate = n * epochs as f64 / epoch_seconds(&clean);
    let (pred, _) = evaluate::predict(&model, &dataset.test.x, 256)?;
    let right = pred.iter().zip(&dataset.test.y).filter(|(p, y)| p == y).count();
    let test_accuracy = right as f64 / dataset.test.len().max(1) as f64;

    let config = spec
        .attacks
        .iter()
        .find(|a| a.id == attack_id)
        .ok_or_else(|| Error::msg(format!("the pipeline has no [[attack]] `{attack_id}`")))?;
    let mut params = serde_json::to_value(&config.params).expect("TOML is JSON");
    if let Some(p) = params.as_object_mut() {
        p.extend(overrides.clone());
    }
    let steps = params.get("steps").and_then(|s| s.as_u64()).unwrap_or(10);
    let plugin = engine::load_plugin(pipeline, config)?;
    let handle = plugin.create(&config.attack, &params)?;
    let mut adversary = BenchAdversary {
        handle,
        ctx: BatchContext {
            modality: tempered_plugin::Modality::Audio,
            schema: None,
            sample_rate: data.sample_rate,
            seed: 0,
            query_budget: None,
            encoder: None,
        },
    };
    let ck = Checkpoints { dir: tmp.clone(), phase: "bench-adversarial".into() };
    let adv = train::fit(&model, &dataset, &fit(0.5), Some(&mut adversary), pipeline.seed(), &ck)?;
    let adv_rate = n * epochs as f64 / epoch_seconds(&adv);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(AudioBenchResult {
        threads: candle_core::utils::get_num_threads(),
        train_examples: dataset.train.len(),
        width,
        params: crate::model::n_params(&model as &dyn Classifier),
        batch_size: spec.train.batch_size,
        clean_per_sec: clean_rate,
        adversarial_per_sec: adv_rate,
        steps,
        test_accuracy,
        attack: format!("{}/{} {}", config.plugin, config.attack, params),
    })
}
