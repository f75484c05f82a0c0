//! The "defences" phase: after the last attack phase, each `[[defence]]` is put in front of
//! the final model and every evaluated attack is run against it, with the plain gradient and
//! with the adaptive one, on the same examples and seeds as the attack phase. A text defence
//! is judged by transfer and by attacks that query it instead ([`super::text`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::judging::{Attack, Judging, failed, log_outcome, rates};
use super::{Defended, Gradient, Preprocess, build, samples};
use crate::Result;
use crate::data::Labelled;
use crate::evaluate::{self, Decision, Outcome};
use crate::modality::{self, Task};
use crate::pipeline::Pipeline;
use crate::pipeline::defence::DefenceKind;
use crate::report::defences::{DefenceMetrics, DefendedAttack, Rates, judge};
use crate::report::{Metrics, Phase};

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
