//! The pipeline's attacks: loading their plugins, checking every set of params the run
//! will use before any training, and running them (and their sweeps) over a split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::Labelled;
use crate::error::Context;
use crate::evaluate::{self, Decision, Outcome, Sample};
use crate::modality::{self, Task};
use crate::pipeline::tradeoff::Swept;
use crate::pipeline::{AttackConfig, OnError, Pipeline, SplitName, Strategy};
use crate::plugin_host::{AttackHandle, Plugin, SearchPath};
use crate::report::{AttackMetrics, BudgetCheck, Metrics, Phase, Skipped, SweepPoint};
use crate::{Error, Result};

use super::artifact::{self, PhaseStore, StoredSample};

/// An attack of the pipeline, loaded and created.
pub(super) struct Loaded {
    pub config: AttackConfig,
    pub params: serde_json::Value,
    pub handle: AttackHandle,
}

pub(super) fn to_json(table: &toml::Table) -> serde_json::Value {
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
pub(super) fn load_attacks(pipeline: &Pipeline) -> Result<(Vec<Loaded>, Vec<Skipped>)> {
    let mut loaded = Vec::new();
    let mut skipped = Vec::new();
    for config in pipeline.spec.attacks() {
        let params = to_json(&config.params);
        let made = load_plugin(pipeline, config).and_then(|p| {
            let handle = p.create(&config.attack, &params, &pipeline.base_dir)?;
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
pub(super) fn harden_params(pipeline: &Pipeline, config: &AttackConfig) -> Option<serde_json::Value> {
    let harden = pipeline.spec.harden();
    if !harden.enabled || harden.strategy == Strategy::Clean || !harden.attack.contains(&config.id) {
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

/// Creates (and drops) the hardening attack `config` with each value of a `params.<name>`
/// `[tradeoff]`, so that the plugin refuses a bad one before any training time is spent.
fn check_tradeoff_attack(pipeline: &Pipeline, config: &AttackConfig, plugin: &Plugin) -> Result<()> {
    let Some(t) = pipeline.spec.tradeoff() else { return Ok(()) };
    if !matches!(t.swept(), Some(Swept::AttackParam(_))) {
        return Ok(());
    }
    for &value in &t.values {
        let Some(params) = harden_params(&t.applied_to(pipeline, value), config) else { return Ok(()) };
        plugin.create(&config.attack, &params, &pipeline.base_dir).map_err(|e| {
            pipeline.config_error(
                &["tradeoff", "values"],
                &format!("[tradeoff] sets `{} = {value}` for hardening attack `{}`: {e}", t.param, config.id),
            )
        })?;
    }
    Ok(())
}

/// Creates (and drops) the attack `config` with every set of params the run will use
/// besides its own (hardening, each sweep point), so that the plugin checks them before any
/// training time is spent: a misspelt sweep `param` fails here, not after clean training.
pub fn check_attack(pipeline: &Pipeline, config: &AttackConfig, plugin: &Plugin) -> Result<()> {
    check_harden_attack(pipeline, config, plugin)?;
    check_tradeoff_attack(pipeline, config, plugin)?;
    let params = to_json(&config.params);
    for sweep in pipeline.spec.evaluate().sweeps.iter().filter(|s| s.attack == config.id) {
        for &value in &sweep.values {
            let mut o = serde_json::Map::new();
            o.insert(sweep.param.clone(), sweep_value(value));
            plugin.create(&config.attack, &with_overrides(&params, &o), &pipeline.base_dir).with_context(
                || format!("[[evaluate.sweep]] of attack `{}` sets `{} = {value}`", config.id, sweep.param),
            )?;
        }
    }
    Ok(())
}

/// Creates (and drops) the attack `config` as hardening will, when it is the hardening
/// attack: the plugin checks those params now, before any training time is spent.
fn check_harden_attack(pipeline: &Pipeline, config: &AttackConfig, plugin: &Plugin) -> Result<()> {
    let Some(params) = harden_params(pipeline, config) else { return Ok(()) };
    match plugin.create(&config.attack, &params, &pipeline.base_dir) {
        Ok(handle) => {
            drop(handle);
            Ok(())
        }
        Err(e) => Err(e.context(format!(
            "[harden] trains with attack `{}` ({:?} strategy, with [harden] params)",
            config.id,
            pipeline.spec.harden().strategy
        ))),
    }
}

/// Adversarial examples kept for the report, by run label (`pgd (before)`).
pub(super) type Samples = Vec<(String, Vec<Sample>)>;

/// What one attack run adds to the run: its metrics and the examples kept for the report,
/// as its phase file holds them.
#[derive(Serialize, Deserialize)]
struct AttackUnit {
    metrics: AttackMetrics,
    samples: Vec<StoredSample>,
}

/// The name the evaluated split goes by in a phase file.
pub(super) fn split_name(pipeline: &Pipeline) -> &'static str {
    match pipeline.spec.evaluate().split {
        SplitName::Test => "test",
        SplitName::Validation => "validation",
    }
}

/// Runs every evaluated attack, then every sweep point, against the model as it is now:
/// one `phase` of the run. Results go to `metrics` (failures of `on_error = "skip"`
/// attacks to `metrics.skipped`), kept examples to `samples`. With a `decision`, an example
/// is right, and an attack succeeds, by the operating point rather than argmax.
///
/// Each attack run and sweep point is a unit of the phase's folder in `run`
/// (`artifact.rs`): one finished by an earlier process with the same inputs
/// is read back instead of run again.
// Each input is a different thing the phase is run against; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub(super) fn attack_phase(
    pipeline: &Pipeline,
    task: &dyn Task,
    attacks: &mut [Loaded],
    split: &Labelled,
    phase: Phase,
    decision: Option<Decision>,
    metrics: &mut Metrics,
    samples: &mut Samples,
    run: &Path,
) -> Result<()> {
    let ev = pipeline.spec.evaluate();
    let seed = pipeline.seed();
    let n_samples = pipeline.spec.report().samples;
    let model = task.parts().model.as_ref();
    let mut units = artifact::Context::new(pipeline, model, split_name(pipeline), split, decision)?;
    let mut store = PhaseStore::new(run, &format!("attacks-{phase}"));
    for loaded in attacks.iter_mut() {
        let id = loaded.config.id.clone();
        if ev.attacks.as_ref().is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        let label = format!("{id} ({phase})");
        let inputs = units.inputs(&id, &loaded.config, &loaded.params, &loaded.handle.plugin, n_samples)?;
        let unit = store.unit(&id, &inputs, || {
            let run = evaluate::Run {
                samples: n_samples,
                ..evaluate::Run::of_attack(pipeline, &loaded.config, decision, &label)
            };
            let ctx = modality::context(task, seed, loaded.config.query_budget);
            let outcome =
                evaluate::run(&mut loaded.handle, model, split, ctx, task.parts().judge.as_ref(), &run);
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) if loaded.config.on_error == OnError::Skip => {
                    tracing::warn!("attack `{id}` failed and is skipped: {e}");
                    metrics.skipped.push(Skipped { id: id.clone(), phase, reason: e.to_string() });
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            for note in &outcome.violation_notes {
                tracing::warn!("{id}: constraint violated: {note}");
            }
            let m = attack_metrics(task, &loaded.config, &outcome, phase, trained_against(pipeline, &id));
            tracing::info!(
                "{label}: success {:.1}% of {} attacked, robust accuracy {:.1}%, {:.1} queries, {} violations",
                m.success_rate * 100.0,
                m.attacked,
                m.robust_accuracy * 100.0,
                m.mean_queries,
                m.constraint_violations
            );
            let samples = outcome.samples.iter().map(StoredSample::try_from).collect::<Result<_>>()?;
            Ok(Some(AttackUnit { metrics: m, samples }))
        })?;
        let Some(unit) = unit else { continue };
        // What [harden] trains against is no input of the attack run: read it from now.
        let m = AttackMetrics { trained_against: trained_against(pipeline, &id), ..unit.metrics };
        metrics.attacks.push(m);
        samples.push((label, unit.samples.into_iter().map(Sample::from).collect()));
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
            let name = format!("{} {}={value} (sweep)", sweep.attack, sweep.param);
            let inputs = units.inputs(&name, &loaded.config, &params, &plugin, 0)?;
            let point = store.unit(&name, &inputs, || {
                // The sweep's attack is `loaded`: its seed is the attack phase's.
                let run = evaluate::Run::of_attack(pipeline, &loaded.config, decision, &label);
                let ctx = modality::context(task, seed, loaded.config.query_budget);
                let outcome = plugin.create(&loaded.config.attack, &params, &pipeline.base_dir).and_then(
                    |mut handle| {
                        evaluate::run(&mut handle, model, split, ctx, task.parts().judge.as_ref(), &run)
                    },
                );
                let outcome = match outcome {
                    Ok(o) => o,
                    Err(e) if skip => {
                        tracing::warn!("sweep point {label} failed and is skipped: {e}");
                        metrics.skipped.push(Skipped {
                            id: format!("{} {}={value}", sweep.attack, sweep.param),
                            phase,
                            reason: e.to_string(),
                        });
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
                Ok(Some(SweepPoint {
                    attack_id: sweep.attack.clone(),
                    budget: value,
                    budget_unit: sweep.unit.clone().unwrap_or_else(|| sweep.param.clone()),
                    phase,
                    success_rate: outcome.success_rate(),
                    robust_accuracy: outcome.robust_accuracy(),
                }))
            })?;
            metrics.sweeps.extend(point);
        }
    }
    if store.reused > 0 {
        tracing::info!("{phase}: {} finished unit(s) reused, nothing else changed for them", store.reused);
    }
    Ok(())
}

/// A sweep value as JSON: whole numbers become integers, so an integer param (`steps`)
/// can be swept too.
fn sweep_value(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 { serde_json::json!(v as i64) } else { serde_json::json!(v) }
}

fn attack_metrics(
    task: &dyn Task,
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
        perturbation_unit: task.parts().judge.unit().to_owned(),
        constraint_violations: o.violations,
        budgets: o.budgets.as_ref().map(|tallies| {
            tallies
                .iter()
                .map(|t| BudgetCheck {
                    budget: t.budget.to_string(),
                    violations: t.violations,
                    not_verified: t.reason.clone(),
                })
                .collect()
        }),
        seconds: o.seconds,
        extra,
    }
}

/// Whether the run hardens against attack `id` (its `trained_against` in metrics.json).
fn trained_against(pipeline: &Pipeline, id: &str) -> bool {
    let harden = pipeline.spec.harden();
    harden.enabled && harden.strategy != Strategy::Clean && harden.attack.iter().any(|a| a == id)
}
