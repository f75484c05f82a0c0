//! The host's judge for table rows: `tempered_plugin::judge::tabular` (the schema and the
//! pipeline's directions and relations, then the declared `linf_std`, `l2_std` and `cost`)
//! on the pipeline's columns. The perturbation is the attacker's cost.

use tempered_plugin::{Budget, Column, Modality, TabularConstraints, judge};

use super::{Judge, Measure};
use crate::data::Examples;
use crate::error::Invalid;

pub struct TabularJudge {
    /// The pipeline's columns as the judge checks them: as configured, `scale` the
    /// standardisation's std. (Plugins see a derived column as immutable; the judge
    /// checks it through its relation instead.)
    pub columns: Vec<Column>,
    /// The pipeline's directions and relations.
    pub constraints: TabularConstraints,
}

impl Judge for TabularJudge {
    fn unit(&self) -> &'static str {
        "cost"
    }

    fn verifies(&self, budget: &Budget) -> Result<(), Invalid> {
        judge::verifies(Modality::Tabular, budget, false).map_err(Invalid::from)
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
        let (x, z) = (&a[i * width..(i + 1) * width], &b[i * width..(i + 1) * width]);
        judge::tabular(&self.columns, &self.constraints, x, z, budgets)
    }
}
