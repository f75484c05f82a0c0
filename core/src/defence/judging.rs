//! What judging a defence needs, whatever its modality: the attacks as the engine loaded
//! them, the model and split they run on ([`Judging`]), and the logging, rates and failure
//! handling each run of an attack against a defence shares.

use crate::data::Labelled;
use crate::evaluate::{self, Decision, Outcome};
use crate::modality::Task;
use crate::model::Classifier;
use crate::pipeline::{AttackConfig, OnError, Pipeline};
use crate::plugin_host::AttackHandle;
use crate::report::defences::{DefendedAttack, Rates, judge};
use crate::report::{CleanMetrics, Metrics, Phase};
use crate::{Error, Result};

/// An attack of the pipeline, as the engine loaded it.
pub struct Attack<'a> {
    pub config: &'a AttackConfig,
    pub handle: &'a mut AttackHandle,
}

/// What every defence of a run is judged on: the model of `phase` (the hardened one when
/// hardening ran) on the evaluated `split`, at the operating point's `decision` when there is
/// one, against the phase's own undefended numbers (`metrics.attacks`).
#[derive(Clone, Copy)]
pub(super) struct Judging<'r> {
    pub pipeline: &'r Pipeline,
    pub task: &'r dyn Task,
    pub split: &'r Labelled,
    pub phase: Phase,
    pub decision: Option<Decision>,
    pub metrics: &'r Metrics,
}

impl Judging<'_> {
    /// The clean metrics of the evaluated split through the defended `model`.
    pub(super) fn clean(&self, model: &dyn Classifier) -> Result<CleanMetrics> {
        let (split, decision) = (self.split, self.decision);
        let (pred, probs) = evaluate::predict(model, &split.x, 1024)?;
        Ok(match self.task.positive_class() {
            Some(pos) => {
                let scores: Vec<f32> = probs.iter().map(|p| p[pos as usize]).collect();
                let labels: Vec<bool> = split.y.iter().map(|&y| y == pos).collect();
                CleanMetrics::from_binary_scores(&scores, &labels, decision.map_or(0.5, |d| d.threshold))
            }
            None => {
                let p: Vec<usize> = pred.iter().map(|&p| p as usize).collect();
                let y: Vec<usize> = split.y.iter().map(|&y| y as usize).collect();
                CleanMetrics::from_predictions(&p, &y)
            }
        })
    }
}

pub(super) fn rates(o: &Outcome) -> Rates {
    Rates::new(o.examples, o.attacked, o.successes, o.violations)
}

/// Logs an attack's run against a defence (`label`) the way the attack phase logs it.
pub(super) fn log_outcome(label: &str, o: &Outcome) {
    for note in o.violation_notes.iter().take(3) {
        tracing::warn!("{label}: constraint violated: {note}");
    }
    tracing::info!(
        "{label}: success {:.1}% of {} attacked, robust accuracy {:.1}%",
        o.success_rate() * 100.0,
        o.attacked,
        o.robust_accuracy() * 100.0
    );
}

/// What attack `config` failing against `defence` with `e` (in its `what` run) leaves: the
/// error itself, or with `on_error = "skip"`, a row that says why and judges nothing.
pub(super) fn failed(
    config: &AttackConfig,
    defence: &str,
    undefended: Option<Rates>,
    e: Error,
    what: &str,
) -> Result<DefendedAttack> {
    if config.on_error != OnError::Skip {
        return Err(e);
    }
    let id = &config.id;
    tracing::warn!("attack `{id}` against defence `{defence}` failed and is skipped: {e}");
    let why = format!("the {what} attack failed: {e}");
    let (verdict, reason) = judge(None, None, None, None, Some(&why));
    Ok(DefendedAttack {
        id: id.clone(),
        uses_gradients: None,
        undefended,
        plain: None,
        adaptive: None,
        verdict,
        reason,
    })
}
