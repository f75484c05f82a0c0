//! The "defences" phase: after the last attack phase, each `[[defence]]` is put in front of
//! the final model and every evaluated attack is run against it, with the plain gradient and
//! with the adaptive one, on the same examples and seeds as the attack phase. A text defence
//! is judged by transfer and by attacks that query it instead ([`super::text`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Defended, Gradient, Preprocess, build, samples};
use crate::data::Labelled;
use crate::evaluate::{self, Decision, Outcome};
use crate::modality::{self, Task};
use crate::model::Classifier;
use crate::pipeline::defence::DefenceKind;
use crate::pipeline::{AttackConfig, OnError, Pipeline};
use crate::plugin_host::AttackHandle;
use crate::report::defences::{DefenceMetrics, DefendedAttack, Rates, judge};
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

/// Judges every `[[defence]]` of `pipeline` on the model of `phase` (the hardened one when
/// hardening ran), with the operating point's `decision` when there is one. The undefended
/// numbers are the phase's own (`metrics.attacks`), which the same seeds reproduce.
pub fn run(
    pipeline: &Pipeline,
    task: &dyn Task,
    attacks: &mut [Attack<'_>],
    split: &Labelled,
    phase: Phase,
    decision: Option<Decision>,
    metrics: &Metrics,
) -> Result<Vec<DefenceMetrics>> {
    let on = Judging { pipeline, task, split, phase, decision, metrics };
    let mut out = Vec::new();
    let model = task.parts().model.as_ref();
    let ev = pipeline.spec.evaluate();
    // A text attack's crafting against the undefended model, shared by the text defences.
    let mut crafted = HashMap::new();
    for config in pipeline.spec.defences() {
        if config.kind == DefenceKind::Spelling {
            out.push(super::text::run(&on, attacks, config, &mut crafted)?);
            continue;
        }
        let pre = build(config, task, pipeline.seed())?;
        let adaptive = Gradient::adaptive(pre.as_ref(), samples(config));
        let clean = on.clean(&Defended::new(model, pre.clone(), Gradient::Through))?;
        tracing::info!("defence `{}`: clean accuracy {:.1}% with it", config.id, clean.accuracy * 100.0);
        let mut rows = Vec::new();
        for a in attacks.iter_mut() {
            let id = &a.config.id;
            if ev.attacks.as_ref().is_some_and(|ids| !ids.contains(id)) {
                continue;
            }
            rows.push(judge_attack(&on, a, &pre, adaptive, &config.id)?);
        }
        out.push(DefenceMetrics {
            id: config.id.clone(),
            kind: config.kind.as_str().to_owned(),
            description: pre.describe(),
            phase,
            clean,
            plain_gradient: Gradient::Through.name(),
            adaptive_gradient: adaptive.name(),
            attacks: rows,
        });
    }
    Ok(out)
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

fn judge_attack(
    on: &Judging<'_>,
    a: &mut Attack<'_>,
    pre: &Arc<dyn Preprocess>,
    adaptive: Gradient,
    defence: &str,
) -> Result<DefendedAttack> {
    let Judging { pipeline, task, split, phase, decision, metrics } = *on;
    let config = a.config;
    let id = config.id.clone();
    let undefended = metrics.attack(&id, phase).map(Rates::of);
    let mut attack = |gradient: Gradient| -> Result<(Outcome, bool)> {
        let model = Defended::new(task.parts().model.as_ref(), pre.clone(), gradient);
        let label = format!("{id} vs {defence} ({})", gradient.name());
        let run = evaluate::Run::of_attack(pipeline, config, decision, &label);
        let ctx = modality::context(task, pipeline.seed(), config.query_budget);
        let o = evaluate::run(a.handle, &model, split, ctx, task.parts().judge.as_ref(), &run)?;
        log_outcome(&label, &o);
        Ok((o, model.gradient_calls() > 0))
    };
    let (plain, uses_gradients) = match attack(Gradient::Through) {
        Ok(v) => v,
        Err(e) => return failed(config, defence, undefended, e, "plain"),
    };
    let adaptive_outcome = if uses_gradients {
        match attack(adaptive) {
            Ok((o, _)) => Some(o),
            Err(e) => return failed(config, defence, undefended, e, "adaptive"),
        }
    } else {
        None
    };
    let plain = Some(rates(&plain));
    let adaptive = adaptive_outcome.as_ref().map(rates);
    let missing = undefended.is_none().then_some("the undefended attack did not run (skipped)");
    let (verdict, reason) =
        judge(undefended.as_ref(), plain.as_ref(), adaptive.as_ref(), Some(uses_gradients), missing);
    tracing::info!("defence `{defence}` against `{id}`: {} ({reason})", verdict.words());
    Ok(DefendedAttack {
        id,
        uses_gradients: Some(uses_gradients),
        undefended,
        plain,
        adaptive,
        verdict,
        reason,
    })
}
