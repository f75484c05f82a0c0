//! What a fraudster can really do to a row, beyond each column's bounds: the direction a
//! column may move in (an amount only up, a timestamp only forward) and columns that
//! follow from others (balance after = balance before − amount). The pipeline declares
//! them; the engine hands them to the attack with every tabular batch
//! ([`TableBatch::constraints`](crate::TableBatch::constraints)) and checks them on every
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

/// The category switches allowed in one one-hot group: from each listed column (category),
/// the columns it may switch to. A switch not listed is forbidden; a category not listed
/// as a `from` may not be left.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Transitions {
    /// The group's columns.
    pub group: Vec<usize>,
    pub allowed: Vec<(usize, Vec<usize>)>,
}

impl Transitions {
    pub fn allows(&self, from: usize, to: usize) -> bool {
        from == to || self.allowed.iter().any(|(f, tos)| *f == from && tos.contains(&to))
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
    /// One-hot groups whose switches are restricted (groups not listed: any switch).
    #[serde(default)]
    pub transitions: Vec<Transitions>,
}

impl TabularConstraints {
    pub fn is_empty(&self) -> bool {
        self.directions.iter().all(|d| *d == Direction::Any)
            && self.relations.is_empty()
            && self.transitions.is_empty()
    }

    /// Whether a one-hot group may switch from column `from` to column `to`.
    pub fn switch_allowed(&self, from: usize, to: usize) -> bool {
        self.transitions.iter().find(|t| t.group.contains(&from)).is_none_or(|t| t.allows(from, to))
    }

    /// The hot column of `group` in `row`, when exactly one is 1 and the rest 0.
    fn hot(group: &[usize], row: &[f32]) -> Option<usize> {
        let mut found = None;
        for &j in group {
            match row[j] {
                v if v == 1.0 && found.is_none() => found = Some(j),
                0.0 => {}
                _ => return None,
            }
        }
        found
    }

    /// The restricted switch `row` makes against `original`, as `(from, to)`, if any.
    pub fn forbidden_switch(&self, original: &[f32], row: &[f32]) -> Option<(usize, usize)> {
        self.transitions.iter().find_map(|t| {
            let (a, b) = (Self::hot(&t.group, original)?, Self::hot(&t.group, row)?);
            (!t.allows(a, b)).then_some((a, b))
        })
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
        for t in &self.transitions {
            let inside = |j: &usize| t.group.contains(j);
            if t.group.iter().any(|&j| j >= width)
                || !t.allowed.iter().all(|(f, tos)| inside(f) && tos.iter().all(inside))
            {
                return Err("category transitions name a column outside their group or the row".into());
            }
        }
        Ok(())
    }

    /// Makes `row` keep every direction (against `original`), every category transition
    /// (a forbidden switch is undone) and every relation (derived columns recomputed from
    /// their terms). A derived value that cannot be stored (not finite) puts the whole row
    /// back to `original`, which keeps everything.
    pub fn apply(&self, original: &[f32], row: &mut [f32]) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = self.direction(j).clamp(original[j], *v);
        }
        for t in &self.transitions {
            if let (Some(a), Some(b)) = (Self::hot(&t.group, original), Self::hot(&t.group, row))
                && !t.allows(a, b)
            {
                for &j in &t.group {
                    row[j] = original[j];
                }
            }
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
            transitions: Vec::new(),
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
    fn a_forbidden_category_switch_is_found_and_undone() {
        // One group of three categories: 0 may go to 1 only; 2 (say, `unseen`) is no target.
        let c = TabularConstraints {
            transitions: vec![Transitions {
                group: vec![0, 1, 2],
                allowed: vec![(0, vec![1]), (2, vec![0, 1])],
            }],
            ..Default::default()
        };
        let x = [1.0f32, 0.0, 0.0];
        assert!(c.switch_allowed(0, 1) && !c.switch_allowed(0, 2) && !c.switch_allowed(1, 0));
        assert_eq!(c.forbidden_switch(&x, &[0.0, 1.0, 0.0]), None);
        assert_eq!(c.forbidden_switch(&x, &[0.0, 0.0, 1.0]), Some((0, 2)));
        let mut row = [0.0f32, 0.0, 1.0];
        c.apply(&x, &mut row);
        assert_eq!(row, x, "undone");
        assert!(c.validate(3).is_ok() && c.validate(2).is_err());
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
            r#"{"directions":["any","up","any"],"relations":[{"column":2,"terms":[[0,1.0],[1,-1.0]],"constant":0.0}],"transitions":[]}"#
        );
        assert_eq!(serde_json::from_str::<TabularConstraints>(&json).unwrap(), c);
    }
}
