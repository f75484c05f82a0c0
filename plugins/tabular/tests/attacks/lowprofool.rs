use tempered_plugin::testing::run;
use tempered_tabular::LowProFool;

use crate::common::*;

#[test]
fn reaches_the_target_on_an_easy_row_with_default_params() {
    // p(fraud) = sigmoid(x0 + x1 - 1); row 0 sits at logit 0.3, row 1 is genuine.
    let model = Linear::logistic(&[1.0, 1.0], -1.0);
    let b = batch(plain_schema(&[1.0, 1.0], &[1.0, 1.0]), vec![0.65, 0.65, 2.0, 2.0], vec![1, 0]);
    let out = run::<LowProFool>("{}", &b, &model).unwrap();
    let x = dense(&out);
    assert_eq!(model.class(&x[..2]), 0);
    assert!(linf_std(&b.features, &b.data[..2], &x[..2]) <= 1.0);
    assert_eq!(&x[2..], &b.data[2..], "genuine rows come back unchanged");
    // steps + 1 loss_grad calls for the fraud row, none for the genuine one.
    assert_eq!(out.queries, vec![51, 0]);
}

#[test]
fn expensive_columns_move_less() {
    let model = Linear::logistic(&[1.0, 1.0], -1.0);
    let b = batch(plain_schema(&[0.5, 3.0], &[1.0, 1.0]), vec![0.65, 0.65], vec![1]);
    let out = run::<LowProFool>(r#"{"steps": 100}"#, &b, &model).unwrap();
    let x = dense(&out);
    assert_eq!(model.class(x), 0);
    let (d0, d1) = ((x[0] - 0.65).abs(), (x[1] - 0.65).abs());
    assert!(d0 > 3.0 * d1, "cheap column moved {d0}, expensive {d1}");
}

#[test]
fn rows_stay_valid_inside_the_clip_and_flags_stay_put() {
    let model = mixed_model(2);
    let mut b = mixed_batch(40, 2, 3);
    label_by(&model, &mut b);
    let w = b.width;
    for eps in [0.2f32, 1.5] {
        let out =
            run::<LowProFool>(&format!(r#"{{"epsilon": {eps}, "lambda": 0.1, "steps": 20}}"#), &b, &model)
                .unwrap();
        let x = dense(&out);
        let (mut moved, mut attackable) = (0, 0);
        for i in 0..40 {
            let (o, r) = (&b.data[i * w..(i + 1) * w], &x[i * w..(i + 1) * w]);
            check_row(&b.features, o, r).unwrap_or_else(|e| panic!("eps {eps} row {i}: {e}"));
            let d = linf_std(&b.features, o, r);
            assert!(d <= eps as f64, "eps {eps} row {i}: {d}");
            assert_eq!(o[4..8], r[4..8], "binary and one-hot columns stay");
            if b.labels[i] != 1 {
                assert_eq!(o, r);
            }
            moved += (o != r) as usize;
            attackable += (b.labels[i] == 1 && model.class(o) == 1) as usize;
        }
        assert!(attackable > 5 && moved == attackable, "eps {eps}: {moved} of {attackable} rows moved");
    }
}

#[test]
fn a_row_already_in_the_target_class_is_left_alone() {
    let model = Linear::logistic(&[1.0, 1.0], -1.0);
    let b = batch(plain_schema(&[1.0, 1.0], &[1.0, 1.0]), vec![0.0, 0.0], vec![1]);
    let out = run::<LowProFool>("{}", &b, &model).unwrap();
    assert_eq!(dense(&out), &b.data[..]);
    assert_eq!(out.queries, vec![1]);
}
