//! report.md: what a reader needs to judge a run, tables first, raw numbers in metrics.json.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::checks::checks;
use super::format::{CLEAN_ROWS, MISSING, arrow, duration, num, pct, phase_rank, with_unit};
use super::metrics::{AttackMetrics, CleanMetrics, Metrics, OperatingPointMetrics, Phase};
use crate::pipeline::Target;

/// A modality-specific part of the report (adversarial examples, plots…), rendered as a
/// `##` section; `body` is Markdown.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub title: String,
    pub body: String,
}

impl Section {
    pub fn new(title: impl Into<String>, body: impl Into<String>) -> Self {
        Section { title: title.into(), body: body.into() }
    }

    /// A "Plots" section showing each `(caption, path)`; paths are relative to report.md,
    /// e.g. `plots/pr_curve.png`.
    pub fn plots(plots: &[(&str, &str)]) -> Self {
        let body = plots.iter().map(|(caption, path)| format!("![{caption}]({path})")).collect::<Vec<_>>();
        Section::new("Plots", body.join("\n\n"))
    }
}

/// The whole report.md; `sections` come after the built-in tables, before the timings.
pub fn render(metrics: &Metrics, sections: &[Section]) -> String {
    let m = metrics;
    let mut out = format!("# Tempered report: {}\n\n", cell(&m.pipeline));
    let _ = writeln!(out, "Pipeline `{}` · modality **{}** · seed **{}**\n", m.pipeline, m.modality, m.seed);
    render_checks(&mut out, m);
    render_clean(&mut out, &m.clean.before, m.clean.after.as_ref());
    render_attacks(&mut out, m);
    render_threat_models(&mut out, m);
    render_attack_details(&mut out, m);
    render_sweeps(&mut out, m);
    super::tradeoff::render(&mut out, m);
    super::defences::render(&mut out, m);
    for s in sections {
        let _ = write!(out, "## {}\n\n{}\n\n", s.title, s.body.trim_end());
    }
    render_seconds(&mut out, m);
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Table cells must not break the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

fn render_checks(out: &mut String, m: &Metrics) {
    let checks = checks(m);
    if checks.is_empty() {
        return;
    }
    out.push_str("## Checks\n\n");
    for c in checks {
        let tag = if c.failed {
            "❌ **Failed:**"
        } else if c.ok {
            "✅"
        } else {
            "⚠️ **Warning:**"
        };
        let _ = writeln!(out, "- {tag} {}", c.text);
    }
    out.push('\n');
}

fn render_clean(out: &mut String, before: &CleanMetrics, after: Option<&CleanMetrics>) {
    out.push_str("## Clean test set\n\n");
    let mut table_rows = Vec::new();
    let at_point = before.operating_point.is_some();
    for row in &CLEAN_ROWS {
        let (b, a) = ((row.get)(before), after.and_then(row.get));
        if b.is_none() && a.is_none() {
            continue;
        }
        let label = if at_point {
            row.label.replace("threshold 0.5", "at the operating point")
        } else {
            row.label.to_string()
        };
        let mut cells = vec![label, row.show(b)];
        if after.is_some() {
            cells.extend([row.show(a), row.change(b, a)]);
        }
        table_rows.push(cells);
    }
    if let Some(op) = &before.operating_point {
        table_rows.extend(operating_rows(
            op,
            after.and_then(|a| a.operating_point.as_ref()),
            after.is_some(),
        ));
    }
    let mut examples = vec!["examples".to_string(), before.examples.to_string()];
    if let Some(a) = after {
        examples.extend([a.examples.to_string(), String::new()]);
    }
    table_rows.push(examples);
    let header: &[&str] =
        if after.is_some() { &["metric", "before", "after", "change"] } else { &["metric", "value"] };
    table(out, header, &table_rows);
}

/// The operating point's own rows: its threshold (re-chosen after fine-tuning), the
/// positives it detects here, and what it gave on the validation split it was chosen on.
fn operating_rows(
    before: &OperatingPointMetrics,
    after: Option<&OperatingPointMetrics>,
    has_after: bool,
) -> Vec<Vec<String>> {
    let target = match before.target {
        Target::Fpr(f) => format!("false-positive rate ≤ {}", pct(f)),
        Target::Precision(p) => format!("precision ≥ {}", pct(p)),
    };
    let row = |label: String, get: &dyn Fn(&OperatingPointMetrics) -> String| {
        let mut cells = vec![label, get(before)];
        if has_after {
            cells.extend([after.map_or_else(|| MISSING.to_string(), get), String::new()]);
        }
        cells
    };
    vec![
        row(format!("operating threshold (validation: {target})"), &|o| format!("{:.4}", o.threshold)),
        row("positives detected at it".into(), &|o| format!("{} of {}", o.detected, o.positives)),
        row("validation false-positive rate at it".into(), &|o| pct(o.validation.false_positive_rate)),
        row("validation recall at it".into(), &|o| pct(o.validation.recall)),
    ]
}

fn both<'a>(m: &'a Metrics, id: &str) -> (Option<&'a AttackMetrics>, Option<&'a AttackMetrics>) {
    (m.attack(id, Phase::Before), m.attack(id, Phase::After))
}

fn pair(
    b: Option<&AttackMetrics>,
    a: Option<&AttackMetrics>,
    show: impl Fn(&AttackMetrics) -> String,
) -> String {
    arrow(b.map(&show), a.map(&show))
}

fn render_attacks(out: &mut String, m: &Metrics) {
    let ids = m.attack_ids();
    if ids.is_empty() {
        return;
    }
    let has_after = m.attacks.iter().any(|a| a.phase == Phase::After);
    out.push_str(if has_after {
        "## Attacks: before → after adversarial fine-tuning\n\n"
    } else {
        "## Attacks\n\n"
    });
    let rows: Vec<Vec<String>> = ids
        .iter()
        .map(|id| {
            let (b, a) = both(m, id);
            let trained = b.into_iter().chain(a).any(|x| x.trained_against);
            let violations = pair(b, a, |x| x.constraint_violations.to_string());
            let any_violation = b.into_iter().chain(a).any(|x| x.constraint_violations > 0);
            vec![
                format!("`{}`", cell(id)),
                if trained { "yes".into() } else { "**no (held out)**".into() },
                pair(b, a, |x| pct(x.success_rate)),
                pair(b, a, |x| pct(x.robust_accuracy)),
                pair(b, a, |x| num(x.mean_queries)),
                pair(b, a, |x| with_unit(x.mean_perturbation, &cell(&x.perturbation_unit))),
                if any_violation { format!("**{violations}** ⚠️") } else { violations },
            ]
        })
        .collect();
    table(
        out,
        &[
            "attack",
            "trained against",
            "success rate",
            "robust accuracy",
            "mean queries",
            "mean perturbation",
            "constraint violations",
        ],
        &rows,
    );
    out.push_str(
        "Success rate counts the examples the model classified correctly before the attack; \
         robust accuracy is over all examples. Attacks marked **held out** were never used to \
         make fine-tuning examples: a gain against them is not an artefact of gradient masking.\n\n",
    );
}

/// What the host verified of each attack's declared budgets, before and after together.
fn render_threat_models(out: &mut String, m: &Metrics) {
    let ids = m.attack_ids();
    if ids.is_empty() {
        return;
    }
    out.push_str(
        "## Threat models checked by the host

",
    );
    for id in &ids {
        let (b, a) = both(m, id);
        let Some(first) = b.or(a) else { continue };
        let _ = write!(out, "- `{}` (`{}`): ", cell(id), cell(&first.attack));
        match &first.budgets {
            None => out.push_str(
                "**not verified by the host**: the plugin predates declared budgets (ABI 1.0),                  so only the modality's own rules were checked.
",
            ),
            Some(list) if list.is_empty() => out.push_str(
                "**not verified by the host**: the attack declares no budget, so only the                  modality's own rules were checked.
",
            ),
            Some(list) => {
                let parts: Vec<String> = list
                    .iter()
                    .enumerate()
                    .map(|(k, c)| {
                        let total: Option<usize> = b
                            .into_iter()
                            .chain(a)
                            .map(|x| x.budgets.as_ref().and_then(|l| l.get(k)).and_then(|c| c.violations))
                            .sum();
                        match (total, &c.not_verified) {
                            (Some(0), _) => format!("{}: 0 violations", c.budget),
                            (Some(v), _) => format!("{}: **{v} violations** ⚠️", c.budget),
                            (None, why) => format!(
                                "{}: **not verified by the host** ({})",
                                c.budget,
                                why.as_deref().unwrap_or("not checked")
                            ),
                        }
                    })
                    .collect();
                out.push_str(&parts.join("; "));
                out.push('\n');
            }
        }
    }
    out.push_str(
        "\nThe modality's own rules (a table's schema, a waveform's range, a text's word count) \
         are checked on every example whatever the attack declares.\n\n",
    );
}

/// Per-run counts and the modality-specific means in `extra` (cost, features changed…).
fn render_attack_details(out: &mut String, m: &Metrics) {
    if m.attacks.is_empty() {
        return;
    }
    let extra_keys: BTreeSet<&str> =
        m.attacks.iter().flat_map(|a| a.extra.keys().map(String::as_str)).collect();
    let mut header: Vec<String> =
        ["attack", "phase", "plugin / attack", "examples", "attacked", "successes", "time"]
            .map(String::from)
            .into();
    header.extend(extra_keys.iter().map(|k| k.replace('_', " ")));
    let mut attacks: Vec<&AttackMetrics> = m.attacks.iter().collect();
    let ids = m.attack_ids();
    attacks.sort_by_key(|a| (ids.iter().position(|id| *id == a.id), a.phase));
    let rows: Vec<Vec<String>> = attacks
        .iter()
        .map(|a| {
            let mut row = vec![
                format!("`{}`", cell(&a.id)),
                a.phase.to_string(),
                cell(&format!("{} / {}", a.plugin, a.attack)),
                a.examples.to_string(),
                a.attacked.to_string(),
                a.successes.to_string(),
                duration(a.seconds),
            ];
            row.extend(
                extra_keys.iter().map(|k| a.extra.get(*k).map_or_else(|| MISSING.into(), |v| num(*v))),
            );
            row
        })
        .collect();
    out.push_str("### Attack details\n\n");
    table(out, &header.iter().map(String::as_str).collect::<Vec<_>>(), &rows);
}

fn render_sweeps(out: &mut String, m: &Metrics) {
    let ids = m.sweep_ids();
    if ids.is_empty() {
        return;
    }
    out.push_str("## Attack success vs budget\n\n");
    for id in ids {
        let points: Vec<_> = m.sweeps.iter().filter(|s| s.attack_id == id).collect();
        let unit = points.first().map_or("", |p| p.budget_unit.as_str());
        let mut budgets: Vec<f64> = points.iter().map(|p| p.budget).collect();
        budgets.sort_by(f64::total_cmp);
        budgets.dedup();
        let at = |budget: f64, phase: Phase| points.iter().find(|p| p.budget == budget && p.phase == phase);
        let rows: Vec<Vec<String>> = budgets
            .iter()
            .map(|&budget| {
                let (b, a) = (at(budget, Phase::Before), at(budget, Phase::After));
                vec![
                    num(budget),
                    arrow(b.map(|p| pct(p.success_rate)), a.map(|p| pct(p.success_rate))),
                    arrow(b.map(|p| pct(p.robust_accuracy)), a.map(|p| pct(p.robust_accuracy))),
                ]
            })
            .collect();
        let budget_header =
            if unit.is_empty() { "budget".to_string() } else { format!("budget ({})", cell(unit)) };
        let _ = writeln!(out, "### `{}`\n", cell(id));
        table(out, &[&budget_header, "success rate", "robust accuracy"], &rows);
    }
}

fn render_seconds(out: &mut String, m: &Metrics) {
    if m.seconds.is_empty() {
        return;
    }
    // The engine records the run's wall time as `total`: a row of its own, never a phase to
    // add up (the phases' sum stands in for it in a run that predates it).
    let mut phases: Vec<(&String, &f64)> =
        m.seconds.iter().filter(|(name, _)| name.as_str() != "total").collect();
    phases.sort_by_key(|(name, _)| (phase_rank(name), name.as_str()));
    let summed: f64 = phases.iter().map(|(_, s)| **s).filter(|s| s.is_finite()).sum();
    let total = m.seconds.get("total").copied().filter(|t| t.is_finite()).unwrap_or(summed);
    let mut rows: Vec<Vec<String>> = phases
        .iter()
        .map(|&(name, &s)| vec![cell(name), duration(s), pct(if total > 0.0 { s / total } else { f64::NAN })])
        .collect();
    rows.push(vec!["**total**".into(), format!("**{}**", duration(total)), String::new()]);
    out.push_str("## Time per phase\n\n");
    table(out, &["phase", "time", "share"], &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::metrics::tests::sample;

    /// The run's wall time is the total row, once: not a phase, and not added to itself.
    #[test]
    fn the_time_table_counts_the_total_once() {
        let mut m = sample();
        m.seconds = std::collections::BTreeMap::from([
            ("load".into(), 1.0),
            ("train".into(), 3.0),
            ("total".into(), 4.5),
        ]);
        let mut out = String::new();
        render_seconds(&mut out, &m);
        assert!(!out.contains("| total |"), "{out}");
        assert!(out.contains("**4.50 s**"), "{out}");
        assert!(out.contains("| 1.00 s | 22.2% |") && out.contains("| 3.00 s | 66.7% |"), "{out}");
        m.seconds.remove("total");
        let mut out = String::new();
        render_seconds(&mut out, &m);
        assert!(out.contains("**4.00 s**"), "without a recorded total, the phases' sum: {out}");
    }

    #[test]
    fn report_has_every_part() {
        let plots = Section::plots(&[("Precision-recall", "plots/pr_curve.png")]);
        let md = render(&sample(), &[Section::new("Adversarial examples", "| a | b |\n"), plots]);
        for needle in [
            "# Tempered report: fraud-mlp",
            "modality **tabular** · seed **42**",
            "| accuracy | 97.1% | 96.2% | -0.9 pp |",
            "| PR-AUC (average precision) | 0.810 | 0.790 | -0.020 |",
            "| false-positive rate (threshold 0.5) | 0.4% | 0.6% | +0.2 pp |",
            "| `pgd-linf-0.5` | yes | 85.0% → 12.0% | 14.0% → 84.0% | 20.0 → 20.0 | 0.123 L∞ → 0.123 L∞ | 0 → 0 |",
            "| `hopskip-l2` | **no (held out)** | 70.0% → 30.0% |",
            "| mean cost | mean features changed |",
            "| 0.500 | 90.0% → 20.0% | 9.5% → 76.0% |",
            "## Adversarial examples\n\n| a | b |\n\n## Plots",
            "![Precision-recall](plots/pr_curve.png)",
            "| attack_before | 30.5 s | 11.6% |",
            "| **total** | **4 m 24 s** |  |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        let order = ["| train |", "| attack_before |", "| finetune |", "| attack_after |"];
        let at: Vec<usize> = order.iter().map(|n| md.find(n).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(!md.contains("NaN") && !md.ends_with("\n\n"));
    }

    #[test]
    fn without_fine_tuning_only_before_columns() {
        let mut m = sample();
        m.clean.after = None;
        m.attacks.retain(|a| a.phase == Phase::Before);
        m.attacks[0].constraint_violations = 2;
        m.attacks[0].id = "a|b".into();
        let md = render(&m, &[]);
        assert!(md.contains("| metric | value |\n"), "{md}");
        assert!(md.contains("## Attacks\n"), "{md}");
        assert!(md.contains("| `a\\|b` | yes | 85.0% | 14.0% |"), "{md}");
        assert!(md.contains("| **2** ⚠️ |"), "{md}");
        assert!(md.contains("⚠️ **Warning:** 2 adversarial"), "{md}");
    }
}
