//! `pipelines/fraud-small.toml` end to end, through the real `tempered-tabular` cdylib.

mod common;

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{
    assert_first_party_attack, assert_phases_timed, assert_reproducible, assert_run_files,
    golden_run_metrics, pipeline_file, read_json, repo, repo_pipeline, run_metrics, scratch, without_timings,
};

use common::run_repo_pipeline;

fn run_small(out: &std::path::Path) -> engine::Finished {
    run_repo_pipeline("fraud-small.toml", out)
}

#[test]
fn fraud_small_trains_attacks_hardens_and_reports() {
    let out = scratch("fraud-e2e").join("run");
    let finished = run_small(&out);
    assert_run_files(
        &out,
        &["config.toml", "metrics.json", "report.md", "plots/pr_curve.png", "plots/sweep-pgd.png"],
    );

    let m = golden_run_metrics(&out, "fraud-small", "tabular");
    assert_eq!(m["seed"], 7);
    for phase in ["before", "after"] {
        let clean = &m["clean"][phase];
        for key in ["accuracy", "pr_auc", "recall_at_1pct_fpr", "false_positive_rate"] {
            let v = clean[key].as_f64().unwrap_or_else(|| panic!("clean.{phase}.{key} missing"));
            assert!((0.0..=1.0).contains(&v), "clean.{phase}.{key} = {v}");
        }
    }
    assert!(m["clean"]["before"]["pr_auc"].as_f64().unwrap() > 0.5, "the clean model learned something");

    let attacks = m["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 4, "two attacks, before and after");
    for a in attacks {
        let id = assert_first_party_attack(a, "tabular", "pgd", "every adversarial row satisfies the schema");
        assert!(a["examples"].as_u64().unwrap() > 0);
        assert!(a["mean_queries"].as_f64().unwrap() > 0.0, "{id}: queries are counted by the host");
        assert_eq!(a["perturbation_unit"], "cost");
    }
    let pgd_before = attacks.iter().find(|a| a["id"] == "pgd" && a["phase"] == "before").unwrap();
    assert_eq!(pgd_before["mean_queries"].as_f64().unwrap(), 5.0, "PGD-5: one loss_grad per step");
    assert!(pgd_before["success_rate"].as_f64().unwrap() > 0.0, "epsilon 0.5 fools some frauds");
    assert_eq!(m["sweeps"].as_array().unwrap().len(), 4, "two budgets, before and after");
    assert_phases_timed(&m);

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| `fraudster` | **no (held out)**"), "{report}");
    assert!(report.contains("![Precision-recall"), "report links its plots");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("adversarial_weight = 0.5"), "the resolved config spells out defaults");
    assert_eq!(finished.metrics.attacks.len(), 4);
}

#[test]
fn same_seed_gives_identical_metrics() {
    assert_reproducible("fraud-seed", |out| {
        run_small(out);
    });
}

#[test]
fn another_seed_gives_other_numbers() {
    let src = repo_pipeline("fraud-small.toml").replace("seed = 7", "seed = 8");
    let p = Pipeline::load(&pipeline_file("fraud-seed8", &src)).unwrap();
    let out = scratch("fraud-seed8-run").join("run");
    engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).unwrap();
    let other = run_metrics(&out);
    let base_out = scratch("fraud-seed7-run").join("run");
    run_small(&base_out);
    let base = run_metrics(&base_out);
    assert_ne!(other["clean"], base["clean"]);
}

#[test]
fn a_finished_run_refuses_to_be_overwritten_and_resumes_from_its_checkpoints() {
    let out = scratch("fraud-resume").join("run");
    let first = run_small(&out);
    let p = Pipeline::load(&repo().join("pipelines/fraud-small.toml")).unwrap();
    let err = engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).expect_err("refused");
    assert!(err.to_string().contains("--resume"), "{err}");
    // Resuming a finished run re-evaluates from the saved weights: same numbers.
    let again = engine::run(&p, &RunOptions { out: Some(out.clone()), resume: true }).unwrap();
    assert_eq!(
        without_timings(serde_json::to_value(&first.metrics).unwrap()),
        without_timings(serde_json::to_value(&again.metrics).unwrap())
    );
}

/// Runs fraud-small with `edit` applied to its text and returns metrics.json.
fn run_variant(name: &str, edit: impl Fn(String) -> String) -> serde_json::Value {
    let src = edit(repo_pipeline("fraud-small.toml"));
    let p = Pipeline::load(&pipeline_file(name, &src)).expect("valid pipeline");
    let out = scratch(name).join("run");
    engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).expect("run succeeds");
    read_json(&out.join("metrics.json"))
}

#[test]
fn logistic_regression_with_fast_fgsm_training_runs_end_to_end() {
    let m = run_variant("fraud-logistic-fgsm", |s| {
        s.replace("kind = \"mlp\"\nhidden = [32, 32]", "kind = \"logistic\"")
            .replace("strategy = \"pgd\"", "strategy = \"fgsm\"")
    });
    assert!(m["clean"]["after"]["accuracy"].as_f64().unwrap() > 0.8);
    let trained: Vec<_> =
        m["attacks"].as_array().unwrap().iter().filter(|a| a["trained_against"] == true).collect();
    assert_eq!(trained.len(), 2, "pgd before and after");
    assert!(m["attacks"].as_array().unwrap().iter().all(|a| a["constraint_violations"] == 0));
}

#[test]
fn clean_fine_tuning_trains_against_no_attack() {
    let m = run_variant("fraud-clean-strategy", |s| {
        s.replace("strategy = \"pgd\"\nattack = \"pgd\"", "strategy = \"clean\"")
    });
    assert!(m["attacks"].as_array().unwrap().iter().all(|a| a["trained_against"] == false));
    assert!(m["clean"]["after"].is_object());
}

/// FGSM training sends the attack `steps = 1, random_start = true`; an attack without those
/// params is refused before the clean training starts, not after it.
#[test]
fn hardening_params_are_checked_before_any_training() {
    let src = repo_pipeline("fraud-small.toml")
        .replace("strategy = \"pgd\"\nattack = \"pgd\"", "strategy = \"fgsm\"\nattack = \"fraudster\"");
    let p = Pipeline::load(&pipeline_file("fraud-fgsm-fraudster", &src)).expect("valid pipeline");
    let out = scratch("fraud-fgsm-fraudster").join("run");
    let Err(err) = engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }) else {
        panic!("fraudster takes no `steps`: the run must fail");
    };
    let err = err.to_string();
    assert!(err.contains("fraudster") && err.contains("unknown field"), "{err}");
    assert!(tempered_tests::nothing_trained(&out), "nothing was trained");
}

/// The shipped `fraud.toml` itself takes seconds: its numbers are pinned too.
#[test]
fn fraud_toml_gives_its_golden_numbers() {
    let p = Pipeline::load(&repo().join("pipelines/fraud.toml")).expect("valid pipeline");
    let out = scratch("fraud-golden").join("run");
    engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).expect("run succeeds");
    tempered_tests::assert_golden("fraud", &read_json(&out.join("metrics.json")));
}

/// fraud-small hardened against `pgd` and `fraudster` at once, `lowprofool` held out.
fn mixed_src() -> String {
    let base = repo_pipeline("fraud-small.toml");
    let head = base.split("[[attack]]").next().unwrap();
    format!(
        "{head}[[attack]]\nid = \"pgd\"\nplugin = \"tabular\"\nattack = \"pgd\"\nclasses = [1]\nparams = {{ epsilon = 0.5, steps = 5 }}\n\n\
         [[attack]]\nid = \"fraudster\"\nplugin = \"tabular\"\nattack = \"fraudster\"\nclasses = [1]\nparams = {{ budget = 3.0 }}\n\n\
         [[attack]]\nid = \"lowprofool\"\nplugin = \"tabular\"\nattack = \"lowprofool\"\nclasses = [1]\n\n\
         [harden]\nstrategy = \"pgd\"\nattack = [\"pgd\", \"fraudster\"]\nepochs = 2\npatience = 0\n"
    )
}

#[test]
fn hardening_against_several_threat_models_shares_each_batch_and_repeats() {
    let p = Pipeline::load(&pipeline_file("fraud-mixed", &mixed_src())).expect("valid pipeline");
    let run = |out: &std::path::Path| {
        engine::run(&p, &RunOptions { out: Some(out.to_owned()), resume: false }).expect("run succeeds");
    };
    let out = assert_reproducible("fraud-mixed", run).join("a");
    let m = run_metrics(&out);
    let trained = |id: &str| {
        m["attacks"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap()["trained_against"].clone()
    };
    assert_eq!(
        (trained("pgd"), trained("fraudster"), trained("lowprofool")),
        (true.into(), true.into(), false.into())
    );
    let h = &m["hardening"];
    assert!(h["examples"].as_u64().unwrap() > 0 && h["changed"].as_u64().unwrap() > 0, "{h}");
    assert_eq!(h["violations"], 0);
    // The saved config keeps the list.
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(saved.contains("attack = [\n    \"pgd\",\n    \"fraudster\",\n]"), "{saved}");

    let twice = mixed_src().replace("attack = [\"pgd\", \"fraudster\"]", "attack = [\"pgd\", \"pgd\"]");
    let e = Pipeline::load(&pipeline_file("fraud-twice", &twice)).expect_err("refused").to_string();
    assert!(e.contains("fraud-twice.toml:") && e.ends_with("`pgd` is listed twice"), "{e}");
}

#[test]
fn a_run_can_start_from_another_runs_model() {
    let first = scratch("init-first").join("run");
    let done = run_small(&first);
    let src = repo_pipeline("fraud-small.toml")
        .replace("[train]\nepochs = 6", &format!("[train]\ninit = \"{}\"\nepochs = 0", first.display()));
    let p = Pipeline::load(&pipeline_file("fraud-init", &src)).expect("epochs = 0 is fine with init");
    let out = scratch("init-second").join("run");
    let again = engine::run(&p, &RunOptions { out: Some(out), resume: false }).expect("run succeeds");
    // The second run's clean model is the first run's hardened one, on the same test split.
    let want = serde_json::to_value(done.metrics.clean.after.as_ref().unwrap()).unwrap();
    assert_eq!(serde_json::to_value(&again.metrics.clean.before).unwrap(), want);

    let no_init = repo_pipeline("fraud-small.toml").replace("[train]\nepochs = 6", "[train]\nepochs = 0");
    let e = Pipeline::load(&pipeline_file("fraud-no-init", &no_init)).expect_err("refused").to_string();
    assert!(e.contains("or `init` to a trained one"), "{e}");
}

#[test]
fn trades_hardening_runs_and_repeats() {
    let src = repo_pipeline("fraud-small.toml")
        .replace("[harden]\nstrategy = \"pgd\"", "[harden]\nstrategy = \"trades\"\nbeta = 3.0");
    let p = Pipeline::load(&pipeline_file("fraud-trades", &src)).expect("valid pipeline");
    let run = |out: &std::path::Path| {
        engine::run(&p, &RunOptions { out: Some(out.to_owned()), resume: false }).expect("run succeeds");
    };
    let out = assert_reproducible("fraud-trades", run).join("a");
    let m = run_metrics(&out);
    let h = &m["hardening"];
    assert!(h["examples"].as_u64().unwrap() > 0 && h["changed"].as_u64().unwrap() > 0, "{h}");
    let pgd_after =
        m["attacks"].as_array().unwrap().iter().find(|a| a["id"] == "pgd" && a["phase"] == "after").unwrap();
    assert_eq!(pgd_after["trained_against"], true);
    assert!(pgd_after["success_rate"].as_f64().unwrap().is_finite());

    let bad = src.replace("beta = 3.0", "beta = 0.0");
    let e = Pipeline::load(&pipeline_file("fraud-trades-bad", &bad)).expect_err("refused").to_string();
    assert!(e.ends_with("beta must be a finite number > 0"), "{e}");
}

#[test]
fn early_stopping_on_robust_accuracy_keeps_the_most_robust_epoch() {
    let src = repo_pipeline("fraud-small.toml").replace(
        "[harden]\nstrategy = \"pgd\"\nattack = \"pgd\"\nepochs = 2",
        "[harden]\nstrategy = \"pgd\"\nattack = \"pgd\"\nearly_stopping = \"robust-accuracy\"\nepochs = 4",
    );
    let p = Pipeline::load(&pipeline_file("fraud-robust-stop", &src)).expect("valid pipeline");
    let out = scratch("fraud-robust-stop").join("run");
    engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).expect("run succeeds");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    // | hardened | 3 (kept) | … | robust validation accuracy | …
    let rows: Vec<(bool, f64)> = report
        .lines()
        .filter(|l| l.starts_with("| hardened |"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[2].contains("(kept)"), cells[6].trim_end_matches('%').parse::<f64>().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 4, "{report}");
    let best = rows.iter().map(|r| r.1).fold(f64::MIN, f64::max);
    let kept = rows.iter().find(|r| r.0).expect("one epoch kept");
    assert_eq!(kept.1, best, "the kept epoch is the most robust on validation: {rows:?}");
}
