//! Reading a table file, the one way every CSV and Parquet file the engine reads is read
//! (tables, text data sets, audio manifests): CSV as text (every cell parsed here, so errors
//! name the cell), Parquet typed; a file whole ([`Table::read`]) or a chunk of rows at a time
//! ([`chunks`]), each row knowing its line (`record`: one CSV record, its quoting checked).

pub mod chunks;
mod record;

use std::path::{Path, PathBuf};

use polars::prelude::{DataFrame, DataType, ParquetReader, SerReader};

use crate::data::shown;
use crate::error::Invalid;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

pub fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv),
        "parquet" | "pq" => Some(Format::Parquet),
        _ => None,
    }
}

/// Rows of a table as polars read them: a whole file, or a chunk of one (see `chunks`).
/// Every error about a cell names its file and its row (and line, for CSV).
pub struct Table {
    pub path: PathBuf,
    format: Format,
    df: DataFrame,
    /// 0-based row of the first row within its own file.
    first_row: usize,
    /// 0-based row of the first row among all the rows being loaded (every file, in order).
    pub offset: usize,
    /// CSV: the line each row starts on (the header is line 1).
    lines: Option<Vec<usize>>,
}

impl Table {
    pub(super) fn chunk(
        path: &Path,
        format: Format,
        df: DataFrame,
        first_row: usize,
        lines: Option<Vec<usize>>,
    ) -> Self {
        Self { path: path.to_path_buf(), format, df, first_row, offset: 0, lines }
    }

    /// A whole `.csv` (comma-separated) or `.parquet` file.
    pub fn read(path: &Path) -> Result<Self> {
        match format_of(path) {
            Some(Format::Csv) => Self::read_csv(path, b','),
            Some(Format::Parquet) => {
                let (file, _) = chunks::open_nonempty(path)?;
                let df = ParquetReader::new(file)
                    .finish()
                    .map_err(|e| Error::external(format!("{}: cannot read as Parquet", path.display()), e))?;
                Self::chunk(path, Format::Parquet, df, 0, None).with_rows()
            }
            None => Err(Error::data(path, "unsupported file type; expected a .csv or .parquet file")),
        }
    }

    /// A whole CSV file whatever its name, `delimiter` between fields (`b','`, `b'\t'`).
    pub fn read_csv(path: &Path, delimiter: u8) -> Result<Self> {
        let chunks = chunks::CsvChunks::open(path, delimiter, usize::MAX)?;
        let columns = chunks.columns().join(", ");
        chunks
            .rest()?
            .ok_or_else(|| Error::data(path, format!("no data rows (only a header with columns {columns})")))
    }

    fn with_rows(self) -> Result<Self> {
        if self.df.height() == 0 {
            return Err(Error::data(
                &self.path,
                format!("no data rows (only a header with columns {})", self.column_list()),
            ));
        }
        Ok(self)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The rows, as polars holds them.
    pub fn df(&self) -> &DataFrame {
        &self.df
    }

    pub fn column_names(&self) -> Vec<String> {
        self.df.get_column_names().iter().map(|s| s.to_string()).collect()
    }

    pub fn column_list(&self) -> String {
        self.column_names().join(", ")
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.df.get_column_names().iter().any(|c| c.as_str() == name)
    }

    /// `what`: e.g. `label column "Class"`.
    pub fn missing_column(&self, what: &str) -> Error {
        Error::data(&self.path, format!("{what} not found; the file has columns: {}", self.column_list()))
    }

    /// `row 17 (line 18)` for this table's row 16 (0-based); `row 17` in a Parquet file.
    pub fn at(&self, i: usize) -> String {
        let row = self.first_row + i + 1;
        match &self.lines {
            Some(lines) => format!("row {row} (line {})", lines[i]),
            None => format!("row {row}"),
        }
    }

    pub fn cell_error(&self, column: &str, i: usize, msg: impl std::fmt::Display) -> Error {
        Error::data(&self.path, format!("column {column:?}, {}: {msg}", self.at(i)))
    }

    /// Number of data rows.
    pub fn height(&self) -> usize {
        self.df.height()
    }

    /// What polars said when `column` could not be read or cast, naming file and column.
    fn column_error(&self, column: &str, e: polars::error::PolarsError) -> Error {
        Error::external(format!("{}: column {column:?}", self.path.display()), e)
    }

    /// Every cell of `column` as a finite number, or an error naming the cell.
    pub fn numbers(&self, column: &str) -> Result<Vec<f64>> {
        Ok(self.numbers_or_missing(column, false)?.into_iter().map(|v| v.expect("refused")).collect())
    }

    /// Every cell of `column` as a finite number; an empty cell (a null) is `None` when
    /// `missing_ok`, else an error naming the cell, as is anything else but a number.
    pub fn numbers_or_missing(&self, column: &str, missing_ok: bool) -> Result<Vec<Option<f64>>> {
        let pe = |e| self.column_error(column, e);
        let col = self.df.column(column).map_err(pe)?;
        let mut out = Vec::with_capacity(self.df.height());
        let null = |i: usize| {
            if missing_ok { Ok(None) } else { Err(self.cell_error(column, i, "empty cell (null)")) }
        };
        match col.dtype() {
            DataType::String => {
                for (i, cell) in col.str().map_err(pe)?.iter().enumerate() {
                    if missing_ok && cell.is_none_or(|c| c.trim().is_empty()) {
                        out.push(None);
                        continue;
                    }
                    out.push(Some(parse_cell(cell).map_err(|m| self.cell_error(column, i, m))?));
                }
            }
            DataType::Boolean => {
                for (i, v) in col.bool().map_err(pe)?.iter().enumerate() {
                    out.push(match v {
                        Some(b) => Some(f64::from(u8::from(b))),
                        None => null(i)?,
                    });
                }
            }
            dt if dt.is_numeric() => {
                let cast = col.cast(&DataType::Float64).map_err(pe)?;
                for (i, v) in cast.f64().map_err(pe)?.iter().enumerate() {
                    let Some(v) = v else {
                        out.push(null(i)?);
                        continue;
                    };
                    if !v.is_finite() {
                        return Err(self.cell_error(column, i, format!("{v} is not a finite number")));
                    }
                    out.push(Some(v));
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

    /// Every cell of a text column as written, spaces kept; an empty cell is `None`.
    pub fn strings(&self, column: &str) -> Result<Vec<Option<String>>> {
        let pe = |e| self.column_error(column, e);
        let col = self.df.column(column).map_err(pe)?;
        match col.dtype() {
            DataType::String => Ok(col
                .str()
                .map_err(pe)?
                .iter()
                .map(|c| c.filter(|c| !c.is_empty()).map(str::to_owned))
                .collect()),
            dt => Err(Error::data(&self.path, format!("column {column:?} has type {dt}; expected text"))),
        }
    }

    /// Every cell of `column` as trimmed text; an empty cell or a null is `None`. Parquet
    /// numbers are written as Rust prints them (`3`, `2.5`), booleans as `true` / `false`.
    pub fn texts(&self, column: &str) -> Result<Vec<Option<String>>> {
        let pe = |e| self.column_error(column, e);
        let col = self.df.column(column).map_err(pe)?;
        let text = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        let out = match col.dtype() {
            DataType::String => col.str().map_err(pe)?.iter().map(|c| c.and_then(text)).collect(),
            DataType::Boolean => col.bool().map_err(pe)?.iter().map(|v| v.map(|b| b.to_string())).collect(),
            dt if dt.is_integer() => col
                .cast(&DataType::Int64)
                .and_then(|c| c.i64().cloned())
                .map_err(pe)?
                .iter()
                .map(|v| v.map(|v| v.to_string()))
                .collect(),
            dt if dt.is_numeric() => col
                .cast(&DataType::Float64)
                .and_then(|c| c.f64().cloned())
                .map_err(pe)?
                .iter()
                .map(|v| v.map(|v| v.to_string()))
                .collect(),
            dt => {
                return Err(Error::data(
                    &self.path,
                    format!("column {column:?} has type {dt}; expected text"),
                ));
            }
        };
        Ok(out)
    }
}

/// Parses one CSV cell; the message says what is wrong with it.
pub(crate) fn parse_cell(cell: Option<&str>) -> std::result::Result<f64, Invalid> {
    let text = cell.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err("empty cell".into());
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_nan() => Err(format!("{} is not a number (NaN is not allowed)", shown(text)).into()),
        Ok(v) if v.is_infinite() => Err(format!("{} is not a finite number", shown(text)).into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{} is not a number", shown(text)).into()),
    }
}
