//! The label column: integer classes, or strings mapped by `classes`.

use std::collections::BTreeSet;

use super::reading::Table;
use crate::{Error, Result};

/// Labels as classes 0..K-1; returns them and the class names: `classes` when given (a
/// label is a class by its text), else the integers 0..K-1 themselves.
pub(super) fn read_labels(
    table: &Table,
    label: &str,
    classes: Option<&[String]>,
) -> Result<(Vec<u32>, Vec<String>)> {
    match classes {
        Some(names) => named_labels(table, label, names),
        None => integer_labels(table, label).map(|(y, k)| (y, (0..k).map(|c| c.to_string()).collect())),
    }
}

/// Labels as the position of their text in `names`.
fn named_labels(table: &Table, label: &str, names: &[String]) -> Result<(Vec<u32>, Vec<String>)> {
    let names: Vec<String> = names.iter().map(|n| n.trim().to_owned()).collect();
    let list = || names.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    let mut y = Vec::with_capacity(table.height());
    let mut counts = vec![0usize; names.len()];
    for (i, cell) in table.texts(label)?.into_iter().enumerate() {
        let Some(text) = cell else {
            return Err(table.cell_error(label, i, "empty cell: every row needs a label"));
        };
        let c = names.iter().position(|n| *n == text).ok_or_else(|| {
            table.cell_error(label, i, format!("unknown label {text:?} (classes: {})", list()))
        })?;
        counts[c] += 1;
        y.push(c as u32);
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(Error::data(
            &table.path,
            format!(
                "label column {label:?}: class {c} ({:?} in `classes`) has no rows; a class every row misses cannot be learned",
                names[c]
            ),
        ));
    }
    Ok((y, names))
}

/// Labels as the integers 0..K-1; returns them and K.
fn integer_labels(table: &Table, label: &str) -> Result<(Vec<u32>, usize)> {
    let values = table.numbers(label).map_err(|e| match e {
        Error::Data { path, msg } if msg.ends_with("is not a number") => Error::Data {
            path,
            msg: format!("{msg} (labels that are text need `classes = [...]` in [data], in class order)"),
        },
        e => e,
    })?;
    let mut y = Vec::with_capacity(values.len());
    let mut classes = BTreeSet::new();
    for (i, &v) in values.iter().enumerate() {
        if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX - 1) {
            return Err(table.cell_error(
                label,
                i,
                format!("{v} is not a class label (labels must be integers 0, 1, ..., K-1)"),
            ));
        }
        let c = v as u32;
        classes.insert(c);
        y.push(c);
    }
    let list = || classes.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    if classes.len() < 2 {
        return Err(Error::data(
            &table.path,
            format!(
                "label column {label:?} has one class only ({}) in all {} rows; a classifier needs at least two",
                list(),
                y.len()
            ),
        ));
    }
    let k = *classes.last().expect("two classes") as usize + 1;
    if classes.len() != k {
        let gap = (0..k as u32).find(|c| !classes.contains(c)).expect("a gap");
        return Err(Error::data(
            &table.path,
            format!(
                "label column {label:?}: classes must be 0..K-1, but class {gap} has no rows (classes found: {})",
                list()
            ),
        ));
    }
    Ok((y, k))
}
