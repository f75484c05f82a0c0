//! The label column: integer classes, or strings mapped by `classes`. Read a chunk of rows at
//! a time; what holds for the whole column (every class present) is checked at the end.

use std::collections::BTreeSet;
use std::path::Path;

use crate::data::table::Table;
use crate::{Error, Result};

/// Labels as classes 0..K-1, gathered chunk by chunk.
pub(super) struct Labels {
    /// `classes` when given (a label is a class by its text), else integer labels.
    names: Option<Vec<String>>,
    y: Vec<u32>,
    seen: BTreeSet<u32>,
}

impl Labels {
    pub fn new(classes: Option<&[String]>) -> Self {
        let names = classes.map(|c| c.iter().map(|n| n.trim().to_owned()).collect());
        Self { names, y: Vec::new(), seen: BTreeSet::new() }
    }

    /// Appends the labels of `table`'s rows; a cell that is not a label is an error naming it.
    pub fn read(&mut self, table: &Table, label: &str) -> Result<()> {
        match &self.names {
            Some(names) => {
                let list = || names.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
                for (i, cell) in table.texts(label)?.into_iter().enumerate() {
                    let Some(text) = cell else {
                        return Err(table.cell_error(label, i, "empty cell: every row needs a label"));
                    };
                    let c = names.iter().position(|n| *n == text).ok_or_else(|| {
                        table.cell_error(label, i, format!("unknown label {text:?} (classes: {})", list()))
                    })? as u32;
                    self.seen.insert(c);
                    self.y.push(c);
                }
            }
            None => {
                let values = table.numbers(label).map_err(|e| match e {
                    Error::Data { path, msg } if msg.ends_with("is not a number") => Error::Data {
                        path,
                        msg: format!(
                            "{msg} (labels that are text need `classes = [...]` in [data], in class order)"
                        ),
                    },
                    e => e,
                })?;
                for (i, &v) in values.iter().enumerate() {
                    if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX - 1) {
                        return Err(table.cell_error(
                            label,
                            i,
                            format!("{v} is not a class label (labels must be integers 0, 1, ..., K-1)"),
                        ));
                    }
                    self.seen.insert(v as u32);
                    self.y.push(v as u32);
                }
            }
        }
        Ok(())
    }

    /// Every row's class and the class names; refuses a class no row has (`path`: the table).
    pub fn finish(self, path: &Path, label: &str) -> Result<(Vec<u32>, Vec<String>)> {
        let Self { names, y, seen } = self;
        if let Some(names) = names {
            if let Some(c) = (0..names.len()).find(|&c| !seen.contains(&(c as u32))) {
                return Err(Error::data(
                    path,
                    format!(
                        "label column {label:?}: class {c} ({:?} in `classes`) has no rows; a class every row misses cannot be learned",
                        names[c]
                    ),
                ));
            }
            return Ok((y, names));
        }
        let list = || seen.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        if seen.len() < 2 {
            return Err(Error::data(
                path,
                format!(
                    "label column {label:?} has one class only ({}) in all {} rows; a classifier needs at least two",
                    list(),
                    y.len()
                ),
            ));
        }
        let k = *seen.last().expect("two classes") as usize + 1;
        if seen.len() != k {
            let gap = (0..k as u32).find(|c| !seen.contains(c)).expect("a gap");
            return Err(Error::data(
                path,
                format!(
                    "label column {label:?}: classes must be 0..K-1, but class {gap} has no rows (classes found: {})",
                    list()
                ),
            ));
        }
        Ok((y, (0..k).map(|c| c.to_string()).collect()))
    }
}
