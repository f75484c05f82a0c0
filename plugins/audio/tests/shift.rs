mod common;

use common::{RATE, TanhNet, assert_param_errors, assert_valid_audio, batch, clips, dense};
use tempered_audio::Shift;
use tempered_plugin::testing::run;

const W: usize = 2000;

fn shifted(params: &str, data: &[f32], seed: u64) -> Vec<f32> {
    let n = data.len() / W;
    let model = TanhNet::new(W, 4, 3, 1);
    dense(run::<Shift>(params, &batch(data.to_vec(), W, vec![0; n], seed), &model).unwrap().perturbed)
}

/// The `s` with `out[t] = x[t − s]` (zero outside), if there is one within `max`.
fn find_shift(x: &[f32], out: &[f32], max: i64) -> Option<i64> {
    (-max..=max).find(|&s| {
        (0..W as i64).all(|t| {
            let src = t - s;
            let want = if (0..W as i64).contains(&src) { x[src as usize] } else { 0.0 };
            out[t as usize] == want
        })
    })
}

#[test]
fn each_row_moves_by_a_whole_shift_within_the_budget_with_zero_fill() {
    // Rows with no padding, so zero-fill is visible at either end.
    let data: Vec<f32> = clips(40, W, 9).chunks(W).flat_map(|r| r.iter().map(|v| v + 0.01)).collect();
    let max = (0.01 * RATE as f64).round() as i64; // 80 samples
    let out = shifted(r#"{"max_shift": 0.01}"#, &data, 3);
    assert_valid_audio(&out, data.len());
    let shifts: Vec<i64> = data
        .chunks(W)
        .zip(out.chunks(W))
        .map(|(x, y)| find_shift(x, y, max + 20).expect("output is a shifted copy of the input"))
        .collect();
    assert!(shifts.iter().all(|s| s.abs() <= max), "{shifts:?}");
    assert!(shifts.iter().any(|&s| s > max / 2) && shifts.iter().any(|&s| s < -max / 2), "{shifts:?}");
    assert!(shifts.iter().filter(|&&s| s == shifts[0]).count() < 5, "shifts vary per row: {shifts:?}");
    // Same seed, same shifts.
    assert_eq!(out, shifted(r#"{"max_shift": 0.01}"#, &data, 3));
}

#[test]
fn no_shift_and_no_stretch_is_the_identity() {
    let data = clips(3, W, 1);
    assert_eq!(shifted(r#"{"max_shift": 0}"#, &data, 5), data);
}

#[test]
fn stretch_changes_the_pitch_by_the_drawn_factor() {
    // A pure tone over the whole row: count zero crossings to read its frequency.
    let freq = 400.0;
    let tone: Vec<f32> =
        (0..W).map(|t| 0.5 * (std::f32::consts::TAU * freq * (t as f32 + 0.3) / RATE as f32).sin()).collect();
    let data: Vec<f32> = tone.iter().copied().cycle().take(30 * W).collect();
    let out = shifted(r#"{"max_shift": 0, "max_stretch": 0.2}"#, &data, 8);
    assert_valid_audio(&out, data.len());
    let crossings = |r: &[f32]| r.windows(2).filter(|p| (p[0] < 0.0) != (p[1] < 0.0) && p[1] != 0.0).count();
    let base = crossings(&tone[..W * 3 / 4]) as f64;
    let mut ratios = Vec::new();
    for y in out.chunks(W) {
        // The first three quarters are inside the stretched recording for any factor >= 0.8.
        ratios.push(crossings(&y[..W * 3 / 4]) as f64 / base);
    }
    // A factor f plays the tone at freq / f: ratios within [1/1.2, 1/0.8], a couple of
    // crossings of slack.
    assert!(ratios.iter().all(|r| (1.0 / 1.2 - 0.02..1.0 / 0.8 + 0.02).contains(r)), "{ratios:?}");
    assert!(ratios.iter().any(|&r| r < 0.92) && ratios.iter().any(|&r| r > 1.08), "{ratios:?}");
}

#[test]
fn bad_params_are_clear_errors() {
    assert_param_errors::<Shift>(&[
        (r#"{"max_shift": -0.1}"#, &["max_shift must be >= 0"]),
        (r#"{"max_stretch": 1.5}"#, &["max_stretch must be in [0, 1)"]),
        (r#"{"max_shfit": 0.1}"#, &["unknown field `max_shfit`"]),
    ]);
    let mut no_rate = batch(clips(1, W, 1), W, vec![0], 0);
    no_rate.sample_rate = 0;
    let model = TanhNet::new(W, 4, 3, 1);
    assert!(run::<Shift>("{}", &no_rate, &model).unwrap_err().0.contains("no sample rate"));
}
