//! A table's `path` as one file, a folder of partitions, or a glob over file names:
//! `data/tx/` reads every `.csv` or `.parquet` file directly inside it, and
//! `data/tx/part-*.parquet` every file whose name matches, in name order either way.

use std::path::{Path, PathBuf};

use super::config::glob_match;
use crate::data::table::{Format, format_of};
use crate::{Error, Result};

/// Whether the file name of `path` is a glob pattern (`*`, `?`).
fn is_glob(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(['*', '?']))
}

/// The files `path` stands for, sorted by name: itself, the tables in a folder, or the
/// files a glob matches. A folder or glob that yields none, or that mixes CSV and Parquet,
/// is an error naming it.
pub fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    let (dir, pattern) = if is_glob(path) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        (path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf), Some(name))
    } else if path.is_dir() {
        (path.to_owned(), None)
    } else {
        return Ok(vec![path.to_owned()]);
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let wanted = match &pattern {
                Some(g) => glob_match(g, name),
                None => format_of(p).is_some(),
            };
            // Hidden files (an editor's or a writer's temporary) are never partitions.
            wanted && !name.starts_with('.')
        })
        .collect();
    files.sort();
    let what = match &pattern {
        Some(g) => format!("no file in {} matches {g:?}", dir.display()),
        None => format!("{} holds no .csv or .parquet file", dir.display()),
    };
    let Some(first) = files.first() else { return Err(Error::data(path, what)) };
    let kind = |p: &Path| format_of(p).map(|f| f == Format::Csv);
    if let Some(other) = files.iter().find(|p| kind(p) != kind(first)) {
        return Err(Error::data(
            path,
            format!(
                "{} and {} are not the same file type: the partitions of a table are all CSV or all Parquet",
                first.display(),
                other.display()
            ),
        ));
    }
    Ok(files)
}

/// Every file of every source, in order, for the data fingerprint: a glob or a folder
/// that cannot be listed is left to the loader to report.
pub fn expand_all(sources: &[PathBuf]) -> Vec<PathBuf> {
    sources.iter().flat_map(|s| expand(s).unwrap_or_else(|_| vec![s.clone()])).collect()
}
