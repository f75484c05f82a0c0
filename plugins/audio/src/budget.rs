//! Keeping a perturbed row inside its budget the way the host measures it: SNR over the
//! whole row (padding included) and L∞, both after clipping to [-1, 1].
//!
//! The host checks the `f32` rows it receives, so every projection here ends with an exact
//! check of the stored values rather than trusting the arithmetic that produced them.

/// How far above an SNR floor we aim: covers the host summing in `f32` and rounding of
/// `x + δ`, while staying far below anything a listener or a report would notice.
pub const SNR_MARGIN_DB: f64 = 1e-3;

/// Σ v², in `f64`: a row is thousands of samples, and `f32` sums drift by more than the margin.
pub fn energy(row: &[f32]) -> f64 {
    row.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// Σ (adv − x)², exact per term (an `f32` difference is exact in `f64`).
pub fn distance_sq(x: &[f32], adv: &[f32]) -> f64 {
    x.iter()
        .zip(adv)
        .map(|(&a, &b)| {
            let d = f64::from(b) - f64::from(a);
            d * d
        })
        .sum()
}

/// The SNR the host reports for a row: `10·log10(Σx² / Σ(adv − x)²)`.
pub fn snr_db(x: &[f32], adv: &[f32]) -> f64 {
    10.0 * (energy(x) / distance_sq(x, adv)).log10()
}

/// The largest perturbation L2 norm whose SNR is `snr_db` plus [`SNR_MARGIN_DB`].
pub fn l2_radius(x: &[f32], snr_db: f64) -> f64 {
    energy(x).sqrt() * 10f64.powf(-(snr_db + SNR_MARGIN_DB) / 20.0)
}

/// The largest `f32` not above `eps`: a params value like 0.1 rounds *up* to `f32`, and a
/// host comparing in `f64` against its own 0.1 would then see a violation.
pub fn linf_limit(eps: f64) -> f32 {
    let e = eps as f32;
    if f64::from(e) > eps { f32::from_bits(e.to_bits() - 1) } else { e }
}

/// Clips to the valid amplitude range; a NaN (only from a broken host gradient or input)
/// becomes silence rather than poisoning the batch.
pub fn clip(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) }
}

/// One ulp from `a` towards `x`.
fn toward(a: f32, x: f32) -> f32 {
    if a == x {
        return a;
    }
    if a == 0.0 {
        let tiny = f32::from_bits(1);
        return if x > 0.0 { tiny } else { -tiny };
    }
    // Moving towards x shrinks |a| exactly when a and x - a have opposite signs.
    let shrink = (a > 0.0) == (x < a);
    f32::from_bits(if shrink { a.to_bits() - 1 } else { a.to_bits() + 1 })
}

/// `adv[j] = clip(x[j] + δ[j])` with `|δ[j]| ≤ eps`, the bound holding for the stored `f32`
/// values (`x + eps` can round above the exact sum).
#[inline]
pub fn linf_sample(x: f32, candidate: f32, eps: f32) -> f32 {
    let mut a = clip(candidate.clamp(x - eps, x + eps));
    while (f64::from(a) - f64::from(x)).abs() > f64::from(eps) {
        a = toward(a, x);
    }
    a
}

/// Projects a row onto the L∞ ball of radius `eps` around `x`, intersected with [-1, 1].
pub fn project_linf(x: &[f32], adv: &mut [f32], eps: f32) {
    for (a, &x) in adv.iter_mut().zip(x) {
        *a = linf_sample(x, *a, eps);
    }
}

/// Projects a row onto the L2 ball of radius `radius` around `x`, intersected with [-1, 1].
///
/// Scaling δ then clipping is exact for `x` in [-1, 1]: clipping only shortens each `δ[j]`
/// towards `x[j]`. Rounding of `x + sδ` can still land a hair outside, so the stored row is
/// re-measured and shrunk again until it fits. That rounding is nearly the same from one
/// try to the next, so each retry aims lower than the last (1e-6, 4e-6, … below the radius,
/// all far inside the margin of [`l2_radius`]).
pub fn project_l2(x: &[f32], adv: &mut [f32], radius: f64) {
    for a in adv.iter_mut() {
        *a = clip(*a);
    }
    for retry in 0..10 {
        let norm = distance_sq(x, adv).sqrt();
        if norm <= radius {
            return;
        }
        let scale = radius / norm * (1.0 - 1e-6 * 4f64.powi(retry));
        for (a, &x) in adv.iter_mut().zip(x) {
            *a = clip((f64::from(x) + scale * (f64::from(*a) - f64::from(x))) as f32);
        }
    }
    // Only reachable for inputs outside [-1, 1]: give up the perturbation, keep the range.
    for (a, &x) in adv.iter_mut().zip(x) {
        *a = clip(x);
    }
}

/// Adds `noise` to `x` so the clipped row has perturbation norm `radius` (when clipping
/// allows it), writing the result to `out`.
///
/// Clipping eats some of the noise on loud rows, so the scale is raised until the realised
/// norm reaches the target. Per sample the realised |δ| is `min(c·|n|, room)`, so
/// `norm(c)/c` never grows with `c`: each update `c ← c·radius/norm(c)` lands at or below
/// the target, and the iteration climbs towards it without overshooting.
pub fn mix_at_radius(x: &[f32], noise: &[f32], radius: f64, out: &mut [f32]) {
    let noise_norm = energy(noise).sqrt();
    if radius <= 0.0 || noise_norm == 0.0 || !noise_norm.is_finite() {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = clip(x);
        }
        return;
    }
    let mut c = radius / noise_norm;
    for _ in 0..16 {
        for ((o, &x), &n) in out.iter_mut().zip(x).zip(noise) {
            *o = clip((f64::from(x) + c * f64::from(n)) as f32);
        }
        let norm = distance_sq(x, out).sqrt();
        if norm >= radius * (1.0 - 1e-5) || norm == 0.0 {
            break;
        }
        c *= radius / norm;
    }
    project_l2(x, out, radius);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linf_limit_rounds_down_and_the_stored_bound_is_exact() {
        for eps in [0.1, 0.01, 0.3, 1e-4, 0.002] {
            let e = linf_limit(eps);
            assert!(f64::from(e) <= eps && f64::from(e) > eps * (1.0 - 1e-6), "{eps} -> {e}");
        }
        // Values where x + eps rounds above the exact sum.
        let eps = linf_limit(0.1);
        for i in 0..2000 {
            let x = -1.0 + i as f32 * 0.001;
            for target in [x + 1.0, x - 1.0] {
                let a = linf_sample(x, target, eps);
                assert!((f64::from(a) - f64::from(x)).abs() <= f64::from(eps), "{x} {a}");
                assert!((-1.0..=1.0).contains(&a));
            }
        }
    }

    #[test]
    fn toward_moves_one_ulp_in_the_right_direction() {
        for (a, x) in [(0.5f32, 0.0f32), (-0.5, 0.0), (0.5, 1.0), (-0.5, -1.0), (0.0, 1.0), (0.0, -1.0)] {
            let b = toward(a, x);
            // |b - x| can round to |a - x| (0 -> 1e-45 towards 1), so test betweenness.
            assert!(b != a && (a.min(x)..=a.max(x)).contains(&b), "{a} -> {b} towards {x}");
            assert_eq!(toward(b, a), a, "one ulp back");
        }
    }

    #[test]
    fn l2_projection_meets_the_snr_floor_after_clipping() {
        let x: Vec<f32> = (0..4000).map(|i| (i as f32 * 0.37).sin() * 0.9).collect();
        for snr in [-10.0, 0.0, 10.0, 40.0, 90.0] {
            let r = l2_radius(&x, snr);
            let mut adv: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + (i as f32 * 1.3).cos()).collect();
            project_l2(&x, &mut adv, r);
            assert!(snr_db(&x, &adv) >= snr, "{snr}: {}", snr_db(&x, &adv));
            assert!(adv.iter().all(|v| (-1.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn mixing_reaches_the_radius_despite_clipping() {
        // A loud row: plain scaling would lose much of the noise to clipping.
        let x: Vec<f32> = (0..2000).map(|i| if i % 2 == 0 { 0.95 } else { -0.95 }).collect();
        let noise: Vec<f32> = (0..2000).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let mut out = vec![0.0; 2000];
        let r = l2_radius(&x, 0.0);
        mix_at_radius(&x, &noise, r, &mut out);
        let snr = snr_db(&x, &out);
        assert!((SNR_MARGIN_DB..0.05).contains(&snr), "{snr}");
    }
}
