//! The last phase: plots, the modality's own sections, adversarial samples and the training
//! log, then metrics.json and report.md, each written whole.

use std::time::Instant;

use crate::data::Labelled;
use crate::modality::{Task, sanitize};
use crate::pipeline::Pipeline;
use crate::report::{self, Metrics, Phase, Section};
use crate::train::TrainState;
use crate::{Error, Result};

use super::RunDir;
use super::attacks::Samples;

/// A precision-recall curve, as (recall, precision) points.
pub(super) type Curve = Vec<(f64, f64)>;

/// What the earlier phases hand the report besides the metrics.
pub(super) struct Outputs {
    pub samples: Samples,
    pub clean_log: TrainState,
    pub harden_log: Option<TrainState>,
    /// Precision-recall before hardening, when the task is binary.
    pub pr_before: Option<Curve>,
    /// After hardening: `None` when nothing was hardened.
    pub pr_after: Option<Option<Curve>>,
}

/// Writes the report of a finished run, and metrics.json once more with the report's
/// own time and any figures the modality's sections add.
pub(super) fn report(
    pipeline: &Pipeline,
    task: &dyn Task,
    split: &Labelled,
    dir: &RunDir,
    metrics: &mut Metrics,
    out: &Outputs,
) -> Result<()> {
    let t = Instant::now();
    let mut sections = Vec::new();
    if pipeline.spec.report().plots {
        let plots = plots(task, dir, metrics, out)?;
        if !plots.is_empty() {
            let refs: Vec<(&str, &str)> = plots.iter().map(|(t, f)| (*t, f.as_str())).collect();
            sections.push(Section::plots(&refs));
        }
    }
    sections.extend(task.report_sections(pipeline, metrics, split));
    for (label, s) in &out.samples {
        if !s.is_empty() {
            let dir_samples = dir.path.join("samples");
            std::fs::create_dir_all(&dir_samples).map_err(|e| Error::io(&dir_samples, e))?;
            task.save_samples(&dir_samples, label, s)?;
            sections
                .push(Section::new(format!("Adversarial examples: {label}"), task.render_samples(label, s)));
        }
    }
    sections.push(Section::new("Training", training_table(&out.clean_log, out.harden_log.as_ref())));
    metrics.seconds.insert("report".to_owned(), t.elapsed().as_secs_f64());
    metrics.write(dir.path.join("metrics.json"))?;
    let md = report::render(metrics, &sections);
    crate::files::write(&dir.path.join("report.md"), md.as_bytes())
}

/// Draws `plots/*.png`: precision-recall before and after (binary tasks), and each sweep
/// in the modality's [`SweepMetric`](crate::modality::SweepMetric). Returns (caption, file).
fn plots(
    task: &dyn Task,
    dir: &RunDir,
    metrics: &Metrics,
    out: &Outputs,
) -> Result<Vec<(&'static str, String)>> {
    let mut plots = Vec::new();
    std::fs::create_dir_all(dir.path.join("plots")).map_err(|e| Error::io(dir.path.join("plots"), e))?;
    if let Some(before) = &out.pr_before {
        let mut curves: Vec<(&str, &[(f64, f64)])> = vec![("before hardening", before)];
        if let Some(Some(after)) = &out.pr_after {
            curves.push(("after hardening", after));
        }
        report::plots::pr_curves(dir.path.join("plots/pr_curve.png"), &curves)?;
        plots.push(("Precision-recall, clean test split", "plots/pr_curve.png".to_owned()));
    }
    let metric = task.sweep_metric();
    for id in metrics.sweep_ids() {
        let unit = metrics
            .sweeps
            .iter()
            .find(|s| s.attack_id == id)
            .map(|s| s.budget_unit.clone())
            .unwrap_or_default();
        let mut series = Vec::new();
        for phase in [Phase::Before, Phase::After] {
            let points = metrics.sweep_series(id, phase, metric.value());
            if !points.is_empty() {
                series.push((format!("{phase}"), points));
            }
        }
        let refs: Vec<(&str, &[(f64, f64)])> =
            series.iter().map(|(l, p)| (l.as_str(), p.as_slice())).collect();
        let file = format!("plots/sweep-{}.png", sanitize(id));
        report::plots::sweep(dir.path.join(&file), &metric.title(id), &unit, metric.axis(), &refs)?;
        plots.push((metric.caption(), file));
    }
    Ok(plots)
}

fn training_table(clean: &TrainState, harden: Option<&TrainState>) -> String {
    let mut s = String::new();
    if let Some(epoch) = harden.and_then(|h| h.collapsed_at) {
        s.push_str(&format!(
            "⚠️ **Catastrophic overfitting at hardening epoch {epoch}:** accuracy under the probe \
             attack (the attack as evaluated, watching fast FGSM training) collapsed; training \
             stopped and the best epoch before it was kept.\n\n"
        ));
    }
    if let Some(epoch) = harden.and_then(|h| h.escalated_at) {
        s.push_str(&format!(
            "⚠️ **Fast FGSM training switched to the probe attack after hardening epoch {epoch}:** \
             the model beat its FGSM examples at least {:.0} points more often than the probe's \
             (the attack as evaluated), so its robustness against FGSM was not robustness against \
             the threat; the epochs after it trained with the probe's examples.\n\n",
            crate::train::ESCALATE_GAP * 100.0
        ));
    }
    s.push_str(
        "| phase | epoch | train loss | validation loss | validation accuracy | robust validation accuracy | probe accuracy | objective | seconds |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for state in std::iter::once(clean).chain(harden) {
        for e in &state.log {
            let best = if e.epoch == state.best_epoch { " (kept)" } else { "" };
            let pct = |a: Option<f64>| a.map_or("–".to_owned(), |a| format!("{:.2}%", a * 100.0));
            let (robust, probe) = (pct(e.robust_accuracy), pct(e.probe_accuracy));
            s.push_str(&format!(
                "| {} | {}{best} | {:.4} | {:.4} | {:.2}% | {robust} | {probe} | {:.4} | {:.1} |\n",
                state.phase,
                e.epoch,
                e.train_loss,
                e.validation_loss,
                e.validation_accuracy * 100.0,
                e.objective,
                e.seconds
            ));
        }
    }
    for state in std::iter::once(clean).chain(harden) {
        if let Some(decay) = state.weight_average {
            s.push_str(&format!(
                "\n{}: the validation columns and the kept epoch are of an exponential moving \
                 average of the weights (decay {decay}, about {:.0} steps); the train loss is of \
                 the weights as trained.\n",
                state.phase,
                1.0 / (1.0 - decay)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_table_says_when_an_average_of_the_weights_was_kept() {
        let clean = TrainState { phase: "clean".into(), ..Default::default() };
        let plain = TrainState { phase: "hardened".into(), ..Default::default() };
        assert!(!training_table(&clean, Some(&plain)).contains("moving average"));
        let averaged = TrainState { weight_average: Some(0.995), ..plain };
        let table = training_table(&clean, Some(&averaged));
        assert!(
            table.contains(
                "hardened: the validation columns and the kept epoch are of an exponential moving \
                            average of the weights (decay 0.995, about 200 steps)"
            ),
            "{table}"
        );
        assert!(!table.contains("clean: the validation"), "{table}");
    }
}
