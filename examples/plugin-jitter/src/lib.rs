//! An example third-party attack plugin: random jitter inside an L∞ ball.
//!
//! It lives outside the workspace's default members and depends on `tempered-plugin` only,
//! exactly like a plugin in its own repository would. `docs/writing-plugins.md` walks
//! through it. No `unsafe` anywhere: the export macro writes the C ABI.

use serde::Deserialize;
use tempered_plugin::{
    Attack, Batch, Budget, Input, Oracle, Perturbed, Result, Rng, ThreatModel, project_row,
};

/// `[attack.params]` of `jitter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitterParams {
    /// Radius of the ball, in standardised units (the host checks it: see the docs).
    pub epsilon: f32,
    /// Random draws per example; the one the model likes least is kept.
    #[serde(default = "default_tries")]
    pub tries: u32,
}

fn default_tries() -> u32 {
    8
}

pub struct Jitter {
    params: JitterParams,
}

impl Attack for Jitter {
    type Params = JitterParams;
    const NAME: &'static str = "jitter";
    const DESCRIPTION: &'static str =
        "random uniform noise in an L-inf ball; keeps the draw the model likes least";

    fn new(params: JitterParams) -> Result<Self> {
        if !(params.epsilon >= 0.0 && params.epsilon.is_finite()) {
            return Err(format!("epsilon must be a finite number >= 0, got {}", params.epsilon).into());
        }
        if params.tries == 0 {
            return Err("tries must be at least 1".into());
        }
        Ok(Self { params })
    }

    /// What the host checks on every example this attack returns: the ball, and one query
    /// per try.
    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([
            Budget::LinfStd { epsilon: f64::from(self.params.epsilon) },
            Budget::Queries { max: u64::from(self.params.tries) },
        ])
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        let mut rng = Rng::new(batch.seed);
        let (n, width, k) = (batch.len(), batch.width, oracle.n_classes());
        let mut best = batch.data.to_vec();
        let mut best_p = vec![f32::INFINITY; n];
        for _ in 0..self.params.tries {
            let mut trial = batch.data.to_vec();
            for i in 0..n {
                let row = &mut trial[i * width..(i + 1) * width];
                for (v, f) in row.iter_mut().zip(&batch.features) {
                    *v += rng.uniform(-1.0, 1.0) * self.params.epsilon * f.scale;
                }
                project_row(&batch.features, batch.row(i), row);
            }
            // One query per example per try: the ids tell the host which example each row is.
            let ids: Vec<u32> = (0..n as u32).collect();
            let probs = oracle.predict(Input::Dense { data: &trial, width }, &ids)?;
            for i in 0..n {
                let p_true = probs[i * k + batch.labels[i] as usize];
                if p_true < best_p[i] {
                    best_p[i] = p_true;
                    best[i * width..(i + 1) * width].copy_from_slice(&trial[i * width..(i + 1) * width]);
                }
            }
        }
        Ok(Perturbed::Dense(best))
    }
}

tempered_plugin::export_plugin! {
    name: "jitter",
    version: env!("CARGO_PKG_VERSION"),
    modality: tempered_plugin::Modality::Tabular,
    attacks: [Jitter],
}
