use tempered_plugin::testing::run;
use tempered_tabular::{Fraudster, LowProFool, Pgd};

use crate::common::*;

fn pgd_error(params: &str) -> String {
    let b = batch(plain_schema(&[1.0], &[1.0]), vec![0.0], vec![0]);
    run::<Pgd>(params, &b, &Linear::logistic(&[1.0], 0.0)).unwrap_err().0
}

#[test]
fn bad_pgd_params_are_errors_that_say_what_is_wrong() {
    let e = pgd_error("{}");
    assert!(e.contains("missing field `epsilon`"), "{e}");
    let e = pgd_error(r#"{"epsilon": -0.1}"#);
    assert!(e.contains("epsilon must be a finite number >= 0, got -0.1"), "{e}");
    let e = pgd_error(r#"{"epsilon": 0.1, "epsilom": 2}"#);
    assert!(e.contains("unknown field `epsilom`"), "{e}");
    let e = pgd_error(r#"{"epsilon": 0.1, "norm": "l3"}"#);
    assert!(e.contains("unknown variant `l3`") && e.contains("linf"), "{e}");
    let e = pgd_error(r#"{"epsilon": 0.1, "restarts": 0}"#);
    assert!(e.contains("restarts must be >= 1"), "{e}");
    let e = pgd_error(r#"{"epsilon": 0.1, "steps": 0}"#);
    assert!(e.contains("steps must be >= 1"), "{e}");
    let e = pgd_error(r#"{"epsilon": 0.1, "step_size": -1}"#);
    assert!(e.contains("step_size"), "{e}");
}

#[test]
fn bad_fraudster_and_lowprofool_params_are_errors() {
    let b = batch(plain_schema(&[1.0], &[1.0]), vec![0.0], vec![1]);
    let model = Linear::logistic(&[1.0], 0.0);
    let e = run::<Fraudster>("{}", &b, &model).unwrap_err().0;
    assert!(e.contains("missing field `budget`"), "{e}");
    let e = run::<Fraudster>(r#"{"budget": 1, "fraud_class": 0}"#, &b, &model).unwrap_err().0;
    assert!(e.contains("must differ"), "{e}");
    let e =
        run::<Fraudster>(r#"{"budget": 1, "target_class": 5, "fraud_class": 1}"#, &b, &model).unwrap_err().0;
    assert!(e.contains("target_class = 5 but the model has 2 classes"), "{e}");
    let e = run::<Fraudster>(r#"{"budget": 1, "step": 0}"#, &b, &model).unwrap_err().0;
    assert!(e.contains("step must be a finite number > 0"), "{e}");
    let e = run::<LowProFool>(r#"{"lamda": 1}"#, &b, &model).unwrap_err().0;
    assert!(e.contains("unknown field `lamda`"), "{e}");
    let e = run::<LowProFool>(r#"{"step_size": -0.1}"#, &b, &model).unwrap_err().0;
    assert!(e.contains("step_size must be a finite number > 0"), "{e}");
    let mut neg = b.clone();
    neg.features[0].cost = -1.0;
    let e = run::<Fraudster>(r#"{"budget": 1}"#, &neg, &model).unwrap_err().0;
    assert!(e.contains("has cost -1; costs must be >= 0"), "{e}");
}

#[test]
fn the_plugin_declares_its_four_attacks() {
    let decl = unsafe { &*tempered_tabular::tempered_plugin_v1() };
    assert_eq!(decl.abi_version, tempered_plugin::ABI_VERSION);
    assert_eq!(decl.modality, tempered_plugin::Modality::Tabular as u32);
    assert_eq!(unsafe { decl.name.to_string_lossy() }, "tabular");
    let attacks = unsafe { std::slice::from_raw_parts(decl.attacks, decl.n_attacks) };
    let names: Vec<String> = attacks.iter().map(|a| unsafe { a.name.to_string_lossy() }).collect();
    assert_eq!(names, ["pgd", "fraudster", "lowprofool", "moeva"]);
}
