//! From source columns to features: reading each column by its kind, fitting its encoding
//! on the train split (vocabularies, imputation values, the datetime reference), and
//! writing the features. The fitted [`Encoding`] is what `encoding.json` holds, and
//! [`Encoding::encode_row`] encodes a new row of text cells exactly as the training rows were.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tempered_plugin::{Column, Direction, FeatureKind};

use super::FeatureInfo;
use super::cells::{ColumnStats, Parsed, Shape, binary_value, empty_cell_message};
use super::config::{ColumnKind, MissingPolicy, Resolved};
use super::datetime;
use crate::data::table::parse_cell;
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
        let column = |fname: String, kind: FeatureKind, lower: f32, upper: f32| Column {
            name: fname,
            kind,
            mutable: r.mutable,
            lower,
            upper,
            cost: r.cost,
            scale: 1.0,
            group: None,
        };
        let feature = |column: Column| FeatureInfo { column, mean: 0.0, direction: Direction::Any };
        let indicator = || {
            feature(Column {
                mutable: false,
                ..column(format!("{name}:missing"), FeatureKind::Binary, 0.0, 1.0)
            })
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
                    direction: r.direction,
                    ..feature(Column { group, ..column(name.to_owned(), kind, lower, upper) })
                }];
                f.extend(impute.map(|_| indicator()));
                (Self::Number { column: name.to_owned(), kind, impute }, f)
            }
            Shape::Binary { map, ignore_case } => {
                let impute = impute_value(&mut train_values, true, true)?;
                let mut f = vec![feature(column(name.to_owned(), FeatureKind::Binary, 0.0, 1.0))];
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
                    .map(|n| {
                        feature(Column {
                            group,
                            cost: r.cost / 2.0,
                            ..column(n, FeatureKind::Categorical, 0.0, 1.0)
                        })
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
                    feature(column(format!("{name}:hour"), FeatureKind::Integer, 0.0, 23.0)),
                    feature(column(format!("{name}:weekday"), FeatureKind::Integer, 0.0, 6.0)),
                    FeatureInfo {
                        direction: r.direction,
                        ..feature(column(format!("{name}:day"), FeatureKind::Integer, lo, hi))
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
            column: Column { lower: 0.0, scale: 1.5, ..Column::continuous("a") },
            mean: 2.0,
            direction: Direction::Any,
        };
        let js = serde_json::to_string(&f).unwrap();
        assert!(js.contains("\"upper\":\"inf\""), "{js}");
        assert_eq!(serde_json::from_str::<FeatureInfo>(&js).unwrap(), f);
    }

    /// `encoding.json` is read back by `--resume` and `tempered score`: the form of a
    /// feature in it must not change with the types behind it.
    #[test]
    fn a_feature_is_written_in_one_fixed_json_form() {
        let f = FeatureInfo {
            column: Column {
                name: "amount".into(),
                kind: FeatureKind::Integer,
                mutable: false,
                lower: f32::NEG_INFINITY,
                upper: 12.5,
                cost: 0.25,
                scale: 1.5,
                group: Some(3),
            },
            mean: 2.0,
            direction: Direction::Up,
        };
        let js = serde_json::to_string(&f).unwrap();
        assert_eq!(
            js,
            r#"{"name":"amount","kind":"integer","mutable":false,"lower":"-inf","upper":12.5,"cost":0.25,"group":3,"mean":2.0,"std":1.5,"direction":"up"}"#
        );
        assert_eq!(serde_json::from_str::<FeatureInfo>(&js).unwrap(), f);
        let any = FeatureInfo {
            column: Column { group: None, ..f.column.clone() },
            direction: Direction::Any,
            ..f
        };
        let js = serde_json::to_string(&any).unwrap();
        assert_eq!(
            js,
            r#"{"name":"amount","kind":"integer","mutable":false,"lower":"-inf","upper":12.5,"cost":0.25,"group":null,"mean":2.0,"std":1.5}"#
        );
        // Written before `direction` existed, or without it: either way.
        let old = js.replace(r#""group":null,"#, "");
        assert_eq!(serde_json::from_str::<FeatureInfo>(&old).unwrap(), any);
    }

    #[test]
    fn medians_stay_values_the_column_can_hold() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0], false), Some(2.5));
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0], true), Some(2.0));
        assert_eq!(median(&mut [5.0], true), Some(5.0));
        assert_eq!(median(&mut [], false), None);
    }
}
