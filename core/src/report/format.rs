//! Numbers for humans, shared by report.md and the terminal summary. A value that could not
//! be computed (`NaN`, `None`) prints as a dash rather than as "NaN%".

use super::metrics::CleanMetrics;

pub(crate) const MISSING: &str = "–";

/// One clean-set metric as the tables show it.
pub(crate) struct CleanRow {
    /// For report.md.
    pub label: &'static str,
    /// For the terminal summary; `None` leaves the row out there.
    pub short: Option<&'static str>,
    pub get: fn(&CleanMetrics) -> Option<f64>,
    /// A rate changes in percentage points; a score (PR-AUC) by its difference.
    pub is_rate: bool,
}

impl CleanRow {
    pub fn show(&self, x: Option<f64>) -> String {
        if self.is_rate { pct_opt(x) } else { score_opt(x) }
    }

    pub fn change(&self, before: Option<f64>, after: Option<f64>) -> String {
        match (before, after) {
            (Some(b), Some(a)) if self.is_rate => pp_change(b, a),
            (Some(b), Some(a)) if (a - b).is_finite() => format!("{:+.3}", a - b),
            _ => MISSING.into(),
        }
    }
}

pub(crate) const CLEAN_ROWS: [CleanRow; 6] = [
    CleanRow { label: "accuracy", short: Some("accuracy"), get: |c| Some(c.accuracy), is_rate: true },
    CleanRow {
        label: "PR-AUC (average precision)",
        short: Some("PR-AUC"),
        get: |c| c.pr_auc,
        is_rate: false,
    },
    CleanRow {
        label: "recall at 1% false positives",
        short: Some("recall @ 1% FPR"),
        get: |c| c.recall_at_1pct_fpr,
        is_rate: true,
    },
    CleanRow {
        label: "false-positive rate (threshold 0.5)",
        short: Some("false-positive rate"),
        get: |c| c.false_positive_rate,
        is_rate: true,
    },
    CleanRow { label: "precision (threshold 0.5)", short: None, get: |c| c.precision, is_rate: true },
    CleanRow { label: "recall (threshold 0.5)", short: None, get: |c| c.recall, is_rate: true },
];

/// A fraction as a percentage with one decimal: `0.1234` → `12.3%`.
pub(crate) fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.1}%", x * 100.0) } else { MISSING.into() }
}

pub(crate) fn pct_opt(x: Option<f64>) -> String {
    x.map_or_else(|| MISSING.into(), pct)
}

/// A difference of two fractions in percentage points, signed: `+1.2 pp`.
pub(crate) fn pp_change(before: f64, after: f64) -> String {
    let d = (after - before) * 100.0;
    if !d.is_finite() {
        return MISSING.into();
    }
    // Rounds to the shown precision first so that a tiny negative never reads `-0.0`.
    let d = (d * 10.0).round() / 10.0;
    if d == 0.0 { "±0.0 pp".into() } else { format!("{d:+.1} pp") }
}

/// A score in `0..=1` that is not a rate (PR-AUC): three decimals.
pub(crate) fn score(x: f64) -> String {
    if x.is_finite() { format!("{x:.3}") } else { MISSING.into() }
}

pub(crate) fn score_opt(x: Option<f64>) -> String {
    x.map_or_else(|| MISSING.into(), score)
}

/// About three significant digits, without scientific notation for everyday magnitudes.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return MISSING.into();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.001 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// A number followed by its unit, the way a reader says it: `0.123 L∞`, `12.5 % words`.
pub(crate) fn with_unit(x: f64, unit: &str) -> String {
    let n = num(x);
    if unit.is_empty() || n == MISSING { n } else { format!("{n} {unit}") }
}

/// `0.42 s`, `12.3 s`, `2 m 05 s`, `1 h 02 m`.
pub(crate) fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return MISSING.into();
    }
    if seconds < 10.0 {
        return format!("{seconds:.2} s");
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    if s < 3600 {
        format!("{} m {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} m", s / 3600, s % 3600 / 60)
    }
}

/// `before → after`, or just `before` when there is no after.
pub(crate) fn arrow(before: Option<String>, after: Option<String>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("{b} → {a}"),
        (Some(b), None) => b,
        (None, Some(a)) => format!("{MISSING} → {a}"),
        (None, None) => MISSING.into(),
    }
}

/// Pipeline phases in the order they run, then any other name alphabetically, so that a
/// BTreeMap's alphabetical order does not print "attack_after" before "train".
pub(crate) fn phase_rank(name: &str) -> u8 {
    let n = name.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&["load", "data", "prepare"]) {
        0
    } else if has(&["before"]) {
        2
    } else if has(&["after"]) {
        4
    } else if has(&["adv", "harden", "fine", "robust"]) {
        3
    } else if has(&["train", "fit"]) {
        1
    } else if has(&["report", "plot"]) {
        6
    } else {
        5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(pct(0.1234), "12.3%");
        assert_eq!(pct(f64::NAN), MISSING);
        assert_eq!(pct_opt(None), MISSING);
        assert_eq!(pp_change(0.971, 0.962), "-0.9 pp");
        assert_eq!(pp_change(0.5, 0.50001), "±0.0 pp");
        assert_eq!(pp_change(0.14, 0.84), "+70.0 pp");
        assert_eq!(score(0.8123), "0.812");
        assert_eq!(num(1234.6), "1235");
        assert_eq!(num(20.0), "20.0");
        assert_eq!(num(2.5), "2.50");
        assert_eq!(num(0.1234), "0.123");
        assert_eq!(num(0.0), "0");
        assert_eq!(with_unit(0.5, "L∞"), "0.500 L∞");
        assert_eq!(with_unit(f64::NAN, "L∞"), MISSING);
        assert_eq!(duration(0.421), "0.42 s");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 m 05 s");
        assert_eq!(duration(3725.0), "1 h 02 m");
        assert_eq!(arrow(Some("a".into()), None), "a");
    }

    #[test]
    fn phases_sort_in_pipeline_order() {
        let mut names = ["report", "attack_after", "finetune", "train", "attack_before", "load_data"];
        names.sort_by_key(|n| (phase_rank(n), *n));
        assert_eq!(names, ["load_data", "train", "attack_before", "finetune", "attack_after", "report"]);
    }
}
