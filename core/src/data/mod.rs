//! Loaders for each modality, and the modality-neutral shapes the engine moves around.

pub mod audio;
pub mod stratify;
pub mod tabular;
pub mod text;

use std::fs::{File, FileType, Metadata};
use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

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

pub fn read_regular_file(path: &Path) -> Result<Vec<u8>> {
    let (mut file, meta) = open_regular(path).map_err(|e| e.at(path))?;
    // The size is only a hint: the file may change between the two calls.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).min(1 << 30));
    file.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Examples of one split, in the form attacks and models exchange them.
#[derive(Debug, Clone, PartialEq)]
pub enum Examples {
    /// Rows of `width` values (tabular rows, raw units; audio waveforms).
    Dense {
        data: Vec<f32>,
        width: usize,
    },
    Text(Vec<String>),
}

impl Examples {
    pub fn len(&self) -> usize {
        match self {
            Examples::Dense { data, width } => data.len().checked_div(*width).unwrap_or(0),
            Examples::Text(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn view(&self) -> ExamplesRef<'_> {
        match self {
            Examples::Dense { data, width } => ExamplesRef::Dense { data, width: *width },
            Examples::Text(t) => ExamplesRef::Text(t.iter().map(String::as_str).collect()),
        }
    }

    /// The examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Examples {
        match self {
            Examples::Dense { data, width } => Examples::Dense {
                data: idx.iter().flat_map(|&i| &data[i * width..(i + 1) * width]).copied().collect(),
                width: *width,
            },
            Examples::Text(t) => Examples::Text(idx.iter().map(|&i| t[i].clone()).collect()),
        }
    }

    /// Overwrites the examples at `idx` with those of `other`, in order.
    pub fn replace(&mut self, idx: &[usize], other: &Examples) {
        match (self, other) {
            (Examples::Dense { data, width }, Examples::Dense { data: d2, width: w2 }) if width == w2 => {
                let w = *width;
                for (k, &i) in idx.iter().enumerate() {
                    data[i * w..(i + 1) * w].copy_from_slice(&d2[k * w..(k + 1) * w]);
                }
            }
            (Examples::Text(t), Examples::Text(t2)) => {
                for (k, &i) in idx.iter().enumerate() {
                    t[i] = t2[k].clone();
                }
            }
            _ => panic!("cannot mix example kinds"),
        }
    }

    /// Appends `other` (same kind and width).
    pub fn extend(&mut self, other: &Examples) {
        match (self, other) {
            (Examples::Dense { data, width }, Examples::Dense { data: d2, width: w2 }) if width == w2 => {
                data.extend_from_slice(d2)
            }
            (Examples::Text(t), Examples::Text(t2)) => t.extend(t2.iter().cloned()),
            _ => panic!("cannot mix example kinds"),
        }
    }
}

/// Borrowed examples: what the model encodes and the oracle receives from plugins.
#[derive(Debug, Clone)]
pub enum ExamplesRef<'a> {
    Dense { data: &'a [f32], width: usize },
    Text(Vec<&'a str>),
}

impl ExamplesRef<'_> {
    pub fn len(&self) -> usize {
        match self {
            ExamplesRef::Dense { data, width } => data.len().checked_div(*width).unwrap_or(0),
            ExamplesRef::Text(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A labelled split.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub x: Examples,
    pub y: Vec<u32>,
}

impl Labelled {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn select(&self, idx: &[usize]) -> Labelled {
        Labelled { x: self.x.select(idx), y: idx.iter().map(|&i| self.y[i]).collect() }
    }
}

/// Train / validation / test, ready for the trainer.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub n_classes: usize,
    pub train: Labelled,
    pub validation: Labelled,
    pub test: Labelled,
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
