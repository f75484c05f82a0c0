//! `tempered bench`: training throughput of the shared trainer, clean and adversarial,
//! measured in one process so the ratio between them is meaningful.
//!
//! The adversarial epoch uses a real plugin attack through the C ABI (every PGD step is an
//! FFI round trip into the plugin and back into the host's oracle), exactly as
//! `tempered run` does. The data and model are the pipeline's, prepared by its modality
//! as a run prepares them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::data::{Dataset, Examples};
use crate::engine;
use crate::modality::{self, Setup};
use crate::model::Classifier;
use crate::pipeline::{AttackConfig, Pipeline, Spec, TrainConfig};
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

/// The adversarial rows' share of the loss in a PGD-AT epoch; the clean rows carry the rest.
pub const ADVERSARIAL_WEIGHT: f64 = 0.5;

impl BenchResult {
    pub fn ratio(&self) -> f64 {
        self.clean_per_sec / self.adversarial_per_sec
    }

    /// What `tempered bench --json` prints: one object, rates in examples per second, for
    /// scripts that compare against a reference (benches/pytorch).
    pub fn to_json(&self, pipeline: &Path, epochs: usize) -> serde_json::Value {
        serde_json::json!({
            "pipeline": pipeline.display().to_string(),
            "threads": self.threads,
            "train_examples": self.train_examples,
            "width": self.width,
            "params": self.params,
            "batch_size": self.batch_size,
            "epochs": epochs,
            "attack": self.attack,
            "steps": self.steps,
            "adversarial_weight": ADVERSARIAL_WEIGHT,
            "clean_per_sec": self.clean_per_sec,
            "adversarial_per_sec": self.adversarial_per_sec,
            "ratio_clean_over_adversarial": self.ratio(),
            "test": {
                "examples": self.test.examples,
                "accuracy": self.test.accuracy,
                "pr_auc": self.test.pr_auc,
            },
            "input_grad_micros": self.input_grad_micros.map(|(autograd, hand_written)| {
                serde_json::json!({ "autograd": autograd, "hand_written": hand_written })
            }),
        })
    }
}

/// Times `epochs` clean epochs of the pipeline's model on its train split, then `epochs`
/// PGD-AT epochs against `opts.attack` with its `steps` and budget overridden.
pub fn run(pipeline: &Pipeline, opts: &BenchOptions) -> Result<BenchResult> {
    let t = pipeline.spec.train();
    let timer = Timer::new("tempered-bench", t, opts.epochs)?;
    let device = engine::device(pipeline.spec.pipeline().device)?;
    let task = modality::prepare(pipeline, &Setup { device: &device, checkpoints: &timer.dir })?;
    let budget = task.bench_budget().ok_or_else(|| {
        Error::invalid(format!(
            "tempered bench has no attack budget to set for {} pipelines",
            task.modality()
        ))
    })?;
    let value = opts.budgets.get(budget).ok_or_else(|| Error::invalid(format!("no `{budget}` given")))?;
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
    let width = data.train.x.width().unwrap_or(0);
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
    /// `[train]`'s optimiser for `epochs` epochs, all of them timed (no early stop).
    fn new(tag: &str, train: &TrainConfig, epochs: usize) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let fit = Fit { epochs, patience: 0, ..engine::clean_fit(train) };
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
        let (phase, weight) = if adversary.is_some() {
            ("bench-adversarial", ADVERSARIAL_WEIGHT)
        } else {
            ("bench-clean", 0.0)
        };
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

/// `tempered bench --export-rows`: everything a reference implementation needs to time the
/// same epochs on the same rows, as JSON: the training rows exactly as `run` trains on them
/// (raw units, the pipeline's split), the columns with their standardisation and bounds,
/// the table's constraints, the model's initial weights, the optimiser settings and the
/// attack's params with the bench's overrides. Returns the number of rows written.
pub fn export_rows(pipeline: &Pipeline, opts: &BenchOptions, file: &Path) -> Result<usize> {
    let Spec::Tabular(spec) = &pipeline.spec else {
        return Err(Error::invalid(format!(
            "--export-rows writes tabular rows; this is a {} pipeline",
            pipeline.spec.modality()
        )));
    };
    // The columns' bounds and the constraints are the loader's; the rows and weights come
    // from the task exactly as `run` prepares it, and the two must agree.
    let table = crate::data::tabular::load(&spec.data, &pipeline.base_dir, pipeline.seed())?;
    let t = pipeline.spec.train();
    let timer = Timer::new("tempered-bench-export", t, opts.epochs)?;
    let device = engine::device(pipeline.spec.pipeline().device)?;
    let task = modality::prepare(pipeline, &Setup { device: &device, checkpoints: &timer.dir })?;
    let (model, data) = (task.parts().model.as_ref(), &task.parts().dataset);
    // The export holds every training row: rows on disk are read whole here.
    let (x, width) = match &data.train.x {
        Examples::Dense { data, width } => (std::borrow::Cow::Borrowed(data), *width),
        Examples::Stored(rows) => (std::borrow::Cow::Owned(rows.range(0, rows.len())?), rows.width()),
        Examples::Text(_) => return Err(Error::invalid("a tabular task without dense rows")),
    };
    if *x != *table.train.values()? || data.train.y != table.train.y {
        return Err(Error::invalid("the loader's training rows differ from the task's"));
    }
    let budget = task.bench_budget().unwrap_or("epsilon");
    let value = opts.budgets.get(budget).ok_or_else(|| Error::invalid(format!("no `{budget}` given")))?;
    let config = pipeline
        .spec
        .attacks()
        .iter()
        .find(|a| a.id == opts.attack)
        .ok_or_else(|| Error::invalid(format!("the pipeline has no [[attack]] `{}`", opts.attack)))?;
    let mut params = serde_json::to_value(&config.params).expect("TOML is JSON");
    if let Some(p) = params.as_object_mut() {
        p.insert("steps".into(), opts.steps.into());
        p.insert(budget.into(), (*value).into());
    }
    let mut init = Vec::new();
    for (name, tensor) in crate::model::tensors(model) {
        let values = tensor.flatten_all()?.to_vec1::<f32>()?;
        init.push(serde_json::json!({ "name": name, "shape": tensor.dims(), "data": values }));
    }
    let adam = candle_nn::ParamsAdamW::default();
    let json = serde_json::json!({
        "format": "tempered-bench-rows/1",
        "pipeline": pipeline.spec.pipeline().name,
        "seed": pipeline.seed(),
        "epochs": opts.epochs,
        "batch_size": t.batch_size,
        "optimizer": {
            "kind": "adamw",
            "lr": t.lr,
            "weight_decay": t.weight_decay,
            "beta1": adam.beta1,
            "beta2": adam.beta2,
            "eps": adam.eps,
        },
        "adversarial_weight": ADVERSARIAL_WEIGHT,
        "attack": { "plugin": config.plugin, "attack": config.attack, "params": params },
        "features": table.features,
        "constraints": table.constraints,
        "n_classes": data.n_classes,
        "width": width,
        "model": task.parts().model.name(),
        "init": init,
        "train": { "rows": data.train.len(), "x": x, "y": data.train.y },
    });
    let bytes = serde_json::to_vec(&json).map_err(|e| Error::external("cannot write JSON", e))?;
    crate::files::write(file, &bytes)?;
    Ok(data.train.len())
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
        .ok_or_else(|| Error::invalid(format!("the pipeline has no [[attack]] `{attack_id}`")))?;
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
    let part = data.train.select(&idx)?;
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
        crate::model::input_loss_grad_autograd(model, &part.x.view()?, &part.y)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(input_grad_micros: Option<(f64, f64)>) -> BenchResult {
        let test = serde_json::json!({ "accuracy": 0.97, "examples": 1661, "pr_auc": 0.94 });
        BenchResult {
            threads: 1,
            train_examples: 3987,
            width: 30,
            params: 6274,
            batch_size: 256,
            clean_per_sec: 1.5e6,
            adversarial_per_sec: 1.2e5,
            steps: 10,
            test: serde_json::from_value(test).unwrap(),
            attack: "tabular/pgd {\"epsilon\":0.1}".into(),
            input_grad_micros,
        }
    }

    /// What `--json` prints is one line that parses back with every field scripts read.
    #[test]
    fn the_json_result_has_the_fields_scripts_read() {
        for grads in [Some((355.0, 94.0)), None] {
            let line = result(grads).to_json(Path::new("pipelines/fraud.toml"), 3).to_string();
            assert!(!line.contains('\n'));
            let j: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(j["pipeline"], "pipelines/fraud.toml");
            assert_eq!(j["epochs"], 3);
            assert_eq!(j["threads"], 1);
            assert_eq!(j["train_examples"], 3987);
            assert_eq!(j["batch_size"], 256);
            assert_eq!(j["steps"], 10);
            assert_eq!(j["clean_per_sec"], 1.5e6);
            assert_eq!(j["adversarial_per_sec"], 1.2e5);
            assert_eq!(j["ratio_clean_over_adversarial"], 12.5);
            assert_eq!(j["adversarial_weight"], ADVERSARIAL_WEIGHT);
            assert_eq!(j["test"]["pr_auc"], 0.94);
            match grads {
                Some(_) => assert_eq!(j["input_grad_micros"]["hand_written"], 94.0),
                None => assert!(j["input_grad_micros"].is_null()),
            }
        }
    }
}
