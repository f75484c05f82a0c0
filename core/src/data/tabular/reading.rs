//! Reading a table from disk: CSV as text (every cell parsed here, so errors name the
//! cell), Parquet typed; duplicate headers, ragged rows and stray quotes named by row.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use polars::prelude::{CsvReadOptions, DataFrame, DataType, ParquetReader, SerReader};

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
    /// CSV read a chunk at a time: the line each row starts on (the header is line 1).
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

    pub fn read(path: &Path) -> Result<Self> {
        let format = format_of(path)
            .ok_or_else(|| Error::data(path, "unsupported file type; expected a .csv or .parquet file"))?;
        let (mut file, meta) = crate::data::open_regular(path).map_err(|e| e.at(path))?;
        if meta.len() == 0 {
            return Err(Error::data(path, "the file is empty (0 bytes); expected a header and data rows"));
        }
        if format == Format::Csv {
            check_csv_header(path, &mut file)?;
        }
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
        let table = Self::chunk(path, format, df, 0, None);
        if table.df.height() == 0 {
            return Err(Error::data(
                path,
                format!("no data rows (only a header with columns {})", table.column_list()),
            ));
        }
        Ok(table)
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

    /// `row 17 (line 18)` for this table's row 16 (0-based) of a CSV file read whole.
    pub fn at(&self, i: usize) -> String {
        let row = self.first_row + i + 1;
        match (&self.lines, self.format) {
            (Some(lines), _) => format!("row {row} (line {})", lines[i]),
            (None, Format::Csv) => format!("row {row} (line {})", row + 1),
            (None, Format::Parquet) => format!("row {row}"),
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
/// Reads from the start of `file` and leaves it there.
pub(super) fn check_csv_header(path: &Path, file: &mut File) -> Result<()> {
    const PREFIX: u64 = 1 << 20;
    let mut head = Vec::new();
    (&mut *file)
        .take(PREFIX)
        .read_to_end(&mut head)
        .and_then(|_| file.seek(std::io::SeekFrom::Start(0)))
        .map_err(|e| Error::io(path, e))?;
    let Some(header) = CsvRecords::new(&head).next() else { return Ok(()) };
    let mut names: &[Vec<u8>] = &header.fields;
    if !header.ended && head.len() as u64 == PREFIX {
        // The prefix may have cut the last name short.
        names = &names[..names.len() - 1];
    }
    let mut seen: BTreeMap<&[u8], usize> = BTreeMap::new();
    for (j, name) in names.iter().enumerate() {
        // An unnamed column (a pandas index written with `index=True`) would become a
        // feature nobody chose, under a name polars makes up.
        if String::from_utf8_lossy(name).trim().is_empty() {
            return Err(Error::data(
                path,
                format!(
                    "header (line 1): column {} has no name; every column needs one (a pandas index? \
                     write the file with `index=False`, or name the column)",
                    j + 1
                ),
            ));
        }
        if let Some(i) = seen.insert(name, j) {
            return Err(Error::data(
                path,
                format!(
                    "header (line 1): columns {} and {} are both named {}; every column needs its own name",
                    i + 1,
                    j + 1,
                    shown(&String::from_utf8_lossy(name))
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
pub(super) fn parse_cell(cell: Option<&str>) -> std::result::Result<f64, Invalid> {
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
