//! What a candidate row may become: the genes an attacker moves (continuous and integer
//! columns inside their box, binary columns, one-hot groups along allowed switches),
//! crossover and mutation over them, and `settle`, which makes any child a row the host
//! accepts.

use tempered_plugin::{Budget, Column, Rng, TableBatch, judge};

use super::MoevaParams;
use crate::budget::{boxes, clamp};
use crate::shared::{Columns, hot};

/// Chance that a mutated continuous column goes back to its original value rather than
/// taking a step. Steps are symmetric, so on their own they only ever spread a row away
/// from the original; this is what lets the cost objective pull it back.
const RESET: f32 = 0.2;

/// Rounds of pulling a row inside the cost budget before giving up on its continuous moves.
const FIT_ROUNDS: usize = 8;

/// Each round the host's judge refuses a child, its continuous moves are halved, this many
/// times; then the child is the original row, which the host always accepts.
const GATE_ROUNDS: usize = 3;

/// The search space of one batch.
pub(super) struct Space<'a, 'b> {
    p: &'a MoevaParams,
    batch: &'a TableBatch<'b>,
    /// Columns with a finite cost only: every move is paid for.
    cols: Columns,
    /// Per example and moving column: its bounds, the L∞ ball and its direction.
    bx: Vec<[f32; 2]>,
    /// Per example and one-hot group: the categories the row may hold, the original first
    /// (empty: the group stays as it is).
    options: Vec<Vec<Vec<usize>>>,
    /// What the host checks on every returned row, beyond the schema and constraints.
    budgets: Vec<Budget>,
}

impl<'a, 'b> Space<'a, 'b> {
    pub(super) fn new(p: &'a MoevaParams, batch: &'a TableBatch<'b>) -> Self {
        let cols = Columns::new(&batch.features, true);
        let bx = boxes(batch, &cols, Some(p.epsilon));
        let f = &batch.features;
        let options = (0..batch.len())
            .map(|i| {
                let o = batch.row(i);
                cols.groups
                    .iter()
                    .map(|g| match hot(g, o) {
                        Some(cur) if f[cur].lower <= 0.0 => std::iter::once(cur)
                            .chain(g.iter().copied().filter(|&b| {
                                b != cur && f[b].upper >= 1.0 && batch.constraints.switch_allowed(cur, b)
                            }))
                            .collect(),
                        _ => Vec::new(),
                    })
                    .collect()
            })
            .collect();
        let budgets = [Budget::LinfStd { epsilon: f64::from(p.epsilon) }]
            .into_iter()
            .chain(p.budget.map(|b| Budget::Cost { budget: f64::from(b) }))
            .collect();
        Self { p, batch, cols, bx, options, budgets }
    }

    fn features(&self) -> &[Column] {
        &self.batch.features
    }

    fn row_box(&self, i: usize) -> &[[f32; 2]] {
        let m = self.cols.moving.len();
        &self.bx[i * m..(i + 1) * m]
    }

    /// Takes each gene from `other` with even odds (uniform crossover; a one-hot group is
    /// one gene, so a child never holds half of each parent's category).
    pub(super) fn crossover(&self, row: &mut [f32], other: &[f32], rng: &mut Rng) {
        for &j in self.cols.moving.iter().chain(&self.cols.binaries) {
            if rng.next_f32() < 0.5 {
                row[j] = other[j];
            }
        }
        for g in &self.cols.groups {
            if rng.next_f32() < 0.5 {
                for &j in g {
                    row[j] = other[j];
                }
            }
        }
    }

    /// Random moves on row `row` of example `i`: steps or resets of continuous columns,
    /// binary flips, category switches.
    pub(super) fn mutate(&self, i: usize, row: &mut [f32], rng: &mut Rng) {
        let (f, o) = (self.features(), self.batch.row(i));
        let sigma = self.p.mutation_size * self.p.epsilon;
        for ((&j, &integer), &b) in self.cols.moving.iter().zip(&self.cols.integer).zip(self.row_box(i)) {
            if rng.next_f32() >= self.p.mutation_rate {
                continue;
            }
            if rng.next_f32() < RESET {
                row[j] = o[j];
                continue;
            }
            let step = rng.normal() * sigma * f[j].scale;
            let mut v = row[j] + step;
            if integer {
                v = v.round();
                // A step shorter than one unit would round back to where it started.
                if v == row[j] && step != 0.0 {
                    v = row[j] + step.signum();
                }
            }
            row[j] = clamp(v, b);
        }
        for &j in &self.cols.binaries {
            if rng.next_f32() >= self.p.switch_rate {
                continue;
            }
            let new = 1.0 - row[j];
            if (row[j] == 0.0 || row[j] == 1.0) && (new == o[j] || (f[j].lower..=f[j].upper).contains(&new)) {
                row[j] = new;
            }
        }
        for (g, opts) in self.cols.groups.iter().zip(&self.options[i]) {
            if opts.len() < 2 || rng.next_f32() >= self.p.switch_rate {
                continue;
            }
            let cur = hot(g, row);
            let choices: Vec<usize> = opts.iter().copied().filter(|&b| Some(b) != cur).collect();
            let to = choices[rng.below(choices.len())];
            for &j in g {
                row[j] = if j == to { 1.0 } else { 0.0 };
            }
        }
    }

    /// The host's cost of `row` against the original `o`: every column but derived ones,
    /// summed in the host's arithmetic (`judge::tabular`).
    fn cost(&self, o: &[f32], row: &[f32]) -> (f64, f64) {
        let (mut total, mut discrete) = (0.0, 0.0);
        for (j, f) in self.features().iter().enumerate() {
            let d = f64::from(row[j] - o[j]);
            if d != 0.0 && !self.batch.constraints.is_derived(j) {
                let c = f64::from(f.cost) * d.abs();
                total += c;
                if f.group.is_some() || self.cols.binaries.contains(&j) {
                    discrete += c;
                }
            }
        }
        (total, discrete)
    }

    /// Moves every continuous column of `row` a fraction `t` (in [0, 1]) of its way back
    /// from the original; integers truncate toward it, so no column moves further.
    fn shrink(&self, i: usize, row: &mut [f32], t: f64) {
        let o = self.batch.row(i);
        for ((&j, &integer), &b) in self.cols.moving.iter().zip(&self.cols.integer).zip(self.row_box(i)) {
            let d = (f64::from(row[j]) - f64::from(o[j])) * t;
            let d = if integer { d.trunc() } else { d };
            let v = (f64::from(o[j]) + d) as f32;
            // Rounding to f32 may land a hair past the original's side of the old value;
            // between the two stays inside the box and the direction.
            row[j] = clamp(if (v - o[j]).abs() > (row[j] - o[j]).abs() { row[j] } else { v }, b);
        }
    }

    /// Makes child `row` of example `i` a row the host accepts, and returns its cost:
    /// projected with the batch's constraints, pulled inside the cost budget (discrete
    /// changes undone at random while they alone overspend, then continuous moves scaled
    /// down), and judged with the host's rules; a row the judge refuses is shrunk and, at
    /// worst, becomes the original.
    pub(super) fn settle(&self, i: usize, row: &mut [f32], rng: &mut Rng) -> f64 {
        let o = self.batch.row(i);
        self.batch.project(i, row);
        if let Some(budget) = self.p.budget.map(f64::from) {
            for _ in 0..FIT_ROUNDS {
                let (total, discrete) = self.cost(o, row);
                if total <= budget {
                    break;
                }
                if discrete > budget {
                    self.undo_one_discrete(o, row, rng);
                } else {
                    let t = (budget - discrete) / (total - discrete) * (1.0 - 1e-6);
                    self.shrink(i, row, t.clamp(0.0, 1.0));
                }
                self.batch.project(i, row);
            }
            if self.cost(o, row).0 > budget {
                row.copy_from_slice(o);
            }
        }
        for round in 0..=GATE_ROUNDS {
            let v = judge::tabular(self.features(), &self.batch.constraints, o, row, &self.budgets);
            if v.violations == 0 {
                return v.perturbation;
            }
            if round == GATE_ROUNDS {
                break;
            }
            self.shrink(i, row, 0.5);
            self.batch.project(i, row);
        }
        row.copy_from_slice(o);
        0.0
    }

    /// Puts one changed binary column or one-hot group of `row`, picked at random, back
    /// to the original `o`.
    fn undo_one_discrete(&self, o: &[f32], row: &mut [f32], rng: &mut Rng) {
        let mut changed: Vec<&[usize]> = Vec::new();
        for j in &self.cols.binaries {
            if row[*j] != o[*j] {
                changed.push(std::slice::from_ref(j));
            }
        }
        for g in &self.cols.groups {
            if g.iter().any(|&j| row[j] != o[j]) {
                changed.push(g);
            }
        }
        if changed.is_empty() {
            return;
        }
        for &j in changed[rng.below(changed.len())] {
            row[j] = o[j];
        }
    }
}
