//! `pipelines/sentiment-small.toml` end to end, through the real `tempered-text` cdylib:
//! the word-CNN trains, TextFooler and PWWS attack it, attack-in-the-loop hardens it, and
//! every adversarial example is checked here again, from the files the run left behind,
//! against the same word lists the attack was given.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{
    assert_first_party_attack, assert_phases_timed, assert_run_files, golden_run_metrics, pipeline_file,
    repo, repo_pipeline, run_metrics, scratch, without_timings,
};

use common::{refused_on_data, run_repo_pipeline};

/// The attacks' word lists are relative to the working directory, as when the pipeline is
/// run from the repository root. Every test of this binary sets the same folder.
fn at_repo_root() {
    std::env::set_current_dir(repo()).expect("cd to the repository root");
}

fn run_small(out: &Path) -> engine::Finished {
    at_repo_root();
    run_repo_pipeline("sentiment-small.toml", out)
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(repo().join(path)).unwrap().lines().map(str::to_owned).collect()
}

/// Stop words and (symmetric) antonym pairs, read independently of the engine.
fn word_lists() -> (HashSet<String>, HashSet<(String, String)>) {
    let stop: HashSet<String> =
        lines("data/stopwords/english.txt").into_iter().map(|l| l.trim().to_owned()).collect();
    let mut ant = HashSet::new();
    for file in
        ["data/counterfit-constraints/ppdb_antonyms.txt", "data/counterfit-constraints/wordnet_antonyms.txt"]
    {
        for l in lines(file) {
            let w: Vec<&str> = l.split_whitespace().collect();
            if let [a, b] = w[..] {
                ant.insert((a.to_owned(), b.to_owned()));
                ant.insert((b.to_owned(), a.to_owned()));
            }
        }
    }
    (stop, ant)
}

/// `(original, adversarial)` pairs from a TSV file with those two columns.
fn pairs(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = text.lines();
    let header: Vec<&str> = rows.next().expect("header").split('\t').collect();
    let col =
        |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} column"));
    let (o, a) = (col("original"), col("adversarial"));
    rows.map(|r| {
        let f: Vec<&str> = r.split('\t').collect();
        (f[o].to_owned(), f[a].to_owned())
    })
    .collect()
}

/// Every swap: same word count, at most 20 % of the words, never a stop word, never an
/// antonym of the word it replaced. Returns how many pairs changed at all.
fn check_swaps(file: &Path, max_ratio: f64) -> usize {
    let (stop, ant) = word_lists();
    let mut changed = 0;
    for (o, a) in pairs(file) {
        let (wo, wa): (Vec<&str>, Vec<&str>) =
            (o.split_whitespace().collect(), a.split_whitespace().collect());
        assert_eq!(wo.len(), wa.len(), "{}: word count changed: {o:?} → {a:?}", file.display());
        let swaps: Vec<(&str, &str)> =
            wo.iter().zip(&wa).filter(|(x, y)| x != y).map(|(x, y)| (*x, *y)).collect();
        for (x, y) in &swaps {
            assert!(!stop.contains(*x), "{}: stop word `{x}` swapped for `{y}`", file.display());
            assert!(
                !ant.contains(&(x.to_string(), y.to_string())),
                "{}: `{x}` → antonym `{y}`",
                file.display()
            );
        }
        let allowed = (wo.len() as f64 * max_ratio + 1e-9).floor() as usize;
        assert!(swaps.len() <= allowed, "{}: {} swaps in {o:?}", file.display(), swaps.len());
        changed += usize::from(!swaps.is_empty());
    }
    changed
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn sentiment_small_trains_attacks_hardens_and_reports() {
    let dir = scratch("sentiment-e2e");
    let out = dir.join("run");
    let finished = run_small(&out);
    assert_run_files(&out, &["config.toml", "metrics.json", "report.md", "checkpoints/tokenizer.json"]);

    let m = golden_run_metrics(&out, "sentiment-small", "text");
    for phase in ["before", "after"] {
        let clean = m["clean"][phase].as_object().unwrap();
        let keys: Vec<&str> = clean.keys().map(String::as_str).collect();
        assert_eq!(keys, ["accuracy", "examples", "predicted_classes"], "the text clean metric is accuracy");
        let acc = clean["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "clean.{phase}.accuracy = {acc}");
    }
    assert!(m["clean"]["before"]["accuracy"].as_f64().unwrap() > 0.55, "the word-CNN learned something");
    assert_eq!(m["clean"]["before"]["examples"], 60);

    let pipeline = Pipeline::load(&repo().join("pipelines/sentiment-small.toml")).unwrap();
    let budget = |id: &str| {
        let a = pipeline.spec.attacks().iter().find(|a| a.id == id).unwrap();
        a.params["query_budget"].as_integer().unwrap() as f64
    };
    let attacks = m["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 4, "two attacks, before and after");
    for a in attacks {
        let id =
            assert_first_party_attack(a, "text", "textfooler", "the host found no stop-word or antonym swap");
        assert_eq!(a["perturbation_unit"], "% words");
        let max_q = a["extra"]["max_queries"].as_f64().unwrap();
        assert!(
            max_q > 0.0 && max_q <= budget(id),
            "{id}: host-counted max queries {max_q} within the budget"
        );
        assert!(a["mean_queries"].as_f64().unwrap() >= 1.0);
        assert!(a["extra"]["words_per_input"].as_f64().unwrap() > 5.0, "{id}: MR sentences have ~20 words");
        let p = a["mean_perturbation"].as_f64().unwrap();
        assert!((0.0..=20.0).contains(&p), "{id}: at most 20 % of the words change, got {p}");
    }
    let before = attacks.iter().find(|a| a["id"] == "textfooler" && a["phase"] == "before").unwrap();
    assert!(before["success_rate"].as_f64().unwrap() > 0.2, "synonym swaps fool a small word-CNN: {before}");
    assert_phases_timed(&m);

    // The adversarial examples in the report and the ones trained on obey the constraints.
    let samples = files_in(&out.join("samples"));
    assert!(samples.len() >= 2, "at least the two attacks before hardening succeed somewhere: {samples:?}");
    let changed: usize = samples.iter().map(|f| check_swaps(f, 0.2)).sum();
    assert!(changed > 0, "the samples show successful swaps");
    let trained = files_in(&out.join("adversarial-training"));
    let names: Vec<String> =
        trained.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["epoch-2-validation.tsv", "epoch-2.tsv"],
        "clean_epochs = 1: only epoch 2 is adversarial"
    );
    let changed: usize = trained.iter().map(|f| check_swaps(f, 0.2)).sum();
    assert!(changed > 0, "attack-in-the-loop changed some training examples");

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| `pwws` | **no (held out)**"), "{report}");
    assert!(report.contains("## Attack summary (TextAttack style)"), "{report}");
    for row in [
        "| Original accuracy |",
        "| Accuracy under attack |",
        "| Average perturbed word % |",
        "| Avg num queries |",
    ] {
        assert!(report.contains(row), "{row} missing from\n{report}");
    }
    assert!(report.contains("~~") && report.contains("** "), "swapped words are marked:\n{report}");
    assert_eq!(finished.metrics.attacks.len(), 4);

    // Same seed, same numbers; resuming the finished run re-evaluates the saved model
    // (its vocabulary included) to the same numbers.
    let again = run_small(&dir.join("again"));
    let a = run_metrics(&out);
    assert_eq!(a, run_metrics(&dir.join("again")));
    let resumed = engine::run(&pipeline, &RunOptions { out: Some(out.clone()), resume: true }).unwrap();
    assert_eq!(
        without_timings(serde_json::to_value(&resumed.metrics).unwrap()),
        without_timings(serde_json::to_value(&again.metrics).unwrap())
    );
}

/// Runs sentiment-small on `csv` (written to a scratch folder) and returns the error.
fn data_err(name: &str, csv: &[u8]) -> String {
    at_repo_root();
    refused_on_data(name, "sentiment-small.toml", csv, |src, data| {
        src.replace("data/mr/mr.csv", data)
            .replace("limit = { train = 1200, validation = 100, test = 60 }\n", "")
            .replace("test_last_per_class = 533", "test_last_per_class = 2")
    })
}

fn reviews(edit: impl Fn(usize) -> Option<String>) -> Vec<u8> {
    let mut s = String::from("label,text\n");
    for r in 1..=30 {
        s += &edit(r).unwrap_or_else(|| format!("{},\"a film , review number {r}\"", r % 2));
        s.push('\n');
    }
    s.into_bytes()
}

#[test]
fn bad_rows_are_errors_naming_the_row() {
    let e = data_err("text-missing", &reviews(|r| (r == 12).then(|| "0,".into())));
    assert!(e.contains("row 12 (line 13): the text (`text`) is missing"), "{e}");
    let e = data_err("text-label", &reviews(|r| (r == 5).then(|| "pos,a fine film".into())));
    assert!(e.contains("row 5 (line 6): unknown label `pos`"), "{e}");
    let mut bytes = reviews(|r| (r == 9).then(|| "1,caf\u{e9}".into()));
    // Latin-1 é where UTF-8 was promised.
    let at = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    bytes.splice(at..at + 2, [0xE9]);
    let e = data_err("text-utf8", &bytes);
    assert!(e.contains("row 9 (line 10), column \"text\": not valid UTF-8"), "{e}");
}

#[test]
fn a_missing_synonym_file_is_an_error_naming_it() {
    at_repo_root();
    let src = repo_pipeline("sentiment-small.toml")
        .replace("wordnet-synonyms/wordnet-synonyms.tsv", "wordnet-synonyms/nope.tsv");
    let p = Pipeline::load(&pipeline_file("text-nosyn", &src)).unwrap();
    let out = scratch("text-nosyn-run").join("run");
    let e = engine::run(&p, &RunOptions { out: Some(out), resume: false }).expect_err("refused").to_string();
    assert!(e.contains("plugin `text`") && e.contains("textfooler"), "names the plugin and attack: {e}");
    assert!(e.contains("synonyms") && e.contains("data/wordnet-synonyms/nope.tsv"), "names the file: {e}");
}
