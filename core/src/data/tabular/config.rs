//! The `[data]` section of a tabular pipeline: its types, their checks, and how a column's
//! settings are resolved from its own table, the patterns that match it and `defaults`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempered_plugin::Direction;
use tempered_plugin::FeatureKind;

use super::datetime;
use super::reading::format_of;
use crate::error::Invalid;

/// `[data]` of a tabular pipeline. Defaults live here (serde defaults); unknown keys are
/// errors. See the [module docs](super) for the TOML shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularDataConfig {
    /// A `.csv` or `.parquet` file (by extension), relative to the pipeline's base dir.
    pub path: PathBuf,
    /// The label column: integer classes 0..K-1 with K >= 2, or the strings of `classes`.
    pub label: String,
    /// The label values in class order (class `i` is `classes[i]`). Default: the label
    /// column holds the integers 0..K-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Feature columns, in this order. Default: every column but the label, in file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Applies to every feature (built-in: continuous, mutable, cost 1, observed bounds).
    #[serde(default)]
    pub defaults: FeatureConfig,
    /// Per-column overrides of `defaults`; a key may be a glob pattern (`*`, `?`).
    #[serde(default)]
    pub columns: BTreeMap<String, FeatureConfig>,
    #[serde(default)]
    pub split: SplitConfig,
    /// Keep a stratified, seeded subsample of this many rows (small test pipelines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Splits given as files: `path` is then the train file, and these the validation and
    /// test files (same columns), used as they are (no `limit`, no `split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<SplitFiles>,
    /// Columns that follow from others: `[[data.relations]] column = "balance_after",
    /// equals = "balance_before - amount"`. The attacker cannot move them; they follow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<RelationConfig>,
}

/// `[data.files]`: the validation and test files of a table split in advance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFiles {
    pub validation: PathBuf,
    pub test: PathBuf,
}

/// One `[[data.relations]]`: `column = equals`, a linear expression of other numeric
/// feature columns (`a - b`, `0.5 * a + 2 * b - 3`; a name that is not a plain word goes in
/// backticks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationConfig {
    pub column: String,
    pub equals: String,
}

/// What a source column holds. The first four are also the kinds of the features plugins
/// see; a string `categorical` column and a `datetime` column expand into several features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Continuous,
    Integer,
    Binary,
    Categorical,
    Datetime,
}

/// What to do with an empty cell (a null in Parquet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    /// An error naming the cell.
    #[default]
    Refuse,
    /// Numbers: the train median plus a `column:missing` indicator; categories: a
    /// `column:missing` category.
    Impute,
}

/// Settings of one feature (or of all, in `defaults`); every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ColumnKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutable: Option<bool>,
    /// Inclusive lower bound; default: the minimum observed in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<f32>,
    /// Inclusive upper bound; default: the maximum observed in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<f32>,
    /// Attacker's cost per unit change (raw units); default 1. For a string categorical
    /// column: the cost of one switch of category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f32>,
    /// One-hot group name, for a numeric (already one-hot) categorical column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A two-valued string binary column: the text of 0 and of 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// A string categorical column: keep this many categories, merge the rarest into `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_categories: Option<usize>,
    /// `"refuse"` (default) or `"impute"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingPolicy>,
    /// A datetime column: day 0 of `column:day` (`YYYY-MM-DD`); default the train split's
    /// earliest date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `"up"` or `"down"`: the only way the attacker may move the value (an amount only up,
    /// a date only forward: for a datetime column it is its `:day`). Default `"any"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// A string categorical column: every switch the attacker may make, as
    /// `{ from = ["to", ...] }`; a switch not listed is forbidden. Default: any category to
    /// any other. The engine's own buckets (`:other`, `:missing`, `:unseen`) are never a
    /// target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transitions: Option<BTreeMap<String, Vec<String>>>,
}

/// Fractions of each class held out for validation and test; the rest is train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    pub validation: f64,
    pub test: f64,
    /// Out of time: order the rows by this column (ISO dates and date-times, or numbers;
    /// it need not be a feature) and keep the latest `test` share for test, the `validation`
    /// share before it for validation, the earliest rows for training, as fraud teams train
    /// on the past and test on the future. Default: a stratified, seeded split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { validation: 0.15, test: 0.25, by: None }
    }
}

/// `columns.Amount`, or `columns."odd name"` when the name is not a bare TOML key.
pub(super) fn column_key(name: &str) -> String {
    let bare = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { format!("columns.{name}") } else { format!("columns.{name:?}") }
}

pub(super) fn kind_name(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Continuous => "continuous",
        ColumnKind::Integer => "integer",
        ColumnKind::Binary => "binary",
        ColumnKind::Categorical => "categorical",
        ColumnKind::Datetime => "datetime",
    }
}

impl ColumnKind {
    /// The feature kind of a column that stays one feature.
    pub fn feature_kind(self) -> FeatureKind {
        match self {
            ColumnKind::Continuous | ColumnKind::Datetime => FeatureKind::Continuous,
            ColumnKind::Integer => FeatureKind::Integer,
            ColumnKind::Binary => FeatureKind::Binary,
            ColumnKind::Categorical => FeatureKind::Categorical,
        }
    }
}

/// Whether a `[data.columns]` key is a glob pattern rather than a column name.
pub fn is_pattern(key: &str) -> bool {
    key.contains(['*', '?'])
}

/// Glob matching: `*` is any run of characters (also none), `?` exactly one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

fn check_fraction(key: &str, v: f64) -> std::result::Result<(), Invalid> {
    if v > 0.0 && v < 1.0 { Ok(()) } else { Err(format!("{key} must be in (0, 1) (got {v})").into()) }
}

/// `Some((lower, upper))` when both are given and lower > upper.
fn inverted(lower: Option<f32>, upper: Option<f32>) -> Option<(f32, f32)> {
    match (lower, upper) {
        (Some(l), Some(u)) if l > u => Some((l, u)),
        _ => None,
    }
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

/// The settings of one feature after merging its own table, the patterns that match it,
/// `defaults` and the built-in defaults.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resolved {
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
    /// The data file, `path` resolved against the pipeline's base directory.
    pub fn resolved_path(&self, base_dir: &Path) -> PathBuf {
        if self.path.is_absolute() { self.path.clone() } else { base_dir.join(&self.path) }
    }

    /// Every file the data comes from: `path`, then the validation and test files.
    pub fn resolved_files(&self, base_dir: &Path) -> Vec<PathBuf> {
        let resolve = |p: &Path| if p.is_absolute() { p.to_owned() } else { base_dir.join(p) };
        let mut out = vec![resolve(&self.path)];
        if let Some(f) = &self.files {
            out.push(resolve(&f.validation));
            out.push(resolve(&f.test));
        }
        out
    }

    /// The pattern keys of `columns` that match `name`.
    fn patterns_for(&self, name: &str) -> Vec<(&str, &FeatureConfig)> {
        self.columns
            .iter()
            .filter(|(k, _)| is_pattern(k) && glob_match(k, name))
            .map(|(k, c)| (k.as_str(), c))
            .collect()
    }

    /// The pattern keys of `columns`.
    pub(super) fn patterns(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().filter(|k| is_pattern(k)).map(String::as_str)
    }

    /// The exact (non-pattern) keys of `columns`.
    pub(super) fn exact_columns(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().filter(|k| !is_pattern(k)).map(String::as_str)
    }

    /// The settings of feature `name`, checked. Errors name the key relative to `[data]`.
    pub(super) fn resolve(&self, name: &str) -> std::result::Result<Resolved, Invalid> {
        let own = self.columns.get(name).filter(|_| !is_pattern(name));
        self.resolve_from(name, own, &self.patterns_for(name))
    }

    /// [`Self::resolve`] from the given tables: `own` (a column's, or a pattern's checked on
    /// its own) and the patterns that match.
    fn resolve_from(
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

    /// Checks what can be checked without reading the file. Messages name the key relative
    /// to `[data]`, e.g. `split.test must be in (0, 1) (got 1.5)`.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.path.as_os_str().is_empty() {
            return Err("path must name a .csv or .parquet file".into());
        }
        if format_of(&self.path).is_none() {
            return Err(format!(
                "path {:?}: unsupported file type; expected a .csv or .parquet file",
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

/// Every numeric one-hot group has at least two columns, all mutable or all immutable.
pub(super) fn check_groups(columns: &[(&str, Resolved)]) -> std::result::Result<(), Invalid> {
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
    use super::*;

    #[test]
    fn glob_patterns_match_like_a_shell() {
        assert!(glob_match("V*", "V1") && glob_match("V*", "V") && glob_match("V*", "V28"));
        assert!(!glob_match("V*", "Amount") && !glob_match("V?", "V12"));
        assert!(glob_match("V?", "V1") && glob_match("*_24h", "n_tx_last_24h"));
        assert!(glob_match("a*b*c", "aXXbYYc") && !glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*", "") && glob_match("**", "x") && !glob_match("?", ""));
        assert!(is_pattern("V*") && is_pattern("a?") && !is_pattern("Amount"));
    }

    fn cfg(columns: &[(&str, FeatureConfig)]) -> TabularDataConfig {
        TabularDataConfig {
            path: "t.csv".into(),
            label: "y".into(),
            classes: None,
            features: None,
            defaults: FeatureConfig::default(),
            columns: columns.iter().map(|(k, c)| (k.to_string(), c.clone())).collect(),
            split: SplitConfig::default(),
            limit: None,
            files: None,
            relations: Vec::new(),
        }
    }

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
