//! How the engine writes what a run leaves behind: every file appears whole or not at all.
//!
//! A write goes to a hidden temporary file beside its target, is flushed to disk, and is
//! renamed over the target; on any failure (a full disk, a vanished folder) the temporary
//! file is removed and the previous version of the target stays as it was. Writers hold
//! [`WRITES`] for reading while they write, so an interrupt handler that takes it for
//! writing exits only between two writes (see [`crate::interrupt`]).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::{Error, Result};

/// Held for reading by every write in flight; taken for writing by whoever must not
/// interrupt one.
pub(crate) static WRITES: RwLock<()> = RwLock::new(());

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
        Ok(())
    })
}

/// Lets `produce` write the file at a temporary path (with `path`'s extension, for writers
/// that pick a format from it), then moves the result to `path` atomically.
pub fn write_with(path: &Path, produce: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    // A poisoned lock only means another writer panicked; the files are still whole.
    let _in_flight = WRITES.read().unwrap_or_else(|e| e.into_inner());
    let tmp = temporary(path);
    let result = produce(&tmp).and_then(|()| {
        // A full disk may only show when the data is flushed: sync before the rename.
        let f = File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `dir/.name.<pid>.tmp.ext`: hidden, unique to this process, same folder (a rename
/// across file systems would not be atomic) and the same extension.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
        _ => (name.clone(), String::new()),
    };
    path.with_file_name(format!(".{stem}.{}.tmp{ext}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_previous_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("metrics.json");
        write(&target, b"{\"ok\": 1}\n").unwrap();
        let err = write_with(&target, |tmp| {
            std::fs::write(tmp, b"{\"trunc").unwrap();
            Err(Error::msg("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&target).unwrap(), b"{\"ok\": 1}\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["metrics.json"], "the temporary file is removed");
    }

    #[test]
    fn the_temporary_file_keeps_the_extension() {
        let t = temporary(Path::new("runs/x/plots/pr_curve.png"));
        assert_eq!(t.parent(), Some(Path::new("runs/x/plots")));
        assert!(t.file_name().unwrap().to_str().unwrap().starts_with(".pr_curve."));
        assert_eq!(t.extension().unwrap(), "png");
    }
}
