//! The robustness–accuracy trade-off of a `[tradeoff]` run: every point's validation
//! numbers in `metrics.json`, and a report section with their table and plot.

use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::format::{MISSING, num, pct, score};
use super::metrics::Metrics;
use crate::Result;

/// `metrics.json` `tradeoff`: the sweep, measured on the validation split only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tradeoff {
    /// The swept setting, as `[tradeoff] param` names it (`beta`, `params.epsilon`).
    pub param: String,
    /// The clean metric: `pr_auc` for a binary task, else `accuracy`.
    pub clean_metric: String,
    /// The clean model's clean metric on validation, which the drops are measured from.
    #[serde(deserialize_with = "nan_if_null")]
    pub clean_model: f64,
    /// The rule: the largest drop of the clean metric allowed ...
    pub max_clean_drop: f64,
    /// ... and the attack whose robust accuracy is maximised (`null`: the worst case over
    /// every evaluated attack).
    pub robust_against: Option<String>,
    pub points: Vec<TradeoffPoint>,
    /// Index into `points` of the chosen point, whose model is the hardened model.
    pub chosen: usize,
    pub chosen_value: f64,
    /// The choice, in words.
    pub why: String,
    /// Whether the chosen point met the rule; `false` when none did (the smallest drop was
    /// taken instead).
    pub rule_met: bool,
    /// The plot, relative to the run folder, when one was drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plot: Option<String>,
}

/// One value of the swept setting: its hardened model on the validation split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TradeoffPoint {
    pub value: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub clean: f64,
    /// `clean_model − clean`: positive is a loss.
    #[serde(deserialize_with = "nan_if_null")]
    pub clean_drop: f64,
    pub attacks: Vec<PointAttack>,
    /// The robust accuracy the rule compares (see `robust_against`); `null` when no attack
    /// had an example to attack.
    #[serde(deserialize_with = "nan_if_null")]
    pub robust: f64,
    /// The hardening epoch kept, of those trained.
    pub best_epoch: usize,
    pub epochs_done: usize,
    /// Hardening and measuring this point.
    #[serde(default, deserialize_with = "nan_if_null")]
    pub seconds: f64,
}

/// One attack against one point's model, on validation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PointAttack {
    pub id: String,
    pub trained_against: bool,
    pub examples: usize,
    pub attacked: usize,
    pub successes: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub success_rate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub robust_accuracy: f64,
}

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Tradeoff {
    /// Attack ids with whether they were trained against, in the points' order.
    fn attack_ids(&self) -> Vec<(&str, bool)> {
        let mut ids: Vec<(&str, bool)> = Vec::new();
        for a in self.points.iter().flat_map(|p| &p.attacks) {
            if !ids.iter().any(|(id, _)| *id == a.id) {
                ids.push((&a.id, a.trained_against));
            }
        }
        ids
    }

    fn metric_name(&self) -> &'static str {
        if self.clean_metric == "pr_auc" { "PR-AUC" } else { "accuracy" }
    }

    /// The clean metric as the report shows it: PR-AUC as a score, accuracy as a rate.
    fn show_clean(&self, x: f64) -> String {
        if self.clean_metric == "pr_auc" { score(x) } else { pct(x) }
    }
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
        t.show_clean(t.clean_model),
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
        let mut row = vec![num(p.value), t.show_clean(p.clean), t.show_clean(p.clean_drop)];
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
