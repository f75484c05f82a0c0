//! Runs a pipeline: data → model → clean evaluation → attacks ("before") → adversarial
//! fine-tuning → attacks ("after") → report. Everything a phase produces is written to
//! the run directory as soon as the phase ends, so a failure later loses nothing and
//! `--resume` continues where the run stopped.

mod audio;
mod fingerprint;
mod rundir;
mod tabular;
mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use tempered_plugin::Modality;

use crate::data::Dataset;
use crate::evaluate::{self, Judge, Outcome};
use crate::model::Classifier;
use crate::pipeline::{AttackConfig, DeviceKind, OnError, Pipeline, SplitName, Strategy};
use crate::plugin_host::{AttackHandle, BatchContext, Plugin, Schema, SearchPath};
use crate::report::{
    self, AttackMetrics, CleanMetrics, HardeningStats, Metrics, Phase, Section, Skipped, SweepPoint,
};
use crate::train::{self, Adversary, Checkpoints, Fit};
use crate::{Error, Result};

pub use rundir::{RunDir, timestamp};
pub use tabular::schema as tabular_schema;

/// How `tempered run` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run directory (default: `<out_dir>/<name>/<timestamp>`).
    pub out: Option<PathBuf>,
    /// Continue the run in `out` from its checkpoints.
    pub resume: bool,
}

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct Finished {
    pub dir: PathBuf,
    pub metrics: Metrics,
}

/// A modality's data, model and judge, ready for the shared phases.
pub(crate) struct Task {
    pub dataset: Dataset,
    pub model: Box<dyn Classifier>,
    pub judge: Box<dyn Judge>,
    pub schema: Option<Schema>,
    pub sample_rate: u32,
    /// Text pipelines that name a sentence encoder.
    pub encoder: Option<Box<dyn crate::model::SentenceEncoder>>,
    /// Writes adversarial samples into the run directory (`samples/`), in the modality's
    /// own form (CSV rows, text pairs, wav files one can listen to).
    pub save_samples: fn(&Task, &Path, &str, &[evaluate::Sample]) -> Result<()>,
    /// Binary tasks with a "positive" class get PR-AUC and recall at 1 % FPR.
    pub positive_class: Option<u32>,
    /// Renders adversarial samples for report.md.
    pub render_samples: fn(&Task, &str, &[evaluate::Sample]) -> String,
}

impl Task {
    fn context(&self, modality: Modality, seed: u64, query_budget: Option<u64>) -> BatchContext<'_> {
        BatchContext {
            modality,
            schema: self.schema.as_ref(),
            sample_rate: self.sample_rate,
            seed,
            query_budget,
            encoder: self.encoder.as_deref(),
        }
    }
}

pub fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => {
            Device::new_cuda(0).map_err(|e| Error::msg(format!("cannot open CUDA device 0: {e}")))
        }
    }
}

/// An attack of the pipeline, loaded and created.
struct Loaded {
    config: AttackConfig,
    params: serde_json::Value,
    handle: AttackHandle,
}

fn to_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).expect("TOML values are JSON values")
}

/// Loads the plugin behind an `[[attack]]`.
pub fn load_plugin(pipeline: &Pipeline, config: &AttackConfig) -> Result<Plugin> {
    let plugin = match &config.path {
        Some(p) => {
            let path = pipeline.resolve(p);
            // Anything that exists goes to the loader, which says what is wrong with it.
            if std::fs::symlink_metadata(&path).is_err() {
                return Err(Error::plugin(
                    &config.plugin,
                    format!("no plugin library at {}", path.display()),
                ));
            }
            let plugin = Plugin::load(&path)?;
            if plugin.name != config.plugin {
                return Err(Error::plugin(
                    &config.plugin,
                    format!(
                        "{} declares the name `{}`: set `plugin = \"{}\"`",
                        path.display(),
                        plugin.name,
                        plugin.name
                    ),
                ));
            }
            plugin
        }
        None => search_path(pipeline).find(&config.plugin)?,
    };
    if plugin.modality != pipeline.spec.modality() {
        return Err(Error::plugin(
            &plugin.name,
            format!("is a {} plugin; this pipeline is {}", plugin.modality, pipeline.spec.modality()),
        ));
    }
    Ok(plugin)
}

pub fn search_path(pipeline: &Pipeline) -> SearchPath {
    let extra: Vec<PathBuf> =
        pipeline.spec.plugins().search_path.iter().map(|p| pipeline.resolve(p)).collect();
    SearchPath::new(&extra)
}

/// Loads every attack up front, so a missing or broken plugin fails the run before any
/// training time is spent (or is skipped, when its `on_error = "skip"`).
fn load_attacks(pipeline: &Pipeline) -> Result<(Vec<Loaded>, Vec<Skipped>)> {
    let mut loaded = Vec::new();
    let mut skipped = Vec::new();
    for config in pipeline.spec.attacks() {
        let params = to_json(&config.params);
        let made = load_plugin(pipeline, config).and_then(|p| {
            let handle = p.create(&config.attack, &params)?;
            check_attack(pipeline, config, &p)?;
            Ok(handle)
        });
        match made {
            Ok(handle) => loaded.push(Loaded { config: config.clone(), params, handle }),
            Err(e) if config.on_error == OnError::Skip => {
                tracing::warn!("attack `{}` skipped: {e}", config.id);
                skipped.push(Skipped { id: config.id.clone(), phase: Phase::Before, reason: e.to_string() });
            }
            Err(e) => return Err(e),
        }
    }
    Ok((loaded, skipped))
}

/// Merges `overrides` into a copy of `params`.
fn with_overrides(
    params: &serde_json::Value,
    overrides: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let mut p = params.clone();
    if let Some(obj) = p.as_object_mut() {
        for (k, v) in overrides {
            obj.insert(k.clone(), v.clone());
        }
    }
    p
}

/// The params the hardening attack is created with, when `config` is that attack: its
/// `[[attack]]` params, then the strategy's (FGSM: one step from a random start), then
/// `[harden] params`. `None` for any other attack, or when nothing is hardened.
fn harden_params(pipeline: &Pipeline, config: &AttackConfig) -> Option<serde_json::Value> {
    let harden = pipeline.spec.harden();
    if !harden.enabled || harden.strategy == Strategy::Clean || harden.attack.as_ref() != Some(&config.id) {
        return None;
    }
    let mut overrides = serde_json::Map::new();
    if harden.strategy == Strategy::Fgsm {
        overrides.insert("steps".into(), 1.into());
        overrides.insert("random_start".into(), true.into());
    }
    if let serde_json::Value::Object(m) = to_json(&harden.params) {
        overrides.extend(m);
    }
    Some(with_overrides(&to_json(&config.params), &overrides))
}

/// Creates (and drops) the attack `config` with every set of params the run will use
/// besides its own (hardening, each sweep point), so that the plugin checks them before any
/// training time is spent: a misspelt sweep `param` fails here, not after clean training.
pub fn check_attack(pipeline: &Pipeline, config: &AttackConfig, plugin: &Plugin) -> Result<()> {
    check_harden_attack(pipeline, config, plugin)?;
    let params = to_json(&config.params);
    for sweep in pipeline.spec.evaluate().sweeps.iter().filter(|s| s.attack == config.id) {
        for &value in &sweep.values {
            let mut o = serde_json::Map::new();
            o.insert(sweep.param.clone(), sweep_value(value));
            plugin.create(&config.attack, &with_overrides(&params, &o)).map_err(|e| {
                Error::msg(format!(
                    "[[evaluate.sweep]] of attack `{}` sets `{} = {value}`: {e}",
                    config.id, sweep.param
                ))
            })?;
        }
    }
    Ok(())
}

/// Creates (and drops) the attack `config` as hardening will, when it is the hardening
/// attack: the plugin checks those params now, before any training time is spent.
fn check_harden_attack(pipeline: &Pipeline, config: &AttackConfig, plugin: &Plugin) -> Result<()> {
    let Some(params) = harden_params(pipeline, config) else { return Ok(()) };
    match plugin.create(&config.attack, &params) {
        Ok(handle) => {
            drop(handle);
            Ok(())
        }
        Err(e) => Err(Error::msg(format!(
            "[harden] trains with attack `{}` ({:?} strategy, with [harden] params): {e}",
            config.id,
            pipeline.spec.harden().strategy
        ))),
    }
}

/// Trains on a plugin attack's examples. Only examples of the attack's `classes` are
/// attacked: hardening against a threat model (frauds posing as genuine) must not also
/// teach the model to resist attacks nobody makes (genuine rows posing as fraud), which
/// would move its boundary in the attacker's favour.
struct PluginAdversary<'a> {
    handle: AttackHandle,
    ctx: BatchContext<'a>,
    classes: Option<Vec<u32>>,
    /// Text: saves the generated examples into the run directory.
    record: Option<text::Recorder>,
    stats: HardeningStats,
}

/// How many examples of `a` differ from the same example of `b`.
fn changed(a: &crate::data::Examples, b: &crate::data::Examples) -> usize {
    use crate::data::Examples;
    match (a, b) {
        (Examples::Dense { data: x, width }, Examples::Dense { data: y, .. }) => {
            x.chunks(*width).zip(y.chunks(*width)).filter(|(u, v)| u != v).count()
        }
        (Examples::Text(x), Examples::Text(y)) => x.iter().zip(y).filter(|(u, v)| u != v).count(),
        _ => a.len().max(b.len()),
    }
}

impl Adversary for PluginAdversary<'_> {
    fn generate(
        &mut self,
        model: &dyn Classifier,
        x: &crate::data::Examples,
        y: &[u32],
        seed: u64,
    ) -> Result<crate::data::Examples> {
        let ctx = BatchContext { seed, ..self.ctx };
        let out = match &self.classes {
            None => {
                self.stats.examples += x.len();
                self.handle.perturb(model, x, y, ctx)?.examples
            }
            Some(classes) => {
                let idx: Vec<usize> = (0..y.len()).filter(|&i| classes.contains(&y[i])).collect();
                self.stats.examples += idx.len();
                let mut out = x.clone();
                if !idx.is_empty() {
                    let part_y: Vec<u32> = idx.iter().map(|&i| y[i]).collect();
                    let adv = self.handle.perturb(model, &x.select(&idx), &part_y, ctx)?.examples;
                    out.replace(&idx, &adv);
                }
                out
            }
        };
        self.stats.changed += changed(x, &out);
        if let Some(r) = &mut self.record {
            r.record(seed, x, y, &out)?;
        }
        Ok(out)
    }

    // The counters travel with the trainer's commits, so a resumed run reports the same.
    fn state(&self) -> serde_json::Value {
        serde_json::to_value(self.stats).expect("counters serialize")
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.stats = serde_json::from_value(state.clone())
            .map_err(|e| Error::msg(format!("the hardening counters of the checkpoint: {e}")))?;
        Ok(())
    }
}

/// Runs `pipeline` end to end.
pub fn run(pipeline: &Pipeline, opts: &RunOptions) -> Result<Finished> {
    let started = Instant::now();
    let dir = RunDir::create(pipeline, opts)?;
    tracing::info!("run directory: {}", dir.path.display());
    let mut seconds = BTreeMap::new();
    let t = Instant::now();
    let (attacks, skipped) = load_attacks(pipeline)?;
    let device = device(pipeline.spec.pipeline().device)?;
    let task = match &pipeline.spec {
        crate::pipeline::Spec::Tabular(spec) => tabular::prepare(pipeline, spec, &device)?,
        crate::pipeline::Spec::Text(spec) => text::prepare(pipeline, spec, &device, &dir.checkpoints())?,
        crate::pipeline::Spec::Audio(spec) => audio::prepare(pipeline, spec, &device)?,
    };
    refuse_one_class(&task.dataset)?;
    seconds.insert("load".to_owned(), t.elapsed().as_secs_f64());
    let modality = pipeline.spec.modality();
    let seed = pipeline.seed();
    let ckpt = |phase: &str| Checkpoints { dir: dir.checkpoints(), phase: phase.to_owned() };

    let t = Instant::now();
    let tc = pipeline.spec.train();
    let clean_fit = Fit {
        epochs: tc.epochs,
        batch_size: tc.batch_size,
        lr: tc.lr,
        weight_decay: tc.weight_decay,
        patience: tc.patience,
        adversarial_weight: 0.0,
        share: 1.0,
        clean_epochs: 0,
        validation_attack_examples: 0,
    };
    let clean_log = train::fit(task.model.as_ref(), &task.dataset, &clean_fit, None, seed, &ckpt("clean"))?;
    seconds.insert("train".to_owned(), t.elapsed().as_secs_f64());

    let eval_split = match pipeline.spec.evaluate().split {
        SplitName::Test => &task.dataset.test,
        SplitName::Validation => &task.dataset.validation,
    };
    let mut metrics = Metrics {
        pipeline: pipeline.name().to_owned(),
        modality: report_modality(modality),
        seed,
        clean: report::Clean { before: clean_metrics(&task, eval_split)?.0, after: None },
        attacks: Vec::new(),
        sweeps: Vec::new(),
        seconds: BTreeMap::new(),
        skipped,
        hardening: None,
    };
    let pr_before = clean_metrics(&task, eval_split)?.1;
    let mut attacks = attacks;
    let mut samples: Vec<(String, Vec<evaluate::Sample>)> = Vec::new();
    let harden = pipeline.spec.harden();
    let trained_against = |id: &str| {
        harden.enabled && harden.strategy != Strategy::Clean && harden.attack.as_deref() == Some(id)
    };

    let t = Instant::now();
    attack_phase(
        pipeline,
        &task,
        &mut attacks,
        eval_split,
        Phase::Before,
        &trained_against,
        &mut metrics,
        &mut samples,
    )?;
    seconds.insert("attack_before".to_owned(), t.elapsed().as_secs_f64());
    metrics.seconds = seconds.clone();
    metrics.write(dir.path.join("metrics.json"))?;

    let mut pr_after = None;
    let mut harden_log = None;
    let harden_seed = seed ^ 0x4A12_D3E7;
    if harden.enabled {
        let t = Instant::now();
        let mut adversary = match (&harden.attack, harden.strategy) {
            (_, Strategy::Clean) | (None, _) => None,
            (Some(id), strategy) => {
                let source = attacks
                    .iter()
                    .find(|a| &a.config.id == id)
                    .ok_or_else(|| Error::msg(format!("harden.attack `{id}` could not be loaded")))?;
                let params = harden_params(pipeline, &source.config).ok_or_else(|| {
                    Error::msg(format!("harden.attack `{id}` cannot train with strategy {strategy:?}"))
                })?;
                let plugin = source.handle.plugin.clone();
                let handle = plugin.create(&source.config.attack, &params)?;
                let record = match modality {
                    Modality::Text => Some(text::Recorder::new(&dir.path, harden_seed)?),
                    _ => None,
                };
                Some(PluginAdversary {
                    handle,
                    ctx: task.context(modality, seed, None),
                    classes: source.config.classes.clone(),
                    record,
                    stats: HardeningStats::default(),
                })
            }
        };
        let fit = Fit {
            epochs: harden.epochs,
            batch_size: tc.batch_size,
            lr: harden.lr,
            weight_decay: tc.weight_decay,
            patience: harden.patience,
            adversarial_weight: harden.adversarial_weight,
            share: harden.share,
            clean_epochs: harden.clean_epochs,
            validation_attack_examples: 2048,
        };
        let adv = adversary.as_mut().map(|a| a as &mut dyn Adversary);
        harden_log =
            Some(train::fit(task.model.as_ref(), &task.dataset, &fit, adv, harden_seed, &ckpt("hardened"))?);
        seconds.insert("harden".to_owned(), t.elapsed().as_secs_f64());
        // None when nothing was handed to the attack (a clean strategy).
        metrics.hardening = adversary.map(|a| a.stats).filter(|s| s.examples > 0);

        let (after, pr) = clean_metrics(&task, eval_split)?;
        metrics.clean.after = Some(after);
        pr_after = Some(pr);
        let t = Instant::now();
        attack_phase(
            pipeline,
            &task,
            &mut attacks,
            eval_split,
            Phase::After,
            &trained_against,
            &mut metrics,
            &mut samples,
        )?;
        seconds.insert("attack_after".to_owned(), t.elapsed().as_secs_f64());
    }

    let t = Instant::now();
    seconds.insert("total".to_owned(), started.elapsed().as_secs_f64());
    metrics.seconds = seconds;
    let mut sections = Vec::new();
    let mut plots = Vec::new();
    if pipeline.spec.report().plots {
        std::fs::create_dir_all(dir.path.join("plots")).map_err(|e| Error::io(dir.path.join("plots"), e))?;
        if let Some(before) = &pr_before {
            let mut curves: Vec<(&str, &[(f64, f64)])> = vec![("before hardening", before)];
            if let Some(Some(after)) = &pr_after {
                curves.push(("after hardening", after));
            }
            report::plots::pr_curves(dir.path.join("plots/pr_curve.png"), &curves)?;
            plots.push(("Precision-recall, clean test split", "plots/pr_curve.png".to_owned()));
        }
        for id in metrics.sweep_ids().into_iter().map(str::to_owned).collect::<Vec<_>>() {
            let unit = metrics
                .sweeps
                .iter()
                .find(|s| s.attack_id == id)
                .map(|s| s.budget_unit.clone())
                .unwrap_or_default();
            // Audio: robust accuracy against the SNR budget; elsewhere: attack success rate.
            let robust = modality == Modality::Audio;
            let value: fn(&SweepPoint) -> f64 =
                if robust { |s| s.robust_accuracy } else { |s| s.success_rate };
            let (title, y_label) = if robust {
                (format!("Robust accuracy under `{id}` against its budget"), "robust accuracy")
            } else {
                (format!("Attack success rate of `{id}` against its budget"), "attack success rate")
            };
            let mut series = Vec::new();
            for phase in [Phase::Before, Phase::After] {
                let points = metrics.sweep_series(&id, phase, value);
                if !points.is_empty() {
                    series.push((format!("{phase}"), points));
                }
            }
            let refs: Vec<(&str, &[(f64, f64)])> =
                series.iter().map(|(l, p)| (l.as_str(), p.as_slice())).collect();
            let file = format!("plots/sweep-{}.png", sanitize(&id));
            report::plots::sweep(dir.path.join(&file), &title, &unit, y_label, &refs)?;
            plots.push((
                if robust {
                    "Robust accuracy against the budget"
                } else {
                    "Attack success rate against the budget"
                },
                file,
            ));
        }
    }
    if !plots.is_empty() {
        let refs: Vec<(&str, &str)> = plots.iter().map(|(t, f)| (*t, f.as_str())).collect();
        sections.push(Section::plots(&refs));
    }
    if modality == Modality::Text {
        sections.push(text::summary(pipeline, &mut metrics, eval_split));
    }
    for (label, s) in &samples {
        if !s.is_empty() {
            let dir_samples = dir.path.join("samples");
            std::fs::create_dir_all(&dir_samples).map_err(|e| Error::io(&dir_samples, e))?;
            (task.save_samples)(&task, &dir_samples, label, s)?;
            sections.push(Section::new(
                format!("Adversarial examples: {label}"),
                (task.render_samples)(&task, label, s),
            ));
        }
    }
    sections.push(Section::new("Training", training_table(&clean_log, harden_log.as_ref())));
    metrics.seconds.insert("report".to_owned(), t.elapsed().as_secs_f64());
    metrics.write(dir.path.join("metrics.json"))?;
    let md = report::render(&metrics, &sections);
    crate::files::write(&dir.path.join("report.md"), md.as_bytes())?;
    Ok(Finished { dir: dir.path, metrics })
}

/// A file-name-safe form of a label: `pgd (before)` → `pgd-before`.
fn sanitize(id: &str) -> String {
    let mut out = String::new();
    for c in id.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn report_modality(m: Modality) -> report::Modality {
    match m {
        Modality::Tabular => report::Modality::Tabular,
        Modality::Text => report::Modality::Text,
        Modality::Audio => report::Modality::Audio,
    }
}

/// Clean metrics on `split`, and the precision-recall curve when the task is binary.
#[allow(clippy::type_complexity)]
fn clean_metrics(
    task: &Task,
    split: &crate::data::Labelled,
) -> Result<(CleanMetrics, Option<Vec<(f64, f64)>>)> {
    let (pred, probs) = evaluate::predict(task.model.as_ref(), &split.x, 1024)?;
    let mut classes = pred.clone();
    classes.sort_unstable();
    classes.dedup();
    let predicted_classes = Some(classes.len());
    match task.positive_class {
        Some(pos) => {
            let scores: Vec<f32> = probs.iter().map(|p| p[pos as usize]).collect();
            let labels: Vec<bool> = split.y.iter().map(|&y| y == pos).collect();
            Ok((
                CleanMetrics { predicted_classes, ..CleanMetrics::from_binary_scores(&scores, &labels, 0.5) },
                Some(report::scores::pr_curve(&scores, &labels)),
            ))
        }
        None => {
            let p: Vec<usize> = pred.iter().map(|&p| p as usize).collect();
            let y: Vec<usize> = split.y.iter().map(|&y| y as usize).collect();
            Ok((CleanMetrics { predicted_classes, ..CleanMetrics::from_predictions(&p, &y) }, None))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn attack_phase(
    pipeline: &Pipeline,
    task: &Task,
    attacks: &mut [Loaded],
    split: &crate::data::Labelled,
    phase: Phase,
    trained_against: &dyn Fn(&str) -> bool,
    metrics: &mut Metrics,
    samples: &mut Vec<(String, Vec<evaluate::Sample>)>,
) -> Result<()> {
    let ev = pipeline.spec.evaluate();
    let modality = pipeline.spec.modality();
    let seed = pipeline.seed();
    let n_samples = pipeline.spec.report().samples;
    for loaded in attacks.iter_mut() {
        let id = loaded.config.id.clone();
        if ev.attacks.as_ref().is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        let label = format!("{id} ({phase})");
        let run = evaluate::Run {
            batch_size: loaded.config.batch_size,
            classes: loaded.config.classes.as_deref(),
            limit: ev.examples,
            seed: evaluate::mix(seed, hash(&id)),
            samples: n_samples,
            label: &label,
        };
        let ctx = task.context(modality, seed, loaded.config.query_budget);
        let outcome = evaluate::run(
            &mut loaded.handle,
            task.model.as_ref(),
            split,
            ctx,
            task.judge.as_ref(),
            &loaded.params,
            &run,
        );
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) if loaded.config.on_error == OnError::Skip => {
                tracing::warn!("attack `{id}` failed and is skipped: {e}");
                metrics.skipped.push(Skipped { id: id.clone(), phase, reason: e.to_string() });
                continue;
            }
            Err(e) => return Err(e),
        };
        for note in &outcome.violation_notes {
            tracing::warn!("{id}: constraint violated: {note}");
        }
        let m = attack_metrics(task, &loaded.config, &outcome, phase, trained_against(&id));
        tracing::info!(
            "{label}: success {:.1}% of {} attacked, robust accuracy {:.1}%, {:.1} queries, {} violations",
            m.success_rate * 100.0,
            m.attacked,
            m.robust_accuracy * 100.0,
            m.mean_queries,
            m.constraint_violations
        );
        metrics.attacks.push(m);
        samples.push((label, outcome.samples));
    }
    for sweep in &ev.sweeps {
        let Some(loaded) = attacks.iter().find(|a| a.config.id == sweep.attack) else { continue };
        let plugin = loaded.handle.plugin.clone();
        for &value in &sweep.values {
            let mut o = serde_json::Map::new();
            o.insert(sweep.param.clone(), sweep_value(value));
            let params = with_overrides(&loaded.params, &o);
            let skip = loaded.config.on_error == OnError::Skip;
            let label = format!("{} {}={value} ({phase})", sweep.attack, sweep.param);
            let run = evaluate::Run {
                batch_size: loaded.config.batch_size,
                classes: loaded.config.classes.as_deref(),
                limit: ev.examples,
                seed: evaluate::mix(seed, hash(&sweep.attack)),
                samples: 0,
                label: &label,
            };
            let ctx = task.context(modality, seed, loaded.config.query_budget);
            let outcome = plugin.create(&loaded.config.attack, &params).and_then(|mut handle| {
                evaluate::run(
                    &mut handle,
                    task.model.as_ref(),
                    split,
                    ctx,
                    task.judge.as_ref(),
                    &params,
                    &run,
                )
            });
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) if skip => {
                    tracing::warn!("sweep point {label} failed and is skipped: {e}");
                    metrics.skipped.push(Skipped {
                        id: format!("{} {}={value}", sweep.attack, sweep.param),
                        phase,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            metrics.sweeps.push(SweepPoint {
                attack_id: sweep.attack.clone(),
                budget: value,
                budget_unit: sweep.unit.clone().unwrap_or_else(|| sweep.param.clone()),
                phase,
                success_rate: outcome.success_rate(),
                robust_accuracy: outcome.robust_accuracy(),
            });
        }
    }
    Ok(())
}

/// A sweep value as JSON: whole numbers become integers, so an integer param (`steps`)
/// can be swept too.
fn sweep_value(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 { serde_json::json!(v as i64) } else { serde_json::json!(v) }
}

fn attack_metrics(
    task: &Task,
    config: &AttackConfig,
    o: &Outcome,
    phase: Phase,
    trained_against: bool,
) -> AttackMetrics {
    let mut extra: BTreeMap<String, f64> =
        o.extra_means().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    extra.insert("max_queries".into(), o.max_queries as f64);
    AttackMetrics {
        id: config.id.clone(),
        plugin: config.plugin.clone(),
        attack: config.attack.clone(),
        phase,
        trained_against,
        examples: o.examples,
        attacked: o.attacked,
        successes: o.successes,
        success_rate: o.success_rate(),
        robust_accuracy: o.robust_accuracy(),
        mean_queries: o.mean_queries(),
        mean_perturbation: o.mean_perturbation(),
        perturbation_unit: task.judge.unit().to_owned(),
        constraint_violations: o.violations,
        seconds: o.seconds,
        extra,
    }
}

fn training_table(clean: &train::TrainState, harden: Option<&train::TrainState>) -> String {
    let mut s = String::from(
        "| phase | epoch | train loss | validation loss | validation accuracy | objective | seconds |\n|---|---|---|---|---|---|---|\n",
    );
    for state in std::iter::once(clean).chain(harden) {
        for e in &state.log {
            let best = if e.epoch == state.best_epoch { " (kept)" } else { "" };
            s.push_str(&format!(
                "| {} | {}{best} | {:.4} | {:.4} | {:.2}% | {:.4} | {:.1} |\n",
                state.phase,
                e.epoch,
                e.train_loss,
                e.validation_loss,
                e.validation_accuracy * 100.0,
                e.objective,
                e.seconds
            ));
        }
    }
    s
}

/// A model cannot learn to tell classes apart from examples of one class: refused before
/// any training time is spent.
fn refuse_one_class(data: &crate::data::Dataset) -> Result<()> {
    let mut seen: Vec<u32> = data.train.y.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() < 2 {
        return Err(Error::msg(format!(
            "the training split holds {} class(es) ({} examples): a classifier needs examples of at \
             least two classes (check the data's labels, `classes` and `limit`)",
            seen.len(),
            data.train.len()
        )));
    }
    Ok(())
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Where a pipeline's relative `path =` for plugins is resolved; exposed for the CLI.
pub fn resolve(pipeline: &Pipeline, p: &Path) -> PathBuf {
    pipeline.resolve(p)
}
