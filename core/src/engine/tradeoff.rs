//! `[tradeoff]`: the hardening phase swept over one setting. Each value hardens the same
//! clean model (reloaded from its final commit, so every point starts exactly where a plain
//! run's hardening would), into checkpoints of its own (`harden-p<i>`), one point after
//! another with one model in memory. Each point's model is measured on the validation
//! split; the rule picks one on those numbers alone, and its model goes on to the "after"
//! phase, the only one that sees the evaluated split.

use std::time::Instant;

use crate::data::Labelled;
use crate::evaluate::{self, Decision};
use crate::modality::{self, Task};
use crate::pipeline::tradeoff::ChooseRule;
use crate::pipeline::{OnError, Pipeline, Target};
use crate::report::CleanMetrics;
use crate::report::tradeoff::{PointAttack, Tradeoff, TradeoffPoint};
use crate::train::Balance;
use crate::{Error, Result};

use super::artifact::{self, PhaseStore};
use super::attacks::Loaded;
use super::harden::{Hardened, harden_phase};
use super::{RunDir, clean_metrics_at, train_clean};

/// The checkpoint phase of point `i`.
fn phase(i: usize) -> String {
    format!("harden-p{i}")
}

/// Hardens once per value, measures each point on validation, and leaves the chosen
/// point's model in `task` (and in `checkpoints/hardened.safetensors`, for `tempered score`
/// and `[train] init`). Returns the chosen point's hardening and the sweep.
pub(super) fn sweep(
    pipeline: &Pipeline,
    task: &dyn Task,
    attacks: &mut [Loaded],
    dir: &RunDir,
    balance: &Balance,
) -> Result<(Hardened, Tradeoff)> {
    let t = pipeline.spec.tradeoff().expect("a [tradeoff] run");
    let validation = &task.parts().dataset.validation;
    let target = pipeline.spec.evaluate().operating_point.map(|op| op.target());
    let binary = task.positive_class().is_some();
    let (base, _, _) = clean_metrics_at(task, validation, target)?;
    let clean_model = clean_value(&base, binary);
    let mut points = Vec::new();
    for (i, &value) in t.values.iter().enumerate() {
        let started = Instant::now();
        if i > 0 {
            // Back to the clean model: its weights and random state, as its phase ended.
            train_clean(pipeline, task, dir, balance)?;
        }
        tracing::info!("[tradeoff] point {} of {}: {} = {value}", i + 1, t.values.len(), t.param);
        let hardened = harden_phase(&t.applied_to(pipeline, value), task, attacks, dir, balance, &phase(i))?;
        let m = Measure { pipeline, task, validation, target, binary, run: &dir.path };
        // Not `harden-p<i>`: the trainer's fail points of that phase are named so.
        let mut point = m.point(attacks, &t.param, value, &format!("tradeoff-p{i}"))?;
        point.clean_drop = clean_model - point.clean;
        point.robust = rule_robust(&point, &t.choose);
        point.best_epoch = hardened.log.best_epoch;
        point.epochs_done = hardened.log.epochs_done;
        point.seconds = started.elapsed().as_secs_f64();
        points.push(point);
    }
    let choice = choose(&points, &t.choose);
    let k = choice.index;
    let value = t.values[k];
    // The chosen model, reloaded from its final commit with its hardening counters.
    train_clean(pipeline, task, dir, balance)?;
    let hardened = harden_phase(&t.applied_to(pipeline, value), task, attacks, dir, balance, &phase(k))?;
    let ck = dir.checkpoints();
    let chosen_file = ck.join(format!("{}.safetensors", phase(k)));
    let bytes = std::fs::read(&chosen_file).map_err(|e| Error::io(&chosen_file, e))?;
    crate::files::write(&ck.join("hardened.safetensors"), &bytes)?;
    tracing::info!("[tradeoff] chose {} = {value}: {}", t.param, choice.why);
    let mut sweep = Tradeoff {
        param: t.param.clone(),
        clean_metric: if binary { "pr_auc" } else { "accuracy" }.to_owned(),
        clean_model,
        max_clean_drop: t.choose.max_clean_drop,
        robust_against: t.choose.attack.clone(),
        points,
        chosen: k,
        chosen_value: value,
        why: choice.why,
        rule_met: choice.rule_met,
        plot: None,
    };
    if pipeline.spec.report().plots {
        sweep.plot = Some(crate::report::tradeoff::plot(&dir.path, &sweep)?);
    }
    Ok((hardened, sweep))
}

/// PR-AUC for a binary task (the threshold is chosen again for every model, so accuracy at
/// it would compare different things), accuracy otherwise; NaN when undefined.
fn clean_value(m: &CleanMetrics, binary: bool) -> f64 {
    if binary { m.pr_auc.unwrap_or(f64::NAN) } else { m.accuracy }
}

/// What every point is measured with.
struct Measure<'a> {
    pipeline: &'a Pipeline,
    task: &'a dyn Task,
    validation: &'a Labelled,
    target: Option<Target>,
    binary: bool,
    /// The run folder, whose `phases/<point>` keep each attack's result.
    run: &'a std::path::Path,
}

impl Measure<'_> {
    /// The model as it is now, on validation: its clean metric, and every evaluated attack
    /// (each at its own seed, as the evaluation phases run it). Each attack is a unit of the
    /// phase `name` (`artifact.rs`), reused on resume when its inputs (this
    /// point's model among them) are unchanged.
    fn point(&self, attacks: &mut [Loaded], param: &str, value: f64, name: &str) -> Result<TradeoffPoint> {
        let (clean, _, decision): (_, _, Option<Decision>) =
            clean_metrics_at(self.task, self.validation, self.target)?;
        let ev = self.pipeline.spec.evaluate();
        let seed = self.pipeline.seed();
        let parts = self.task.parts();
        let mut units = artifact::Context::new(
            self.pipeline,
            parts.model.as_ref(),
            "validation",
            self.validation,
            decision,
        )?;
        let mut store = PhaseStore::new(self.run, name);
        let mut out = Vec::new();
        for loaded in attacks.iter_mut() {
            let id = loaded.config.id.clone();
            if ev.attacks.as_ref().is_some_and(|ids| !ids.contains(&id)) {
                continue;
            }
            let label = format!("{id} ({param} = {value}, validation)");
            let inputs = units.inputs(&id, &loaded.config, &loaded.params, &loaded.handle.plugin, 0)?;
            let measured = store.unit(&id, &inputs, || {
                let run = evaluate::Run::of_attack(self.pipeline, &loaded.config, decision, &label);
                let ctx = modality::context(self.task, seed, loaded.config.query_budget);
                let o = match evaluate::run(
                    &mut loaded.handle,
                    parts.model.as_ref(),
                    self.validation,
                    ctx,
                    parts.judge.as_ref(),
                    &run,
                ) {
                    Ok(o) => o,
                    Err(e) if loaded.config.on_error == OnError::Skip => {
                        tracing::warn!("{label} failed and is left out of the point: {e}");
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
                tracing::info!(
                    "{label}: success {:.1}% of {}, robust accuracy {:.1}%",
                    o.success_rate() * 100.0,
                    o.attacked,
                    o.robust_accuracy() * 100.0
                );
                Ok(Some(PointAttack {
                    trained_against: false,
                    id: id.clone(),
                    examples: o.examples,
                    attacked: o.attacked,
                    successes: o.successes,
                    success_rate: o.success_rate(),
                    robust_accuracy: o.robust_accuracy(),
                }))
            })?;
            if let Some(a) = measured {
                // What [harden] trains against is no input of the measurement: read it now.
                let trained_against = self.pipeline.spec.harden().attack.contains(&id);
                out.push(PointAttack { trained_against, ..a });
            }
        }
        Ok(TradeoffPoint {
            value,
            clean: clean_value(&clean, self.binary),
            clean_drop: f64::NAN,
            attacks: out,
            robust: f64::NAN,
            best_epoch: 0,
            epochs_done: 0,
            seconds: 0.0,
        })
    }
}

/// The attacks the rule may look at: the trained-against ones. A held-out attack is measured
/// and reported at every point but never chooses one: the model it is reported on must not
/// have been picked with its help.
fn trained_against(p: &TradeoffPoint) -> impl Iterator<Item = &PointAttack> {
    p.attacks.iter().filter(|a| a.trained_against)
}

/// The robust accuracy the rule compares: against its attack, or the worst case over the
/// trained-against attacks (undefined when any is, or when there is none).
fn rule_robust(p: &TradeoffPoint, rule: &ChooseRule) -> f64 {
    match &rule.attack {
        Some(id) => trained_against(p).find(|a| &a.id == id).map_or(f64::NAN, |a| a.robust_accuracy),
        None if trained_against(p).next().is_none() => f64::NAN,
        None => trained_against(p)
            .map(|a| a.robust_accuracy)
            .fold(f64::INFINITY, |m, r| if m.is_nan() || r.is_nan() { f64::NAN } else { m.min(r) }),
    }
}

/// The rule's pick and why.
#[derive(Debug, PartialEq)]
struct Choice {
    index: usize,
    rule_met: bool,
    why: String,
}

/// Every trained-against attack's robust accuracy, worst first; an undefined one counts as
/// the worst.
fn worst_first(p: &TradeoffPoint) -> Vec<f64> {
    let mut r: Vec<f64> = trained_against(p)
        .map(|a| if a.robust_accuracy.is_nan() { -1.0 } else { a.robust_accuracy })
        .collect();
    r.sort_by(f64::total_cmp);
    r
}

/// Whether `p` beats `q`: the higher robust number; on a tie the next-worst attacks
/// (a worst case measured on a few dozen examples ties often, and the other attacks still
/// tell the points apart), then the smaller drop. A full tie keeps the earlier point.
fn beats(p: &TradeoffPoint, q: &TradeoffPoint) -> bool {
    use std::cmp::Ordering::{Equal, Greater};
    let lexicographic = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| *o != Equal).unwrap_or(a.len().cmp(&b.len()))
    };
    match p.robust.total_cmp(&q.robust).then_with(|| lexicographic(&worst_first(p), &worst_first(q))) {
        Equal => p.clean_drop < q.clean_drop,
        o => o == Greater,
    }
}

/// Among the points within `max_clean_drop` whose robust number is defined, the highest
/// robust accuracy (ties: see [`beats`]). When none qualifies,
/// the smallest drop (the point closest to the clean model), flagged. Only what a point
/// holds is looked at: its validation numbers.
fn choose(points: &[TradeoffPoint], rule: &ChooseRule) -> Choice {
    let against = rule
        .attack
        .as_ref()
        .map_or("worst case over the trained-against attacks".to_owned(), |a| format!("`{a}`"));
    let within = |p: &TradeoffPoint| p.clean_drop <= rule.max_clean_drop && p.robust.is_finite();
    let mut best: Option<usize> = None;
    for (i, p) in points.iter().enumerate().filter(|(_, p)| within(p)) {
        if best.is_none_or(|b| beats(p, &points[b])) {
            best = Some(i);
        }
    }
    let qualified = points.iter().filter(|p| within(p)).count();
    if let Some(i) = best {
        let p = &points[i];
        return Choice {
            index: i,
            rule_met: true,
            why: format!(
                "the highest robust accuracy ({against}) on validation, {:.1}%, of the {qualified} of {} \
                 points that lose at most {} of the clean metric (this one: {:.4})",
                p.robust * 100.0,
                points.len(),
                rule.max_clean_drop,
                p.clean_drop
            ),
        };
    }
    let mut fallback = 0;
    for (i, p) in points.iter().enumerate() {
        let q = &points[fallback];
        if p.clean_drop < q.clean_drop || (q.clean_drop.is_nan() && !p.clean_drop.is_nan()) {
            fallback = i;
        }
    }
    Choice {
        index: fallback,
        rule_met: false,
        why: format!(
            "no point lost at most {} of the clean metric with a defined robust accuracy ({against}); \
             the point with the smallest loss ({:.4}) was taken",
            rule.max_clean_drop, points[fallback].clean_drop
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: f64, clean_drop: f64, robust: &[(&str, f64)]) -> TradeoffPoint {
        let attacks: Vec<PointAttack> = robust
            .iter()
            .map(|&(id, r)| PointAttack {
                id: id.into(),
                trained_against: !id.starts_with("held"),
                examples: 100,
                attacked: 100,
                successes: ((1.0 - r) * 100.0).round() as usize,
                success_rate: 1.0 - r,
                robust_accuracy: r,
            })
            .collect();
        let mut p = TradeoffPoint {
            value,
            clean: 0.9 - clean_drop,
            clean_drop,
            attacks,
            robust: f64::NAN,
            best_epoch: 1,
            epochs_done: 2,
            seconds: 0.0,
        };
        p.robust = rule_robust(&p, &ChooseRule::default());
        p
    }

    /// The rule reads only the points it is given, which hold validation numbers: here the
    /// same three models measured on the test split would choose β = 6, and on validation
    /// β = 3 is chosen (β = 6 loses too much clean accuracy there).
    #[test]
    fn the_point_is_chosen_on_validation() {
        let rule = ChooseRule { max_clean_drop: 0.02, attack: None };
        let validation = [
            point(1.0, 0.005, &[("pgd", 0.40), ("held", 0.35)]),
            point(3.0, 0.015, &[("pgd", 0.55), ("held", 0.50)]),
            point(6.0, 0.030, &[("pgd", 0.70), ("held", 0.65)]),
        ];
        let test = [
            point(1.0, 0.004, &[("pgd", 0.41), ("held", 0.30)]),
            point(3.0, 0.012, &[("pgd", 0.50), ("held", 0.44)]),
            point(6.0, 0.010, &[("pgd", 0.72), ("held", 0.66)]),
        ];
        let on_validation = choose(&validation, &rule);
        assert_eq!((on_validation.index, on_validation.rule_met), (1, true), "{on_validation:?}");
        assert!(
            on_validation.why.contains("55.0%") && on_validation.why.contains("2 of 3"),
            "{on_validation:?}"
        );
        assert_eq!(choose(&test, &rule).index, 2, "the test split would have chosen otherwise");
    }

    /// Two trained-against attacks (`[harden] attack = ["pgd", "fraudster"]`) and a held-out
    /// one that is never looked at.
    #[test]
    fn the_worst_trained_against_attack_decides_then_the_next_worst_then_the_drop() {
        let rule = ChooseRule { max_clean_drop: 0.05, attack: None };
        // Best against pgd, but the other trained-against attack breaks it; the held-out
        // attack would prefer 0.1 and is ignored.
        let pts = [
            point(0.1, 0.01, &[("pgd", 0.90), ("fraudster", 0.20), ("held", 0.90)]),
            point(0.2, 0.02, &[("pgd", 0.60), ("fraudster", 0.50), ("held", 0.10)]),
            point(0.3, 0.01, &[("pgd", 0.55), ("fraudster", 0.50), ("held", 0.10)]),
        ];
        assert_eq!(choose(&pts, &rule).index, 1, "0.2 ties 0.3 on the worst case and wins on pgd");
        let held_out_only = [
            point(0.1, 0.01, &[("pgd", 0.5), ("held", 0.1)]),
            point(0.2, 0.01, &[("pgd", 0.4), ("held", 0.9)]),
        ];
        assert_eq!(choose(&held_out_only, &rule).index, 0, "the held-out attack never chooses");
        let tied = [
            point(0.2, 0.02, &[("pgd", 0.6), ("fraudster", 0.5)]),
            point(0.3, 0.01, &[("fraudster", 0.5), ("pgd", 0.6)]),
        ];
        assert_eq!(choose(&tied, &rule).index, 1, "the same robustness: the smaller drop");
        let same = [point(0.2, 0.01, &[("pgd", 0.6)]), point(0.3, 0.01, &[("pgd", 0.6)])];
        assert_eq!(choose(&same, &rule).index, 0, "a full tie keeps the earlier point");
        let named = ChooseRule { max_clean_drop: 0.05, attack: Some("pgd".into()) };
        let pts: Vec<_> = pts
            .into_iter()
            .map(|mut p| {
                p.robust = rule_robust(&p, &named);
                p
            })
            .collect();
        assert_eq!(choose(&pts, &named).index, 0, "against pgd alone");
    }

    #[test]
    fn undefined_numbers_never_win_and_no_qualifier_is_flagged() {
        let rule = ChooseRule { max_clean_drop: 0.01, attack: None };
        let mut nan = point(1.0, 0.0, &[("pgd", f64::NAN), ("fraudster", 0.9)]);
        nan.robust = rule_robust(&nan, &rule);
        assert!(nan.robust.is_nan(), "one undefined attack makes the worst case undefined");
        let pts = [nan, point(2.0, 0.005, &[("pgd", 0.3)]), point(3.0, 0.2, &[("pgd", 0.9)])];
        assert_eq!(choose(&pts, &rule).index, 1);
        let strict = ChooseRule { max_clean_drop: 0.001, attack: None };
        let pts = [point(1.0, 0.03, &[("pgd", 0.5)]), point(2.0, 0.02, &[("pgd", 0.6)])];
        let c = choose(&pts, &strict);
        assert_eq!((c.index, c.rule_met), (1, false), "{c:?}");
        assert!(c.why.contains("smallest loss (0.0200)"), "{c:?}");
    }
}
