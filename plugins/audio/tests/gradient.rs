mod common;

use common::{TanhNet, assert_param_errors, assert_valid_audio, batch, clips, dense, linf, mean, snr_db};
use tempered_audio::{Fgsm, Pgd};
use tempered_plugin::Attack;
use tempered_plugin::testing::{TestOutcome, run};

const W: usize = 400;
const N: usize = 24;

struct Setup {
    model: TanhNet,
    data: Vec<f32>,
    labels: Vec<u32>,
}

fn setup() -> Setup {
    let model = TanhNet::new(W, 8, 4, 42);
    let data = clips(N, W, 17);
    let labels = model.argmax(&data);
    Setup { model, data, labels }
}

impl Setup {
    fn outcome<A: Attack>(&self, params: &str, seed: u64) -> TestOutcome {
        let b = batch(self.data.clone(), W, self.labels.clone(), seed);
        run::<A>(params, &b, &self.model).unwrap()
    }

    fn attack<A: Attack>(&self, params: &str, seed: u64) -> Vec<f32> {
        let out = dense(self.outcome::<A>(params, seed).perturbed);
        assert_valid_audio(&out, self.data.len());
        out
    }

    fn loss(&self, data: &[f32]) -> f64 {
        mean(&self.model.losses(data, &self.labels))
    }

    fn rows<'a>(&'a self, out: &'a [f32]) -> impl Iterator<Item = (&'a [f32], &'a [f32])> {
        self.data.chunks(W).zip(out.chunks(W))
    }
}

#[test]
fn linf_attacks_never_exceed_epsilon_on_any_row() {
    let s = setup();
    // 0.1 rounds up as an f32: a naive clamp would overshoot a host comparing in f64.
    for eps in [0.1, 0.003] {
        for params in
            [format!(r#"{{"epsilon": {eps}}}"#), format!(r#"{{"epsilon": {eps}, "random_start": true}}"#)]
        {
            let fgsm = s.attack::<Fgsm>(&params, 1);
            let pgd = s.attack::<Pgd>(&format!(r#"{{"epsilon": {eps}, "restarts": 2}}"#), 1);
            for out in [&fgsm, &pgd] {
                for (x, a) in s.rows(out) {
                    let d = linf(x, a);
                    assert!(d <= eps, "{params}: L∞ {d} > {eps}");
                }
            }
            // The budget is used, not just respected: FGSM moves unclipped samples by epsilon.
            assert!(s.rows(&fgsm).any(|(x, a)| linf(x, a) > eps * 0.99));
        }
    }
}

#[test]
fn snr_attacks_never_go_below_the_floor_on_any_row() {
    let s = setup();
    for snr in [0.0, 20.0, 45.0] {
        let runs = [
            s.attack::<Fgsm>(&format!(r#"{{"budget": "snr", "snr_db": {snr}}}"#), 3),
            s.attack::<Fgsm>(&format!(r#"{{"snr_db": {snr}, "random_start": true}}"#), 3),
            s.attack::<Pgd>(&format!(r#"{{"snr_db": {snr}, "restarts": 2}}"#), 3),
            s.attack::<Pgd>(&format!(r#"{{"snr_db": {snr}, "random_start": false, "step_size": 1.0}}"#), 3),
        ];
        for out in &runs {
            for (x, a) in s.rows(out) {
                let r = snr_db(x, a);
                assert!(r >= snr, "row SNR {r} dB below the {snr} dB floor");
            }
        }
        // ...and the budget is spent: a full-radius FGSM step lands on the floor on every row
        // that clipping leaves alone (the near-full-scale rows are every fifth).
        for (i, (x, a)) in s.rows(&runs[0]).enumerate().filter(|(i, _)| i % 5 != 0) {
            let spare = snr_db(x, a) - snr;
            assert!(spare < 0.01, "row {i}: {spare} dB of budget unused");
        }
    }
}

#[test]
fn pgd_raises_the_loss_more_than_fgsm_on_the_same_budget() {
    let s = setup();
    let clean = s.loss(&s.data);
    for (budget, seed) in [(r#""epsilon": 0.02"#, 1), (r#""snr_db": 25"#, 1), (r#""epsilon": 0.05"#, 2)] {
        let fgsm = s.loss(&s.attack::<Fgsm>(&format!("{{{budget}}}"), seed));
        let pgd = s.loss(&s.attack::<Pgd>(&format!("{{{budget}}}"), seed));
        assert!(fgsm > clean, "{budget}: fgsm {fgsm} <= clean {clean}");
        assert!(pgd > fgsm, "{budget}: pgd {pgd} <= fgsm {fgsm} (clean {clean})");
    }
}

#[test]
fn restarts_keep_the_stronger_run_per_example() {
    let s = setup();
    for budget in [r#""epsilon": 0.01"#, r#""snr_db": 30"#] {
        // Restart 0 of a 6-restart run draws the same start as a 1-restart run.
        let one = s.model.losses(&s.attack::<Pgd>(&format!(r#"{{{budget}, "steps": 3}}"#), 5), &s.labels);
        let six = s
            .model
            .losses(&s.attack::<Pgd>(&format!(r#"{{{budget}, "steps": 3, "restarts": 6}}"#), 5), &s.labels);
        assert!(mean(&six) > mean(&one), "{budget}: restarts lowered the loss");
        let worse = one.iter().zip(&six).filter(|(o, s)| *s < *o).count();
        assert!(worse <= N / 6, "{budget}: {worse} rows lost ground with restarts");
    }
}

#[test]
fn a_seed_repeats_exactly_and_another_seed_differs() {
    let s = setup();
    for p in
        [r#"{"epsilon": 0.01, "restarts": 3, "steps": 4}"#, r#"{"snr_db": 20, "restarts": 3, "steps": 4}"#]
    {
        assert_eq!(s.attack::<Pgd>(p, 9), s.attack::<Pgd>(p, 9), "{p}");
        assert_ne!(s.attack::<Pgd>(p, 9), s.attack::<Pgd>(p, 10), "{p}");
    }
    let p = r#"{"epsilon": 0.01}"#;
    assert_eq!(s.attack::<Fgsm>(p, 1), s.attack::<Fgsm>(p, 2), "fgsm without random start is deterministic");
}

#[test]
fn queries_per_example_are_steps_times_restarts() {
    let s = setup();
    for (steps, restarts) in [(10, 1), (3, 4), (1, 2)] {
        let p = format!(r#"{{"epsilon": 0.01, "steps": {steps}, "restarts": {restarts}}}"#);
        assert_eq!(s.outcome::<Pgd>(&p, 0).queries, vec![steps * restarts; N], "{p}");
    }
    assert_eq!(s.outcome::<Fgsm>(r#"{"snr_db": 10}"#, 0).queries, vec![1; N]);
}

#[test]
fn silent_rows_are_left_alone_under_an_snr_budget() {
    let mut s = setup();
    s.data[..W].fill(0.0);
    let out = s.attack::<Pgd>(r#"{"snr_db": 10}"#, 1);
    assert!(out[..W].iter().all(|&v| v == 0.0));
}

#[test]
fn bad_params_are_clear_errors() {
    assert_param_errors::<Pgd>(&[
        (r#"{"epsilon": -0.1}"#, &["epsilon must be a finite number >= 0, got -0.1"]),
        (r#"{"epsilon": 0.1, "stpes": 3}"#, &["unknown field `stpes`"]),
        (r#"{"budget": "l2", "epsilon": 0.1}"#, &["unknown variant `l2`"]),
        (r#"{"budget": "snr", "epsilon": 0.1}"#, &["budget = \"snr\" takes `snr_db`"]),
        (r#"{"steps": 10}"#, &["no budget"]),
        (r#"{"epsilon": 0.1, "steps": 0}"#, &["steps must be >= 1"]),
        (r#"{"epsilon": 0.1, "restarts": 0}"#, &["restarts must be >= 1"]),
    ]);
    assert_param_errors::<Fgsm>(&[
        (r#"{"budget": "linf", "epsilon": -0.1}"#, &["epsilon must be a finite number >= 0, got -0.1"]),
        (r#"{"snr_db": 10, "step_size": -1}"#, &["step_size must be a finite number > 0"]),
    ]);
}
