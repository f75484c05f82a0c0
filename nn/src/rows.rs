//! Rows of a split on disk: fixed-width f32 rows, row-major, little-endian, in an unnamed
//! temporary file, so that a split of ten million rows costs the engine a file descriptor
//! rather than its size in memory. [`RowWriter`] writes them once; [`RowFile`] reads any
//! rows back on demand.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

/// Bytes of one stored value.
const VALUE: usize = std::mem::size_of::<f32>();

/// Writes rows of `width` f32 into an unnamed temporary file (unlinked at once, so nothing
/// is left behind after a crash).
pub struct RowWriter {
    out: BufWriter<File>,
    /// The folder the file lives in, for error messages (the file itself has no name).
    dir: PathBuf,
    width: usize,
    rows: usize,
    /// One row's bytes, reused.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for RowWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowWriter")
            .field("dir", &self.dir)
            .field("rows", &self.rows)
            .field("width", &self.width)
            .finish()
    }
}

impl RowWriter {
    /// A writer of rows of `width` values into a new unnamed file in `dir`.
    pub fn create_in(dir: &Path, width: usize) -> Result<Self> {
        if width == 0 {
            return Err(Error::invalid("a row file needs rows of at least one value"));
        }
        let file = tempfile::tempfile_in(dir)
            .map_err(|e| Error::io(dir, e).context("cannot create a temporary file for the rows"))?;
        Ok(Self::with_file(file, dir, width))
    }

    /// A writer into `file`, opened for reading and writing, errors naming `dir`.
    fn with_file(file: File, dir: &Path, width: usize) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 20, file),
            dir: dir.to_owned(),
            width,
            rows: 0,
            scratch: Vec::with_capacity(width * VALUE),
        }
    }

    /// Appends one row (`row.len()` must be the width).
    pub fn push(&mut self, row: &[f32]) -> Result<()> {
        if row.len() != self.width {
            return Err(Error::invalid(format!(
                "a row of {} values for a row file of width {}",
                row.len(),
                self.width
            )));
        }
        self.scratch.clear();
        for v in row {
            self.scratch.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&self.scratch).map_err(|e| self.write_error(e))?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Flushes, and hands the rows over for reading.
    pub fn finish(self) -> Result<RowFile> {
        let Self { out, dir, width, rows, .. } = self;
        let file = out.into_inner().map_err(|e| write_error(&dir, e.into_error()))?;
        Ok(RowFile {
            inner: Arc::new(Inner {
                file,
                dir,
                width,
                len: rows,
                #[cfg(not(unix))]
                lock: std::sync::Mutex::new(()),
            }),
        })
    }

    fn write_error(&self, e: std::io::Error) -> Error {
        write_error(&self.dir, e)
    }
}

/// A failed write (a full disk): names the folder the rows were written in.
fn write_error(dir: &Path, e: std::io::Error) -> Error {
    Error::io(dir, e).context("cannot write rows to a temporary file")
}

struct Inner {
    file: File,
    dir: PathBuf,
    width: usize,
    len: usize,
    /// Seek and read are two calls where positioned reads are missing: one at a time.
    #[cfg(not(unix))]
    lock: std::sync::Mutex<()>,
}

impl Inner {
    /// Fills `buf` from byte `offset`. Positioned: the file's own offset is never used, so
    /// any number of threads may read at once.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.read_exact_at(buf, offset)
        }
        #[cfg(not(unix))]
        {
            use std::io::{Read, Seek, SeekFrom};
            let _one = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut f = &self.file;
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(buf)
        }
    }
}

/// Rows on disk: cheap to clone (the file is shared), read on demand with positioned reads,
/// so clones may read from several threads.
#[derive(Clone)]
pub struct RowFile {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RowFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowFile").field("len", &self.len()).field("width", &self.width()).finish()
    }
}

/// The same file: two row files are equal when one is a clone of the other. Comparing
/// contents would read the disk (and could fail) inside `==`; compare `range`s for that.
impl PartialEq for RowFile {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl RowFile {
    /// Rows.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.inner.width
    }

    /// The rows at `idx`, in that order, row-major. Each run of consecutive indices is read
    /// in one call.
    pub fn gather(&self, idx: &[usize]) -> Result<Vec<f32>> {
        let w = self.width();
        let mut out = Vec::with_capacity(idx.len() * w);
        let mut bytes = Vec::new();
        let mut k = 0;
        while k < idx.len() {
            let start = idx[k];
            if start >= self.len() {
                return Err(self.out_of_range(start));
            }
            let mut end = start + 1;
            k += 1;
            while k < idx.len() && idx[k] == end {
                end += 1;
                k += 1;
            }
            self.read_rows(start, end, &mut bytes, &mut out)?;
        }
        Ok(out)
    }

    /// Rows `start..end`, in one read.
    pub fn range(&self, start: usize, end: usize) -> Result<Vec<f32>> {
        if start > end {
            return Err(Error::invalid(format!("rows {start}..{end} of a row file: the range is reversed")));
        }
        let mut out = Vec::with_capacity((end - start) * self.width());
        self.read_rows(start, end, &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    fn out_of_range(&self, row: usize) -> Error {
        Error::invalid(format!("row {row} of a row file of {} rows", self.len()))
    }

    /// Appends rows `start..end` (`start < end` or empty) to `out`, through `bytes`.
    fn read_rows(&self, start: usize, end: usize, bytes: &mut Vec<u8>, out: &mut Vec<f32>) -> Result<()> {
        if end > self.len() {
            return Err(self.out_of_range(end - 1));
        }
        if start >= end {
            return Ok(());
        }
        let row_bytes = (self.width() * VALUE) as u64;
        bytes.clear();
        bytes.resize((end - start) * self.width() * VALUE, 0);
        self.inner.read_at(bytes, start as u64 * row_bytes).map_err(|e| {
            Error::io(&self.inner.dir, e).context(format!(
                "cannot read rows {start}..{end} of the temporary row file (of {} rows)",
                self.len()
            ))
        })?;
        out.extend(bytes.chunks_exact(VALUE).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        Ok(())
    }
}

/// The rows of `order`'s batches, read on a thread of its own a couple of batches ahead of
/// the one being trained on, so that reading the disk and computing overlap.
pub struct Prefetch {
    batches: std::sync::mpsc::Receiver<Result<Vec<f32>>>,
}

impl RowFile {
    /// Reads `order.chunks(batch)` in turn, up to two batches ahead of [`Prefetch::next_batch`].
    pub fn prefetch(&self, order: Arc<[usize]>, batch: usize) -> Prefetch {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let rows = self.clone();
        std::thread::spawn(move || {
            for chunk in order.chunks(batch.max(1)) {
                // The receiver is gone (the epoch stopped early): so is the need to read.
                if tx.send(rows.gather(chunk)).is_err() {
                    return;
                }
            }
        });
        Prefetch { batches: rx }
    }
}

impl Prefetch {
    /// The next batch's rows; an error once every batch was read.
    pub fn next_batch(&mut self) -> Result<Vec<f32>> {
        self.batches
            .recv()
            .map_err(|_| Error::invalid("a batch was asked of a row file past its epoch's last"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows `n × width` of distinct values, with the bit patterns a text form would lose.
    fn values(n: usize, width: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n * width).map(|i| (i as f32) * 0.37 - 11.0).collect();
        let special = [-0.0, f32::MIN_POSITIVE, f32::MAX, f32::NAN, f32::INFINITY, 1.0 + f32::EPSILON];
        for (slot, s) in v.iter_mut().zip(special) {
            *slot = s;
        }
        v
    }

    fn written(dir: &Path, data: &[f32], width: usize) -> RowFile {
        let mut w = RowWriter::create_in(dir, width).unwrap();
        for row in data.chunks(width) {
            w.push(row).unwrap();
        }
        assert_eq!(w.len(), data.len() / width);
        w.finish().unwrap()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn gathered(data: &[f32], width: usize, idx: &[usize]) -> Vec<f32> {
        idx.iter().flat_map(|&i| &data[i * width..(i + 1) * width]).copied().collect()
    }

    #[test]
    fn rows_read_back_bit_for_bit_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        for width in [1, 3, 7] {
            let n = 50;
            let data = values(n, width);
            let file = written(dir.path(), &data, width);
            assert_eq!((file.len(), file.width(), file.is_empty()), (n, width, false));
            let orders: [&[usize]; 6] = [
                &[],
                &[4],
                &[0, 1, 2, 3, 10, 11, 12, 49],
                &[49, 48, 3, 3, 3, 4, 5, 0, 0],
                &[7, 8, 9, 7, 8, 9, 20, 21, 1],
                &(0..n).rev().collect::<Vec<_>>(),
            ];
            for idx in orders {
                let got = file.gather(idx).unwrap();
                assert_eq!(bits(&got), bits(&gathered(&data, width, idx)), "width {width}, {idx:?}");
            }
            assert_eq!(bits(&file.gather(&(0..n).collect::<Vec<_>>()).unwrap()), bits(&data));
            assert_eq!(bits(&file.range(0, n).unwrap()), bits(&data));
            assert_eq!(bits(&file.range(5, 9).unwrap()), bits(&data[5 * width..9 * width]));
            assert!(file.range(7, 7).unwrap().is_empty());
            // A clone reads the same, from several threads at once.
            std::thread::scope(|s| {
                for t in 0..4 {
                    let (file, data) = (file.clone(), &data);
                    s.spawn(move || {
                        for k in 0..200 {
                            let i = (k * 7 + t * 13) % n;
                            assert_eq!(
                                bits(&file.gather(&[i]).unwrap()),
                                bits(&data[i * width..(i + 1) * width])
                            );
                        }
                    });
                }
            });
        }
    }

    #[test]
    fn prefetched_batches_are_the_gathered_ones_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = values(50, 3);
        let file = written(dir.path(), &data, 3);
        let order: Vec<usize> = (0..50).rev().chain([7, 7, 0]).collect();
        let mut ahead = file.prefetch(order.clone().into(), 8);
        for chunk in order.chunks(8) {
            assert_eq!(bits(&ahead.next_batch().unwrap()), bits(&gathered(&data, 3, chunk)));
        }
        assert!(ahead.next_batch().is_err(), "no batch past the last");
        // A bad row reaches the reader as the error of its batch.
        let mut bad = file.prefetch(vec![1, 2, 99].into(), 2);
        assert!(bad.next_batch().is_ok());
        assert!(bad.next_batch().unwrap_err().to_string().contains("row 99"));
        // An epoch stopped early leaves nothing waiting.
        drop(file.prefetch((0..50).collect::<Vec<_>>().into(), 1));
    }

    #[test]
    fn an_empty_file_and_rows_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let empty = RowWriter::create_in(dir.path(), 4).unwrap().finish().unwrap();
        assert!(empty.is_empty());
        assert_eq!((empty.len(), empty.width()), (0, 4));
        assert!(empty.gather(&[]).unwrap().is_empty());
        assert!(empty.range(0, 0).unwrap().is_empty());
        assert!(empty.gather(&[0]).is_err());
        assert_eq!(format!("{empty:?}"), "RowFile { len: 0, width: 4 }");

        let file = written(dir.path(), &values(3, 2), 2);
        let e = file.gather(&[0, 3]).unwrap_err().to_string();
        assert!(e.contains("row 3 of a row file of 3 rows"), "{e}");
        assert!(file.range(2, 4).is_err());
        assert!(file.range(2, 1).is_err());
        // Nothing is left in the folder: the file never had a name there.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_row_of_the_wrong_width_or_a_width_of_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RowWriter::create_in(dir.path(), 3).unwrap();
        let e = w.push(&[1.0, 2.0]).unwrap_err().to_string();
        assert!(e.contains("a row of 2 values for a row file of width 3"), "{e}");
        w.push(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(w.finish().unwrap().len(), 1, "the refused row was not written");
        assert!(RowWriter::create_in(dir.path(), 0).is_err());
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder");
        let e = RowWriter::create_in(&missing, 2).unwrap_err().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }

    /// A full disk (`/dev/full` answers every write with ENOSPC) is an error naming the
    /// folder, at a push or at the final flush, never a panic.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_an_error_naming_the_folder() {
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("skipped: no /dev/full here");
            return;
        };
        let dir = Path::new("/some/rows/folder");
        let mut w = RowWriter::with_file(full, dir, 4);
        let row = [1.0f32; 4];
        // More than the buffer holds, so a push writes through.
        let pushed = (0..(1 << 17)).try_for_each(|_| w.push(&row));
        let e = match pushed {
            Err(e) => e,
            Ok(()) => w.finish().unwrap_err(),
        }
        .to_string();
        assert!(e.contains("/some/rows/folder"), "{e}");
        assert!(e.contains("cannot write rows"), "{e}");
    }
}
