mod common;

use common::{RATE, TanhNet, assert_param_errors, assert_valid_audio, batch, clips, dense, snr_db};
use tempered_audio::Noise;
use tempered_plugin::testing::run;

const W: usize = 1600;

fn noisy(params: &str, data: &[f32], seed: u64) -> Vec<f32> {
    let n = data.len() / W;
    let model = TanhNet::new(W, 4, 3, 1);
    dense(run::<Noise>(params, &batch(data.to_vec(), W, vec![0; n], seed), &model).unwrap().perturbed)
}

/// Σ(v_t − v_{t−1})² / Σv²: about 2 for white noise, far less when low frequencies dominate.
fn roughness(v: &[f32]) -> f64 {
    let e: f64 = v.iter().map(|&v| f64::from(v).powi(2)).sum();
    let d: f64 = v.windows(2).map(|p| f64::from(p[1] - p[0]).powi(2)).sum();
    d / e
}

#[test]
fn every_kind_realises_the_requested_snr_on_every_row() {
    let data = clips(20, W, 3);
    for kind in ["white", "pink", "background"] {
        for target in [0.0, 10.0, 30.0] {
            let out = noisy(&format!(r#"{{"kind": "{kind}", "snr_db": {target}}}"#), &data, 7);
            assert_valid_audio(&out, data.len());
            for (x, a) in data.chunks(W).zip(out.chunks(W)) {
                let snr = snr_db(x, a);
                // At or above the floor (the host's check), and within 0.1 dB of the target.
                assert!(snr >= target && snr - target < 0.1, "{kind} at {target} dB: row has {snr} dB");
            }
        }
    }
}

#[test]
fn pink_noise_is_heavier_in_low_frequencies_than_white() {
    // A quiet signal, so the perturbation is almost all noise and nothing clips.
    let data: Vec<f32> = (0..4 * W).map(|t| 0.01 * (t as f32 * 0.05).sin()).collect();
    let delta = |kind: &str| -> Vec<f32> {
        let out = noisy(&format!(r#"{{"kind": "{kind}", "snr_db": -20}}"#), &data, 11);
        out.iter().zip(&data).map(|(a, x)| a - x).collect()
    };
    let white = delta("white");
    let pink = delta("pink");
    for row in 0..4 {
        let (w, p) = (roughness(&white[row * W..][..W]), roughness(&pink[row * W..][..W]));
        assert!((1.7..2.3).contains(&w), "white noise roughness {w}");
        // 1/f from ~2 Hz to 4 kHz predicts ~0.42; a 0.2 s row holds less of the lowest octaves.
        assert!(p < 0.8, "pink noise roughness {p}");
    }
}

#[test]
fn background_noise_is_another_row_of_the_batch() {
    let data: Vec<f32> = clips(6, W, 5).iter().map(|v| v * 0.3).collect();
    let n = data.len() / W;
    let out = noisy(r#"{"kind": "background", "snr_db": 5}"#, &data, 13);
    let mut offsets = Vec::new();
    for i in 0..n {
        let delta: Vec<f32> = out[i * W..][..W].iter().zip(&data[i * W..][..W]).map(|(a, x)| a - x).collect();
        // The perturbation is a scaled copy of exactly one other row: correlation 1.
        let corr = |j: usize| {
            let o = &data[j * W..][..W];
            let num: f64 = delta.iter().zip(o).map(|(&d, &o)| f64::from(d) * f64::from(o)).sum();
            num / (common::mean(&delta.iter().map(|d| d * d).collect::<Vec<_>>())
                * common::mean(&o.iter().map(|o| o * o).collect::<Vec<_>>()))
            .sqrt()
                / W as f64
        };
        let j = (0..n).find(|&j| corr(j) > 0.999).expect("noise is a copy of some row");
        assert_ne!(j, i, "row {i} was mixed with itself");
        offsets.push((j + n - i) % n);
    }
    assert!(offsets.iter().all(|&k| k == offsets[0]), "one offset per batch: {offsets:?}");
}

#[test]
fn the_seed_repeats_a_run_and_a_new_seed_changes_it() {
    let data = clips(5, W, 2);
    for kind in ["white", "pink", "background"] {
        let p = format!(r#"{{"kind": "{kind}", "snr_db": 10}}"#);
        assert_eq!(noisy(&p, &data, 1), noisy(&p, &data, 1), "{kind}");
        if kind != "background" {
            assert_ne!(noisy(&p, &data, 1), noisy(&p, &data, 2), "{kind}");
        }
    }
}

#[test]
fn silent_rows_stay_silent_and_a_lone_row_still_gets_background_noise() {
    let mut data = clips(3, W, 4);
    data[W..2 * W].fill(0.0);
    let out = noisy(r#"{"kind": "white", "snr_db": 10}"#, &data, 1);
    assert!(out[W..2 * W].iter().all(|&v| v == 0.0));
    // One row: no other recording to borrow, so white noise at the same SNR.
    let out = noisy(r#"{"kind": "background", "snr_db": 10}"#, &data[..W], 1);
    assert!((snr_db(&data[..W], &out) - 10.0).abs() < 0.1);
    assert_eq!(RATE, 8000);
}

#[test]
fn bad_params_are_clear_errors() {
    assert_param_errors::<Noise>(&[
        (r#"{"kind": "white"}"#, &["missing field `snr_db`"]),
        (r#"{"kind": "purple", "snr_db": 10}"#, &["unknown variant `purple`", "pink"]),
        (r#"{"snr_db": 10, "snr": 3}"#, &["unknown field `snr`"]),
        (r#"{"snr_db": "loud"}"#, &["bad params for attack `noise`"]),
    ]);
}
