//! What can be checked of `[data]` before the file is read: types, fractions, bounds,
//! every column's settings against its kind, and one-hot groups whose members are all named.

use std::collections::BTreeSet;

use super::resolve::{Resolved, check_groups};
use super::{
    ColumnKind, FeatureConfig, SplitConfig, TabularDataConfig, column_key, inverted, is_pattern, kind_name,
};
use crate::data::table::format_of;
use crate::data::tabular::datetime;
use crate::error::Invalid;

fn check_fraction(key: &str, v: f64) -> std::result::Result<(), Invalid> {
    if v > 0.0 && v < 1.0 { Ok(()) } else { Err(format!("{key} must be in (0, 1) (got {v})").into()) }
}

impl FeatureConfig {
    fn check(&self, key: &str) -> std::result::Result<(), Invalid> {
        if let Some(c) = self.cost.filter(|c| !(*c >= 0.0 && c.is_finite())) {
            return Err(format!("{key}.cost must be a finite number >= 0 (got {c})").into());
        }
        if self.lower.is_some_and(f32::is_nan) {
            return Err(format!("{key}.lower must be a number (got nan)").into());
        }
        if self.upper.is_some_and(f32::is_nan) {
            return Err(format!("{key}.upper must be a number (got nan)").into());
        }
        if self.group.as_ref().is_some_and(|g| g.trim().is_empty()) {
            return Err(format!("{key}.group must not be empty").into());
        }
        if let Some(v) = &self.values
            && (v.len() != 2 || v[0].trim() == v[1].trim() || v.iter().any(|s| s.trim().is_empty()))
        {
            return Err(format!(
                "{key}.values must name two different, non-empty values: the text of 0, then of 1 (got {v:?})"
            )
            .into());
        }
        if self.max_categories == Some(0) {
            return Err(format!("{key}.max_categories must be at least 1").into());
        }
        if let Some(r) = &self.reference {
            datetime::parse(r).map_err(|m| format!("{key}.reference: {m}"))?;
        }
        Ok(())
    }
}

impl TabularDataConfig {
    /// Checks what can be checked without reading the file. Messages name the key relative
    /// to `[data]`, e.g. `split.test must be in (0, 1) (got 1.5)`.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.path.as_os_str().is_empty() {
            return Err("path must name a .csv or .parquet file".into());
        }
        // No extension: a folder of partitions, which the loader checks.
        if self.path.extension().is_some() && format_of(&self.path).is_none() {
            return Err(format!(
                "path {:?}: unsupported file type; expected a .csv or .parquet file, a folder of them, \
                 or a glob such as \"part-*.parquet\"",
                self.path.display().to_string()
            )
            .into());
        }
        if self.label.trim().is_empty() {
            return Err("label must name the label column".into());
        }
        if let Some(classes) = &self.classes {
            if classes.len() < 2 {
                return Err("classes needs at least two label values".into());
            }
            let mut seen = BTreeSet::new();
            for c in classes {
                if c.trim().is_empty() {
                    return Err("classes: a label value must not be empty".into());
                }
                if !seen.insert(c.trim()) {
                    return Err(format!("classes lists the label value {c:?} twice").into());
                }
            }
        }
        if let Some(features) = &self.features {
            if features.is_empty() {
                return Err(
                    "features must list at least one column (or be left out: every column but the label)"
                        .into(),
                );
            }
            let mut seen = BTreeSet::new();
            for f in features {
                if f == &self.label {
                    return Err(format!("features: {f:?} is the label column").into());
                }
                if !seen.insert(f) {
                    return Err(format!("features: {f:?} is listed twice").into());
                }
            }
        }
        if self.files.is_some() {
            if self.limit.is_some() {
                return Err(
                    "`limit` does not apply to a table split into files (each file is used whole)".into()
                );
            }
            if self.split != SplitConfig::default() {
                return Err(
                    "`split` does not apply when `[data.files]` gives the validation and test files".into()
                );
            }
        }
        check_fraction("split.validation", self.split.validation)?;
        check_fraction("split.test", self.split.test)?;
        if self.split.validation + self.split.test >= 1.0 {
            return Err(format!(
                "split.validation + split.test must be < 1 to leave rows for training (got {} + {})",
                self.split.validation, self.split.test
            )
            .into());
        }
        if let Some(limit) = self.limit.filter(|&l| l < 4) {
            return Err(format!("limit must be at least 4 (got {limit})").into());
        }

        self.defaults.check("defaults")?;
        if self.defaults.group.is_some() {
            return Err(
                "defaults.group is not allowed: set `group` per column in [data.columns.<name>]".into()
            );
        }
        if let Some(k @ (ColumnKind::Categorical | ColumnKind::Datetime)) = self.defaults.kind {
            return Err(format!(
                "defaults.kind cannot be {:?}: set `kind` per column, or for a pattern of columns",
                kind_name(k)
            )
            .into());
        }
        if let Some((l, u)) = inverted(self.defaults.lower, self.defaults.upper) {
            return Err(format!("defaults.lower ({l}) must be <= defaults.upper ({u})").into());
        }

        for (name, c) in &self.columns {
            let key = column_key(name);
            c.check(&key)?;
            if is_pattern(name) {
                // Its own settings must fit together; which columns it matches, and how it
                // combines with other patterns, is checked when the file is read.
                self.resolve_from(name, Some(c), &[])?;
                continue;
            }
            if name == &self.label {
                return Err(format!("{key}: {name:?} is the label column, not a feature").into());
            }
            if self.features.as_ref().is_some_and(|f| !f.contains(name)) {
                return Err(format!("{key}: {name:?} is not listed in `features`").into());
            }
            self.resolve(name)?;
        }
        // Groups are checked here when every member is named; patterns may add members, so
        // then they are checked when the file's columns are known.
        if self.patterns().next().is_none() {
            let names: Vec<&str> = self.exact_columns().collect();
            let resolved: Vec<(&str, Resolved)> =
                names.iter().map(|n| self.resolve(n).map(|r| (*n, r))).collect::<Result<_, _>>()?;
            check_groups(&resolved)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::cfg;
    use super::super::{ColumnKind, FeatureConfig, MissingPolicy};

    #[test]
    fn settings_that_do_not_fit_the_kind_are_errors() {
        let f = |kind, more: FeatureConfig| FeatureConfig { kind: Some(kind), ..more };
        let c = cfg(&[(
            "a",
            f(
                ColumnKind::Continuous,
                FeatureConfig { values: Some(vec!["n".into(), "y".into()]), ..Default::default() },
            ),
        )]);
        assert!(c.validate().unwrap_err().contains("columns.a.values is only for binary columns"));
        let c = cfg(&[(
            "a",
            f(
                ColumnKind::Binary,
                FeatureConfig { values: Some(vec!["n".into(), "n".into()]), ..Default::default() },
            ),
        )]);
        assert!(c.validate().unwrap_err().contains("two different"));
        let c = cfg(&[(
            "a",
            f(ColumnKind::Integer, FeatureConfig { max_categories: Some(3), ..Default::default() }),
        )]);
        assert!(c.validate().unwrap_err().contains("max_categories is only for string categorical"));
        let c = cfg(&[(
            "t",
            f(
                ColumnKind::Datetime,
                FeatureConfig { missing: Some(MissingPolicy::Impute), ..Default::default() },
            ),
        )]);
        assert!(c.validate().unwrap_err().contains("does not apply to datetime column \"t\""));
        let c = cfg(&[(
            "t",
            f(
                ColumnKind::Datetime,
                FeatureConfig { reference: Some("2024-02-30".into()), ..Default::default() },
            ),
        )]);
        assert!(c.validate().unwrap_err().contains("columns.t.reference"), "{:?}", c.validate());
        let c =
            cfg(&[("t", f(ColumnKind::Datetime, FeatureConfig { upper: Some(3.0), ..Default::default() }))]);
        assert!(
            c.validate().unwrap_err().contains("columns.t: lower / upper do not apply to a datetime column")
        );
        let c =
            cfg(&[("V*", f(ColumnKind::Binary, FeatureConfig { lower: Some(0.0), ..Default::default() }))]);
        assert!(
            c.resolve("V1").unwrap_err().contains("columns.\"V*\": lower / upper do not apply to a binary")
        );
        let mut c = cfg(&[]);
        c.defaults.kind = Some(ColumnKind::Datetime);
        assert!(c.validate().unwrap_err().contains("defaults.kind cannot be \"datetime\""));
        let mut c = cfg(&[]);
        c.classes = Some(vec!["a".into(), "a".into()]);
        assert!(c.validate().unwrap_err().contains("twice"));
        c.classes = Some(vec!["a".into()]);
        assert!(c.validate().unwrap_err().contains("at least two"));
        // A string categorical column needs no group.
        let c = cfg(&[(
            "m",
            f(ColumnKind::Categorical, FeatureConfig { max_categories: Some(4), ..Default::default() }),
        )]);
        assert_eq!(c.validate(), Ok(()));
        assert!(c.resolve("m").unwrap().encoded_categorical());
    }
}
