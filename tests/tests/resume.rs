//! A run killed at any point and resumed with `--resume` ends with the numbers of the run
//! that was never interrupted: the same `metrics.json`, timings apart.
//!
//! The kills are real: a child process (this test binary re-executed, running only
//! [`resume_child`]) trains with `TEMPERED_FAILPOINT=<phase>:<epoch>:<where>` set and aborts
//! there like SIGKILL would (no destructors, nothing flushed); the next child resumes the
//! run directory to the end. In a chain of kills each child resumes the last one's run and
//! is itself killed at the next point, so a run resumed from a resumed run is checked too.
//! The kill points cover every epoch boundary, the middle of every epoch, and the moments
//! inside a commit (written under its temporary name; renamed with the older commits still
//! there).

use std::path::Path;

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{child_args, child_run, leftover_checkpoints, repo, run_metrics, scratch};

/// The child: runs the pipeline its parent names ([`child`]). Does nothing in a plain
/// `cargo test`.
#[test]
fn resume_child() {
    let Some(run) = child_args() else { return };
    let p = Pipeline::load(&run.pipeline).expect("valid pipeline");
    engine::run(&p, &RunOptions { out: Some(run.out), resume: run.resume }).expect("the run succeeds");
}

/// Runs `pipelines/<pipeline>` (or `pipeline`, a full path) into `out` in a child, killed
/// at `kill` when given.
fn child(pipeline: &str, out: &Path, resume: bool, kill: Option<&str>) {
    child_run("resume_child", &repo().join("pipelines").join(pipeline), out, resume, kill);
}

/// The metrics of an uninterrupted run of `pipeline`.
fn uninterrupted(pipeline: &str, dir: &Path) -> serde_json::Value {
    let out = dir.join("uninterrupted");
    child(pipeline, &out, false, None);
    run_metrics(&out)
}

/// Starts `pipeline`, kills it at each point of `chain` in turn (each run but the first
/// resuming the last), resumes it to the end, and compares the metrics with `want`.
fn kill_chain(pipeline: &str, dir: &Path, name: &str, chain: &[&str], want: &serde_json::Value) {
    let out = dir.join(name);
    for (i, kill) in chain.iter().enumerate() {
        child(pipeline, &out, i > 0, Some(kill));
    }
    child(pipeline, &out, true, None);
    let left = leftover_checkpoints(&out);
    assert!(left.is_empty(), "{pipeline}: left behind after {chain:?}: {left:?}");
    let got = run_metrics(&out);
    let mut diffs = Vec::new();
    diff("", want, &got, &mut diffs);
    assert!(
        diffs.is_empty(),
        "{pipeline}: killed at {chain:?} and resumed, the metrics differ from the uninterrupted run's \
         (uninterrupted → resumed):\n{}",
        diffs.join("\n")
    );
}

/// Where two JSON values differ, as `path: a → b` lines.
fn diff(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (u, v) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                diff(&format!("{at}.{k}"), u, v, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}[{i}]"), u, v, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: {a} → {b}")),
    }
}

/// fraud-small: 6 clean epochs of 4 batches, then 2 hardening epochs. A run is under a
/// second, so every kill point gets a run of its own, and one chain goes through all the
/// mid-epoch points.
#[test]
fn fraud_small_resumes_exactly_from_any_kill() {
    let dir = scratch("resume-fraud");
    let want = uninterrupted("fraud-small.toml", &dir);
    let boundaries =
        (1..=6).map(|e| format!("clean:{e}:end")).chain((1..=2).map(|e| format!("hardened:{e}:end")));
    let middles: Vec<String> = (1..=6)
        .map(|e| format!("clean:{e}:{}", 1 + e % 3))
        .chain((1..=2).map(|e| format!("hardened:{e}:{}", 1 + e)))
        .collect();
    let commits = ["clean:2", "clean:6", "hardened:1", "hardened:2"]
        .into_iter()
        .flat_map(|at| [format!("{at}:tmp"), format!("{at}:renamed")]);
    let all: Vec<String> = boundaries.chain(middles.iter().cloned()).chain(commits).collect();
    for (i, kill) in all.iter().enumerate() {
        kill_chain("fraud-small.toml", &dir, &format!("kill-{i}"), &[kill], &want);
    }
    let chain: Vec<&str> = middles.iter().map(String::as_str).collect();
    kill_chain("fraud-small.toml", &dir, "chain", &chain, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// speech-small: 2 clean epochs, 1 hardening epoch.
#[test]
fn speech_small_resumes_exactly() {
    let dir = scratch("resume-speech");
    let want = uninterrupted("speech-small.toml", &dir);
    kill_chain("speech-small.toml", &dir, "chain", &["clean:1:2", "hardened:1:3", "hardened:1:end"], &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// sentiment-small: the word-CNN draws dropout masks across batches and epochs; hardening
/// is one clean epoch and one attack-in-the-loop epoch.
#[test]
fn sentiment_small_resumes_exactly() {
    let dir = scratch("resume-sentiment");
    let want = uninterrupted("sentiment-small.toml", &dir);
    kill_chain(
        "sentiment-small.toml",
        &dir,
        "chain",
        &["clean:2:5", "hardened:1:end", "hardened:2:3"],
        &want,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// sentiment-small with a synonym encoding: the aliases are not saved with the vocabulary,
/// so a resumed run rebuilds them from the word lists, and ends with the numbers of the run
/// that was never interrupted.
#[test]
fn a_synonym_encoded_model_resumes_exactly() {
    let base = tempered_tests::repo_pipeline("sentiment-small.toml");
    let src = base.replacen(
        "max_words = 64\n",
        "max_words = 64\nsynonym_encoding = { synonyms = \"data/wordnet-synonyms/wordnet-synonyms.tsv\", \
         stopwords = \"data/stopwords/english.txt\" }\n",
        1,
    );
    assert_ne!(src, base, "sentiment-small's [model] changed: update this test");
    let file = tempered_tests::pipeline_file("resume-encoded", &src);
    let name = file.to_str().expect("a UTF-8 path");
    let dir = scratch("resume-encoded");
    let want = uninterrupted(name, &dir);
    assert!(want["synonym_encoding"]["aliases"].as_u64().unwrap() > 0, "{}", want["synonym_encoding"]);
    kill_chain(name, &dir, "chain", &["clean:2:5", "hardened:1:3"], &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// fraud-small hardened against two attacks at once: the counters of each travel with the
/// commits, and a kill mid-hardening resumes to the same metrics.
#[test]
fn several_hardening_attacks_resume_exactly() {
    let base = tempered_tests::repo_pipeline("fraud-small.toml");
    let src = base.replace(
        "[harden]\nstrategy = \"pgd\"\nattack = \"pgd\"",
        "[harden]\nstrategy = \"pgd\"\nattack = [\"pgd\", \"fraudster\"]",
    );
    assert_ne!(src, base, "fraud-small's [harden] changed: update this test");
    // An absolute path: joined onto pipelines/, it stays as it is.
    let file = tempered_tests::pipeline_file("resume-mixed", &src);
    let name = file.to_str().expect("a UTF-8 path");
    let dir = scratch("resume-mixed");
    let want = uninterrupted(name, &dir);
    assert!(want["hardening"]["examples"].as_u64().unwrap() > 0);
    kill_chain(name, &dir, "chain", &["hardened:1:2", "hardened:2:end"], &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// fraud-small keeping an average of the weights in both phases: the average travels with
/// the commits, and kills mid-epoch and at a commit resume to the same metrics.
#[test]
fn an_averaged_run_resumes_exactly() {
    let base = tempered_tests::repo_pipeline("fraud-small.toml");
    let src = base
        .replacen("lr = 3e-3\npatience = 0\n", "lr = 3e-3\npatience = 0\nweight_average = 0.95\n", 1)
        .replacen("epochs = 2\npatience = 0\n", "epochs = 2\npatience = 0\nweight_average = 0.9\n", 1);
    assert_eq!(src.matches("weight_average").count(), 2, "fraud-small's [train] or [harden] changed");
    let file = tempered_tests::pipeline_file("resume-averaged", &src);
    let name = file.to_str().expect("a UTF-8 path");
    let dir = scratch("resume-averaged");
    let want = uninterrupted(name, &dir);
    let plain = uninterrupted("fraud-small.toml", &dir.join("plain"));
    assert_ne!(want["clean"], plain["clean"], "the average is the model kept");
    kill_chain(name, &dir, "chain", &["clean:3:2", "clean:4:end", "hardened:2:1"], &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// transactions-small read a chunk at a time, its rows on disk: a kill mid-epoch (the batch
/// prefetch thread running) and at a commit resumes to the metrics of the run that was never
/// interrupted, which are those of the same table read whole.
#[test]
fn a_streamed_table_resumes_exactly() {
    let base = tempered_tests::repo_pipeline("transactions-small.toml");
    let src = base.replacen("[data]\n", "[data]\nstream = true\n", 1);
    assert_ne!(src, base, "transactions-small has no [data] line: update this test");
    let file = tempered_tests::pipeline_file("resume-streamed", &src);
    let name = file.to_str().expect("a UTF-8 path");
    let dir = scratch("resume-streamed");
    let want = uninterrupted(name, &dir);
    assert_eq!(want, uninterrupted("transactions-small.toml", &dir.join("whole")), "streamed = read whole");
    kill_chain(name, &dir, "chain", &["clean:3:7", "clean:12:end", "hardened:1:9"], &want);
    let _ = std::fs::remove_dir_all(&dir);
}
