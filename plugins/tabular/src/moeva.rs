//! `moeva`: a black-box evolutionary search for the cheapest row the model misclassifies,
//! in the spirit of MOEVA (Simonetto et al. 2022, as TabularBench runs it).
//!
//! Each example evolves its own population of candidate rows. A child takes each gene (a
//! continuous or integer column, a binary column, a whole one-hot group) from one of two
//! parents chosen by tournament, then mutates: a Gaussian step on continuous columns
//! inside the L∞ ball and the column's direction, a flip of a binary column, a switch of a
//! category to one the pipeline allows from the original. Every child is projected with the
//! batch's constraints (`Batch::project`: bounds, integers, one-hot groups, directions,
//! transitions, derived columns), pulled back inside the cost budget, and judged with the
//! host's own rules before the model is asked about it, so no candidate the host would
//! refuse is ever queried or returned. Survival is NSGA-II on two objectives: how close the
//! candidate is to fooling the model, and its cost.
//!
//! MOEVA's third objective, constraint violation, is not needed: projection makes every
//! candidate feasible, so the search spends no queries on rows the host would refuse.
//!
//! Only `Oracle::predict` is used (a fraudster has no gradients), and never more rows per
//! example than `Oracle::queries_left` allows.

mod nsga;
mod variation;

use serde::Deserialize;
use tempered_plugin::{
    Attack, Batch, Budget, Input, Oracle, Perturbed, PluginError, Result, Rng, TableBatch, ThreatModel,
};

use crate::shared::{check_batch, check_costs, finish, non_negative, positive};
use nsga::Objectives;
use variation::Space;

/// `[attack.params]` of `moeva`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoevaParams {
    /// L∞ radius for continuous and integer columns, in standardised units. Default 1.0.
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    /// Most total cost `Σ_j cost_j · |Δ_j|` of a returned row (raw units; a category
    /// switch costs both columns' costs). Default: no cap (cost is still minimised).
    #[serde(default)]
    pub budget: Option<f32>,
    /// Candidates per example. Default 20.
    #[serde(default = "default_population")]
    pub population: u32,
    /// Generations after the first. Default 30.
    #[serde(default = "default_generations")]
    pub generations: u32,
    /// Chance that a child's continuous or integer column takes a Gaussian step. Default 0.3.
    #[serde(default = "default_mutation_rate")]
    pub mutation_rate: f32,
    /// Standard deviation of that step, as a fraction of `epsilon`. Default 0.5.
    #[serde(default = "default_mutation_size")]
    pub mutation_size: f32,
    /// Chance that a child flips a binary column or switches a category. Default 0.1.
    #[serde(default = "default_switch_rate")]
    pub switch_rate: f32,
    /// Chance that a child mixes two parents rather than copying one. Default 0.7.
    #[serde(default = "default_crossover_rate")]
    pub crossover_rate: f32,
}

fn default_epsilon() -> f32 {
    1.0
}

fn default_population() -> u32 {
    20
}

fn default_generations() -> u32 {
    30
}

fn default_mutation_rate() -> f32 {
    0.3
}

fn default_mutation_size() -> f32 {
    0.5
}

fn default_switch_rate() -> f32 {
    0.1
}

fn default_crossover_rate() -> f32 {
    0.7
}

/// Beyond this margin (true-class probability minus the best other class) a candidate is
/// as good as fooled: more confidence buys the attacker nothing, so among such candidates
/// only cost decides. A little margin is kept so that the host's own evaluation of the
/// returned row, in a batch of other rows, cannot land on the other side of the boundary.
const ENOUGH_MARGIN: f64 = 0.05;

/// Most candidates per example: every generation ranks them pairwise (NSGA-II's sort is
/// quadratic in the population).
const MAX_POPULATION: u32 = 4096;

/// Most rows in one oracle call: a large population times a large batch would otherwise
/// ask the host to hold every candidate of a generation at once.
const MAX_CALL_ROWS: usize = 1 << 14;

pub struct Moeva {
    p: MoevaParams,
}

impl Moeva {
    /// Rows this attack asks per example, at most: the first population and one more
    /// population per generation.
    fn max_queries(&self) -> u64 {
        u64::from(self.p.population) * (u64::from(self.p.generations) + 1)
    }
}

impl Attack for Moeva {
    type Params = MoevaParams;
    const NAME: &'static str = "moeva";
    const DESCRIPTION: &'static str = "MOEVA-style black-box evolutionary search (NSGA-II on p(true class) and \
                                       cost): L-inf moves, flips and allowed category switches; predict only";

    fn new(p: MoevaParams) -> Result<Self> {
        non_negative("moeva", "epsilon", p.epsilon)?;
        if let Some(b) = p.budget {
            non_negative("moeva", "budget", b)?;
        }
        if !(2..=MAX_POPULATION).contains(&p.population) {
            return Err(PluginError(format!(
                "moeva: population must be between 2 and {MAX_POPULATION}, got {}",
                p.population
            )));
        }
        if p.generations == 0 {
            return Err("moeva: generations must be >= 1".into());
        }
        for (name, v) in [
            ("mutation_rate", p.mutation_rate),
            ("switch_rate", p.switch_rate),
            ("crossover_rate", p.crossover_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(PluginError(format!("moeva: {name} must be a probability in [0, 1], got {v}")));
            }
        }
        positive("moeva", "mutation_size", p.mutation_size)?;
        Ok(Self { p })
    }

    /// The ball, the cost cap when there is one, and the queries: all checked by the host.
    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([Budget::LinfStd { epsilon: f64::from(self.p.epsilon) }])
            .with_opt(self.p.budget.map(|b| Budget::Cost { budget: f64::from(b) }))
            .with(Budget::Queries { max: self.max_queries() })
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        check_batch(batch)?;
        check_costs("moeva", &batch.features)?;
        let classes = oracle.n_classes();
        if let Some(&y) = batch.labels.iter().find(|&&y| y as usize >= classes) {
            return Err(PluginError(format!("moeva: label {y} but the model has {classes} classes")));
        }
        let mut out = batch.data.to_vec();
        if !batch.is_empty() && batch.width > 0 {
            Search::new(&self.p, batch).run(oracle, &mut out)?;
        }
        finish(batch, &mut out);
        Ok(Perturbed::Dense(out))
    }
}

/// How good a candidate is for the attacker, from the model's probabilities.
fn margin(p: &[f32], y: usize) -> f64 {
    let other =
        p.iter().enumerate().filter(|&(c, _)| c != y).map(|(_, &v)| v).fold(f32::NEG_INFINITY, f32::max);
    f64::from(p[y]) - f64::from(other)
}

/// The seed of example `k`'s random stream in a batch seeded `seed`.
fn stream(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 27)
}

/// One example's population: rows, margins and costs, `size` of them.
#[derive(Debug, Clone, Default)]
struct Population {
    rows: Vec<f32>,
    margin: Vec<f64>,
    cost: Vec<f64>,
}

impl Population {
    fn len(&self) -> usize {
        self.margin.len()
    }

    fn objectives(&self) -> Vec<Objectives> {
        self.margin
            .iter()
            .zip(&self.cost)
            .map(|(&m, &c)| Objectives { goal: m.max(-ENOUGH_MARGIN), cost: c })
            .collect()
    }
}

/// The best row an example has seen: the cheapest that fools the model, else the one
/// closest to fooling it.
#[derive(Debug, Clone)]
struct Best {
    row: Vec<f32>,
    margin: f64,
    cost: f64,
}

impl Best {
    fn offer(&mut self, row: &[f32], margin: f64, cost: f64) {
        let fooled = margin < 0.0;
        let better = match (fooled, self.margin < 0.0) {
            (true, false) => true,
            (false, true) => false,
            (true, true) => cost < self.cost || (cost == self.cost && margin < self.margin),
            (false, false) => margin < self.margin || (margin == self.margin && cost < self.cost),
        };
        if better {
            self.row.copy_from_slice(row);
            self.margin = margin;
            self.cost = cost;
        }
    }
}

/// One `perturb` call.
struct Search<'a, 'b> {
    p: &'a MoevaParams,
    batch: &'a TableBatch<'b>,
    space: Space<'a, 'b>,
}

impl<'a, 'b> Search<'a, 'b> {
    fn new(p: &'a MoevaParams, batch: &'a TableBatch<'b>) -> Self {
        Self { p, batch, space: Space::new(p, batch) }
    }

    /// Rows the oracle answers for example `i` now: `want`, or fewer near the host's cap.
    fn affordable(oracle: &Oracle<'_>, i: usize, want: usize) -> usize {
        oracle
            .queries_left(i as u32)
            .map_or(want, |left| want.min(usize::try_from(left).unwrap_or(usize::MAX)))
    }

    fn run(&self, oracle: &Oracle<'_>, out: &mut [f32]) -> Result<()> {
        let (n, w) = (self.batch.len(), self.batch.width);
        let size = self.p.population as usize;
        // One stream per example, seeded by its position: no example's draws depend on
        // another's, so the result does not depend on how the work is ordered.
        let mut rngs: Vec<Rng> = (0..n).map(|i| Rng::new(stream(self.batch.seed, i as u64))).collect();
        let mut best: Vec<Best> = (0..n)
            .map(|i| Best { row: self.batch.row(i).to_vec(), margin: f64::INFINITY, cost: 0.0 })
            .collect();

        // The first population: the original itself, and mutations of it.
        let mut pops: Vec<Population> = vec![Population::default(); n];
        let mut children: Vec<(usize, Vec<f32>, f64)> = Vec::new();
        for (i, rng) in rngs.iter_mut().enumerate() {
            let o = self.batch.row(i);
            for k in 0..Self::affordable(oracle, i, size) {
                let mut row = o.to_vec();
                if k > 0 {
                    self.space.mutate(i, &mut row, rng);
                }
                let cost = self.space.settle(i, &mut row, rng);
                children.push((i, row, cost));
            }
        }
        self.evaluate(oracle, &children, &mut pops, &mut best)?;

        for _ in 0..self.p.generations {
            children.clear();
            for (i, rng) in rngs.iter_mut().enumerate() {
                let pop = &pops[i];
                if pop.len() == 0 {
                    continue;
                }
                let (rank, crowd) = nsga::rank(&pop.objectives());
                let pick = |rng: &mut Rng| {
                    let (a, b) = (rng.below(pop.len()), rng.below(pop.len()));
                    let a_wins = rank[a] < rank[b] || (rank[a] == rank[b] && crowd[a] >= crowd[b]);
                    if a_wins { a } else { b }
                };
                for _ in 0..Self::affordable(oracle, i, size) {
                    let (a, b) = (pick(rng), pick(rng));
                    let mut row = pop.rows[a * w..(a + 1) * w].to_vec();
                    if rng.next_f32() < self.p.crossover_rate {
                        self.space.crossover(&mut row, &pop.rows[b * w..(b + 1) * w], rng);
                    }
                    self.space.mutate(i, &mut row, rng);
                    let cost = self.space.settle(i, &mut row, rng);
                    children.push((i, row, cost));
                }
            }
            if children.is_empty() {
                break;
            }
            let mut offspring = vec![Population::default(); n];
            self.evaluate(oracle, &children, &mut offspring, &mut best)?;
            for (pop, kids) in pops.iter_mut().zip(offspring) {
                if kids.len() == 0 {
                    continue;
                }
                pop.rows.extend_from_slice(&kids.rows);
                pop.margin.extend_from_slice(&kids.margin);
                pop.cost.extend_from_slice(&kids.cost);
                let keep = nsga::survivors(&pop.objectives(), size);
                let mut next = Population::default();
                for k in keep {
                    next.rows.extend_from_slice(&pop.rows[k * w..(k + 1) * w]);
                    next.margin.push(pop.margin[k]);
                    next.cost.push(pop.cost[k]);
                }
                *pop = next;
            }
        }
        for (i, b) in best.iter().enumerate() {
            out[i * w..(i + 1) * w].copy_from_slice(&b.row);
        }
        Ok(())
    }

    /// Asks the model about every child in one call and files each under its example.
    fn evaluate(
        &self,
        oracle: &Oracle<'_>,
        children: &[(usize, Vec<f32>, f64)],
        pops: &mut [Population],
        best: &mut [Best],
    ) -> Result<()> {
        if children.is_empty() {
            return Ok(());
        }
        let w = self.batch.width;
        let c = oracle.n_classes();
        for part in children.chunks(MAX_CALL_ROWS) {
            let data: Vec<f32> = part.iter().flat_map(|(_, row, _)| row.iter().copied()).collect();
            let ids: Vec<u32> = part.iter().map(|&(i, _, _)| i as u32).collect();
            let p = oracle.predict(Input::Dense { data: &data, width: w }, &ids)?;
            for (k, (i, row, cost)) in part.iter().enumerate() {
                let m = margin(&p[k * c..(k + 1) * c], self.batch.labels[*i] as usize);
                // A NaN probability ranks as the worst candidate, never as a success.
                let m = if m.is_nan() { f64::INFINITY } else { m };
                let pop = &mut pops[*i];
                pop.rows.extend_from_slice(row);
                pop.margin.push(m);
                pop.cost.push(*cost);
                best[*i].offer(row, m, *cost);
            }
        }
        Ok(())
    }
}
