//! A tabular column: the one type the engine, the plugins and the test harness share. Its
//! C form, [`FeatureSpec`], is derived from it ([`Column::spec`]) and read back into it
//! ([`Column::from_spec`]); nothing else copies a column field by field.

use crate::abi::{FeatureKind, FeatureSpec, StrRef};
use crate::error::{PluginError, Result};

/// A tabular column, in the units the attack sees (raw, unstandardised).
///
/// Which way a column may move is not a property of the column but a rule of the
/// pipeline, like relations between columns: it comes with the batch's
/// [`TabularConstraints`](crate::TabularConstraints).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: FeatureKind,
    /// Whether the attacker may change it.
    pub mutable: bool,
    /// Inclusive bounds (may be ±inf).
    pub lower: f32,
    pub upper: f32,
    /// The attacker's cost per unit change (raw units).
    pub cost: f32,
    /// Standard deviation of the model's standardisation (raw units per standardised unit):
    /// budgets in standardised units are multiplied by it.
    pub scale: f32,
    /// One-hot group id for categorical columns (the columns of one group are one-hot
    /// together).
    pub group: Option<u32>,
}

impl Column {
    /// A mutable, unbounded continuous column with cost 1 and scale 1: a start for
    /// `Column { .., ..Column::continuous(name) }`.
    pub fn continuous(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: FeatureKind::Continuous,
            mutable: true,
            lower: f32::NEG_INFINITY,
            upper: f32::INFINITY,
            cost: 1.0,
            scale: 1.0,
            group: None,
        }
    }

    /// Projects `v` onto what this column allows (bounds, then integrality), leaving
    /// one-hot groups to [`project_row`].
    pub fn clamp(&self, v: f32) -> f32 {
        // max/min rather than f32::clamp: a malformed schema must not panic inside a plugin.
        let v = v.max(self.lower).min(self.upper);
        match self.kind {
            FeatureKind::Integer => v.round().max(self.lower.ceil()).min(self.upper.floor()),
            FeatureKind::Binary => {
                if v >= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            _ => v,
        }
    }

    /// The column in ABI form. Its `name` borrows this column's: the spec is valid for as
    /// long as the column lives unchanged.
    pub fn spec(&self) -> FeatureSpec {
        FeatureSpec {
            name: StrRef::new(&self.name),
            kind: self.kind as u32,
            mutable: u8::from(self.mutable),
            lower: self.lower,
            upper: self.upper,
            cost: self.cost,
            scale: self.scale,
            group: self.group.map_or(-1, |g| g as i32),
        }
    }

    /// The column a spec describes. A name that is not UTF-8 reads as `?` (it only labels
    /// messages); an unknown kind is an error.
    ///
    /// # Safety
    /// `spec.name` must point to `len` live bytes for the call.
    pub unsafe fn from_spec(spec: &FeatureSpec) -> Result<Self> {
        // SAFETY: the caller promises the name's bytes.
        let name = std::str::from_utf8(unsafe { spec.name.as_bytes() }).unwrap_or("?");
        Ok(Self {
            name: name.to_owned(),
            kind: FeatureKind::from_u32(spec.kind)
                .ok_or_else(|| PluginError(format!("unknown feature kind {}", spec.kind)))?,
            mutable: spec.mutable != 0,
            lower: spec.lower,
            upper: spec.upper,
            cost: spec.cost,
            scale: spec.scale,
            group: u32::try_from(spec.group).ok(),
        })
    }
}

/// Makes a tabular row satisfy every column constraint: immutable columns restored from
/// `original`, bounds, integers, binaries, and one-hot groups (the largest value wins).
/// Directions and relations live in the batch: [`TableBatch::project`] applies those too.
///
/// [`TableBatch::project`]: crate::TableBatch::project
pub fn project_row(features: &[Column], original: &[f32], row: &mut [f32]) {
    for (j, f) in features.iter().enumerate() {
        row[j] = if f.mutable && row[j].is_finite() { f.clamp(row[j]) } else { original[j] };
    }
    let mut seen: Vec<u32> = Vec::new();
    for f in features {
        let Some(g) = f.group else { continue };
        if seen.contains(&g) {
            continue;
        }
        seen.push(g);
        let cols: Vec<usize> = (0..features.len()).filter(|&j| features[j].group == Some(g)).collect();
        if cols.iter().any(|&j| !features[j].mutable) {
            for &j in &cols {
                row[j] = original[j];
            }
            continue;
        }
        let best = cols
            .iter()
            .copied()
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .expect("a group has at least one column");
        for &j in &cols {
            row[j] = if j == best { 1.0 } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the host sends is what the plugin reads: every field survives the C form.
    #[test]
    fn a_column_survives_its_abi_form() {
        let columns = [
            Column::continuous("amount"),
            Column {
                kind: FeatureKind::Categorical,
                mutable: false,
                lower: 0.0,
                upper: 1.0,
                cost: 0.5,
                scale: 2.5,
                group: Some(7),
                ..Column::continuous("merchant=grocery")
            },
        ];
        for c in &columns {
            let spec = c.spec();
            // SAFETY: `spec` borrows `c`, alive and unchanged here.
            assert_eq!(&unsafe { Column::from_spec(&spec) }.unwrap(), c);
        }
        let odd = FeatureSpec { kind: 9, ..columns[0].spec() };
        // SAFETY: as above.
        assert_eq!(unsafe { Column::from_spec(&odd) }.unwrap_err().0, "unknown feature kind 9");
    }
}
