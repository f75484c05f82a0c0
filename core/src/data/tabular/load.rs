//! Loading a table in three passes over its rows, each a chunk at a time: the labels (and
//! the time order) decide the split; the columns' statistics on every row and on the train
//! rows fit the encoding; then every row is encoded into its split, in memory or on disk.
//! Nothing here holds more than a chunk of raw cells, so a table read a chunk at a time
//! (`stream`) needs memory for its labels, not for its rows.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tempered_plugin::{Direction, TabularConstraints};

use super::cells::{self, ColumnStats, Parsed};
use super::config::{MissingPolicy, Resolved, STREAM_ABOVE_BYTES, check_groups, column_key};
use super::encoding::ColumnEncoding;
use super::labels::Labels;
use super::source::Source;
use super::split::{SPLIT_NAMES, TRAIN, split_by_time, split_classes};
use super::{
    ENCODING_VERSION, Encoding, Rows, Split, TabularData, TabularDataConfig, datetime_key, glob_match,
    partitions, relations, transitions,
};
use crate::data::rows::{RowFile, RowWriter};
use crate::data::stratify;
use crate::data::table::Table;
use crate::data::table::chunks::CHUNK_ROWS;
use crate::{Error, Result};

/// A row in no split (left out by `limit`).
const DROPPED: u8 = u8::MAX;

/// Reads, checks and splits the table `cfg` describes. `base_dir` resolves a relative `path`;
/// `seed` makes the subsample and the split reproducible. A streamed table keeps its rows in
/// the system's temporary folder.
pub fn load(cfg: &TabularDataConfig, base_dir: &Path, seed: u64) -> Result<TabularData> {
    load_in(cfg, base_dir, seed, &std::env::temp_dir())
}

/// [`load`], a streamed table keeping its rows in unnamed files in `scratch`.
pub fn load_in(cfg: &TabularDataConfig, base_dir: &Path, seed: u64, scratch: &Path) -> Result<TabularData> {
    load_in_chunks(cfg, base_dir, seed, scratch, CHUNK_ROWS)
}

/// [`load_in`], a streamed table read `chunk_rows` rows at a time (the numbers do not depend
/// on it: tests use small chunks to show it).
pub fn load_in_chunks(
    cfg: &TabularDataConfig,
    base_dir: &Path,
    seed: u64,
    scratch: &Path,
    chunk_rows: usize,
) -> Result<TabularData> {
    cfg.validate().map_err(|m| Error::Config(format!("[data] {m}")))?;
    let path = cfg.resolved_path(base_dir);
    // Each source (the train path, then the validation and test files) may be a folder or
    // a glob of partitions: `parts[s]` is how many files source `s` expands to.
    let mut files = Vec::new();
    let mut parts = Vec::new();
    for source in cfg.resolved_files(base_dir) {
        let expanded = partitions::expand(&source)?;
        parts.push(expanded.len());
        files.extend(expanded);
    }
    let bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let chunked = cfg.stream.unwrap_or(bytes > STREAM_ABOVE_BYTES);
    if chunked {
        tracing::info!("{}: {bytes} bytes, read a chunk of rows at a time", path.display());
    }
    let (source, columns) = Source::open(&files, chunked.then_some(chunk_rows))?;
    let missing = |what: String| {
        Error::data(&files[0], format!("{what} not found; the file has columns: {}", columns.join(", ")))
    };
    let has = |name: &str| columns.iter().any(|c| c == name);

    if !has(&cfg.label) {
        return Err(missing(format!("label column {:?}", cfg.label)));
    }
    let names: Vec<String> = match &cfg.features {
        Some(f) => f.clone(),
        None => columns.iter().filter(|c| **c != cfg.label).cloned().collect(),
    };
    if names.is_empty() {
        return Err(Error::data(
            &path,
            format!("no feature columns: the file has only the label {:?}", cfg.label),
        ));
    }
    if let Some(name) = names.iter().find(|n| !has(n)) {
        return Err(missing(format!("feature column {name:?}")));
    }
    if let Some(name) = cfg.exact_columns().find(|n| !has(n)) {
        return Err(missing(format!("column {name:?} (of [data.{}])", column_key(name))));
    }
    if let Some(by) = cfg.split.by.as_deref().filter(|c| !has(c)) {
        return Err(missing(format!("split.by column {by:?}")));
    }
    for pattern in cfg.patterns() {
        if !names.iter().any(|n| glob_match(pattern, n)) {
            return Err(Error::data(
                &path,
                format!(
                    "[data.{}] matches no feature column (a pattern must match at least one); the feature columns are: {}",
                    column_key(pattern),
                    names.join(", ")
                ),
            ));
        }
    }
    let resolved: Vec<Resolved> = names
        .iter()
        .map(|n| cfg.resolve(n))
        .collect::<std::result::Result<_, _>>()
        .map_err(|m| Error::data(&path, format!("[data] {m}")))?;
    let pairs: Vec<(&str, Resolved)> =
        names.iter().map(String::as_str).zip(resolved.iter().cloned()).collect();
    check_groups(&pairs).map_err(|m| Error::data(&path, format!("[data] {m}")))?;
    let (groups, group_keys) = one_hot_groups(&resolved);

    // Pass 1: the labels and the time order decide the split.
    let mut labels = Labels::new(cfg.classes.as_deref());
    let mut key = Vec::new();
    let mut file_starts = Vec::new();
    let n = source.each("reading labels", |k, t| {
        if file_starts.len() == k {
            file_starts.push(t.offset);
        }
        labels.read(t, &cfg.label)?;
        if let Some(column) = &cfg.split.by {
            key.extend(time_keys(t, column)?);
        }
        Ok(())
    })?;
    let (y_all, classes) = labels.finish(&files[0], &cfg.label)?;
    let n_classes = classes.len();
    let split_rows = split(cfg, &path, seed, &y_all, &classes, &key, &parts, &file_starts, &files)?;
    drop(key);
    for (s, rows) in split_rows.iter().enumerate() {
        if rows.is_empty() {
            return Err(Error::data(&path, format!("the {} split is empty", SPLIT_NAMES[s])));
        }
    }
    let mut assign = vec![DROPPED; n];
    for (s, rows) in split_rows.iter().enumerate() {
        rows.iter().for_each(|&i| assign[i] = s as u8);
    }
    let sizes: Vec<usize> = split_rows.iter().map(Vec::len).collect();
    drop(split_rows);

    // Pass 2: what each column holds, on every row and on the train rows.
    let mut stats: Vec<ColumnStats> = names.iter().map(|_| ColumnStats::default()).collect();
    source.each("fitting the encoding", |_, t| {
        let train: Vec<bool> = (0..t.height()).map(|i| assign[t.offset + i] == TRAIN as u8).collect();
        let mut parsed = Vec::with_capacity(names.len());
        for (j, name) in names.iter().enumerate() {
            let p = cells::read_column(t, name, &resolved[j], stats[j].shape())?;
            let impute = resolved[j].missing == MissingPolicy::Impute;
            stats[j].add(t, name, &p, &train, impute)?;
            parsed.push(p);
        }
        check_one_hot(t, &names, &parsed, &groups, &group_keys)
    })?;
    let mut features = Vec::with_capacity(names.len());
    let mut encodings = Vec::with_capacity(names.len());
    for (j, (name, s)) in names.iter().zip(stats).enumerate() {
        let (enc, f) = ColumnEncoding::fit(name, &resolved[j], s, groups[j], &files[0])?;
        features.extend(f);
        encodings.push(enc);
    }

    // Pass 3: every row encoded into its split, in file order.
    let width = features.len();
    let mut out: Vec<SplitRows> =
        (0..3).map(|s| SplitRows::new(chunked, scratch, width, sizes[s])).collect::<Result<_>>()?;
    // Σx over the train rows, summed in row order as `Iterator::sum` would.
    let mut sums = vec![std::iter::empty::<f64>().sum::<f64>(); width];
    let shapes: Vec<_> = encodings.iter().map(ColumnEncoding::shape).collect();
    let mut row = vec![0.0f32; width];
    source.each("encoding", |_, t| {
        let mut columns: Vec<Vec<f32>> = Vec::with_capacity(width);
        for (j, name) in names.iter().enumerate() {
            let p = cells::read_column(t, name, &resolved[j], Some(&shapes[j]))?;
            columns.extend(encodings[j].apply(&p));
        }
        for i in 0..t.height() {
            let g = t.offset + i;
            let s = assign[g];
            if s == DROPPED {
                continue;
            }
            row.iter_mut().zip(&columns).for_each(|(v, c)| *v = c[i]);
            if s == TRAIN as u8 {
                sums.iter_mut().zip(&row).for_each(|(a, &v)| *a += f64::from(v));
            }
            out[s as usize].push(&row, y_all[g], g + 1)?;
        }
        Ok(())
    })?;
    drop(assign);
    let [train, validation, test]: [Split; 3] = out
        .into_iter()
        .map(|s| s.finish(width))
        .collect::<Result<Vec<_>>>()?
        .try_into()
        .expect("three splits");

    // Standardisation from the train split only.
    let m = train.len() as f64;
    let mean: Vec<f64> = sums.iter().map(|s| s / m).collect();
    let relations = relations::resolve(&cfg.relations, &features).map_err(|m| Error::data(&path, m))?;
    let mut squares = vec![std::iter::empty::<f64>().sum::<f64>(); width];
    let mut held = vec![0usize; relations.len()];
    each_row(&train, |row| {
        for ((sq, &v), mean) in squares.iter_mut().zip(row).zip(&mean) {
            *sq += (f64::from(v) - mean).powi(2);
        }
        for (h, r) in held.iter_mut().zip(&relations) {
            *h += usize::from(r.residual(row).abs() <= r.tolerance(row));
        }
    })?;
    for ((f, mean), sq) in features.iter_mut().zip(&mean).zip(&squares) {
        let std = (sq / m).sqrt();
        f.mean = *mean as f32;
        f.column.scale = if std > 1e-12 && (std as f32) > 0.0 { std as f32 } else { 1.0 };
    }
    for (r, held) in relations.iter().zip(&held) {
        // The judge enforces a relation on rows whose original keeps it; say how many do.
        tracing::info!(
            "relation `{}`: holds on {held} of {} train rows",
            features[r.column].name,
            train.len()
        );
    }

    let encoding = Encoding {
        version: ENCODING_VERSION,
        label: cfg.label.clone(),
        classes,
        columns: encodings,
        features: features.clone(),
    };
    let transitions =
        transitions(&names, &resolved, &groups, &features).map_err(|m| Error::data(&path, m))?;
    let constraints = TabularConstraints {
        directions: if features.iter().all(|f| f.direction == Direction::Any) {
            Vec::new()
        } else {
            features.iter().map(|f| f.direction).collect()
        },
        relations,
        transitions,
    };
    Ok(TabularData { path, features, n_classes, train, validation, test, encoding, constraints })
}

/// The rows of each split, sorted: the stratified seeded split of a `limit` subsample, the
/// files as given, or out of time.
#[allow(clippy::too_many_arguments)]
fn split(
    cfg: &TabularDataConfig,
    path: &Path,
    seed: u64,
    y_all: &[u32],
    classes: &[String],
    key: &[f64],
    parts: &[usize],
    file_starts: &[usize],
    files: &[PathBuf],
) -> Result<Vec<Vec<usize>>> {
    let (n, n_classes) = (y_all.len(), classes.len());
    if let Some(limit) = cfg.limit.filter(|&l| l < n && l < n_classes) {
        return Err(Error::Config(format!(
            "[data] limit = {limit} is smaller than the number of classes ({n_classes})"
        )));
    }
    let mut by_class = stratify::by_class(y_all, n_classes);
    stratify::subsample(&mut by_class, cfg.limit, &mut ChaCha8Rng::seed_from_u64(seed));
    let sorted = |mut rows: Vec<usize>| {
        rows.sort_unstable();
        rows
    };
    Ok(match &cfg.split.by {
        // Split in advance: each file is one split, whole.
        None if cfg.files.is_some() => {
            // The first file of the validation source, then of the test source.
            let starts = [file_starts[parts[0]], file_starts[parts[0] + parts[1]], n];
            let mut rows = vec![(0..starts[0]).collect::<Vec<usize>>()];
            rows.extend(starts.windows(2).map(|w| (w[0]..w[1]).collect()));
            rows
        }
        None => {
            let parts = split_classes(by_class, &cfg.split).map_err(|m| Error::data(path, m))?;
            (0..3).map(|s| sorted(parts.iter().flat_map(|p| p[s].iter().copied()).collect())).collect()
        }
        Some(column) => {
            let kept: Vec<usize> = by_class.into_iter().flatten().collect();
            let parts = split_by_time(kept, key, &cfg.split).map_err(|m| Error::data(path, m))?;
            let at = |g: usize| {
                let k = file_starts.partition_point(|&s| s <= g) - 1;
                format!("{} row {}", files[k].display(), g - file_starts[k] + 1)
            };
            tracing::info!(
                "out-of-time split by {column:?}: train from {}, test up to {}",
                at(parts[TRAIN][0]),
                at(*parts[2].last().expect("a test row"))
            );
            if let Some(c) = (0..n_classes).find(|&c| !parts[TRAIN].iter().any(|&i| y_all[i] as usize == c)) {
                return Err(Error::data(
                    path,
                    format!(
                        "the out-of-time train split (the earliest rows by {column:?}) has no row of class {:?}",
                        classes[c]
                    ),
                ));
            }
            parts.into_iter().map(sorted).collect()
        }
    })
}

/// One split's rows as they are encoded: in memory, or written to an unnamed file.
enum SplitRows {
    Memory { x: Vec<f32>, y: Vec<u32>, rows: Vec<usize> },
    Disk { x: RowWriter, y: Vec<u32>, rows: Vec<usize> },
}

impl SplitRows {
    fn new(disk: bool, scratch: &Path, width: usize, len: usize) -> Result<Self> {
        let (y, rows) = (Vec::with_capacity(len), Vec::with_capacity(len));
        Ok(if disk {
            Self::Disk { x: RowWriter::create_in(scratch, width)?, y, rows }
        } else {
            Self::Memory { x: Vec::with_capacity(len * width), y, rows }
        })
    }

    fn push(&mut self, row: &[f32], label: u32, file_row: usize) -> Result<()> {
        match self {
            Self::Memory { x, y, rows } => {
                x.extend_from_slice(row);
                y.push(label);
                rows.push(file_row);
            }
            Self::Disk { x, y, rows } => {
                x.push(row)?;
                y.push(label);
                rows.push(file_row);
            }
        }
        Ok(())
    }

    fn finish(self, width: usize) -> Result<Split> {
        Ok(match self {
            Self::Memory { x, y, rows } => Split { x: Rows::Memory(x), width, y, rows },
            Self::Disk { x, y, rows } => Split { x: Rows::Disk(x.finish()?), width, y, rows },
        })
    }
}

/// Calls `f` with every row of `split`, in order (a file's rows read a chunk at a time).
fn each_row(split: &Split, mut f: impl FnMut(&[f32])) -> Result<()> {
    let w = split.width;
    match &split.x {
        Rows::Memory(x) => x.chunks_exact(w.max(1)).for_each(f),
        Rows::Disk(file) => each_row_on_disk(file, w, &mut f)?,
    }
    Ok(())
}

fn each_row_on_disk(file: &RowFile, w: usize, f: &mut impl FnMut(&[f32])) -> Result<()> {
    const ROWS: usize = 16_384;
    for start in (0..file.len()).step_by(ROWS) {
        let x = file.range(start, (start + ROWS).min(file.len()))?;
        x.chunks_exact(w.max(1)).for_each(&mut *f);
    }
    Ok(())
}

/// A one-hot group: named by `group` (numeric columns), or a string categorical column's own.
#[derive(PartialEq)]
enum GroupKey<'a> {
    Named(&'a str),
    Column(usize),
}

/// Each column's one-hot group (numbered in order of first appearance), and the groups.
fn one_hot_groups(resolved: &[Resolved]) -> (Vec<Option<u32>>, Vec<GroupKey<'_>>) {
    let mut keys: Vec<GroupKey> = Vec::new();
    let groups = resolved
        .iter()
        .enumerate()
        .map(|(j, r)| {
            let key = match (&r.group, r.encoded_categorical()) {
                (Some(g), _) => GroupKey::Named(g),
                (None, true) => GroupKey::Column(j),
                (None, false) => return None,
            };
            Some(match keys.iter().position(|k| *k == key) {
                Some(i) => i as u32,
                None => {
                    keys.push(key);
                    (keys.len() - 1) as u32
                }
            })
        })
        .collect();
    (groups, keys)
}

/// Every row has exactly one 1 among the columns of each numeric one-hot group.
fn check_one_hot(
    table: &Table,
    names: &[String],
    parsed: &[Parsed],
    groups: &[Option<u32>],
    keys: &[GroupKey],
) -> Result<()> {
    for (g, key) in keys.iter().enumerate() {
        let GroupKey::Named(name) = key else { continue };
        let members: Vec<(usize, &[Option<f32>])> = (0..names.len())
            .filter(|&j| groups[j] == Some(g as u32))
            .filter_map(|j| match &parsed[j] {
                Parsed::Number(values) => Some((j, values.as_slice())),
                _ => None,
            })
            .collect();
        let n = members.first().map_or(0, |m| m.1.len());
        let ones = |i: usize| members.iter().filter(|m| m.1[i] == Some(1.0)).count();
        if let Some(i) = (0..n).find(|&i| ones(i) != 1) {
            let cells: Vec<String> = members
                .iter()
                .map(|(j, v)| format!("{} = {}", names[*j], v[i].unwrap_or(f32::NAN)))
                .collect();
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

/// The time order of every row by `column`: ISO dates and date-times (to the hour), or
/// numbers; an empty or unreadable cell is an error naming it.
fn time_keys(table: &Table, column: &str) -> Result<Vec<f64>> {
    let cells = table.texts(column)?;
    cells
        .iter()
        .enumerate()
        .map(|(row, cell)| {
            let text = cell.as_deref().ok_or_else(|| {
                table.cell_error(column, row, "empty: every row needs a time to be split by")
            })?;
            if let Ok(key) = datetime_key(text) {
                return Ok(key);
            }
            text.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                table.cell_error(column, row, format!("{text:?} is neither an ISO date nor a number"))
            })
        })
        .collect()
}
