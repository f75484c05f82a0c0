//! The host's judge for table rows: schema constraints, the attack's budget, and cost.
//!
//! Budgets are read from the attack's params by convention (documented for plugin
//! authors): `epsilon` with `norm` ("linf" by default, or "l2") bounds the change in
//! standardised units over continuous and integer columns; `budget` bounds the total
//! cost Σ cost_j·|Δ_j| in raw units.

use super::{Judge, Measure};
use crate::data::Examples;
use crate::data::tabular::{FeatureInfo, FeatureKind};

pub struct TabularJudge {
    pub features: Vec<FeatureInfo>,
}

/// Slack for float round-off in the plugin's projections.
const TOL: f64 = 1e-4;

impl Judge for TabularJudge {
    fn unit(&self) -> &'static str {
        "cost"
    }

    fn measure(
        &self,
        original: &Examples,
        adversarial: &Examples,
        i: usize,
        params: &serde_json::Value,
    ) -> Measure {
        let (Examples::Dense { data: a, width }, Examples::Dense { data: b, .. }) = (original, adversarial)
        else {
            return Measure { violations: 1, notes: vec!["not a table row".into()], ..Default::default() };
        };
        let (x, z) = (&a[i * width..(i + 1) * width], &b[i * width..(i + 1) * width]);
        let mut m = Measure::default();
        let (mut cost, mut changed, mut linf, mut l2) = (0.0f64, 0usize, 0.0f64, 0.0f64);
        let fail = |m: &mut Measure, note: String| {
            m.violations += 1;
            m.notes.push(note);
        };
        for (j, f) in self.features.iter().enumerate() {
            let d = (z[j] - x[j]) as f64;
            if d != 0.0 {
                changed += 1;
                cost += f.cost as f64 * d.abs();
                if matches!(f.kind, FeatureKind::Continuous | FeatureKind::Integer) {
                    let s = d.abs() / f.std.max(f32::MIN_POSITIVE) as f64;
                    linf = linf.max(s);
                    l2 += s * s;
                }
            }
            if !f.mutable && d != 0.0 {
                fail(&mut m, format!("immutable `{}` changed from {} to {}", f.name, x[j], z[j]));
            }
            let slack = TOL * (1.0 + (f.upper - f.lower).abs().min(1e6) as f64);
            if d != 0.0 && ((z[j] as f64) < f.lower as f64 - slack || (z[j] as f64) > f.upper as f64 + slack)
            {
                fail(&mut m, format!("`{}` = {} is outside [{}, {}]", f.name, z[j], f.lower, f.upper));
            }
            match f.kind {
                FeatureKind::Integer if z[j].fract() != 0.0 => {
                    fail(&mut m, format!("integer `{}` = {}", f.name, z[j]))
                }
                FeatureKind::Binary | FeatureKind::Categorical if z[j] != 0.0 && z[j] != 1.0 => {
                    fail(&mut m, format!("`{}` = {} is not 0 or 1", f.name, z[j]))
                }
                _ => {}
            }
        }
        let mut groups: Vec<u32> = self.features.iter().filter_map(|f| f.group).collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            let ones: f32 =
                self.features.iter().enumerate().filter(|(_, f)| f.group == Some(g)).map(|(j, _)| z[j]).sum();
            if ones != 1.0 {
                fail(&mut m, format!("one-hot group {g} holds {ones} ones"));
            }
        }
        let l2 = l2.sqrt();
        if let Some(eps) = params.get("epsilon").and_then(|v| v.as_f64()) {
            let l2_norm = params.get("norm").and_then(|v| v.as_str()) == Some("l2");
            let (size, name) = if l2_norm { (l2, "L2") } else { (linf, "L∞") };
            if size > eps * (1.0 + TOL) + TOL {
                fail(&mut m, format!("{name} change {size:.5} exceeds epsilon {eps}"));
            }
        }
        if let Some(budget) = params.get("budget").and_then(|v| v.as_f64())
            && cost > budget * (1.0 + TOL) + TOL
        {
            fail(&mut m, format!("cost {cost:.4} exceeds the budget {budget}"));
        }
        m.perturbation = cost;
        m.extra = vec![("features_changed", changed as f64), ("linf_std", linf), ("l2_std", l2)];
        m
    }
}
