//! The one seeded, class-stratified subsample: every loader's `limit` goes through it.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Per-class quotas summing to `total` (largest remainder, ties to the lower class), each
/// class with rows getting at least one where a larger class can spare it.
pub fn quotas(counts: &[usize], total: usize) -> Vec<usize> {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return vec![0; counts.len()];
    }
    let mut q: Vec<usize> = counts.iter().map(|&c| c * total / n).collect();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(counts[c] * total % n));
    let short = total - q.iter().sum::<usize>();
    for &c in order.iter().take(short) {
        q[c] += 1;
    }
    for c in 0..counts.len() {
        if q[c] == 0 && counts[c] > 0 {
            let donor = (0..counts.len()).filter(|&d| q[d] > 1).max_by_key(|&d| q[d]);
            if let Some(d) = donor {
                q[d] -= 1;
                q[c] += 1;
            }
        }
    }
    q
}

/// Shuffles each class's rows with `rng`, class by class, and when `limit` is below their
/// total keeps the first [`quotas`] of each. The shuffled order is kept, so a caller may
/// split the survivors as they stand.
pub fn subsample(by_class: &mut [Vec<usize>], limit: Option<usize>, rng: &mut ChaCha8Rng) {
    for rows in by_class.iter_mut() {
        rows.shuffle(rng);
    }
    let counts: Vec<usize> = by_class.iter().map(Vec::len).collect();
    if let Some(limit) = limit.filter(|&l| l < counts.iter().sum()) {
        for (rows, q) in by_class.iter_mut().zip(quotas(&counts, limit)) {
            rows.truncate(q);
        }
    }
}

/// The indices `0..y.len()` grouped by class, in order.
pub fn by_class(y: &[u32], n_classes: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); n_classes];
    for (i, &c) in y.iter().enumerate() {
        out[c as usize].push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn quotas_are_proportional_and_give_every_class_a_row() {
        assert_eq!(quotas(&[80, 20], 10), [8, 2]);
        assert_eq!(quotas(&[1, 1], 1), [1, 0], "a tie goes to the lower class");
        assert_eq!(quotas(&[98, 1, 1], 10), [8, 1, 1]);
        assert_eq!(quotas(&[5, 5, 5], 6), [2, 2, 2]);
    }

    #[test]
    fn a_subsample_keeps_the_shuffled_prefix_of_each_class() {
        let y: Vec<u32> = (0..100).map(|i| u32::from(i >= 80)).collect();
        let mut groups = by_class(&y, 2);
        subsample(&mut groups, Some(10), &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!((groups[0].len(), groups[1].len()), (8, 2));
        assert!(groups[1].iter().all(|&i| y[i] == 1));
        let mut again = by_class(&y, 2);
        subsample(&mut again, Some(10), &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(groups, again, "seeded");
    }
}
