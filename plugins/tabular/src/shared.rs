//! What the three attacks share: which columns an attack may move, batch checks, and the
//! "does the model predict the target yet" question asked of the oracle.

use tempered_plugin::{Column, FeatureKind, Input, Oracle, PluginError, Result, TableBatch};

/// The columns of a schema, sorted by how an attack may change them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns {
    /// Mutable continuous and integer columns outside any one-hot group with a positive
    /// finite scale: the ones gradient steps move. A column whose scale is 0 or not finite
    /// has no standardised budget to speak of, so it stays put.
    pub moving: Vec<usize>,
    /// `integer[k]`: `moving[k]` is an integer column.
    pub integer: Vec<bool>,
    /// Mutable binary columns outside any one-hot group.
    pub binaries: Vec<usize>,
    /// One-hot groups whose columns are all mutable (a group with an immutable column is
    /// frozen by `project_row`, so moving it would be wasted effort).
    pub groups: Vec<Vec<usize>>,
}

impl Columns {
    /// `finite_cost`: also leave out columns with an infinite cost (attacks that pay per
    /// change can never afford them).
    pub fn new(features: &[Column], finite_cost: bool) -> Self {
        let mut c = Columns::default();
        let affordable = |f: &Column| !finite_cost || f.cost.is_finite();
        for (j, f) in features.iter().enumerate() {
            if !f.mutable || f.group.is_some() || !affordable(f) {
                continue;
            }
            match f.kind {
                FeatureKind::Continuous | FeatureKind::Integer
                    if f.scale.is_finite() && f.scale > 0.0 && f.lower <= f.upper =>
                {
                    c.moving.push(j);
                    c.integer.push(f.kind == FeatureKind::Integer);
                }
                FeatureKind::Binary => c.binaries.push(j),
                _ => {}
            }
        }
        let mut ids: Vec<u32> = features.iter().filter_map(|f| f.group).collect();
        ids.sort_unstable();
        ids.dedup();
        for g in ids {
            let cols: Vec<usize> = (0..features.len()).filter(|&j| features[j].group == Some(g)).collect();
            if cols.iter().all(|&j| features[j].mutable && affordable(&features[j])) {
                c.groups.push(cols);
            }
        }
        c
    }
}

/// The column of `row` that is hot in one-hot group `cols`, if exactly one is 1 and the
/// rest 0 (a malformed group is left alone).
pub(crate) fn hot(cols: &[usize], row: &[f32]) -> Option<usize> {
    let mut found = None;
    for &j in cols {
        if row[j] == 1.0 && found.is_none() {
            found = Some(j);
        } else if row[j] != 0.0 {
            return None;
        }
    }
    found
}

/// Rejects table batches whose parts do not fit together.
pub(crate) fn check_batch(batch: &TableBatch<'_>) -> Result<()> {
    if batch.features.len() != batch.width {
        return Err(PluginError(format!(
            "the batch has {} columns but {} feature descriptions",
            batch.width,
            batch.features.len()
        )));
    }
    if batch.data.len() != batch.len() * batch.width {
        return Err(PluginError(format!(
            "the batch has {} values, not {} rows x {} columns",
            batch.data.len(),
            batch.len(),
            batch.width
        )));
    }
    Ok(())
}

/// Attacks that pay per change need costs they can add up.
pub(crate) fn check_costs(attack: &str, features: &[Column]) -> Result<()> {
    match features.iter().find(|f| f.mutable && (f.cost.is_nan() || f.cost < 0.0)) {
        Some(f) => Err(PluginError(format!(
            "{attack}: feature `{}` has cost {}; costs must be >= 0",
            f.name, f.cost
        ))),
        None => Ok(()),
    }
}

/// Checks the class options of the targeted attacks against the model.
pub(crate) fn check_classes(attack: &str, fraud: u32, target: u32, n_classes: usize) -> Result<()> {
    for (name, c) in [("fraud_class", fraud), ("target_class", target)] {
        if c as usize >= n_classes {
            return Err(PluginError(format!("{attack}: {name} = {c} but the model has {n_classes} classes")));
        }
    }
    Ok(())
}

/// Whether probabilities `p` put class `c` strictly above every other class (a tie may go
/// either way in the host's argmax, so it counts for neither side).
pub(crate) fn predicts(p: &[f32], c: usize) -> bool {
    p.iter().enumerate().all(|(k, &v)| k == c || v < p[c])
}

/// Cross-entropy of `targets` at rows `x` with its raw-unit gradient, and whether the model
/// predicts the target there. A two-class model answers the second question from the loss
/// (p > 1/2 exactly when the loss is below ln 2), saving a `predict` query per row.
pub(crate) fn toward_target(
    oracle: &Oracle<'_>,
    x: &[f32],
    width: usize,
    targets: &[u32],
    ids: &[u32],
) -> Result<(Vec<bool>, Vec<f32>)> {
    let input = Input::Dense { data: x, width };
    let (loss, grad) = oracle.loss_grad(input, targets, ids)?;
    let k = oracle.n_classes();
    let hit = if k == 2 {
        loss.iter().map(|&l| l < std::f32::consts::LN_2).collect()
    } else {
        let p = oracle.predict(input, ids)?;
        p.chunks(k).zip(targets).map(|(p, &t)| predicts(p, t as usize)).collect()
    };
    Ok((hit, grad))
}

/// Keeps the chunks of `buf` (each `chunk` long) whose `keep` flag is set, in order.
pub(crate) fn compact<T: Copy>(buf: &mut Vec<T>, chunk: usize, keep: &[bool]) {
    let mut dst = 0;
    for (k, &kept) in keep.iter().enumerate() {
        if kept {
            if dst != k {
                buf.copy_within(k * chunk..(k + 1) * chunk, dst * chunk);
            }
            dst += 1;
        }
    }
    buf.truncate(dst * chunk);
}

/// Rows of `data` whose label is `class`.
pub(crate) fn rows_labelled(labels: &[u32], class: u32) -> Vec<usize> {
    labels.iter().enumerate().filter(|&(_, &y)| y == class).map(|(i, _)| i).collect()
}

/// Checks that a float option is finite and not negative.
pub(crate) fn non_negative(attack: &str, name: &str, v: f32) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(PluginError(format!("{attack}: {name} must be a finite number >= 0, got {v}")))
    }
}

/// Checks that a float option is finite and positive.
pub(crate) fn positive(attack: &str, name: &str, v: f32) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(PluginError(format!("{attack}: {name} must be a finite number > 0, got {v}")))
    }
}

/// The last line of defence: whatever an attack computed, the row it returns satisfies the
/// schema, the pipeline's directions and relations (`Batch::project`), and holds only
/// finite values.
pub(crate) fn finish(batch: &TableBatch<'_>, out: &mut [f32]) {
    let w = batch.width;
    for i in 0..batch.len() {
        let (orig, row) = (batch.row(i), &mut out[i * w..(i + 1) * w]);
        for (v, &o) in row.iter_mut().zip(orig) {
            if !v.is_finite() {
                *v = o;
            }
        }
        batch.project(i, row);
    }
}
