//! `pgd`: projected gradient ascent on the true label's cross-entropy (Madry et al. 2018),
//! inside an L∞ or L2 ball in standardised units and the schema's constraints.
//!
//! Integer columns are optimised as reals and rounded (inside the ball and bounds) before
//! every oracle call, so the model only ever sees valid rows yet small steps still add up.

use serde::Deserialize;
use tempered_plugin::{
    Attack, Batch, Budget, Column, Input, Oracle, Perturbed, Result, Rng, TableBatch, ThreatModel,
};

use crate::budget::{boxes, clamp, fit_l2, materialize};
use crate::shared::{Columns, check_batch, finish, hot, non_negative};

/// The ball PGD stays in, measured in standardised units (raw change / `scale`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Each moving column changes by at most `epsilon * scale` raw units.
    #[default]
    Linf,
    /// The standardised change vector has Euclidean length at most `epsilon`.
    L2,
}

/// `[attack.params]` of `pgd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgdParams {
    /// `"linf"` (default) or `"l2"`.
    #[serde(default)]
    pub norm: Norm,
    /// Radius of the ball in standardised units. Required, finite, >= 0.
    pub epsilon: f32,
    /// Gradient steps per restart. Default 10.
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// Step length in standardised units. Default `2.5 * epsilon / steps`.
    #[serde(default)]
    pub step_size: Option<f32>,
    /// Independent runs; each example keeps the run that misclassifies it, else the one
    /// with the highest loss. Later runs only attack examples not yet misclassified.
    /// Default 1.
    #[serde(default = "default_restarts")]
    pub restarts: u32,
    /// Start each run at a uniform random point of the ball (default true).
    #[serde(default = "default_true")]
    pub random_start: bool,
    /// false (default): binary and one-hot columns stay untouched. true: after the
    /// continuous steps, flip each binary column and switch each one-hot group at most once,
    /// where the gradient says it raises the loss; these flips are not counted in the norm,
    /// and are undone when the model says they lowered the loss.
    #[serde(default)]
    pub discrete: bool,
    /// Threads that share a batch, each running the whole attack on its own rows and
    /// meeting the others once per restart. Default 0: one per core. The examples are the
    /// same for any number (see [`Pgd::attack`]).
    #[serde(default)]
    pub threads: usize,
}

/// A thread gets at least this many rows: starting one costs about as much as a few
/// dozen rows' steps, so smaller shares would make the attack slower, not faster.
const MIN_ROWS_PER_THREAD: usize = 64;

fn default_steps() -> u32 {
    10
}

fn default_restarts() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

pub struct Pgd {
    p: PgdParams,
    step_size: f32,
}

impl Attack for Pgd {
    type Params = PgdParams;
    const NAME: &'static str = "pgd";
    const DESCRIPTION: &'static str = "constrained PGD (L-inf or L2 in standardised units) on the true label's loss; \
         immutable, bounded, integer, binary and one-hot columns respected";

    fn new(p: PgdParams) -> Result<Self> {
        non_negative("pgd", "epsilon", p.epsilon)?;
        if p.restarts == 0 {
            return Err("pgd: restarts must be >= 1".into());
        }
        // No step would leave the random start as the "adversarial" example: noise passed
        // off as an attack, and as hardening.
        if p.steps == 0 {
            return Err("pgd: steps must be >= 1".into());
        }
        let step_size = match p.step_size {
            Some(s) => {
                non_negative("pgd", "step_size", s)?;
                s
            }
            None => 2.5 * p.epsilon / p.steps.max(1) as f32,
        };
        Ok(Self { p, step_size })
    }

    /// The ball; discrete flips are outside the norm, as the host measures it too.
    fn threat_model(&self) -> ThreatModel {
        let epsilon = f64::from(self.p.epsilon);
        ThreatModel::new([match self.p.norm {
            Norm::Linf => Budget::LinfStd { epsilon },
            Norm::L2 => Budget::L2Std { epsilon },
        }])
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        check_batch(batch)?;
        let mut out = batch.data.to_vec();
        if !batch.is_empty() && batch.width > 0 {
            self.attack(batch, oracle, &mut out)?;
        }
        finish(batch, &mut out);
        Ok(Perturbed::Dense(out))
    }
}

impl Pgd {
    /// Splits the rows into contiguous shares, one [`Run`] per thread. Each restart's random
    /// starts come from the batch's one stream in row order: a share starts drawing where
    /// the shares before it stop. So the examples do not depend on the number of threads,
    /// and the threads meet only between restarts.
    fn attack(&self, batch: &TableBatch<'_>, oracle: &Oracle<'_>, out: &mut [f32]) -> Result<()> {
        let cols = Columns::new(&batch.features, false);
        let radius = (self.p.norm == Norm::Linf).then_some(self.p.epsilon);
        let bx = boxes(batch, &cols, radius);
        let n = batch.len();
        let threads = match self.p.threads {
            0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
            t => t,
        };
        let parts = threads.min(n / MIN_ROWS_PER_THREAD).max(1);
        let mut runs = Vec::with_capacity(parts);
        let mut rest = out;
        for c in 0..parts {
            let rows = c * n / parts..(c + 1) * n / parts;
            let (mine, tail) = rest.split_at_mut(rows.len() * batch.width);
            rest = tail;
            runs.push((Run::new(self, batch, &cols, &bx, rows), mine));
        }
        let draws = self.draws_per_start(cols.moving.len());
        let mut rng = Rng::new(batch.seed);
        for _ in 0..self.p.restarts {
            if runs.iter().all(|(run, _)| run.active.is_empty()) {
                break;
            }
            let mut streams = Vec::with_capacity(parts);
            for (run, _) in &runs {
                streams.push(rng.clone());
                rng.discard(draws * run.active.len() as u64);
            }
            if let [(run, out)] = runs.as_mut_slice() {
                run.restart(oracle, &mut streams[0], out)?;
                continue;
            }
            std::thread::scope(|s| {
                let threads: Vec<_> = runs
                    .iter_mut()
                    .zip(streams)
                    .map(|((run, out), mut rng)| s.spawn(move || run.restart(oracle, &mut rng, out)))
                    .collect();
                threads
                    .into_iter()
                    .try_for_each(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            })?;
        }
        Ok(())
    }

    /// The random numbers [`Run::start`] takes for one row.
    fn draws_per_start(&self, moving: usize) -> u64 {
        if !self.p.random_start || moving == 0 || self.p.epsilon <= 0.0 {
            return 0;
        }
        match self.p.norm {
            Norm::Linf => moving as u64,
            // Two per normal (Box–Muller), and one for the radius.
            Norm::L2 => 2 * moving as u64 + 1,
        }
    }
}

/// How good a candidate row is for the attacker: misclassified first, then higher loss.
type Score = (bool, f32);

fn better(a: Score, b: Option<Score>) -> bool {
    match b {
        None => true,
        Some(b) => (a.0 && !b.0) || (a.0 == b.0 && a.1 > b.1),
    }
}

/// Misclassified? (another class strictly more likely) and the true label's
/// cross-entropy, from a probability row.
fn score(p: &[f32], y: u32) -> Score {
    let py = p[y as usize];
    (p.iter().any(|&v| v > py), -py.max(1e-30).ln())
}

/// One thread's share of a `perturb` call: its rows, and buffers reused across steps.
struct Run<'a, 'b> {
    p: &'a PgdParams,
    alpha: f32,
    batch: &'a TableBatch<'b>,
    cols: &'a Columns,
    /// `boxes` of every row of the batch: bounds, and the L∞ ball where there is one.
    bx: &'a [[f32; 2]],
    /// The share's first batch row: `best` and the output hold the share's rows only.
    first: usize,
    /// The best score so far of each of the share's rows.
    best: Vec<Option<Score>>,
    /// Rows under attack this restart (batch indices), their ids and labels.
    active: Vec<usize>,
    ids: Vec<u32>,
    labels: Vec<u32>,
    /// Current valid rows (`active.len() * width`) and relaxed moving values.
    x: Vec<f32>,
    z: Vec<f32>,
    scratch: Vec<f32>,
    /// `step_size * scale` of each moving column: an L∞ step's raw length there.
    unit: Vec<f32>,
    /// The oracle's answers, reused by every step.
    loss: Vec<f32>,
    grad: Vec<f32>,
}

impl<'a, 'b> Run<'a, 'b> {
    fn new(
        pgd: &'a Pgd,
        batch: &'a TableBatch<'b>,
        cols: &'a Columns,
        bx: &'a [[f32; 2]],
        rows: std::ops::Range<usize>,
    ) -> Self {
        let (n, w, m) = (rows.len(), batch.width, cols.moving.len());
        let unit = cols.moving.iter().map(|&j| pgd.step_size * batch.features[j].scale).collect();
        Self {
            p: &pgd.p,
            alpha: pgd.step_size,
            batch,
            cols,
            bx,
            first: rows.start,
            best: vec![None; n],
            active: rows.collect(),
            ids: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            x: vec![0.0; n * w],
            z: vec![0.0; n * m],
            scratch: vec![0.0; m],
            unit,
            loss: Vec::with_capacity(n),
            grad: Vec::with_capacity(n * w),
        }
    }

    /// One restart over the share's rows not yet misclassified; `out` holds the share's
    /// rows, each the best found so far.
    fn restart(&mut self, oracle: &Oracle<'_>, rng: &mut Rng, out: &mut [f32]) -> Result<()> {
        let (w, a) = (self.batch.width, self.active.len());
        if a == 0 {
            return Ok(());
        }
        self.ids.clear();
        self.ids.extend(self.active.iter().map(|&i| i as u32));
        self.labels.clear();
        self.labels.extend(self.active.iter().map(|&i| self.batch.labels[i]));
        for k in 0..a {
            self.start(k, rng);
        }
        for _ in 0..self.p.steps {
            let input = Input::Dense { data: &self.x[..a * w], width: w };
            let mut g = std::mem::take(&mut self.grad);
            oracle.loss_grad_into(input, &self.labels, &self.ids, &mut self.loss, &mut g)?;
            for k in 0..a {
                self.step(k, &g[k * w..(k + 1) * w]);
            }
            self.grad = g;
        }
        let scores = if self.p.discrete {
            Some(self.flip(oracle)?)
        } else if self.p.restarts > 1 {
            let p = oracle.predict(Input::Dense { data: &self.x[..a * w], width: w }, &self.ids)?;
            let c = oracle.n_classes();
            Some((0..a).map(|k| score(&p[k * c..(k + 1) * c], self.labels[k])).collect())
        } else {
            None
        };
        for (k, &i) in self.active.iter().enumerate() {
            let s = scores.as_ref().map(|s: &Vec<Score>| s[k]);
            let r = i - self.first;
            if s.is_none_or(|s| better(s, self.best[r])) {
                self.best[r] = s;
                out[r * w..(r + 1) * w].copy_from_slice(&self.x[k * w..(k + 1) * w]);
            }
        }
        let (first, best) = (self.first, &self.best);
        self.active.retain(|&i| !best[i - first].is_some_and(|s| s.0));
        Ok(())
    }

    /// Sets row `k` to its starting point: the original, or uniform in the ball.
    fn start(&mut self, k: usize, rng: &mut Rng) {
        let (w, m, i) = (self.batch.width, self.cols.moving.len(), self.active[k]);
        let o = self.batch.row(i);
        let f = &self.batch.features;
        let bx = &self.bx[i * m..(i + 1) * m];
        let z = &mut self.z[k * m..(k + 1) * m];
        let eps = self.p.epsilon;
        for (q, &j) in self.cols.moving.iter().enumerate() {
            z[q] = o[j];
        }
        if self.p.random_start && m > 0 && eps > 0.0 {
            match self.p.norm {
                Norm::Linf => {
                    for (q, &j) in self.cols.moving.iter().enumerate() {
                        z[q] = clamp(o[j] + rng.uniform(-eps, eps) * f[j].scale, bx[q]);
                    }
                }
                Norm::L2 => {
                    let d = &mut self.scratch;
                    d.iter_mut().for_each(|v| *v = rng.normal());
                    let norm = d.iter().map(|v| v * v).sum::<f32>().sqrt();
                    let radius = eps * rng.next_f32().powf(1.0 / m as f32);
                    if norm > 0.0 {
                        for (q, &j) in self.cols.moving.iter().enumerate() {
                            z[q] = clamp(o[j] + d[q] * radius / norm * f[j].scale, bx[q]);
                        }
                    }
                }
            }
        }
        let x = &mut self.x[k * w..(k + 1) * w];
        x.copy_from_slice(o);
        self.place(i, k);
    }

    /// Materializes row `k` (batch row `i`) from its relaxed values, inside the ball.
    fn place(&mut self, i: usize, k: usize) {
        let (w, m) = (self.batch.width, self.cols.moving.len());
        let bx = &self.bx[i * m..(i + 1) * m];
        let z = &self.z[k * m..(k + 1) * m];
        let x = &mut self.x[k * w..(k + 1) * w];
        materialize(self.cols, bx, z, x);
        if self.p.norm == Norm::L2 {
            let o = self.batch.row(i);
            fit_l2(&self.batch.features, self.cols, bx, z, o, x, self.p.epsilon as f64);
        }
    }

    /// One ascent step of row `k` along raw-unit gradient `g`, then projection.
    fn step(&mut self, k: usize, g: &[f32]) {
        let (m, i) = (self.cols.moving.len(), self.active[k]);
        let o = self.batch.row(i);
        let f: &[Column] = &self.batch.features;
        let bx = &self.bx[i * m..(i + 1) * m];
        let z = &mut self.z[k * m..(k + 1) * m];
        let grad = |j: usize| if g[j].is_finite() { g[j] } else { 0.0 };
        match self.p.norm {
            // In standardised units the gradient is g * scale, which has g's sign.
            Norm::Linf => {
                // Gathered first, so the step below is a plain loop over arrays that
                // vectorises; a non-finite gradient counts as 0, as in `grad`.
                let gs = &mut self.scratch;
                gs.iter_mut().zip(&self.cols.moving).for_each(|(s, &j)| *s = g[j]);
                for (((zq, &gj), &u), &b) in z.iter_mut().zip(gs.iter()).zip(&self.unit).zip(bx) {
                    let up = gj > 0.0 && gj < f32::INFINITY;
                    let down = gj < 0.0 && gj > f32::NEG_INFINITY;
                    let d = if up {
                        u
                    } else if down {
                        -u
                    } else {
                        0.0
                    };
                    *zq = clamp(*zq + d, b);
                }
            }
            Norm::L2 => {
                let gn = self.cols.moving.iter().map(|&j| (grad(j) * f[j].scale).powi(2)).sum::<f32>().sqrt();
                if !(gn > 0.0 && gn.is_finite()) {
                    return self.place(i, k);
                }
                let d = &mut self.scratch;
                for (q, &j) in self.cols.moving.iter().enumerate() {
                    let s = f[j].scale;
                    d[q] = (z[q] - o[j]) / s + self.alpha * grad(j) * s / gn;
                }
                let dn = d.iter().map(|v| v * v).sum::<f32>().sqrt();
                let shrink = if dn > self.p.epsilon { self.p.epsilon / dn } else { 1.0 };
                for (q, &j) in self.cols.moving.iter().enumerate() {
                    z[q] = clamp(o[j] + d[q] * shrink * f[j].scale, bx[q]);
                }
            }
        }
        self.place(i, k);
    }

    /// The discrete move: at most one flip per binary column and one switch per one-hot
    /// group, chosen by the gradient at the end of the continuous steps, then kept only if
    /// the model agrees it helps. Returns each row's score.
    fn flip(&mut self, oracle: &Oracle<'_>) -> Result<Vec<Score>> {
        let (w, a) = (self.batch.width, self.active.len());
        let f = &self.batch.features;
        let input = Input::Dense { data: &self.x[..a * w], width: w };
        let (loss, g) = oracle.loss_grad(input, &self.labels, &self.ids)?;
        let mut flipped = self.x[..a * w].to_vec();
        for k in 0..a {
            let (row, g) = (&mut flipped[k * w..(k + 1) * w], &g[k * w..(k + 1) * w]);
            for &j in &self.cols.binaries {
                let new = 1.0 - row[j];
                let valid = (row[j] == 0.0 || row[j] == 1.0) && (f[j].lower..=f[j].upper).contains(&new);
                if valid && g[j] * (new - row[j]) > 0.0 {
                    row[j] = new;
                }
            }
            for cols in &self.cols.groups {
                let Some(cur) = hot(cols, row) else { continue };
                if f[cur].lower > 0.0 {
                    continue;
                }
                let gain = |b: usize| g[b] - g[cur];
                let pick = cols
                    .iter()
                    .copied()
                    .filter(|&b| b != cur && f[b].upper >= 1.0 && gain(b) > 0.0)
                    .filter(|&b| self.batch.constraints.switch_allowed(cur, b))
                    .max_by(|&a, &b| gain(a).total_cmp(&gain(b)));
                if let Some(b) = pick {
                    row[cur] = 0.0;
                    row[b] = 1.0;
                }
            }
        }
        let p = oracle.predict(Input::Dense { data: &flipped, width: w }, &self.ids)?;
        let c = oracle.n_classes();
        let mut scores = Vec::with_capacity(a);
        for k in 0..a {
            let s = score(&p[k * c..(k + 1) * c], self.labels[k]);
            let l = if loss[k].is_finite() { loss[k] } else { f32::NEG_INFINITY };
            if s.0 || s.1 >= l {
                self.x[k * w..(k + 1) * w].copy_from_slice(&flipped[k * w..(k + 1) * w]);
                scores.push(s);
            } else {
                // Only a two-class loss says for sure whether the unflipped row fools the
                // model; elsewhere "not known to" just means later restarts still try it.
                scores.push((c == 2 && l > std::f32::consts::LN_2, l));
            }
        }
        Ok(scores)
    }
}
