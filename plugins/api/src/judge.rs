//! How an adversarial example is judged against the modality's rules and a declared
//! [`ThreatModel`](crate::ThreatModel): the one definition the engine and the test
//! harness ([`testing::run`](crate::testing::run)) both apply, so a plugin that keeps its
//! budgets in its own tests keeps them in a pipeline.
//!
//! Each function compares one original with its adversarial example and returns a
//! [`Verdict`]. [`Budget::Queries`] needs the host's count and is checked by
//! [`queries`]; [`Budget::MinSimilarity`] needs a sentence encoder, passed to [`text`]
//! as a closure.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::abi::{FeatureKind, Modality};
use crate::column::Column;
use crate::constraints::TabularConstraints;
use crate::lexicon::Lexicon;
use crate::threat::{Budget, SynonymSource};

/// Slack for float round-off in a plugin's tabular projections (relative plus absolute).
pub const TABULAR_TOL: f64 = 1e-4;
/// Slack for a plugin's float arithmetic on an SNR, far below anything audible.
pub const SNR_TOL_DB: f64 = 1e-6;
/// How an infinite SNR (an unchanged row) is reported in means.
pub const SNR_CAP_DB: f64 = 200.0;

/// The verdict on one adversarial example.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// The size of the change in the modality's unit (tabular: cost; audio: dB SNR;
    /// text: % of words).
    pub perturbation: f64,
    /// Broken rules, the modality's own and the declared budgets: 0 for a valid example.
    pub violations: usize,
    /// What broke, one note per violation.
    pub notes: Vec<String>,
    /// Indices into the budgets judged of those this example broke.
    pub broken: Vec<usize>,
    /// Modality-specific figures (`features_changed`, `linf`, `words_changed`…).
    pub extra: Vec<(&'static str, f64)>,
}

impl Verdict {
    /// Records a broken rule of the modality (no budget).
    pub fn fail(&mut self, note: String) {
        self.violations += 1;
        self.notes.push(note);
    }

    /// Records that budget `k` broke.
    pub fn fail_budget(&mut self, k: usize, note: String) {
        self.broken.push(k);
        self.fail(note);
    }

    fn invalid(note: String) -> Self {
        Self { violations: 1, notes: vec![note], ..Default::default() }
    }
}

/// Whether `budget` can be checked on `modality`'s examples (with a sentence encoder at
/// hand, for `min_similarity`); the reason when it cannot, reported as "not verified".
pub fn verifies(modality: Modality, budget: &Budget, has_encoder: bool) -> Result<(), String> {
    match (budget.modality(), budget) {
        (_, Budget::MinSimilarity { .. }) if !has_encoder => {
            Err("the pipeline names no sentence encoder ([model] encoder) to check it with".into())
        }
        (Some(m), b) if m != modality => Err(format!("`{b}` is not a budget of {modality} examples")),
        _ => Ok(()),
    }
}

/// Adds a broken [`Budget::Queries`] to `v` when the host counted more than declared.
pub fn queries(v: &mut Verdict, asked: u64, budgets: &[Budget]) {
    for (k, b) in budgets.iter().enumerate() {
        if let Budget::Queries { max } = b
            && asked > *max
        {
            v.fail_budget(k, format!("{asked} queries, over the declared {max}"));
        }
    }
}

/// A table row: the schema (immutable columns, bounds, integers, binaries, one-hot
/// groups) and the pipeline's `constraints` (directions; relations that held on the
/// original must hold on the row), then `linf_std`, `l2_std` (continuous and integer
/// columns, in standard deviations) and `cost` (Σ cost_j·|Δ_j|, raw units). A derived
/// column follows its terms, so its change counts toward no budget. The perturbation is
/// the cost.
pub fn tabular(
    features: &[Column],
    constraints: &TabularConstraints,
    x: &[f32],
    z: &[f32],
    budgets: &[Budget],
) -> Verdict {
    if x.len() != features.len() || z.len() != features.len() {
        return Verdict::invalid(format!("a row of {} values, expected {}", z.len(), features.len()));
    }
    let mut v = Verdict::default();
    let (mut cost, mut changed, mut linf, mut l2) = (0.0f64, 0usize, 0.0f64, 0.0f64);
    for (j, f) in features.iter().enumerate() {
        let d = f64::from(z[j] - x[j]);
        let derived = constraints.is_derived(j);
        if d != 0.0 && !derived {
            changed += 1;
            cost += f64::from(f.cost) * d.abs();
            if matches!(f.kind, FeatureKind::Continuous | FeatureKind::Integer) {
                let s = d.abs() / f64::from(f.scale.max(f32::MIN_POSITIVE));
                linf = linf.max(s);
                l2 += s * s;
            }
        }
        if !f.mutable && !derived && d != 0.0 {
            v.fail(format!("immutable `{}` changed from {} to {}", f.name, x[j], z[j]));
        }
        let way = constraints.direction(j);
        if !way.allows(x[j], z[j]) {
            let may = if way == crate::Direction::Up { "up" } else { "down" };
            v.fail(format!("`{}` moved from {} to {}; it may only go {may}", f.name, x[j], z[j]));
        }
        let slack = TABULAR_TOL * (1.0 + f64::from((f.upper - f.lower).abs().min(1e6)));
        let zj = f64::from(z[j]);
        if d != 0.0 && (zj < f64::from(f.lower) - slack || zj > f64::from(f.upper) + slack) {
            v.fail(format!("`{}` = {} is outside [{}, {}]", f.name, z[j], f.lower, f.upper));
        }
        match f.kind {
            FeatureKind::Integer if z[j].fract() != 0.0 => v.fail(format!("integer `{}` = {}", f.name, z[j])),
            FeatureKind::Binary | FeatureKind::Categorical if z[j] != 0.0 && z[j] != 1.0 => {
                v.fail(format!("`{}` = {} is not 0 or 1", f.name, z[j]))
            }
            _ => {}
        }
    }
    let mut groups: Vec<u32> = features.iter().filter_map(|f| f.group).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let ones: f32 = features.iter().zip(z).filter(|(f, _)| f.group == Some(g)).map(|(_, &zj)| zj).sum();
        if ones != 1.0 {
            v.fail(format!("one-hot group {g} holds {ones} ones"));
        }
    }
    let name = |j: usize| features.get(j).map_or("?", |f| f.name.as_str());
    if let Some((a, b)) = constraints.forbidden_switch(x, z) {
        v.fail(format!("switched from `{}` to `{}`, which the pipeline does not allow", name(a), name(b)));
    }
    for r in &constraints.relations {
        if r.residual(x).abs() <= r.tolerance(x) && r.residual(z).abs() > r.tolerance(z) {
            let rhs: Vec<String> = r.terms.iter().map(|&(j, c)| format!("{c} × `{}`", name(j))).collect();
            v.fail(format!(
                "`{}` = {} breaks `{}` = {}{} = {}",
                name(r.column),
                z[r.column],
                name(r.column),
                rhs.join(" + "),
                if r.constant != 0.0 { format!(" + {}", r.constant) } else { String::new() },
                r.value(z)
            ));
        }
    }
    let l2 = l2.sqrt();
    let over = |size: f64, limit: f64| size > limit * (1.0 + TABULAR_TOL) + TABULAR_TOL;
    for (k, b) in budgets.iter().enumerate() {
        match *b {
            Budget::LinfStd { epsilon } if over(linf, epsilon) => {
                v.fail_budget(k, format!("L∞ change {linf:.5} std exceeds {epsilon}"))
            }
            Budget::L2Std { epsilon } if over(l2, epsilon) => {
                v.fail_budget(k, format!("L2 change {l2:.5} std exceeds {epsilon}"))
            }
            Budget::Cost { budget } if over(cost, budget) => {
                v.fail_budget(k, format!("cost {cost:.4} exceeds the budget {budget}"))
            }
            _ => {}
        }
    }
    v.perturbation = cost;
    v.extra = vec![("features_changed", changed as f64), ("linf_std", linf), ("l2_std", l2)];
    v
}

/// The SNR (dB) and L∞ distance of `adv` against `x`, summed in `f64`: +∞ dB for an
/// unchanged row, −∞ for noise on silence.
pub fn snr_and_linf(x: &[f32], adv: &[f32]) -> (f64, f64) {
    let (mut signal, mut noise, mut linf) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(adv) {
        let (a, b) = (f64::from(a), f64::from(b));
        signal += a * a;
        noise += (b - a) * (b - a);
        linf = linf.max((b - a).abs());
    }
    let snr = if noise == 0.0 {
        f64::INFINITY
    } else if signal == 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (signal / noise).log10()
    };
    (snr, linf)
}

/// The shift `s` (|s| ≤ `max`) with `z[t] = x[t − s]`, silence where `t − s` falls outside
/// the row, if there is one. A wrong shift shows within a few samples, so the search costs
/// little more than one pass per candidate.
pub fn shift_of(x: &[f32], z: &[f32], max: usize) -> Option<i64> {
    if x.len() != z.len() {
        return None;
    }
    let n = x.len() as i64;
    let max = (max as i64).min(n);
    let matches = |s: i64| {
        (0..n).all(|t| {
            let src = t - s;
            let want = if (0..n).contains(&src) { x[src as usize] } else { 0.0 };
            z[t as usize] == want
        })
    };
    (0..=max).flat_map(|d| [d, -d]).find(|&s| matches(s))
}

/// A waveform of `sample_rate` samples per second: every sample finite and within
/// [-1, 1], then `snr_floor`, `linf` and `time_shift`. The perturbation is the SNR over the
/// whole row, capped at ±[`SNR_CAP_DB`].
pub fn audio(sample_rate: u32, x: &[f32], z: &[f32], budgets: &[Budget]) -> Verdict {
    if x.len() != z.len() {
        return Verdict::invalid(format!("a waveform of {} samples, expected {}", z.len(), x.len()));
    }
    let mut v = Verdict::default();
    let outside = |s: &f32| !s.is_finite() || !(-1.0..=1.0).contains(s);
    if let Some(j) = z.iter().position(outside) {
        let count = z.iter().filter(|s| outside(s)).count();
        v.fail(format!("{count} samples outside [-1, 1] (first: sample {j} = {})", z[j]));
    }
    let (snr, linf) = snr_and_linf(x, z);
    for (k, b) in budgets.iter().enumerate() {
        match *b {
            Budget::SnrFloor { db } if snr.is_nan() || snr < db - SNR_TOL_DB => {
                v.fail_budget(k, format!("SNR {snr:.4} dB is below the budget of {db} dB"))
            }
            Budget::Linf { epsilon } if linf > epsilon => {
                v.fail_budget(k, format!("L∞ change {linf:.6} exceeds {epsilon}"))
            }
            Budget::TimeShift { max_seconds } => {
                let max = (max_seconds * f64::from(sample_rate)).round() as usize;
                if shift_of(x, z, max).is_none() {
                    v.fail_budget(
                        k,
                        format!("not the original shifted by at most {max} samples ({max_seconds} s)"),
                    );
                }
            }
            _ => {}
        }
    }
    v.perturbation = snr.clamp(-SNR_CAP_DB, SNR_CAP_DB);
    v.extra = vec![("linf", linf)];
    v
}

/// Stop words and antonym pairs, read once per set of files (lower-cased).
#[derive(Debug, Default)]
struct Lists {
    stopwords: HashSet<String>,
    antonyms: HashSet<(String, String)>,
    error: Option<String>,
}

/// The word lists text budgets name, each set of files read once.
#[derive(Debug, Default)]
pub struct WordLists {
    cache: Mutex<HashMap<String, Arc<Lists>>>,
    lexicons: Mutex<HashMap<String, Arc<std::result::Result<Lexicon, String>>>>,
}

impl WordLists {
    fn get(&self, stopwords: &[String], antonyms: &[String]) -> Arc<Lists> {
        let key = format!("{stopwords:?}|{antonyms:?}");
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.entry(key).or_insert_with(|| Arc::new(read_lists(stopwords, antonyms))).clone()
    }

    fn lexicon(&self, source: &SynonymSource) -> Arc<std::result::Result<Lexicon, String>> {
        let key = format!("{source:?}");
        let mut cache = self.lexicons.lock().unwrap_or_else(|e| e.into_inner());
        let load = || {
            Lexicon::load(&source.files())
                .map_err(|e| format!("cannot read the synonym table to check the attack: {e}"))
        };
        cache.entry(key).or_insert_with(|| Arc::new(load())).clone()
    }
}

fn read_lists(stopwords: &[String], antonyms: &[String]) -> Lists {
    let mut lists = Lists::default();
    let read = |p: &str, what: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read the {what} file {p} to check the attack: {e}"))
    };
    for p in stopwords {
        match read(p, "stop-word") {
            Ok(text) => lists
                .stopwords
                .extend(text.lines().map(|l| l.trim().to_lowercase()).filter(|l| !l.is_empty())),
            Err(e) => lists.error = Some(e),
        }
    }
    for p in antonyms {
        match read(p, "antonym") {
            Ok(text) => {
                for line in text.lines() {
                    let mut it = line.split_whitespace();
                    if let (Some(a), Some(b)) = (it.next(), it.next()) {
                        let (a, b) = (a.to_lowercase(), b.to_lowercase());
                        lists.antonyms.insert((b.clone(), a.clone()));
                        lists.antonyms.insert((a, b));
                    }
                }
            }
            Err(e) => lists.error = Some(e),
        }
    }
    lists
}

/// The cosine similarity of two sentences under the pipeline's encoder.
pub type Similarity<'a> = &'a dyn Fn(&str, &str) -> Result<f32, String>;

/// A word-substitution example: the word count is kept (always), then `word_swaps`,
/// `stop_words`, `no_antonyms` (files read through `lists`) and `min_similarity` (with
/// `similarity`; unchecked without one, see [`verifies`]). Words are whitespace tokens
/// compared position by position, ignoring case; a list that cannot be read breaks its
/// budget, naming the file. The perturbation is the share of words changed, in %.
pub fn text(
    x: &str,
    z: &str,
    budgets: &[Budget],
    lists: &WordLists,
    similarity: Option<Similarity<'_>>,
) -> Verdict {
    let (xw, zw): (Vec<&str>, Vec<&str>) =
        (crate::words::words(x).collect(), crate::words::words(z).collect());
    let mut v = Verdict::default();
    if xw.len() != zw.len() {
        v.fail(format!("the word count changed from {} to {}", xw.len(), zw.len()));
    }
    let swaps: Vec<(&str, &str)> =
        xw.iter().zip(&zw).filter(|(a, b)| a != b).map(|(a, b)| (*a, *b)).collect();
    let changed = swaps.len();
    for (k, budget) in budgets.iter().enumerate() {
        match budget {
            Budget::WordSwaps { max_ratio } => {
                let allowed = (xw.len() as f64 * max_ratio + 1e-9).floor() as usize;
                if changed > allowed {
                    v.fail_budget(
                        k,
                        format!(
                            "{changed} of {} words changed; a ratio of {max_ratio} allows {allowed}",
                            xw.len()
                        ),
                    );
                }
            }
            Budget::CharEdits { max_per_word, max_ratio } => {
                let allowed = (xw.len() as f64 * max_ratio + 1e-9).floor() as usize;
                let max = *max_per_word as usize;
                if changed > allowed {
                    v.fail_budget(
                        k,
                        format!(
                            "{changed} of {} words edited; a ratio of {max_ratio} allows {allowed}",
                            xw.len()
                        ),
                    );
                } else if let Some((a, b)) =
                    swaps.iter().find(|(a, b)| char_edits_within(a, b, max).is_none())
                {
                    let d = char_edits(a, b);
                    v.fail_budget(
                        k,
                        format!("`{a}` became `{b}`: {d} character edits, over the {max} allowed"),
                    );
                }
            }
            Budget::StopWords { files } => {
                let l = lists.get(files, &[]);
                if let Some(e) = &l.error {
                    v.fail_budget(k, e.clone());
                } else if let Some((a, b)) =
                    swaps.iter().find(|(a, _)| l.stopwords.contains(&a.to_lowercase()))
                {
                    v.fail_budget(k, format!("stop word `{a}` was swapped for `{b}`"));
                }
            }
            Budget::NoAntonyms { files } => {
                let l = lists.get(&[], files);
                if let Some(e) = &l.error {
                    v.fail_budget(k, e.clone());
                } else if let Some((a, b)) =
                    swaps.iter().find(|(a, b)| l.antonyms.contains(&(a.to_lowercase(), b.to_lowercase())))
                {
                    v.fail_budget(k, format!("`{a}` was swapped for its antonym `{b}`"));
                }
            }
            Budget::Synonyms(source) => match &*lists.lexicon(source) {
                Err(e) => v.fail_budget(k, e.clone()),
                Ok(lexicon) => {
                    if let Some((a, b)) = swaps.iter().find(|(a, b)| !lexicon.offers(a, b)) {
                        v.fail_budget(k, format!("`{b}` is not a synonym the table offers for `{a}`"));
                    }
                }
            },
            Budget::MinSimilarity { floor } => {
                let Some(similarity) = similarity else { continue };
                if changed == 0 {
                    continue;
                }
                match similarity(x, z) {
                    // The encoder runs in f32; the plugin saw the same numbers through the oracle.
                    Ok(s) if f64::from(s) + 1e-6 >= *floor => {}
                    Ok(s) => v.fail_budget(k, format!("sentence similarity {s:.4} is below {floor}")),
                    Err(e) => v.fail_budget(k, format!("could not compute the similarity to check it: {e}")),
                }
            }
            _ => {}
        }
    }
    v.perturbation = if xw.is_empty() { 0.0 } else { 100.0 * changed as f64 / xw.len() as f64 };
    v.extra = vec![("words_changed", changed as f64)];
    // Only for a character-level attack, so word-swap attacks' numbers keep their fields.
    if budgets.iter().any(|b| matches!(b, Budget::CharEdits { .. })) {
        v.extra.push(("char_edits", swaps.iter().map(|(a, b)| char_edits(a, b)).sum::<usize>() as f64));
    }
    v
}

/// The optimal-string-alignment distance between `a` and `b`, over Unicode scalar values:
/// the fewest insertions, deletions, substitutions and swaps of two adjacent characters
/// that turn one into the other, no substring edited twice. The four edits DeepWordBug
/// makes (Gao et al. 2018) cost one each, a swap included, which plain Levenshtein would
/// count as two.
pub fn char_edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    osa_within(&a, &b, usize::MAX).unwrap_or(usize::MAX)
}

/// [`char_edits`] when it is at most `max`, else `None` (cheaper: stops as soon as every
/// alignment is past `max`).
pub fn char_edits_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    osa_within(&a, &b, max)
}

/// [`char_edits_within`] on characters already split, for callers comparing one word with
/// many.
pub fn osa_within(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let m = b.len();
    // Three rows of the DP: the one before last is what a swap reads.
    let mut before: Vec<usize> = vec![0; m + 1];
    let mut last: Vec<usize> = (0..=m).collect();
    let mut row: Vec<usize> = vec![0; m + 1];
    for i in 1..=a.len() {
        row[0] = i;
        let mut best = row[0];
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            row[j] = d;
            best = best.min(d);
        }
        // Row minima never decrease (a swap's d[i-2][j-2] + 1 is at least d[i-1][j-1], one
        // substitution away), so once this row is past `max` the distance is too.
        if best > max {
            return None;
        }
        std::mem::swap(&mut before, &mut last);
        std::mem::swap(&mut last, &mut row);
    }
    Some(last[m]).filter(|&d| d <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: FeatureKind, scale: f32, cost: f32) -> Column {
        Column { kind, lower: -10.0, upper: 10.0, cost, scale, ..Column::continuous(name) }
    }

    fn table() -> Vec<Column> {
        vec![
            col("amount", FeatureKind::Continuous, 4.0, 2.0),
            col("count", FeatureKind::Integer, 1.0, 1.0),
            Column { mutable: false, ..col("age", FeatureKind::Integer, 2.0, 1.0) },
            col("flag", FeatureKind::Binary, 1.0, 3.0),
            Column { group: Some(0), ..col("cat_a", FeatureKind::Categorical, 1.0, 0.5) },
            Column { group: Some(0), ..col("cat_b", FeatureKind::Categorical, 1.0, 0.5) },
        ]
    }

    const X: [f32; 6] = [1.0, 2.0, 3.0, 0.0, 1.0, 0.0];
    const MOVED: [f32; 6] = [3.0, 3.0, 3.0, 0.0, 1.0, 0.0];

    #[test]
    fn a_row_within_every_budget_passes_and_is_measured() {
        let budgets =
            [Budget::LinfStd { epsilon: 1.0 }, Budget::L2Std { epsilon: 1.2 }, Budget::Cost { budget: 5.0 }];
        let v = tabular(&table(), &TabularConstraints::default(), &X, &MOVED, &budgets);
        assert_eq!((v.violations, v.broken.len()), (0, 0), "{:?}", v.notes);
        // amount moves 2 raw = 0.5 std at cost 2·2; count moves 1 = 1 std at cost 1.
        assert_eq!(v.perturbation, 5.0);
        assert_eq!(v.extra[0], ("features_changed", 2.0));
        assert_eq!(v.extra[1], ("linf_std", 1.0));
        assert!((v.extra[2].1 - 1.25f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn each_tabular_budget_is_caught_and_named() {
        let budgets =
            [Budget::Cost { budget: 4.0 }, Budget::LinfStd { epsilon: 0.9 }, Budget::L2Std { epsilon: 1.1 }];
        let v = tabular(&table(), &TabularConstraints::default(), &X, &MOVED, &budgets);
        assert_eq!(v.broken, [0, 1, 2], "{:?}", v.notes);
        assert!(v.notes[0].contains("cost 5.0000 exceeds the budget 4"), "{:?}", v.notes);
        assert!(v.notes[1].contains("L∞ change 1.00000 std exceeds 0.9"), "{:?}", v.notes);
        assert!(v.notes[2].contains("L2 change"), "{:?}", v.notes);
        let far = [9.0, 2.0, 3.0, 0.0, 1.0, 0.0];
        assert_eq!(
            tabular(&table(), &TabularConstraints::default(), &X, &far, &[]).violations,
            0,
            "nothing declared: only the schema"
        );
    }

    #[test]
    fn the_schema_is_always_checked() {
        let cases: [([f32; 6], &str); 6] = [
            ([1.0, 2.0, 4.0, 0.0, 1.0, 0.0], "immutable `age` changed from 3 to 4"),
            ([11.0, 2.0, 3.0, 0.0, 1.0, 0.0], "`amount` = 11 is outside [-10, 10]"),
            ([1.0, 2.5, 3.0, 0.0, 1.0, 0.0], "integer `count` = 2.5"),
            ([1.0, 2.0, 3.0, 0.5, 1.0, 0.0], "`flag` = 0.5 is not 0 or 1"),
            ([1.0, 2.0, 3.0, 0.0, 1.0, 1.0], "one-hot group 0 holds 2 ones"),
            ([1.0, 2.0, 3.0, 0.0, 0.0, 0.0], "one-hot group 0 holds 0 ones"),
        ];
        for (z, note) in cases {
            let v = tabular(&table(), &TabularConstraints::default(), &X, &z, &[]);
            assert_eq!(v.notes, [note], "{z:?}");
            assert!(v.broken.is_empty(), "a schema rule is no budget");
        }
        assert_eq!(
            tabular(&table(), &TabularConstraints::default(), &X, &X[..5], &[]).notes,
            ["a row of 5 values, expected 6"]
        );
    }

    #[test]
    fn directions_and_relations_are_checked_and_derived_columns_cost_nothing() {
        use crate::constraints::{Direction, Relation};
        // before, amount, after = before - amount; after is immutable but derived.
        let features = vec![
            Column { mutable: false, ..col("before", FeatureKind::Continuous, 1.0, 1.0) },
            Column { lower: 0.0, upper: 1e6, ..col("amount", FeatureKind::Continuous, 10.0, 1.0) },
            Column {
                mutable: false,
                lower: -1e6,
                upper: 1e6,
                ..col("after", FeatureKind::Continuous, 1.0, 1.0)
            },
        ];
        let c = TabularConstraints {
            directions: vec![Direction::Any, Direction::Up, Direction::Any],
            relations: vec![Relation { column: 2, terms: vec![(0, 1.0), (1, -1.0)], constant: 0.0 }],
            transitions: Vec::new(),
        };
        let x = [100.0f32, 20.0, 80.0];
        let v = tabular(&features, &c, &x, &[100.0, 30.0, 70.0], &[Budget::Cost { budget: 10.0 }]);
        assert_eq!(v.violations, 0, "{:?}", v.notes);
        assert_eq!(v.perturbation, 10.0, "the balance follows the amount and costs nothing");
        let v = tabular(&features, &c, &x, &[100.0, 10.0, 90.0], &[]);
        assert_eq!(v.notes, ["`amount` moved from 20 to 10; it may only go up"]);
        let v = tabular(&features, &c, &x, &[100.0, 30.0, 80.0], &[]);
        assert_eq!(v.notes, ["`after` = 80 breaks `after` = 1 × `before` + -1 × `amount` = 70"]);
        // A relation the original row did not keep is no promise about the adversarial one.
        let odd = [100.0f32, 20.0, 50.0];
        assert_eq!(tabular(&features, &c, &odd, &[100.0, 30.0, 50.0], &[]).violations, 0);
    }

    #[test]
    fn snr_is_signal_over_perturbation_energy_and_budgets_are_declared_only() {
        let x = [0.5f32, -0.5, 0.5, -0.5];
        let z = [0.55f32, -0.45, 0.55, -0.45];
        let v = audio(10, &x, &z, &[]);
        // Σx² = 1, Σδ² ≈ 0.01 → 20 dB.
        assert!((v.perturbation - 20.0).abs() < 1e-3, "{}", v.perturbation);
        assert_eq!(v.violations, 0, "nothing declared, only the range checked");
        assert!((v.extra[0].1 - 0.05).abs() < 1e-6);
        assert_eq!(audio(10, &x, &z, &[Budget::SnrFloor { db: 19.0 }]).violations, 0);
        let v = audio(10, &x, &z, &[Budget::Linf { epsilon: 0.06 }, Budget::SnrFloor { db: 21.0 }]);
        assert_eq!((v.violations, v.broken.as_slice()), (1, &[1][..]), "{:?}", v.notes);
        assert!(v.notes[0].starts_with("SNR 20.0000 dB is below the budget of 21 dB"), "{:?}", v.notes);
        let v = audio(10, &x, &z, &[Budget::Linf { epsilon: 0.04 }]);
        assert!(v.notes[0].starts_with("L∞ change 0.05"), "{:?}", v.notes);
    }

    #[test]
    fn samples_out_of_range_and_degenerate_rows() {
        let v = audio(10, &[0.9, 0.0], &[1.2, f32::NAN], &[]);
        assert_eq!(v.notes, ["2 samples outside [-1, 1] (first: sample 0 = 1.2)"]);
        let floor = [Budget::SnrFloor { db: 30.0 }];
        assert_eq!(audio(10, &[0.3, 0.2], &[0.3, 0.2], &floor).perturbation, SNR_CAP_DB);
        let v = audio(10, &[0.0, 0.0], &[0.1, 0.0], &floor);
        assert_eq!((v.perturbation, v.violations), (-SNR_CAP_DB, 1));
    }

    #[test]
    fn a_time_shift_is_verified_to_the_bit() {
        let x = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let shifted = [0.0f32, 0.0, 0.1, 0.2, 0.3, 0.4];
        assert_eq!(shift_of(&x, &shifted, 2), Some(2));
        assert_eq!(shift_of(&x, &[0.3, 0.4, 0.5, 0.6, 0.0, 0.0], 2), Some(-2));
        assert_eq!(shift_of(&x, &x, 0), Some(0));
        assert_eq!(shift_of(&x, &shifted, 1), None, "two samples is past the bound");
        // 10 samples per second: 0.2 s is 2 samples.
        assert_eq!(audio(10, &x, &shifted, &[Budget::TimeShift { max_seconds: 0.2 }]).violations, 0);
        assert_eq!(audio(10, &x, &shifted, &[Budget::TimeShift { max_seconds: 0.1 }]).broken, [0]);
        let mut noisy = shifted;
        noisy[4] += 1e-3;
        assert_eq!(audio(10, &x, &noisy, &[Budget::TimeShift { max_seconds: 0.5 }]).broken, [0]);
    }

    fn text_budgets() -> Vec<Budget> {
        let d = std::env::temp_dir().join(format!("tempered-judge-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stop.txt"), "the\nnot\n").unwrap();
        std::fs::write(d.join("ant.txt"), "good bad \n").unwrap();
        let path = |f: &str| d.join(f).to_string_lossy().into_owned();
        vec![
            Budget::StopWords { files: vec![path("stop.txt")] },
            Budget::NoAntonyms { files: vec![path("ant.txt")] },
            Budget::WordSwaps { max_ratio: 0.25 },
        ]
    }

    #[test]
    fn text_swaps_are_measured_and_each_text_budget_is_caught() {
        let (b, lists) = (text_budgets(), WordLists::default());
        let v = text("the film is good", "the movie is good", &b, &lists, None);
        assert_eq!((v.violations, v.perturbation), (0, 25.0));
        assert_eq!(v.extra, [("words_changed", 1.0)]);
        let v = text("the film is good", "a film is good", &b, &lists, None);
        assert_eq!(v.broken, [0], "{:?}", v.notes);
        assert!(v.notes[0].contains("stop word `the`"));
        let v = text("the film is Good", "the film is BAD", &b, &lists, None);
        assert_eq!(v.broken, [1], "{:?}", v.notes);
        let v = text("the film is good", "the movie was good", &b, &lists, None);
        assert_eq!(v.broken, [2], "{:?}", v.notes);
        assert!(v.notes[0].contains("a ratio of 0.25 allows 1"), "{:?}", v.notes);
    }

    /// Swaps are judged by the attack's own lexicon rules: listed synonyms in any case,
    /// re-inflected ones when the source says so, nothing else.
    #[test]
    fn a_swap_the_synonym_table_does_not_offer_breaks_the_synonym_budget() {
        let d = std::env::temp_dir().join(format!("tempered-judge-syn-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("wn.tsv"), "film\tnoun\tmovie\tpicture\ngood\tadj\tfine\tbad\n").unwrap();
        std::fs::write(d.join("ant.txt"), "good bad\n").unwrap();
        let table = d.join("wn.tsv").to_string_lossy().into_owned();
        let plain = SynonymSource { table: table.clone(), ..Default::default() };
        let b = [Budget::Synonyms(plain.clone())];
        let lists = WordLists::default();
        assert_eq!(text("a good film", "a fine movie", &b, &lists, None).violations, 0);
        assert_eq!(text("A Good Film", "A FINE Picture", &b, &lists, None).violations, 0, "case aside");
        let v = text("a good film", "a good flick", &b, &lists, None);
        assert_eq!(v.broken, [0]);
        assert_eq!(v.notes, ["`flick` is not a synonym the table offers for `film`"]);
        // Antonyms named in the source veto a listed candidate.
        assert_eq!(text("a good film", "a bad film", &b, &lists, None).violations, 0);
        let vetoed = [Budget::Synonyms(SynonymSource {
            antonyms: vec![d.join("ant.txt").to_string_lossy().into_owned()],
            ..plain.clone()
        })];
        assert_eq!(text("a good film", "a bad film", &vetoed, &lists, None).broken, [0]);
        // "films" is not in the table; with inflections its candidates are re-inflected.
        assert_eq!(text("two films", "two movies", &b, &lists, None).broken, [0]);
        let inflected = [Budget::Synonyms(SynonymSource { inflections: true, ..plain })];
        assert_eq!(text("two films", "two movies", &inflected, &lists, None).violations, 0);
        // A table that cannot be read breaks the budget, saying why.
        let missing =
            [Budget::Synonyms(SynonymSource { table: "/nonexistent/wn.tsv".into(), ..Default::default() })];
        let v = text("a film", "a movie", &missing, &lists, None);
        assert_eq!(v.broken, [0]);
        assert!(v.notes[0].contains("cannot read the synonym table"), "{:?}", v.notes);
        assert!(verifies(Modality::Text, &b[0], false).is_ok());
        assert!(verifies(Modality::Tabular, &b[0], false).is_err());
    }

    #[test]
    fn character_edits_count_a_swap_of_neighbours_as_one() {
        assert_eq!(char_edits("good", "good"), 0);
        assert_eq!(char_edits("good", "godo"), 1, "swap");
        assert_eq!(char_edits("good", "gxod"), 1, "substitution");
        assert_eq!(char_edits("good", "god"), 1, "deletion");
        assert_eq!(char_edits("good", "gooxd"), 1, "insertion");
        assert_eq!(char_edits("good", "bad"), 3);
        assert_eq!(char_edits("", "ab"), 2);
        assert_eq!(char_edits("café", "cafe"), 1, "characters, not bytes");
        // OSA edits no substring twice: "ca" → "abc" is 3 (Damerau–Levenshtein would say 2).
        assert_eq!(char_edits("ca", "abc"), 3);
        assert_eq!(char_edits_within("good", "bad", 2), None);
        assert_eq!(char_edits_within("good", "bad", 3), Some(3));
        assert_eq!(char_edits_within("a", "abcd", 2), None, "the lengths alone are too far apart");
    }

    #[test]
    fn character_edit_budgets_are_caught_per_word_and_by_ratio() {
        let lists = WordLists::default();
        let b = [Budget::CharEdits { max_per_word: 1, max_ratio: 0.25 }];
        let v = text("the film is good", "the film is goood", &b, &lists, None);
        assert_eq!(v.violations, 0, "{:?}", v.notes);
        assert_eq!(v.extra, [("words_changed", 1.0), ("char_edits", 1.0)]);
        let v = text("the film is good", "the film is gooood", &b, &lists, None);
        assert_eq!(v.broken, [0]);
        assert_eq!(v.notes, ["`good` became `gooood`: 2 character edits, over the 1 allowed"]);
        let v = text("the film is good", "the flim is godo", &b, &lists, None);
        assert_eq!(v.broken, [0]);
        assert_eq!(v.notes, ["2 of 4 words edited; a ratio of 0.25 allows 1"]);
        // A deleted word is no character edit: the word count is the modality's rule.
        let v = text("the film is good", "the film good", &b, &lists, None);
        assert!(v.notes.contains(&"the word count changed from 4 to 3".to_owned()), "{:?}", v.notes);
        // Word swaps declare nothing about characters, and gain no `char_edits` figure.
        assert_eq!(text("a film", "a movie", &[], &lists, None).extra, [("words_changed", 1.0)]);
    }

    #[test]
    fn the_word_count_is_always_checked_and_an_unreadable_list_breaks_its_budget() {
        let lists = WordLists::default();
        let v = text("the film is good", "the film is very good", &[], &lists, None);
        assert_eq!(v.notes, ["the word count changed from 4 to 5"]);
        assert_eq!(text("the film is good", "a movie was bad", &[], &lists, None).violations, 0);
        let b = [Budget::StopWords { files: vec!["/nonexistent/stop.txt".into()] }];
        let v = text("a film", "a film", &b, &lists, None);
        assert_eq!(v.broken, [0]);
        assert!(v.notes[0].contains("/nonexistent/stop.txt"), "{:?}", v.notes);
    }

    #[test]
    fn the_similarity_floor_needs_an_encoder() {
        let floor = [Budget::MinSimilarity { floor: 0.7 }];
        assert!(verifies(Modality::Text, &floor[0], false).is_err(), "no encoder: not verified");
        assert!(verifies(Modality::Text, &floor[0], true).is_ok());
        // The share of positions with the same word: enough to test the floor.
        let overlap = |a: &str, b: &str| -> Result<f32, String> {
            let (x, y): (Vec<_>, Vec<_>) = (a.split(' ').collect(), b.split(' ').collect());
            Ok(x.iter().zip(&y).filter(|(u, v)| u == v).count() as f32 / x.len() as f32)
        };
        let lists = WordLists::default();
        assert_eq!(
            text("the film is good", "the movie is good", &floor, &lists, Some(&overlap)).violations,
            0
        );
        let v = text("the film is good", "a movie is good", &floor, &lists, Some(&overlap));
        assert_eq!(v.broken, [0]);
        assert!(v.notes[0].contains("sentence similarity 0.5000 is below 0.7"), "{:?}", v.notes);
    }

    #[test]
    fn foreign_budgets_are_not_verified_and_queries_are_counted() {
        assert!(verifies(Modality::Tabular, &Budget::Cost { budget: 1.0 }, false).is_ok());
        assert!(verifies(Modality::Tabular, &Budget::SnrFloor { db: 30.0 }, false).is_err());
        assert!(verifies(Modality::Audio, &Budget::Queries { max: 3 }, false).is_ok());
        let mut v = Verdict::default();
        queries(&mut v, 3, &[Budget::LinfStd { epsilon: 1.0 }, Budget::Queries { max: 2 }]);
        assert_eq!((v.broken.as_slice(), v.notes[0].as_str()), (&[1][..], "3 queries, over the declared 2"));
    }
}
