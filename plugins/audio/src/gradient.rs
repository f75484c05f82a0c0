//! `fgsm` and `pgd` on the waveform, under an L∞ or an SNR (row-scaled L2) budget.

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tempered_plugin::{
    Attack, AudioBatch, Batch, Budget, Input, Oracle, Perturbed, PluginError, Result, Rng, ThreatModel,
};

use crate::budget;

const FGSM_SALT: u64 = 0x6667_736d_0000_0003;
const PGD_SALT: u64 = 0x7067_6400_0000_0004;

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BudgetKind {
    Linf,
    Snr,
}

fn default_steps() -> u32 {
    10
}

fn default_restarts() -> u32 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FgsmParams {
    /// `"linf"` or `"snr"`; default: whichever of `epsilon` / `snr_db` is given.
    pub budget: Option<BudgetKind>,
    /// L∞ budget: largest absolute change of any sample (amplitude units, e.g. 0.005).
    pub epsilon: Option<f64>,
    /// SNR budget: the perturbation's SNR stays at or above this many dB.
    pub snr_db: Option<f64>,
    /// L∞: absolute step (default `epsilon`, or `1.25·epsilon` with a random start).
    /// SNR: a multiple of each row's radius (default 1, or 1.25 with a random start).
    pub step_size: Option<f64>,
    /// Start from a random point of the ball, as in "fast" FGSM adversarial training
    /// (default false).
    #[serde(default)]
    pub random_start: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PgdParams {
    /// `"linf"` or `"snr"`; default: whichever of `epsilon` / `snr_db` is given.
    pub budget: Option<BudgetKind>,
    /// L∞ budget: largest absolute change of any sample (amplitude units, e.g. 0.005).
    pub epsilon: Option<f64>,
    /// SNR budget: the perturbation's SNR stays at or above this many dB.
    pub snr_db: Option<f64>,
    /// Gradient steps per restart (default 10).
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// L∞: absolute step (default `2.5·epsilon/steps`). SNR: a multiple of each row's
    /// radius (default `2.5/steps`), since the radius differs from row to row.
    pub step_size: Option<f64>,
    /// Independent runs; per example the one with the highest loss is kept (default 1).
    #[serde(default = "default_restarts")]
    pub restarts: u32,
    /// Start each run from a uniform point of the ball (default true).
    #[serde(default = "yes")]
    pub random_start: bool,
}

/// The budget, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ball {
    /// Already rounded down to an `f32` (see [`budget::linf_limit`]).
    Linf(f32),
    Snr(f64),
}

fn resolve_ball(
    attack: &str,
    budget: Option<BudgetKind>,
    epsilon: Option<f64>,
    snr_db: Option<f64>,
) -> Result<(Ball, Budget)> {
    let kind = match (budget, epsilon, snr_db) {
        (Some(k), _, _) => k,
        (None, Some(_), None) => BudgetKind::Linf,
        (None, None, Some(_)) => BudgetKind::Snr,
        (None, Some(_), Some(_)) => {
            return Err(format!(
                "{attack}: give `epsilon` (budget = \"linf\") or `snr_db` (budget = \"snr\"), not both"
            )
            .into());
        }
        (None, None, None) => {
            return Err(format!(
                "{attack}: no budget: set `epsilon` (L∞, absolute amplitude) or `snr_db` (SNR floor in dB)"
            )
            .into());
        }
    };
    match kind {
        BudgetKind::Linf => {
            if snr_db.is_some() {
                return Err(format!(
                    "{attack}: `snr_db` belongs to budget = \"snr\"; budget = \"linf\" takes `epsilon`"
                )
                .into());
            }
            let eps = epsilon.ok_or_else(|| format!("{attack}: budget = \"linf\" needs `epsilon`"))?;
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(format!("{attack}: epsilon must be a finite number >= 0, got {eps}").into());
            }
            Ok((Ball::Linf(budget::linf_limit(eps)), Budget::Linf { epsilon: eps }))
        }
        BudgetKind::Snr => {
            if epsilon.is_some() {
                return Err(format!(
                    "{attack}: `epsilon` belongs to budget = \"linf\"; budget = \"snr\" takes `snr_db`"
                )
                .into());
            }
            let snr = snr_db.ok_or_else(|| format!("{attack}: budget = \"snr\" needs `snr_db`"))?;
            if !snr.is_finite() {
                return Err(format!("{attack}: snr_db must be a finite number of dB, got {snr}").into());
            }
            Ok((Ball::Snr(snr), Budget::SnrFloor { db: snr }))
        }
    }
}

/// Everything one run of the shared loop needs.
#[derive(Debug, Clone)]
pub struct Config {
    ball: Ball,
    /// The ball as the user gave it, for the host to check.
    declared: Budget,
    steps: u32,
    /// L∞: absolute step. SNR: multiple of the row's radius.
    step: f64,
    restarts: u32,
    random_start: bool,
    salt: u64,
}

impl Config {
    /// The ball, and one `loss_grad` row per step and restart for each example.
    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([
            self.declared.clone(),
            Budget::Queries { max: u64::from(self.steps) * u64::from(self.restarts) },
        ])
    }
}

/// The loop's schedule as an attack's parameters give it, before the budget is resolved.
struct Schedule {
    step_size: Option<f64>,
    /// The default step: this multiple of `epsilon` (L∞) or of the row's radius (SNR).
    default_mult: f64,
    steps: u32,
    restarts: u32,
    random_start: bool,
    salt: u64,
}

impl Config {
    /// `attack`'s budget and schedule, checked in the order its errors are reported.
    fn new(
        attack: &str,
        budget: Option<BudgetKind>,
        epsilon: Option<f64>,
        snr_db: Option<f64>,
        s: Schedule,
    ) -> Result<Self> {
        let (ball, declared) = resolve_ball(attack, budget, epsilon, snr_db)?;
        check_step(attack, s.step_size)?;
        if s.steps == 0 {
            return Err(format!("{attack}: steps must be >= 1").into());
        }
        if s.restarts == 0 {
            return Err(format!("{attack}: restarts must be >= 1").into());
        }
        let step = s.step_size.unwrap_or(match ball {
            Ball::Linf(eps) => s.default_mult * f64::from(eps),
            Ball::Snr(_) => s.default_mult,
        });
        Ok(Self {
            ball,
            declared,
            steps: s.steps,
            step,
            restarts: s.restarts,
            random_start: s.random_start,
            salt: s.salt,
        })
    }
}

fn check_step(attack: &str, step_size: Option<f64>) -> Result<()> {
    match step_size {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            Err(format!("{attack}: step_size must be a finite number > 0, got {s}").into())
        }
        _ => Ok(()),
    }
}

/// `fgsm` and `pgd`: one loop ([`run`]), told apart by their parameters `P` and the
/// schedule those give.
pub struct Gradient<P>(Config, PhantomData<fn() -> P>);

/// One signed-gradient (L∞) or normalised-gradient (SNR) step of the loss of the true label.
pub type Fgsm = Gradient<FgsmParams>;

/// Projected gradient ascent (Madry et al.) on the true label's loss, with restarts.
///
/// Queries: exactly `steps × restarts` per example, one batched `loss_grad` per step. The
/// loss of a run's final point is never queried; restarts are compared by its first-order
/// estimate `L(x_{K−1}) + ⟨∇L(x_{K−1}), x_K − x_{K−1}⟩`, exact for a linear model and close
/// for the small steps PGD takes. `loss_grad` returns no probabilities, so "misclassified"
/// is not told apart from "highest loss": an extra `predict` per restart would cost
/// `restarts` more queries per example.
pub type Pgd = Gradient<PgdParams>;

/// The parameters of a [`Gradient`] attack: its name, and the budget and schedule they give.
pub trait GradientParams: DeserializeOwned + Send + 'static {
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    #[doc(hidden)]
    fn config(self) -> Result<Config>;
}

impl<P: GradientParams> Attack for Gradient<P> {
    type Params = P;
    const NAME: &'static str = P::NAME;
    const DESCRIPTION: &'static str = P::DESCRIPTION;

    fn new(p: P) -> Result<Self> {
        p.config().map(|c| Self(c, PhantomData))
    }

    fn threat_model(&self) -> ThreatModel {
        self.0.threat_model()
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.audio()?;
        run(&self.0, batch, oracle).map(Perturbed::Dense)
    }
}

impl GradientParams for FgsmParams {
    const NAME: &'static str = "fgsm";
    const DESCRIPTION: &'static str = "one gradient step on the waveform under an L∞ or SNR budget";

    fn config(self) -> Result<Config> {
        let schedule = Schedule {
            step_size: self.step_size,
            // Wong et al. 2020: after a random start a full-radius step lands on the boundary
            // too rarely; 1.25 × radius is their tuned value.
            default_mult: if self.random_start { 1.25 } else { 1.0 },
            steps: 1,
            restarts: 1,
            random_start: self.random_start,
            salt: FGSM_SALT,
        };
        Config::new(Self::NAME, self.budget, self.epsilon, self.snr_db, schedule)
    }
}

impl GradientParams for PgdParams {
    const NAME: &'static str = "pgd";
    const DESCRIPTION: &'static str =
        "projected gradient descent on the waveform under an L∞ or SNR budget, with restarts";

    fn config(self) -> Result<Config> {
        let schedule = Schedule {
            step_size: self.step_size,
            default_mult: 2.5 / f64::from(self.steps),
            steps: self.steps,
            restarts: self.restarts,
            random_start: self.random_start,
            salt: PGD_SALT,
        };
        Config::new(Self::NAME, self.budget, self.epsilon, self.snr_db, schedule)
    }
}

/// A host gradient entry, with NaN / ∞ (a diverged model) read as "no information".
#[inline]
fn finite(g: f32) -> f32 {
    if g.is_finite() { g } else { 0.0 }
}

#[inline]
fn sign(g: f32) -> f32 {
    // f32::signum maps ±0 to ±1, which would move samples the model does not care about.
    if g > 0.0 {
        1.0
    } else if g < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn dot(g: &[f32], a: &[f32]) -> f64 {
    g.iter().zip(a).map(|(&g, &a)| f64::from(finite(g)) * f64::from(a)).sum()
}

fn run(cfg: &Config, batch: &AudioBatch<'_>, oracle: &Oracle<'_>) -> Result<Vec<f32>> {
    let (n, w) = (batch.len(), batch.width);
    if n == 0 || w == 0 {
        return Ok(batch.data.iter().map(|&v| budget::clip(v)).collect());
    }
    let ids: Vec<u32> = (0..n as u32).collect();
    let radii: Vec<f64> = match cfg.ball {
        Ball::Snr(snr) => (0..n).map(|i| budget::l2_radius(batch.row(i), snr)).collect(),
        Ball::Linf(_) => Vec::new(),
    };
    let select = cfg.restarts > 1;
    let mut rng = Rng::new(batch.seed ^ cfg.salt);
    let mut adv = vec![0f32; n * w];
    let mut best = if select { vec![0f32; n * w] } else { Vec::new() };
    let mut best_score = vec![f64::NEG_INFINITY; n];
    let mut score = vec![0f64; n];

    for restart in 0..cfg.restarts {
        adv.copy_from_slice(batch.data);
        for (i, a) in adv.chunks_exact_mut(w).enumerate() {
            let x = batch.row(i);
            match cfg.ball {
                Ball::Linf(eps) => {
                    if cfg.random_start {
                        for (a, &x) in a.iter_mut().zip(x) {
                            *a = budget::linf_sample(x, x + rng.uniform(-eps, eps), eps);
                        }
                    } else {
                        budget::project_linf(x, a, eps);
                    }
                }
                Ball::Snr(_) => {
                    if cfg.random_start && radii[i] > 0.0 {
                        random_l2_start(&mut rng, x, a, radii[i]);
                    }
                    budget::project_l2(x, a, radii[i]);
                }
            }
        }

        for step in 0..cfg.steps {
            let (loss, grad) = oracle.loss_grad(Input::Dense { data: &adv, width: w }, batch.labels, &ids)?;
            if loss.len() != n || grad.len() != n * w {
                return Err(PluginError(format!(
                    "{} losses and {} gradient values for {n} rows of {w}",
                    loss.len(),
                    grad.len()
                )));
            }
            let last = step + 1 == cfg.steps;
            for (i, (a, g)) in adv.chunks_exact_mut(w).zip(grad.chunks_exact(w)).enumerate() {
                let x = batch.row(i);
                let before = if select && last { dot(g, a) } else { 0.0 };
                match cfg.ball {
                    Ball::Linf(eps) => {
                        let alpha = cfg.step as f32;
                        for ((a, &x), &g) in a.iter_mut().zip(x).zip(g) {
                            *a = budget::linf_sample(x, *a + alpha * sign(g), eps);
                        }
                    }
                    Ball::Snr(_) => {
                        let gnorm = g.iter().map(|&g| f64::from(finite(g)).powi(2)).sum::<f64>().sqrt();
                        if gnorm > 0.0 {
                            let scale = (cfg.step * radii[i] / gnorm) as f32;
                            for (a, &g) in a.iter_mut().zip(g) {
                                *a += scale * finite(g);
                            }
                        }
                        budget::project_l2(x, a, radii[i]);
                    }
                }
                if select && last {
                    score[i] = f64::from(loss[i]) + dot(g, a) - before;
                }
            }
        }

        if select {
            for (i, (b, a)) in best.chunks_exact_mut(w).zip(adv.chunks_exact(w)).enumerate() {
                // `restart == 0` also covers a NaN loss, which no comparison would accept.
                if restart == 0 || score[i] > best_score[i] {
                    best_score[i] = score[i];
                    b.copy_from_slice(a);
                }
            }
        }
    }
    Ok(if select { best } else { adv })
}

/// A uniform direction (normalised Gaussian) at a radius uniform in `[0, radius)`.
fn random_l2_start(rng: &mut Rng, x: &[f32], a: &mut [f32], radius: f64) {
    for v in a.iter_mut() {
        *v = rng.normal();
    }
    let norm = budget::energy(a).sqrt();
    let scale = if norm > 0.0 { radius * f64::from(rng.next_f32()) / norm } else { 0.0 };
    for (v, &x) in a.iter_mut().zip(x) {
        *v = (f64::from(x) + scale * f64::from(*v)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_kind_is_inferred_or_checked() {
        assert_eq!(
            resolve_ball("pgd", None, Some(0.1), None),
            Ok((Ball::Linf(budget::linf_limit(0.1)), Budget::Linf { epsilon: 0.1 }))
        );
        assert_eq!(
            resolve_ball("pgd", None, None, Some(30.0)),
            Ok((Ball::Snr(30.0), Budget::SnrFloor { db: 30.0 }))
        );
        let e = resolve_ball("pgd", Some(BudgetKind::Linf), None, Some(30.0)).unwrap_err();
        assert!(e.0.contains("budget = \"snr\""), "{e}");
        let e = resolve_ball("pgd", None, Some(0.1), Some(30.0)).unwrap_err();
        assert!(e.0.contains("not both"), "{e}");
        let e = resolve_ball("pgd", None, None, None).unwrap_err();
        assert!(e.0.contains("no budget"), "{e}");
        let e = resolve_ball("pgd", Some(BudgetKind::Snr), None, None).unwrap_err();
        assert!(e.0.contains("needs `snr_db`"), "{e}");
    }

    #[test]
    fn sign_of_zero_is_zero() {
        assert_eq!(sign(0.0), 0.0);
        assert_eq!(sign(-0.0), 0.0);
        assert_eq!(sign(f32::NAN), 0.0);
        assert_eq!(sign(-2.0), -1.0);
    }
}
