//! `fraudster`: the cheapest change, within a cost budget, that makes the model call a
//! fraud row genuine.
//!
//! Greedy coordinate search on the gradient of the target class's cross-entropy: each
//! iteration takes the single move with the largest expected loss decrease per unit of
//! cost (for a step of `d` raw units on column `j` that is `|grad_j| / cost_j`, so the
//! standardisation cancels out). Each column only ever moves away from its original value,
//! and each binary column or one-hot group changes at most once, so the path cannot
//! oscillate and the cost grows with every move. Once the model flips, the last move is
//! shortened by bisection, since a full step usually overshoots the decision boundary.

use serde::Deserialize;
use tempered_plugin::{
    Attack, Batch, Budget, Column, Direction, FeatureKind, Input, Oracle, Perturbed, Result, TableBatch,
    ThreatModel,
};

use crate::budget::step_toward;
use crate::shared::{
    Columns, check_batch, check_classes, check_costs, compact, finish, hot, non_negative, positive, predicts,
    rows_labelled, toward_target,
};

/// `[attack.params]` of `fraudster`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudsterParams {
    /// Most total cost a row may change by: `sum_j cost_j * |new_j - original_j|` (raw
    /// units; binary and one-hot columns change by 1 per column). Required, finite, >= 0.
    pub budget: f32,
    /// Rows with this label are attacked; the rest come back unchanged. Default 1.
    #[serde(default = "default_fraud")]
    pub fraud_class: u32,
    /// The class the attack wants the model to predict. Default 0.
    #[serde(default)]
    pub target_class: u32,
    /// Length of one move in standardised units (`step * scale` raw units; at least 1 for
    /// integer columns). Default 0.25.
    #[serde(default = "default_step")]
    pub step: f32,
    /// Most moves per row. Default 100.
    #[serde(default = "default_max_iters")]
    pub max_iters: u32,
}

fn default_fraud() -> u32 {
    1
}

fn default_step() -> f32 {
    0.25
}

fn default_max_iters() -> u32 {
    100
}

/// Bisection rounds that shorten the winning move (one `predict` query each).
const REFINE_ROUNDS: usize = 6;

/// A move that would fill the budget exactly stops this fraction short of it, so that the
/// host adding the same costs in another order or in f32 still finds the row within.
const FILL_SLACK: f64 = 1e-5;

pub struct Fraudster {
    p: FraudsterParams,
}

impl Attack for Fraudster {
    type Params = FraudsterParams;
    const NAME: &'static str = "fraudster";
    const DESCRIPTION: &'static str = "cost-budgeted evasion: greedy cheapest moves on mutable features until \
                                       the model predicts the target class";

    fn new(p: FraudsterParams) -> Result<Self> {
        non_negative("fraudster", "budget", p.budget)?;
        positive("fraudster", "step", p.step)?;
        if p.fraud_class == p.target_class {
            return Err("fraudster: fraud_class and target_class must differ".into());
        }
        Ok(Self { p })
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([Budget::Cost { budget: f64::from(self.p.budget) }])
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        check_batch(batch)?;
        check_costs("fraudster", &batch.features)?;
        check_classes("fraudster", self.p.fraud_class, self.p.target_class, oracle.n_classes())?;
        let mut out = batch.data.to_vec();
        let rows = rows_labelled(batch.labels, self.p.fraud_class);
        if !rows.is_empty() && batch.width > 0 {
            let won = self.search(batch, oracle, &rows, &mut out)?;
            self.refine(batch, oracle, won, &mut out)?;
        }
        finish(batch, &mut out);
        Ok(Perturbed::Dense(out))
    }
}

/// A move on one continuous or integer column, remembered so it can be shortened.
#[derive(Debug, Clone, Copy)]
struct Shift {
    col: usize,
    from: f32,
    to: f32,
    integer: bool,
}

/// A candidate move and how good it looks.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// Moving column `moving[q]` by `delta` raw units.
    Shift { q: usize, delta: f64 },
    /// Flipping binary column `binaries[b]`.
    Flip { b: usize },
    /// Switching one-hot group `groups[g]` to column `to`.
    Switch { g: usize, to: usize },
}

/// A fraud row under attack.
struct Track {
    /// Batch row.
    i: usize,
    spent: f64,
    /// Direction each moving column has taken (0: not moved yet).
    dir: Vec<i8>,
    /// Binary columns then one-hot groups already changed.
    used: Vec<bool>,
    last: Option<Shift>,
}

/// `sum_j cost_j * |x_j - o_j|` in f64.
fn cost(features: &[Column], o: &[f32], x: &[f32]) -> f64 {
    let mut total = 0.0;
    for (j, f) in features.iter().enumerate() {
        if x[j] != o[j] {
            total += f.cost as f64 * (x[j] as f64 - o[j] as f64).abs();
        }
    }
    total
}

impl Fraudster {
    fn budget(&self) -> f64 {
        self.p.budget as f64
    }

    /// Greedy search over `rows`, writing each row's final state to `out`. Returns the
    /// rows that reached the target through a shift, for `refine`.
    fn search(
        &self,
        batch: &TableBatch<'_>,
        oracle: &Oracle<'_>,
        rows: &[usize],
        out: &mut [f32],
    ) -> Result<Vec<(usize, Shift)>> {
        let w = batch.width;
        let cols = Columns::new(&batch.features, true);
        let n_used = cols.binaries.len() + cols.groups.len();
        let mut tracks: Vec<Track> = rows
            .iter()
            .map(|&i| Track {
                i,
                spent: 0.0,
                dir: vec![0; cols.moving.len()],
                used: vec![false; n_used],
                last: None,
            })
            .collect();
        let mut x: Vec<f32> = rows.iter().flat_map(|&i| batch.row(i).iter().copied()).collect();
        let mut ids: Vec<u32> = rows.iter().map(|&i| i as u32).collect();
        let targets = vec![self.p.target_class; rows.len()];
        let mut won = Vec::new();
        let mut keep = Vec::with_capacity(rows.len());
        for it in 0..=self.p.max_iters {
            if tracks.is_empty() {
                break;
            }
            let a = tracks.len();
            let (hit, g) = toward_target(oracle, &x, w, &targets[..a], &ids)?;
            keep.clear();
            for (k, t) in tracks.iter_mut().enumerate() {
                let row = &mut x[k * w..(k + 1) * w];
                let moved = !hit[k]
                    && it < self.p.max_iters
                    && self.step(batch, &cols, t, row, &g[k * w..(k + 1) * w]);
                if !moved {
                    out[t.i * w..(t.i + 1) * w].copy_from_slice(row);
                    if let (true, Some(s)) = (hit[k], t.last) {
                        won.push((t.i, s));
                    }
                }
                keep.push(moved);
            }
            compact(&mut x, w, &keep);
            compact(&mut ids, 1, &keep);
            let mut k = 0;
            tracks.retain(|_| {
                k += 1;
                keep[k - 1]
            });
        }
        Ok(won)
    }

    /// Picks and applies the best affordable move for one row; false when there is none.
    fn step(&self, batch: &TableBatch<'_>, cols: &Columns, t: &mut Track, x: &mut [f32], g: &[f32]) -> bool {
        let f: &[Column] = &batch.features;
        let o = batch.row(t.i);
        let left = self.budget() - t.spent;
        let grad = |j: usize| if g[j].is_finite() { g[j] as f64 } else { 0.0 };
        // (expected loss decrease per unit cost, expected decrease, move)
        let mut best: Option<(f64, f64, Move)> = None;
        let mut offer = |gain: f64, price: f64, mv: Move| {
            let ratio = if price > 0.0 { gain / price } else { f64::INFINITY };
            if gain > 0.0 && best.is_none_or(|(r, gn, _)| ratio > r || (ratio == r && gain > gn)) {
                best = Some((ratio, gain, mv));
            }
        };
        for (q, &j) in cols.moving.iter().enumerate() {
            let gj = grad(j);
            let dir: i8 = if gj > 0.0 { -1 } else { 1 };
            if gj == 0.0 || (t.dir[q] != 0 && t.dir[q] != dir) {
                continue;
            }
            // A column the pipeline lets move one way only is never offered the other.
            let allowed = match batch.constraints.direction(j) {
                Direction::Any => true,
                Direction::Up => dir > 0,
                Direction::Down => dir < 0,
            };
            if !allowed {
                continue;
            }
            let integer = cols.integer[q];
            let (lo, hi) =
                if integer { (f[j].lower.ceil(), f[j].upper.floor()) } else { (f[j].lower, f[j].upper) };
            let room = if dir > 0 { hi as f64 - x[j] as f64 } else { x[j] as f64 - lo as f64 };
            let full = self.p.step as f64 * f[j].scale as f64;
            let mut d = if integer { full.round().max(1.0) } else { full }.min(room);
            let c = f[j].cost as f64;
            if c > 0.0 && d * c > left {
                d = left * (1.0 - FILL_SLACK) / c;
                if integer {
                    d = d.floor();
                } else if d < 0.01 * full {
                    // Crumbs of budget: not worth a query.
                    continue;
                }
            }
            if d > 0.0 {
                offer(gj.abs() * d, c * d, Move::Shift { q, delta: dir as f64 * d });
            }
        }
        for (b, &j) in cols.binaries.iter().enumerate() {
            let new = 1.0 - o[j];
            let ok = !t.used[b] && (o[j] == 0.0 || o[j] == 1.0) && (f[j].lower..=f[j].upper).contains(&new);
            if ok && (f[j].cost as f64) <= left {
                offer(-grad(j) * (new - x[j]) as f64, f[j].cost as f64, Move::Flip { b });
            }
        }
        for (gi, gcols) in cols.groups.iter().enumerate() {
            let Some(cur) = hot(gcols, x) else { continue };
            if t.used[cols.binaries.len() + gi] || f[cur].lower > 0.0 {
                continue;
            }
            let allowed = |b: usize| batch.constraints.switch_allowed(cur, b);
            for &to in gcols.iter().filter(|&&b| b != cur && f[b].upper >= 1.0 && allowed(b)) {
                let price = f[cur].cost as f64 + f[to].cost as f64;
                if price <= left {
                    offer(grad(cur) - grad(to), price, Move::Switch { g: gi, to });
                }
            }
        }
        let Some((_, _, mv)) = best else { return false };
        let undo = x.to_vec();
        match mv {
            Move::Shift { q, delta } => {
                let j = cols.moving[q];
                let from = x[j];
                let mut to = ((from as f64 + delta) as f32).clamp(f[j].lower, f[j].upper);
                x[j] = to;
                // The f32 rounding of a budget-filling move can land a hair over.
                let mut tries = 0;
                while cost(f, o, x) > self.budget() && tries < 64 && to != from {
                    to = step_toward(to, from);
                    x[j] = to;
                    tries += 1;
                }
                if to == from {
                    x.copy_from_slice(&undo);
                    return false;
                }
                t.dir[q] = if delta > 0.0 { 1 } else { -1 };
                t.last = Some(Shift { col: j, from, to, integer: f[j].kind == FeatureKind::Integer });
            }
            Move::Flip { b } => {
                let j = cols.binaries[b];
                x[j] = 1.0 - x[j];
                t.used[b] = true;
                t.last = None;
            }
            Move::Switch { g, to } => {
                let cur = hot(&cols.groups[g], x).expect("checked when offered");
                x[cur] = 0.0;
                x[to] = 1.0;
                t.used[cols.binaries.len() + g] = true;
                t.last = None;
            }
        }
        t.spent = cost(f, o, x);
        if t.spent > self.budget() {
            x.copy_from_slice(&undo);
            t.spent = cost(f, o, x);
            return false;
        }
        true
    }

    /// Shortens the winning move of each row in `won` by bisection between where it
    /// started (not yet the target) and where it ended (the target): every shortening
    /// lowers the cost, since moves only go away from the original.
    fn refine(
        &self,
        batch: &TableBatch<'_>,
        oracle: &Oracle<'_>,
        mut won: Vec<(usize, Shift)>,
        out: &mut [f32],
    ) -> Result<()> {
        let w = batch.width;
        let c = oracle.n_classes();
        // Per row: amounts of the move known to fail and to succeed.
        let mut span: Vec<(f64, f64)> =
            won.iter().map(|(_, s)| (0.0, (s.to as f64 - s.from as f64).abs())).collect();
        let mut x = Vec::new();
        let mut ids = Vec::new();
        let mut mids = Vec::new();
        let mut keep = Vec::new();
        for _ in 0..REFINE_ROUNDS {
            keep.clear();
            for (&(_, s), &(lo, hi)) in won.iter().zip(&span) {
                let worth = if s.integer { hi - lo > 1.0 } else { hi - lo > 1e-3 * hi };
                keep.push(worth);
            }
            compact(&mut won, 1, &keep);
            compact(&mut span, 1, &keep);
            if won.is_empty() {
                break;
            }
            x.clear();
            ids.clear();
            mids.clear();
            for (&(i, s), &(lo, hi)) in won.iter().zip(&span) {
                let mid = if s.integer { ((lo + hi) / 2.0).floor() } else { (lo + hi) / 2.0 };
                let sign = if s.to > s.from { 1.0 } else { -1.0 };
                let mut row = out[i * w..(i + 1) * w].to_vec();
                row[s.col] = (s.from as f64 + sign * mid) as f32;
                x.extend_from_slice(&row);
                ids.push(i as u32);
                mids.push(mid);
            }
            let p = oracle.predict(Input::Dense { data: &x, width: w }, &ids)?;
            for (k, (&(i, s), span)) in won.iter().zip(span.iter_mut()).enumerate() {
                if predicts(&p[k * c..(k + 1) * c], self.p.target_class as usize) {
                    span.1 = mids[k];
                    out[i * w + s.col] = x[k * w + s.col];
                } else {
                    span.0 = mids[k];
                }
            }
        }
        Ok(())
    }
}
