//! What the data of a run looked like when it started, so that `--resume` on a relabelled,
//! shortened or replaced file is refused instead of continuing with stale epochs.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash::Fnv;
use crate::{Error, Result, files};

/// Every regular file under the data sources: path, size and a content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub files: Vec<FileMark>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    pub path: PathBuf,
    pub bytes: u64,
    /// FNV-1a over 8-byte words ([`crate::hash`]), in hex.
    pub hash: String,
}

impl Fingerprint {
    /// Paths are kept relative to `base` (the pipeline's base folder) where they lie under
    /// it, so that a run folder can move with its repository.
    pub fn of(base: &Path, sources: &[PathBuf]) -> Result<Self> {
        let mut paths = Vec::new();
        for s in sources {
            collect(s, &mut paths);
        }
        paths.sort();
        paths.dedup();
        let files = paths
            .into_iter()
            .map(|p| {
                let mut m = mark(&p)?;
                m.path = p.strip_prefix(base).map(Path::to_path_buf).unwrap_or(p);
                Ok(m)
            })
            .collect::<Result<_>>()?;
        Ok(Self { files })
    }

    /// `None` for a run started before fingerprints were written.
    pub fn read(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::data(path, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a fingerprint serializes");
        files::write(path, json.as_bytes())
    }

    /// The first difference from `now`, in words.
    pub fn difference(&self, now: &Self) -> Option<String> {
        for old in &self.files {
            match now.files.iter().find(|f| f.path == old.path) {
                None => return Some(format!("{} is gone", old.path.display())),
                Some(new) if new.bytes != old.bytes => {
                    return Some(format!(
                        "{} has {} bytes, {} when the run started",
                        old.path.display(),
                        new.bytes,
                        old.bytes
                    ));
                }
                Some(new) if new.hash != old.hash => {
                    return Some(format!("{} has other contents (same size)", old.path.display()));
                }
                Some(_) => {}
            }
        }
        let added = now.files.iter().find(|f| !self.files.iter().any(|o| o.path == f.path))?;
        Some(format!("{} was added", added.path.display()))
    }
}

/// Regular files only: a FIFO or device in a data folder is the loader's to refuse, and
/// reading it here would block.
fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::metadata(p) else { return };
    if meta.is_file() {
        out.push(p.to_owned());
    } else if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(p)
    {
        for e in entries.flatten() {
            collect(&e.path(), out);
        }
    }
}

pub(super) fn mark(path: &Path) -> Result<FileMark> {
    let (mut f, _) = crate::data::open_regular(path).map_err(|e| e.at(path))?;
    let mut h = Fnv::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        // Whole buffers, so that words are aligned the same however `read` splits the file.
        let n = fill(&mut f, &mut buf).map_err(|e| Error::io(path, e))?;
        bytes += n as u64;
        let mut words = buf[..n].chunks_exact(8);
        for w in &mut words {
            h.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        h.bytes(words.remainder());
        if n < buf.len() {
            break;
        }
    }
    Ok(FileMark { path: path.to_owned(), bytes, hash: format!("{:016x}", h.finish()) })
}

/// Reads until `buf` is full or the file ends; the count read.
fn fill(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relabelled_a_shortened_and_a_new_file_are_each_named() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(&a, "x,y\n1,0\n2,1\n").unwrap();
        std::fs::write(&b, "x,y\n1,0\n").unwrap();
        let start = Fingerprint::of(dir.path(), &[dir.path().to_owned()]).unwrap();
        assert_eq!(start.difference(&start), None);

        std::fs::write(&a, "x,y\n1,1\n2,0\n").unwrap();
        let relabelled = Fingerprint::of(dir.path(), &[dir.path().to_owned()]).unwrap();
        assert!(start.difference(&relabelled).unwrap().contains("a.csv has other contents"));

        std::fs::write(&a, "x,y\n1,0\n").unwrap();
        let shorter = Fingerprint::of(dir.path(), &[dir.path().to_owned()]).unwrap();
        assert!(start.difference(&shorter).unwrap().contains("a.csv has 8 bytes, 12 when"));

        std::fs::write(&a, "x,y\n1,0\n2,1\n").unwrap();
        std::fs::write(dir.path().join("c.csv"), "x,y\n").unwrap();
        let added = Fingerprint::of(dir.path(), &[dir.path().to_owned()]).unwrap();
        assert!(start.difference(&added).unwrap().contains("c.csv was added"));
    }
}
