//! A source column's cells in one chunk of rows, read as its kind asks (numbers checked
//! against kind and bounds, two-valued text, categories, dates), and what fitting its
//! encoding needs from them, gathered chunk by chunk ([`ColumnStats`]).

use std::collections::HashMap;

use super::config::{ColumnKind, MissingPolicy, Resolved, kind_name};
use super::datetime;
use crate::data::table::{Table, parse_cell};
use crate::{Error, Result};

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

pub(super) fn empty_cell_message() -> &'static str {
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

pub(super) fn binary_value(text: &str, map: &[String; 2], ignore_case: bool) -> Option<f32> {
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

/// What fitting a column's encoding needs from its rows, gathered a chunk at a time: over
/// every row (what the cells hold, the observed range), and over the train rows (the values to
/// impute from, the category counts, the earliest date).
#[derive(Debug)]
pub(super) struct ColumnStats {
    pub(super) shape: Option<Shape>,
    /// Observed range of a numeric column, every row.
    pub(super) min: f32,
    pub(super) max: f32,
    /// Train values of a numeric or binary column that imputes (a median or a mode needs them all).
    pub(super) train_values: Vec<f32>,
    /// Train count of each value of a text column.
    pub(super) counts: HashMap<String, usize>,
    /// Earliest and latest day of a datetime column, every row.
    pub(super) days: Option<(i64, i64)>,
    pub(super) first_train_day: Option<i64>,
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
