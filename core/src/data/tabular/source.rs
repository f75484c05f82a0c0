//! Where a table's rows come from: its files read whole (a small table, read once and gone
//! over again from memory), or each file a chunk at a time (a large one, read again on each
//! pass, so that memory does not grow with the rows). The loader goes over the rows in the same
//! order either way, so both give the same numbers.

use std::path::{Path, PathBuf};

use crate::data::table::Table;
use crate::data::table::chunks::Reader;
use crate::progress::Progress;
use crate::{Error, Result};

pub(super) enum Source {
    Memory(Vec<Table>),
    Chunked { files: Vec<PathBuf>, chunk_rows: usize },
}

impl Source {
    /// Opens `files` (every one with the columns of the first), to be read whole or
    /// `chunked` rows at a time, and returns their columns.
    pub fn open(files: &[PathBuf], chunked: Option<usize>) -> Result<(Self, Vec<String>)> {
        let mut columns: Option<(Vec<String>, &Path)> = None;
        let mut check = |path: &Path, names: Vec<String>| -> Result<()> {
            match &columns {
                None => columns = Some((names, files[0].as_path())),
                Some((first, first_path)) if *first != names => {
                    return Err(Error::data(
                        path,
                        format!(
                            "its columns ({}) are not those of {} ({})",
                            names.join(", "),
                            first_path.display(),
                            first.join(", ")
                        ),
                    ));
                }
                Some(_) => {}
            }
            Ok(())
        };
        let source = if let Some(chunk_rows) = chunked {
            for path in files {
                check(path, Reader::open(path, 1)?.columns().to_vec())?;
            }
            Self::Chunked { files: files.to_vec(), chunk_rows }
        } else {
            let mut tables = Vec::with_capacity(files.len());
            let mut offset = 0;
            for path in files {
                let mut table = Table::read(path)?;
                check(path, table.column_names())?;
                if tables.first().is_some_and(|t: &Table| t.format() != table.format()) {
                    return Err(Error::data(
                        path,
                        format!("not the same file type as {}", files[0].display()),
                    ));
                }
                table.offset = offset;
                offset += table.height();
                tables.push(table);
            }
            Self::Memory(tables)
        };
        let (columns, _) = columns.expect("at least one file");
        Ok((source, columns))
    }

    /// Calls `f` with every chunk of rows in order, and the index of the file it is from;
    /// returns how many rows there were. `what` names the pass in the progress bar.
    pub fn each(&self, what: &str, mut f: impl FnMut(usize, &Table) -> Result<()>) -> Result<usize> {
        match self {
            Self::Memory(tables) => {
                for (k, t) in tables.iter().enumerate() {
                    f(k, t)?;
                }
                Ok(tables.iter().map(Table::height).sum())
            }
            Self::Chunked { files, chunk_rows } => {
                let mut offset = 0;
                for (k, path) in files.iter().enumerate() {
                    let mut reader = Reader::open(path, *chunk_rows)?;
                    let name = path
                        .file_name()
                        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
                    let mut progress = Progress::new(
                        &format!("{what}: {name} ({})", reader.progress_unit()),
                        reader.total(),
                    );
                    let start = offset;
                    while let Some(mut chunk) = reader.next_chunk()? {
                        chunk.table.offset = offset;
                        offset += chunk.table.height();
                        f(k, &chunk.table)?;
                        progress.inc(chunk.progress);
                    }
                    progress.finish();
                    if offset == start {
                        return Err(Error::data(
                            path,
                            format!(
                                "no data rows (only a header with columns {})",
                                reader.columns().join(", ")
                            ),
                        ));
                    }
                }
                Ok(offset)
            }
        }
    }
}
