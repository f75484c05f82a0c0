//! The verdicts a reader should not have to work out from the tables: results voided by
//! constraint violations, a gain that may be gradient masking, a "robust" model that got
//! there by flagging everything.

use super::format::{pct, pp_change};
use super::metrics::{Metrics, Phase};

/// A false-positive rate rising by more than this after fine-tuning is flagged.
const FPR_RISE: f64 = 0.05;
/// Clean accuracy falling by more than this after fine-tuning is flagged.
const ACCURACY_DROP: f64 = 0.05;

/// The fewest detected positives (frauds flagged at the operating point, or examples an
/// attack at that point could attack) from which a rate is worth reading: below it, one
/// example moves a success rate by more than 10 points, so the run is a failed check.
pub const MIN_DETECTED: usize = 10;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Check {
    pub ok: bool,
    /// The run's numbers mean nothing (a degenerate model, nothing attacked, nothing trained
    /// against): `tempered run` exits non-zero.
    pub failed: bool,
    pub text: String,
}

fn warn(text: String) -> Check {
    Check { ok: false, failed: false, text }
}

fn ok(text: String) -> Check {
    Check { ok: true, failed: false, text }
}

fn fail(text: String) -> Check {
    Check { ok: false, failed: true, text }
}

/// The failed checks of a run, for the exit status.
pub fn failed(m: &Metrics) -> Vec<String> {
    checks(m).into_iter().filter(|c| c.failed).map(|c| c.text).collect()
}

pub(crate) fn checks(m: &Metrics) -> Vec<Check> {
    let mut out = degenerate(m);
    for s in &m.skipped {
        out.push(warn(format!("`{}` ({}) was skipped (`on_error = \"skip\"`): {}", s.id, s.phase, s.reason)));
    }
    let violations: usize = m.attacks.iter().map(|a| a.constraint_violations).sum();
    if violations > 0 {
        out.push(warn(format!(
            "{violations} adversarial example(s) broke the domain constraints or a declared budget: \
             they count as failed attacks, and the attack does not keep its own threat model."
        )));
    } else if m.attacks.iter().any(|a| a.attacked > 0) {
        // Over nothing attacked, "no violation" would be a check that was not made.
        out.push(ok("No adversarial example broke the domain constraints or a declared budget.".into()));
    }
    out.extend(unverified(m));
    out.extend(hardening_violations(m));
    out.extend(held_out_checks(m));
    if let Some(after) = &m.clean.after {
        let before = &m.clean.before;
        let fpr = before.false_positive_rate.zip(after.false_positive_rate);
        if let Some((b, a)) = fpr.filter(|(b, a)| a - b > FPR_RISE) {
            out.push(warn(format!(
                "The clean false-positive rate rose from {} to {} after fine-tuning: \
                 the model may buy robustness by flagging everything.",
                pct(b),
                pct(a)
            )));
        }
        if before.accuracy - after.accuracy > ACCURACY_DROP {
            out.push(warn(format!(
                "Clean accuracy fell from {} to {} ({}) after fine-tuning.",
                pct(before.accuracy),
                pct(after.accuracy),
                pp_change(before.accuracy, after.accuracy)
            )));
        }
    }
    out
}

/// Attacks whose budgets the host did not check: visible, never read as "0 violations".
fn unverified(m: &Metrics) -> Vec<Check> {
    let mut out = Vec::new();
    for id in m.attack_ids() {
        let Some(a) = m.attack(id, Phase::Before).or_else(|| m.attack(id, Phase::After)) else { continue };
        let what = match &a.budgets {
            None => "its plugin predates declared budgets (ABI 1.0)".to_owned(),
            Some(l) if l.is_empty() => "it declares no budget".to_owned(),
            Some(l) => {
                let open: Vec<&str> =
                    l.iter().filter(|c| c.violations.is_none()).map(|c| c.budget.as_str()).collect();
                if open.is_empty() {
                    continue;
                }
                format!("the host could not check {}", open.join(", "))
            }
        };
        out.push(warn(format!("The budgets of `{id}` are not verified by the host: {what}.")));
    }
    out
}

/// Results that are no results: they fail the run rather than read as robustness.
fn degenerate(m: &Metrics) -> Vec<Check> {
    let mut out = Vec::new();
    let clean = std::iter::once(("before", Some(&m.clean.before))).chain([("after", m.clean.after.as_ref())]);
    for (phase, c) in clean {
        if let Some(c) = c
            && c.examples < MIN_DETECTED
        {
            // A 12-row table leaves 3 test rows: every rate over them moves by a third.
            out.push(fail(format!(
                "The model {phase} fine-tuning was evaluated on {} example(s): fewer than \
                 {MIN_DETECTED}, so its accuracy and every rate measured on them are noise \
                 (more data, or a larger test split).",
                c.examples
            )));
        } else if let Some(c) = c
            && c.predicted_classes == Some(1)
            && c.examples > 1
        {
            out.push(fail(format!(
                "The model {phase} fine-tuning predicts the same class for all {} evaluated examples: \
                 it ignores its input, so its accuracy and robustness mean nothing.",
                c.examples
            )));
        }
    }
    let mut at_point = false;
    for (phase, c) in [("before", Some(&m.clean.before)), ("after", m.clean.after.as_ref())] {
        let Some(op) = c.and_then(|c| c.operating_point.as_ref()) else { continue };
        at_point = true;
        if op.detected < MIN_DETECTED {
            out.push(fail(format!(
                "The model {phase} fine-tuning detects {} of the {} positives of the evaluated split \
                 at its operating point (threshold {:.4}, chosen on validation): fewer than \
                 {MIN_DETECTED}, too few to measure an attack on (weigh the classes with \
                 `[train] class_weight`, or loosen the operating point).",
                op.detected, op.positives, op.threshold
            )));
        }
    }
    for a in &m.attacks {
        if a.examples == 0 {
            out.push(fail(format!(
                "`{}` ({}) had no example to attack: none of the evaluated examples is of the \
                 attack's `classes` (check them and `[evaluate] examples`).",
                a.id, a.phase
            )));
        } else if a.attacked == 0 {
            out.push(fail(format!(
                "`{}` ({}) attacked no example: the model got none of the {} evaluated examples of \
                 the attack's classes right, so no success rate exists.",
                a.id, a.phase, a.examples
            )));
        } else if at_point && a.attacked < MIN_DETECTED {
            out.push(fail(format!(
                "`{}` ({}) attacked {} example(s), the ones detected at the operating point: fewer \
                 than {MIN_DETECTED}, so its success rate is noise.",
                a.id, a.phase, a.attacked
            )));
        }
    }
    match m.hardening {
        Some(h) if h.examples == 0 => out.push(fail(
            "The hardening attack was handed no training example (none is of its `classes`, or no \
             epoch was adversarial): the model was trained against nothing."
                .into(),
        )),
        Some(h) if h.changed == 0 => out.push(fail(format!(
            "The hardening attack changed none of the {} training examples it was given: \
             the model was trained against nothing (check its steps and budget).",
            h.examples
        ))),
        _ => {}
    }
    out
}

/// Hardening examples the host refused: trained on as their originals, but a sign the
/// attack breaks its own threat model.
fn hardening_violations(m: &Metrics) -> Option<Check> {
    let h = m.hardening.filter(|h| h.violations > 0)?;
    Some(warn(format!(
        "{} of the {} hardening examples broke the attack's rules or budgets: the host trained on \
         their originals instead.",
        h.violations, h.examples
    )))
}

/// Robust-accuracy change of every attack id measured in both phases:
/// `(id, trained_against, before, after)`.
fn robust_changes(m: &Metrics) -> Vec<(&str, bool, f64, f64)> {
    m.attack_ids()
        .into_iter()
        .filter_map(|id| {
            let b = m.attack(id, Phase::Before)?;
            let a = m.attack(id, Phase::After)?;
            let (before, after) = (b.robust_accuracy, a.robust_accuracy);
            // A rate that does not exist supports no verdict either way.
            (before.is_finite() && after.is_finite()).then_some((
                id,
                b.trained_against || a.trained_against,
                before,
                after,
            ))
        })
        .collect()
}

fn held_out_checks(m: &Metrics) -> Vec<Check> {
    let changes = robust_changes(m);
    if changes.is_empty() {
        return Vec::new();
    }
    let held_out: Vec<_> = changes.iter().filter(|c| !c.1).collect();
    if held_out.is_empty() {
        return vec![warn(
            "Every attack was used in fine-tuning: with no held-out attack, a robustness gain \
             cannot be told apart from gradient masking."
                .into(),
        )];
    }
    let trained_gain = changes.iter().any(|c| c.1 && c.3 > c.2);
    held_out
        .into_iter()
        .map(|&(id, _, before, after)| {
            let change = format!("{} → {}, {}", pct(before), pct(after), pp_change(before, after));
            if after > before {
                ok(format!(
                    "Held-out attack `{id}`: robust accuracy {change}: \
                     the gain carries over to an attack the model was never trained against."
                ))
            } else if trained_gain {
                warn(format!(
                    "Held-out attack `{id}`: robust accuracy {change} while trained-against \
                     attacks improved: the robustness does not carry over to this threat model \
                     (or the gain is gradient masking)."
                ))
            } else {
                warn(format!("Held-out attack `{id}`: robust accuracy {change}: no gain."))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::metrics::tests::sample;

    #[test]
    fn sample_run_passes() {
        let c = checks(&sample());
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        assert!(c.iter().any(|c| c.text.contains("`hopskip-l2`")));
    }

    #[test]
    fn budgets_the_host_did_not_check_are_said_to_be_unverified() {
        let mut m = sample();
        let unverified = |m: &Metrics| -> Vec<String> {
            checks(m).into_iter().filter(|c| c.text.contains("not verified")).map(|c| c.text).collect()
        };
        assert!(unverified(&m).is_empty());
        let pgd: Vec<usize> = (0..m.attacks.len()).filter(|&i| m.attacks[i].id == "pgd-linf-0.5").collect();
        for &i in &pgd {
            m.attacks[i].budgets = None;
        }
        assert_eq!(
            unverified(&m),
            [
                "The budgets of `pgd-linf-0.5` are not verified by the host: its plugin predates declared budgets (ABI 1.0)."
            ]
        );
        m.attacks[pgd[0]].budgets = Some(Vec::new());
        assert!(unverified(&m)[0].ends_with("it declares no budget."));
        m.attacks[pgd[0]].budgets = Some(vec![crate::report::BudgetCheck {
            budget: "sentence similarity ≥ 0.8".into(),
            violations: None,
            not_verified: Some("no encoder".into()),
        }]);
        assert!(unverified(&m)[0].ends_with("the host could not check sentence similarity ≥ 0.8."));
        assert!(checks(&m).iter().all(|c| !c.failed), "unverified is a warning, not a failed run");
    }

    #[test]
    fn flags_masking_violations_and_flag_everything() {
        let mut m = sample();
        m.attacks[3].robust_accuracy = 0.2; // held-out attack, after: worse than before
        m.attacks[2].constraint_violations = 3;
        m.clean.after.as_mut().unwrap().false_positive_rate = Some(0.9);
        m.clean.after.as_mut().unwrap().accuracy = 0.5;
        let c = checks(&m);
        let warnings: Vec<_> = c.iter().filter(|c| !c.ok).map(|c| c.text.as_str()).collect();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with("3 adversarial"));
        assert!(warnings[1].contains("gradient masking"));
        assert!(warnings[2].contains("flagging everything"));
        assert!(warnings[3].contains("-47.1 pp"));
    }

    #[test]
    fn degenerate_results_fail_the_run() {
        let m = sample();
        assert!(failed(&m).is_empty());

        let mut one_class = sample();
        one_class.clean.after.as_mut().unwrap().predicted_classes = Some(1);
        let f = failed(&one_class);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("after fine-tuning predicts the same class for all 1000"), "{f:?}");

        let mut nothing_attacked = sample();
        nothing_attacked.attacks[1].attacked = 0;
        assert!(failed(&nothing_attacked)[0].contains("`hopskip-l2` (before) attacked no example"));

        let mut nothing_of_the_class = sample();
        for a in &mut nothing_of_the_class.attacks {
            (a.examples, a.attacked, a.successes) = (0, 0, 0);
            (a.success_rate, a.robust_accuracy) = (f64::NAN, f64::NAN);
        }
        nothing_of_the_class.hardening =
            Some(crate::report::HardeningStats { examples: 0, changed: 0, violations: 0 });
        let c = checks(&nothing_of_the_class);
        let fails: Vec<_> = c.iter().filter(|c| c.failed).map(|c| c.text.as_str()).collect();
        assert_eq!(fails.len(), 5, "{fails:?}");
        assert!(
            fails[0].contains("had no example to attack") && fails[4].contains("handed no training example")
        );
        assert!(c.iter().all(|c| !c.ok), "no green check over nothing: {c:?}");

        let mut no_op = sample();
        no_op.hardening = Some(crate::report::HardeningStats { examples: 640, changed: 0, violations: 0 });
        assert!(failed(&no_op)[0].contains("changed none of the 640 training examples"));
    }

    fn at_point(detected: usize, positives: usize) -> crate::report::OperatingPointMetrics {
        let v = crate::report::AtThreshold {
            examples: 500,
            positives: 30,
            detected: 12,
            false_positive_rate: 0.01,
            precision: 0.5,
            recall: 0.4,
        };
        crate::report::OperatingPointMetrics {
            target: crate::pipeline::Target::Fpr(0.01),
            threshold: 0.2,
            detected,
            positives,
            validation: v,
        }
    }

    #[test]
    fn too_few_detected_positives_fail_the_run() {
        let mut m = sample();
        m.clean.before.operating_point = Some(at_point(25, 60));
        m.clean.after.as_mut().unwrap().operating_point = Some(at_point(MIN_DETECTED, 60));
        assert!(failed(&m).is_empty(), "{:?}", failed(&m));
        m.clean.after.as_mut().unwrap().operating_point = Some(at_point(MIN_DETECTED - 1, 60));
        let f = failed(&m);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("after fine-tuning detects 9 of the 60 positives"), "{f:?}");

        let mut few_attacked = sample();
        few_attacked.clean.before.operating_point = Some(at_point(25, 60));
        few_attacked.attacks[1].attacked = 3;
        let f = failed(&few_attacked);
        assert!(f.len() == 1 && f[0].contains("`hopskip-l2` (before) attacked 3 example(s)"), "{f:?}");
        // Without an operating point the run is judged as before.
        few_attacked.clean.before.operating_point = None;
        assert!(failed(&few_attacked).is_empty());
    }

    #[test]
    fn skipped_attacks_are_listed() {
        let mut m = sample();
        m.skipped.push(crate::report::Skipped {
            id: "hopskip-l2".into(),
            phase: Phase::After,
            reason: "plugin `x`: panicked".into(),
        });
        let c = checks(&m);
        assert!(
            c.iter()
                .any(|c| !c.ok && !c.failed && c.text.contains("was skipped") && c.text.contains("panicked"))
        );
    }

    #[test]
    fn no_held_out_attack_is_flagged() {
        let mut m = sample();
        m.attacks.iter_mut().for_each(|a| a.trained_against = true);
        assert!(checks(&m).iter().any(|c| !c.ok && c.text.contains("no held-out attack")));
    }
}
