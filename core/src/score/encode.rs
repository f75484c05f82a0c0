//! A chunk of input rows → the model's features, as the run's training rows were encoded.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::{Column, DataType};
use tempered_core::data::table::Table;
use tempered_core::data::tabular::{ColumnEncoding, Encoding};
use tempered_core::error::Context;
use tempered_core::{Error, Result};

/// Encodes every row of `chunk` as the run's training rows were; an error names the row.
pub(super) fn encode(encoding: &Encoding, chunk: &Table, path: &Path) -> Result<Vec<f32>> {
    let mut cells: HashMap<&str, Vec<Option<String>>> = HashMap::new();
    for c in &encoding.columns {
        // A Parquet boolean is 1/0 to a numeric column and true/false to a text one, as
        // the training reader takes it.
        let numeric = matches!(c, ColumnEncoding::Number { .. });
        let col =
            chunk.df().column(c.column()).map_err(|e| Error::external(path.display().to_string(), e))?;
        cells.insert(
            c.column(),
            texts(col, numeric).with_context(|| format!("{}: column {:?}", path.display(), c.column()))?,
        );
    }
    let n = chunk.height();
    let mut x = Vec::with_capacity(n * encoding.features.len());
    for i in 0..n {
        let row = encoding
            .encode_row(|c| cells.get(c).and_then(|v| v[i].as_deref()))
            .map_err(|m| Error::data(path, format!("{}, {m}", chunk.at(i))))?;
        x.extend(row);
    }
    Ok(x)
}

/// A column's cells as the text the encoding reads (`None`: null).
fn texts(col: &Column, numeric: bool) -> Result<Vec<Option<String>>> {
    let cells: polars::error::PolarsResult<Vec<Option<String>>> = match col.dtype() {
        DataType::String => col.str().map(|c| c.iter().map(|c| c.map(str::to_owned)).collect()),
        DataType::Boolean => col.bool().map(|c| {
            c.iter()
                .map(|v| v.map(|b| if numeric { u8::from(b).to_string() } else { b.to_string() }))
                .collect()
        }),
        dt if dt.is_integer() => col
            .cast(&DataType::Int64)
            .and_then(|c| Ok(c.i64()?.iter().map(|v| v.map(|v| v.to_string())).collect())),
        dt if dt.is_numeric() => col
            .cast(&DataType::Float64)
            .and_then(|c| Ok(c.f64()?.iter().map(|v| v.map(|v| v.to_string())).collect())),
        dt => return Err(Error::invalid(format!("has type {dt}; expected numbers or text"))),
    };
    cells.map_err(|e| Error::external("cannot read its cells", e))
}
