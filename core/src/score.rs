//! `tempered score`: a run's model and its saved encoding score a file of new rows.
//!
//! The run folder gives everything: `config.toml` (the model's architecture),
//! `encoding.json` (how the file's columns became features, with the train split's
//! standardisation), `checkpoints/{clean,hardened}.safetensors` (the weights, standardisation
//! included, exactly as the run evaluated them) and, when present, `metrics.json` (the
//! operating threshold). Rows are read, encoded, predicted and written a chunk at a time, so
//! a file larger than memory can be scored; the output appears whole or not at all.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};

use candle_core::Device;
use polars::prelude::{
    Column, CsvReadOptions, CsvWriter, DataFrame, DataType, IntoColumn, NamedFrom, ParquetReader,
    ParquetWriter, SerReader, SerWriter, Series,
};
use tempered_core::data::Examples;
use tempered_core::data::tabular::{ColumnEncoding, ENCODING_VERSION, Encoding};
use tempered_core::model::{self, Mlp};
use tempered_core::pipeline::{Pipeline, Spec};
use tempered_core::progress::Progress;
use tempered_core::{Error, Result, evaluate};

/// Rows per chunk: large enough that the per-chunk costs (a Parquet slice, a polars parse)
/// vanish, small enough that a chunk of a wide table stays a few tens of MB.
const CHUNK_ROWS: usize = 16_384;
/// Rows per forward pass, as the engine's own evaluation uses.
const PREDICT_BATCH: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    Clean,
    Hardened,
}

impl ModelChoice {
    fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Hardened => "hardened",
        }
    }

    /// The `clean.<phase>` of `metrics.json` that measured this model.
    fn phase(self) -> &'static str {
        match self {
            Self::Clean => "before",
            Self::Hardened => "after",
        }
    }
}

pub struct Options {
    pub run: PathBuf,
    pub input: PathBuf,
    pub out: PathBuf,
    pub model: Option<ModelChoice>,
    pub threshold: Option<f64>,
}

pub struct Scored {
    pub rows: usize,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
}

fn format_of(path: &Path, what: &str) -> Result<Format> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("parquet" | "pq") => Ok(Format::Parquet),
        _ => Err(Error::data(path, format!("unsupported {what} file type; expected .csv or .parquet"))),
    }
}

pub fn score(opts: &Options) -> Result<Scored> {
    let run = &opts.run;
    let config = run.join("config.toml");
    let src = std::fs::read_to_string(&config).map_err(|e| {
        Error::msg(format!(
            "{}: not a run folder (cannot read {}: {e}); give the folder `tempered run --out` wrote",
            run.display(),
            config.display()
        ))
    })?;
    let pipeline = Pipeline::parse(&config, &src)?;
    let spec = match &pipeline.spec {
        Spec::Tabular(s) => s,
        other => {
            return Err(Error::msg(format!(
                "{}: a {} run; `tempered score` scores tabular runs only",
                run.display(),
                other.modality()
            )));
        }
    };
    let encoding = read_encoding(&run.join("encoding.json"))?;
    let (choice, checkpoint) = checkpoint(run, opts.model)?;
    let n_classes = encoding.classes.len();
    let threshold = threshold(run, choice, opts.threshold, n_classes)?;
    // The first line says which decision rule the output holds, and why.
    match &threshold {
        Some((t, from)) => tracing::info!(
            "threshold {t} ({from}); scoring {} with the {} model of {}",
            opts.input.display(),
            choice.name(),
            run.display()
        ),
        None => tracing::info!(
            "no threshold ({n_classes} classes: decision is the most probable class); scoring {} with the {} model of {}",
            opts.input.display(),
            choice.name(),
            run.display()
        ),
    }

    let mean: Vec<f32> = encoding.features.iter().map(|f| f.mean).collect();
    let std: Vec<f32> = encoding.features.iter().map(|f| f.std).collect();
    // The seed only initialises weights the checkpoint then replaces, standardisation too.
    let mlp = Mlp::new(&spec.model, &mean, &std, n_classes, 0, &Device::Cpu)?;
    model::load(&mlp, &checkpoint)
        .map_err(|e| e.context(format!("{} model {}", choice.name(), checkpoint.display())))?;

    let in_format = format_of(&opts.input, "input")?;
    let out_format = format_of(&opts.out, "output")?;
    let mut reader = Reader::open(&opts.input, in_format)?;
    let columns = reader.columns().to_vec();
    let needed: Vec<&str> = encoding.columns.iter().map(ColumnEncoding::column).collect();
    let missing: Vec<&str> = needed.iter().copied().filter(|c| !columns.iter().any(|k| k == c)).collect();
    if !missing.is_empty() {
        return Err(Error::data(
            &opts.input,
            format!(
                "column(s) {} not found: the model's encoding needs them; the file has columns: {}",
                quoted(&missing),
                columns.join(", ")
            ),
        ));
    }
    let needed_set: HashSet<&str> = needed.iter().copied().collect();
    let passthrough: Vec<String> =
        columns.iter().filter(|c| !needed_set.contains(c.as_str())).cloned().collect();
    let outputs: Vec<String> = match n_classes {
        2 => vec!["probability".to_owned()],
        _ => encoding.classes.iter().map(|c| format!("p_{c}")).collect(),
    };
    if let Some(c) = passthrough.iter().find(|c| outputs.contains(c) || *c == "decision") {
        return Err(Error::data(
            &opts.input,
            format!("column {c:?} would clash with the score column of that name: rename it in the input"),
        ));
    }

    let out_dir = opts.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !out_dir.is_dir() {
        return Err(Error::msg(format!(
            "--out {}: the folder {} does not exist",
            opts.out.display(),
            out_dir.display()
        )));
    }
    let mut rows = 0;
    tempered_core::files::write_with(&opts.out, |tmp| {
        let file = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut writer = Writer::new(file, out_format);
        let mut progress = Progress::new(reader.progress_label(), reader.total());
        while let Some(chunk) = reader.next_chunk()? {
            let x = encode(&encoding, &chunk, &opts.input)?;
            let (pred, probs) = evaluate::predict(
                &mlp,
                &Examples::Dense { data: x, width: encoding.features.len() },
                PREDICT_BATCH,
            )?;
            let mut cols: Vec<Column> = passthrough
                .iter()
                .map(|c| chunk.df.column(c).cloned())
                .collect::<std::result::Result<_, _>>()?;
            let decision = match &threshold {
                Some((t, _)) => {
                    let p: Vec<f32> = probs.iter().map(|p| p[1]).collect();
                    let d: Vec<i32> = p.iter().map(|&p| i32::from(p >= *t as f32)).collect();
                    cols.push(Series::new("probability".into(), p).into_column());
                    Series::new("decision".into(), d).into_column()
                }
                None => {
                    for (k, name) in outputs.iter().enumerate() {
                        let p: Vec<f32> = probs.iter().map(|p| p[k]).collect();
                        cols.push(Series::new(name.as_str().into(), p).into_column());
                    }
                    let d: Vec<&str> = pred.iter().map(|&c| encoding.classes[c as usize].as_str()).collect();
                    Series::new("decision".into(), d).into_column()
                }
            };
            cols.push(decision);
            let mut out = DataFrame::new(chunk.df.height(), cols)?;
            out.rechunk_mut();
            writer
                .write(&out)
                .map_err(|e| Error::external(format!("{}: cannot write", opts.out.display()), e))?;
            rows += out.height();
            progress.inc(chunk.progress);
        }
        progress.finish();
        if rows == 0 {
            return Err(Error::data(&opts.input, "no data rows (only a header)"));
        }
        writer.finish().map_err(|e| Error::external(format!("{}: cannot write", opts.out.display()), e))
    })?;
    Ok(Scored { rows, out: opts.out.clone() })
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

fn read_encoding(path: &Path) -> Result<Encoding> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::msg(format!(
            "{}: cannot read the run's encoding ({e}); runs of tabular pipelines write it beside config.toml",
            path.display()
        ))
    })?;
    let enc: Encoding = serde_json::from_slice(&bytes)
        .map_err(|e| Error::data(path, format!("not an encoding this version reads: {e}")))?;
    if enc.version != ENCODING_VERSION {
        return Err(Error::data(
            path,
            format!("encoding version {}, this tempered reads version {ENCODING_VERSION}", enc.version),
        ));
    }
    Ok(enc)
}

/// The asked-for model, else the hardened one when hardening finished, else the clean one.
fn checkpoint(run: &Path, choice: Option<ModelChoice>) -> Result<(ModelChoice, PathBuf)> {
    let path = |c: ModelChoice| run.join("checkpoints").join(format!("{}.safetensors", c.name()));
    let choice = match choice {
        Some(c) => c,
        None if path(ModelChoice::Hardened).is_file() => ModelChoice::Hardened,
        None => ModelChoice::Clean,
    };
    let p = path(choice);
    if !p.is_file() {
        return Err(Error::msg(format!(
            "{}: no {} model ({} is missing: {})",
            run.display(),
            choice.name(),
            p.display(),
            match choice {
                ModelChoice::Hardened => "the run did not harden, or did not finish hardening",
                ModelChoice::Clean => "the run did not finish training",
            }
        )));
    }
    Ok((choice, p))
}

/// The decision threshold and where it came from; `None` for more than two classes.
fn threshold(
    run: &Path,
    choice: ModelChoice,
    given: Option<f64>,
    n_classes: usize,
) -> Result<Option<(f64, String)>> {
    if n_classes != 2 {
        if given.is_some() {
            return Err(Error::msg(format!(
                "--threshold applies to two classes; this run has {n_classes} (its decision is the most probable class)"
            )));
        }
        return Ok(None);
    }
    if let Some(t) = given {
        if !(0.0..=1.0).contains(&t) {
            return Err(Error::msg(format!("--threshold {t}: a probability threshold is within [0, 1]")));
        }
        return Ok(Some((t, "from --threshold".to_owned())));
    }
    let path = run.join("metrics.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some((0.5, "the default: the run has no metrics.json".to_owned())));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let metrics: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::data(&path, format!("not JSON: {e}")))?;
    Ok(Some(match operating_threshold(&metrics, choice) {
        Some((t, at)) => (t, format!("the run's operating threshold, {} {at}", path.display())),
        None => (0.5, format!("the default: {} has no operating threshold", path.display())),
    }))
}

/// A `threshold` number under `clean`: first in the measurements of the chosen model
/// (`clean.before` for the clean one, `clean.after` for the hardened one), then anywhere
/// else under `clean` but the other model's. Returns it and its dotted path.
fn operating_threshold(metrics: &serde_json::Value, choice: ModelChoice) -> Option<(f64, String)> {
    fn find(v: &serde_json::Value, at: &str, skip: &[&str]) -> Option<(f64, String)> {
        let obj = v.as_object()?;
        if let Some(t) = obj.get("threshold").and_then(serde_json::Value::as_f64) {
            return Some((t, format!("{at}.threshold")));
        }
        obj.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .find_map(|(k, v)| find(v, &format!("{at}.{k}"), &[]))
    }
    let clean = metrics.get("clean")?;
    let other = match choice {
        ModelChoice::Clean => ModelChoice::Hardened.phase(),
        ModelChoice::Hardened => ModelChoice::Clean.phase(),
    };
    let own = choice.phase();
    clean
        .get(own)
        .and_then(|v| find(v, &format!("clean.{own}"), &[]))
        .or_else(|| find(clean, "clean", &[own, other]))
        .filter(|(t, _)| (0.0..=1.0).contains(t))
}

/// Rows of the input, as polars read them, and where they are in the file.
struct Chunk {
    df: DataFrame,
    /// 0-based data row of the chunk's first row.
    first_row: usize,
    /// CSV: the line each row starts on (the header is line 1).
    lines: Option<Vec<usize>>,
    /// Units of the progress total this chunk covers.
    progress: u64,
}

impl Chunk {
    fn at(&self, i: usize) -> String {
        match &self.lines {
            Some(lines) => format!("row {} (line {})", self.first_row + i + 1, lines[i]),
            None => format!("row {}", self.first_row + i + 1),
        }
    }
}

/// Encodes every row of `chunk` as the run's training rows were; an error names the row.
fn encode(encoding: &Encoding, chunk: &Chunk, path: &Path) -> Result<Vec<f32>> {
    let mut cells: HashMap<&str, Vec<Option<String>>> = HashMap::new();
    for c in &encoding.columns {
        // A Parquet boolean is 1/0 to a numeric column and true/false to a text one, as
        // the training reader takes it.
        let numeric = matches!(c, ColumnEncoding::Number { .. });
        let col = chunk.df.column(c.column())?;
        cells.insert(
            c.column(),
            texts(col, numeric).map_err(|m| Error::data(path, format!("column {:?}: {m}", c.column())))?,
        );
    }
    let n = chunk.df.height();
    let mut x = Vec::with_capacity(n * encoding.features.len());
    for i in 0..n {
        let row = encoding
            .encode_row(|c| cells.get(c).and_then(|v| v[i].as_deref()))
            .map_err(|m| Error::data(path, format!("{}, {m}", chunk.at(i))))?;
        x.extend(row);
    }
    Ok(x)
}

/// A column's cells as the text the encoding reads (`None`: null).
fn texts(col: &Column, numeric: bool) -> std::result::Result<Vec<Option<String>>, String> {
    let err = |e: polars::error::PolarsError| e.to_string();
    Ok(match col.dtype() {
        DataType::String => col.str().map_err(err)?.iter().map(|c| c.map(str::to_owned)).collect(),
        DataType::Boolean => col
            .bool()
            .map_err(err)?
            .iter()
            .map(|v| v.map(|b| if numeric { u8::from(b).to_string() } else { b.to_string() }))
            .collect(),
        dt if dt.is_integer() => col
            .cast(&DataType::Int64)
            .map_err(err)?
            .i64()
            .map_err(err)?
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        dt if dt.is_numeric() => col
            .cast(&DataType::Float64)
            .map_err(err)?
            .f64()
            .map_err(err)?
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        dt => return Err(format!("has type {dt}; expected numbers or text")),
    })
}

enum Reader {
    Csv(CsvChunks),
    Parquet { path: PathBuf, columns: Vec<String>, rows: usize, next: usize },
}

impl Reader {
    fn open(path: &Path, format: Format) -> Result<Self> {
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

    fn columns(&self) -> &[String] {
        match self {
            Self::Csv(c) => &c.columns,
            Self::Parquet { columns, .. } => columns,
        }
    }

    /// A CSV file's rows are not counted before they are read: its progress is in bytes.
    fn progress_label(&self) -> &'static str {
        match self {
            Self::Csv(_) => "scoring (bytes)",
            Self::Parquet { .. } => "scoring (rows)",
        }
    }

    fn total(&self) -> u64 {
        match self {
            Self::Csv(c) => c.bytes,
            Self::Parquet { rows, .. } => *rows as u64,
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
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
struct CsvChunks {
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

/// A record over this many lines is taken for a stray quote, before it swallows the file.
const MAX_RECORD_LINES: usize = 10_000;

/// One CSV record's shape, as [`read_record`] found it.
struct Record {
    /// Lines it spans: 0 at the end of the file.
    lines: usize,
    fields: usize,
    /// The first field polars would not split as the training reader does, and why.
    malformed: Option<(usize, &'static str)>,
}

/// Appends one CSV record (through its line break, or to the end of the file) to `out`.
/// Quoting as polars and the training reader take it: `"` opens a quoted field only at the
/// start of a field, `""` inside one is a quote, and a line break inside one continues the
/// record.
fn read_record(r: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<Record> {
    let mut rec = Record { lines: 0, fields: 1, malformed: None };
    let (mut quoted, mut at_start, mut closed) = (false, true, false);
    while rec.lines < MAX_RECORD_LINES {
        let start = out.len();
        if r.read_until(b'\n', out)? == 0 {
            break;
        }
        rec.lines += 1;
        let mut i = start;
        while i < out.len() {
            let c = out[i];
            i += 1;
            if quoted {
                match c {
                    b'"' if out.get(i) == Some(&b'"') => i += 1,
                    b'"' => (quoted, closed) = (false, true),
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' if at_start => quoted = true,
                b',' => {
                    rec.fields += 1;
                    (at_start, closed) = (true, false);
                    continue;
                }
                b'\r' | b'\n' => {}
                _ if closed => {
                    let why = "text after the closing quote (a quoted field ends at its quote)";
                    rec.malformed.get_or_insert((rec.fields - 1, why));
                }
                b'"' => {
                    let why = "a quote inside an unquoted field (quote the whole field and write the quote twice: \"a\"\"b\")";
                    rec.malformed.get_or_insert((rec.fields - 1, why));
                }
                _ => {}
            }
            at_start = false;
        }
        if !quoted {
            return Ok(rec);
        }
    }
    if quoted && rec.lines > 0 {
        let why = if rec.lines >= MAX_RECORD_LINES {
            "a quoted field does not end within 10,000 lines (a stray quote?)"
        } else {
            "a quoted field is never closed"
        };
        rec.malformed.get_or_insert((rec.fields - 1, why));
    }
    Ok(rec)
}

/// The fields of one record, unquoted.
fn fields(record: &[u8]) -> Vec<Vec<u8>> {
    let record = record.strip_suffix(b"\n").unwrap_or(record);
    let record = record.strip_suffix(b"\r").unwrap_or(record);
    let (mut out, mut field, mut quoted) = (Vec::new(), Vec::new(), false);
    let mut i = 0;
    while i < record.len() {
        let c = record[i];
        match c {
            b'"' if quoted && record.get(i + 1) == Some(&b'"') => {
                field.push(b'"');
                i += 1;
            }
            b'"' => quoted = !quoted,
            b',' if !quoted => out.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
        i += 1;
    }
    out.push(field);
    out
}

enum Writer {
    /// The file until the first batch, whose columns make the writer.
    Csv(Option<File>, Option<polars::io::csv::write::BatchedWriter<File>>),
    // Boxed: a Parquet writer is several times the size of a CSV one.
    Parquet(Option<File>, Option<Box<polars::io::parquet::write::BatchedWriter<File>>>),
}

impl Writer {
    fn new(file: File, format: Format) -> Self {
        match format {
            Format::Csv => Self::Csv(Some(file), None),
            Format::Parquet => Self::Parquet(Some(file), None),
        }
    }

    fn write(&mut self, df: &DataFrame) -> polars::error::PolarsResult<()> {
        match self {
            Self::Csv(file, w) => {
                if let Some(f) = file.take() {
                    *w = Some(CsvWriter::new(f).include_header(true).batched(df.schema())?);
                }
                w.as_mut().expect("made at the first batch").write_batch(df)
            }
            Self::Parquet(file, w) => {
                if let Some(f) = file.take() {
                    *w = Some(Box::new(ParquetWriter::new(f).batched(df.schema())?));
                }
                w.as_mut().expect("made at the first batch").write_batch(df)
            }
        }
    }

    fn finish(self) -> polars::error::PolarsResult<()> {
        match self {
            Self::Csv(_, Some(mut w)) => w.finish(),
            Self::Parquet(_, Some(w)) => w.finish().map(drop),
            Self::Csv(_, None) | Self::Parquet(_, None) => Ok(()),
        }
    }
}
