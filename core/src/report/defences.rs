//! `[[defence]]` results: the numbers in `metrics.json` and the verdicts in report.md.
//!
//! The verdict rule, per (defence, attack), on robust accuracy over the attacked split
//! (the share of evaluated examples still right after the attack: one denominator for
//! all three runs, and a defence that costs clean accuracy pays for it here too):
//!
//! - the **gain** of a run is its robust accuracy minus the undefended model's;
//! - **not measured** when any of the three runs has no examples, failed or was skipped;
//! - **no gain** when the gain against the plain attack is under [`MIN_GAIN`];
//! - for an attack that asked no gradient, **holds against this query attack**: it saw
//!   the defence as deployed, and there is no gradient to adapt;
//! - **masked: falls to the adaptive attack** when the adaptive attack keeps less than
//!   [`KEPT_SHARE`] of the plain gain;
//! - **holds against the adaptive attack** otherwise.
//!
//! A text defence (`spelling`) has the same three runs with other names: "plain" is the
//! attack crafted against the undefended model and transferred (`transfer`), "adaptive" the
//! attack run with the defence inside the oracle (`query-defended`); text attacks only
//! query, so both always run and the full rule applies.

use std::fmt::Write;

use super::format::{MISSING, pct, pct_opt};
pub use super::metrics::defences::{DefenceMetrics, DefendedAttack, Rates, Verdict};
use super::metrics::{Metrics, Phase};

/// The smallest gain in robust accuracy (a fraction) that counts as a defence's gain.
pub const MIN_GAIN: f64 = 0.05;
/// The share of the plain gain an adaptive attack must leave for the defence to hold.
pub const KEPT_SHARE: f64 = 0.5;
/// How a text defence's runs are named in `plain_gradient` and `adaptive_gradient`.
pub const TRANSFER: &str = "transfer";
pub const QUERY_DEFENDED: &str = "query-defended";

fn points(x: f64) -> String {
    format!("{:+.1} points", x * 100.0)
}

/// The verdict and its reason (see the module's rule). `adaptive` is `None` for an attack
/// that asked no gradient; `why_missing` says why a run is absent.
pub fn judge(
    undefended: Option<&Rates>,
    plain: Option<&Rates>,
    adaptive: Option<&Rates>,
    uses_gradients: Option<bool>,
    why_missing: Option<&str>,
) -> (Verdict, String) {
    let not_measured = |why: String| (Verdict::NotMeasured, why);
    let ra = |r: Option<&Rates>| r.and_then(|r| r.robust_accuracy);
    let (Some(u), Some(p)) = (ra(undefended), ra(plain)) else {
        return not_measured(why_missing.map_or_else(
            || "no examples to attack, so no robust accuracy to compare".to_owned(),
            str::to_owned,
        ));
    };
    let plain_gain = p - u;
    if uses_gradients == Some(false) {
        return if plain_gain < MIN_GAIN {
            (
                Verdict::NoGain,
                format!(
                    "robust accuracy {} with the defence (less than {})",
                    points(plain_gain),
                    points(MIN_GAIN)
                ),
            )
        } else {
            (
                Verdict::HoldsQueryOnly,
                format!(
                    "robust accuracy {} with the defence; the attack only queries, so it has no gradient to adapt",
                    points(plain_gain)
                ),
            )
        };
    }
    let Some(a) = ra(adaptive) else {
        return not_measured(why_missing.unwrap_or("the adaptive attack has no examples").to_owned());
    };
    let adaptive_gain = a - u;
    if plain_gain < MIN_GAIN {
        return (
            Verdict::NoGain,
            format!(
                "robust accuracy {} against the plain attack (less than {}), {} against the adaptive one",
                points(plain_gain),
                points(MIN_GAIN),
                points(adaptive_gain)
            ),
        );
    }
    let kept = adaptive_gain / plain_gain;
    let numbers = format!(
        "robust accuracy {} against the plain attack, {} against the adaptive one ({:.0} % of the gain kept)",
        points(plain_gain),
        points(adaptive_gain),
        kept.max(0.0) * 100.0
    );
    if kept < KEPT_SHARE { (Verdict::Masked, numbers) } else { (Verdict::Holds, numbers) }
}

/// The report.md section; nothing without `[[defence]]`.
pub fn render(out: &mut String, m: &Metrics) {
    if m.defences.is_empty() {
        return;
    }
    out.push_str("## Preprocessing defences\n\n");
    let _ = writeln!(
        out,
        "Each defence is put in front of the final model and attacked twice: with the plain gradient \
         (through the preprocessing, what a naive attack sees) and with an adaptive one (BPDA: \
         backward as if the preprocessing were the identity; EOT: averaged over draws of a randomised \
         one). Verdict on robust accuracy: a defence is **masked** when the adaptive attack takes back \
         more than {:.0} % of its gain over no defence, **holds** otherwise; a gain under {:.0} points \
         is **no gain**.\n",
        (1.0 - KEPT_SHARE) * 100.0,
        MIN_GAIN * 100.0
    );
    for d in &m.defences {
        let undefended_clean = match d.phase {
            Phase::Before => Some(&m.clean.before),
            Phase::After => m.clean.after.as_ref(),
        };
        let _ = writeln!(
            out,
            "### `{}` ({}): {}\n\nOn the {} model: clean accuracy {} without it, {} with it; {}: plain `{}`, adaptive `{}`.\n",
            d.id,
            d.kind,
            d.description,
            if d.phase == Phase::After { "hardened" } else { "clean" },
            undefended_clean.map_or(MISSING.to_owned(), |c| pct(c.accuracy)),
            pct(d.clean.accuracy),
            if d.plain_gradient == TRANSFER { "runs" } else { "gradients" },
            d.plain_gradient,
            d.adaptive_gradient
        );
        if d.plain_gradient == TRANSFER {
            let _ = writeln!(
                out,
                "Text attacks only query the model, so \"plain\" is the attack crafted against the \
                 undefended model and its texts given to the defended one (transfer), and \"adaptive\" \
                 the attack run with the defence inside the oracle, free to look for edits it does not \
                 undo.\n"
            );
        }
        let _ = writeln!(
            out,
            "| attack | success: undefended | plain | adaptive | robust accuracy: undefended | plain | adaptive | verdict |\n|---|---|---|---|---|---|---|---|"
        );
        for a in &d.attacks {
            let sr = |r: &Option<Rates>| r.as_ref().map_or(MISSING.to_owned(), |r| pct_opt(r.success_rate));
            let ra =
                |r: &Option<Rates>| r.as_ref().map_or(MISSING.to_owned(), |r| pct_opt(r.robust_accuracy));
            let adaptive = |f: &dyn Fn(&Option<Rates>) -> String| {
                if a.uses_gradients == Some(false) && a.adaptive.is_none() {
                    "(query attack: as plain)".to_owned()
                } else {
                    f(&a.adaptive)
                }
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | **{}** |",
                a.id,
                sr(&a.undefended),
                sr(&a.plain),
                adaptive(&sr),
                ra(&a.undefended),
                ra(&a.plain),
                adaptive(&ra),
                a.verdict.words()
            );
        }
        out.push('\n');
        for a in &d.attacks {
            let _ =
                writeln!(out, "- `{}` against `{}`: **{}** — {}.", d.id, a.id, a.verdict.words(), a.reason);
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(examples: usize, attacked: usize, successes: usize) -> Rates {
        Rates::new(examples, attacked, successes, 0)
    }

    #[test]
    fn the_rule_separates_masked_from_holding() {
        let u = r(100, 90, 80); // robust accuracy 10 %
        // Plain: 60 %; adaptive back to 15 %: 10 % of a 50-point gain kept.
        let (v, why) = judge(Some(&u), Some(&r(100, 88, 28)), Some(&r(100, 88, 73)), Some(true), None);
        assert_eq!(v, Verdict::Masked, "{why}");
        assert!(why.contains("+50.0 points") && why.contains("+5.0 points"), "{why}");
        // Adaptive at 40 %: 60 % of the gain kept.
        let (v, _) = judge(Some(&u), Some(&r(100, 88, 28)), Some(&r(100, 88, 48)), Some(true), None);
        assert_eq!(v, Verdict::Holds);
        // Under 5 points of gain against the plain attack: nothing to judge.
        let (v, _) = judge(Some(&u), Some(&r(100, 90, 77)), Some(&r(100, 90, 80)), Some(true), None);
        assert_eq!(v, Verdict::NoGain);
        let (v, _) = judge(Some(&u), Some(&r(100, 88, 28)), None, Some(false), None);
        assert_eq!(v, Verdict::HoldsQueryOnly);
    }

    #[test]
    fn zero_examples_is_not_measured_never_zero() {
        let none = r(0, 0, 0);
        assert_eq!(none.robust_accuracy, None);
        assert_eq!(none.success_rate, None);
        let (v, why) = judge(Some(&none), Some(&none), Some(&none), Some(true), None);
        assert_eq!(v, Verdict::NotMeasured);
        assert!(why.contains("no examples"), "{why}");
        let (v, why) = judge(None, Some(&r(10, 5, 1)), None, None, Some("the attack was skipped"));
        assert_eq!((v, why.as_str()), (Verdict::NotMeasured, "the attack was skipped"));
    }
}
