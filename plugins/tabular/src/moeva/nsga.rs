//! NSGA-II's ranking (Deb et al. 2002) on two objectives, both minimised: which candidates
//! survive a generation and which win a parent tournament.
//!
//! Every tie is broken by index, so the same objectives always give the same order
//! whatever the platform's sort does with equal keys.

/// One candidate's objectives: the attack's goal (lower is closer to fooling the model)
/// and what the change costs the attacker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Objectives {
    pub goal: f64,
    pub cost: f64,
}

impl Objectives {
    /// `self` is at least as good on both objectives and better on one.
    fn dominates(&self, other: &Objectives) -> bool {
        self.goal <= other.goal
            && self.cost <= other.cost
            && (self.goal < other.goal || self.cost < other.cost)
    }
}

/// The non-dominated fronts of `objs`, best first, each listing indices in ascending order.
pub(crate) fn fronts(objs: &[Objectives]) -> Vec<Vec<usize>> {
    let n = objs.len();
    let mut beaten_by = vec![0usize; n];
    let mut beats: Vec<Vec<usize>> = vec![Vec::new(); n];
    for a in 0..n {
        for b in a + 1..n {
            if objs[a].dominates(&objs[b]) {
                beats[a].push(b);
                beaten_by[b] += 1;
            } else if objs[b].dominates(&objs[a]) {
                beats[b].push(a);
                beaten_by[a] += 1;
            }
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&k| beaten_by[k] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &a in &current {
            for &b in &beats[a] {
                beaten_by[b] -= 1;
                if beaten_by[b] == 0 {
                    next.push(b);
                }
            }
        }
        next.sort_unstable();
        out.push(std::mem::replace(&mut current, next));
    }
    out
}

/// The crowding distance of each member of `front` (same order): how much room it has
/// along each objective, so survival prefers a spread-out front. The ends are infinite.
pub(crate) fn crowding(objs: &[Objectives], front: &[usize]) -> Vec<f64> {
    let m = front.len();
    let mut d = vec![0.0f64; m];
    if m <= 2 {
        return vec![f64::INFINITY; m];
    }
    let keys: [fn(&Objectives) -> f64; 2] = [|o| o.goal, |o| o.cost];
    for key in keys {
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| key(&objs[front[a]]).total_cmp(&key(&objs[front[b]])).then(a.cmp(&b)));
        let (lo, hi) = (key(&objs[front[order[0]]]), key(&objs[front[order[m - 1]]]));
        d[order[0]] = f64::INFINITY;
        d[order[m - 1]] = f64::INFINITY;
        let span = hi - lo;
        if !(span > 0.0 && span.is_finite()) {
            continue;
        }
        for w in 1..m - 1 {
            let gap = key(&objs[front[order[w + 1]]]) - key(&objs[front[order[w - 1]]]);
            d[order[w]] += gap / span;
        }
    }
    d
}

/// Rank (front number) and crowding distance of every candidate.
pub(crate) fn rank(objs: &[Objectives]) -> (Vec<usize>, Vec<f64>) {
    let mut rank = vec![0; objs.len()];
    let mut crowd = vec![0.0; objs.len()];
    for (r, front) in fronts(objs).iter().enumerate() {
        for (k, c) in front.iter().zip(crowding(objs, front)) {
            rank[*k] = r;
            crowd[*k] = c;
        }
    }
    (rank, crowd)
}

/// The `keep` candidates that survive: whole fronts, best first, then the most spread-out
/// members of the front that does not fit. Returned in ascending index order.
pub(crate) fn survivors(objs: &[Objectives], keep: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(keep);
    for front in fronts(objs) {
        if out.len() + front.len() <= keep {
            out.extend_from_slice(&front);
            continue;
        }
        let d = crowding(objs, &front);
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| d[b].total_cmp(&d[a]).then(a.cmp(&b)));
        out.extend(order.iter().take(keep - out.len()).map(|&k| front[k]));
        break;
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(goal: f64, cost: f64) -> Objectives {
        Objectives { goal, cost }
    }

    #[test]
    fn fronts_sort_by_domination() {
        // 0 and 1 trade off; 2 is beaten by 0; 3 is beaten by everything; 4 equals 0.
        let objs = [o(0.1, 5.0), o(0.5, 1.0), o(0.2, 6.0), o(0.9, 9.0), o(0.1, 5.0)];
        assert_eq!(fronts(&objs), vec![vec![0, 1, 4], vec![2], vec![3]]);
        let (rank, crowd) = rank(&objs);
        assert_eq!(rank, [0, 0, 1, 2, 0]);
        assert!(crowd[2].is_infinite() && crowd[3].is_infinite(), "a lone front member is an end");
    }

    #[test]
    fn survival_keeps_the_best_front_and_its_ends() {
        let objs = [o(0.0, 4.0), o(0.9, 9.0), o(0.2, 2.0), o(0.25, 1.9), o(0.6, 0.0), o(0.8, 8.0)];
        // Front 0: 0, 2, 3, 4. Keeping 3 drops the most crowded inner member (2 or 3).
        let s = survivors(&objs, 3);
        assert_eq!(s.len(), 3);
        assert!(s.contains(&0) && s.contains(&4), "the ends of the front survive: {s:?}");
        assert_eq!(survivors(&objs, 5), vec![0, 2, 3, 4, 5]);
    }
}
