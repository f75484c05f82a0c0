//! The `[data]` section of a tabular pipeline: its types, their checks, and how a column's
//! settings are resolved from its own table, the patterns that match it and `defaults`.
//!
//! Here the types and the column keys and patterns; `resolve` merges a column's settings
//! (`Resolved`), `validate` checks what can be checked before the file is read.

mod resolve;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempered_plugin::Direction;
use tempered_plugin::FeatureKind;

pub(super) use resolve::{Resolved, check_groups};

/// `[data]` of a tabular pipeline. Defaults live here (serde defaults); unknown keys are
/// errors. See the [module docs](super) for the TOML shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularDataConfig {
    /// A `.csv` or `.parquet` file (by extension), a folder of them (partitions, read in name
    /// order), or a glob over file names (`part-*.parquet`); relative to the pipeline's base
    /// dir.
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
    /// Read the files a chunk of rows at a time and keep the encoded rows on disk, so that
    /// memory does not grow with the rows: `true`, `false`, or by default when the files
    /// hold more than [`STREAM_ABOVE_BYTES`]. The numbers are the same either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

/// Input size above which a table is streamed unless `stream = false`: a table read whole
/// takes several times its file size in memory.
pub const STREAM_ABOVE_BYTES: u64 = 64 << 20;

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

/// `Some((lower, upper))` when both are given and lower > upper.
fn inverted(lower: Option<f32>, upper: Option<f32>) -> Option<(f32, f32)> {
    match (lower, upper) {
        (Some(l), Some(u)) if l > u => Some((l, u)),
        _ => None,
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
}
