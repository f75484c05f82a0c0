//! A table file (CSV or Parquet) read a chunk of rows at a time, each row knowing where it is
//! in the file, so that a file larger than memory can be loaded or scored and an error names
//! the row.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use polars::prelude::{CsvReadOptions, ParquetReader, SerReader};

use super::record::{fields, read_record};
use super::{Format, Table, format_of};
use crate::data::shown;
use crate::{Error, Result};

/// Rows per chunk by default: large enough that the per-chunk costs (a Parquet slice, a
/// polars parse) vanish, small enough that a chunk of a wide table stays a few tens of MB.
pub const CHUNK_ROWS: usize = 16_384;

/// A chunk of rows, and the units of the reader's progress total it covers.
pub struct Chunk {
    pub table: Table,
    pub progress: u64,
}

pub enum Reader {
    Csv(CsvChunks),
    Parquet { path: PathBuf, columns: Vec<String>, rows: usize, next: usize, chunk_rows: usize },
}

impl Reader {
    /// Opens `path` (a `.csv` or `.parquet` file) to be read `chunk_rows` rows at a time.
    pub fn open(path: &Path, chunk_rows: usize) -> Result<Self> {
        let format = format_of(path)
            .ok_or_else(|| Error::data(path, "unsupported file type; expected a .csv or .parquet file"))?;
        match format {
            Format::Csv => Ok(Self::Csv(CsvChunks::open(path, b',', chunk_rows)?)),
            Format::Parquet => {
                let (file, _) = open_nonempty(path)?;
                let chunk_rows = chunk_rows.max(1);
                let bad = |e| Error::external(format!("{}: cannot read as Parquet", path.display()), e);
                let mut r = ParquetReader::new(file);
                let rows = r.num_rows().map_err(bad)?;
                let columns = r.schema().map_err(bad)?.iter_names().map(|n| n.to_string()).collect();
                Ok(Self::Parquet { path: path.to_owned(), columns, rows, next: 0, chunk_rows })
            }
        }
    }

    pub fn columns(&self) -> &[String] {
        match self {
            Self::Csv(c) => c.columns(),
            Self::Parquet { columns, .. } => columns,
        }
    }

    /// What the progress total counts: a CSV file's rows are not counted before they are
    /// read, so its progress is in bytes.
    pub fn progress_unit(&self) -> &'static str {
        match self {
            Self::Csv(_) => "bytes",
            Self::Parquet { .. } => "rows",
        }
    }

    pub fn total(&self) -> u64 {
        match self {
            Self::Csv(c) => c.bytes,
            Self::Parquet { rows, .. } => *rows as u64,
        }
    }

    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        match self {
            Self::Csv(c) => c.next_chunk(),
            Self::Parquet { path, rows, next, chunk_rows, .. } => {
                if *next >= *rows {
                    return Ok(None);
                }
                let len = (*chunk_rows).min(*rows - *next);
                let file = File::open(&*path).map_err(|e| Error::io(&*path, e))?;
                // A slice reads only the row groups it overlaps.
                let df = ParquetReader::new(file).with_slice(Some((*next, len))).finish().map_err(|e| {
                    Error::external(
                        format!(
                            "{}: rows {}..={}: cannot read as Parquet",
                            path.display(),
                            *next + 1,
                            *next + len
                        ),
                        e,
                    )
                })?;
                let chunk = Chunk {
                    table: Table::chunk(path, Format::Parquet, df, *next, None),
                    progress: len as u64,
                };
                *next += len;
                Ok(Some(chunk))
            }
        }
    }
}

/// A CSV file cut into chunks of whole records (a quoted field may span lines), each parsed
/// by polars with the header in front, every column as text. This is the one way a CSV file
/// is read: a file read whole is one chunk. Before polars sees a record it is checked here, so
/// that every refusal names the row and the line it starts on: its quoting, its number of
/// fields (a short row is refused, not filled with nulls) and its UTF-8. A blank line holds no
/// row.
pub struct CsvChunks {
    path: PathBuf,
    file: BufReader<File>,
    delimiter: u8,
    header: Vec<u8>,
    columns: Vec<String>,
    bytes: u64,
    /// Data rows and lines read so far.
    rows: usize,
    line: usize,
    chunk_rows: usize,
}

impl CsvChunks {
    /// `delimiter` separates fields: `b','`, or `b'\t'` for TSV.
    pub fn open(path: &Path, delimiter: u8, chunk_rows: usize) -> Result<Self> {
        let (file, bytes) = open_nonempty(path)?;
        let mut file = BufReader::new(file);
        let mut header = Vec::new();
        let rec = read_record(&mut file, &mut header, delimiter).map_err(|e| Error::io(path, e))?;
        // Progress counts the bytes of data rows.
        let bytes = bytes.saturating_sub(header.len() as u64);
        if let Some((j, why)) = rec.malformed {
            return Err(Error::data(path, format!("header (line 1), field {}: {why}", j + 1)));
        }
        if let Some(rest) = header.strip_prefix(b"\xEF\xBB\xBF") {
            header = rest.to_vec();
        }
        if !header.ends_with(b"\n") {
            header.push(b'\n');
        }
        let columns = column_names(path, &fields(&header, delimiter))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            delimiter,
            header,
            columns,
            bytes,
            rows: 0,
            line: 1 + rec.lines,
            chunk_rows: chunk_rows.max(1),
        })
    }

    /// The rest of the file in one table, or `None` when no data row is left.
    pub(super) fn rest(mut self) -> Result<Option<Table>> {
        self.chunk_rows = usize::MAX;
        Ok(self.next_chunk()?.map(|c| c.table))
    }

    /// The header's column names, as polars names them.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let mut body = self.header.clone();
        let mut lines = Vec::new();
        let mut read = 0u64;
        let mut record = Vec::new();
        while lines.len() < self.chunk_rows {
            record.clear();
            let rec = read_record(&mut self.file, &mut record, self.delimiter)
                .map_err(|e| Error::io(&self.path, e))?;
            if rec.lines == 0 {
                break;
            }
            read += record.len() as u64;
            let line = self.line;
            self.line += rec.lines;
            if record.iter().all(|&b| b == b'\n' || b == b'\r') {
                continue;
            }
            let at = format!("row {} (line {line})", self.rows + lines.len() + 1);
            let column = |j: usize| {
                self.columns.get(j).map_or(format!("field {}", j + 1), |c| format!("column {c:?}"))
            };
            if let Some((j, why)) = rec.malformed {
                return Err(Error::data(&self.path, format!("{at}, {}: {why}", column(j))));
            }
            if rec.fields != self.columns.len() {
                return Err(Error::data(
                    &self.path,
                    format!("{at}: {} fields, but the header has {}", rec.fields, self.columns.len()),
                ));
            }
            if std::str::from_utf8(&record).is_err() {
                let j = fields(&record, self.delimiter).iter().position(|f| std::str::from_utf8(f).is_err());
                return Err(Error::data(
                    &self.path,
                    format!(
                        "{at}, {}: not valid UTF-8 (the file must be UTF-8 text)",
                        column(j.unwrap_or(0))
                    ),
                ));
            }
            body.extend_from_slice(&record);
            if !record.ends_with(b"\n") {
                body.push(b'\n');
            }
            lines.push(line);
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let first_row = self.rows;
        let span = format!(
            "rows {}..={} (lines {}..={})",
            first_row + 1,
            first_row + lines.len(),
            lines[0],
            lines[lines.len() - 1]
        );
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .map_parse_options(|o| o.with_separator(self.delimiter))
            .into_reader_with_file_handle(Cursor::new(body))
            .finish()
            .map_err(|e| {
                // Later lines suggest reader options a pipeline cannot set.
                let first = e.to_string().lines().next().unwrap_or_default().to_owned();
                Error::data(&self.path, format!("{span}: cannot read as CSV: {first}"))
            })?;
        if df.height() != lines.len() {
            return Err(Error::data(
                &self.path,
                format!("{span}: {} records read as {} rows (a stray quote?)", lines.len(), df.height()),
            ));
        }
        self.rows += lines.len();
        let table = Table::chunk(&self.path, Format::Csv, df, first_row, Some(lines));
        Ok(Some(Chunk { table, progress: read }))
    }
}

/// Opens a regular file that is not empty, and its length.
pub(super) fn open_nonempty(path: &Path) -> Result<(File, u64)> {
    let (file, meta) = crate::data::open_regular(path).map_err(|e| e.at(path))?;
    if meta.len() == 0 {
        return Err(Error::data(path, "the file is empty (0 bytes); expected a header and data rows"));
    }
    Ok((file, meta.len()))
}

/// The header's names, refused when polars would make one up: an unnamed column would become
/// a feature nobody chose, and polars renames a second `V1` to `V1_duplicated_0`, so the
/// pipeline would silently read the first one only.
fn column_names(path: &Path, header: &[Vec<u8>]) -> Result<Vec<String>> {
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    let mut names = Vec::with_capacity(header.len());
    for (j, name) in header.iter().enumerate() {
        let Ok(text) = std::str::from_utf8(name) else {
            return Err(Error::data(path, format!("header (line 1), column {}: not valid UTF-8", j + 1)));
        };
        if text.trim().is_empty() {
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
                    shown(text)
                ),
            ));
        }
        names.push(text.to_owned());
    }
    Ok(names)
}
