//! The scores written batch by batch, as CSV or Parquet.

use std::fs::File;

use polars::prelude::{CsvWriter, DataFrame, ParquetWriter, SerWriter};

use super::Format;

pub(super) enum Writer {
    /// The file until the first batch, whose columns make the writer.
    Csv(Option<File>, Option<polars::io::csv::write::BatchedWriter<File>>),
    // Boxed: a Parquet writer is several times the size of a CSV one.
    Parquet(Option<File>, Option<Box<polars::io::parquet::write::BatchedWriter<File>>>),
}

impl Writer {
    pub(super) fn new(file: File, format: Format) -> Self {
        match format {
            Format::Csv => Self::Csv(Some(file), None),
            Format::Parquet => Self::Parquet(Some(file), None),
        }
    }

    pub(super) fn write(&mut self, df: &DataFrame) -> polars::error::PolarsResult<()> {
        match self {
            Self::Csv(file, w) => {
                if let Some(f) = file.take() {
                    *w = Some(CsvWriter::new(f).include_header(true).batched(df.schema())?);
                }
                w.as_mut().expect("made at the first batch").write_batch(df)
            }
            Self::Parquet(file, w) => {
                if let Some(f) = file.take() {
                    *w = Some(Box::new(ParquetWriter::new(f).batched(df.schema())?));
                }
                w.as_mut().expect("made at the first batch").write_batch(df)
            }
        }
    }

    pub(super) fn finish(self) -> polars::error::PolarsResult<()> {
        match self {
            Self::Csv(_, Some(mut w)) => w.finish(),
            Self::Parquet(_, Some(w)) => w.finish().map(drop),
            Self::Csv(_, None) | Self::Parquet(_, None) => Ok(()),
        }
    }
}
