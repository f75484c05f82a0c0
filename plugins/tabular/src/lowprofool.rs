//! `lowprofool`: LowProFool-style imperceptible perturbation (Ballet et al. 2019).
//!
//! Gradient descent, in standardised units, on
//! `CE(target_class) + lambda * ||w ⊙ δ||²` with `δ` the standardised change. The paper
//! weighs each feature by its importance (correlation with the label); a plugin sees no
//! data statistics, so `w_j` is the column's `cost` instead: columns the schema calls
//! expensive to change are also the ones an observer would notice. The change is clipped to
//! an L∞ ball of `epsilon` standardised units; binary and one-hot columns stay untouched.

use serde::Deserialize;
use tempered_plugin::{Attack, Batch, Budget, Oracle, Perturbed, Result, TableBatch, ThreatModel};

use crate::budget::{boxes, clamp, materialize};
use crate::shared::{
    Columns, check_batch, check_classes, check_costs, compact, finish, non_negative, positive, rows_labelled,
    toward_target,
};

/// `[attack.params]` of `lowprofool`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowProFoolParams {
    /// Weight of the penalty `||cost ⊙ δ||²` against the target-class loss. Default 1.0.
    #[serde(default = "default_lambda")]
    pub lambda: f32,
    /// Gradient steps. Default 50.
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// Step length (plain gradient descent, standardised units). Default 0.05.
    #[serde(default = "default_step_size")]
    pub step_size: f32,
    /// L∞ clip of the change, in standardised units. Default 1.0.
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    /// Rows with this label are attacked; the rest come back unchanged. Default 1.
    #[serde(default = "default_fraud")]
    pub fraud_class: u32,
    /// The class the attack wants the model to predict. Default 0.
    #[serde(default)]
    pub target_class: u32,
}

fn default_lambda() -> f32 {
    1.0
}

fn default_steps() -> u32 {
    50
}

fn default_step_size() -> f32 {
    0.05
}

fn default_epsilon() -> f32 {
    1.0
}

fn default_fraud() -> u32 {
    1
}

pub struct LowProFool {
    p: LowProFoolParams,
}

impl Attack for LowProFool {
    type Params = LowProFoolParams;
    const NAME: &'static str = "lowprofool";
    const DESCRIPTION: &'static str = "LowProFool-style: target-class loss plus a cost-weighted L2 penalty, \
                                       clipped to an L-inf ball";

    fn new(p: LowProFoolParams) -> Result<Self> {
        non_negative("lowprofool", "lambda", p.lambda)?;
        positive("lowprofool", "step_size", p.step_size)?;
        non_negative("lowprofool", "epsilon", p.epsilon)?;
        if p.fraud_class == p.target_class {
            return Err("lowprofool: fraud_class and target_class must differ".into());
        }
        Ok(Self { p })
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([Budget::LinfStd { epsilon: f64::from(self.p.epsilon) }])
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        check_batch(batch)?;
        check_costs("lowprofool", &batch.features)?;
        check_classes("lowprofool", self.p.fraud_class, self.p.target_class, oracle.n_classes())?;
        let mut out = batch.data.to_vec();
        let rows = rows_labelled(batch.labels, self.p.fraud_class);
        if !rows.is_empty() && batch.width > 0 {
            self.descend(batch, oracle, rows, &mut out)?;
        }
        finish(batch, &mut out);
        Ok(Perturbed::Dense(out))
    }
}

impl LowProFool {
    /// Writes to `out`, for each of `rows`, the last iterate the model assigns to the target
    /// class, or the final iterate when none does. A row the model already assigns to the
    /// target is left as it is.
    fn descend(
        &self,
        batch: &TableBatch<'_>,
        oracle: &Oracle<'_>,
        mut rows: Vec<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        let (w, f) = (batch.width, &batch.features);
        let cols = Columns::new(f, true);
        let m = cols.moving.len();
        let bx = boxes(batch, &cols, Some(self.p.epsilon));
        let mut x: Vec<f32> = rows.iter().flat_map(|&i| batch.row(i).iter().copied()).collect();
        let mut z: Vec<f32> =
            rows.iter().flat_map(|&i| cols.moving.iter().map(move |&j| batch.row(i)[j])).collect();
        let mut ids: Vec<u32> = rows.iter().map(|&i| i as u32).collect();
        let mut reached = vec![false; rows.len()];
        let targets = vec![self.p.target_class; rows.len()];
        let (alpha, lambda) = (self.p.step_size, self.p.lambda);
        for t in 0..=self.p.steps {
            let a = rows.len();
            if a == 0 {
                break;
            }
            for (k, &i) in rows.iter().enumerate() {
                materialize(
                    &cols,
                    &bx[i * m..(i + 1) * m],
                    &z[k * m..(k + 1) * m],
                    &mut x[k * w..(k + 1) * w],
                );
            }
            let (hit, g) = toward_target(oracle, &x, w, &targets[..a], &ids)?;
            for (k, &i) in rows.iter().enumerate() {
                if hit[k] || (t == self.p.steps && !reached[k]) {
                    out[i * w..(i + 1) * w].copy_from_slice(&x[k * w..(k + 1) * w]);
                    reached[k] |= hit[k];
                }
            }
            if t == self.p.steps {
                break;
            }
            for (k, &i) in rows.iter().enumerate() {
                let (o, g) = (batch.row(i), &g[k * w..(k + 1) * w]);
                let (z, bx) = (&mut z[k * m..(k + 1) * m], &bx[i * m..(i + 1) * m]);
                for (q, &j) in cols.moving.iter().enumerate() {
                    let (s, c) = (f[j].scale, f[j].cost);
                    let gj = if g[j].is_finite() { g[j] } else { 0.0 };
                    let delta = (z[q] - o[j]) / s;
                    let grad_std = gj * s + 2.0 * lambda * c * c * delta;
                    z[q] = clamp(z[q] - alpha * s * grad_std, bx[q]);
                }
            }
            if t == 0 {
                // Already the target before any change: nothing to do for these rows.
                let keep: Vec<bool> = hit.iter().map(|h| !h).collect();
                compact(&mut rows, 1, &keep);
                compact(&mut x, w, &keep);
                compact(&mut z, m, &keep);
                compact(&mut ids, 1, &keep);
                compact(&mut reached, 1, &keep);
            }
        }
        Ok(())
    }
}
