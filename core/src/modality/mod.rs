//! The modality seam: everything the engine, `tempered bench` and the report need from
//! tabular, text or audio, behind one interface, so that none of them asks which modality
//! it is running.
//!
//! A modality is a type that implements [`Task`] (what a prepared run offers the shared
//! phases) and [`Prepare`] (how its pipeline section becomes one). Adding a fourth is a
//! new file here and one line in [`prepare`] (plus its `[data]`/`[model]` schema as a
//! `pipeline::Spec` variant).

mod audio;
mod tabular;
mod text;

use std::path::Path;

use candle_core::Device;
use tempered_plugin::Modality;

use crate::Result;
use crate::data::{Dataset, Examples, Labelled};
use crate::evaluate::{Judge, Sample};
use crate::model::{Classifier, SentenceEncoder};
use crate::pipeline::{Pipeline, Spec, SpecOf};
use crate::plugin_host::{BatchContext, Schema};
use crate::report::{Metrics, Section, SweepPoint};

use audio::Audio;
use tabular::Tabular;
use text::Text;

/// What every modality hands the shared phases: the splits, the model they train and the
/// judge that measures each adversarial example.
pub struct Parts {
    pub dataset: Dataset,
    pub model: Box<dyn Classifier>,
    pub judge: Box<dyn Judge>,
}

/// Where a modality is prepared: the pipeline's device, and the folder whose files a
/// resumed run must find again (the word-CNN's vocabulary).
pub struct Setup<'a> {
    pub device: &'a Device,
    pub checkpoints: &'a Path,
}

/// One modality, prepared for one pipeline: its data, model and judge, and each choice the
/// shared phases leave to it. Defaults are what most modalities want; an implementation
/// overrides only where it differs.
pub trait Task {
    fn parts(&self) -> &Parts;

    /// The tag plugins declare (and `metrics.json` names).
    fn modality(&self) -> Modality;

    /// The columns, for plugins that constrain them (tabular).
    fn schema(&self) -> Option<&Schema> {
        None
    }

    /// Samples per second of each example, for plugins that think in time (audio).
    fn sample_rate(&self) -> u32 {
        0
    }

    /// Answers the oracle's `similarity` (text pipelines that name an encoder).
    fn encoder(&self) -> Option<&dyn SentenceEncoder> {
        None
    }

    /// Binary tasks with a "positive" class get PR-AUC, recall at 1 % FPR and a
    /// precision-recall plot.
    fn positive_class(&self) -> Option<u32> {
        None
    }

    /// Writes adversarial samples into `dir` (the run's `samples/`), in the modality's own
    /// form (CSV rows, text pairs, wav files one can listen to).
    fn save_samples(&self, dir: &Path, label: &str, samples: &[Sample]) -> Result<()>;

    /// Renders adversarial samples for report.md.
    fn render_samples(&self, label: &str, samples: &[Sample]) -> String;

    /// Report sections of the modality's own, placed after the plots. May add figures to
    /// `metrics` (they are written to metrics.json after this call).
    fn report_sections(
        &self,
        _pipeline: &Pipeline,
        _metrics: &mut Metrics,
        _split: &Labelled,
    ) -> Vec<Section> {
        Vec::new()
    }

    /// What a budget sweep is plotted as.
    fn sweep_metric(&self) -> SweepMetric {
        SweepMetric::SuccessRate
    }

    /// Something that keeps the examples the hardening attack generates, when the modality
    /// wants them in the run folder. `base_seed` is the hardening's trainer seed.
    fn recorder(&self, _run_dir: &Path, _base_seed: u64) -> Result<Option<Box<dyn Recorder>>> {
        Ok(None)
    }

    /// The attack param that `tempered bench`'s budget flag sets (`epsilon`, `snr_db`).
    /// `None`: the bench has no attack to time for this modality.
    fn bench_budget(&self) -> Option<&'static str> {
        None
    }
}

/// How a modality's pipeline section becomes a [`Task`].
pub trait Prepare: Task + Sized + 'static {
    type Data;
    type Model;
    fn prepare(pipeline: &Pipeline, spec: &SpecOf<Self::Data, Self::Model>, setup: &Setup) -> Result<Self>;
}

/// The registry: the one place that maps a pipeline's modality to its implementation.
pub fn prepare(pipeline: &Pipeline, setup: &Setup) -> Result<Box<dyn Task>> {
    match &pipeline.spec {
        Spec::Tabular(spec) => boxed::<Tabular>(pipeline, spec, setup),
        Spec::Text(spec) => boxed::<Text>(pipeline, spec, setup),
        Spec::Audio(spec) => boxed::<Audio>(pipeline, spec, setup),
    }
}

fn boxed<M: Prepare>(
    pipeline: &Pipeline,
    spec: &SpecOf<M::Data, M::Model>,
    setup: &Setup,
) -> Result<Box<dyn Task>> {
    Ok(Box::new(M::prepare(pipeline, spec, setup)?))
}

/// A loader's three splits as the engine's [`Dataset`], each made [`Labelled`] by `labelled`.
fn dataset<S>(
    n_classes: usize,
    [train, validation, test]: [&S; 3],
    labelled: impl Fn(&S) -> Labelled,
) -> Dataset {
    Dataset { n_classes, train: labelled(train), validation: labelled(validation), test: labelled(test) }
}

/// What a plugin is told about the batch it perturbs.
pub fn context(task: &dyn Task, seed: u64, query_budget: Option<u64>) -> BatchContext<'_> {
    BatchContext {
        modality: task.modality(),
        schema: task.schema(),
        sample_rate: task.sample_rate(),
        seed,
        query_budget,
        encoder: task.encoder(),
    }
}

/// Keeps the examples a hardening attack made from each training batch.
pub trait Recorder {
    /// `seed` is the one the trainer handed the adversary for this batch.
    fn record(&mut self, seed: u64, original: &Examples, y: &[u32], adversarial: &Examples) -> Result<()>;
}

/// The figure a budget sweep plots against the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepMetric {
    /// Attack success rate: how often the attacker wins (tabular, text).
    SuccessRate,
    /// Robust accuracy: what the model keeps; natural for a noise budget in dB (audio).
    RobustAccuracy,
}

impl SweepMetric {
    pub fn value(self) -> fn(&SweepPoint) -> f64 {
        match self {
            Self::SuccessRate => |s| s.success_rate,
            Self::RobustAccuracy => |s| s.robust_accuracy,
        }
    }

    pub fn title(self, id: &str) -> String {
        match self {
            Self::SuccessRate => format!("Attack success rate of `{id}` against its budget"),
            Self::RobustAccuracy => format!("Robust accuracy under `{id}` against its budget"),
        }
    }

    pub fn axis(self) -> &'static str {
        match self {
            Self::SuccessRate => "attack success rate",
            Self::RobustAccuracy => "robust accuracy",
        }
    }

    pub fn caption(self) -> &'static str {
        match self {
            Self::SuccessRate => "Attack success rate against the budget",
            Self::RobustAccuracy => "Robust accuracy against the budget",
        }
    }
}

/// A file-name-safe form of a label: `pgd (before)` → `pgd-before`.
pub fn sanitize(id: &str) -> String {
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

/// The two examples of a sample, when both are dense rows.
fn dense(s: &Sample) -> Option<(&[f32], &[f32])> {
    match (&s.original, &s.adversarial) {
        (Examples::Dense { data: a, .. }, Examples::Dense { data: b, .. }) => Some((a, b)),
        _ => None,
    }
}
