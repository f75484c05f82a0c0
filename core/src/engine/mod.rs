//! Runs a pipeline: data → model → clean evaluation → attacks ("before") → adversarial
//! fine-tuning → attacks ("after") → report. Everything a phase produces is written to
//! the run directory as soon as the phase ends, so a failure later loses nothing and
//! `--resume` continues where the run stopped: each phase leaves a typed artifact —
//! training and hardening their final commits (`checkpoints/clean.safetensors`,
//! `hardened.safetensors`, see `train/commit.rs`), each attack run and sweep point its result
//! with what it was computed from (`phases/`, see `artifact.rs`), the report `metrics.json`
//! and `report.md` — and a resume loads a finished one instead of computing it again, unless
//! what it depends on changed.

mod artifact;
mod attacks;
mod fingerprint;
mod finish;
mod harden;
mod rundir;
mod tradeoff;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

use crate::data::{Dataset, Labelled};
use crate::error::Context;
use crate::evaluate::{self, Decision};
use crate::modality::{self, Setup, Task};
use crate::pipeline::{DeviceKind, Pipeline, Sampling, SplitName, Target, TrainConfig};
use crate::report::{self, AtThreshold, CleanMetrics, Metrics, OperatingPointMetrics, Phase, Skipped};
use crate::train::{self, Balance, Checkpoints, Fit, TrainState};
use crate::{Error, Result};

use attacks::{Loaded, Samples, attack_phase, load_attacks};
use finish::{Curve, Outputs};

pub use attacks::{check_attack, load_plugin, search_path};
pub use rundir::{RunDir, timestamp};

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

pub fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => Device::new_cuda(0).context("cannot open CUDA device 0"),
    }
}

/// Runs `pipeline` end to end: each phase below is a function whose inputs and outputs
/// are all it shares with the others.
pub fn run(pipeline: &Pipeline, opts: &RunOptions) -> Result<Finished> {
    let started = Instant::now();
    let dir = RunDir::create(pipeline, opts)?;
    tracing::info!("run directory: {}", dir.path.display());
    let mut clock = Clock::default();

    let Prepared { task, mut attacks, skipped, balance } = clock.time("load", || load(pipeline, &dir))?;
    let task = task.as_ref();
    let clean_log = clock.time("train", || train_clean(pipeline, task, &dir, &balance))?;

    let split = eval_split(pipeline, task);
    let target = pipeline.spec.evaluate().operating_point.map(|op| op.target());
    let (clean_before, pr_before, decision) = clean_metrics_at(task, split, target)?;
    let mut metrics = Metrics {
        pipeline: pipeline.name().to_owned(),
        modality: pipeline.spec.modality(),
        seed: pipeline.seed(),
        clean: report::Clean { before: clean_before, after: None },
        attacks: Vec::new(),
        sweeps: Vec::new(),
        seconds: BTreeMap::new(),
        skipped,
        hardening: None,
        tradeoff: None,
        defences: Vec::new(),
        synonym_encoding: None,
    };
    let mut samples = Samples::new();
    clock.time("attack_before", || {
        attack_phase(
            pipeline,
            task,
            &mut attacks,
            split,
            Phase::Before,
            decision,
            &mut metrics,
            &mut samples,
            &dir.path,
        )
    })?;
    metrics.seconds = clock.0.clone();
    metrics.write(dir.path.join("metrics.json"))?;

    let (mut harden_log, mut pr_after) = (None, None);
    let (mut final_phase, mut final_decision) = (Phase::Before, decision);
    if pipeline.spec.harden().enabled {
        let hardened = clock.time("harden", || match pipeline.spec.tradeoff() {
            None => harden::harden(pipeline, task, &attacks, &dir, &balance),
            Some(_) => tradeoff::sweep(pipeline, task, &mut attacks, &dir, &balance).map(|(h, sweep)| {
                metrics.tradeoff = Some(sweep);
                h
            }),
        })?;
        metrics.hardening = hardened.stats;
        harden_log = Some(hardened.log);
        // The hardened model scores differently: its threshold is chosen again, on validation.
        let (after, pr, decision) = clean_metrics_at(task, split, target)?;
        metrics.clean.after = Some(after);
        pr_after = Some(pr);
        (final_phase, final_decision) = (Phase::After, decision);
        clock.time("attack_after", || {
            attack_phase(
                pipeline,
                task,
                &mut attacks,
                split,
                Phase::After,
                decision,
                &mut metrics,
                &mut samples,
                &dir.path,
            )
        })?;
    }

    if !pipeline.spec.defences().is_empty() {
        use crate::defence::{judging, phase};
        let mut slots: Vec<_> = attacks
            .iter_mut()
            .map(|l| judging::Attack { config: &l.config, handle: &mut l.handle })
            .collect();
        let (at, decision) = (final_phase, final_decision);
        metrics.defences = clock
            .time("defences", || phase::run(pipeline, task, &mut slots, split, at, decision, &metrics))?;
    }

    clock.0.insert("total".to_owned(), started.elapsed().as_secs_f64());
    metrics.seconds = clock.0;
    let out = Outputs { samples, clean_log, harden_log, pr_before, pr_after };
    finish::report(pipeline, task, split, &dir, &mut metrics, &out)?;
    Ok(Finished { dir: dir.path, metrics })
}

/// Wall-clock seconds per phase, as metrics.json reports them.
#[derive(Default)]
struct Clock(BTreeMap<String, f64>);

impl Clock {
    fn time<T>(&mut self, phase: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let out = f()?;
        self.0.insert(phase.to_owned(), t.elapsed().as_secs_f64());
        Ok(out)
    }
}

/// What loading leaves: the modality's task, and the attacks that loaded (or were skipped).
struct Prepared {
    task: Box<dyn Task>,
    attacks: Vec<Loaded>,
    skipped: Vec<Skipped>,
    balance: Balance,
}

/// Loads the attacks first, so a missing plugin or a bad param fails before the data is
/// read, then the modality's data and model.
fn load(pipeline: &Pipeline, dir: &RunDir) -> Result<Prepared> {
    let (attacks, skipped) = load_attacks(pipeline)?;
    let device = device(pipeline.spec.pipeline().device)?;
    let task = modality::prepare(pipeline, &Setup { device: &device, checkpoints: &dir.checkpoints() })?;
    refuse_one_class(&task.parts().dataset)?;
    let balance = balance(pipeline, task.as_ref())?;
    if pipeline.spec.evaluate().operating_point.is_some() && task.positive_class().is_none() {
        return Err(pipeline.config_error(
            &["evaluate", "operating_point"],
            &format!(
                "an operating point needs a binary task (a positive class and a negative one); this data has {} classes",
                task.parts().dataset.n_classes
            ),
        ));
    }
    Ok(Prepared { task, attacks, skipped, balance })
}

/// `[train] class_weight` and `sampling` resolved against the training split, before any
/// training: an explicit list of the wrong length is a configuration error.
fn balance(pipeline: &Pipeline, task: &dyn Task) -> Result<Balance> {
    let tc = pipeline.spec.train();
    let data = &task.parts().dataset;
    let mut counts = vec![0usize; data.n_classes];
    for &y in &data.train.y {
        if let Some(c) = counts.get_mut(y as usize) {
            *c += 1;
        }
    }
    let class_weights = tc
        .class_weight
        .resolve(&counts)
        .map_err(|m| pipeline.config_error(&["train", "class_weight"], &format!("train.class_weight {m}")))?;
    if let Some(w) = &class_weights {
        tracing::info!("class weights {w:?} for training counts {counts:?}");
    }
    Ok(Balance { class_weights, sampling: tc.sampling == Sampling::Balanced })
}

/// `[train]` as the trainer takes it: nothing adversarial.
pub(crate) fn clean_fit(tc: &TrainConfig) -> Fit {
    Fit {
        weight_decay: tc.weight_decay,
        patience: tc.patience,
        weight_average: tc.weight_average,
        ..Fit::clean(tc.epochs, tc.batch_size, tc.lr)
    }
}

/// Trains the clean model (or resumes it from the `clean` checkpoints).
fn train_clean(pipeline: &Pipeline, task: &dyn Task, dir: &RunDir, balance: &Balance) -> Result<TrainState> {
    let fit = clean_fit(pipeline.spec.train());
    let ckpt = Checkpoints { dir: dir.checkpoints(), phase: "clean".to_owned() };
    let parts = task.parts();
    // A resume loads its own checkpoints over these weights, so loading first is safe.
    if let Some(init) = pipeline.init_checkpoint() {
        crate::model::load(parts.model.as_ref(), &init)
            .with_context(|| format!("[train] init: the model in {}", init.display()))?;
        tracing::info!("clean model: starting from {}", init.display());
    }
    train::fit_balanced(parts.model.as_ref(), &parts.dataset, &fit, balance, None, pipeline.seed(), &ckpt)
}

/// The split attacks and clean metrics are measured on (`[evaluate] split`).
fn eval_split<'a>(pipeline: &Pipeline, task: &'a dyn Task) -> &'a Labelled {
    let data = &task.parts().dataset;
    match pipeline.spec.evaluate().split {
        SplitName::Test => &data.test,
        SplitName::Validation => &data.validation,
    }
}

/// Clean metrics on `split`, and the precision-recall curve when the task is binary.
pub(crate) fn clean_metrics(task: &dyn Task, split: &Labelled) -> Result<(CleanMetrics, Option<Curve>)> {
    let (m, curve, _) = clean_metrics_at(task, split, None)?;
    Ok((m, curve))
}

/// [`clean_metrics`] at an operating point when `target` is given: the threshold is chosen
/// on the validation split, then `split` is scored once at it. Returns the decision the
/// attacks are judged by.
pub(crate) fn clean_metrics_at(
    task: &dyn Task,
    split: &Labelled,
    target: Option<Target>,
) -> Result<(CleanMetrics, Option<Curve>, Option<Decision>)> {
    let model = task.parts().model.as_ref();
    let (pred, probs) = evaluate::predict(model, &split.x, 1024)?;
    if let (Some(target), Some(pos)) = (target, task.positive_class()) {
        let validation = &task.parts().dataset.validation;
        let (_, val_probs) = evaluate::predict(model, &validation.x, 1024)?;
        let (m, curve, d) = at_operating_point(&probs, &split.y, &val_probs, &validation.y, pos, target);
        return Ok((m, Some(curve), Some(d)));
    }
    let mut classes = pred.clone();
    classes.sort_unstable();
    classes.dedup();
    let predicted_classes = Some(classes.len());
    match task.positive_class() {
        Some(pos) => {
            let scores: Vec<f32> = probs.iter().map(|p| p[pos as usize]).collect();
            let labels: Vec<bool> = split.y.iter().map(|&y| y == pos).collect();
            Ok((
                CleanMetrics { predicted_classes, ..CleanMetrics::from_binary_scores(&scores, &labels, 0.5) },
                Some(report::scores::pr_curve(&scores, &labels)),
                None,
            ))
        }
        None => {
            let p: Vec<usize> = pred.iter().map(|&p| p as usize).collect();
            let y: Vec<usize> = split.y.iter().map(|&y| y as usize).collect();
            Ok((CleanMetrics { predicted_classes, ..CleanMetrics::from_predictions(&p, &y) }, None, None))
        }
    }
}

/// The threshold for `target` from the validation probabilities, and the evaluated
/// split's metrics at it. The evaluated split's labels never reach the choice.
fn at_operating_point(
    probs: &[Vec<f32>],
    labels: &[u32],
    val_probs: &[Vec<f32>],
    val_labels: &[u32],
    positive: u32,
    target: Target,
) -> (CleanMetrics, Curve, Decision) {
    let scores_of = |p: &[Vec<f32>]| -> Vec<f32> { p.iter().map(|p| p[positive as usize]).collect() };
    let flags_of = |y: &[u32]| -> Vec<bool> { y.iter().map(|&y| y == positive).collect() };
    let (val_scores, val_flags) = (scores_of(val_probs), flags_of(val_labels));
    let threshold = report::scores::threshold_for(&val_scores, &val_flags, target);
    let (scores, flags) = (scores_of(probs), flags_of(labels));
    let decision = Decision { positive, threshold };
    let mut decided: Vec<u32> = probs.iter().map(|p| decision.decide(p)).collect();
    decided.sort_unstable();
    decided.dedup();
    let here = report::scores::Confusion::at(&scores, &flags, threshold);
    let there = report::scores::Confusion::at(&val_scores, &val_flags, threshold);
    let m = CleanMetrics {
        predicted_classes: Some(decided.len()),
        operating_point: Some(OperatingPointMetrics {
            target,
            threshold: f64::from(threshold),
            detected: here.true_positives,
            positives: here.true_positives + here.false_negatives,
            validation: AtThreshold::from_confusion(&there),
        }),
        ..CleanMetrics::from_binary_scores(&scores, &flags, threshold)
    };
    (m, report::scores::pr_curve(&scores, &flags), decision)
}

/// A model cannot learn to tell classes apart from examples of one class: refused before
/// any training time is spent.
fn refuse_one_class(data: &Dataset) -> Result<()> {
    let mut seen: Vec<u32> = data.train.y.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() < 2 {
        return Err(Error::invalid(format!(
            "the training split holds {} class(es) ({} examples): a classifier needs examples of at \
             least two classes (check the data's labels, `classes` and `limit`)",
            seen.len(),
            data.train.len()
        )));
    }
    Ok(())
}

/// Where a pipeline's relative `path =` for plugins is resolved; exposed for the CLI.
pub fn resolve(pipeline: &Pipeline, p: &Path) -> PathBuf {
    pipeline.resolve(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(p1: &[f32]) -> Vec<Vec<f32>> {
        p1.iter().map(|&p| vec![1.0 - p, p]).collect()
    }

    /// The threshold comes from the validation split alone: here the test split's own
    /// scores would give another one (0.3: every test fraud caught with no false positive),
    /// and the test split is then scored once at the validation threshold.
    #[test]
    fn the_operating_threshold_is_chosen_on_validation() {
        // Validation: 100 genuine rows scored 0.000 … 0.495, 4 frauds at 0.95 … 0.98.
        let mut val: Vec<f32> = (0..100).map(|i| i as f32 / 200.0).collect();
        let mut val_y = vec![0u32; 100];
        val.extend([0.95, 0.96, 0.97, 0.98]);
        val_y.extend([1, 1, 1, 1]);
        // Test: genuine rows all below 0.3, frauds at 0.3, 0.5, 0.8, 0.99.
        let test = [0.1, 0.2, 0.25, 0.29, 0.3, 0.5, 0.8, 0.99];
        let test_y = [0, 0, 0, 0, 1, 1, 1, 1];
        let (m, _, d) =
            at_operating_point(&probs(&test), &test_y, &probs(&val), &val_y, 1, Target::Fpr(0.005));
        // Under 1 in 200 genuine validation rows flagged: none, so the cut is the lowest fraud.
        assert_eq!(d.threshold, 0.95, "{d:?}");
        let op = m.operating_point.unwrap();
        assert_eq!((op.detected, op.positives), (1, 4), "only 0.99 ≥ 0.95 on test");
        assert_eq!(m.recall, Some(0.25));
        assert_eq!(op.validation.detected, 4);
        assert_eq!(op.validation.false_positive_rate, 0.0, "{:?}", op.validation);
        let on_test = report::scores::threshold_for(&test, &test_y.map(|y| y == 1), Target::Fpr(0.005));
        assert_eq!(on_test, 0.3, "the test split would have chosen otherwise");
        assert_ne!(d.threshold, on_test);
        // The decision flags by the threshold, not argmax.
        assert_eq!(d.decide(&[0.02, 0.98]), 1);
        assert_eq!(d.decide(&[0.05, 0.95]), 1);
        assert_eq!(d.decide(&[0.2, 0.8]), 0, "0.8 is argmax fraud but below the threshold");
    }
}
