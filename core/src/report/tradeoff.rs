//! The robustness–accuracy trade-off of a `[tradeoff]` run in report.md: its table and
//! plot (the numbers are `metrics::tradeoff`).

use std::fmt::Write;
use std::path::Path;

use super::format::{MISSING, num, pct, score};
use super::metrics::Metrics;
pub use super::metrics::tradeoff::{PointAttack, Tradeoff, TradeoffPoint};
use crate::Result;

/// The clean metric as the report shows it: PR-AUC as a score, accuracy as a rate.
fn show_clean(t: &Tradeoff, x: f64) -> String {
    if t.clean_metric == "pr_auc" { score(x) } else { pct(x) }
}

fn label(id: &str, trained: bool) -> String {
    format!("{id} ({})", if trained { "trained against" } else { "held out" })
}

/// Draws clean metric against robust accuracy, one series per attack through the points in
/// sweep order, into `dir/plots/tradeoff.png`; returns that relative path.
pub fn plot(dir: &Path, t: &Tradeoff) -> Result<String> {
    let file = "plots/tradeoff.png";
    let series: Vec<(String, Vec<(f64, f64)>)> = t
        .attack_ids()
        .into_iter()
        .map(|(id, trained)| {
            let points = t
                .points
                .iter()
                .filter_map(|p| Some((p.attacks.iter().find(|a| a.id == id)?.robust_accuracy, p.clean)))
                .collect();
            (label(id, trained), points)
        })
        .collect();
    let refs: Vec<(&str, &[(f64, f64)])> = series.iter().map(|(l, p)| (l.as_str(), p.as_slice())).collect();
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| crate::Error::io(&plots, e))?;
    super::plots::sweep(
        dir.join(file),
        &format!("Trade-off over {} (validation)", t.param),
        "robust accuracy (validation)",
        &format!("clean {} (validation)", t.metric_name()),
        &refs,
    )?;
    Ok(file.to_owned())
}

/// The report section, when the run swept a trade-off.
pub fn render(out: &mut String, m: &Metrics) {
    let Some(t) = &m.tradeoff else { return };
    let metric = t.metric_name();
    out.push_str("## Robustness–accuracy trade-off (validation split)\n\n");
    let _ = writeln!(
        out,
        "Each value of `{}` hardened the same clean model independently; every number below is \
         on the **validation** split (clean model: {metric} {}). Rule: the highest robust \
         accuracy {} among the points that lose at most {} of clean {metric}. Only the chosen \
         point's model saw the test split, once, in the tables above.\n",
        t.param,
        show_clean(t, t.clean_model),
        t.robust_against.as_ref().map_or(
            "(worst case over the trained-against attacks; held-out ones are shown, never chosen by)"
                .to_owned(),
            |a| format!("against `{a}`")
        ),
        num(t.max_clean_drop),
    );
    if !t.rule_met {
        out.push_str(
            "⚠️ **No point met the rule**: the point with the smallest clean drop was taken; \
             its robustness was not bought within the allowed accuracy cost.\n\n",
        );
    }
    let ids = t.attack_ids();
    let mut header = vec![t.param.clone(), format!("clean {metric}"), "drop".into()];
    header.extend(ids.iter().map(|(id, trained)| format!("robust acc. `{}`", label(id, *trained))));
    header.extend(["kept epoch".into(), "chosen".into()]);
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", vec!["---"; header.len()].join("|"));
    for (i, p) in t.points.iter().enumerate() {
        let mut row = vec![num(p.value), show_clean(t, p.clean), show_clean(t, p.clean_drop)];
        for (id, _) in &ids {
            row.push(
                p.attacks.iter().find(|a| a.id == *id).map_or(MISSING.to_owned(), |a| pct(a.robust_accuracy)),
            );
        }
        row.push(format!("{} of {}", p.best_epoch, p.epochs_done));
        row.push(if i == t.chosen { "**✓**".into() } else { String::new() });
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let _ = writeln!(out, "\nChosen: `{} = {}`: {}\n", t.param, num(t.chosen_value), t.why);
    if let Some(plot) = &t.plot {
        let _ = writeln!(out, "![Clean {metric} against robust accuracy, validation split]({plot})\n");
    }
}
