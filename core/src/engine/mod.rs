//! Runs a pipeline: data → model → clean evaluation → attacks ("before") → adversarial
//! fine-tuning → attacks ("after") → report. Everything a phase produces is written to
//! the run directory as soon as the phase ends, so a failure later loses nothing and
//! `--resume` continues where the run stopped.

mod attacks;
mod fingerprint;
mod finish;
mod harden;
mod rundir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

use crate::data::{Dataset, Labelled};
use crate::evaluate;
use crate::modality::{self, Setup, Task};
use crate::pipeline::{DeviceKind, Pipeline, SplitName};
use crate::report::{self, CleanMetrics, Metrics, Phase, Skipped};
use crate::train::{self, Checkpoints, Fit, TrainState};
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
        DeviceKind::Cuda => {
            Device::new_cuda(0).map_err(|e| Error::msg(format!("cannot open CUDA device 0: {e}")))
        }
    }
}

/// Runs `pipeline` end to end: each phase below is a function whose inputs and outputs
/// are all it shares with the others.
pub fn run(pipeline: &Pipeline, opts: &RunOptions) -> Result<Finished> {
    let started = Instant::now();
    let dir = RunDir::create(pipeline, opts)?;
    tracing::info!("run directory: {}", dir.path.display());
    let mut clock = Clock::default();

    let Prepared { task, mut attacks, skipped } = clock.time("load", || load(pipeline, &dir))?;
    let task = task.as_ref();
    let clean_log = clock.time("train", || train_clean(pipeline, task, &dir))?;

    let split = eval_split(pipeline, task);
    let (clean_before, pr_before) = clean_metrics(task, split)?;
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
    };
    let mut samples = Samples::new();
    clock.time("attack_before", || {
        attack_phase(pipeline, task, &mut attacks, split, Phase::Before, &mut metrics, &mut samples)
    })?;
    metrics.seconds = clock.0.clone();
    metrics.write(dir.path.join("metrics.json"))?;

    let (mut harden_log, mut pr_after) = (None, None);
    if pipeline.spec.harden().enabled {
        let hardened = clock.time("harden", || harden::harden(pipeline, task, &attacks, &dir))?;
        metrics.hardening = hardened.stats;
        harden_log = Some(hardened.log);
        let (after, pr) = clean_metrics(task, split)?;
        metrics.clean.after = Some(after);
        pr_after = Some(pr);
        clock.time("attack_after", || {
            attack_phase(pipeline, task, &mut attacks, split, Phase::After, &mut metrics, &mut samples)
        })?;
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
}

/// Loads the attacks first, so a missing plugin or a bad param fails before the data is
/// read, then the modality's data and model.
fn load(pipeline: &Pipeline, dir: &RunDir) -> Result<Prepared> {
    let (attacks, skipped) = load_attacks(pipeline)?;
    let device = device(pipeline.spec.pipeline().device)?;
    let task = modality::prepare(pipeline, &Setup { device: &device, checkpoints: &dir.checkpoints() })?;
    refuse_one_class(&task.parts().dataset)?;
    Ok(Prepared { task, attacks, skipped })
}

/// Trains the clean model (or resumes it from the `clean` checkpoints).
fn train_clean(pipeline: &Pipeline, task: &dyn Task, dir: &RunDir) -> Result<TrainState> {
    let tc = pipeline.spec.train();
    let fit = Fit {
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
    let ckpt = Checkpoints { dir: dir.checkpoints(), phase: "clean".to_owned() };
    let parts = task.parts();
    train::fit(parts.model.as_ref(), &parts.dataset, &fit, None, pipeline.seed(), &ckpt)
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
    let (pred, probs) = evaluate::predict(task.parts().model.as_ref(), &split.x, 1024)?;
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
            ))
        }
        None => {
            let p: Vec<usize> = pred.iter().map(|&p| p as usize).collect();
            let y: Vec<usize> = split.y.iter().map(|&y| y as usize).collect();
            Ok((CleanMetrics { predicted_classes, ..CleanMetrics::from_predictions(&p, &y) }, None))
        }
    }
}

/// A model cannot learn to tell classes apart from examples of one class: refused before
/// any training time is spent.
fn refuse_one_class(data: &Dataset) -> Result<()> {
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

/// Where a pipeline's relative `path =` for plugins is resolved; exposed for the CLI.
pub fn resolve(pipeline: &Pipeline, p: &Path) -> PathBuf {
    pipeline.resolve(p)
}
