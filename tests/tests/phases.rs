#![cfg(unix)] // A rewrite is told by the inode, which a write through a rename changes.
//! The attack phases leave typed results in the run folder (`phases/<phase>/<unit>.json`),
//! and `--resume` reads a finished unit back instead of running it again: after a kill
//! past the "before" attacks, during the "after" ones, or on a finished run resumed with an
//! edited attack. What changed is recomputed, nothing else; a damaged file is caught and
//! recomputed. Every resumed run ends with the uninterrupted run's `metrics.json`.
//!
//! That a unit was not run again shows in its file, which is not rewritten (same inode: a
//! write goes through a new file and a rename), and in its time: a reused attack reports the
//! seconds it took when it ran, to the nanosecond, where a run again would be timed afresh.

use std::path::{Path, PathBuf};

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{
    child_args, child_run, pipeline_file, read_json, repo, repo_pipeline, run_metrics, scratch,
};

const CHILD: &str = "phases_child";

/// The child: runs the pipeline its parent names ([`child_run`]). Does nothing in a plain
/// `cargo test`.
#[test]
fn phases_child() {
    let Some(run) = child_args() else { return };
    let p = Pipeline::load(&run.pipeline).expect("valid pipeline");
    engine::run(&p, &RunOptions { out: Some(run.out), resume: run.resume }).expect("the run succeeds");
}

/// fraud-small, as a pipeline file of its own (with `edit` applied to its text).
fn fraud_small(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let base = repo_pipeline("fraud-small.toml");
    let src = edit(base.clone());
    pipeline_file(name, &src)
}

/// A unit's file: its inode (which a rewrite changes) and a hash of its contents.
fn mark(file: &Path) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(file).unwrap().hash(&mut h);
    (meta.ino(), h.finish())
}

/// Every unit file of a phase, by file name.
fn units(out: &Path, phase: &str) -> Vec<(String, (u64, u64))> {
    let dir = out.join("phases").join(phase);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), mark(&p)))
        .collect();
    v.sort();
    v
}

/// The `seconds` of attack `id` in `phase` of a finished run's metrics.json.
fn seconds(out: &Path, id: &str, phase: &str) -> f64 {
    let m = read_json(&out.join("metrics.json"));
    let row = m["attacks"].as_array().unwrap().iter().find(|a| a["id"] == id && a["phase"] == phase);
    row.unwrap_or_else(|| panic!("no {id} ({phase})"))["seconds"].as_f64().unwrap()
}

/// The `seconds` of the attack a unit file holds.
fn stored_seconds(out: &Path, phase: &str, unit: &str) -> f64 {
    read_json(&out.join("phases").join(phase).join(format!("{unit}.json")))["result"]["metrics"]["seconds"]
        .as_f64()
        .unwrap()
}

/// Killed right after the "before" attacks (2 attacks, 2 sweep points), then resumed and
/// killed after the first "after" attack, then resumed to the end: no finished unit runs
/// again, and the metrics are the uninterrupted run's.
#[test]
fn finished_attack_units_are_read_back_not_run_again() {
    let file = fraud_small("phases-kill", |s| s);
    let dir = scratch("phases-kill");
    let want_dir = dir.join("uninterrupted");
    child_run(CHILD, &file, &want_dir, false, None);
    let want = run_metrics(&want_dir);
    assert_eq!(units(&want_dir, "attacks-before").len(), 4, "pgd, fraudster and two sweep points");

    let out = dir.join("killed");
    child_run(CHILD, &file, &out, false, Some("attacks-before:4:end"));
    let before = units(&out, "attacks-before");
    assert_eq!(before.len(), 4, "{:?}", before.iter().map(|u| &u.0).collect::<Vec<_>>());
    assert!(!out.join("phases/attacks-after").exists(), "killed before hardening");
    let pgd_seconds = stored_seconds(&out, "attacks-before", "pgd");

    child_run(CHILD, &file, &out, true, Some("attacks-after:1:end"));
    assert_eq!(units(&out, "attacks-before"), before, "the before attacks were not run again");
    let after = units(&out, "attacks-after");
    assert_eq!(after.len(), 1, "killed after the first after-attack");

    child_run(CHILD, &file, &out, true, None);
    assert_eq!(units(&out, "attacks-before"), before, "the before attacks were not run again");
    let (name, first) = &after[0];
    let now = units(&out, "attacks-after");
    assert_eq!(now.iter().find(|u| &u.0 == name).map(|u| &u.1), Some(first), "{name} was not run again");
    assert_eq!(now.len(), 4);
    assert_eq!(seconds(&out, "pgd", "before"), pgd_seconds, "pgd (before) is the first process's");
    assert_eq!(run_metrics(&out), want, "resumed, the metrics differ from the uninterrupted run's");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A finished run resumed with one attack's params edited runs that attack again, in both
/// phases, and reads everything else back; the metrics are those of a run started with the
/// edited pipeline. A changed `[evaluate] examples` runs every unit again.
#[test]
fn an_edited_attack_runs_again_and_only_it() {
    let dir = scratch("phases-edit");
    let file = fraud_small("phases-edit", |s| s);
    let out = dir.join("run");
    child_run(CHILD, &file, &out, false, None);
    let (before, after) = (units(&out, "attacks-before"), units(&out, "attacks-after"));

    let edit = |s: String| {
        let e = s.replace("params = { budget = 3.0 }", "params = { budget = 2.0 }");
        assert_ne!(e, s, "fraud-small's fraudster changed: update this test");
        e
    };
    // The same file, edited: a resume compares it with the run's saved config.
    std::fs::write(&file, edit(std::fs::read_to_string(&file).unwrap())).unwrap();
    child_run(CHILD, &file, &out, true, None);
    let edited_file = fraud_small("phases-edit-fresh", edit);
    let fresh = dir.join("fresh");
    child_run(CHILD, &edited_file, &fresh, false, None);
    assert_eq!(run_metrics(&out), run_metrics(&fresh), "resumed with the edit vs started with it");
    for (phase, old) in [("attacks-before", &before), ("attacks-after", &after)] {
        let now = units(&out, phase);
        for ((name, was), (_, is)) in old.iter().zip(&now) {
            if name.starts_with("fraudster") {
                assert_ne!(was.0, is.0, "{phase}/{name}: the edited attack runs again");
            } else {
                assert_eq!(was, is, "{phase}/{name}: untouched by the edit, read back");
            }
        }
    }

    // Fewer examples evaluated: no unit's result holds for that.
    let text = std::fs::read_to_string(&file).unwrap();
    let fewer = text.replacen("[[evaluate.sweep]]", "[evaluate]\nexamples = 120\n\n[[evaluate.sweep]]", 1);
    assert_ne!(fewer, text);
    std::fs::write(&file, &fewer).unwrap();
    let stale = units(&out, "attacks-before");
    child_run(CHILD, &file, &out, true, None);
    for ((name, was), (_, is)) in stale.iter().zip(&units(&out, "attacks-before")) {
        assert_ne!(was.0, is.0, "{name}: [evaluate] examples changed, so it runs again");
    }
    let fresh_fewer = dir.join("fresh-fewer");
    child_run(CHILD, &pipeline_file("phases-edit-fewer", &fewer), &fresh_fewer, false, None);
    assert_eq!(run_metrics(&out), run_metrics(&fresh_fewer));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A unit file edited by hand (a number changed, the JSON still valid) or cut short is not
/// used: it is run again and rewritten, and the metrics are the true ones.
#[test]
fn a_damaged_unit_file_is_caught_and_run_again() {
    let dir = scratch("phases-damaged");
    let file = fraud_small("phases-damaged", |s| s);
    let out = dir.join("run");
    child_run(CHILD, &file, &out, false, None);
    let want = run_metrics(&out);
    let phase = out.join("phases/attacks-before");
    let pgd = phase.join("pgd.json");
    let original = std::fs::read_to_string(&pgd).unwrap();
    let successes = want["attacks"][0]["successes"].as_u64().unwrap();
    assert_eq!(want["attacks"][0]["id"], "pgd");
    let needle = format!("\"successes\": {successes},");
    assert!(original.contains(&needle), "{original}");
    std::fs::write(&pgd, original.replacen(&needle, &format!("\"successes\": {},", successes + 7), 1))
        .unwrap();
    let fraudster = phase.join("fraudster.json");
    let bytes = std::fs::read(&fraudster).unwrap();
    std::fs::write(&fraudster, &bytes[..bytes.len() / 2]).unwrap();
    let sweep = units(&out, "attacks-before").into_iter().find(|u| u.0.contains("sweep")).unwrap();

    child_run(CHILD, &file, &out, true, None);
    assert_eq!(run_metrics(&out), want, "the edited number did not reach the metrics");
    let now = read_json(&pgd);
    assert_eq!(now["result"]["metrics"]["successes"], successes, "rewritten with the true result");
    assert!(read_json(&fraudster)["result"]["metrics"]["attacked"].as_u64().is_some(), "rewritten whole");
    let sweep_now = units(&out, "attacks-before").into_iter().find(|u| u.0 == sweep.0).unwrap();
    assert_eq!(sweep_now, sweep, "an intact unit is still read back");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[tradeoff]`: each point's validation measurements are units too. Killed after the second
/// point was measured, the resumed run reads both points' measurements back (their
/// checkpoints give the models, their files the numbers) and ends with the uninterrupted
/// run's metrics.
#[test]
fn tradeoff_point_measurements_are_read_back() {
    let file = repo().join("pipelines/fraud-small-tradeoff.toml");
    let dir = scratch("phases-tradeoff");
    let whole = dir.join("whole");
    child_run(CHILD, &file, &whole, false, None);
    let want = run_metrics(&whole);
    let out = dir.join("killed");
    child_run(CHILD, &file, &out, false, Some("tradeoff-p1:2:end"));
    let (p0, p1) = (units(&out, "tradeoff-p0"), units(&out, "tradeoff-p1"));
    assert_eq!((p0.len(), p1.len()), (2, 2), "pgd and fraudster on validation at each point");
    assert!(!out.join("phases/tradeoff-p2").exists());
    child_run(CHILD, &file, &out, true, None);
    assert_eq!(units(&out, "tradeoff-p0"), p0, "point 0's measurements were not run again");
    assert_eq!(units(&out, "tradeoff-p1"), p1, "point 1's measurements were not run again");
    assert_eq!(run_metrics(&out), want);
    let _ = std::fs::remove_dir_all(&dir);
}
