//! `[tradeoff]` end to end on `pipelines/fraud-small-tradeoff.toml`: TRADES at three betas
//! from one clean model, every point measured on validation, the chosen one evaluated once
//! on the test split; the config errors; and a kill during the sweep resumed to the same
//! numbers.

use std::path::{Path, PathBuf};

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{
    child_args, child_run, leftover_checkpoints, nothing_trained, pipeline_file, repo, repo_pipeline,
    run_metrics, scratch,
};

const PIPELINE: &str = "fraud-small-tradeoff.toml";

fn run(file: &Path, out: &Path) -> tempered_core::Result<engine::Finished> {
    let p = Pipeline::load(file)?;
    engine::run(&p, &RunOptions { out: Some(out.to_owned()), resume: false })
}

fn the_pipeline() -> PathBuf {
    repo().join("pipelines").join(PIPELINE)
}

/// The three points are reported with their validation numbers, the chosen point's model is
/// the hardened model, and the test split is evaluated once, with it: a plain run hardened
/// at the chosen beta gives the very same "after" numbers.
#[test]
fn a_three_point_sweep_chooses_one_and_the_test_split_sees_only_it() {
    let dir = scratch("tradeoff-e2e");
    let out = dir.join("sweep");
    run(&the_pipeline(), &out).expect("the sweep runs");
    let m = run_metrics(&out);
    let t = &m["tradeoff"];
    assert_eq!(t["param"], "beta");
    assert_eq!(t["clean_metric"], "pr_auc", "fraud is binary: PR-AUC, not accuracy");
    let points = t["points"].as_array().expect("points");
    let values: Vec<f64> = points.iter().map(|p| p["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [1.0, 3.0, 6.0]);
    let chosen = t["chosen"].as_u64().unwrap() as usize;
    assert_eq!(t["chosen_value"].as_f64(), Some(values[chosen]));
    assert!(!t["why"].as_str().unwrap().is_empty());
    let clean_model = t["clean_model"].as_f64().expect("the clean model's validation PR-AUC");
    let test_examples = |id: &str| {
        m["attacks"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap()["examples"].as_u64().unwrap()
    };
    for p in points {
        let clean = p["clean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&clean), "{p}");
        assert!((p["clean_drop"].as_f64().unwrap() - (clean_model - clean)).abs() < 1e-12, "{p}");
        let attacks = p["attacks"].as_array().unwrap();
        let ids: Vec<(&str, bool)> = attacks
            .iter()
            .map(|a| (a["id"].as_str().unwrap(), a["trained_against"].as_bool().unwrap()))
            .collect();
        assert_eq!(ids, [("pgd", true), ("fraudster", false)], "trained-against and held-out, marked");
        for a in attacks {
            let r = a["robust_accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&r), "{a}");
            // The frauds of the validation split, not of the test split.
            assert_eq!(a["examples"], points[0]["attacks"][0]["examples"], "{a}");
            assert_ne!(a["examples"].as_u64().unwrap(), test_examples("pgd"), "measured on validation: {a}");
        }
        let worst = attacks.iter().map(|a| a["robust_accuracy"].as_f64().unwrap()).fold(1.0, f64::min);
        assert_eq!(p["robust"].as_f64(), Some(worst), "the rule's number is the worst case");
        assert_eq!(p["epochs_done"], 2);
    }
    assert_ne!(points[0]["robust"], points[2]["robust"], "the points are different models");
    // The test split is attacked once after hardening, not once per point.
    let rows = m["attacks"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "two attacks, before and after");
    for k in 0..3 {
        assert!(out.join(format!("checkpoints/harden-p{k}.safetensors")).is_file());
    }
    assert!(out.join("checkpoints/hardened.safetensors").is_file(), "tempered score finds the chosen model");
    assert!(out.join("plots/tradeoff.png").is_file());
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Robustness–accuracy trade-off (validation split)"), "{report}");
    assert!(report.contains("robust acc. `fraudster (held out)`"), "{report}");
    assert!(report.contains("![Clean PR-AUC against robust accuracy"), "{report}");

    // The same clean model hardened once at the chosen beta, without [tradeoff].
    let value = values[chosen];
    let src = repo_pipeline(PIPELINE);
    let start = src.find("[tradeoff]").unwrap();
    let end = start + src[start..].find("\n\n").unwrap();
    let plain = src[..start].to_owned() + &src[end..];
    let plain = plain.replace("strategy = \"trades\"", &format!("strategy = \"trades\"\nbeta = {value:?}"));
    let plain_out = dir.join("plain");
    run(&pipeline_file("tradeoff-plain", &plain), &plain_out).expect("the plain run");
    let p = run_metrics(&plain_out);
    assert!(p.get("tradeoff").is_none());
    for key in ["clean", "attacks", "hardening"] {
        assert_eq!(
            m[key], p[key],
            "`{key}`: the chosen point's model gives what a plain run at beta = {value} gives"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bad sweep is refused before any training, naming `file:line:col`.
#[test]
fn a_bad_sweep_is_a_config_error_naming_the_place() {
    let src = repo_pipeline(PIPELINE);
    let with = |from: &str, to: &str| {
        assert!(src.contains(from), "{PIPELINE} has no `{from}`: update this test");
        src.replace(from, to)
    };
    let load =
        |name: &str, s: &str| Pipeline::load(&pipeline_file(name, s)).map(|_| ()).unwrap_err().to_string();
    let line = |needle: &str, s: &str| s.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let s = with("param = \"beta\"", "param = \"gamma\"");
    let e = load("tradeoff-gamma", &s);
    assert!(
        e.contains(&format!("tradeoff-gamma.toml:{}:1: tradeoff.param = \"gamma\"", line("gamma", &s))),
        "{e}"
    );

    let s = with("strategy = \"trades\"", "strategy = \"pgd\"");
    let e = load("tradeoff-beta-pgd", &s);
    assert!(
        e.contains(&format!(":{}:1: ", line("param = \"beta\"", &s))) && e.contains("does not use it"),
        "{e}"
    );

    let s = with("values = [1.0, 3.0, 6.0]", "values = []");
    assert!(load("tradeoff-empty", &s).contains("tradeoff.values is empty"));
    let s = with("values = [1.0, 3.0, 6.0]", "values = [1.0, nan]");
    let e = load("tradeoff-nan", &s);
    assert!(e.contains(&format!(":{}:", line("nan", &s))) && e.contains("not a finite number"), "{e}");
    let s = with("values = [1.0, 3.0, 6.0]", "values = [1.0, -3.0]");
    let e = load("tradeoff-negative", &s);
    assert!(e.contains("tradeoff.values[1] = -3: beta must be a finite number > 0"), "{e}");
    let s = with("values = [1.0, 3.0, 6.0]", "values = [3.0, 3.0]");
    assert!(load("tradeoff-repeat", &s).contains("repeats values[0]"));
    let s = with("choose = { max_clean_drop = 0.02 }", "choose = { attack = \"nope\" }");
    assert!(load("tradeoff-choose", &s).contains("choose.attack = `nope`"));
    let s = with("choose = { max_clean_drop = 0.02 }", "choose = { attack = \"fraudster\" }");
    let e = load("tradeoff-choose-held-out", &s);
    assert!(e.contains("choose.attack = `fraudster` is held out of hardening"), "{e}");
    let s = with("[harden]\n", "[harden]\nenabled = false\n");
    assert!(load("tradeoff-disabled", &s).contains("enabled = false"));

    // A param of the plugin's is checked by the plugin, with every value, before training.
    for (name, sweep) in [
        ("tradeoff-epsilon", "param = \"params.epsilon\"\nvalues = [0.25, -1.0]"),
        ("tradeoff-typo", "param = \"params.epsilonn\"\nvalues = [0.25]"),
    ] {
        let s = with("param = \"beta\"\nvalues = [1.0, 3.0, 6.0]", sweep);
        let file = pipeline_file(name, &s);
        let out = scratch(name).join("run");
        let e = run(&file, &out).map(|_| ()).expect_err("refused").to_string();
        let at = format!("{name}.toml:{}:", line("values = ", &s));
        assert!(e.contains(&at) && e.contains("for hardening attack `pgd`"), "{e}");
        assert!(nothing_trained(&out), "{name}: refused before training");
    }
}

/// The child of the kill test: runs the pipeline its parent names. Does nothing in a plain
/// `cargo test`.
#[test]
fn tradeoff_child() {
    let Some(c) = child_args() else { return };
    let p = Pipeline::load(&c.pipeline).expect("valid pipeline");
    engine::run(&p, &RunOptions { out: Some(c.out), resume: c.resume }).expect("the run succeeds");
}

/// Killed in the middle of a point, at the end of one, and while a point's final commit is
/// written, then resumed: the same metrics.json as the run never killed.
#[test]
fn a_sweep_killed_and_resumed_gives_the_same_metrics() {
    let dir = scratch("tradeoff-resume");
    let whole = dir.join("whole");
    child_run("tradeoff_child", &the_pipeline(), &whole, false, None);
    let want = run_metrics(&whole);
    assert!(want["tradeoff"]["points"].as_array().is_some_and(|p| p.len() == 3));
    for (name, chain) in [
        ("mid-point", &["harden-p1:1:2"][..]),
        ("chain", &["harden-p0:2:end", "harden-p1:2:tmp", "harden-p2:1:3"]),
    ] {
        let out = dir.join(name);
        for (i, kill) in chain.iter().enumerate() {
            child_run("tradeoff_child", &the_pipeline(), &out, i > 0, Some(kill));
        }
        child_run("tradeoff_child", &the_pipeline(), &out, true, None);
        let left = leftover_checkpoints(&out);
        assert!(left.is_empty(), "left behind after {chain:?}: {left:?}");
        let got = run_metrics(&out);
        assert!(got == want, "killed at {chain:?} and resumed, the metrics differ:\n{got}\nvs\n{want}");
    }

    // A resume with other values throws the points away: point 0 is now beta = 6, and its
    // old checkpoint (beta = 1) must not stand in for it.
    let src = repo_pipeline(PIPELINE).replace("values = [1.0, 3.0, 6.0]", "values = [6.0, 1.0]");
    let file = pipeline_file("tradeoff-changed", &src);
    let p = Pipeline::load(&file).unwrap();
    engine::run(&p, &RunOptions { out: Some(whole.clone()), resume: true })
        .expect("resumed with other values");
    let fresh = dir.join("fresh");
    run(&file, &fresh).expect("a fresh run with those values");
    assert_eq!(run_metrics(&whole), run_metrics(&fresh), "a changed [tradeoff] trains its points again");
    assert!(!whole.join("checkpoints/harden-p2.safetensors").exists(), "the old third point is gone");
    let _ = std::fs::remove_dir_all(&dir);
}
