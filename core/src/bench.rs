//! `tempered bench`: training throughput of the shared trainer, clean and adversarial,
//! measured in one process so the ratio between them is meaningful.
//!
//! The adversarial epoch uses a real plugin attack through the C ABI (every PGD step is an
//! FFI round trip into the plugin and back into the host's oracle), exactly as
//! `tempered run` does.

use std::time::Instant;

use crate::data::Dataset;
use crate::engine;
use crate::model::{Classifier, Mlp, TabularModelConfig};
use crate::pipeline::{AttackConfig, Pipeline, Spec};
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
    let timer = Timer::new("tempered-bench", epochs, 256, 1e-3, 1e-4)?;
    let clean_rate = timer.rate(&model, &dataset, None, pipeline.seed())?;

    let (_, probs) = evaluate::predict(&model, &dataset.test.x, 1024)?;
    let scores: Vec<f32> = probs.iter().map(|p| p[1]).collect();
    let labels: Vec<bool> = dataset.test.y.iter().map(|&y| y == 1).collect();
    let pr_auc = CleanMetrics::from_binary_scores(&scores, &labels, 0.5).pr_auc.unwrap_or(f64::NAN);

    let input_grad_micros = input_grad_timings(&model, &dataset)?;

    let attack = create_attack(pipeline, &spec.attacks, attack_id, overrides)?;
    let schema = engine::tabular_schema(&data.features);
    let mut adversary = BenchAdversary {
        handle: attack.handle,
        ctx: BatchContext {
            modality: tempered_plugin::Modality::Tabular,
            schema: Some(&schema),
            sample_rate: 0,
            seed: 0,
            query_budget: None,
            encoder: None,
        },
    };
    let adv_rate = timer.rate(&model, &dataset, Some(&mut adversary), pipeline.seed())?;
    Ok(BenchResult {
        threads: candle_core::utils::get_num_threads(),
        train_examples: dataset.train.len(),
        clean_samples_per_sec: clean_rate,
        adversarial_samples_per_sec: adv_rate,
        test_pr_auc: pr_auc,
        attack: attack.label,
        input_grad_micros,
    })
}

/// Trains with the bench's fixed settings (no early stopping, every example attacked,
/// weight 0.5 when adversarial) in a scratch checkpoint folder, and times the epochs.
struct Timer {
    fit: Fit,
    dir: std::path::PathBuf,
}

impl Timer {
    fn new(tag: &str, epochs: usize, batch_size: usize, lr: f64, weight_decay: f64) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let fit = Fit {
            epochs,
            batch_size,
            lr,
            weight_decay,
            patience: 0,
            adversarial_weight: 0.0,
            share: 1.0,
            clean_epochs: 0,
            validation_attack_examples: 0,
        };
        Ok(Self { fit, dir })
    }

    /// Training examples per second over the epochs alone (not validation or checkpoints):
    /// clean without `adversary`, PGD-AT with it.
    fn rate(
        &self,
        model: &dyn Classifier,
        data: &Dataset,
        adversary: Option<&mut dyn Adversary>,
        seed: u64,
    ) -> Result<f64> {
        let (phase, weight) =
            if adversary.is_some() { ("bench-adversarial", 0.5) } else { ("bench-clean", 0.0) };
        let fit = Fit { adversarial_weight: weight, ..self.fit.clone() };
        let ck = Checkpoints { dir: self.dir.clone(), phase: phase.into() };
        let state = train::fit(model, data, &fit, adversary, seed, &ck)?;
        let seconds: f64 = state.log.iter().map(|e| e.seconds).sum();
        Ok(data.train.len() as f64 * fit.epochs as f64 / seconds)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pipeline's `[[attack]]` `attack_id`, created with `overrides` applied to its params.
struct BenchAttack {
    handle: crate::plugin_host::AttackHandle,
    params: serde_json::Value,
    /// `plugin/attack {params}`, for the printout.
    label: String,
}

fn create_attack(
    pipeline: &Pipeline,
    attacks: &[AttackConfig],
    attack_id: &str,
    overrides: &serde_json::Map<String, serde_json::Value>,
) -> Result<BenchAttack> {
    let config = attacks
        .iter()
        .find(|a| a.id == attack_id)
        .ok_or_else(|| Error::msg(format!("the pipeline has no [[attack]] `{attack_id}`")))?;
    let mut params = serde_json::to_value(&config.params).expect("TOML is JSON");
    if let Some(p) = params.as_object_mut() {
        p.extend(overrides.clone());
    }
    let handle = engine::load_plugin(pipeline, config)?.create(&config.attack, &params)?;
    let label = format!("{}/{} {}", config.plugin, config.attack, params);
    Ok(BenchAttack { handle, params, label })
}

/// Times the oracle's two input-gradient paths on the same batch, interleaved so that
/// machine load hits both alike.
fn input_grad_timings(model: &Mlp, data: &Dataset) -> Result<(f64, f64)> {
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
    let t = &spec.train;
    let timer = Timer::new("tempered-bench-audio", epochs, t.batch_size, t.lr, t.weight_decay)?;
    let clean_rate = timer.rate(&model, &dataset, None, pipeline.seed())?;
    let (pred, _) = evaluate::predict(&model, &dataset.test.x, 256)?;
    let right = pred.iter().zip(&dataset.test.y).filter(|(p, y)| p == y).count();
    let test_accuracy = right as f64 / dataset.test.len().max(1) as f64;

    let attack = create_attack(pipeline, &spec.attacks, attack_id, overrides)?;
    let steps = attack.params.get("steps").and_then(|s| s.as_u64()).unwrap_or(10);
    let mut adversary = BenchAdversary {
        handle: attack.handle,
        ctx: BatchContext {
            modality: tempered_plugin::Modality::Audio,
            schema: None,
            sample_rate: data.sample_rate,
            seed: 0,
            query_budget: None,
            encoder: None,
        },
    };
    let adv_rate = timer.rate(&model, &dataset, Some(&mut adversary), pipeline.seed())?;
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
        attack: attack.label,
    })
}
