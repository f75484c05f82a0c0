//! Tabular data: a CSV or Parquet table → typed, bounded features and a stratified
//! train / validation / test split.
//!
//! # The `[data]` section of a tabular pipeline
//!
//! ```toml
//! [data]
//! path = "data/creditcard-ulb/creditcard_ulb_sample.csv"  # .csv or .parquet, relative to the pipeline file
//! label = "Class"                          # integer classes 0..K-1, K >= 2
//! # features = ["Time", "V1", "Amount"]    # default: every column but the label, in file order
//! split = { validation = 0.15, test = 0.25 }  # fractions of each class (stratified), seeded
//! # limit = 600                            # keep a stratified seeded subsample of this many rows
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
//! # One-hot categorical columns name their group; a group needs at least two columns and
//! # every row must have exactly one 1 among them.
//! # [data.columns.card_visa]
//! # kind = "categorical"
//! # group = "card"
//! # [data.columns.card_amex]
//! # kind = "categorical"
//! # group = "card"
//! ```
//!
//! Each feature's settings: `kind` (`"continuous"`, `"integer"`, `"binary"`, `"categorical"`),
//! `mutable` (may the attacker change it), `lower` / `upper` (inclusive bounds; `inf` is
//! allowed), `cost` (attacker's cost per unit change, raw units) and `group` (categorical
//! columns only). A column's own value wins over `defaults`, which wins over the built-in
//! default: continuous, mutable, cost 1, bounds observed.
//!
//! Bounds not given are the minimum / maximum observed in the *whole file* for that column
//! (before `limit` and the split). Binary and categorical columns are always within [0, 1]
//! (`lower` / `upper` on such a column is an error; those from `defaults` do not apply). A
//! value outside a given bound is an error, as is a non-integer in an integer column and
//! anything but 0 / 1 in a binary or categorical one.
//!
//! # Reading
//!
//! CSV is read with every column as text (no schema inference) and each cell parsed here, so
//! that every error names the file, the column and the data row (row 1 is the first row
//! after the header; "line" counts the header too, assuming one line per record). Parquet is
//! read typed: numbers and booleans are taken as they are, text columns are parsed like
//! CSV. Empty cells, nulls, NaN and infinities are errors. So are a header that names a
//! column twice, a row with more fields than the header (its row, line and both counts are
//! named), and quotes that do not enclose a whole field. The file must be a regular file.
//!
//! # Split
//!
//! Rows of each class are shuffled with ChaCha8 seeded by the pipeline seed; `limit` keeps
//! the first rows of each class in proportion (largest remainder, every class at least one
//! row); then each class gives `round(n × test)` rows to test, `round(n × validation)` to
//! validation and the rest to train (train keeps at least one row of every class; an empty
//! validation or test split borrows one row from the largest split). Each split lists its
//! rows in file order. Standardisation (`mean`, `std`) is fitted on the train split only.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::{CsvReadOptions, DataFrame, DataType, ParquetReader, SerReader};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
pub use tempered_plugin::FeatureKind;

use super::stratify;
use crate::error::Invalid;
use crate::{Error, Result};

/// `[data]` of a tabular pipeline. Defaults live here (serde defaults); unknown keys are
/// errors. See the [module docs](self) for the TOML shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularDataConfig {
    /// A `.csv` or `.parquet` file (by extension), relative to the pipeline's base dir.
    pub path: PathBuf,
    /// The label column: integer classes 0..K-1 with K >= 2.
    pub label: String,
    /// Feature columns, in this order. Default: every column but the label, in file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Applies to every feature (built-in: continuous, mutable, cost 1, observed bounds).
    #[serde(default)]
    pub defaults: FeatureConfig,
    /// Per-column overrides of `defaults`.
    #[serde(default)]
    pub columns: BTreeMap<String, FeatureConfig>,
    #[serde(default)]
    pub split: SplitConfig,
    /// Keep a stratified, seeded subsample of this many rows (small test pipelines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Settings of one feature (or of all, in `defaults`); every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<FeatureKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutable: Option<bool>,
    /// Inclusive lower bound; default: the minimum observed in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<f32>,
    /// Inclusive upper bound; default: the maximum observed in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<f32>,
    /// Attacker's cost per unit change (raw units); default 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f32>,
    /// One-hot group name, for categorical columns (required there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Fractions of each class held out for validation and test; the rest is train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    pub validation: f64,
    pub test: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { validation: 0.15, test: 0.25 }
    }
}

/// One resolved feature column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureInfo {
    pub name: String,
    pub kind: FeatureKind,
    pub mutable: bool,
    /// Inclusive bounds in raw units (may be ±inf when configured so).
    pub lower: f32,
    pub upper: f32,
    pub cost: f32,
    /// Index of the one-hot group (numbered in order of first appearance), for categorical
    /// columns.
    pub group: Option<u32>,
    /// Standardisation fitted on the train split: `(x - mean) / std`; `std` is 1 for a
    /// constant column.
    pub mean: f32,
    pub std: f32,
}

/// Rows of one split, raw (unstandardised).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// `len() × width` values, row-major.
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    /// 1-based data row number in the file (row 1 is the first row after a CSV header).
    pub rows: Vec<usize>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of features per row (0 for an empty split).
    pub fn width(&self) -> usize {
        self.x.len().checked_div(self.y.len()).unwrap_or(0)
    }

    /// The raw features of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.x[i * w..(i + 1) * w]
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
}

impl TabularData {
    /// Number of features per row.
    pub fn width(&self) -> usize {
        self.features.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
}

fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv),
        "parquet" | "pq" => Some(Format::Parquet),
        _ => None,
    }
}

/// `columns.Amount`, or `columns."odd name"` when the name is not a bare TOML key.
fn column_key(name: &str) -> String {
    let bare = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { format!("columns.{name}") } else { format!("columns.{name:?}") }
}

fn kind_name(kind: FeatureKind) -> &'static str {
    match kind {
        FeatureKind::Continuous => "continuous",
        FeatureKind::Integer => "integer",
        FeatureKind::Binary => "binary",
        FeatureKind::Categorical => "categorical",
    }
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
        Ok(())
    }
}

/// The settings of one feature after merging column, `defaults` and built-in defaults.
struct Resolved {
    kind: FeatureKind,
    mutable: bool,
    lower: Option<f32>,
    upper: Option<f32>,
    cost: f32,
    group: Option<String>,
}

impl TabularDataConfig {
    /// The data file, `path` resolved against the pipeline's base directory.
    pub fn resolved_path(&self, base_dir: &Path) -> PathBuf {
        if self.path.is_absolute() { self.path.clone() } else { base_dir.join(&self.path) }
    }

    fn resolve(&self, name: &str) -> Resolved {
        let col = self.columns.get(name);
        let d = &self.defaults;
        let kind = col.and_then(|c| c.kind).or(d.kind).unwrap_or(FeatureKind::Continuous);
        let (lower, upper) = match kind {
            FeatureKind::Binary | FeatureKind::Categorical => (Some(0.0), Some(1.0)),
            _ => (col.and_then(|c| c.lower).or(d.lower), col.and_then(|c| c.upper).or(d.upper)),
        };
        Resolved {
            kind,
            mutable: col.and_then(|c| c.mutable).or(d.mutable).unwrap_or(true),
            lower,
            upper,
            cost: col.and_then(|c| c.cost).or(d.cost).unwrap_or(1.0),
            group: col.and_then(|c| c.group.clone()),
        }
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
        if self.defaults.kind == Some(FeatureKind::Categorical) {
            return Err("defaults.kind cannot be \"categorical\": set `kind` and `group` per column".into());
        }
        if let Some((l, u)) = inverted(self.defaults.lower, self.defaults.upper) {
            return Err(format!("defaults.lower ({l}) must be <= defaults.upper ({u})").into());
        }

        let mut groups: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
        for (name, c) in &self.columns {
            let key = column_key(name);
            if name == &self.label {
                return Err(format!("{key}: {name:?} is the label column, not a feature").into());
            }
            if self.features.as_ref().is_some_and(|f| !f.contains(name)) {
                return Err(format!("{key}: {name:?} is not listed in `features`").into());
            }
            c.check(&key)?;
            let r = self.resolve(name);
            match (r.kind, &c.group) {
                (FeatureKind::Categorical, None) => {
                    return Err(format!(
                        "{key}.group is required for a categorical column (the name of its one-hot group)"
                    )
                    .into());
                }
                (FeatureKind::Categorical, Some(g)) => {
                    groups.entry(g.as_str()).or_default().push((name, r.mutable))
                }
                (kind, Some(_)) => {
                    return Err(format!(
                        "{key}.group is only for categorical columns (this one is {:?})",
                        kind_name(kind)
                    )
                    .into());
                }
                (_, None) => {}
            }
            if matches!(r.kind, FeatureKind::Binary | FeatureKind::Categorical)
                && (c.lower.is_some() || c.upper.is_some())
            {
                return Err(format!(
                    "{key}: lower / upper do not apply to a {} column (always within [0, 1])",
                    kind_name(r.kind)
                )
                .into());
            }
            if let Some((l, u)) = inverted(r.lower, r.upper) {
                let src = |own: bool, what: &str| {
                    if own { format!("{key}.{what}") } else { format!("defaults.{what}") }
                };
                return Err(format!(
                    "{} ({l}) must be <= {} ({u})",
                    src(c.lower.is_some(), "lower"),
                    src(c.upper.is_some(), "upper")
                )
                .into());
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
}

/// A table read from disk, every column still as polars stored it.
struct Table {
    path: PathBuf,
    format: Format,
    df: DataFrame,
}

impl Table {
    fn read(path: &Path) -> Result<Self> {
        let format = format_of(path)
            .ok_or_else(|| Error::data(path, "unsupported file type; expected a .csv or .parquet file"))?;
        let meta = super::regular_file(path)?;
        if meta.len() == 0 {
            return Err(Error::data(path, "the file is empty (0 bytes); expected a header and data rows"));
        }
        if format == Format::Csv {
            check_csv_header(path)?;
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let df = match format {
            Format::Csv => CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .into_reader_with_file_handle(file)
                .finish()
                .map_err(|e| csv_error(path, e))?,
            Format::Parquet => ParquetReader::new(file)
                .finish()
                .map_err(|e| Error::external(format!("{}: cannot read as Parquet", path.display()), e))?,
        };
        let table = Self { path: path.to_path_buf(), format, df };
        if table.df.height() == 0 {
            return Err(Error::data(
                path,
                format!("no data rows (only a header with columns {})", table.column_list()),
            ));
        }
        Ok(table)
    }

    fn column_names(&self) -> Vec<String> {
        self.df.get_column_names().iter().map(|s| s.to_string()).collect()
    }

    fn column_list(&self) -> String {
        self.column_names().join(", ")
    }

    fn has_column(&self, name: &str) -> bool {
        self.df.get_column_names().iter().any(|c| c.as_str() == name)
    }

    /// `what`: e.g. `label column "Class"`.
    fn missing_column(&self, what: &str) -> Error {
        Error::data(&self.path, format!("{what} not found; the file has columns: {}", self.column_list()))
    }

    /// `row 17 (line 18)` for the 0-based data row 16 of a CSV file.
    fn at(&self, row0: usize) -> String {
        match self.format {
            Format::Csv => format!("row {} (line {})", row0 + 1, row0 + 2),
            Format::Parquet => format!("row {}", row0 + 1),
        }
    }

    fn cell_error(&self, column: &str, row0: usize, msg: impl std::fmt::Display) -> Error {
        Error::data(&self.path, format!("column {column:?}, {}: {msg}", self.at(row0)))
    }

    /// Every cell of `column` as a finite number, or an error naming the cell.
    fn numbers(&self, column: &str) -> Result<Vec<f64>> {
        let col = self.df.column(column)?;
        let mut out = Vec::with_capacity(self.df.height());
        match col.dtype() {
            DataType::String => {
                for (i, cell) in col.str()?.iter().enumerate() {
                    out.push(parse_cell(cell).map_err(|m| self.cell_error(column, i, m))?);
                }
            }
            DataType::Boolean => {
                for (i, v) in col.bool()?.iter().enumerate() {
                    out.push(f64::from(u8::from(
                        v.ok_or_else(|| self.cell_error(column, i, "empty cell (null)"))?,
                    )));
                }
            }
            dt if dt.is_numeric() => {
                let cast = col.cast(&DataType::Float64)?;
                for (i, v) in cast.f64()?.iter().enumerate() {
                    let v = v.ok_or_else(|| self.cell_error(column, i, "empty cell (null)"))?;
                    if !v.is_finite() {
                        return Err(self.cell_error(column, i, format!("{v} is not a finite number")));
                    }
                    out.push(v);
                }
            }
            dt => {
                return Err(Error::data(
                    &self.path,
                    format!("column {column:?} has type {dt}; expected numbers"),
                ));
            }
        }
        Ok(out)
    }
}

/// One CSV record as polars splits it: `,` between fields, `"` quoting only at the start of a
/// field (`""` inside quotes is a quote), LF or CRLF at the end.
struct CsvRecord {
    /// The line it starts on (1-based, the header is line 1).
    line: usize,
    fields: Vec<Vec<u8>>,
    /// Whether a line break ended it (else the bytes ran out).
    ended: bool,
    /// The first field polars refuses to split, and why.
    malformed: Option<(usize, &'static str)>,
}

struct CsvRecords<'a> {
    bytes: &'a [u8],
    i: usize,
    line: usize,
}

impl<'a> CsvRecords<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        Self { bytes, i: 0, line: 1 }
    }
}

impl Iterator for CsvRecords<'_> {
    type Item = CsvRecord;

    fn next(&mut self) -> Option<CsvRecord> {
        let b = self.bytes;
        if self.i >= b.len() {
            return None;
        }
        let line = self.line;
        let (mut fields, mut field) = (Vec::new(), Vec::new());
        let (mut quoted, mut at_start, mut closed) = (false, true, false);
        let mut malformed = None;
        let mut flag = |fields: &Vec<Vec<u8>>, why| {
            malformed.get_or_insert((fields.len(), why));
        };
        let ended = loop {
            let Some(&c) = b.get(self.i) else {
                if quoted {
                    flag(&fields, "a quoted field is never closed");
                }
                break false;
            };
            self.i += 1;
            if quoted {
                match c {
                    b'"' if b.get(self.i) == Some(&b'"') => {
                        field.push(b'"');
                        self.i += 1;
                    }
                    b'"' => (quoted, closed) = (false, true),
                    _ => {
                        self.line += usize::from(c == b'\n');
                        field.push(c);
                    }
                }
                continue;
            }
            match c {
                b'"' if at_start => quoted = true,
                b',' => {
                    fields.push(std::mem::take(&mut field));
                    (at_start, closed) = (true, false);
                    continue;
                }
                b'\n' => {
                    self.line += 1;
                    if field.last() == Some(&b'\r') {
                        field.pop();
                    }
                    break true;
                }
                b'\r' if closed && b.get(self.i) == Some(&b'\n') => {}
                _ if closed => {
                    flag(&fields, "text after the closing quote (a quoted field ends at its quote)");
                    field.push(c);
                }
                b'"' => {
                    flag(
                        &fields,
                        "a quote inside an unquoted field (quote the whole field and write the quote twice: \"a\"\"b\")",
                    );
                    field.push(c);
                }
                _ => field.push(c),
            }
            at_start = false;
        };
        fields.push(field);
        Some(CsvRecord { line, fields, ended, malformed })
    }
}

/// Refuses a header that names a column twice: polars would rename the second `V1` to
/// `V1_duplicated_0` and the pipeline would silently read the first one only.
fn check_csv_header(path: &Path) -> Result<()> {
    const PREFIX: u64 = 1 << 20;
    let mut head = Vec::new();
    File::open(path).and_then(|f| f.take(PREFIX).read_to_end(&mut head)).map_err(|e| Error::io(path, e))?;
    let Some(header) = CsvRecords::new(&head).next() else { return Ok(()) };
    let mut names: &[Vec<u8>] = &header.fields;
    if !header.ended && head.len() as u64 == PREFIX {
        // The prefix may have cut the last name short.
        names = &names[..names.len() - 1];
    }
    let mut seen: BTreeMap<&[u8], usize> = BTreeMap::new();
    for (j, name) in names.iter().enumerate() {
        if let Some(i) = seen.insert(name, j) {
            return Err(Error::data(
                path,
                format!(
                    "header (line 1): columns {} and {} are both named {:?}; every column needs its own name",
                    i + 1,
                    j + 1,
                    String::from_utf8_lossy(name)
                ),
            ));
        }
    }
    Ok(())
}

/// polars' CSV errors name no row and suggest reader options a pipeline cannot set, so the
/// file is scanned for the record that broke it.
fn csv_error(path: &Path, e: polars::error::PolarsError) -> Error {
    if let Some(msg) = std::fs::read(path).ok().and_then(|bytes| locate_bad_record(&bytes)) {
        return Error::data(path, msg);
    }
    // Later lines suggest reader options (`truncate_ragged_lines`, `ignore_errors`).
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    Error::data(path, format!("cannot read as CSV: {first}"))
}

/// The first record polars cannot take: more fields than the header, or a cell that is not
/// UTF-8.
fn locate_bad_record(bytes: &[u8]) -> Option<String> {
    let mut records = CsvRecords::new(bytes);
    let header = records.next()?;
    let expected = header.fields.len();
    let column = |j: usize| match header.fields.get(j) {
        Some(name) => format!("column {:?}", String::from_utf8_lossy(name)),
        None => format!("field {}", j + 1),
    };
    if let Some((j, why)) = header.malformed {
        return Some(format!("header (line 1), {}: {why}", column(j)));
    }
    for (k, rec) in records.enumerate() {
        let at = format!("row {} (line {})", k + 1, rec.line);
        if let Some((j, why)) = rec.malformed {
            return Some(format!("{at}, {}: {why}", column(j)));
        }
        if rec.fields.len() > expected {
            return Some(format!("{at}: {} fields, but the header has {expected}", rec.fields.len()));
        }
        if let Some(j) = rec.fields.iter().position(|f| std::str::from_utf8(f).is_err()) {
            return Some(format!("{at}, {}: the cell is not valid UTF-8", column(j)));
        }
    }
    None
}

/// Parses one CSV cell; the message says what is wrong with it.
fn parse_cell(cell: Option<&str>) -> std::result::Result<f64, Invalid> {
    let text = cell.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err("empty cell".into());
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_nan() => Err(format!("{text:?} is not a number (NaN is not allowed)").into()),
        Ok(v) if v.is_infinite() => Err(format!("{text:?} is not a finite number").into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{text:?} is not a number").into()),
    }
}

/// Labels as classes 0..K-1; returns them and K.
fn read_labels(table: &Table, label: &str) -> Result<(Vec<u32>, usize)> {
    let values = table.numbers(label)?;
    let mut y = Vec::with_capacity(values.len());
    let mut classes = BTreeSet::new();
    for (i, &v) in values.iter().enumerate() {
        if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX - 1) {
            return Err(table.cell_error(
                label,
                i,
                format!("{v} is not a class label (labels must be integers 0, 1, ..., K-1)"),
            ));
        }
        let c = v as u32;
        classes.insert(c);
        y.push(c);
    }
    let list = || classes.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    if classes.len() < 2 {
        return Err(Error::data(
            &table.path,
            format!(
                "label column {label:?} has one class only ({}) in all {} rows; a classifier needs at least two",
                list(),
                y.len()
            ),
        ));
    }
    let k = *classes.last().expect("two classes") as usize + 1;
    if classes.len() != k {
        let gap = (0..k as u32).find(|c| !classes.contains(c)).expect("a gap");
        return Err(Error::data(
            &table.path,
            format!(
                "label column {label:?}: classes must be 0..K-1, but class {gap} has no rows (classes found: {})",
                list()
            ),
        ));
    }
    Ok((y, k))
}

/// One feature column in f32, checked against its kind and bounds; returns the values and the
/// resolved bounds.
fn read_feature(table: &Table, name: &str, r: &Resolved) -> Result<(Vec<f32>, f32, f32)> {
    let values = table.numbers(name)?;
    let mut out = Vec::with_capacity(values.len());
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for (i, &v) in values.iter().enumerate() {
        match r.kind {
            FeatureKind::Integer if v.fract() != 0.0 => {
                return Err(table.cell_error(name, i, format!("{v} is not an integer (kind = \"integer\")")));
            }
            FeatureKind::Binary | FeatureKind::Categorical if v != 0.0 && v != 1.0 => {
                return Err(table.cell_error(
                    name,
                    i,
                    format!("{v} is not 0 or 1 (kind = {:?})", kind_name(r.kind)),
                ));
            }
            _ => {}
        }
        let x = v as f32;
        if !x.is_finite() {
            return Err(table.cell_error(name, i, format!("{v} is too large for a 32-bit float")));
        }
        min = min.min(x);
        max = max.max(x);
        out.push(x);
    }
    let lower = r.lower.unwrap_or(min);
    let upper = r.upper.unwrap_or(max);
    if lower > upper {
        return Err(Error::data(
            &table.path,
            format!(
                "column {name:?}: lower = {lower} is above upper = {upper} (observed range {min} ..= {max})"
            ),
        ));
    }
    if min < lower || max > upper {
        let i = out.iter().position(|&x| x < lower || x > upper).expect("a value out of bounds");
        let x = out[i];
        let msg = if x < lower {
            format!("{x} is below lower = {lower}")
        } else {
            format!("{x} is above upper = {upper}")
        };
        return Err(table.cell_error(name, i, msg));
    }
    Ok((out, lower, upper))
}

const TRAIN: usize = 0;
const VALIDATION: usize = 1;
const TEST: usize = 2;
const SPLIT_NAMES: [&str; 3] = ["train", "validation", "test"];

/// Splits each class's (shuffled) rows; `parts[class][split]`.
fn split_classes(by_class: Vec<Vec<usize>>, split: &SplitConfig) -> Result<Vec<[Vec<usize>; 3]>, Invalid> {
    let mut parts: Vec<[Vec<usize>; 3]> = Vec::with_capacity(by_class.len());
    for rows in by_class {
        let n = rows.len();
        let mut n_test = (n as f64 * split.test).round() as usize;
        let mut n_val = (n as f64 * split.validation).round() as usize;
        while n > 0 && n_test + n_val >= n {
            if n_val >= n_test && n_val > 0 {
                n_val -= 1;
            } else {
                n_test -= 1;
            }
        }
        let test = rows[..n_test].to_vec();
        let val = rows[n_test..n_test + n_val].to_vec();
        let train = rows[n_test + n_val..].to_vec();
        parts.push([train, val, test]);
    }
    let total = |parts: &[[Vec<usize>; 3]], s: usize| parts.iter().map(|p| p[s].len()).sum::<usize>();
    for s in [VALIDATION, TEST] {
        if total(&parts, s) > 0 {
            continue;
        }
        // Borrow one row from the largest split that can spare one (train keeps every class).
        let mut best: Option<(usize, usize, usize)> = None; // (size, split, class)
        for d in [TRAIN, VALIDATION, TEST] {
            if d == s {
                continue;
            }
            let size = total(&parts, d);
            let min_keep = if d == TRAIN { 2 } else { 1 };
            let class = (0..parts.len())
                .filter(|&c| parts[c][d].len() >= min_keep)
                .max_by_key(|&c| parts[c][d].len());
            if d != TRAIN && size < 2 {
                continue;
            }
            if let Some(c) = class.filter(|_| best.is_none_or(|b| size > b.0)) {
                best = Some((size, d, c));
            }
        }
        let Some((_, d, c)) = best else {
            let n: usize = (0..3).map(|s| total(&parts, s)).sum();
            return Err(format!(
                "{n} rows are too few for a train, validation and test split with a train row of every class"
            )
            .into());
        };
        let row = parts[c][d].pop().expect("a row to move");
        parts[c][s].push(row);
    }
    Ok(parts)
}

/// Reads, checks and splits the table `cfg` describes. `base_dir` resolves a relative `path`;
/// `seed` makes the subsample and the split reproducible.
pub fn load(cfg: &TabularDataConfig, base_dir: &Path, seed: u64) -> Result<TabularData> {
    cfg.validate().map_err(|m| Error::Config(format!("[data] {m}")))?;
    let path = cfg.resolved_path(base_dir);
    let table = Table::read(&path)?;

    if !table.has_column(&cfg.label) {
        return Err(table.missing_column(&format!("label column {:?}", cfg.label)));
    }
    let names: Vec<String> = match &cfg.features {
        Some(f) => f.clone(),
        None => table.column_names().into_iter().filter(|c| c != &cfg.label).collect(),
    };
    if names.is_empty() {
        return Err(Error::data(
            &path,
            format!("no feature columns: the file has only the label {:?}", cfg.label),
        ));
    }
    for name in &names {
        if !table.has_column(name) {
            return Err(table.missing_column(&format!("feature column {name:?}")));
        }
    }
    for name in cfg.columns.keys() {
        if !table.has_column(name) {
            return Err(table.missing_column(&format!("column {name:?} (of [data.{}])", column_key(name))));
        }
    }

    let (y_all, n_classes) = read_labels(&table, &cfg.label)?;
    let n = y_all.len();
    let mut columns: Vec<Vec<f32>> = Vec::with_capacity(names.len());
    let mut features = Vec::with_capacity(names.len());
    let mut group_ids: Vec<String> = Vec::new();
    for name in &names {
        let r = cfg.resolve(name);
        let (values, lower, upper) = read_feature(&table, name, &r)?;
        let group = r.group.as_ref().map(|g| match group_ids.iter().position(|x| x == g) {
            Some(i) => i as u32,
            None => {
                group_ids.push(g.clone());
                (group_ids.len() - 1) as u32
            }
        });
        columns.push(values);
        features.push(FeatureInfo {
            name: name.clone(),
            kind: r.kind,
            mutable: r.mutable,
            lower,
            upper,
            cost: r.cost,
            group,
            mean: 0.0,
            std: 1.0,
        });
    }
    check_one_hot(&table, &features, &columns, &group_ids)?;

    // Stratified subsample and split.
    if let Some(limit) = cfg.limit.filter(|&l| l < n && l < n_classes) {
        return Err(Error::Config(format!(
            "[data] limit = {limit} is smaller than the number of classes ({n_classes})"
        )));
    }
    let mut by_class = stratify::by_class(&y_all, n_classes);
    stratify::subsample(&mut by_class, cfg.limit, &mut ChaCha8Rng::seed_from_u64(seed));
    let parts = split_classes(by_class, &cfg.split).map_err(|m| Error::data(&path, m))?;

    let width = names.len();
    let mut splits: [Split; 3] = Default::default();
    for (s, split) in splits.iter_mut().enumerate() {
        let mut rows: Vec<usize> = parts.iter().flat_map(|p| p[s].iter().copied()).collect();
        rows.sort_unstable();
        split.x = Vec::with_capacity(rows.len() * width);
        for &i in &rows {
            split.x.extend(columns.iter().map(|c| c[i]));
        }
        split.y = rows.iter().map(|&i| y_all[i]).collect();
        split.rows = rows.iter().map(|&i| i + 1).collect();
    }
    for (s, split) in splits.iter().enumerate() {
        if split.is_empty() {
            return Err(Error::data(&path, format!("the {} split is empty", SPLIT_NAMES[s])));
        }
    }

    // Standardisation from the train split only.
    let train = &splits[TRAIN];
    let m = train.len() as f64;
    for (j, f) in features.iter_mut().enumerate() {
        let mean = (0..train.len()).map(|i| f64::from(train.x[i * width + j])).sum::<f64>() / m;
        let var =
            (0..train.len()).map(|i| (f64::from(train.x[i * width + j]) - mean).powi(2)).sum::<f64>() / m;
        let std = var.sqrt();
        f.mean = mean as f32;
        f.std = if std > 1e-12 && (std as f32) > 0.0 { std as f32 } else { 1.0 };
    }

    let [train, validation, test] = splits;
    Ok(TabularData { path, features, n_classes, train, validation, test })
}

/// Every row has exactly one 1 among the columns of each one-hot group.
fn check_one_hot(
    table: &Table,
    features: &[FeatureInfo],
    columns: &[Vec<f32>],
    groups: &[String],
) -> Result<()> {
    let n = columns.first().map_or(0, Vec::len);
    for (g, name) in groups.iter().enumerate() {
        let members: Vec<usize> =
            (0..features.len()).filter(|&j| features[j].group == Some(g as u32)).collect();
        let ones = |i: usize| members.iter().filter(|&&j| columns[j][i] == 1.0).count();
        if let Some(i) = (0..n).find(|&i| ones(i) != 1) {
            let cells: Vec<String> =
                members.iter().map(|&j| format!("{} = {}", features[j].name, columns[j][i])).collect();
            return Err(Error::data(
                &table.path,
                format!(
                    "one-hot group {name:?}, {}: expected exactly one 1 among its columns, found {} ({})",
                    table.at(i),
                    ones(i),
                    cells.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{Column, ParquetWriter};
    use std::fmt::Write as _;
    use std::time::Instant;

    fn ulb_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    const ULB: &str = "data/creditcard-ulb/creditcard_ulb_sample.csv";

    fn cfg(path: impl Into<PathBuf>, label: &str) -> TabularDataConfig {
        TabularDataConfig {
            path: path.into(),
            label: label.into(),
            features: None,
            defaults: FeatureConfig::default(),
            columns: BTreeMap::new(),
            split: SplitConfig::default(),
            limit: None,
        }
    }

    fn parse_toml(src: &str) -> std::result::Result<TabularDataConfig, Invalid> {
        #[derive(Deserialize)]
        struct W {
            data: TabularDataConfig,
        }
        toml::from_str::<W>(src).map(|w| w.data).map_err(|e| Invalid::new(e.to_string()))
    }

    /// Writes `content` to `name` in a fresh temp dir; returns (dir guard, path).
    fn write(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    /// A synthetic table: `n` rows, class 1 every `every`th row, columns a (0..n), b (constant
    /// 5), c (binary), label y.
    fn synthetic(n: usize, every: usize) -> String {
        let mut s = String::from("a,b,c,y\n");
        for i in 0..n {
            let y = usize::from(i % every == 0);
            let _ = writeln!(s, "{},5,{},{}", i as f32 * 0.5 - 3.0, i % 2, y);
        }
        s
    }

    fn load_err(content: &str, c: impl FnOnce(PathBuf) -> TabularDataConfig) -> String {
        let (_dir, path) = write("bad.csv", content);
        let e = load(&c(path.clone()), Path::new("/"), 1).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "error must name the file: {e}");
        e
    }

    #[test]
    fn loads_the_real_ulb_sample_stratified() {
        let start = Instant::now();
        let data = load(&cfg(ULB, "Class"), &ulb_dir(), 7).unwrap();
        eprintln!("ULB load: {:?}", start.elapsed());
        assert_eq!(data.features.len(), 30);
        assert_eq!(data.width(), 30);
        assert_eq!(data.features[0].name, "Time");
        assert_eq!(data.features[29].name, "Amount");
        assert_eq!(data.n_classes, 2);
        assert!(data.path.ends_with(ULB));
        let (tr, va, te) = (&data.train, &data.validation, &data.test);
        assert_eq!(tr.len() + va.len() + te.len(), 6645);
        let totals = [6645 - 473, 473];
        for (split, frac) in [(tr, 0.60), (va, 0.15), (te, 0.25)] {
            let counts = split.class_counts(2);
            for c in 0..2 {
                let expected = totals[c] as f64 * frac;
                assert!(
                    (counts[c] as f64 - expected).abs() <= 1.0,
                    "class {c}: {} rows, expected {expected}",
                    counts[c]
                );
            }
            assert_eq!(split.x.len(), split.len() * 30);
            assert!(split.rows.windows(2).all(|w| w[0] < w[1]), "rows in file order");
        }
        // Every file row lands in exactly one split.
        let mut all: Vec<usize> = tr.rows.iter().chain(&va.rows).chain(&te.rows).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (1..=6645).collect::<Vec<_>>());
        // Row 1 of the file: Time 4.0, V1 1.22965763450793, whichever split has it.
        let (split, i) = [tr, va, te]
            .into_iter()
            .find_map(|s| s.rows.iter().position(|&r| r == 1).map(|i| (s, i)))
            .unwrap();
        assert_eq!(split.row(i)[0], 4.0);
        assert!((split.row(i)[1] - 1.229_657_6).abs() < 1e-6);
        let time = &data.features[0];
        assert_eq!((time.lower, time.upper), (4.0, 172_756.0));
        assert!(
            data.features.iter().all(|f| f.kind == FeatureKind::Continuous && f.mutable && f.cost == 1.0)
        );
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let (_dir, path) = write("t.csv", &synthetic(300, 5));
        let c = cfg(&path, "y");
        let a = load(&c, Path::new("/"), 11).unwrap();
        let b = load(&c, Path::new("/"), 11).unwrap();
        let other = load(&c, Path::new("/"), 12).unwrap();
        assert_eq!(a.train, b.train);
        assert_eq!(a.validation, b.validation);
        assert_eq!(a.test, b.test);
        assert_ne!(a.test.rows, other.test.rows);
        assert_eq!(a.test.len(), other.test.len());
    }

    #[test]
    fn standardisation_is_fitted_on_train_only() {
        let (_dir, path) = write("t.csv", &synthetic(200, 4));
        let data = load(&cfg(&path, "y"), Path::new("/"), 3).unwrap();
        let tr = &data.train;
        let col: Vec<f64> = (0..tr.len()).map(|i| f64::from(tr.row(i)[0])).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
        let a = &data.features[0];
        assert!((f64::from(a.mean) - mean).abs() < 1e-4, "{} vs train mean {mean}", a.mean);
        assert!((f64::from(a.std) - std).abs() < 1e-4);
        // The whole-file mean of a is (0..200)*0.5-3 → 46.75; train's differs.
        assert!((a.mean - 46.75).abs() > 1e-3);
        // Constant column: std 1.
        assert_eq!((data.features[1].mean, data.features[1].std), (5.0, 1.0));
    }

    #[test]
    fn bounds_are_observed_over_the_whole_file() {
        let (_dir, path) = write("t.csv", &synthetic(200, 4));
        for seed in 0..3 {
            let data = load(&cfg(&path, "y"), Path::new("/"), seed).unwrap();
            let a = &data.features[0];
            assert_eq!((a.lower, a.upper), (-3.0, 96.5), "whole file, whatever the split");
            assert_eq!((data.features[1].lower, data.features[1].upper), (5.0, 5.0));
        }
        // Declared binary → [0, 1].
        let mut c = cfg(&path, "y");
        c.columns.insert("c".into(), FeatureConfig { kind: Some(FeatureKind::Binary), ..Default::default() });
        let data = load(&c, Path::new("/"), 0).unwrap();
        assert_eq!((data.features[2].lower, data.features[2].upper), (0.0, 1.0));
    }

    #[test]
    fn toml_overrides_are_applied() {
        let c = parse_toml(
            r#"
[data]
path = "t.csv"
label = "y"
features = ["c", "a", "b"]
split = { validation = 0.2, test = 0.3 }
defaults = { mutable = true, cost = 2.0, upper = 1000.0 }
[data.columns.a]
kind = "integer"
lower = -10
mutable = false
[data.columns.c]
kind = "binary"
cost = 0.5
"#,
        )
        .unwrap();
        assert_eq!(c.split, SplitConfig { validation: 0.2, test: 0.3 });
        let mut body = String::from("a,b,c,y\n");
        for i in 0..40 {
            let _ = writeln!(body, "{}.0,{},{},{}", i, i as f32 / 4.0, i % 2, i % 3 % 2);
        }
        let (dir, _) = write("t.csv", &body);
        let data = load(&c, dir.path(), 0).unwrap();
        let names: Vec<&str> = data.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
        let [fc, fa, fb] = &data.features[..] else { panic!() };
        assert_eq!(
            (fc.kind, fc.mutable, fc.cost, fc.lower, fc.upper),
            (FeatureKind::Binary, true, 0.5, 0.0, 1.0)
        );
        assert_eq!(
            (fa.kind, fa.mutable, fa.cost, fa.lower, fa.upper),
            (FeatureKind::Integer, false, 2.0, -10.0, 1000.0)
        );
        assert_eq!(
            (fb.kind, fb.mutable, fb.cost, fb.lower, fb.upper),
            (FeatureKind::Continuous, true, 2.0, 0.0, 1000.0)
        );
        // Columns in `features` order: c = (row - 1) % 2, a = row - 1.
        let (row, file_row) = (data.train.row(0), data.train.rows[0]);
        assert_eq!((row[0], row[1]), (((file_row - 1) % 2) as f32, (file_row - 1) as f32));

        // Unknown keys are errors.
        let e = parse_toml("[data]\npath = \"t.csv\"\nlabel = \"y\"\nsplit = { valid = 0.2 }\n").unwrap_err();
        assert!(e.contains("valid"), "{e}");
        let e =
            parse_toml("[data]\npath = \"t.csv\"\nlabel = \"y\"\n[data.columns.a]\ncots = 1\n").unwrap_err();
        assert!(e.contains("cots"), "{e}");
    }

    #[test]
    fn one_hot_groups_get_ids_and_are_checked() {
        let src = r#"
[data]
path = "t.csv"
label = "y"
[data.columns.red]
kind = "categorical"
group = "colour"
[data.columns.blue]
kind = "categorical"
group = "colour"
"#;
        let c = parse_toml(src).unwrap();
        let mut body = String::from("x,red,blue,y\n");
        for i in 0..20 {
            let _ = writeln!(body, "{i},{},{},{}", i % 2, 1 - i % 2, i % 2);
        }
        let (dir, _) = write("t.csv", &body);
        let data = load(&c, dir.path(), 0).unwrap();
        let groups: Vec<Option<u32>> = data.features.iter().map(|f| f.group).collect();
        assert_eq!(groups, [None, Some(0), Some(0)]);
        assert_eq!(data.features[1].kind, FeatureKind::Categorical);

        // Row 4 has both set.
        let body = body.replacen("3,1,0,1", "3,1,1,1", 1);
        let (dir, path) = write("t.csv", &body);
        let e = load(&c, dir.path(), 0).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(
            e.contains("\"colour\"") && e.contains("row 4 (line 5)") && e.contains("red = 1, blue = 1"),
            "{e}"
        );
    }

    #[test]
    fn limit_keeps_a_stratified_seeded_subsample() {
        let (_dir, path) = write("t.csv", &synthetic(1000, 10));
        let mut c = cfg(&path, "y");
        c.limit = Some(100);
        let a = load(&c, Path::new("/"), 5).unwrap();
        let b = load(&c, Path::new("/"), 5).unwrap();
        assert_eq!(a.train, b.train);
        let counts: Vec<usize> = (0..2)
            .map(|k| a.train.class_counts(2)[k] + a.validation.class_counts(2)[k] + a.test.class_counts(2)[k])
            .collect();
        assert_eq!(counts, [90, 10]);
        assert_eq!(a.test.class_counts(2), [23, 3]); // round(90 × 0.25), round(10 × 0.25)
        // Bounds stay those of the whole file.
        assert_eq!((a.features[0].lower, a.features[0].upper), (-3.0, 496.5));
        // A subsample, not the first rows.
        assert!(a.train.rows.iter().any(|&r| r > 500));
        // Tiny class: still represented.
        let (_dir2, path2) = write("t.csv", &synthetic(1000, 200));
        let mut c2 = cfg(&path2, "y");
        c2.limit = Some(20);
        let d = load(&c2, Path::new("/"), 5).unwrap();
        let ones: usize = [&d.train, &d.validation, &d.test].iter().map(|s| s.class_counts(2)[1]).sum();
        assert!(ones >= 1);
        assert_eq!(d.train.len() + d.validation.len() + d.test.len(), 20);
    }

    #[test]
    fn parquet_round_trip_matches_csv() {
        let (dir, csv) = write("t.csv", &synthetic(120, 3));
        let n = 120;
        let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
        let b: Vec<i64> = vec![5; n];
        let c: Vec<bool> = (0..n).map(|i| i % 2 == 1).collect();
        let y: Vec<i32> = (0..n).map(|i| i32::from(i % 3 == 0)).collect();
        let mut df = DataFrame::new(
            n,
            vec![
                Column::new("a".into(), a),
                Column::new("b".into(), b),
                Column::new("c".into(), c),
                Column::new("y".into(), y.clone()),
            ],
        )
        .unwrap();
        let pq = dir.path().join("t.parquet");
        ParquetWriter::new(File::create(&pq).unwrap()).finish(&mut df).unwrap();
        let from_csv = load(&cfg(&csv, "y"), Path::new("/"), 9).unwrap();
        let from_pq = load(&cfg("t.parquet", "y"), dir.path(), 9).unwrap();
        assert_eq!(from_pq.features, from_csv.features);
        assert_eq!(from_pq.train, from_csv.train);
        assert_eq!(from_pq.validation, from_csv.validation);
        assert_eq!(from_pq.test, from_csv.test);

        // A null in a Parquet column names the column and row.
        let a2: Vec<Option<f64>> = (0..n).map(|i| if i == 16 { None } else { Some(i as f64) }).collect();
        let mut df =
            DataFrame::new(n, vec![Column::new("a".into(), a2), Column::new("y".into(), y.clone())]).unwrap();
        ParquetWriter::new(File::create(&pq).unwrap()).finish(&mut df).unwrap();
        let e = load(&cfg(&pq, "y"), Path::new("/"), 9).unwrap_err().to_string();
        assert!(e.contains("t.parquet") && e.contains("column \"a\", row 17") && e.contains("null"), "{e}");
        // NaN too.
        let a3: Vec<f64> = (0..n).map(|i| if i == 4 { f64::NAN } else { i as f64 }).collect();
        let mut df =
            DataFrame::new(n, vec![Column::new("a".into(), a3), Column::new("y".into(), y)]).unwrap();
        ParquetWriter::new(File::create(&pq).unwrap()).finish(&mut df).unwrap();
        let e = load(&cfg(&pq, "y"), Path::new("/"), 9).unwrap_err().to_string();
        assert!(e.contains("column \"a\", row 5") && e.contains("NaN"), "{e}");
    }

    #[test]
    fn a_string_in_a_numeric_column_names_column_row_and_line() {
        let mut body = synthetic(30, 3);
        body = body.replacen("\n5,5,0,", "\nabc,5,0,", 1); // data row 17: a = 16*0.5-3 = 5
        let e = load_err(&body, |p| cfg(p, "y"));
        assert!(e.contains("column \"a\", row 17 (line 18): \"abc\" is not a number"), "{e}");
    }

    #[test]
    fn empty_nan_and_inf_cells_are_errors() {
        for (bad, want) in
            [("", "empty cell"), ("NaN", "NaN"), ("inf", "not a finite number"), ("-inf", "finite")]
        {
            let body = synthetic(30, 3).replacen("\n-2,5,", &format!("\n-2,{bad},"), 1); // data row 3: a = -2
            let e = load_err(&body, |p| cfg(p, "y"));
            assert!(e.contains("column \"b\", row 3 (line 4)") && e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn empty_files_are_errors() {
        let e = load_err("", |p| cfg(p, "y"));
        assert!(e.contains("empty"), "{e}");
        let e = load_err("a,b,y\n", |p| cfg(p, "y"));
        assert!(e.contains("no data rows") && e.contains("a, b, y"), "{e}");
    }

    #[test]
    fn rows_polars_cannot_split_are_named_without_its_reader_options() {
        let e = load_err("a,y\n1,0\n\n2,1,5\n3,0\n4,1\n", |p| cfg(p, "y"));
        assert!(
            e.ends_with(": row 3 (line 4): 3 fields, but the header has 2"),
            "a blank line is a row: {e}"
        );
        let e = load_err("a,y\n1,0\n2,1\r\n3,0\n4,1,\n", |p| cfg(p, "y"));
        assert!(e.ends_with(": row 4 (line 5): 3 fields, but the header has 2"), "{e}");
        let e = load_err("a,y\n1,0\na\"b,1\n3,0\n4,1\n", |p| cfg(p, "y"));
        assert!(e.contains(": row 2 (line 3), column \"a\": a quote inside an unquoted field"), "{e}");
        let e = load_err("a,y\n1,0\n\"x\"y,1\n3,0\n4,1\n", |p| cfg(p, "y"));
        assert!(e.contains(": row 2 (line 3), column \"a\": text after the closing quote"), "{e}");
        let e = load_err("a,y\n1,0\n2,\"1\n3,0\n4,1\n", |p| cfg(p, "y"));
        assert!(e.contains(": row 2 (line 3), column \"y\": a quoted field is never closed"), "{e}");
        // Quoted fields and CRLF line ends are fine.
        let mut body = String::from("\"a\",\"y\"\r\n");
        for r in 0..12 {
            body += &format!("\"{r}\",\"{}\"\r\n", r % 2);
        }
        let (_dir, path) = write("t.csv", &body);
        assert_eq!(load(&cfg(&path, "y"), Path::new("/"), 1).unwrap().n_classes, 2);
    }

    #[test]
    fn a_duplicate_header_names_both_columns() {
        let e = load_err("a,b,a,y\n1,2,3,0\n", |p| cfg(p, "y"));
        assert!(e.contains("header (line 1): columns 1 and 3 are both named \"a\""), "{e}");
        // Polars would have renamed the second one.
        let e = load_err("a,a_duplicated_0,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n", |p| cfg(p, "label"));
        assert!(e.contains("a, a_duplicated_0, y"), "distinct names are left alone: {e}");
    }

    #[test]
    fn a_single_class_label_is_an_error() {
        let e = load_err("a,y\n1,0\n2,0\n3,0\n4,0\n", |p| cfg(p, "y"));
        assert!(e.contains("label column \"y\" has one class only"), "{e}");
        let e = load_err("a,y\n1,0\n2,2\n3,0\n4,2\n", |p| cfg(p, "y"));
        assert!(e.contains("class 1 has no rows"), "{e}");
    }

    #[test]
    fn bad_labels_name_the_row() {
        let e = load_err("a,y\n1,0\n2,1\n3,1.5\n4,0\n", |p| cfg(p, "y"));
        assert!(e.contains("column \"y\", row 3 (line 4): 1.5 is not a class label"), "{e}");
        let e = load_err("a,y\n1,0\n2,1\n3,0\n4,-1\n", |p| cfg(p, "y"));
        assert!(e.contains("column \"y\", row 4 (line 5): -1 is not a class label"), "{e}");
        let e = load_err("a,y\n1,0\n2,yes\n3,0\n4,1\n", |p| cfg(p, "y"));
        assert!(e.contains("column \"y\", row 2 (line 3): \"yes\" is not a number"), "{e}");
    }

    #[test]
    fn a_missing_column_lists_the_columns() {
        let e = load_err(&synthetic(10, 2), |p| cfg(p, "label"));
        assert!(e.contains("label column \"label\" not found") && e.contains("a, b, c, y"), "{e}");
        let e = load_err(&synthetic(10, 2), |p| TabularDataConfig {
            features: Some(vec!["a".into(), "zz".into()]),
            ..cfg(p, "y")
        });
        assert!(e.contains("feature column \"zz\" not found") && e.contains("a, b, c, y"), "{e}");
        let e = load_err(&synthetic(10, 2), |p| {
            let mut c = cfg(p, "y");
            c.columns.insert("Amount".into(), FeatureConfig::default());
            c
        });
        assert!(
            e.contains("column \"Amount\" (of [data.columns.Amount]) not found") && e.contains("a, b, c, y"),
            "{e}"
        );
    }

    #[test]
    fn kind_and_bound_violations_name_the_cell() {
        let with = |col: &str, f: FeatureConfig| {
            let col = col.to_string();
            move |p: PathBuf| {
                let mut c = cfg(p, "y");
                c.columns.insert(col, f);
                c
            }
        };
        let body = synthetic(30, 3);
        let int = FeatureConfig { kind: Some(FeatureKind::Integer), ..Default::default() };
        let e = load_err(&body, with("a", int));
        assert!(e.contains("column \"a\", row 2 (line 3): -2.5 is not an integer"), "{e}");
        let bin = FeatureConfig { kind: Some(FeatureKind::Binary), ..Default::default() };
        let e = load_err(&body, with("b", bin));
        assert!(e.contains("column \"b\", row 1 (line 2): 5 is not 0 or 1"), "{e}");
        let low = FeatureConfig { lower: Some(0.0), ..Default::default() };
        let e = load_err(&body, with("a", low));
        assert!(e.contains("column \"a\", row 1 (line 2): -3 is below lower = 0"), "{e}");
    }

    #[test]
    fn an_unreadable_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.csv");
        let e = load(&cfg(&missing, "y"), Path::new("/"), 0).unwrap_err().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        let sub = dir.path().join("folder.csv");
        std::fs::create_dir(&sub).unwrap();
        let e = load(&cfg(&sub, "y"), Path::new("/"), 0).unwrap_err().to_string();
        assert!(e.contains(&sub.display().to_string()) && e.contains("not a regular file (a folder)"), "{e}");
        // Garbage that is not Parquet.
        let (_d, path) = write("t.parquet", "not parquet at all");
        let e = load(&cfg(&path, "y"), Path::new("/"), 0).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("Parquet"), "{e}");
    }

    #[test]
    fn validate_names_the_key() {
        let ok = cfg("t.csv", "y");
        assert_eq!(ok.validate(), Ok(()));
        let check = |f: &dyn Fn(&mut TabularDataConfig), want: &str| {
            let mut c = ok.clone();
            f(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        };
        check(&|c| c.split.test = 1.5, "split.test must be in (0, 1)");
        check(&|c| c.split.validation = 0.0, "split.validation must be in (0, 1)");
        check(
            &|c| c.split = SplitConfig { validation: 0.5, test: 0.5 },
            "split.validation + split.test must be < 1",
        );
        check(&|c| c.limit = Some(3), "limit must be at least 4");
        check(&|c| c.path = "t.xlsx".into(), "expected a .csv or .parquet");
        check(&|c| c.label = String::new(), "label");
        check(&|c| c.features = Some(vec![]), "features");
        check(&|c| c.features = Some(vec!["a".into(), "a".into()]), "listed twice");
        check(&|c| c.features = Some(vec!["y".into()]), "label column");
        check(&|c| c.defaults.cost = Some(-1.0), "defaults.cost must be a finite number >= 0");
        check(
            &|c| {
                c.columns.insert(
                    "a".into(),
                    FeatureConfig { lower: Some(2.0), upper: Some(1.0), ..Default::default() },
                );
            },
            "columns.a.lower (2) must be <= columns.a.upper (1)",
        );
        check(
            &|c| {
                c.defaults.upper = Some(1.0);
                c.columns.insert("a".into(), FeatureConfig { lower: Some(2.0), ..Default::default() });
            },
            "columns.a.lower (2) must be <= defaults.upper (1)",
        );
        check(
            &|c| {
                c.columns.insert(
                    "a".into(),
                    FeatureConfig { kind: Some(FeatureKind::Categorical), ..Default::default() },
                );
            },
            "columns.a.group is required",
        );
        check(
            &|c| {
                let f = FeatureConfig {
                    kind: Some(FeatureKind::Categorical),
                    group: Some("g".into()),
                    ..Default::default()
                };
                c.columns.insert("a".into(), f);
            },
            "at least two columns",
        );
        check(
            &|c| {
                c.columns.insert("a".into(), FeatureConfig { group: Some("g".into()), ..Default::default() });
            },
            "only for categorical columns",
        );
        check(
            &|c| {
                let f =
                    FeatureConfig { kind: Some(FeatureKind::Binary), upper: Some(3.0), ..Default::default() };
                c.columns.insert("a".into(), f);
            },
            "do not apply to a binary column",
        );
        check(&|c| drop(c.columns.insert("y".into(), FeatureConfig::default())), "is the label column");
        check(
            &|c| {
                c.features = Some(vec!["a".into()]);
                c.columns.insert("b".into(), FeatureConfig::default());
            },
            "columns.b: \"b\" is not listed in `features`",
        );
        check(&|c| c.defaults.group = Some("g".into()), "defaults.group is not allowed");
        // load reports validation failures as config errors.
        let mut bad = ok.clone();
        bad.split.test = 2.0;
        let e = load(&bad, Path::new("/"), 0).unwrap_err();
        assert!(matches!(e, Error::Config(ref m) if m.contains("split.test")), "{e}");
    }

    #[test]
    fn tiny_tables_still_get_three_nonempty_splits() {
        let (_dir, path) = write("t.csv", "a,y\n1,0\n2,1\n3,0\n4,1\n");
        let data = load(&cfg(&path, "y"), Path::new("/"), 0).unwrap();
        assert!(!data.validation.is_empty() && !data.test.is_empty());
        assert_eq!(data.train.class_counts(2), [1, 1]);
    }
}
