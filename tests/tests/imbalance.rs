//! Imbalanced fraud tables handled the way fraud teams do (issue 12): class weights or
//! balanced sampling in training and hardening, an operating threshold chosen on the
//! validation split at a target false-positive rate, attacks on the frauds detected at it,
//! and a failed check — never a green report — when too few frauds are detected to measure
//! anything. End to end through the real `tempered-tabular` plugin on generated 6 %-fraud
//! transaction tables (`tools/txgen`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_core::report::{self, MIN_DETECTED};
use tempered_tests::{read_json, repo_pipeline, run_metrics, scratch};

/// A generated transaction table at `fraud_rate`, in `dir`.
fn table(dir: &Path, rows: u64, seed: u64, fraud_rate: f64) -> PathBuf {
    let cfg = tempered_txgen::Config { rows, seed, fraud_rate, ..Default::default() };
    let path = dir.join(format!("transactions-{rows}-{seed}-{fraud_rate}.csv"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    tempered_txgen::write_csv(tempered_txgen::rows(&cfg).unwrap(), &mut out).unwrap();
    drop(out);
    path
}

/// `pipelines/transactions-small.toml`'s `[data]` (every column declared as the shipped
/// pipeline declares it) on `data`, then `rest`.
fn pipeline(dir: &Path, name: &str, data: &Path, rest: &str) -> PathBuf {
    let shipped = repo_pipeline("transactions-small.toml");
    let start = shipped.find("[data]").expect("a [data] table");
    let end = shipped.find("[model]").expect("a [model] table");
    let data_section = shipped[start..end]
        .lines()
        .filter(|l| !l.starts_with("path =") && !l.starts_with("limit ="))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen("[data]", &format!("[data]\npath = {:?}", data.display().to_string()), 1);
    let src =
        format!("[pipeline]\nname = \"{name}\"\nmodality = \"tabular\"\nseed = 7\n\n{data_section}\n{rest}");
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, src).unwrap();
    file
}

/// A short model and attack: enough to tell a weighted model from an unweighted one.
fn model_and_attack() -> String {
    format!("\n[model]\nkind = \"mlp\"\nhidden = [32, 32]\n\n{}", tempered_tests::tabular_pgd_attack(5))
}

fn run(file: &Path) -> (engine::Finished, Value) {
    let p = Pipeline::load(file).unwrap_or_else(|e| panic!("{e}"));
    let out = file.with_extension("run");
    let finished =
        engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).expect("the run ends");
    let m = read_json(&out.join("metrics.json"));
    (finished, m)
}

fn op(m: &Value, phase: &str) -> Value {
    m["clean"][phase]["operating_point"].clone()
}

/// `[train]` and the rest of a short run on the 6 %-fraud table: three epochs at the
/// default learning rate, where the plain loss has not yet left "never fraud".
fn short_run(train: &str, harden: &str, evaluate: &str) -> String {
    format!(
        "{model}\n[train]\nepochs = 3\npatience = 0\n{train}\n[harden]\n{harden}\n\
         [evaluate]\n{evaluate}\n[report]\nsamples = 0\nplots = false\n",
        model = model_and_attack()
    )
}

const HARDEN: &str = "strategy = \"pgd\"\nattack = \"pgd\"\nepochs = 1\npatience = 0";

/// On a 6 %-fraud table the unweighted model flags no fraud and the run is a failed
/// check; the same run with `class_weight = "balanced"` and an operating point at 1 %
/// false positives detects frauds, attacks exactly those, and passes, before and after
/// (class-weighted) hardening, each threshold chosen on validation.
#[test]
fn the_weighted_model_detects_frauds_and_the_unweighted_one_fails_its_check() {
    let dir = scratch("imbalance-weighted");
    let data = table(&dir, 6000, 11, 0.06);
    let plain = pipeline(&dir, "unweighted", &data, &short_run("", "enabled = false", ""));
    let (finished, m) = run(&plain);
    let failed = report::failed(&finished.metrics);
    eprintln!("unweighted: {} attacks {} failed {failed:?}", m["clean"]["before"], m["attacks"]);
    assert_eq!(m["clean"]["before"]["recall"], 0.0, "no fraud flagged at 0.5");
    assert!(!failed.is_empty(), "an unweighted model at 6 % fraud is a failed check");
    let md = std::fs::read_to_string(plain.with_extension("run").join("report.md")).unwrap();
    assert!(md.contains("❌ **Failed:**"), "the report says so at the top");

    let weighted = pipeline(
        &dir,
        "weighted",
        &data,
        &short_run("class_weight = \"balanced\"", HARDEN, "operating_point = { fpr = 0.01 }"),
    );
    let (finished, m) = run(&weighted);
    let failed = report::failed(&finished.metrics);
    assert!(failed.is_empty(), "the weighted run passes its checks: {failed:?}");
    assert!(m["clean"]["before"]["pr_auc"].as_f64().unwrap() > 0.4, "{}", m["clean"]["before"]);
    for phase in ["before", "after"] {
        let o = op(&m, phase);
        eprintln!("weighted {phase}: {o}");
        let c = &m["clean"][phase];
        assert!(o["detected"].as_u64().unwrap() >= MIN_DETECTED as u64, "{phase}: {o}");
        assert!(o["validation"]["false_positive_rate"].as_f64().unwrap() <= 0.01, "{phase}: {o}");
        assert_eq!(o["target"], serde_json::json!({ "fpr": 0.01 }));
        // The clean rates are those at the threshold, not at 0.5.
        let recall = o["detected"].as_f64().unwrap() / o["positives"].as_f64().unwrap();
        assert!((c["recall"].as_f64().unwrap() - recall).abs() < 1e-12, "{phase}: {c}");
        let a = m["attacks"].as_array().unwrap().iter().find(|a| a["phase"] == phase).unwrap();
        // The frauds attacked are exactly those detected at the operating point.
        assert_eq!(a["attacked"], o["detected"], "{phase}: {a}");
        assert_eq!(a["constraint_violations"], 0, "{phase}: {a}");
    }
    let (t0, t1) = (op(&m, "before")["threshold"].as_f64().unwrap(), op(&m, "after")["threshold"].as_f64());
    assert!(t1.is_some_and(|t1| t1 != t0), "the threshold is chosen again after hardening: {t0} {t1:?}");
    let md = std::fs::read_to_string(weighted.with_extension("run").join("report.md")).unwrap();
    assert!(md.contains("operating threshold (validation: false-positive rate ≤ 1.0%)"), "{md}");
    assert!(md.contains("recall (at the operating point)"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An operating point that detects fewer than `MIN_DETECTED` test frauds measures nothing:
/// a failed check (the binary exits with 1 on it), with the numbers still written.
#[test]
fn too_few_frauds_detected_at_the_operating_point_is_a_failed_check() {
    let dir = scratch("imbalance-few");
    let data = table(&dir, 6000, 11, 0.06);
    let rest = short_run("", "enabled = false", "operating_point = { fpr = 0.002 }");
    let (finished, m) = run(&pipeline(&dir, "few", &data, &rest));
    let o = op(&m, "before");
    eprintln!("unweighted at 0.2 % false positives: {o}");
    assert!(o["detected"].as_u64().unwrap() < MIN_DETECTED as u64, "{o}");
    let failed = report::failed(&finished.metrics);
    assert!(failed.iter().any(|f| f.contains("too few to measure an attack on")), "{failed:?}");
    assert!(failed.iter().any(|f| f.contains("so its success rate is noise")), "{failed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Balanced sampling is the other way to the same end: where the plain loss flags no
/// fraud at 0.5, it does.
#[test]
fn balanced_sampling_detects_frauds_too() {
    let dir = scratch("imbalance-sampling");
    let data = table(&dir, 6000, 11, 0.06);
    let rest = short_run("sampling = \"balanced\"", "enabled = false", "");
    let (finished, m) = run(&pipeline(&dir, "sampled", &data, &rest));
    eprintln!("balanced sampling: {}", m["clean"]["before"]);
    assert!(m["clean"]["before"]["recall"].as_f64().unwrap() > 0.2, "{}", m["clean"]["before"]);
    assert!(report::failed(&finished.metrics).is_empty(), "{:?}", report::failed(&finished.metrics));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the new keys nothing changes: no operating point in metrics.json, rates at 0.5.
#[test]
fn without_the_new_keys_metrics_have_no_operating_point() {
    let dir = scratch("imbalance-none");
    let data = table(&dir, 2000, 3, 0.06);
    let rest = format!(
        "{model}\n[train]\nepochs = 2\nbatch_size = 128\npatience = 0\n[harden]\nenabled = false\n\
         [report]\nsamples = 0\nplots = false\n",
        model = model_and_attack()
    );
    let (_, m) = run(&pipeline(&dir, "plain", &data, &rest));
    assert!(m["clean"]["before"].get("operating_point").is_none(), "{}", m["clean"]["before"]);
    let config = std::fs::read_to_string(dir.join("plain.run/config.toml")).unwrap();
    assert!(config.contains("class_weight = \"none\"") && config.contains("sampling = \"none\""), "{config}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Settings that make no sense are refused before any training, naming file and key.
#[test]
fn bad_imbalance_settings_are_config_errors_naming_file_and_key() {
    let dir = scratch("imbalance-config");
    let data = table(&dir, 600, 5, 0.06);
    let base = |train: &str, evaluate: &str| {
        format!(
            "{model}\n[train]\nepochs = 1\n{train}\n[harden]\nenabled = false\n[evaluate]\n{evaluate}\n",
            model = model_and_attack()
        )
    };
    let load_err = |name: &str, rest: &str| {
        let file = pipeline(&dir, name, &data, rest);
        (Pipeline::load(&file).map(|_| ()).unwrap_err().to_string(), file)
    };
    let (e, file) = load_err("fpr", &base("", "operating_point = { fpr = 0 }"));
    assert!(e.starts_with(&format!("{}:", file.display())), "{e}");
    assert!(e.contains("operating_point.fpr = 0"), "{e}");
    let (e, _) = load_err("both", &base("class_weight = \"balanced\"\nsampling = \"balanced\"", ""));
    assert!(e.contains("choose one"), "{e}");
    let (e, _) = load_err("kind", &base("class_weight = \"auto\"", ""));
    assert!(e.contains("\"none\", \"balanced\" or a list of one weight per class"), "{e}");

    // One weight for a two-class table: known once the data is read, still before training.
    let file = pipeline(&dir, "weights", &data, &base("class_weight = [1.0]", ""));
    let p = Pipeline::load(&file).unwrap();
    let out = dir.join("weights.run");
    let e = engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:", file.display())), "names the file: {e}");
    assert!(e.contains("train.class_weight gives 1 weight(s) but the data has 2 classes"), "{e}");
    assert!(tempered_tests::nothing_trained(&out), "refused before training");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child of [`a_weighted_run_at_an_operating_point_resumes_exactly`]: runs the pipeline
/// its parent names. Does nothing in a plain `cargo test`.
#[test]
fn imbalance_child() {
    let Some(c) = tempered_tests::child_args() else { return };
    let p = Pipeline::load(&c.pipeline).expect("valid pipeline");
    engine::run(&p, &RunOptions { out: Some(c.out), resume: c.resume }).expect("the run succeeds");
}

/// Killed mid-epoch and at a commit, in clean training and in hardening, a class-weighted
/// run at an operating point resumes to the uninterrupted run's numbers: the weights come
/// from the split and the thresholds from the restored model, so nothing else need be saved.
#[test]
fn a_weighted_run_at_an_operating_point_resumes_exactly() {
    let dir = scratch("imbalance-resume");
    let data = table(&dir, 3000, 13, 0.06);
    let file = pipeline(
        &dir,
        "resumed",
        &data,
        &short_run("class_weight = [1.0, 8.0]", HARDEN, "operating_point = { precision = 0.3 }"),
    );
    let child = |out: &Path, resume: bool, kill: Option<&str>| {
        tempered_tests::child_run("imbalance_child", &file, out, resume, kill)
    };
    let full = dir.join("full");
    child(&full, false, None);
    let want = run_metrics(&full);
    assert!(want["clean"]["after"]["operating_point"]["threshold"].is_number(), "{want}");
    for (i, kill) in ["clean:2:3", "clean:3:renamed", "hardened:1:4"].into_iter().enumerate() {
        let out = dir.join(format!("kill-{i}"));
        child(&out, false, Some(kill));
        child(&out, true, None);
        assert_eq!(run_metrics(&out), want, "killed at {kill} and resumed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
