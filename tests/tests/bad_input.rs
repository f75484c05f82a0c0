//! The bad-input catalogue: every mistake a user can make in a pipeline file or a data
//! file gets an error naming the file and the place.

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{pipeline_file, repo_pipeline, scratch};

fn load_err(name: &str, src: &str) -> String {
    let file = pipeline_file(name, src);
    let e = Pipeline::load(&file).expect_err("refused").to_string();
    let shown = file.display().to_string();
    assert!(e.starts_with(&shown), "error names the file: {e}");
    e[shown.len()..].to_owned()
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let src = repo_pipeline("fraud-small.toml").replace("seed = 7", "seed = = 7");
    let e = load_err("malformed", &src);
    assert!(e.starts_with(":6:8: "), "{e}");
}

#[test]
fn an_unknown_key_reports_line_column_and_the_keys_that_exist() {
    let src = repo_pipeline("fraud-small.toml").replace("epochs = 6", "epochs = 6\nepoch = 7");
    let e = load_err("unknown", &src);
    let line = src.lines().position(|l| l == "epoch = 7").unwrap() + 1;
    assert!(e.starts_with(&format!(":{line}:1: unknown field `epoch`")), "{e}");
    assert!(e.contains("`epochs`"), "{e}");
}

#[test]
fn a_wrong_type_and_a_dangling_reference_point_at_their_keys() {
    let src = repo_pipeline("fraud-small.toml").replace("lr = 3e-3", "lr = \"fast\"");
    let line = src.lines().position(|l| l == "lr = \"fast\"").unwrap() + 1;
    assert!(load_err("type", &src).starts_with(&format!(":{line}:6: ")));
    let src = repo_pipeline("fraud-small.toml")
        .replace("[harden]\nstrategy = \"pgd\"\nattack = \"pgd\"", "[harden]\nattack = \"pgd-typo\"");
    let e = load_err("dangling", &src);
    assert!(e.contains("no [[attack]] has id `pgd-typo`"), "{e}");
}

/// Runs fraud-small on `csv` (written to a scratch folder) and returns the error.
fn data_err(name: &str, csv: &str) -> String {
    let dir = scratch(name);
    let data = dir.join("bad.csv");
    std::fs::write(&data, csv).unwrap();
    let src = repo_pipeline("fraud-small.toml")
        .replace("data/creditcard-ulb/creditcard_ulb_sample.csv", &data.display().to_string())
        .replace("limit = 900\n", "");
    let p = Pipeline::load(&pipeline_file(name, &src)).unwrap();
    let e = engine::run(&p, &RunOptions { out: Some(dir.join("run")), resume: false }).expect_err("refused");
    let e = e.to_string();
    assert!(e.contains("bad.csv"), "error names the file: {e}");
    e
}

/// A small valid table in the ULB layout, with `edit` applied to data row `row`.
fn table(rows: usize, edit: impl Fn(usize, &mut Vec<String>)) -> String {
    let mut header: Vec<String> = vec!["Time".into()];
    header.extend((1..=28).map(|i| format!("V{i}")));
    header.extend(["Amount".into(), "Class".into()]);
    let mut out = header.join(",") + "\n";
    for r in 0..rows {
        let mut cells: Vec<String> = vec![format!("{}", r * 10)];
        cells.extend((1..=28).map(|i| format!("{:.3}", ((r * 7 + i) % 11) as f32 / 5.0 - 1.0)));
        cells.push(format!("{}.5", r % 50));
        cells.push(if r % 5 == 0 { "1".into() } else { "0".into() });
        edit(r + 1, &mut cells);
        out += &(cells.join(",") + "\n");
    }
    out
}

#[test]
fn a_string_in_a_numeric_column_names_column_and_row() {
    let e = data_err(
        "string",
        &table(40, |r, c| {
            if r == 17 {
                c[29] = "abc".into()
            }
        }),
    );
    assert!(e.contains("Amount") && e.contains("row 17") && e.contains("abc"), "{e}");
}

#[test]
fn nan_and_empty_cells_name_column_and_row() {
    let e = data_err(
        "nan",
        &table(40, |r, c| {
            if r == 5 {
                c[3] = "NaN".into()
            }
        }),
    );
    assert!(e.contains("V3") && e.contains("row 5"), "{e}");
    let e = data_err(
        "empty-cell",
        &table(40, |r, c| {
            if r == 9 {
                c[1] = String::new()
            }
        }),
    );
    assert!(e.contains("V1") && e.contains("row 9"), "{e}");
}

#[test]
fn an_empty_file_a_single_class_and_a_missing_column_are_explained() {
    let e = data_err("empty", "");
    assert!(e.to_lowercase().contains("empty"), "{e}");
    let e = data_err("header-only", &table(0, |_, _| {}));
    assert!(e.contains("no data rows"), "{e}");
    let e = data_err("one-class", &table(40, |_, c| *c.last_mut().unwrap() = "0".into()));
    assert!(e.contains("Class") && e.contains("one class"), "{e}");
    let e = data_err("no-label", &table(40, |_, _| {}).replace("Class", "Klass"));
    assert!(e.contains("Class") && e.contains("Klass"), "names the missing column and the ones there: {e}");
}
