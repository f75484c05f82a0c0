//! The host's judge for table rows: the schema (immutable columns, bounds, integers,
//! binaries, one-hot groups), always; the attack's declared budgets (`linf_std`, `l2_std`
//! over continuous and integer columns in standard deviations; `cost`, Σ cost_j·|Δ_j| in
//! raw units); and the cost as the perturbation size.

use tempered_plugin::Budget;

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

    fn verifies(&self, budget: &Budget) -> Result<(), String> {
        match budget {
            Budget::LinfStd { .. } | Budget::L2Std { .. } | Budget::Cost { .. } => Ok(()),
            b => Err(format!("`{b}` is not a budget of table rows")),
        }
    }

    fn measure(&self, original: &Examples, adversarial: &Examples, i: usize, budgets: &[Budget]) -> Measure {
        let (Examples::Dense { data: a, width }, Examples::Dense { data: b, .. }) = (original, adversarial)
        else {
            return Measure { violations: 1, notes: vec!["not a table row".into()], ..Default::default() };
        };
        let (x, z) = (&a[i * width..(i + 1) * width], &b[i * width..(i + 1) * width]);
        if x.len() != z.len() || self.features.len() != *width {
            return Measure {
                violations: 1,
                notes: vec![format!("a row of {} values, expected {}", z.len(), self.features.len())],
                ..Default::default()
            };
        }
        let mut m = Measure::default();
        let (mut cost, mut changed, mut linf, mut l2) = (0.0f64, 0usize, 0.0f64, 0.0f64);
        let fail = |m: &mut Measure, note: String| m.fail(note);
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
        let over = |size: f64, limit: f64| size > limit * (1.0 + TOL) + TOL;
        for (k, b) in budgets.iter().enumerate() {
            match *b {
                Budget::LinfStd { epsilon } if over(linf, epsilon) => {
                    m.fail_budget(k, format!("L∞ change {linf:.5} std exceeds {epsilon}"))
                }
                Budget::L2Std { epsilon } if over(l2, epsilon) => {
                    m.fail_budget(k, format!("L2 change {l2:.5} std exceeds {epsilon}"))
                }
                Budget::Cost { budget } if over(cost, budget) => {
                    m.fail_budget(k, format!("cost {cost:.4} exceeds the budget {budget}"))
                }
                _ => {}
            }
        }
        m.perturbation = cost;
        m.extra = vec![("features_changed", changed as f64), ("linf_std", linf), ("l2_std", l2)];
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tabular::FeatureInfo;

    fn feature(name: &str, kind: FeatureKind, std: f32, cost: f32) -> FeatureInfo {
        FeatureInfo {
            name: name.into(),
            kind,
            mutable: true,
            lower: -10.0,
            upper: 10.0,
            cost,
            mean: 0.0,
            std,
            group: None,
        }
    }

    fn judge() -> TabularJudge {
        let mut age = feature("age", FeatureKind::Integer, 2.0, 1.0);
        age.mutable = false;
        let mut a = feature("cat_a", FeatureKind::Categorical, 1.0, 0.5);
        a.group = Some(0);
        let mut b = feature("cat_b", FeatureKind::Categorical, 1.0, 0.5);
        b.group = Some(0);
        TabularJudge {
            features: vec![
                feature("amount", FeatureKind::Continuous, 4.0, 2.0),
                feature("count", FeatureKind::Integer, 1.0, 1.0),
                age,
                feature("flag", FeatureKind::Binary, 1.0, 3.0),
                a,
                b,
            ],
        }
    }

    fn measure(x: &[f32], z: &[f32], budgets: &[Budget]) -> Measure {
        let row = |v: &[f32]| Examples::Dense { data: v.to_vec(), width: v.len() };
        judge().measure(&row(x), &row(z), 0, budgets)
    }

    const X: [f32; 6] = [1.0, 2.0, 3.0, 0.0, 1.0, 0.0];

    #[test]
    fn a_row_within_every_budget_passes_and_is_measured() {
        let z = [3.0, 3.0, 3.0, 0.0, 1.0, 0.0];
        let budgets =
            [Budget::LinfStd { epsilon: 1.0 }, Budget::L2Std { epsilon: 1.2 }, Budget::Cost { budget: 5.0 }];
        let m = measure(&X, &z, &budgets);
        assert_eq!((m.violations, m.broken.len()), (0, 0), "{:?}", m.notes);
        // amount moves 2 raw = 0.5 std at cost 2·2; count moves 1 = 1 std at cost 1.
        assert_eq!(m.perturbation, 5.0);
        assert_eq!(m.extra[0], ("features_changed", 2.0));
        assert_eq!(m.extra[1], ("linf_std", 1.0));
        assert!((m.extra[2].1 - 1.25f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn each_declared_budget_is_caught_and_named() {
        let z = [3.0, 3.0, 3.0, 0.0, 1.0, 0.0];
        let m = measure(
            &X,
            &z,
            &[Budget::Cost { budget: 4.0 }, Budget::LinfStd { epsilon: 0.9 }, Budget::L2Std { epsilon: 1.1 }],
        );
        assert_eq!(m.broken, [0, 1, 2], "{:?}", m.notes);
        assert_eq!(m.violations, 3);
        assert!(m.notes[0].contains("cost 5.0000 exceeds the budget 4"), "{:?}", m.notes);
        assert!(m.notes[1].contains("L∞ change 1.00000 std exceeds 0.9"), "{:?}", m.notes);
        assert!(m.notes[2].contains("L2 change"), "{:?}", m.notes);
    }

    #[test]
    fn undeclared_budgets_are_not_guessed() {
        let z = [9.0, 2.0, 3.0, 0.0, 1.0, 0.0];
        assert_eq!(measure(&X, &z, &[]).violations, 0, "no budget declared: only the schema");
    }

    #[test]
    fn the_schema_is_always_checked() {
        let cases: [([f32; 6], &str); 6] = [
            ([1.0, 2.0, 4.0, 0.0, 1.0, 0.0], "immutable `age` changed from 3 to 4"),
            ([11.0, 2.0, 3.0, 0.0, 1.0, 0.0], "`amount` = 11 is outside [-10, 10]"),
            ([1.0, 2.5, 3.0, 0.0, 1.0, 0.0], "integer `count` = 2.5"),
            ([1.0, 2.0, 3.0, 0.5, 1.0, 0.0], "`flag` = 0.5 is not 0 or 1"),
            ([1.0, 2.0, 3.0, 0.0, 1.0, 1.0], "one-hot group 0 holds 2 ones"),
            ([1.0, 2.0, 3.0, 0.0, 0.0, 0.0], "one-hot group 0 holds 0 ones"),
        ];
        for (z, note) in cases {
            let m = measure(&X, &z, &[]);
            assert_eq!(m.violations, 1, "{z:?}: {:?}", m.notes);
            assert_eq!(m.notes[0], note);
            assert!(m.broken.is_empty(), "a schema rule is no budget");
        }
    }

    #[test]
    fn foreign_budgets_are_not_verified_here() {
        assert!(judge().verifies(&Budget::Cost { budget: 1.0 }).is_ok());
        assert!(judge().verifies(&Budget::SnrFloor { db: 30.0 }).is_err());
    }
}
