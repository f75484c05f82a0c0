//! `tempered bench`: training throughput of the shared trainer, clean and adversarial,
//! measured in one process so the ratio between them is meaningful.
//!
//! The adversarial epoch uses a real plugin attack through the C ABI (every PGD step is an
//! FFI round trip into the plugin and back into the host's oracle), exactly as
//! `tempered run` does. The data and model are the pipeline's, prepared by its modality
//! as a run prepares them.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::data::{Dataset, Examples};
use crate::engine;
use crate::modality::{self, Setup};
use crate::model::Classifier;
use crate::pipeline::{AttackConfig, Pipeline};
use crate::plugin_host::BatchContext;
use crate::report::CleanMetrics;
use crate::train::{self, Adversary, Checkpoints, Fit};
use crate::{Error, Result};

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The pipeline's `[[attack]]` that makes the adversarial examples.
    pub attack: String,
    /// The attack's `steps`.
    pub steps: u32,
    /// Budgets by param name (`epsilon`, `snr_db`): the modality says which one its
    /// attacks take ([`Task::bench_budget`]).
    pub budgets: BTreeMap<String, f64>,
    pub epochs: usize,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub threads: usize,
    pub train_examples: usize,
    /// Values per example (the model's input width; 0 for text).
    pub width: usize,
    pub params: usize,
    pub batch_size: usize,
    pub clean_per_sec: f64,
    pub adversarial_per_sec: f64,
    pub steps: u64,
    /// The clean model on the test split, after the clean epochs.
    pub test: CleanMetrics,
    /// `plugin/attack {params}`, for the printout.
    pub attack: String,
    /// One input-gradient call on a 256-row batch: (autograd, hand-written) microseconds,
    /// when the model has a hand-written one.
    pub input_grad_micros: Option<(f64, f64)>,
}

impl BenchResult {
    pub fn ratio(&self) -> f64 {
        self.clean_per_sec / self.adversarial_per_sec
    }
}

/// Times `epochs` clean epochs of the pipeline's model on its train split, then `epochs`
/// PGD-AT epochs against `opts.attack` with its `steps` and budget overridden.
pub fn run(pipeline: &Pipeline, opts: &BenchOptions) -> Result<BenchResult> {
    let t = pipeline.spec.train();
    let timer = Timer::new("tempered-bench", opts.epochs, t.batch_size, t.lr, t.weight_decay)?;
    let device = engine::device(pipeline.spec.pipeline().device)?;
    let task = modality::prepare(pipeline, &Setup { device: &device, checkpoints: &timer.dir })?;
    let budget = task.bench_budget().ok_or_else(|| {
        Error::msg(format!("tempered bench has no attack budget to set for {} pipelines", task.modality()))
    })?;
    let value = opts.budgets.get(budget).ok_or_else(|| Error::msg(format!("no `{budget}` given")))?;
    let mut overrides = serde_json::Map::new();
    overrides.insert("steps".into(), opts.steps.into());
    overrides.insert(budget.into(), (*value).into());

    let (model, data) = (task.parts().model.as_ref(), &task.parts().dataset);
    let clean_rate = timer.rate(model, data, None, pipeline.seed())?;
    let (test, _) = engine::clean_metrics(task.as_ref(), &data.test)?;
    let input_grad_micros = input_grad_timings(model, data)?;

    let attack = create_attack(pipeline, pipeline.spec.attacks(), &opts.attack, &overrides)?;
    let steps = attack.params.get("steps").and_then(|s| s.as_u64()).unwrap_or(10);
    let mut adversary =
        BenchAdversary { handle: attack.handle, ctx: modality::context(task.as_ref(), 0, None) };
    let adv_rate = timer.rate(model, data, Some(&mut adversary), pipeline.seed())?;
    let width = match &data.train.x {
        Examples::Dense { width, .. } => *width,
        Examples::Text(_) => 0,
    };
    Ok(BenchResult {
        threads: candle_core::utils::get_num_threads(),
        train_examples: data.train.len(),
        width,
        params: crate::model::n_params(model),
        batch_size: t.batch_size,
        clean_per_sec: clean_rate,
        adversarial_per_sec: adv_rate,
        steps,
        test,
        attack: attack.label,
        input_grad_micros,
    })
}

/// Trains with the pipeline's batch size, learning rate and weight decay, and the bench's
/// fixed settings (no early stopping, every example attacked, weight 0.5 when adversarial)
/// in a scratch checkpoint folder, and times the epochs.
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
            trades_beta: None,
            stop_on_robust_accuracy: false,
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
    let handle =
        engine::load_plugin(pipeline, config)?.create(&config.attack, &params, &pipeline.base_dir)?;
    let label = format!("{}/{} {}", config.plugin, config.attack, params);
    Ok(BenchAttack { handle, params, label })
}

/// Times the oracle's two input-gradient paths on the same batch, interleaved so that
/// machine load hits both alike; `None` when the model has no hand-written one.
fn input_grad_timings(model: &dyn Classifier, data: &Dataset) -> Result<Option<(f64, f64)>> {
    let idx: Vec<usize> = (0..256.min(data.train.len())).collect();
    let part = data.train.select(&idx);
    let Examples::Dense { data: x, .. } = &part.x else { return Ok(None) };
    let (mut loss, mut grad) = (vec![0f32; idx.len()], vec![0f32; x.len()]);
    if !model.dense_input() || model.input_loss_grad(x, &part.y, &mut loss, &mut grad).is_none() {
        return Ok(None);
    }
    let (mut autograd, mut manual) = (0f64, 0f64);
    // 200 rounds of a small MLP take a fraction of a second; a waveform CNN's take minutes,
    // and a few rounds already say what the ratio is.
    let (mut rounds, started) = (0, Instant::now());
    while rounds < 200 && (rounds < 3 || started.elapsed().as_secs_f64() < 2.0) {
        let t = Instant::now();
        crate::model::input_loss_grad_autograd(model, &part.x.view(), &part.y)?;
        autograd += t.elapsed().as_secs_f64();
        let t = Instant::now();
        model.input_loss_grad(x, &part.y, &mut loss, &mut grad).expect("checked above")?;
        manual += t.elapsed().as_secs_f64();
        rounds += 1;
    }
    Ok(Some((autograd / rounds as f64 * 1e6, manual / rounds as f64 * 1e6)))
}

struct BenchAdversary<'a> {
    handle: crate::plugin_host::AttackHandle,
    ctx: BatchContext<'a>,
}

impl Adversary for BenchAdversary<'_> {
    fn generate(&mut self, model: &dyn Classifier, x: &Examples, y: &[u32], seed: u64) -> Result<Examples> {
        Ok(self.handle.perturb(model, x, y, BatchContext { seed, ..self.ctx })?.examples)
    }
}
