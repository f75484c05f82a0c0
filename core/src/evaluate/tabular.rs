//! The host's judge for table rows: `tempered_plugin::judge::tabular` (the schema and the
//! pipeline's directions and relations, then the declared `linf_std`, `l2_std` and `cost`)
//! on the pipeline's columns. The perturbation is the attacker's cost.

use tempered_plugin::{Budget, Feature, Modality, TabularConstraints, judge};

use super::{Judge, Measure};
use crate::data::Examples;
use crate::data::tabular::{FeatureInfo, FeatureKind};

pub struct TabularJudge {
    pub features: Vec<FeatureInfo>,
    /// The pipeline's directions and relations.
    pub constraints: TabularConstraints,
}

/// A column as the plugin saw it (`scale` is the standardisation's std).
fn feature(f: &FeatureInfo) -> Feature<'_> {
    Feature {
        name: &f.name,
        kind: match f.kind {
            FeatureKind::Continuous => tempered_plugin::FeatureKind::Continuous,
            FeatureKind::Integer => tempered_plugin::FeatureKind::Integer,
            FeatureKind::Binary => tempered_plugin::FeatureKind::Binary,
            FeatureKind::Categorical => tempered_plugin::FeatureKind::Categorical,
        },
        mutable: f.mutable,
        lower: f.lower,
        upper: f.upper,
        cost: f.cost,
        scale: f.std,
        group: f.group,
    }
}

impl Judge for TabularJudge {
    fn unit(&self) -> &'static str {
        "cost"
    }

    fn verifies(&self, budget: &Budget) -> Result<(), String> {
        judge::verifies(Modality::Tabular, budget, false)
    }

    fn measure(&self, original: &Examples, adversarial: &Examples, i: usize, budgets: &[Budget]) -> Measure {
        let (Examples::Dense { data: a, width }, Examples::Dense { data: b, width: w2 }) =
            (original, adversarial)
        else {
            return Measure { violations: 1, notes: vec!["not a table row".into()], ..Default::default() };
        };
        if width != w2 || b.len() < (i + 1) * width {
            return Measure {
                violations: 1,
                notes: vec![format!("a row of {w2} values, expected {width}")],
                ..Default::default()
            };
        }
        let features: Vec<Feature<'_>> = self.features.iter().map(feature).collect();
        let (x, z) = (&a[i * width..(i + 1) * width], &b[i * width..(i + 1) * width]);
        judge::tabular(&features, &self.constraints, x, z, budgets)
    }
}
