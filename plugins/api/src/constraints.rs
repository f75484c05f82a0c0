//! What a fraudster can really do to a row, beyond each column's bounds: the direction a
//! column may move in (an amount only up, a timestamp only forward) and columns that
//! follow from others (balance after = balance before − amount). The pipeline declares
//! them; the engine hands them to the attack with every tabular batch
//! ([`Batch::constraints`](crate::Batch::constraints)) and checks them on every
//! adversarial row.

use serde::{Deserialize, Serialize};

/// The way the attacker may move a column, in raw units.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Any,
    /// Never below the original value.
    Up,
    /// Never above the original value.
    Down,
}

impl Direction {
    /// `v` moved back onto the allowed side of `original` (an unmoved value stays).
    pub fn clamp(self, original: f32, v: f32) -> f32 {
        match self {
            Direction::Any => v,
            Direction::Up => v.max(original),
            Direction::Down => v.min(original),
        }
    }

    /// Whether `v` is on the allowed side of `original`.
    pub fn allows(self, original: f32, v: f32) -> bool {
        match self {
            Direction::Any => true,
            Direction::Up => v >= original,
            Direction::Down => v <= original,
        }
    }
}

/// `row[column] = constant + Σ coefficient · row[term]`: a column the others determine.
/// The attacker never moves `column` itself; it follows its terms. Columns are indices into
/// the batch's features.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    pub column: usize,
    pub terms: Vec<(usize, f64)>,
    #[serde(default)]
    pub constant: f64,
}

impl Relation {
    /// The value the relation gives `column` in `row`, in `f64`.
    pub fn value(&self, row: &[f32]) -> f64 {
        self.terms.iter().map(|&(j, c)| c * f64::from(row[j])).sum::<f64>() + self.constant
    }

    /// How far `row[column]` is from the relation's value.
    pub fn residual(&self, row: &[f32]) -> f64 {
        f64::from(row[self.column]) - self.value(row)
    }

    /// The tolerance for `row`: the `f32` rounding of the values involved, so that a
    /// relation exact in the data's decimals holds after both sides are stored as `f32`.
    pub fn tolerance(&self, row: &[f32]) -> f64 {
        let scale: f64 = self.terms.iter().map(|&(j, c)| (c * f64::from(row[j])).abs()).sum::<f64>()
            + f64::from(row[self.column]).abs()
            + self.constant.abs();
        1e-6 * (1.0 + scale)
    }
}

/// The constraints of a tabular batch beyond each column's own settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TabularConstraints {
    /// One per column, or empty when every column may move either way.
    #[serde(default)]
    pub directions: Vec<Direction>,
    #[serde(default)]
    pub relations: Vec<Relation>,
}

impl TabularConstraints {
    pub fn is_empty(&self) -> bool {
        self.directions.iter().all(|d| *d == Direction::Any) && self.relations.is_empty()
    }

    /// The direction column `j` may move in.
    pub fn direction(&self, j: usize) -> Direction {
        self.directions.get(j).copied().unwrap_or_default()
    }

    /// Whether column `j` follows from others.
    pub fn is_derived(&self, j: usize) -> bool {
        self.relations.iter().any(|r| r.column == j)
    }

    /// Refuses constraints that name columns a `width`-column row does not have, or a
    /// derived column that is also a term (it could not be computed).
    pub fn validate(&self, width: usize) -> Result<(), String> {
        if !self.directions.is_empty() && self.directions.len() != width {
            return Err(format!("{} directions for {width} columns", self.directions.len()));
        }
        for r in &self.relations {
            if r.column >= width || r.terms.iter().any(|&(j, _)| j >= width) {
                return Err(format!("a relation names a column past the {width} of the row"));
            }
            if r.terms.iter().any(|&(j, _)| self.is_derived(j)) {
                return Err("a relation's term is itself a derived column".into());
            }
            if !(r.constant.is_finite() && r.terms.iter().all(|&(_, c)| c.is_finite())) {
                return Err("a relation has a coefficient that is not a finite number".into());
            }
        }
        Ok(())
    }

    /// Makes `row` keep every direction (against `original`) and every relation (derived
    /// columns recomputed from their terms). A derived value that cannot be stored (not
    /// finite) puts the whole row back to `original`, which keeps everything.
    pub fn apply(&self, original: &[f32], row: &mut [f32]) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = self.direction(j).clamp(original[j], *v);
        }
        for r in &self.relations {
            // An unchanged row keeps the data's own value, whatever its rounding.
            let moved = r.terms.iter().any(|&(j, _)| row[j] != original[j]);
            let v = if moved { r.value(row) as f32 } else { original[r.column] };
            if !v.is_finite() {
                row.copy_from_slice(original);
                return;
            }
            row[r.column] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance() -> TabularConstraints {
        // Columns: balance_before, amount, balance_after = balance_before - amount.
        TabularConstraints {
            directions: vec![Direction::Any, Direction::Up, Direction::Any],
            relations: vec![Relation { column: 2, terms: vec![(0, 1.0), (1, -1.0)], constant: 0.0 }],
        }
    }

    #[test]
    fn apply_keeps_directions_and_recomputes_derived_columns() {
        let c = balance();
        let x = [100.0f32, 20.0, 80.0];
        let mut row = [100.0f32, 15.0, 80.0];
        c.apply(&x, &mut row);
        assert_eq!(row, x, "the amount may not go down");
        let mut row = [100.0f32, 35.5, 80.0];
        c.apply(&x, &mut row);
        assert_eq!(row, [100.0, 35.5, 64.5], "the balance follows the amount");
        assert!(c.relations[0].residual(&row).abs() <= c.relations[0].tolerance(&row));
    }

    #[test]
    fn malformed_constraints_are_refused() {
        let mut c = balance();
        assert!(c.validate(3).is_ok());
        assert!(c.validate(2).is_err());
        c.relations.push(Relation { column: 0, terms: vec![(2, 1.0)], constant: 0.0 });
        assert_eq!(c.validate(3).unwrap_err(), "a relation's term is itself a derived column");
    }

    #[test]
    fn constraints_cross_the_abi_as_json() {
        let c = balance();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"directions":["any","up","any"],"relations":[{"column":2,"terms":[[0,1.0],[1,-1.0]],"constant":0.0}]}"#
        );
        assert_eq!(serde_json::from_str::<TabularConstraints>(&json).unwrap(), c);
    }
}
