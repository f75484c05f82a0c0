//! The modality-neutral shapes models, the trainer and attacks exchange: examples of one
//! split, in memory or on disk, their labels, and the three splits of a data set.

use crate::rows::RowFile;
use crate::{Error, Result};

/// Examples of one split, in the form attacks and models exchange them.
///
/// `Stored` rows are `Dense` rows kept on disk (a large table's splits): the engine reads
/// them through [`Examples::select`], in batches, which hands back `Dense` rows, so models,
/// attacks and plugins only ever see rows in memory. A stored split is never viewed whole:
/// [`Examples::view`] refuses it.
///
/// Equality: `Dense` and `Text` compare their values; two `Stored` are equal when they are
/// the same file (one a clone of the other), never by reading it, and never equal a
/// `Dense` (compare `select`ed rows for that).
#[derive(Debug, Clone, PartialEq)]
pub enum Examples {
    /// Rows of `width` values (tabular rows, raw units; audio waveforms).
    Dense {
        data: Vec<f32>,
        width: usize,
    },
    Text(Vec<String>),
    /// Rows of `width` values on disk.
    Stored(RowFile),
}

impl Examples {
    pub fn len(&self) -> usize {
        match self {
            Examples::Dense { data, width } => data.len().checked_div(*width).unwrap_or(0),
            Examples::Text(t) => t.len(),
            Examples::Stored(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per row; `None` for texts.
    pub fn width(&self) -> Option<usize> {
        match self {
            Examples::Dense { width, .. } => Some(*width),
            Examples::Stored(rows) => Some(rows.width()),
            Examples::Text(_) => None,
        }
    }

    /// The examples, borrowed, for a model or the oracle. Rows on disk cannot be borrowed:
    /// [`Examples::select`] a batch of them first (an error here is an engine bug, never a
    /// whole split read into memory).
    pub fn view(&self) -> Result<ExamplesRef<'_>> {
        match self {
            Examples::Dense { data, width } => Ok(ExamplesRef::Dense { data, width: *width }),
            Examples::Text(t) => Ok(ExamplesRef::Text(t.iter().map(String::as_str).collect())),
            Examples::Stored(rows) => Err(Error::invalid(format!(
                "{} rows on disk cannot be viewed whole: they are read in batches",
                rows.len()
            ))),
        }
    }

    /// The examples at `idx`, in that order; rows on disk are read, and come back `Dense`.
    /// Fails only reading the disk, or for an index past the rows on disk.
    pub fn select(&self, idx: &[usize]) -> Result<Examples> {
        Ok(match self {
            Examples::Dense { data, width } => Examples::Dense {
                data: idx.iter().flat_map(|&i| &data[i * width..(i + 1) * width]).copied().collect(),
                width: *width,
            },
            Examples::Text(t) => Examples::Text(idx.iter().map(|&i| t[i].clone()).collect()),
            Examples::Stored(rows) => Examples::Dense { data: rows.gather(idx)?, width: rows.width() },
        })
    }

    /// Overwrites the examples at `idx` with those of `other`, in order. Both must be
    /// examples in memory of the same kind (and width).
    pub fn replace(&mut self, idx: &[usize], other: &Examples) -> Result<()> {
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
            (this, other) => return Err(mixed("replace", this, other)),
        }
        Ok(())
    }

    /// Appends `other` (same kind and width, both in memory).
    pub fn extend(&mut self, other: &Examples) -> Result<()> {
        match (self, other) {
            (Examples::Dense { data, width }, Examples::Dense { data: d2, width: w2 }) if width == w2 => {
                data.extend_from_slice(d2)
            }
            (Examples::Text(t), Examples::Text(t2)) => t.extend(t2.iter().cloned()),
            (this, other) => return Err(mixed("extend", this, other)),
        }
        Ok(())
    }

    /// What the examples are, for an error message.
    fn kind(&self) -> String {
        match self {
            Examples::Dense { width, .. } => format!("rows of {width} values"),
            Examples::Text(_) => "texts".to_owned(),
            Examples::Stored(rows) => format!("rows of {} values on disk", rows.width()),
        }
    }
}

/// `replace` or `extend` of `this` with `other` refused: mixed kinds, or rows on disk
/// (which are written once and only read; select a batch to change it).
fn mixed(what: &str, this: &Examples, other: &Examples) -> Error {
    Error::invalid(format!("cannot {what} {} with {}", this.kind(), other.kind()))
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

    /// The examples at `idx` and their labels; see [`Examples::select`].
    pub fn select(&self, idx: &[usize]) -> Result<Labelled> {
        Ok(Labelled { x: self.x.select(idx)?, y: idx.iter().map(|&i| self.y[i]).collect() })
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

/// `split` with its dense rows written to a [`RowFile`] in `dir`: the same split, on disk
/// (a fixture for tests that compare the two paths; the `testing` feature lends it to
/// other crates' tests).
#[cfg(any(test, feature = "testing"))]
pub fn stored(split: &Labelled, dir: &std::path::Path) -> Labelled {
    let Examples::Dense { data, width } = &split.x else { panic!("dense rows to store") };
    let mut w = crate::rows::RowWriter::create_in(dir, *width).unwrap();
    for row in data.chunks(*width) {
        w.push(row).unwrap();
    }
    Labelled { x: Examples::Stored(w.finish().unwrap()), y: split.y.clone() }
}

/// [`stored`] for every split.
#[cfg(any(test, feature = "testing"))]
pub fn stored_dataset(d: &Dataset, dir: &std::path::Path) -> Dataset {
    Dataset {
        n_classes: d.n_classes,
        train: stored(&d.train, dir),
        validation: stored(&d.validation, dir),
        test: stored(&d.test, dir),
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    fn split() -> Labelled {
        let data: Vec<f32> = (0..30).map(|i| i as f32 * 0.5 - 3.0).collect();
        Labelled { x: Examples::Dense { data, width: 3 }, y: (0..10).map(|i| i % 3).collect() }
    }

    #[test]
    fn stored_rows_select_like_dense_ones() {
        let dir = tempfile::tempdir().unwrap();
        let dense = split();
        let disk = stored(&dense, dir.path());
        assert_eq!(disk.x.len(), 10);
        assert_eq!(disk.x.width(), Some(3));
        for idx in [vec![], vec![9], vec![3, 4, 5, 0, 0, 9, 8], (0..10).collect()] {
            let (a, b) = (dense.select(&idx).unwrap(), disk.select(&idx).unwrap());
            assert_eq!(a.x, b.x, "{idx:?}");
            assert_eq!(a.y, b.y);
        }
        assert!(disk.x.select(&[10]).is_err(), "past the rows: an error, not a panic");
    }

    #[test]
    fn stored_rows_are_never_viewed_or_changed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let disk = stored(&split(), dir.path());
        let e = disk.x.view().unwrap_err().to_string();
        assert!(e.contains("10 rows on disk cannot be viewed whole"), "{e}");
        let mut x = disk.x.clone();
        let row = Examples::Dense { data: vec![0.0; 3], width: 3 };
        let e = x.replace(&[0], &row).unwrap_err().to_string();
        assert!(e.contains("cannot replace rows of 3 values on disk"), "{e}");
        assert!(x.extend(&row).is_err());
        let mut dense = split().x;
        assert!(dense.extend(&disk.x).is_err());
        assert!(dense.replace(&[0], &Examples::Text(vec!["a".into()])).is_err());
        // The same file is equal to itself (a clone); another file with the same rows is not.
        assert_eq!(x, disk.x);
        assert_ne!(stored(&split(), dir.path()).x, disk.x);
        assert_ne!(split().x, disk.x);
    }
}
