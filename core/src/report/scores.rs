//! Binary-classification scores from a model's positive-class scores (fraud, spam…).
//!
//! Conventions shared by every function here: an example is predicted positive when its
//! score is `>= threshold`; examples with equal scores enter or leave the positive set
//! together (so results never depend on input order); a quantity whose denominator is zero
//! (no positives, no negatives, nothing predicted positive) is `NaN` rather than a guess.

/// Counts at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    pub true_positives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
    pub false_negatives: usize,
}

impl Confusion {
    pub fn at(scores: &[f32], labels: &[bool], threshold: f32) -> Self {
        assert_eq!(scores.len(), labels.len(), "one label per score");
        let mut c = Confusion::default();
        for (&s, &positive) in scores.iter().zip(labels) {
            match (s >= threshold, positive) {
                (true, true) => c.true_positives += 1,
                (true, false) => c.false_positives += 1,
                (false, false) => c.true_negatives += 1,
                (false, true) => c.false_negatives += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.true_positives + self.true_negatives, self.total())
    }

    pub fn precision(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
    }

    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.false_positives, self.false_positives + self.true_negatives)
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 { f64::NAN } else { num as f64 / den as f64 }
}

/// Cumulative (true positives, false positives) at each distinct score, highest score first:
/// entry `i` counts every example scored `>=` the `i`-th distinct score.
fn cumulative_counts(scores: &[f32], labels: &[bool]) -> Vec<(usize, usize)> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            out.push((tp, fp));
        }
    }
    out
}

/// PR-AUC as average precision, `Σ (Rₙ − Rₙ₋₁) · Pₙ` over distinct thresholds (the step-wise
/// sum sklearn's `average_precision_score` computes, not a trapezoid that would overstate
/// it). `NaN` when there is no positive label.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> f64 {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return f64::NAN;
    }
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for (tp, fp) in cumulative_counts(scores, labels) {
        let recall = tp as f64 / positives as f64;
        ap += (recall - prev_recall) * (tp as f64 / (tp + fp) as f64);
        prev_recall = recall;
    }
    ap
}

/// `(recall, precision)` points by increasing recall, one per distinct threshold, starting
/// at `(0, 1)` as sklearn does so that a plotted curve starts at the top-left. Empty when
/// there is no positive label.
pub fn pr_curve(scores: &[f32], labels: &[bool]) -> Vec<(f64, f64)> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return Vec::new();
    }
    let mut curve = vec![(0.0, 1.0)];
    for (tp, fp) in cumulative_counts(scores, labels) {
        curve.push((tp as f64 / positives as f64, tp as f64 / (tp + fp) as f64));
    }
    curve
}

/// The best recall reachable by any threshold whose false-positive rate is `<= max_fpr`
/// (fraud teams budget alerts by false positives). Flagging nothing is always allowed, so
/// the answer is 0 when even the top score has too many negatives tied with it. `NaN` when
/// there is no positive label; with no negative label every threshold is allowed.
pub fn recall_at_fpr(scores: &[f32], labels: &[bool], max_fpr: f64) -> f64 {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 {
        return f64::NAN;
    }
    let mut best = 0.0f64;
    for (tp, fp) in cumulative_counts(scores, labels) {
        let fpr = if negatives == 0 { 0.0 } else { fp as f64 / negatives as f64 };
        if fpr <= max_fpr {
            best = best.max(tp as f64 / positives as f64);
        }
    }
    best
}

/// The decision threshold for a target on labelled scores (the validation split's): the
/// lowest distinct score whose cut keeps the false-positive rate `<= max_fpr`
/// ([`Target::Fpr`]) or the precision `>= min_precision` ([`Target::Precision`]), so the
/// most positives are caught within the target. When no cut meets it, a threshold above
/// every score: the model flags nothing, and the numbers at that point say so.
///
/// [`Target::Fpr`]: crate::pipeline::Target::Fpr
/// [`Target::Precision`]: crate::pipeline::Target::Precision
pub fn threshold_for(scores: &[f32], labels: &[bool], target: crate::pipeline::Target) -> f32 {
    use crate::pipeline::Target;
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    let mut order: Vec<f32> = scores.to_vec();
    order.sort_by(|a, b| b.total_cmp(a));
    order.dedup();
    let counts = cumulative_counts(scores, labels);
    let mut chosen = None;
    for (&cut, &(tp, fp)) in order.iter().zip(&counts) {
        let meets = match target {
            Target::Fpr(max) => negatives == 0 || fp as f64 / negatives as f64 <= max,
            Target::Precision(min) => tp as f64 / (tp + fp) as f64 >= min,
        };
        if meets {
            chosen = Some(cut);
        } else if matches!(target, Target::Fpr(_)) {
            // The false-positive rate only grows as the cut goes down.
            break;
        }
    }
    chosen.unwrap_or_else(|| order.first().map_or(f32::MAX, |&top| top.next_up()))
}

/// Share of negatives scored `>= threshold`. `NaN` when there is no negative label.
pub fn false_positive_rate(scores: &[f32], labels: &[bool], threshold: f32) -> f64 {
    Confusion::at(scores, labels, threshold).false_positive_rate()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: bool = true;
    const F: bool = false;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn average_precision_matches_sklearn_doc_example() {
        // sklearn's docstring: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333…
        // Ranked: 0.8 T (R .5, P 1), 0.4 F, 0.35 T (R 1, P 2/3), 0.1 F → .5·1 + .5·2/3.
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[F, F, T, T]);
        assert!(close(ap, 0.5 + 0.5 * 2.0 / 3.0), "{ap}");
    }

    #[test]
    fn ties_count_as_one_threshold_whatever_the_order() {
        // 0.5 holds T, F, T: one threshold with R = 1, P = 2/3. Walking the tie one example
        // at a time would give .5·1 + .5·2/3 = 0.833 for this order.
        for labels in [[T, F, T, F], [F, T, T, F], [T, T, F, F]] {
            let ap = average_precision(&[0.5, 0.5, 0.5, 0.2], &labels);
            assert!(close(ap, 2.0 / 3.0), "{labels:?}: {ap}");
            let curve = pr_curve(&[0.5, 0.5, 0.5, 0.2], &labels);
            assert_eq!(curve.len(), 3);
            assert!(close(curve[1].0, 1.0) && close(curve[1].1, 2.0 / 3.0), "{curve:?}");
            assert!(close(curve[2].0, 1.0) && close(curve[2].1, 0.5), "{curve:?}");
        }
    }

    #[test]
    fn model_that_flags_everything_is_exposed() {
        let scores = [1.0, 1.0, 1.0, 1.0];
        let labels = [T, F, F, F];
        assert!(close(average_precision(&scores, &labels), 0.25));
        assert_eq!(pr_curve(&scores, &labels), vec![(0.0, 1.0), (1.0, 0.25)]);
        assert_eq!(recall_at_fpr(&scores, &labels, 0.01), 0.0);
        assert_eq!(false_positive_rate(&scores, &labels, 0.5), 1.0);
        let c = Confusion::at(&scores, &labels, 0.5);
        assert_eq!((c.recall(), c.precision(), c.accuracy()), (1.0, 0.25, 0.25));
    }

    #[test]
    fn perfect_ranking() {
        let scores = [0.9, 0.8, 0.2, 0.1];
        let labels = [T, T, F, F];
        assert_eq!(average_precision(&scores, &labels), 1.0);
        assert_eq!(recall_at_fpr(&scores, &labels, 0.0), 1.0);
        assert_eq!(false_positive_rate(&scores, &labels, 0.5), 0.0);
    }

    #[test]
    fn recall_at_fpr_takes_the_best_allowed_threshold() {
        // Ranked T F T T F F, 3 negatives: threshold 0.9 → R 1/3, FPR 0; 0.6 → R 1, FPR 1/3.
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [T, F, T, T, F, F];
        assert!(close(recall_at_fpr(&scores, &labels, 0.0), 1.0 / 3.0));
        assert!(close(recall_at_fpr(&scores, &labels, 0.3), 1.0 / 3.0));
        assert!(close(recall_at_fpr(&scores, &labels, 0.34), 1.0));
        assert!(close(false_positive_rate(&scores, &labels, 0.55), 1.0 / 3.0));
        assert!(close(false_positive_rate(&scores, &labels, 0.5), 2.0 / 3.0));
    }

    #[test]
    fn threshold_for_a_false_positive_rate_catches_the_most_within_it() {
        use crate::pipeline::Target;
        // Ranked T F T T F F, 3 negatives: 0.9 (FPR 0), 0.8 (1/3), 0.7, 0.6 (1/3), 0.5 (2/3).
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [T, F, T, T, F, F];
        assert_eq!(threshold_for(&scores, &labels, Target::Fpr(0.01)), 0.9);
        assert_eq!(threshold_for(&scores, &labels, Target::Fpr(0.34)), 0.6);
        assert_eq!(threshold_for(&scores, &labels, Target::Fpr(0.99)), 0.5);
        let t = threshold_for(&scores, &labels, Target::Fpr(0.34));
        assert!(false_positive_rate(&scores, &labels, t) <= 0.34);
        // Precision: 0.9 → 1, 0.8 → 1/2, 0.6 → 3/4, 0.5 → 3/5.
        assert_eq!(threshold_for(&scores, &labels, Target::Precision(0.75)), 0.6);
        assert_eq!(threshold_for(&scores, &labels, Target::Precision(1.0)), 0.9);
        // A tie of a negative with the top score: no cut within 0 FPR, so flag nothing.
        let t = threshold_for(&[0.7, 0.7, 0.2], &[T, F, F], Target::Fpr(0.1));
        assert!(t > 0.7, "{t}");
        assert_eq!(Confusion::at(&[0.7, 0.7, 0.2], &[T, F, F], t).true_positives, 0);
    }

    #[test]
    fn undefined_cases_are_nan() {
        assert!(average_precision(&[0.3, 0.7], &[F, F]).is_nan());
        assert!(recall_at_fpr(&[0.3, 0.7], &[F, F], 0.01).is_nan());
        assert!(pr_curve(&[0.3, 0.7], &[F, F]).is_empty());
        assert!(false_positive_rate(&[0.3, 0.7], &[T, T], 0.5).is_nan());
        assert_eq!(recall_at_fpr(&[0.3, 0.7], &[T, T], 0.0), 1.0);
        assert!(average_precision(&[], &[]).is_nan());
    }
}
