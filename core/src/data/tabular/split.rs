//! The train / validation / test split of a table's rows: stratified and seeded, or out of
//! time (by a time column).

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

/// The out-of-time split of `rows` (the rows kept, any order): ordered by `key` (ties in
/// file order), the latest `round(n × test)` rows are test, the `round(n × validation)`
/// before them validation, the rest train. Returns the three row lists.
pub(super) fn split_by_time(
    mut rows: Vec<usize>,
    key: &[f64],
    split: &SplitConfig,
) -> std::result::Result<[Vec<usize>; 3], Invalid> {
    rows.sort_by(|&a, &b| key[a].total_cmp(&key[b]).then(a.cmp(&b)));
    let n = rows.len();
    let n_test = (n as f64 * split.test).round() as usize;
    let n_val = (n as f64 * split.validation).round() as usize;
    if n_test == 0 || n_val == 0 || n_test + n_val >= n {
        return Err(format!(
            "{n} rows are too few for an out-of-time split with validation = {} and test = {}",
            split.validation, split.test
        )
        .into());
    }
    let test = rows.split_off(n - n_test);
    let validation = rows.split_off(n - n_test - n_val);
    Ok([rows, validation, test])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_rows_are_test_and_the_earliest_train() {
        // Row i happened at time key[i]; rows 4 and 5 at the same time keep file order.
        let key = [5.0, 1.0, 9.0, 3.0, 7.0, 7.0, 2.0, 8.0, 4.0, 6.0];
        let split = SplitConfig { validation: 0.2, test: 0.3, by: Some("t".into()) };
        let [train, val, test] = split_by_time((0..10).collect(), &key, &split).unwrap();
        assert_eq!(test, [5, 7, 2]);
        assert_eq!(val, [9, 4]);
        assert_eq!(train, [1, 6, 3, 8, 0]);
        assert!(split_by_time((0..2).collect(), &key, &split).is_err());
    }
}
