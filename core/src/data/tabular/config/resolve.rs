//! A column's settings resolved: its own table, else the patterns that match it (which
//! must agree), else `defaults`, else the built-in defaults; then checked against its kind.

use std::collections::BTreeMap;
use std::fmt::Debug;

use tempered_plugin::Direction;

use super::{
    ColumnKind, FeatureConfig, MissingPolicy, TabularDataConfig, column_key, glob_match, inverted,
    is_pattern, kind_name,
};
use crate::data::tabular::datetime;
use crate::error::Invalid;

/// The settings of one feature after merging its own table, the patterns that match it,
/// `defaults` and the built-in defaults.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::data::tabular) struct Resolved {
    pub kind: ColumnKind,
    pub mutable: bool,
    pub lower: Option<f32>,
    pub upper: Option<f32>,
    pub cost: f32,
    pub group: Option<String>,
    pub values: Option<Vec<String>>,
    pub max_categories: Option<usize>,
    pub missing: MissingPolicy,
    /// Day number of `reference` (days since 1970-01-01).
    pub reference: Option<i64>,
    pub direction: Direction,
    pub transitions: Option<BTreeMap<String, Vec<String>>>,
    /// Where `lower` / `upper` came from (`columns.a`, `columns."V*"`, `defaults`).
    lower_from: String,
    upper_from: String,
}

impl Resolved {
    /// A string categorical column: one-hot encoded by the engine.
    pub fn encoded_categorical(&self) -> bool {
        self.kind == ColumnKind::Categorical && self.group.is_none()
    }
}

/// One setting: the column's own value, else the patterns' (which must agree), else
/// `defaults`. Returns the value and the key it came from.
fn pick<T: PartialEq + Clone + Debug>(
    name: &str,
    own: Option<&FeatureConfig>,
    patterns: &[(&str, &FeatureConfig)],
    defaults: Option<&FeatureConfig>,
    setting: &str,
    get: impl Fn(&FeatureConfig) -> Option<T>,
) -> std::result::Result<Option<(T, String)>, Invalid> {
    if let Some(v) = own.and_then(&get) {
        return Ok(Some((v, column_key(name))));
    }
    let mut found: Option<(T, &str)> = None;
    for (p, c) in patterns {
        if let Some(v) = get(c) {
            match &found {
                Some((w, q)) if *w != v => {
                    return Err(format!(
                        "{} and {} both match column {name:?} and disagree on `{setting}` ({w:?} vs {v:?}); \
                         set it in [data.{}] or make the patterns disjoint",
                        column_key(q),
                        column_key(p),
                        column_key(name)
                    )
                    .into());
                }
                Some(_) => {}
                None => found = Some((v, p)),
            }
        }
    }
    if let Some((v, p)) = found {
        return Ok(Some((v, column_key(p))));
    }
    Ok(defaults.and_then(get).map(|v| (v, "defaults".to_owned())))
}

impl TabularDataConfig {
    /// The pattern keys of `columns` that match `name`.
    fn patterns_for(&self, name: &str) -> Vec<(&str, &FeatureConfig)> {
        self.columns
            .iter()
            .filter(|(k, _)| is_pattern(k) && glob_match(k, name))
            .map(|(k, c)| (k.as_str(), c))
            .collect()
    }

    /// The pattern keys of `columns`.
    pub(in crate::data::tabular) fn patterns(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().filter(|k| is_pattern(k)).map(String::as_str)
    }

    /// The exact (non-pattern) keys of `columns`.
    pub(in crate::data::tabular) fn exact_columns(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().filter(|k| !is_pattern(k)).map(String::as_str)
    }

    /// The settings of feature `name`, checked. Errors name the key relative to `[data]`.
    pub(in crate::data::tabular) fn resolve(&self, name: &str) -> std::result::Result<Resolved, Invalid> {
        let own = self.columns.get(name).filter(|_| !is_pattern(name));
        self.resolve_from(name, own, &self.patterns_for(name))
    }

    /// [`Self::resolve`] from the given tables: `own` (a column's, or a pattern's checked on
    /// its own) and the patterns that match.
    pub(super) fn resolve_from(
        &self,
        name: &str,
        own: Option<&FeatureConfig>,
        pats: &[(&str, &FeatureConfig)],
    ) -> std::result::Result<Resolved, Invalid> {
        let d = Some(&self.defaults);
        let kind = pick(name, own, pats, d, "kind", |c| c.kind)?;
        let kind = kind.map_or(ColumnKind::Continuous, |k| k.0);
        let no_defaults = None;
        let group = pick(name, own, pats, no_defaults, "group", |c| c.group.clone())?;
        let values = pick(name, own, pats, d, "values", |c| c.values.clone())?;
        let max_categories = pick(name, own, pats, d, "max_categories", |c| c.max_categories)?;
        let missing = pick(name, own, pats, d, "missing", |c| c.missing)?;
        let reference = pick(name, own, pats, d, "reference", |c| c.reference.clone())?;
        let mutable = pick(name, own, pats, d, "mutable", |c| c.mutable)?;
        let cost = pick(name, own, pats, d, "cost", |c| c.cost)?;
        let direction = pick(name, own, pats, d, "direction", |c| c.direction)?;
        let transitions = pick(name, own, pats, None, "transitions", |c| c.transitions.clone())?;
        // Bounds from a column table or a pattern are errors on kinds they do not apply to;
        // those from `defaults` just do not apply.
        let bounded = matches!(kind, ColumnKind::Continuous | ColumnKind::Integer);
        let lower = pick(name, own, pats, d, "lower", |c| c.lower)?;
        let upper = pick(name, own, pats, d, "upper", |c| c.upper)?;
        for b in [&lower, &upper] {
            if let Some((_, from)) = b.as_ref().filter(|(_, f)| f != "defaults" && !bounded) {
                let always = if kind == ColumnKind::Datetime {
                    "its features have their own ranges"
                } else {
                    "always within [0, 1]"
                };
                return Err(format!(
                    "{from}: lower / upper do not apply to a {} column ({always}; column {name:?})",
                    kind_name(kind)
                )
                .into());
            }
        }
        let (lower, upper) = if bounded { (lower, upper) } else { (None, None) };
        let lower_from = lower.as_ref().map_or(String::new(), |b| b.1.clone());
        let upper_from = upper.as_ref().map_or(String::new(), |b| b.1.clone());
        let mut r = Resolved {
            kind,
            mutable: mutable.is_none_or(|m| m.0),
            lower: lower.map(|b| b.0),
            upper: upper.map(|b| b.0),
            cost: cost.map_or(1.0, |c| c.0),
            group: group.as_ref().map(|g| g.0.clone()),
            values: values.as_ref().filter(|_| kind == ColumnKind::Binary).map(|v| v.0.clone()),
            max_categories: max_categories.as_ref().filter(|_| kind == ColumnKind::Categorical).map(|m| m.0),
            missing: missing.as_ref().map_or(MissingPolicy::Refuse, |m| m.0),
            reference: match reference.as_ref().filter(|_| kind == ColumnKind::Datetime) {
                Some((r, from)) => Some(datetime::parse(r).map_err(|m| format!("{from}.reference: {m}"))?.0),
                None => None,
            },
            direction: direction
                .as_ref()
                .filter(|_| bounded || kind == ColumnKind::Datetime)
                .map_or(Direction::Any, |d| d.0),
            transitions: transitions.as_ref().map(|t| t.0.clone()),
            lower_from,
            upper_from,
        };
        // Settings given for this column (its own table or a pattern) that do not fit its kind.
        let given = |v: Option<&String>| v.filter(|f| *f != "defaults").cloned();
        let wrong = |from: &str, what: &str, fits: &str| -> Invalid {
            format!("{from}.{what} is only for {fits} (column {name:?} is {:?})", kind_name(kind)).into()
        };
        match (kind, &group) {
            (ColumnKind::Categorical, Some(_)) | (_, None) => {}
            (_, Some((_, from))) => {
                return Err(format!(
                    "{from}.group is only for categorical columns (column {name:?} is {:?})",
                    kind_name(kind)
                )
                .into());
            }
        }
        if let Some(from) = given(values.as_ref().map(|v| &v.1)).filter(|_| kind != ColumnKind::Binary) {
            return Err(wrong(&from, "values", "binary columns"));
        }
        if let Some(from) = given(max_categories.as_ref().map(|v| &v.1)).filter(|_| !r.encoded_categorical())
        {
            return Err(wrong(&from, "max_categories", "string categorical columns (without `group`)"));
        }
        if let Some(from) = given(reference.as_ref().map(|v| &v.1)).filter(|_| kind != ColumnKind::Datetime) {
            return Err(wrong(&from, "reference", "datetime columns"));
        }
        if let Some((_, from)) = transitions.as_ref().filter(|_| !r.encoded_categorical()) {
            return Err(wrong(from, "transitions", "string categorical columns (without `group`)"));
        }
        let moves = bounded || kind == ColumnKind::Datetime;
        if let Some(from) = given(direction.as_ref().map(|v| &v.1)).filter(|_| !moves) {
            return Err(wrong(&from, "direction", "numeric and datetime columns"));
        }
        if r.missing == MissingPolicy::Impute {
            // From `defaults`, it applies where it can; given for this column, it must fit.
            let from = missing.as_ref().map_or("defaults".to_owned(), |m| m.1.clone());
            let why = match kind {
                ColumnKind::Datetime => {
                    Some(format!("datetime column {name:?}: its empty cells are refused"))
                }
                ColumnKind::Categorical if r.group.is_some() => {
                    Some(format!("column {name:?} of a numeric one-hot group"))
                }
                _ => None,
            };
            if let Some(why) = why {
                if from != "defaults" {
                    return Err(format!("{from}.missing = \"impute\" does not apply to {why}").into());
                }
                r.missing = MissingPolicy::Refuse;
            }
        }
        if let Some((l, u)) = inverted(r.lower, r.upper) {
            return Err(
                format!("{}.lower ({l}) must be <= {}.upper ({u})", r.lower_from, r.upper_from).into()
            );
        }
        Ok(r)
    }
}

/// Every numeric one-hot group has at least two columns, all mutable or all immutable.
pub(in crate::data::tabular) fn check_groups(
    columns: &[(&str, Resolved)],
) -> std::result::Result<(), Invalid> {
    let mut groups: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
    for (name, r) in columns {
        if let (ColumnKind::Categorical, Some(g)) = (r.kind, &r.group) {
            groups.entry(g.as_str()).or_default().push((name, r.mutable));
        }
    }
    for (g, members) in &groups {
        if members.len() < 2 {
            return Err(format!(
                "{}.group = {g:?}: a one-hot group needs at least two columns (only {:?} is in it)",
                column_key(members[0].0),
                members[0].0
            )
            .into());
        }
        if members.iter().any(|m| m.1 != members[0].1) {
            let list: Vec<String> = members.iter().map(|(n, m)| format!("{n} (mutable = {m})")).collect();
            return Err(format!(
                "group {g:?}: its columns must be all mutable or all immutable: {}",
                list.join(", ")
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::cfg;
    use super::*;

    #[test]
    fn exact_beats_pattern_beats_defaults_and_patterns_must_agree() {
        let cost = |c: f32| FeatureConfig { cost: Some(c), ..Default::default() };
        let mut c = cfg(&[("V*", cost(2.0)), ("V1", cost(5.0))]);
        c.defaults.cost = Some(3.0);
        c.defaults.mutable = Some(false);
        assert_eq!(c.resolve("V1").unwrap().cost, 5.0);
        assert_eq!(c.resolve("V2").unwrap().cost, 2.0);
        assert_eq!(c.resolve("Amount").unwrap().cost, 3.0);
        assert!(!c.resolve("V2").unwrap().mutable, "defaults fill what no pattern sets");
        // Agreeing patterns are fine; disagreeing ones name both and the column.
        let c = cfg(&[("V*", cost(2.0)), ("V1?", cost(2.0))]);
        assert_eq!(c.resolve("V12").unwrap().cost, 2.0);
        let c = cfg(&[("V*", cost(2.0)), ("V1?", cost(4.0))]);
        let e = c.resolve("V12").unwrap_err();
        assert!(
            e.contains("columns.\"V*\" and columns.\"V1?\" both match column \"V12\"")
                && e.contains("`cost`"),
            "{e}"
        );
        assert_eq!(c.resolve("V2").unwrap().cost, 2.0);
        // An exact setting settles the disagreement.
        let c = cfg(&[("V*", cost(2.0)), ("V1?", cost(4.0)), ("V12", cost(1.0))]);
        assert_eq!(c.resolve("V12").unwrap().cost, 1.0);
    }
}
