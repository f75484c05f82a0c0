//! The stratified train / validation / test split of a table's rows.

use super::config::SplitConfig;
use crate::error::Invalid;

pub(super) const TRAIN: usize = 0;
pub(super) const VALIDATION: usize = 1;
pub(super) const TEST: usize = 2;
pub(super) const SPLIT_NAMES: [&str; 3] = ["train", "validation", "test"];

/// Splits each class's (shuffled) rows; `parts[class][split]`.
pub(super) fn split_classes(
    by_class: Vec<Vec<usize>>,
    split: &SplitConfig,
) -> std::result::Result<Vec<[Vec<usize>; 3]>, Invalid> {
    let mut parts: Vec<[Vec<usize>; 3]> = Vec::with_capacity(by_class.len());
    for rows in by_class {
        let n = rows.len();
        let mut n_test = (n as f64 * split.test).round() as usize;
        let mut n_val = (n as f64 * split.validation).round() as usize;
        while n > 0 && n_test + n_val >= n {
            if n_val >= n_test && n_val > 0 {
                n_val -= 1;
            } else {
                n_test -= 1;
            }
        }
        let test = rows[..n_test].to_vec();
        let val = rows[n_test..n_test + n_val].to_vec();
        let train = rows[n_test + n_val..].to_vec();
        parts.push([train, val, test]);
    }
    let total = |parts: &[[Vec<usize>; 3]], s: usize| parts.iter().map(|p| p[s].len()).sum::<usize>();
    for s in [VALIDATION, TEST] {
        if total(&parts, s) > 0 {
            continue;
        }
        // Borrow one row from the largest split that can spare one (train keeps every class).
        let mut best: Option<(usize, usize, usize)> = None; // (size, split, class)
        for d in [TRAIN, VALIDATION, TEST] {
            if d == s {
                continue;
            }
            let size = total(&parts, d);
            let min_keep = if d == TRAIN { 2 } else { 1 };
            let class = (0..parts.len())
                .filter(|&c| parts[c][d].len() >= min_keep)
                .max_by_key(|&c| parts[c][d].len());
            if d != TRAIN && size < 2 {
                continue;
            }
            if let Some(c) = class.filter(|_| best.is_none_or(|b| size > b.0)) {
                best = Some((size, d, c));
            }
        }
        let Some((_, d, c)) = best else {
            let n: usize = (0..3).map(|s| total(&parts, s)).sum();
            return Err(format!(
                "{n} rows are too few for a train, validation and test split with a train row of every class"
            )
            .into());
        };
        let row = parts[c][d].pop().expect("a row to move");
        parts[c][s].push(row);
    }
    Ok(parts)
}
