//! Budgets that hold exactly. The host checks returned rows in its own arithmetic, so every
//! check here runs in f64 on the very f32 values the host will see (the difference of two
//! f32s is exact in f64), and rounding can never leave a row a hair outside its ball.

use tempered_plugin::{Column, Direction, TableBatch};

use crate::shared::Columns;

/// The next f32 from `x` toward `t` (`t` itself once they meet).
pub(crate) fn step_toward(x: f32, t: f32) -> f32 {
    if x == t || x.is_nan() || t.is_nan() {
        return t;
    }
    if x == 0.0 {
        return f32::from_bits(1).copysign(t);
    }
    let up = t > x;
    let bits = x.to_bits();
    f32::from_bits(if (x > 0.0) == up { bits + 1 } else { bits - 1 })
}

/// The values column `f` may take in a row whose original value is `o`: inside its bounds
/// and at most `radius` raw units from `o`, exactly; integral ends for an integer column.
/// An empty set (an original outside its bounds) collapses to `[o, o]`.
pub(crate) fn interval(f: &Column, o: f32, radius: f64, integer: bool) -> [f32; 2] {
    let r = radius as f32;
    let mut lo = f.lower.max(o - r);
    let mut hi = f.upper.min(o + r);
    // Rounding `o ∓ r` to f32 overshoots by at most one step: taking it as a select keeps
    // the loops below (a safety net) from mispredicting on every other column.
    let (lo1, hi1) = (step_toward(lo, o), step_toward(hi, o));
    lo = if o as f64 - lo as f64 > radius { lo1 } else { lo };
    hi = if hi as f64 - o as f64 > radius { hi1 } else { hi };
    while o as f64 - lo as f64 > radius {
        lo = step_toward(lo, o);
    }
    while hi as f64 - o as f64 > radius {
        hi = step_toward(hi, o);
    }
    if integer {
        (lo, hi) = (lo.ceil(), hi.floor());
    }
    if lo <= hi { [lo, hi] } else { [o, o] }
}

/// `v` inside `[lo, hi]`; unlike `f32::clamp` it never panics (a NaN `v` lands on `lo`).
pub(crate) fn clamp(v: f32, [lo, hi]: [f32; 2]) -> f32 {
    v.max(lo).min(hi)
}

/// `interval` of every moving column of every row (`n * moving.len()` of them), for an
/// L∞ ball of `radius_std` standardised units, or the bounds alone for `None`, cut to the
/// side of the original the pipeline's direction allows.
pub(crate) fn boxes(batch: &TableBatch<'_>, cols: &Columns, radius_std: Option<f32>) -> Vec<[f32; 2]> {
    let radii: Vec<f64> = cols
        .moving
        .iter()
        .map(|&j| radius_std.map_or(f64::INFINITY, |e| e as f64 * batch.features[j].scale as f64))
        .collect();
    let mut out = Vec::with_capacity(batch.len() * cols.moving.len());
    for i in 0..batch.len() {
        let row = batch.row(i);
        for ((&j, &integer), &r) in cols.moving.iter().zip(&cols.integer).zip(&radii) {
            let [lo, hi] = interval(&batch.features[j], row[j], r, integer);
            out.push(match batch.constraints.direction(j) {
                Direction::Any => [lo, hi],
                Direction::Up => [lo.max(row[j]).min(hi.max(row[j])), hi.max(row[j])],
                Direction::Down => [lo.min(row[j]), hi.min(row[j]).max(lo.min(row[j]))],
            });
        }
    }
    out
}

/// Writes the row that relaxed values `z` (one per moving column) stand for into `x`:
/// integer columns rounded to the nearest integer of their box.
pub(crate) fn materialize(cols: &Columns, bx: &[[f32; 2]], z: &[f32], x: &mut [f32]) {
    for (((&j, &integer), &v), &b) in cols.moving.iter().zip(&cols.integer).zip(z).zip(bx) {
        x[j] = if integer { clamp(v.round(), b) } else { v };
    }
}

/// Standardised L2 distance between rows `x` and `o` over the moving columns, in f64.
pub(crate) fn l2_std(features: &[Column], cols: &Columns, o: &[f32], x: &[f32]) -> f64 {
    let mut sum = 0.0;
    for &j in &cols.moving {
        let d = (x[j] as f64 - o[j] as f64) / features[j].scale as f64;
        sum += d * d;
    }
    sum.sqrt()
}

/// Makes materialized row `x` (from relaxed `z`, whose standardised distance to `o` is at
/// most `eps` up to f32 rounding) lie inside the L2 ball exactly. Rounding an integer to
/// the nearest value can grow the distance, so integers first round toward the original
/// (which never grows it), then continuous columns shrink toward the original.
pub(crate) fn fit_l2(
    features: &[Column],
    cols: &Columns,
    bx: &[[f32; 2]],
    z: &[f32],
    o: &[f32],
    x: &mut [f32],
    eps: f64,
) {
    if l2_std(features, cols, o, x) <= eps {
        return;
    }
    for (k, &j) in cols.moving.iter().enumerate() {
        if cols.integer[k] {
            let t = if z[k] > o[j] { z[k].floor() } else { z[k].ceil() };
            x[j] = clamp(t, bx[k]);
        }
    }
    for _ in 0..8 {
        let norm = l2_std(features, cols, o, x);
        if norm <= eps {
            return;
        }
        let f = (eps / norm * (1.0 - 1e-6)) as f32;
        for (k, &j) in cols.moving.iter().enumerate() {
            if !cols.integer[k] {
                x[j] = clamp(o[j] + (x[j] - o[j]) * f, bx[k]);
            }
        }
    }
    if l2_std(features, cols, o, x) > eps {
        for &j in &cols.moving {
            x[j] = o[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(lower: f32, upper: f32) -> Column {
        Column { lower, upper, ..Column::continuous("f") }
    }

    #[test]
    fn step_toward_moves_one_ulp_in_every_sign_case() {
        for (x, t) in [(1.0f32, 2.0f32), (1.0, 0.0), (-1.0, 0.0), (-1.0, -2.0), (0.0, 1.0), (0.0, -1.0)] {
            let y = step_toward(x, t);
            assert!((y - x).signum() == (t - x).signum() && y != x, "{x} -> {t} gave {y}");
            assert!((y as f64 - x as f64).abs() < 1e-6);
        }
        assert_eq!(step_toward(3.0, 3.0), 3.0);
    }

    #[test]
    fn interval_holds_the_radius_exactly_even_where_f32_spacing_is_coarse() {
        // Near 1e4 the f32 spacing (~1e-3) is coarse against a 0.0123 radius.
        for &o in &[10_000.123f32, -7_777.7, 0.3, 1e6] {
            let r = 0.0123f64;
            let [lo, hi] = interval(&feature(f32::NEG_INFINITY, f32::INFINITY), o, r, false);
            assert!(o as f64 - lo as f64 <= r && hi as f64 - o as f64 <= r, "{o}: [{lo}, {hi}]");
            assert!(lo <= o && o <= hi);
        }
        let [lo, hi] = interval(&feature(0.0, 10.0), 4.0, 2.5, true);
        assert_eq!([lo, hi], [2.0, 6.0]);
        // An original outside its bounds further than the radius: stay put.
        assert_eq!(interval(&feature(0.0, 1.0), 5.0, 0.5, false), [5.0, 5.0]);
    }
}
