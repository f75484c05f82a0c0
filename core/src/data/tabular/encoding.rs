//! From source columns to features: reading each column by its kind, fitting its encoding
//! on the train split (vocabularies, imputation values, the datetime reference), and
//! writing the features. The fitted [`Encoding`] is what `encoding.json` holds, and
//! [`Encoding::encode_row`] encodes a new row of text cells exactly as the training rows were.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tempered_plugin::{Direction, FeatureKind};

use super::FeatureInfo;
use super::config::{ColumnKind, MissingPolicy, Resolved, kind_name};
use super::datetime;
use super::reading::{Table, parse_cell};
use crate::{Error, Result};

/// Format version of `encoding.json`.
pub const ENCODING_VERSION: u32 = 1;

/// How a table's rows become feature vectors, fitted on its train split. Written to the
/// run folder as `encoding.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    pub version: u32,
    pub label: String,
    /// Class `i` is the label value `classes[i]`.
    pub classes: Vec<String>,
    /// The source columns, in feature order.
    pub columns: Vec<ColumnEncoding>,
    /// The features the columns expand into, in order, with their bounds, costs and the
    /// standardisation fitted on the train split.
    pub features: Vec<FeatureInfo>,
}

/// How one source column becomes one or more features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub enum ColumnEncoding {
    /// One numeric feature (continuous, integer, 0/1 binary, or a member of a numeric
    /// one-hot group). With `impute`, an empty cell takes that value and a `column:missing`
    /// feature follows (1 where the cell was empty).
    Number { column: String, kind: FeatureKind, impute: Option<f32> },
    /// Two strings → 0 and 1 (`ignore_case`: compared in lower case). `impute` as above.
    Binary { column: String, values: [String; 2], ignore_case: bool, impute: Option<f32> },
    /// One-hot: a `column=value` feature per `vocabulary` entry (descending train
    /// frequency, ties by value), then `column:other` when `merged` (the rarest train values,
    /// over `max_categories`) is not empty, `column:missing` when `missing`, and
    /// `column:unseen` for any other value.
    OneHot { column: String, vocabulary: Vec<String>, merged: Vec<String>, missing: bool },
    /// `column:hour` (0–23), `column:weekday` (0 = Monday), `column:day` (days since
    /// `reference`, `YYYY-MM-DD`).
    Datetime { column: String, reference: String },
}

/// The pairs a binary string column may hold without `values`, (0, 1), any case.
const PAIRS: [[&str; 2]; 4] = [["no", "yes"], ["false", "true"], ["n", "y"], ["0", "1"]];

/// A source column's cells in one chunk of rows, as read, before anything is fitted.
pub(super) enum Parsed {
    /// Numbers checked against kind and the bounds given; `None`: an empty cell to impute.
    Number(Vec<Option<f32>>),
    /// A two-valued string column, already 0 / 1.
    Binary {
        values: Vec<Option<f32>>,
        map: [String; 2],
        ignore_case: bool,
    },
    Text(Vec<Option<String>>),
    /// (day number, hour) per row.
    Datetime(Vec<(i64, u32)>),
}

/// What a column's cells turned out to hold, fixed by the first rows that hold anything, so
/// that every chunk of a table is read the same way.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    Number,
    Binary { map: [String; 2], ignore_case: bool },
    Text,
    Datetime,
}

impl Shape {
    fn describe(&self) -> String {
        match self {
            Self::Number => "numbers".to_owned(),
            Self::Binary { map, .. } => format!("the two values {:?} / {:?}", map[0], map[1]),
            Self::Text => "text".to_owned(),
            Self::Datetime => "dates".to_owned(),
        }
    }
}

impl Parsed {
    fn shape(&self) -> Option<Shape> {
        match self {
            // A chunk of empty cells says nothing about the column.
            Self::Number(v) | Self::Binary { values: v, .. } if v.iter().all(Option::is_none) => None,
            Self::Number(_) => Some(Shape::Number),
            Self::Binary { map, ignore_case, .. } => {
                Some(Shape::Binary { map: map.clone(), ignore_case: *ignore_case })
            }
            Self::Text(_) => Some(Shape::Text),
            Self::Datetime(_) => Some(Shape::Datetime),
        }
    }
}

/// Reads column `name` of one chunk as its kind asks; `shape`: what the rows before it held.
pub(super) fn read_column(table: &Table, name: &str, r: &Resolved, shape: Option<&Shape>) -> Result<Parsed> {
    let impute = r.missing == MissingPolicy::Impute;
    match r.kind {
        ColumnKind::Continuous | ColumnKind::Integer => read_numbers(table, name, r),
        ColumnKind::Categorical if r.group.is_some() => read_numbers(table, name, r),
        ColumnKind::Categorical => {
            let cells = table.texts(name)?;
            if !impute && let Some(i) = cells.iter().position(Option::is_none) {
                return Err(table.cell_error(name, i, empty_cell_message()));
            }
            Ok(Parsed::Text(cells))
        }
        ColumnKind::Binary => read_binary(table, name, r, shape),
        ColumnKind::Datetime => {
            let cells = table.texts(name)?;
            let mut out = Vec::with_capacity(cells.len());
            for (i, cell) in cells.iter().enumerate() {
                let Some(text) = cell else {
                    return Err(table.cell_error(
                        name,
                        i,
                        "empty cell (a datetime column refuses missing values)",
                    ));
                };
                out.push(datetime::parse(text).map_err(|m| table.cell_error(name, i, m))?);
            }
            Ok(Parsed::Datetime(out))
        }
    }
}

fn empty_cell_message() -> &'static str {
    "empty cell (set `missing = \"impute\"` for this column to accept empty cells)"
}

/// A numeric column in f32, checked against its kind and the bounds given (bounds not given
/// are observed over every row, by [`ColumnStats`]).
fn read_numbers(table: &Table, name: &str, r: &Resolved) -> Result<Parsed> {
    let values = table.numbers_or_missing(name, r.missing == MissingPolicy::Impute).map_err(|e| match e {
        Error::Data { path, msg } if msg.ends_with("is not a number") => Error::Data {
            path,
            msg: format!(
                "{msg} (a column of text needs `kind = \"categorical\"`, or `kind = \"binary\"` for two values, in [data.{}])",
                super::config::column_key(name)
            ),
        },
        e => e,
    })?;
    let zero_one = matches!(r.kind, ColumnKind::Binary | ColumnKind::Categorical);
    let (lower, upper) = if zero_one { (None, None) } else { (r.lower, r.upper) };
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let Some(v) = *v else {
            out.push(None);
            continue;
        };
        match r.kind {
            ColumnKind::Integer if v.fract() != 0.0 => {
                return Err(table.cell_error(name, i, format!("{v} is not an integer (kind = \"integer\")")));
            }
            ColumnKind::Binary | ColumnKind::Categorical if v != 0.0 && v != 1.0 => {
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
        if let Some(lower) = lower.filter(|&l| x < l) {
            return Err(table.cell_error(name, i, format!("{x} is below lower = {lower}")));
        }
        if let Some(upper) = upper.filter(|&u| x > u) {
            return Err(table.cell_error(name, i, format!("{x} is above upper = {upper}")));
        }
        out.push(Some(x));
    }
    Ok(Parsed::Number(out))
}

/// A binary column: numbers 0 / 1 as they are; two strings by `values`, or one of [`PAIRS`].
fn read_binary(table: &Table, name: &str, r: &Resolved, shape: Option<&Shape>) -> Result<Parsed> {
    let impute = r.missing == MissingPolicy::Impute;
    let cells = table.texts(name)?;
    let numeric = cells.iter().flatten().all(|c| parse_cell(Some(c)).is_ok());
    match shape {
        Some(Shape::Number) => return read_numbers(table, name, r),
        None if r.values.is_none() && numeric => return read_numbers(table, name, r),
        _ => {}
    }
    let found = || {
        let mut distinct: Vec<&str> = cells.iter().flatten().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let more = distinct.len().saturating_sub(8);
        let mut list: Vec<String> = distinct.iter().take(8).map(|v| format!("{v:?}")).collect();
        if more > 0 {
            list.push(format!("and {more} more"));
        }
        list.join(", ")
    };
    let (map, ignore_case) = match (&r.values, shape) {
        (Some(v), _) => ([v[0].trim().to_owned(), v[1].trim().to_owned()], false),
        (None, Some(Shape::Binary { map, ignore_case })) => (map.clone(), *ignore_case),
        _ => {
            let first = cells.iter().position(Option::is_some);
            let pair = first.and_then(|i| {
                let v = cells[i].as_deref().expect("a value").to_lowercase();
                PAIRS.iter().find(|p| p.contains(&v.as_str()))
            });
            match (first, pair) {
                (_, Some(p)) => ([p[0].to_owned(), p[1].to_owned()], true),
                (Some(i), None) => {
                    return Err(table.cell_error(name, i, format!(
                        "{:?} is not a binary value: without `values`, a binary column holds 0/1, no/yes, false/true or n/y (any case); values found: {}",
                        cells[i].as_deref().unwrap_or_default(),
                        found()
                    )));
                }
                // Empty cells only: what the column holds is for other rows to say.
                (None, None) => return Ok(Parsed::Number(vec![None; cells.len()])),
            }
        }
    };
    let mut out = Vec::with_capacity(cells.len());
    for (i, cell) in cells.iter().enumerate() {
        let Some(text) = cell else {
            if !impute {
                return Err(table.cell_error(name, i, empty_cell_message()));
            }
            out.push(None);
            continue;
        };
        match binary_value(text, &map, ignore_case) {
            Some(v) => out.push(Some(v)),
            None => {
                let why = if ignore_case {
                    format!("this column holds {}/{} (any case)", map[0], map[1])
                } else {
                    format!("`values` = [{:?}, {:?}]", map[0], map[1])
                };
                return Err(table.cell_error(
                    name,
                    i,
                    format!(
                        "{text:?} is not one of the two binary values ({why}); values found: {}",
                        found()
                    ),
                ));
            }
        }
    }
    Ok(Parsed::Binary { values: out, map, ignore_case })
}

fn binary_value(text: &str, map: &[String; 2], ignore_case: bool) -> Option<f32> {
    let text = text.trim();
    let is = |m: &String| if ignore_case { m.eq_ignore_ascii_case(text) } else { m == text };
    if is(&map[0]) {
        Some(0.0)
    } else if is(&map[1]) {
        Some(1.0)
    } else {
        None
    }
}

/// The vocabulary of a categorical column on the train rows: values by descending frequency,
/// ties by value; past `max`, the rest (the rarest) are merged.
#[cfg(test)]
fn vocabulary<'a>(values: impl Iterator<Item = &'a str>, max: Option<usize>) -> (Vec<String>, Vec<String>) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for v in values {
        *counts.entry(v.to_owned()).or_default() += 1;
    }
    vocabulary_of(counts, max)
}

/// [`vocabulary`] from each value's count.
fn vocabulary_of(counts: HashMap<String, usize>, max: Option<usize>) -> (Vec<String>, Vec<String>) {
    let mut vocab: Vec<(String, usize)> = counts.into_iter().collect();
    vocab.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut vocab: Vec<String> = vocab.into_iter().map(|(v, _)| v).collect();
    let merged = match max {
        Some(m) if vocab.len() > m => vocab.split_off(m),
        _ => Vec::new(),
    };
    (vocab, merged)
}

/// The median of `values` (the lower middle one for an integer or binary column, so the
/// imputed value is one the column can hold).
pub(super) fn median(values: &mut [f32], whole: bool) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f32::total_cmp);
    let n = values.len();
    if whole || n % 2 == 1 {
        Some(values[(n - 1) / 2])
    } else {
        Some(((f64::from(values[n / 2 - 1]) + f64::from(values[n / 2])) / 2.0) as f32)
    }
}

/// Where a one-hot column's cell goes: an index into its features.
struct OneHotIndex<'a> {
    index: HashMap<&'a str, usize>,
    missing: Option<usize>,
    unseen: usize,
}

impl<'a> OneHotIndex<'a> {
    fn new(vocabulary: &'a [String], merged: &'a [String], missing: bool) -> Self {
        let mut index: HashMap<&str, usize> =
            vocabulary.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect();
        let mut next = vocabulary.len();
        let other = (!merged.is_empty()).then(|| {
            next += 1;
            next - 1
        });
        if let Some(o) = other {
            index.extend(merged.iter().map(|v| (v.as_str(), o)));
        }
        let missing = missing.then(|| {
            next += 1;
            next - 1
        });
        Self { index, missing, unseen: next }
    }

    fn width(&self) -> usize {
        self.unseen + 1
    }

    /// `Err` for an empty cell of a column that refuses them.
    fn of(&self, cell: Option<&str>) -> std::result::Result<usize, ()> {
        match cell {
            Some(v) => Ok(self.index.get(v).copied().unwrap_or(self.unseen)),
            None => self.missing.ok_or(()),
        }
    }
}

/// What fitting a column's encoding needs from its rows, gathered a chunk at a time: over
/// every row (what the cells hold, the observed range), and over the train rows (the values to
/// impute from, the category counts, the earliest date).
#[derive(Debug)]
pub(super) struct ColumnStats {
    shape: Option<Shape>,
    /// Observed range of a numeric column, every row.
    min: f32,
    max: f32,
    /// Train values of a numeric or binary column that imputes (a median or a mode needs them all).
    train_values: Vec<f32>,
    /// Train count of each value of a text column.
    counts: HashMap<String, usize>,
    /// Earliest and latest day of a datetime column, every row.
    days: Option<(i64, i64)>,
    first_train_day: Option<i64>,
}

impl Default for ColumnStats {
    fn default() -> Self {
        Self {
            shape: None,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            train_values: Vec::new(),
            counts: HashMap::new(),
            days: None,
            first_train_day: None,
        }
    }
}

impl ColumnStats {
    /// What the rows read so far held, for reading the next chunk the same way.
    pub fn shape(&self) -> Option<&Shape> {
        self.shape.as_ref()
    }

    /// Adds one chunk: `parsed` is column `name` of `table`, `train[i]` whether its row `i` is
    /// a train row, `impute` whether the column imputes empty cells.
    pub fn add(
        &mut self,
        table: &Table,
        name: &str,
        parsed: &Parsed,
        train: &[bool],
        impute: bool,
    ) -> Result<()> {
        if let Some(shape) = parsed.shape() {
            match &self.shape {
                None => self.shape = Some(shape),
                Some(s) if *s != shape => {
                    return Err(Error::data(
                        &table.path,
                        format!(
                            "column {name:?}, from {}: these rows hold {}, the rows before them {}; a column holds one kind of value",
                            table.at(0),
                            shape.describe(),
                            s.describe()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        match parsed {
            Parsed::Number(values) | Parsed::Binary { values, .. } => {
                for (i, v) in values.iter().enumerate() {
                    let Some(v) = *v else { continue };
                    self.min = self.min.min(v);
                    self.max = self.max.max(v);
                    if impute && train[i] {
                        self.train_values.push(v);
                    }
                }
            }
            Parsed::Text(cells) => {
                for (cell, _) in cells.iter().zip(train).filter(|(_, t)| **t) {
                    let Some(v) = cell else { continue };
                    match self.counts.get_mut(v.as_str()) {
                        Some(n) => *n += 1,
                        None => {
                            self.counts.insert(v.clone(), 1);
                        }
                    }
                }
            }
            Parsed::Datetime(cells) => {
                for (i, &(day, _)) in cells.iter().enumerate() {
                    self.days = Some(self.days.map_or((day, day), |(a, b)| (a.min(day), b.max(day))));
                    if train[i] {
                        self.first_train_day = Some(self.first_train_day.map_or(day, |d| d.min(day)));
                    }
                }
            }
        }
        Ok(())
    }
}

impl ColumnEncoding {
    /// What the column's cells hold, as the rows it was fitted on showed.
    pub(super) fn shape(&self) -> Shape {
        match self {
            Self::Number { .. } => Shape::Number,
            Self::Binary { values, ignore_case, .. } => {
                Shape::Binary { map: values.clone(), ignore_case: *ignore_case }
            }
            Self::OneHot { .. } => Shape::Text,
            Self::Datetime { .. } => Shape::Datetime,
        }
    }

    pub fn column(&self) -> &str {
        match self {
            Self::Number { column, .. }
            | Self::Binary { column, .. }
            | Self::OneHot { column, .. }
            | Self::Datetime { column, .. } => column,
        }
    }

    /// Fits the encoding of a column from what its rows showed, and its features (bounds
    /// and costs; standardisation comes later). `group`: the one-hot group id this column
    /// gets (a string categorical one) or belongs to (a numeric one-hot member); `path`: the
    /// table, for errors.
    pub(super) fn fit(
        name: &str,
        r: &Resolved,
        stats: ColumnStats,
        group: Option<u32>,
        path: &Path,
    ) -> Result<(Self, Vec<FeatureInfo>)> {
        let feature = |fname: String, kind: FeatureKind, lower: f32, upper: f32| FeatureInfo {
            name: fname,
            kind,
            mutable: r.mutable,
            lower,
            upper,
            cost: r.cost,
            group: None,
            mean: 0.0,
            std: 1.0,
            direction: Direction::Any,
        };
        let indicator = || FeatureInfo {
            mutable: false,
            ..feature(format!("{name}:missing"), FeatureKind::Binary, 0.0, 1.0)
        };
        let ColumnStats { shape, min, max, mut train_values, counts, days, first_train_day } = stats;
        let impute_value = |seen: &mut Vec<f32>, whole: bool, mode: bool| -> Result<Option<f32>> {
            if r.missing != MissingPolicy::Impute {
                return Ok(None);
            }
            if seen.is_empty() {
                return Err(Error::data(
                    path,
                    format!("column {name:?}: every train row is empty; there is nothing to impute from"),
                ));
            }
            if mode {
                let ones = seen.iter().filter(|&&v| v == 1.0).count();
                return Ok(Some(if 2 * ones > seen.len() { 1.0 } else { 0.0 }));
            }
            Ok(median(seen, whole))
        };
        let empty = || Error::data(path, format!("column {name:?}: every cell is empty"));
        Ok(match shape.ok_or_else(empty)? {
            Shape::Number => {
                let (lower, upper) = match r.kind {
                    ColumnKind::Binary | ColumnKind::Categorical => (0.0, 1.0),
                    _ => (r.lower.unwrap_or(min), r.upper.unwrap_or(max)),
                };
                if lower > upper {
                    return Err(Error::data(
                        path,
                        format!(
                            "column {name:?}: lower = {lower} is above upper = {upper} (observed range {min} ..= {max})"
                        ),
                    ));
                }
                let kind = r.kind.feature_kind();
                let whole = kind != FeatureKind::Continuous;
                let impute = impute_value(&mut train_values, whole, kind == FeatureKind::Binary)?;
                let mut f = vec![FeatureInfo {
                    group,
                    direction: r.direction,
                    ..feature(name.to_owned(), kind, lower, upper)
                }];
                f.extend(impute.map(|_| indicator()));
                (Self::Number { column: name.to_owned(), kind, impute }, f)
            }
            Shape::Binary { map, ignore_case } => {
                let impute = impute_value(&mut train_values, true, true)?;
                let mut f = vec![feature(name.to_owned(), FeatureKind::Binary, 0.0, 1.0)];
                f.extend(impute.map(|_| indicator()));
                (Self::Binary { column: name.to_owned(), values: map, ignore_case, impute }, f)
            }
            Shape::Text => {
                let (vocabulary, merged) = vocabulary_of(counts, r.max_categories);
                let missing = r.missing == MissingPolicy::Impute;
                let mut names: Vec<String> = vocabulary.iter().map(|v| format!("{name}={v}")).collect();
                if !merged.is_empty() {
                    names.push(format!("{name}:other"));
                }
                if missing {
                    names.push(format!("{name}:missing"));
                }
                names.push(format!("{name}:unseen"));
                let f = names
                    .into_iter()
                    .map(|n| FeatureInfo {
                        group,
                        cost: r.cost / 2.0,
                        ..feature(n, FeatureKind::Categorical, 0.0, 1.0)
                    })
                    .collect();
                (Self::OneHot { column: name.to_owned(), vocabulary, merged, missing }, f)
            }
            Shape::Datetime => {
                let reference = match r.reference {
                    Some(d) => d,
                    None => first_train_day.expect("a train row"),
                };
                let (first, last) = days.expect("a row");
                let (lo, hi) = ((first - reference) as f32, (last - reference) as f32);
                let f = vec![
                    feature(format!("{name}:hour"), FeatureKind::Integer, 0.0, 23.0),
                    feature(format!("{name}:weekday"), FeatureKind::Integer, 0.0, 6.0),
                    FeatureInfo {
                        direction: r.direction,
                        ..feature(format!("{name}:day"), FeatureKind::Integer, lo, hi)
                    },
                ];
                (Self::Datetime { column: name.to_owned(), reference: datetime::format_date(reference) }, f)
            }
        })
    }

    /// This column's features for every row of `parsed`, one `Vec` per feature.
    pub(super) fn apply(&self, parsed: &Parsed) -> Vec<Vec<f32>> {
        let with_indicator = |values: &[Option<f32>], impute: Option<f32>| {
            let main: Vec<f32> = values.iter().map(|v| v.or(impute).expect("refused at reading")).collect();
            let mut out = vec![main];
            if impute.is_some() {
                out.push(values.iter().map(|v| f32::from(u8::from(v.is_none()))).collect());
            }
            out
        };
        match (self, parsed) {
            (Self::Number { impute, .. }, Parsed::Number(values))
            | (Self::Binary { impute, .. }, Parsed::Binary { values, .. }) => with_indicator(values, *impute),
            (Self::OneHot { vocabulary, merged, missing, .. }, Parsed::Text(cells)) => {
                let idx = OneHotIndex::new(vocabulary, merged, *missing);
                let mut out = vec![vec![0.0; cells.len()]; idx.width()];
                for (i, c) in cells.iter().enumerate() {
                    out[idx.of(c.as_deref()).expect("refused at reading")][i] = 1.0;
                }
                out
            }
            (Self::Datetime { reference, .. }, Parsed::Datetime(cells)) => {
                let r = datetime::parse(reference).expect("written by format_date").0;
                vec![
                    cells.iter().map(|c| c.1 as f32).collect(),
                    cells.iter().map(|c| datetime::weekday(c.0) as f32).collect(),
                    cells.iter().map(|c| (c.0 - r) as f32).collect(),
                ]
            }
            _ => unreachable!("an encoding is applied to the column it was fitted on"),
        }
    }

    /// The features of one cell's text (`None`: empty), as the loader encodes
    /// them for a training row; the error says what is wrong with the cell.
    pub fn encode_cell(&self, cell: Option<&str>) -> std::result::Result<Vec<f32>, String> {
        let cell = cell.map(str::trim).filter(|c| !c.is_empty());
        let with_indicator = |v: Option<f32>, impute: Option<f32>| match (v, impute) {
            (Some(v), None) => Ok(vec![v]),
            (Some(v), Some(_)) => Ok(vec![v, 0.0]),
            (None, Some(m)) => Ok(vec![m, 1.0]),
            (None, None) => Err(empty_cell_message().to_owned()),
        };
        match self {
            Self::Number { impute, .. } => {
                let v = cell
                    .map(|c| parse_cell(Some(c)).map(|v| v as f32))
                    .transpose()
                    .map_err(|e| e.to_string())?;
                with_indicator(v, *impute)
            }
            Self::Binary { values, ignore_case, impute, .. } => {
                let v = match cell {
                    Some(c) => Some(binary_value(c, values, *ignore_case).ok_or_else(|| {
                        format!("{c:?} is neither {:?} (0) nor {:?} (1)", values[0], values[1])
                    })?),
                    None => None,
                };
                with_indicator(v, *impute)
            }
            Self::OneHot { vocabulary, merged, missing, .. } => {
                let idx = OneHotIndex::new(vocabulary, merged, *missing);
                let j = idx.of(cell).map_err(|()| empty_cell_message().to_owned())?;
                let mut out = vec![0.0; idx.width()];
                out[j] = 1.0;
                Ok(out)
            }
            Self::Datetime { reference, .. } => {
                let c = cell.ok_or("empty cell (a datetime column refuses missing values)")?;
                let (day, hour) = datetime::parse(c)?;
                let r = datetime::parse(reference)?.0;
                Ok(vec![hour as f32, datetime::weekday(day) as f32, (day - r) as f32])
            }
        }
    }
}

impl Encoding {
    /// Encodes one row given as text cells by column name (`None`: no such cell, or empty),
    /// exactly as the training rows were encoded. Errors name the column.
    pub fn encode_row<'a>(
        &self,
        cell: impl Fn(&str) -> Option<&'a str>,
    ) -> std::result::Result<Vec<f32>, String> {
        let mut out = Vec::with_capacity(self.features.len());
        for c in &self.columns {
            let v = c.encode_cell(cell(c.column())).map_err(|m| format!("column {:?}: {m}", c.column()))?;
            out.extend(v);
        }
        Ok(out)
    }

    /// The class of a label's text.
    pub fn class_of(&self, label: &str) -> Option<u32> {
        self.classes.iter().position(|c| c == label.trim()).map(|c| c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_by_descending_frequency_then_value_and_merges_the_rarest() {
        let train = ["b", "a", "c", "b", "a", "d", "b", "e", "e"];
        let (v, m) = vocabulary(train.iter().copied(), None);
        assert_eq!(v, ["b", "a", "e", "c", "d"]);
        assert!(m.is_empty());
        let (v, m) = vocabulary(train.iter().copied(), Some(2));
        assert_eq!((v, m), (vec!["b".to_owned(), "a".into()], vec!["e".to_owned(), "c".into(), "d".into()]));
        let (v, m) = vocabulary(train.iter().copied(), Some(5));
        assert_eq!((v.len(), m.len()), (5, 0));
    }

    #[test]
    fn one_hot_cells_go_to_their_value_other_missing_or_unseen() {
        let enc = ColumnEncoding::OneHot {
            column: "m".into(),
            vocabulary: vec!["b".into(), "a".into()],
            merged: vec!["c".into()],
            missing: true,
        };
        // b, a, other, missing, unseen
        assert_eq!(enc.encode_cell(Some("a")).unwrap(), [0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(enc.encode_cell(Some("c")).unwrap(), [0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(enc.encode_cell(Some(" ")).unwrap(), [0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(enc.encode_cell(Some("zz")).unwrap(), [0.0, 0.0, 0.0, 0.0, 1.0]);
        let strict = ColumnEncoding::OneHot {
            column: "m".into(),
            vocabulary: vec!["a".into()],
            merged: vec![],
            missing: false,
        };
        assert_eq!(strict.encode_cell(Some("q")).unwrap(), [0.0, 1.0]);
        assert!(strict.encode_cell(None).unwrap_err().contains("empty cell"));
    }

    #[test]
    fn binary_numbers_and_datetimes_encode_like_training() {
        let b = ColumnEncoding::Binary {
            column: "x".into(),
            values: ["no".into(), "yes".into()],
            ignore_case: true,
            impute: Some(1.0),
        };
        assert_eq!(b.encode_cell(Some("YES")).unwrap(), [1.0, 0.0]);
        assert_eq!(b.encode_cell(Some("No")).unwrap(), [0.0, 0.0]);
        assert_eq!(b.encode_cell(None).unwrap(), [1.0, 1.0]);
        assert!(b.encode_cell(Some("maybe")).unwrap_err().contains("neither"));
        let n = ColumnEncoding::Number { column: "a".into(), kind: FeatureKind::Continuous, impute: None };
        assert_eq!(n.encode_cell(Some("2.5")).unwrap(), [2.5]);
        assert!(n.encode_cell(Some("abc")).unwrap_err().contains("not a number"));
        assert!(n.encode_cell(None).unwrap_err().contains("empty cell"));
        let d = ColumnEncoding::Datetime { column: "t".into(), reference: "2024-01-01".into() };
        assert_eq!(d.encode_cell(Some("2024-01-10T13:05:00")).unwrap(), [13.0, 2.0, 9.0]);
        assert_eq!(d.encode_cell(Some("2023-12-31")).unwrap(), [0.0, 6.0, -1.0]);
    }

    #[test]
    fn infinite_bounds_survive_encoding_json() {
        let f = FeatureInfo {
            name: "a".into(),
            kind: FeatureKind::Continuous,
            mutable: true,
            lower: 0.0,
            upper: f32::INFINITY,
            cost: 1.0,
            group: None,
            mean: 2.0,
            std: 1.5,
            direction: Direction::Any,
        };
        let js = serde_json::to_string(&f).unwrap();
        assert!(js.contains("\"upper\":\"inf\""), "{js}");
        assert_eq!(serde_json::from_str::<FeatureInfo>(&js).unwrap(), f);
    }

    #[test]
    fn medians_stay_values_the_column_can_hold() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0], false), Some(2.5));
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0], true), Some(2.0));
        assert_eq!(median(&mut [5.0], true), Some(5.0));
        assert_eq!(median(&mut [], false), None);
    }
}
