//! The host checks what attacks promise: fixture plugins that declare a budget and break it,
//! in every modality, are caught on every example they change (a violation, never a
//! success, named in the report); what is not declared, or cannot be checked, is reported
//! as not verified; a plugin built for ABI 1.0 still loads and runs.

use serde_json::Value;
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_core::plugin_host::Plugin;
use tempered_tests::{
    attack_row, built_attack, built_lib, pipeline_file, repo, repo_pipeline, run_outputs, scratch,
};

/// `base` with its attacks replaced by one `[[attack]]` per `(attack, params)` of `plugin`,
/// and no hardening.
fn pipeline(base: &str, plugin: &str, attacks: &[(&str, &str)]) -> Pipeline {
    pipeline_with(base, plugin, attacks, "")
}

/// [`pipeline`], with `extra` TOML at the end.
fn pipeline_with(base: &str, plugin: &str, attacks: &[(&str, &str)], extra: &str) -> Pipeline {
    let head = repo_pipeline(base).split("[[attack]]").next().unwrap().to_owned();
    let mut src = head;
    for (attack, params) in attacks {
        src.push_str(&built_attack(plugin, attack, &format!("params = {{ {params} }}\n\n")));
    }
    src.push_str("[harden]\nenabled = false\n");
    src.push_str(extra);
    Pipeline::load(&pipeline_file(&format!("{plugin}-{base}"), &src)).expect("valid pipeline")
}

/// Runs `p`; returns metrics.json and report.md.
fn run(p: &Pipeline) -> (Value, String) {
    let out = scratch(&p.spec.pipeline().name).join("run");
    engine::run(p, &RunOptions { out: Some(out.clone()), resume: false }).expect("the run finishes");
    run_outputs(&out)
}

/// The attack broke its one declared budget on at least one example and on nothing else,
/// scored no success, and the report names the budget with its count.
fn caught(m: &Value, report: &str, id: &str, budget: &str) {
    let a = attack_row(m, id);
    let v = a["constraint_violations"].as_u64().unwrap();
    assert!(v > 0, "{id}: the cheat was caught: {a}");
    assert_eq!(a["successes"], 0, "{id}: a violating example is never a success");
    assert_eq!(a["budgets"][0]["budget"], budget, "{id}");
    assert_eq!(a["budgets"][0]["violations"].as_u64(), Some(v), "{id}: each violation is this budget's");
    let line = report.lines().find(|l| l.starts_with(&format!("- `{id}` "))).expect("a threat-model line");
    assert!(line.contains(&format!("{budget}: **{v} violations** ⚠️")), "{id}: {line}");
}

#[test]
fn every_tabular_budget_is_checked_and_silence_is_not_verified() {
    let attacks =
        [("linf", ""), ("l2", ""), ("cost", ""), ("queries", ""), ("silent", ""), ("immutable", "")];
    let immutable = "\n[data.columns.V1]\nmutable = false\n";
    let (m, report) = run(&pipeline_with("fraud-small.toml", "fixture-cheat-tabular", &attacks, immutable));
    caught(&m, &report, "linf", "L∞ ≤ 0.1 std");
    caught(&m, &report, "l2", "L2 ≤ 0.1 std");
    caught(&m, &report, "cost", "cost ≤ 0.01");
    caught(&m, &report, "queries", "≤ 1 queries");
    assert_eq!(attack_row(&m, "queries")["mean_queries"], 3.0, "the host counted every query");

    let silent = attack_row(&m, "silent");
    assert_eq!(silent["budgets"], serde_json::json!([]), "declared nothing");
    assert_eq!(silent["constraint_violations"], 0, "nothing declared: nothing beyond the schema broke");
    assert!(silent["successes"].as_u64().unwrap() > 0, "an unchecked move of 3 std fools the model");
    assert!(
        report.contains("- `silent` (`silent`): **not verified by the host**: the attack declares no budget")
    );
    assert!(report.contains("The budgets of `silent` are not verified by the host: it declares no budget."));

    let imm = attack_row(&m, "immutable");
    assert_eq!(imm["constraint_violations"], imm["attacked"], "the schema is checked whatever is declared");
    assert_eq!(imm["successes"], 0);
}

#[test]
fn a_budget_of_another_modality_is_refused_when_the_attack_is_created() {
    let p = pipeline("fraud-small.toml", "fixture-cheat-tabular", &[("foreign", "")]);
    let out = scratch("foreign").join("run");
    let e = engine::run(&p, &RunOptions { out: Some(out), resume: false }).expect_err("refused").to_string();
    assert!(
        e.contains(
            "attack `foreign`: the budget `SNR ≥ 30 dB` is for audio examples, and this is a tabular attack"
        ),
        "{e}"
    );
}

#[test]
fn the_host_query_cap_refuses_the_call_with_a_typed_status() {
    let head = repo_pipeline("fraud-small.toml").split("[[attack]]").next().unwrap().to_owned();
    let attack = built_attack("fixture-cheat-tabular", "queries", "query_budget = 2\n\n");
    let src = format!("{head}{attack}[harden]\nenabled = false\n");
    let p = Pipeline::load(&pipeline_file("query-cap", &src)).unwrap();
    let out = scratch("query-cap").join("run");
    let e = engine::run(&p, &RunOptions { out: Some(out), resume: false }).expect_err("refused").to_string();
    assert!(
        e.contains("host: query budget: example 0 has 0 of its 2 queries left and the call asks 1"),
        "{e}"
    );
}

#[test]
fn every_audio_budget_is_checked() {
    let attacks = [("snr", ""), ("linf", ""), ("shift", ""), ("range", "")];
    let (m, report) = run(&pipeline("speech-small.toml", "fixture-cheat-audio", &attacks));
    caught(&m, &report, "snr", "SNR ≥ 40 dB");
    caught(&m, &report, "linf", "L∞ ≤ 0.001");
    caught(&m, &report, "shift", "time shift ≤ 0.01 s");
    let range = attack_row(&m, "range");
    assert_eq!(
        range["constraint_violations"], range["attacked"],
        "the range is checked whatever is declared: {range}"
    );
}

#[test]
fn every_text_budget_is_checked_or_said_to_be_unchecked() {
    let stop = repo().join("data/stopwords/english.txt");
    let ant = repo().join("data/counterfit-constraints/wordnet_antonyms.txt");
    let table = repo().join("data/wordnet-synonyms/wordnet-synonyms.tsv");
    let (stop_p, ant_p) = (format!("file = \"{}\"", stop.display()), format!("file = \"{}\"", ant.display()));
    let table_p = format!("file = \"{}\"", table.display());
    let attacks = [
        ("stopwords", stop_p.as_str()),
        ("antonyms", ant_p.as_str()),
        ("synonyms", table_p.as_str()),
        ("ratio", ""),
        ("similar", ""),
        ("chars", ""),
        ("words", ""),
    ];
    let (m, report) = run(&pipeline("sentiment-small.toml", "fixture-cheat-text", &attacks));
    caught(&m, &report, "stopwords", "no stop word swapped (english.txt)");
    caught(&m, &report, "antonyms", "no antonym swaps (wordnet_antonyms.txt)");
    caught(&m, &report, "synonyms", "swaps from the synonym table (wordnet-synonyms.tsv)");
    caught(&m, &report, "ratio", "one-for-one swaps of ≤ 10 % of words");
    caught(&m, &report, "chars", "≤ 1 character edit in each of ≤ 50 % of words");
    let chars = attack_row(&m, "chars");
    assert_eq!(chars["constraint_violations"], chars["attacked"], "every edited example is caught: {chars}");

    // sentiment-small names no sentence encoder: the floor cannot be checked, and says so.
    let similar = attack_row(&m, "similar");
    assert_eq!(similar["budgets"][0]["violations"], Value::Null, "{similar}");
    assert!(similar["budgets"][0]["not_verified"].as_str().unwrap().contains("no sentence encoder"));
    assert!(report.contains(
        "sentence similarity ≥ 0.99: **not verified by the host** (the pipeline names no sentence encoder"
    ));
    assert!(report.contains("The budgets of `similar` are not verified by the host: the host could not check sentence similarity ≥ 0.99."));

    let words = attack_row(&m, "words");
    assert_eq!(words["constraint_violations"], words["attacked"], "a swap never changes the word count");
    assert_eq!(words["successes"], 0);
}

#[test]
fn a_plugin_built_for_abi_1_0_loads_runs_and_its_budgets_are_not_verified() {
    let plugin = Plugin::load(&built_lib("tempered_fixture_abi_1_0")).expect("a 1.0 plugin loads under 1.1");
    assert_eq!(tempered_core::plugin_host::format_abi(plugin.abi_version), "1.0");
    assert_eq!(plugin.attacks.len(), 1);
    let handle = plugin.create("nudge", &serde_json::json!({}), &repo()).expect("created");
    assert!(handle.threat().is_none(), "a 1.0 plugin cannot declare budgets");
    drop(handle);

    let (m, report) = run(&pipeline("fraud-small.toml", "fixture-abi-1-0", &[("nudge", "")]));
    let a = attack_row(&m, "nudge");
    assert_eq!(a["budgets"], Value::Null);
    assert_eq!(a["constraint_violations"], 0, "the schema still holds and is still checked");
    assert!(report.contains(
        "- `nudge` (`nudge`): **not verified by the host**: the plugin predates declared budgets (ABI 1.0)"
    ));
}

#[test]
fn every_first_party_attack_declares_budgets_the_host_can_check() {
    for (file, modality) in [
        ("fraud.toml", "tabular"),
        ("speech.toml", "audio"),
        ("sentiment-bert.toml", "text"),
        ("sentiment-defence.toml", "text"),
    ] {
        let p = Pipeline::load(&repo().join("pipelines").join(file)).unwrap();
        let plugin = Plugin::load(&built_lib(&format!("tempered_{modality}"))).unwrap();
        for a in p.spec.attacks() {
            let params = serde_json::to_value(&a.params).unwrap();
            // Word-list params ("data/...") resolve against the pipeline's folder, as in a run.
            let handle = plugin
                .create(&a.attack, &params, &p.base_dir)
                .unwrap_or_else(|e| panic!("{file} {}: {e}", a.id));
            let threat = handle.threat().expect("ABI 1.1");
            assert!(!threat.is_empty(), "{file} {}: declares its budgets", a.id);
        }
    }
}

/// Half and half, whatever the input: the harness only needs an oracle.
struct Unsure;

impl tempered_plugin::testing::TestModel for Unsure {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: tempered_plugin::Input<'_>) -> Vec<f32> {
        let tempered_plugin::Input::Dense { data, width } = input else { panic!("dense") };
        vec![0.5; data.len() / width * 2]
    }
    fn loss_grad(&self, _: tempered_plugin::Input<'_>, _: &[u32]) -> (Vec<f32>, Vec<f32>) {
        unimplemented!("the cheats only predict")
    }
}

#[test]
fn the_plugin_test_harness_fails_what_the_engine_counts_as_violations() {
    use tempered_fixture_cheat_tabular::{Cost, L2, Linf, Queries};
    use tempered_plugin::testing::{TestBatch, run};
    let batch = TestBatch::dense(tempered_plugin::Modality::Tabular, vec![0.0, 1.0, 2.0, 3.0], 2, vec![0, 1]);
    let said = [
        run::<Linf>("{}", &batch, &Unsure).unwrap_err().0,
        run::<L2>("{}", &batch, &Unsure).unwrap_err().0,
        run::<Cost>("{}", &batch, &Unsure).unwrap_err().0,
        run::<Queries>("{}", &batch, &Unsure).unwrap_err().0,
    ];
    for (e, note) in said.iter().zip([
        "L∞ change 3.00000 std exceeds 0.1",
        "std exceeds 0.1",
        "exceeds the budget 0.01",
        "3 queries, over the declared 1",
    ]) {
        assert!(e.starts_with("the engine would count 2 violation(s): example 0: "), "{e}");
        assert!(e.contains(note), "{e}");
    }
}
