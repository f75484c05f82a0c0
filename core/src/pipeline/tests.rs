use super::*;

const GOOD: &str = r#"
[pipeline]
name = "t"
modality = "tabular"
seed = 7

[data]
path = "x.csv"
label = "y"

[model]
kind = "mlp"

[[attack]]
plugin = "tabular"
attack = "pgd"
params = { epsilon = 0.5 }

[harden]
attack = "pgd"
"#;

fn parse(src: &str) -> Result<Pipeline> {
    Pipeline::parse(Path::new("pipelines/t.toml"), src)
}

fn err(src: &str) -> String {
    parse(src).unwrap_err().to_string()
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let p = parse(GOOD).unwrap();
    assert_eq!(p.seed(), 7);
    assert_eq!(p.spec.attacks()[0].id, "pgd");
    assert_eq!(p.spec.train().batch_size, 256);
    assert_eq!(p.spec.harden().strategy, Strategy::Pgd);
    assert_eq!(p.base_dir, PathBuf::from("."));
    let again = p.spec.to_toml().unwrap();
    assert!(again.contains("adversarial_weight"), "resolved config lists defaults:\n{again}");
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let src = GOOD.replace("seed = 7", "seed = 7\nsed = 8");
    assert_eq!(
        err(&src),
        "pipelines/t.toml:6:1: unknown field `sed`, expected one of `name`, `modality`, `seed`, `out_dir`, `device`"
    );
}

#[test]
fn syntax_and_type_errors_name_line_and_column() {
    let e = err(&GOOD.replace("seed = 7", "seed = = 7"));
    assert!(e.starts_with("pipelines/t.toml:5:8: "), "{e}");
    let e = err(&GOOD.replace("seed = 7", "seed = \"seven\""));
    assert!(e.starts_with("pipelines/t.toml:5:8: "), "{e}");
}

#[test]
fn validation_errors_point_at_the_offending_key() {
    let src = GOOD.replace("[harden]\nattack = \"pgd\"", "[harden]\nattack = \"nope\"");
    assert_eq!(err(&src), "pipelines/t.toml:20:1: no [[attack]] has id `nope`");
}

#[test]
fn imbalance_settings_default_to_nothing_and_parse() {
    let p = parse(GOOD).unwrap();
    assert!(p.spec.train().class_weight.is_none());
    assert_eq!(p.spec.train().sampling, Sampling::None);
    assert!(p.spec.evaluate().operating_point.is_none());
    let src = format!(
        "{GOOD}\n[train]\nclass_weight = \"balanced\"\n[evaluate]\noperating_point = {{ fpr = 0.01 }}\n"
    );
    let p = parse(&src).unwrap();
    assert_eq!(p.spec.train().class_weight, ClassWeight::Mode(WeightMode::Balanced));
    assert_eq!(p.spec.evaluate().operating_point.unwrap().target(), Target::Fpr(0.01));
    let again = p.spec.to_toml().unwrap();
    assert!(again.contains("class_weight = \"balanced\"") && again.contains("fpr = 0.01"), "{again}");
    let p = parse(&format!("{GOOD}\n[train]\nclass_weight = [1.0, 20.0]\n")).unwrap();
    assert_eq!(p.spec.train().class_weight, ClassWeight::Weights(vec![1.0, 20.0]));
    assert_eq!(p.spec.train().class_weight.resolve(&[90, 10]).unwrap(), Some(vec![1.0, 20.0]));
    let balanced = ClassWeight::Mode(WeightMode::Balanced).resolve(&[90, 10]).unwrap().unwrap();
    assert!((balanced[0] - 100.0 / 180.0).abs() < 1e-12 && (balanced[1] - 5.0).abs() < 1e-12);
    let e = p.spec.train().class_weight.resolve(&[1, 2, 3]).unwrap_err();
    assert!(e.contains("gives 2 weight(s) but the data has 3 classes"), "{e}");
}

#[test]
fn imbalance_settings_are_validated_naming_the_key() {
    let with = |extra: &str| err(&format!("{GOOD}\n{extra}\n"));
    let e = with("[evaluate]\noperating_point = { fpr = 1.5 }");
    assert!(e.starts_with("pipelines/t.toml:23:21: operating_point.fpr = 1.5"), "{e}");
    let e = with("[evaluate]\noperating_point = { fpr = 0.01, precision = 0.9 }");
    assert!(e.contains("one target, `fpr` or `precision`, not both"), "{e}");
    let e = with("[evaluate]\noperating_point = {}");
    assert!(e.contains("needs a target"), "{e}");
    let e = with("[evaluate]\noperating_point = { precision = 0 }");
    assert!(e.contains("operating_point.precision = 0"), "{e}");
    let e = with("[evaluate]\noperating_point = { recall = 0.5 }");
    assert!(e.contains("unknown field `recall`"), "{e}");
    let e = with("[train]\nclass_weight = \"heavy\"");
    assert!(e.starts_with("pipelines/t.toml:") && e.contains("\"none\", \"balanced\" or a list"), "{e}");
    let e = with("[train]\nclass_weight = [1.0, -2.0]");
    assert!(e.contains("train.class_weight[1] = -2"), "{e}");
    let e = with("[train]\nclass_weight = [0.0, 0.0]");
    assert!(e.contains("every weight is 0"), "{e}");
    let e = with("[train]\nclass_weight = \"balanced\"\nsampling = \"balanced\"");
    assert!(e.starts_with("pipelines/t.toml:2") && e.contains("choose one"), "{e}");
    let text = GOOD
        .replace("modality = \"tabular\"", "modality = \"text\"")
        .replace("[model]\nkind = \"mlp\"", "[model]\nkind = \"word-cnn\"");
    let e = err(&format!("{text}\n[evaluate]\noperating_point = {{ fpr = 0.01 }}\n"));
    assert!(e.contains("needs a binary task") && e.contains("a text pipeline has none"), "{e}");
}

#[test]
fn a_weight_average_is_a_decay_in_the_open_unit_interval() {
    assert_eq!(parse(GOOD).unwrap().spec.harden().weight_average, None, "off unless asked for");
    let with = |section: &str, value: &str| {
        let src = match section {
            "harden" => GOOD.replace("[harden]\n", &format!("[harden]\nweight_average = {value}\n")),
            _ => format!("{GOOD}\n[train]\nweight_average = {value}\n"),
        };
        parse(&src)
    };
    assert_eq!(with("harden", "0.995").unwrap().spec.harden().weight_average, Some(0.995));
    assert_eq!(with("train", "0.9").unwrap().spec.train().weight_average, Some(0.9));
    for value in ["1.0", "0.0", "-0.5", "1.5"] {
        let e = with("harden", value).unwrap_err().to_string();
        assert!(e.starts_with("pipelines/t.toml:20:1: weight_average = "), "{value}: {e}");
        assert!(e.contains("must be in (0, 1)"), "{value}: {e}");
        let e = with("train", value).unwrap_err().to_string();
        assert!(e.starts_with("pipelines/t.toml:23:1: weight_average = "), "{value}: {e}");
    }
    let e = with("harden", "nan").unwrap_err().to_string();
    assert!(e.starts_with("pipelines/t.toml:20:18: harden.weight_average = nan"), "{e}");
}

#[test]
fn missing_modality_is_explained() {
    let e = err("[pipeline]\nname = \"x\"\n");
    assert!(e.contains("missing `pipeline.modality`"), "{e}");
}
