use tempered_plugin::testing::run;
use tempered_plugin::{Column, FeatureKind};
use tempered_tabular::Pgd;

use crate::common::*;

#[test]
fn every_row_is_valid_and_inside_its_ball_for_every_option() {
    let mut integer_moved = false;
    for n_classes in [2, 3] {
        let model = mixed_model(n_classes);
        let b = mixed_batch(40, n_classes as u32, 5);
        let w = b.width;
        for norm in ["linf", "l2"] {
            for discrete in [false, true] {
                for restarts in [1, 3] {
                    for eps in [0.3f32, 2.0] {
                        let params = format!(
                            r#"{{"norm": "{norm}", "epsilon": {eps}, "steps": 6, "restarts": {restarts},
                                "discrete": {discrete}}}"#
                        );
                        let out = run::<Pgd>(&params, &b, &model).unwrap();
                        let x = dense(&out);
                        assert_eq!(x.len(), b.data.len());
                        let mut moved = 0;
                        for i in 0..b.labels.len() {
                            let (o, r) = (&b.data[i * w..(i + 1) * w], &x[i * w..(i + 1) * w]);
                            check_row(&b.features, o, r).unwrap_or_else(|e| panic!("{params} row {i}: {e}"));
                            let d = if norm == "linf" { linf_std } else { l2_std }(&b.features, o, r);
                            assert!(d <= eps as f64, "{params} row {i}: {norm} distance {d} > {eps}");
                            if !discrete {
                                assert_eq!(o[4..8], r[4..8], "{params}: binary/one-hot columns must stay");
                            }
                            moved += (o[0] != r[0]) as usize;
                            integer_moved |= o[2] != r[2];
                        }
                        assert!(moved > 30, "{params}: only {moved} rows moved");
                    }
                }
            }
        }
    }
    assert!(integer_moved, "integer columns never moved: rounding is too timid");
}

/// Logistic model on three continuous columns with different scales, and rows near (and
/// one far from) the boundary, each labelled with the class the model gives it.
fn near_boundary() -> (Linear, tempered_plugin::testing::TestBatch) {
    let model = Linear::logistic(&[1.0, -1.0, 2.0], 0.0);
    let data = vec![0.1, 0.0, 0.0, -0.2, 0.0, 0.0, 0.0, 0.1, 0.1, 0.0, -0.1, -0.1, 10.0, 0.0, 0.0];
    let labels = vec![1, 0, 1, 0, 1];
    let b = batch(plain_schema(&[1.0; 3], &[1.0, 2.0, 0.5]), data, labels);
    (model, b)
}

#[test]
fn pgd_raises_the_loss_of_every_row_and_flips_the_easy_ones() {
    let (model, b) = near_boundary();
    for params in [r#"{"epsilon": 0.5}"#, r#"{"epsilon": 0.5, "norm": "l2"}"#] {
        let out = run::<Pgd>(params, &b, &model).unwrap();
        let x = dense(&out);
        for i in 0..5 {
            let (o, r) = (&b.data[i * 3..i * 3 + 3], &x[i * 3..i * 3 + 3]);
            let y = b.labels[i];
            assert_eq!(model.class(o), y, "test rows start correctly classified");
            assert!(model.loss(r, y) > model.loss(o, y) * 1.5, "{params}: row {i} loss did not rise");
            if i < 4 {
                assert_ne!(model.class(r), y, "{params}: easy row {i} not flipped");
            }
        }
        assert_eq!(model.class(&x[12..15]), 1, "a row 10 logits deep cannot flip within 0.5");
    }
}

#[test]
fn same_seed_repeats_and_another_seed_starts_elsewhere() {
    let (model, mut b) = near_boundary();
    let params = r#"{"epsilon": 0.5, "steps": 2, "step_size": 0.05}"#;
    b.seed = 11;
    let first = run::<Pgd>(params, &b, &model).unwrap();
    let again = run::<Pgd>(params, &b, &model).unwrap();
    assert_eq!(first.perturbed, again.perturbed);
    b.seed = 12;
    let other = run::<Pgd>(params, &b, &model).unwrap();
    assert_ne!(first.perturbed, other.perturbed);
    let fixed = r#"{"epsilon": 0.5, "steps": 2, "step_size": 0.05, "random_start": false}"#;
    let c = run::<Pgd>(fixed, &b, &model).unwrap();
    b.seed = 11;
    assert_eq!(c.perturbed, run::<Pgd>(fixed, &b, &model).unwrap().perturbed);
}

#[test]
fn queries_are_steps_per_restart_and_restarts_skip_fooled_rows() {
    let (model, b) = near_boundary();
    let out = run::<Pgd>(r#"{"epsilon": 0.5, "steps": 7}"#, &b, &model).unwrap();
    assert_eq!(out.queries, vec![7; 5]);
    // Three restarts: the four easy rows fall in the first (7 steps + 1 predict); the deep
    // one is attacked three times.
    let out = run::<Pgd>(r#"{"epsilon": 0.5, "steps": 7, "restarts": 3}"#, &b, &model).unwrap();
    assert_eq!(out.queries, vec![8, 8, 8, 8, 24]);
    // Discrete: a loss_grad for the flips and a predict to confirm them.
    let out = run::<Pgd>(r#"{"epsilon": 0.5, "steps": 7, "discrete": true}"#, &b, &model).unwrap();
    assert_eq!(out.queries, vec![9; 5]);
}

#[test]
fn restarts_keep_the_run_that_fools_the_model() {
    // A hard-to-reach row where a single random start rarely lands on the fooling side:
    // more restarts can only help, never hurt.
    let (model, b) = near_boundary();
    let one = run::<Pgd>(r#"{"epsilon": 0.5, "steps": 1, "step_size": 0.01}"#, &b, &model).unwrap();
    let many =
        run::<Pgd>(r#"{"epsilon": 0.5, "steps": 1, "step_size": 0.01, "restarts": 8}"#, &b, &model).unwrap();
    let fooled = |x: &[f32]| (0..5).filter(|&i| model.class(&x[i * 3..i * 3 + 3]) != b.labels[i]).count();
    assert!(fooled(dense(&many)) >= fooled(dense(&one)));
    for i in 0..5 {
        let (o, r1, rn) =
            (&b.data[i * 3..i * 3 + 3], &dense(&one)[i * 3..i * 3 + 3], &dense(&many)[i * 3..i * 3 + 3]);
        if model.class(r1) != b.labels[i] {
            assert_ne!(model.class(rn), b.labels[i], "row {i}");
        } else if model.class(rn) == b.labels[i] {
            assert!(model.loss(rn, b.labels[i]) >= model.loss(r1, b.labels[i]), "row {i}");
        }
        assert!(linf_std(&b.features, o, rn) <= 0.5);
    }
}

#[test]
fn discrete_flips_only_what_raises_the_loss_and_what_bounds_allow() {
    use FeatureKind::*;
    let bin = |lower, upper| Column { kind: Binary, lower, upper, ..Column::continuous("b") };
    let cat = one_hot_column(0);
    let features = vec![
        Column { mutable: false, ..Column::continuous("x") },
        bin(0.0, 1.0), // helps the attacker: flips
        bin(0.0, 1.0), // would lower the loss: stays
        bin(0.0, 0.0), // helps, but its bounds pin it at 0
        cat.clone(),
        cat.clone(),
        cat,
    ];
    // Label 0; class 1 rises with columns 1, 3 and the third category.
    let model = Linear::logistic(&[0.0, 2.0, -2.0, 2.0, 0.0, -0.5, 2.5], -3.0);
    let b = batch(features, vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], vec![0]);
    let plain = run::<Pgd>(r#"{"epsilon": 1.0}"#, &b, &model).unwrap();
    assert_eq!(dense(&plain), &b.data[..], "without discrete nothing here may move");
    let out = run::<Pgd>(r#"{"epsilon": 1.0, "discrete": true}"#, &b, &model).unwrap();
    let x = dense(&out);
    assert_eq!(x, &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    check_row(&b.features, &b.data, x).unwrap();
    assert_eq!(model.class(x), 1);
}

/// The oracle of `Linear`, noting which threads ask it.
struct Watched {
    model: Linear,
    threads: std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>>,
}

impl tempered_plugin::testing::TestModel for Watched {
    fn n_classes(&self) -> usize {
        self.model.n_classes()
    }

    fn predict(&self, input: tempered_plugin::Input<'_>) -> Vec<f32> {
        self.model.predict(input)
    }

    fn loss_grad(&self, input: tempered_plugin::Input<'_>, labels: &[u32]) -> (Vec<f32>, Vec<f32>) {
        self.threads.lock().unwrap().insert(std::thread::current().id());
        self.model.loss_grad(input, labels)
    }
}

#[test]
fn threads_share_the_batch_and_give_the_examples_one_thread_gives() {
    let model = Watched { model: mixed_model(3), threads: Default::default() };
    // 300 rows: four shares of 75 (each at least the 64 rows a thread needs).
    let b = mixed_batch(300, 3, 21);
    for norm in ["linf", "l2"] {
        for (restarts, discrete) in [(1, false), (3, false), (2, true)] {
            let params = |threads: usize| {
                format!(
                    r#"{{"norm": "{norm}", "epsilon": 0.8, "steps": 4, "restarts": {restarts},
                        "discrete": {discrete}, "threads": {threads}}}"#
                )
            };
            model.threads.lock().unwrap().clear();
            let one = run::<Pgd>(&params(1), &b, &model).unwrap();
            assert_eq!(model.threads.lock().unwrap().len(), 1);
            for threads in [2, 4, 9] {
                model.threads.lock().unwrap().clear();
                let many = run::<Pgd>(&params(threads), &b, &model).unwrap();
                let asked = model.threads.lock().unwrap().len();
                // Each restart starts its own threads.
                let started = threads.min(4);
                assert!(
                    asked == started || (restarts > 1 && asked > started),
                    "{}: {asked} threads asked the oracle",
                    params(threads)
                );
                assert_eq!(one.perturbed, many.perturbed, "{}", params(threads));
                assert_eq!(one.queries, many.queries, "{}", params(threads));
            }
        }
    }
}
