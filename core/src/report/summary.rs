//! The one-screen plain-text summary printed at the end of a run.

use std::fmt::Write;

use super::checks::checks;
use super::format::{CLEAN_ROWS, CleanRow, MISSING, duration, pct, phase_rank, with_unit};
use super::metrics::{AttackMetrics, CleanMetrics, Metrics, Phase};

/// Attack rows shown before "… and N more"; keeps the summary on one screen.
const MAX_ATTACKS: usize = 10;
/// Terminal width the checks are wrapped to.
const WIDTH: usize = 100;

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

/// Pads every column to its widest cell; a row shorter than the widest is left as is.
fn aligned(out: &mut String, align: &[Align], rows: &[Vec<String>]) {
    let mut widths = vec![0; align.len()];
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for ((c, w), a) in row.iter().zip(&widths).zip(align) {
            let _ = match a {
                Align::Left => write!(line, "{c:<w$}  "),
                Align::Right => write!(line, "{c:>w$}  "),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// One column of `before → after` cells, each side right-aligned so the arrows line up;
/// just `before` where no value has an after.
fn before_after(pairs: Vec<(String, Option<String>)>) -> Vec<String> {
    let wb = pairs.iter().map(|(b, _)| b.chars().count()).max().unwrap_or(0);
    let wa = pairs.iter().filter_map(|(_, a)| a.as_ref()).map(|a| a.chars().count()).max().unwrap_or(0);
    pairs
        .into_iter()
        .map(|(b, a)| match a {
            Some(a) => format!("{b:>wb$} → {a:>wa$}"),
            None => format!("{b:>wb$}"),
        })
        .collect()
}

pub fn summary(metrics: &Metrics) -> String {
    let m = metrics;
    let mut out = format!("Tempered · {} · {} · seed {}\n\n", m.pipeline, m.modality, m.seed);
    clean(&mut out, &m.clean.before, m.clean.after.as_ref());
    attacks(&mut out, m);
    seconds(&mut out, m);
    // Warnings all matter; of the passed checks only the held-out verdict answers a question
    // the tables leave open.
    let mut shown: Vec<_> =
        checks(m).into_iter().filter(|c| !c.ok || c.text.starts_with("Held-out")).collect();
    // A failed check is the first thing to read.
    shown.sort_by_key(|c| !c.failed);
    for c in shown.iter().take(5) {
        let tag = if c.failed {
            "FAIL"
        } else if c.ok {
            "ok  "
        } else {
            "WARN"
        };
        for (i, line) in wrap(&c.text.replace('`', ""), WIDTH - 5).iter().enumerate() {
            let _ = writeln!(out, "{} {line}", if i == 0 { tag } else { "    " });
        }
    }
    out
}

/// Greedy word wrap; a word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn clean(out: &mut String, before: &CleanMetrics, after: Option<&CleanMetrics>) {
    let shown: Vec<(&str, &CleanRow)> = CLEAN_ROWS
        .iter()
        .filter_map(|row| row.short.map(|label| (label, row)))
        .filter(|(_, row)| (row.get)(before).is_some() || after.and_then(row.get).is_some())
        .collect();
    let values = before_after(
        shown
            .iter()
            .map(|(_, row)| (row.show((row.get)(before)), after.map(|a| row.show((row.get)(a)))))
            .collect(),
    );
    let labels = shown.iter().map(|(label, _)| label);
    let mut rows = vec![vec!["clean".into(), if after.is_some() { "before → after" } else { "" }.into()]];
    rows.extend(labels.zip(values).map(|(l, v)| vec![format!("  {l}"), v]));
    aligned(out, &[Align::Left, Align::Right], &rows);
    out.push('\n');
}

fn attacks(out: &mut String, m: &Metrics) {
    let ids: Vec<&str> = m.attack_ids().into_iter().take(MAX_ATTACKS).collect();
    if ids.is_empty() {
        return;
    }
    let runs: Vec<_> =
        ids.iter().map(|id| (m.attack(id, Phase::Before), m.attack(id, Phase::After))).collect();
    let column = |show: &dyn Fn(&AttackMetrics) -> String| {
        before_after(
            runs.iter().map(|(b, a)| (b.map_or_else(|| MISSING.to_string(), show), a.map(show))).collect(),
        )
    };
    let success = column(&|x| pct(x.success_rate));
    let robust = column(&|x| pct(x.robust_accuracy));
    let perturbation = column(&|x| with_unit(x.mean_perturbation, &x.perturbation_unit));
    let mut rows = vec![
        ["attack", "trained", "success rate", "robust accuracy", "perturbation"].map(String::from).to_vec(),
    ];
    for (i, (id, (b, a))) in ids.iter().zip(&runs).enumerate() {
        let trained = b.iter().chain(a).any(|x| x.trained_against);
        rows.push(vec![
            format!("  {id}"),
            if trained { "yes".into() } else { "HELD OUT".into() },
            success[i].clone(),
            robust[i].clone(),
            perturbation[i].clone(),
        ]);
    }
    use Align::*;
    aligned(out, &[Left, Left, Right, Right, Right], &rows);
    let hidden = m.attack_ids().len() - ids.len();
    if hidden > 0 {
        let _ = writeln!(out, "  … and {hidden} more in report.md");
    }
    out.push('\n');
}

fn seconds(out: &mut String, m: &Metrics) {
    if m.seconds.is_empty() {
        return;
    }
    // The engine records the wall time of the whole run as "total": it is the headline,
    // not one more phase to add up.
    let mut phases: Vec<(&String, &f64)> = m.seconds.iter().filter(|(name, _)| *name != "total").collect();
    phases.sort_by_key(|(name, _)| (phase_rank(name), name.as_str()));
    let total = m
        .seconds
        .get("total")
        .copied()
        .unwrap_or_else(|| phases.iter().map(|(_, s)| **s).filter(|s| s.is_finite()).sum());
    let parts: Vec<String> = phases.iter().map(|(name, s)| format!("{name} {}", duration(**s))).collect();
    let line = format!("time {}: {}", duration(total), parts.join(" · "));
    for (i, l) in wrap(&line, WIDTH - 5).iter().enumerate() {
        let _ = writeln!(out, "{}{l}", if i == 0 { "" } else { "     " });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::metrics::tests::sample;

    #[test]
    fn fits_one_screen_and_aligns() {
        let s = summary(&sample());
        println!("{s}");
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines.len() <= 25, "{s}");
        assert_eq!(lines[0], "Tempered · fraud-mlp · tabular · seed 42");
        assert!(s.contains("  accuracy              97.1% → 96.2%\n"), "{s}");
        assert!(
            s.contains("  hopskip-l2    HELD OUT  70.0% → 30.0%    29.0% → 66.0%  0.123 L∞ → 0.123 L∞\n"),
            "{s}"
        );
        assert!(
            s.contains("time 4 m 24 s: train 1 m 02 s · attack_before 30.5 s · finetune 2 m 20 s"),
            "{s}"
        );
        assert!(s.contains("ok   Held-out attack hopskip-l2"), "{s}");
        assert!(s.contains("\n     an attack the model was never trained against.\n"), "{s}");
        let arrow_at = |l: &&str| l.chars().position(|c| c == '→');
        let clean: Vec<_> = lines[3..7].iter().map(arrow_at).collect();
        assert!(clean[0].is_some() && clean.iter().all(|a| *a == clean[0]), "{s}");
        let attacks: Vec<_> = lines[9..11].iter().map(arrow_at).collect();
        assert!(attacks[0].is_some() && attacks[0] == attacks[1], "{s}");
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH), "{s}");
    }

    #[test]
    fn the_run_total_is_the_headline_not_a_phase() {
        let mut m = sample();
        m.seconds.insert("total".into(), 300.0);
        let s = summary(&m);
        assert!(s.contains("time 5 m 00 s: train 1 m 02 s"), "{s}");
        assert!(!s.contains("total"), "{s}");
    }

    #[test]
    fn many_attacks_are_cut() {
        let mut m = sample();
        m.attacks = (0..30)
            .map(|i| crate::report::metrics::tests::attack(&format!("a{i}"), Phase::Before, i > 0, 0.5, 0.5))
            .collect();
        m.clean.after = None;
        let s = summary(&m);
        assert!(s.lines().count() <= 25, "{s}");
        assert!(s.contains("… and 20 more in report.md"), "{s}");
        assert!(!s.contains('→'), "{s}");
    }
}
