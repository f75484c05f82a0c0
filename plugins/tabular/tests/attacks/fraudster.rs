use tempered_plugin::testing::run;
use tempered_plugin::{Column, FeatureKind};
use tempered_tabular::Fraudster;

use crate::common::*;

/// p(fraud) = sigmoid(x0 + x1 - 1): both columns help equally.
fn two_columns() -> Linear {
    Linear::logistic(&[1.0, 1.0], -1.0)
}

#[test]
fn prefers_the_cheap_column_and_pays_close_to_the_least_possible() {
    let model = two_columns();
    // Row 0: fraud, logit +1; the expensive column comes first so that order cannot
    // decide. Row 1: genuine, must come back untouched and unqueried.
    let b = batch(plain_schema(&[5.0, 1.0], &[1.0, 1.0]), vec![1.0, 1.0, 3.0, 3.0], vec![1, 0]);
    let out = run::<Fraudster>(r#"{"budget": 3.0}"#, &b, &model).unwrap();
    let x = dense(&out);
    assert_eq!(model.class(&x[..2]), 0, "a change of cost ~1 flips it and the budget is 3");
    assert_eq!(x[0], 1.0, "the expensive column must not move");
    // The cheapest flip lowers x1 by just over 1 (cost 1); bisection of the last step gets
    // within 0.25 / 2^6 of it.
    let c = cost(&b.features, &b.data[..2], &x[..2]);
    assert!((1.0..1.005).contains(&c), "cost {c}");
    assert_eq!(&x[2..], &b.data[2..], "genuine rows come back unchanged");
    // Five 0.25 moves to cross (logit exactly 0 after four is not yet "genuine"), six
    // loss_grad calls, then six bisection predicts.
    assert_eq!(out.queries, vec![12, 0]);
}

#[test]
fn spends_the_cheap_column_up_to_its_bound_then_the_next() {
    let model = two_columns();
    let mut features = plain_schema(&[5.0, 1.0], &[1.0, 1.0]);
    features[1].lower = 0.5;
    let b = batch(features, vec![1.0, 1.0], vec![1]);
    let out = run::<Fraudster>(r#"{"budget": 4.0}"#, &b, &model).unwrap();
    let x = dense(&out);
    assert_eq!(model.class(x), 0);
    assert_eq!(x[1], 0.5);
    let c = cost(&b.features, &b.data, x);
    assert!((3.0..3.05).contains(&c), "optimum is 0.5 * 1 + 0.5 * 5 = 3, got {c}");
}

#[test]
fn never_exceeds_the_budget_even_when_it_cannot_flip() {
    let model = two_columns();
    let b = batch(plain_schema(&[5.0, 1.0], &[1.0, 1.0]), vec![1.0, 1.0], vec![1]);
    for budget in [0.0f32, 0.3, 0.7, 0.999] {
        let out = run::<Fraudster>(&format!(r#"{{"budget": {budget}}}"#), &b, &model).unwrap();
        let x = dense(&out);
        let c = cost(&b.features, &b.data, x);
        assert!(c <= budget as f64, "budget {budget}: cost {c}");
        assert_eq!(model.class(x), 1, "no change within {budget} can flip it");
    }
}

#[test]
fn mixed_schema_rows_stay_valid_within_budget_and_only_mutable_columns_move() {
    let model = mixed_model(2);
    let mut b = mixed_batch(40, 2, 9);
    label_by(&model, &mut b);
    for (f, c) in b.features.iter_mut().zip([1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 1.0, 1.0, 0.7, 1.0, 10.0]) {
        f.cost = c;
    }
    let w = b.width;
    let mut flipped = 0;
    for budget in [0.5f32, 2.0, 8.0] {
        let out = run::<Fraudster>(&format!(r#"{{"budget": {budget}}}"#), &b, &model).unwrap();
        let x = dense(&out);
        for i in 0..40 {
            let (o, r) = (&b.data[i * w..(i + 1) * w], &x[i * w..(i + 1) * w]);
            check_row(&b.features, o, r).unwrap_or_else(|e| panic!("budget {budget} row {i}: {e}"));
            let c = cost(&b.features, o, r);
            assert!(c <= budget as f64, "budget {budget} row {i}: cost {c}");
            if b.labels[i] != 1 {
                assert_eq!(o, r, "row {i} is not fraud");
                assert_eq!(out.queries[i], 0);
            } else if model.class(o) == 1 && model.class(r) == 0 {
                flipped += 1;
            }
        }
    }
    assert!(flipped > 5, "only {flipped} fraud rows flipped");
}

#[test]
fn uses_a_binary_flip_or_a_category_switch_when_that_is_what_helps() {
    use FeatureKind::*;
    let cat = one_hot_column(3);
    let features = vec![
        Column { mutable: false, ..Column::continuous("amount") },
        Column { kind: Binary, lower: 0.0, upper: 1.0, cost: 2.0, ..Column::continuous("night") },
        Column { cost: 0.5, ..cat.clone() },
        Column { cost: 0.5, ..cat },
    ];
    // Fraud score: amount + 2 * night + 2 * (category 0) - 3.2 = 1.3 for this row.
    let model = Linear::logistic(&[1.0, 2.0, 2.0, 0.0], -3.2);
    let b = batch(features, vec![0.5, 1.0, 1.0, 0.0], vec![1]);
    assert_eq!(model.class(&b.data), 1);
    // Either change alone flips it: the switch costs 1, the flip 2. Budget 1.5: switch.
    let out = run::<Fraudster>(r#"{"budget": 1.5}"#, &b, &model).unwrap();
    assert_eq!(dense(&out), &[0.5, 1.0, 0.0, 1.0]);
    // Budget 2: the switch is the better buy per unit cost and enough on its own.
    let out = run::<Fraudster>(r#"{"budget": 2.0}"#, &b, &model).unwrap();
    assert_eq!(dense(&out), &[0.5, 1.0, 0.0, 1.0]);
    // With the switch ruled out (category 1 not allowed), the flip it is.
    let mut b2 = b.clone();
    b2.features[3].upper = 0.0;
    let out = run::<Fraudster>(r#"{"budget": 2.0}"#, &b2, &model).unwrap();
    assert_eq!(dense(&out), &[0.5, 0.0, 1.0, 0.0]);
}

#[test]
fn integer_columns_move_in_whole_units() {
    let mut features = plain_schema(&[1.0], &[0.5]);
    features[0].kind = FeatureKind::Integer;
    features[0].lower = 0.0;
    let model = Linear::logistic(&[1.0], -2.5);
    let b = batch(features, vec![5.0], vec![1]);
    let out = run::<Fraudster>(r#"{"budget": 10}"#, &b, &model).unwrap();
    assert_eq!(dense(&out), &[2.0], "the smallest integer below 2.5");
}
