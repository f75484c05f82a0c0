//! Loaders for each modality into the modality-neutral shapes of `tempered-nn`
//! ([`Dataset`], [`Examples`]), and how every input file is opened.

pub mod audio;
pub mod stratify;
pub mod table;
pub mod tabular;
pub mod text;

use std::fs::{File, FileType, Metadata};
use std::path::Path;

#[cfg(test)]
pub(crate) use tempered_nn::examples::stored;
pub use tempered_nn::examples::{Dataset, Examples, ExamplesRef, Labelled};
pub use tempered_nn::rows::{self, RowFile, RowWriter};

use crate::Error;

/// What kind of file system entry `t` is, for "not a regular file (a FIFO)".
pub fn file_kind(t: &FileType) -> &'static str {
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    "a special file"
}

/// Why [`open_regular`] refused a path.
#[derive(Debug)]
pub enum NotOpened {
    Io(std::io::Error),
    /// What the entry is ("a FIFO").
    NotRegular(&'static str),
}

impl NotOpened {
    /// The reason, without the path.
    pub fn reason(&self) -> String {
        match self {
            NotOpened::Io(e) => format!("cannot read: {e}"),
            NotOpened::NotRegular(kind) => format!("not a regular file ({kind})"),
        }
    }

    /// As the crate's error: I/O failures stay [`Error::Io`].
    pub fn at(self, path: &Path) -> Error {
        match self {
            NotOpened::Io(e) => Error::io(path, e),
            other => Error::data(path, other.reason()),
        }
    }
}

/// Opens `path` for reading when it is a regular file, judged on the opened file itself.
/// The open cannot block (O_NONBLOCK: a FIFO with no writer opens at once, and the flag
/// means nothing for a regular file), and the type comes from the descriptor, so a file
/// swapped for a FIFO or a device after any earlier check is still refused.
pub fn open_regular(path: &Path) -> std::result::Result<(File, Metadata), NotOpened> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(NotOpened::Io)?;
    let meta = file.metadata().map_err(NotOpened::Io)?;
    if meta.is_file() { Ok((file, meta)) } else { Err(NotOpened::NotRegular(file_kind(&meta.file_type()))) }
}

/// Reads a regular file whole, refusing anything else without blocking on it.
/// The most characters of a value an error message echoes.
const SHOWN_CHARS: usize = 60;

/// `text` quoted for an error message, cut to its first characters when long: a 1 MB cell
/// or key echoed whole would bury the file and place it is reported with.
pub fn shown(text: &str) -> String {
    let n = text.chars().count();
    if n <= SHOWN_CHARS {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}… ({n} characters)")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The open itself refuses a FIFO, at once: no check before it is needed, so a file
    /// swapped for a FIFO after any check cannot block a run.
    #[test]
    fn opening_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("rows.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
        if !made {
            eprintln!("skipped: mkfifo is not available here");
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || tx.send(open_regular(&f).map(|_| ()).map_err(|e| e.reason())));
        let got = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("open_regular returned");
        assert_eq!(got, Err("not a regular file (a FIFO)".to_owned()));

        let file = dir.path().join("rows2.csv");
        std::fs::write(&file, "a,b\n1,2\n").unwrap();
        let (_, meta) = open_regular(&file).unwrap();
        assert_eq!(meta.len(), 8);
        assert!(matches!(open_regular(dir.path()), Err(NotOpened::NotRegular("a folder"))));
        assert!(matches!(open_regular(&dir.path().join("none")), Err(NotOpened::Io(_))));
    }
}
