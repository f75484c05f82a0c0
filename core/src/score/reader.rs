//! The input file (CSV or Parquet) read a chunk of rows at a time, each row knowing where it
//! is in the file, so that a file larger than memory can be scored and an error names it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use polars::prelude::{CsvReadOptions, DataFrame, ParquetReader, SerReader};
use tempered_core::{Error, Result};

use super::record::{fields, read_record};
use super::{CHUNK_ROWS, Format};

/// Rows of the input, as polars read them, and where they are in the file.
pub(super) struct Chunk {
    pub(super) df: DataFrame,
    /// 0-based data row of the chunk's first row.
    first_row: usize,
    /// CSV: the line each row starts on (the header is line 1).
    lines: Option<Vec<usize>>,
    /// Units of the progress total this chunk covers.
    pub(super) progress: u64,
}

impl Chunk {
    pub(super) fn at(&self, i: usize) -> String {
        match &self.lines {
            Some(lines) => format!("row {} (line {})", self.first_row + i + 1, lines[i]),
            None => format!("row {}", self.first_row + i + 1),
        }
    }
}

pub(super) enum Reader {
    Csv(CsvChunks),
    Parquet { path: PathBuf, columns: Vec<String>, rows: usize, next: usize },
}

impl Reader {
    pub(super) fn open(path: &Path, format: Format) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::data(path, "not a regular file"));
        }
        match format {
            Format::Csv => Ok(Self::Csv(CsvChunks::open(path, meta.len())?)),
            Format::Parquet => {
                let open = || File::open(path).map_err(|e| Error::io(path, e));
                let bad = |e| Error::external(format!("{}: cannot read as Parquet", path.display()), e);
                let mut r = ParquetReader::new(open()?);
                let rows = r.num_rows().map_err(bad)?;
                let columns = r.schema().map_err(bad)?.iter_names().map(|n| n.to_string()).collect();
                Ok(Self::Parquet { path: path.to_owned(), columns, rows, next: 0 })
            }
        }
    }

    pub(super) fn columns(&self) -> &[String] {
        match self {
            Self::Csv(c) => &c.columns,
            Self::Parquet { columns, .. } => columns,
        }
    }

    /// A CSV file's rows are not counted before they are read: its progress is in bytes.
    pub(super) fn progress_label(&self) -> &'static str {
        match self {
            Self::Csv(_) => "scoring (bytes)",
            Self::Parquet { .. } => "scoring (rows)",
        }
    }

    pub(super) fn total(&self) -> u64 {
        match self {
            Self::Csv(c) => c.bytes,
            Self::Parquet { rows, .. } => *rows as u64,
        }
    }

    pub(super) fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        match self {
            Self::Csv(c) => c.next_chunk(),
            Self::Parquet { path, rows, next, .. } => {
                if *next >= *rows {
                    return Ok(None);
                }
                let len = CHUNK_ROWS.min(*rows - *next);
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
                let chunk = Chunk { df, first_row: *next, lines: None, progress: len as u64 };
                *next += len;
                Ok(Some(chunk))
            }
        }
    }
}
/// A CSV file cut into chunks of whole records (a quoted field may span lines), each parsed
/// by polars with the header in front, every column as text like the training reader.
pub(super) struct CsvChunks {
    path: PathBuf,
    file: BufReader<File>,
    header: Vec<u8>,
    columns: Vec<String>,
    bytes: u64,
    /// Data rows and lines read so far.
    rows: usize,
    line: usize,
}

impl CsvChunks {
    fn open(path: &Path, bytes: u64) -> Result<Self> {
        let mut file = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
        let mut header = Vec::new();
        let rec = read_record(&mut file, &mut header).map_err(|e| Error::io(path, e))?;
        // Progress counts the bytes of data rows.
        let bytes = bytes.saturating_sub(header.len() as u64);
        if rec.lines == 0 {
            return Err(Error::data(path, "the file is empty; expected a header and data rows"));
        }
        if let Some((j, why)) = rec.malformed {
            return Err(Error::data(path, format!("header (line 1), field {}: {why}", j + 1)));
        }
        if let Some(rest) = header.strip_prefix(b"\xEF\xBB\xBF") {
            header = rest.to_vec();
        }
        if !header.ends_with(b"\n") {
            header.push(b'\n');
        }
        let columns: Vec<String> =
            fields(&header).into_iter().map(|f| String::from_utf8_lossy(&f).into_owned()).collect();
        let mut seen = HashSet::new();
        if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(Error::data(
                path,
                format!("header (line 1): two columns are named {dup:?}; every column needs its own name"),
            ));
        }
        Ok(Self { path: path.to_owned(), file, header, columns, bytes, rows: 0, line: 1 + rec.lines })
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let mut body = self.header.clone();
        let mut lines = Vec::new();
        let mut read = 0u64;
        let mut record = Vec::new();
        while lines.len() < CHUNK_ROWS {
            record.clear();
            let rec = read_record(&mut self.file, &mut record).map_err(|e| Error::io(&self.path, e))?;
            if rec.lines == 0 {
                break;
            }
            read += record.len() as u64;
            let line = self.line;
            self.line += rec.lines;
            // Blank lines hold no row (polars skips them too).
            if record.iter().all(|&b| b == b'\n' || b == b'\r') {
                continue;
            }
            let at = format!("row {} (line {line})", self.rows + lines.len() + 1);
            if let Some((j, why)) = rec.malformed {
                let column =
                    self.columns.get(j).map_or(format!("field {}", j + 1), |c| format!("column {c:?}"));
                return Err(Error::data(&self.path, format!("{at}, {column}: {why}")));
            }
            if rec.fields > self.columns.len() {
                return Err(Error::data(
                    &self.path,
                    format!("{at}: {} fields, but the header has {}", rec.fields, self.columns.len()),
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
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .into_reader_with_file_handle(Cursor::new(body))
            .finish()
            .map_err(|e| {
                let first = e.to_string().lines().next().unwrap_or_default().to_owned();
                Error::data(
                    &self.path,
                    format!(
                        "rows {}..={} (lines {}..={}): cannot read as CSV: {first}",
                        first_row + 1,
                        first_row + lines.len(),
                        lines[0],
                        lines[lines.len() - 1]
                    ),
                )
            })?;
        if df.height() != lines.len() {
            return Err(Error::data(
                &self.path,
                format!(
                    "rows {}..={} (lines {}..={}): {} records read as {} rows (a stray quote?)",
                    first_row + 1,
                    first_row + lines.len(),
                    lines[0],
                    lines[lines.len() - 1],
                    lines.len(),
                    df.height()
                ),
            ));
        }
        self.rows += lines.len();
        Ok(Some(Chunk { df, first_row, lines: Some(lines), progress: read }))
    }
}
