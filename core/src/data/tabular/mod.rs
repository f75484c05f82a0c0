//! Tabular data: a CSV or Parquet table as it comes (numbers, string categories, Yes/No
//! columns, datetimes, empty cells) → typed, bounded features and a stratified
//! train / validation / test split.
//!
//! # The `[data]` section of a tabular pipeline
//!
//! ```toml
//! [data]
//! path = "data/creditcard-ulb/creditcard_ulb_sample.csv"  # .csv or .parquet, relative to the pipeline file
//! label = "Class"                          # integer classes 0..K-1, K >= 2, or text with `classes`
//! # classes = ["genuine", "fraud"]         # label text in class order: class i is classes[i]
//! # features = ["Time", "V1", "Amount"]    # default: every column but the label, in file order
//! split = { validation = 0.15, test = 0.25 }  # fractions of each class (stratified), seeded
//! # split = { by = "timestamp", validation = 0.15, test = 0.25 }  # out of time: the latest rows test
//! # files = { validation = "data/val.csv", test = "data/test.csv" }  # split in advance: `path` is train
//! # limit = 600                            # keep a stratified seeded subsample of this many rows
//! # stream = true                          # read 16,384 rows at a time, encoded rows on disk
//!                                          # (default: when the files hold over 64 MiB)
//! defaults = { kind = "continuous", mutable = true, cost = 1.0 }  # for every feature
//!
//! [data.columns.Time]                      # per-column overrides of `defaults`
//! kind = "integer"
//! mutable = false
//!
//! [data.columns.Amount]
//! lower = 0.0                              # a fraudster cannot make an amount negative
//! cost = 0.1
//!
//! [data.columns."V*"]                      # a glob pattern (`*`, `?`): every column it matches
//! cost = 2.0
//!
//! [data.columns.merchant_category]         # a string column, one-hot encoded by the engine
//! kind = "categorical"
//! max_categories = 12                      # the rarest merged into merchant_category:other
//! missing = "impute"                       # an empty cell is its own category
//! cost = 2.0                               # the cost of one switch of category
//!
//! [data.columns.new_device]                # Yes/No → 1/0
//! kind = "binary"
//! values = ["No", "Yes"]                   # the text of 0, then of 1 (optional for no/yes,
//!                                          # false/true, n/y, 0/1 in any case)
//!
//! [data.columns.timestamp]                 # → timestamp:hour, timestamp:weekday, timestamp:day
//! kind = "datetime"
//! # reference = "2024-01-01"               # day 0 of timestamp:day; default the train split's earliest date
//!
//! [data.columns.distance_km]
//! missing = "impute"                       # the train median, plus distance_km:missing (0/1)
//!
//! [data.columns.entry_mode]                # which category switches a fraudster can make
//! kind = "categorical"
//! transitions = { chip = ["contactless"], swipe = ["chip", "manual"] }  # only these
//!
//! [data.columns.amount]
//! direction = "up"                         # the fraud keeps its money: the amount only grows
//!
//! [[data.relations]]                       # a column that follows from others
//! column = "balance_after"
//! equals = "balance_before - amount"       # a linear expression: `0.5 * a + b - 3`, `` `odd name` ``
//!
//! # Columns that are already one-hot (numbers 0/1) name their group; a group needs at
//! # least two columns and every row must have exactly one 1 among them.
//! # [data.columns.card_visa]
//! # kind = "categorical"
//! # group = "card"
//! # [data.columns.card_amex]
//! # kind = "categorical"
//! # group = "card"
//! ```
//!
//! Each column's settings: `kind` (`"continuous"`, `"integer"`, `"binary"`, `"categorical"`,
//! `"datetime"`), `mutable` (may the attacker change it), `lower` / `upper` (inclusive bounds;
//! `inf` is allowed), `cost` (attacker's cost per unit change, raw units), `group` (numeric
//! one-hot columns only), `values` (binary), `max_categories` (string categorical),
//! `missing` (`"refuse"`, the default, or `"impute"`), `reference` (datetime) and
//! `direction` (`"up"` or `"down"`: the only way the attacker may move a numeric column;
//! for a datetime column, its `:day`) and `transitions` (string categorical: `{ from =
//! ["to", ...] }`, every switch the attacker may make; default any category to any other).
//! The engine's own buckets (`:other`, `:missing`, `:unseen`) are never a switch target:
//! no fraudster can choose "a category the model never saw". Built-in default:
//! continuous, mutable, cost 1, bounds observed, missing refused, either direction.
//!
//! ## Relations
//!
//! `[[data.relations]]` makes `column` follow from numeric feature columns:
//! `column = Σ coefficient · term + constant`. The attacker never moves `column` itself
//! (plugins see it as immutable); when a term moves, `column` moves with it
//! (`Batch::project` in the plugin API recomputes it), and its change counts toward no
//! budget. The host checks every adversarial row: where the original row keeps the
//! relation (to `f32` rounding), the adversarial row must too. A derived column cannot be
//! a term of another relation. The log says on how many train rows each relation holds.
//!
//! ## Which setting wins
//!
//! A key of `[data.columns]` is a column name or a glob pattern (`*` any run of characters,
//! `?` one). For each setting of a column: its own table wins, then the patterns that match
//! it, then `defaults`. Two patterns that match one column and give one setting different
//! values are an error naming both patterns and the column (settle it in the column's own
//! table); a pattern that matches no feature column is an error (a typo must not be silent).
//! A setting from `defaults` that does not fit a column's kind does not apply to it (bounds on
//! a binary column, `missing = "impute"` on a datetime one); given in a column's table or a
//! pattern, it is an error. `defaults` cannot set `group`, nor `kind = "categorical"` or
//! `"datetime"`.
//!
//! ## How columns become features
//!
//! - **Numbers** (`continuous`, `integer`, `binary` holding 0/1, one-hot members with
//!   `group`): one feature each, as before. Bounds not given are the minimum / maximum
//!   observed in the *whole file* for that column (before `limit` and the split). Binary and
//!   categorical columns are always within [0, 1] (`lower` / `upper` on such a column is an
//!   error; those from `defaults` do not apply). A value outside a given bound is an error, as
//!   is a non-integer in an integer column and anything but 0 / 1 in a binary or numeric
//!   categorical one.
//! - **Two-valued text** (`kind = "binary"`): `values = ["No", "Yes"]` maps the first to 0
//!   and the second to 1 (exact text). Without `values`, a column whose values are one of the
//!   pairs no/yes, false/true, n/y, 0/1 (any case) is mapped by that pair. Any other value is
//!   an error naming the file, column, row and the values found.
//! - **Text categories** (`kind = "categorical"` without `group`): one-hot encoded. The
//!   vocabulary is fitted on the **train split only**: its values by descending train
//!   frequency, ties by value. With `max_categories = n`, the first n are kept and the
//!   rest (the rarest) share one `column:other` feature. Then comes `column:missing` when
//!   `missing = "impute"`, and always a last `column:unseen` feature: a validation, test or
//!   scored value that the train split never had goes there (it is 0 on every train row).
//!   The features are named `column=value` and form one one-hot group; each takes the
//!   column's `mutable`, and `cost / 2` as its cost, because a switch of category moves two
//!   features by 1 each, so one switch costs `cost`. Parquet numbers or booleans in such a
//!   column are taken as their text (`3`, `true`).
//! - **Datetimes** (`kind = "datetime"`, `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM:SS` or
//!   `YYYY-MM-DD`): three integer features, `column:hour` (0–23), `column:weekday` (0 =
//!   Monday … 6) and `column:day` (days since `reference`, or since the train split's
//!   earliest date; bounds observed over the whole file), each with the column's `mutable`
//!   and `cost`. Empty cells are always refused. Time zones are not read.
//! - **Empty cells**: `missing = "refuse"` (the default) makes an empty cell an error naming
//!   it. With `missing = "impute"`, a numeric column's empty cells take the median of its
//!   non-empty train cells (the lower middle value for an integer column, the more frequent
//!   value, ties 0, for a binary one) and a `column:missing` feature follows it, 1 where the
//!   cell was empty (binary, immutable); a text category column gets its `column:missing`
//!   category.
//!
//! Labels: without `classes`, integers 0..K-1 (every class needs a row); with `classes`,
//! each label's text is looked up there (trimmed), an unknown one is an error naming the row.
//!
//! The fitted encoding (vocabularies, binary mappings, imputation values, datetime
//! references, the classes and the feature list with its standardisation) is
//! [`Encoding`]; a run writes it to its folder as `encoding.json`, and
//! [`Encoding::encode_row`] encodes a new row of text cells exactly as the training rows.
//!
//! # Reading
//!
//! CSV is read with every column as text (no schema inference) and each cell parsed here, so
//! that every error names the file, the column and the data row (row 1 is the first row
//! after the header; "line" counts the header too, assuming one line per record). Parquet is
//! read typed: numbers and booleans are taken as they are, text columns are parsed like
//! CSV. Empty cells and nulls are errors unless a column imputes them; NaN and infinities are
//! always errors. So are a header that names a column twice, a row with more fields than the
//! header (its row, line and both counts are named), and quotes that do not enclose a whole
//! field. The file must be a regular file.
//!
//! # Split
//!
//! Rows of each class are shuffled with ChaCha8 seeded by the pipeline seed; `limit` keeps
//! the first rows of each class in proportion (largest remainder, every class at least one
//! row); then each class gives `round(n × test)` rows to test, `round(n × validation)` to
//! validation and the rest to train (train keeps at least one row of every class; an empty
//! validation or test split borrows one row from the largest split). Each split lists its
//! rows in file order. Encodings and standardisation (`mean`, `std`) are fitted on the train
//! split only.
//!
//! # Modules
//!
//! `load` (the three passes over the rows), `source` (the files read whole or a chunk of rows
//! at a time, through [`crate::data::table`]), `config` (the `[data]` types, patterns, which
//! setting wins), `labels`,
//! `cells` (each column's cells read by kind, and the statistics fitting needs), `encoding`
//! (fitting and writing of features; [`Encoding`]), `datetime` (ISO dates as day numbers),
//! `split` (the stratified and out-of-time splits), `relations`, `partitions`.

mod cells;
mod config;
mod datetime;
mod encoding;
mod labels;
mod load;
pub mod partitions;
mod relations;
mod source;
mod split;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
pub use tempered_plugin::FeatureKind;
use tempered_plugin::{Column, Direction, TabularConstraints};

pub use config::{
    ColumnKind, FeatureConfig, MissingPolicy, RelationConfig, SplitConfig, SplitFiles, TabularDataConfig,
    glob_match, is_pattern,
};
pub use encoding::{ColumnEncoding, ENCODING_VERSION, Encoding};

use crate::Result;
use crate::data::rows::RowFile;
use config::{Resolved, column_key};

pub use config::STREAM_ABOVE_BYTES;
pub use load::{load, load_in, load_in_chunks};

/// One resolved feature column: the column as plugins and the judge see it (its `scale` is
/// the standardisation's `std`), and what only the host knows about it. Reads of the
/// column's fields go through to it (`f.name`, `f.cost`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureInfo {
    pub column: Column,
    /// Standardisation fitted on the train split: `(x - mean) / std`, `std` being the
    /// column's `scale` (1 for a constant column).
    pub mean: f32,
    /// The only way the attacker may move it (`up`, `down`), if not either. Plugins get it
    /// in the batch's constraints, with the relations, not in the column.
    pub direction: Direction,
}

impl FeatureInfo {
    /// The standardisation's standard deviation: the column's `scale`.
    pub fn std(&self) -> f32 {
        self.column.scale
    }
}

impl std::ops::Deref for FeatureInfo {
    type Target = Column;

    fn deref(&self) -> &Column {
        &self.column
    }
}

/// A feature as `encoding.json` writes it (read back by `--resume` and `tempered score`):
/// this form, field order included, must not change with the types behind it.
#[derive(Serialize, Deserialize)]
struct StoredFeature<'a> {
    name: Cow<'a, str>,
    kind: FeatureKind,
    mutable: bool,
    /// Inclusive bounds in raw units (may be ±inf when configured so; JSON writes those as
    /// `"inf"` / `"-inf"`).
    #[serde(with = "bound")]
    lower: f32,
    #[serde(with = "bound")]
    upper: f32,
    cost: f32,
    /// Index of the one-hot group (numbered in order of first appearance), for categorical
    /// columns.
    group: Option<u32>,
    mean: f32,
    std: f32,
    #[serde(default, skip_serializing_if = "is_any")]
    direction: Direction,
}

impl Serialize for FeatureInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let Column { name, kind, mutable, lower, upper, cost, scale, group } = &self.column;
        StoredFeature {
            name: Cow::Borrowed(name),
            kind: *kind,
            mutable: *mutable,
            lower: *lower,
            upper: *upper,
            cost: *cost,
            group: *group,
            mean: self.mean,
            std: *scale,
            direction: self.direction,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for FeatureInfo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let StoredFeature { name, kind, mutable, lower, upper, cost, group, mean, std, direction } =
            StoredFeature::deserialize(d)?;
        let column = Column { name: name.into_owned(), kind, mutable, lower, upper, cost, scale: std, group };
        Ok(Self { column, mean, direction })
    }
}

fn is_any(d: &Direction) -> bool {
    *d == Direction::Any
}

/// The rows of one split, raw (unstandardised), row-major: in memory, or on disk for a
/// table read a chunk at a time.
#[derive(Debug, Clone)]
pub enum Rows {
    Memory(Vec<f32>),
    Disk(RowFile),
}

/// Rows of one split, raw (unstandardised).
#[derive(Debug, Clone)]
pub struct Split {
    pub x: Rows,
    /// Features per row.
    pub width: usize,
    pub y: Vec<u32>,
    /// 1-based data row number among the rows loaded (row 1 is the first row after a CSV
    /// header; the rows of a second file follow those of the first).
    pub rows: Vec<usize>,
}

/// Equal rows, labels and row numbers, wherever the rows are kept (a split on disk is read
/// whole; one that cannot be read equals nothing).
impl PartialEq for Split {
    fn eq(&self, other: &Self) -> bool {
        self.width == other.width
            && self.y == other.y
            && self.rows == other.rows
            && matches!((self.values(), other.values()), (Ok(a), Ok(b)) if a == b)
    }
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of features per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The raw features of row `i`.
    pub fn row(&self, i: usize) -> Result<Vec<f32>> {
        let w = self.width;
        match &self.x {
            Rows::Memory(x) => Ok(x[i * w..(i + 1) * w].to_vec()),
            Rows::Disk(file) => file.range(i, i + 1),
        }
    }

    /// Every row, row-major (a split on disk is read whole).
    pub fn values(&self) -> Result<std::borrow::Cow<'_, [f32]>> {
        match &self.x {
            Rows::Memory(x) => Ok(std::borrow::Cow::Borrowed(x)),
            Rows::Disk(file) => file.range(0, file.len()).map(std::borrow::Cow::Owned),
        }
    }

    /// Rows per class, `n_classes` long.
    pub fn class_counts(&self, n_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; n_classes];
        for &y in &self.y {
            counts[y as usize] += 1;
        }
        counts
    }
}

/// A loaded table: features, classes and the three splits.
#[derive(Debug, Clone)]
pub struct TabularData {
    /// The resolved path of the file.
    pub path: PathBuf,
    pub features: Vec<FeatureInfo>,
    pub n_classes: usize,
    pub train: Split,
    pub validation: Split,
    pub test: Split,
    /// How the file's columns became the features, fitted on the train split.
    pub encoding: Encoding,
    /// Directions and relations by feature index, as plugins and the judge get them.
    pub constraints: TabularConstraints,
}

impl TabularData {
    /// Number of features per row.
    pub fn width(&self) -> usize {
        self.features.len()
    }
}

/// A bound in JSON: a number, or `"inf"` / `"-inf"` (JSON has no infinity).
mod bound {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        match *v {
            f32::INFINITY => s.serialize_str("inf"),
            f32::NEG_INFINITY => s.serialize_str("-inf"),
            v => s.serialize_f32(v),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Bound {
            Number(f32),
            Text(String),
        }
        match Bound::deserialize(d)? {
            Bound::Number(v) => Ok(v),
            Bound::Text(t) if t == "inf" => Ok(f32::INFINITY),
            Bound::Text(t) if t == "-inf" => Ok(f32::NEG_INFINITY),
            Bound::Text(t) => Err(serde::de::Error::custom(format!("{t:?} is not a bound"))),
        }
    }
}

/// The allowed category switches of every engine-encoded categorical column: the
/// column's `transitions` when given (by category value), else any category to any other;
/// never into the engine's own buckets (`:other`, `:missing`, `:unseen`), which hold no
/// value a fraudster could choose.
fn transitions(
    names: &[String],
    resolved: &[Resolved],
    groups: &[Option<u32>],
    features: &[FeatureInfo],
) -> std::result::Result<Vec<tempered_plugin::Transitions>, String> {
    let mut out = Vec::new();
    for ((name, r), g) in names.iter().zip(resolved).zip(groups) {
        let Some(g) = g.filter(|_| r.encoded_categorical()) else { continue };
        let group: Vec<usize> = (0..features.len()).filter(|&j| features[j].group == Some(g)).collect();
        let prefix = format!("{name}=");
        let value = |j: usize| features[j].name.strip_prefix(&prefix);
        let real: Vec<usize> = group.iter().copied().filter(|&j| value(j).is_some()).collect();
        let allowed = match &r.transitions {
            None => group.iter().map(|&a| (a, real.iter().copied().filter(|&b| b != a).collect())).collect(),
            Some(map) => {
                let column = |v: &str| {
                    real.iter().copied().find(|&j| value(j) == Some(v)).ok_or_else(|| {
                        format!(
                            "[data.{}] transitions name {v:?}, which is not a category of the train split \
                             (or was merged into `{name}:other`)",
                            column_key(name)
                        )
                    })
                };
                let mut allowed = Vec::new();
                for (from, tos) in map {
                    let to: Vec<usize> =
                        tos.iter().map(|t| column(t)).collect::<std::result::Result<_, _>>()?;
                    allowed.push((column(from)?, to));
                }
                allowed
            }
        };
        out.push(tempered_plugin::Transitions { group, allowed });
    }
    Ok(out)
}

/// Where an ISO date or date-time falls in time, in hours (what `split.by` orders by).
pub fn datetime_key(text: &str) -> std::result::Result<f64, crate::error::Invalid> {
    datetime::parse(text).map(|(day, hour)| day as f64 * 24.0 + f64::from(hour))
}
