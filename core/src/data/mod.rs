//! Loaders for each modality, and the modality-neutral shapes the engine moves around.

pub mod audio;
pub mod stratify;
pub mod tabular;
pub mod text;

use std::fs::{FileType, Metadata};
use std::io::Read;
use std::path::Path;

use crate::error::Invalid;
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

/// The metadata of `path` (symlinks followed) when it is a regular file; else the reason,
/// without the path. Opening a FIFO blocks until something writes to it and a device can
/// stream forever, so loaders call this before they open anything.
pub fn check_regular_file(path: &Path) -> std::result::Result<Metadata, Invalid> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(format!("not a regular file ({})", file_kind(&meta.file_type())).into())
    }
}

/// [`check_regular_file`] as the crate's error: I/O failures stay [`Error::Io`].
pub fn regular_file(path: &Path) -> Result<Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(Error::data(path, format!("not a regular file ({})", file_kind(&meta.file_type()))))
    }
}

/// Reads a regular file whole, refusing anything else before opening it.
pub fn read_regular_file(path: &Path) -> Result<Vec<u8>> {
    let meta = regular_file(path)?;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
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
