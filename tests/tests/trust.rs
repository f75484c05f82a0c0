//! Runs whose numbers must be right or visibly absent: degenerate set-ups are refused or
//! failed checks, mistakes are found before training, a resume refuses changed data and
//! accepts a corrected later phase, and a full disk corrupts nothing.

use std::path::{Path, PathBuf};

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_core::report;
use tempered_tests::{pipeline_file, read_json, repo_pipeline, scratch, without_timings};

fn fraud_small(edit: impl Fn(String) -> String) -> String {
    edit(repo_pipeline("fraud-small.toml"))
}

fn run(name: &str, src: &str, out: &Path, resume: bool) -> tempered_core::Result<engine::Finished> {
    let p = Pipeline::load(&pipeline_file(name, src)).expect("valid pipeline");
    engine::run(&p, &RunOptions { out: Some(out.to_owned()), resume })
}

#[test]
fn an_attack_over_zero_examples_reports_no_rate_and_fails_a_check() {
    // Class 7 does not exist: nothing is attacked.
    let src = fraud_small(|s| s.replacen("classes = [1]", "classes = [7]", 1));
    let out = scratch("zero-examples").join("run");
    let finished = run("zero-examples", &src, &out, false).expect("the run itself completes");
    let m = read_json(&out.join("metrics.json"));
    let pgd = m["attacks"].as_array().unwrap().iter().find(|a| a["id"] == "pgd").unwrap();
    assert_eq!(pgd["attacked"], 0);
    assert!(pgd["success_rate"].is_null(), "no rate over zero examples: {pgd}");
    assert!(pgd["mean_queries"].is_null(), "{pgd}");
    let failed = report::failed(&finished.metrics);
    assert!(failed.iter().any(|f| f.contains("`pgd` (before) had no example to attack")), "{failed:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("❌ **Failed:**"), "the report says so at the top");
}

/// A plain MLP pipeline, not hardened, on `<dir>/<name>.csv`: `rows` rows of two feature
/// columns and `Class`, which is `class(i)` in row `i`.
fn small_table_pipeline(dir: &Path, name: &str, rows: usize, class: impl Fn(usize) -> usize) -> String {
    let csv = dir.join(format!("{name}.csv"));
    let body: String = (0..rows).map(|i| format!("{},{},{}\n", i % 7, i % 5, class(i))).collect();
    std::fs::write(&csv, format!("a,b,Class\n{body}")).unwrap();
    format!(
        "[pipeline]\nname = \"{name}\"\nmodality = \"tabular\"\n[data]\npath = \"{}\"\nlabel = \"Class\"\n\
         [model]\nkind = \"mlp\"\n[harden]\nenabled = false\n",
        csv.display()
    )
}

#[test]
fn a_one_class_training_split_is_refused_before_training() {
    let dir = scratch("one-class");
    let src = small_table_pipeline(&dir, "one-class", 60, |_| 0);
    let out = dir.join("run");
    let err = run("one-class", &src, &out, false).expect_err("one class cannot be learned");
    let msg = err.to_string();
    assert!(msg.contains("class"), "{msg}");
    assert!(tempered_tests::nothing_trained(&out), "nothing was trained");
}

#[test]
fn a_misspelt_sweep_param_fails_before_any_training() {
    let src = fraud_small(|s| s.replace("param = \"epsilon\"", "param = \"epsilom\""));
    let out = scratch("sweep-typo").join("run");
    let err = run("sweep-typo", &src, &out, false).expect_err("the plugin refuses the param");
    let msg = err.to_string();
    assert!(msg.contains("[[evaluate.sweep]]") && msg.contains("epsilom"), "{msg}");
    let trained = std::fs::read_dir(out.join("checkpoints")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(trained, 0, "no training time was spent");
}

#[test]
fn a_no_op_hardening_attack_is_never_a_green_report() {
    let src = fraud_small(|s| {
        s.replace("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nparams = { epsilon = 0.0 }")
    });
    let out = scratch("no-op-harden").join("run");
    match run("no-op-harden", &src, &out, false) {
        // Refused up front is as good as a failed check.
        Err(e) => assert!(e.to_string().contains("epsilon"), "{e}"),
        Ok(finished) => {
            let failed = report::failed(&finished.metrics);
            assert!(failed.iter().any(|f| f.contains("changed none of the")), "{failed:?}");
        }
    }
}

#[test]
fn a_too_small_vocabulary_is_refused() {
    // The text plugin's word lists are relative to the repository, like the other text tests.
    std::env::set_current_dir(tempered_tests::repo()).unwrap();
    let src =
        repo_pipeline("sentiment-small.toml").replace("max_words = 64", "max_words = 64\nmin_count = 100000");
    let out = scratch("tiny-vocab").join("run");
    let err = run("tiny-vocab", &src, &out, false).expect_err("a two-word vocabulary is no model");
    let msg = err.to_string();
    assert!(msg.contains("min_count = 100000") && msg.contains("vocabulary"), "{msg}");
}

/// A copy of the credit-card rows in the scratch pipeline's own `data/`, to edit.
fn own_data(name: &str, src: &str) -> (PathBuf, PathBuf) {
    let file = pipeline_file(name, src);
    let root = file.parent().unwrap().parent().unwrap().to_owned();
    std::fs::remove_file(root.join("data")).unwrap();
    let csv = root.join("data/creditcard-ulb/creditcard_ulb_sample.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::copy(tempered_tests::repo().join("data/creditcard-ulb/creditcard_ulb_sample.csv"), &csv)
        .unwrap();
    (file, csv)
}

#[test]
fn resume_refuses_changed_data_and_clean_settings_and_accepts_a_corrected_later_phase() {
    let src = fraud_small(|s| s);
    let (file, csv) = own_data("resume-changes", &src);
    let out = scratch("resume-changes").join("run");
    let p = Pipeline::load(&file).unwrap();
    let first = engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).unwrap();
    let first = without_timings(serde_json::to_value(&first.metrics).unwrap());
    let resume = |src: &str| {
        std::fs::write(&file, src).unwrap();
        let p = Pipeline::load(&file).unwrap();
        engine::run(&p, &RunOptions { out: Some(out.clone()), resume: true })
    };

    // The clean model's own settings: refused, naming the section.
    let err = resume(&src.replace("lr = 3e-3", "lr = 1e-3")).expect_err("[train] changed").to_string();
    assert!(err.contains("[train]"), "{err}");

    // A later phase, corrected: accepted, and the unchanged phases give the same numbers.
    let evaluate = src.replace("values = [0.25, 1.0]", "values = [0.25, 1.0, 2.0]");
    let m = resume(&evaluate).expect("a new sweep point needs no retraining");
    assert_eq!(m.metrics.sweeps.len(), 6);
    let again = without_timings(serde_json::to_value(&m.metrics).unwrap());
    assert_eq!(again["clean"], first["clean"]);
    assert_eq!(again["attacks"], first["attacks"]);

    // New hardening settings: the clean model is kept, hardening is redone.
    let harden = evaluate.replace("epochs = 2\npatience = 0", "epochs = 1\npatience = 0");
    let m = resume(&harden).expect("hardening is redone");
    let redone = without_timings(serde_json::to_value(&m.metrics).unwrap());
    assert_eq!(redone["clean"]["before"], first["clean"]["before"]);

    // Relabelled data: refused, naming the file.
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.replacen(",0\n", ",1\n", 3)).unwrap();
    let err = resume(&harden).expect_err("the data changed").to_string();
    assert!(err.contains("the data changed") && err.contains("creditcard_ulb_sample.csv"), "{err}");
}

/// Mounts a tmpfs of `kib` KiB at `dir`; `None` (with a message) where that is not allowed.
fn tmpfs(dir: &Path, kib: usize) -> Option<Tmpfs> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs here (the disk-full test needs root)");
        return None;
    }
    Some(Tmpfs(dir.to_owned()))
}

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

/// Every file the run left is whole: no temporary file, JSON that parses, PNGs that end.
fn assert_whole(dir: &Path) {
    for f in files_under(dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "a temporary file was left behind: {}", f.display());
        let bytes = std::fs::read(&f).unwrap();
        if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", f.display()));
        }
        if name.ends_with(".png") {
            assert!(bytes.ends_with(&[0xAE, 0x42, 0x60, 0x82]), "{} is a truncated PNG", f.display());
        }
    }
}

#[test]
fn a_full_disk_corrupts_nothing_and_the_run_resumes_after_space_is_freed() {
    let src = fraud_small(|s| s);
    let reference_out = scratch("disk-full-reference").join("run");
    run("disk-full-reference", &src, &reference_out, false).unwrap();
    let reference = without_timings(read_json(&reference_out.join("metrics.json")));
    let total: u64 = files_under(&reference_out).iter().map(|f| f.metadata().unwrap().len()).sum();

    let mount = scratch("disk-full").join("mnt");
    let Some(_fs) = tmpfs(&mount, 4096) else { return };
    // Leave room for a growing share of the run's files: each run fails at another write.
    for (k, share) in [0.05, 0.3, 0.6, 0.9].into_iter().enumerate() {
        let free = (total as f64 * share) as usize;
        let filler = mount.join("filler");
        let out = mount.join(format!("run{k}"));
        let avail = 4096 * 1024
            - files_under(&mount).iter().map(|f| f.metadata().unwrap().len() as usize).sum::<usize>();
        std::fs::write(&filler, vec![0u8; avail.saturating_sub(free + 64 * 1024)]).unwrap();
        let result = run(&format!("disk-full-{k}"), &src, &out, false);
        assert_whole(&out);
        if let Err(e) = &result {
            let msg = e.to_string();
            assert!(msg.contains(&mount.display().to_string()), "the error names the file: {msg}");
        }
        std::fs::remove_file(&filler).unwrap();
        if out.join("config.toml").exists() {
            run(&format!("disk-full-{k}"), &src, &out, true).expect("resumes once there is space");
            let m = without_timings(read_json(&out.join("metrics.json")));
            assert_eq!(m, reference, "a resumed run gives the uninterrupted run's numbers");
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn a_run_evaluated_on_a_handful_of_rows_is_a_failed_check() {
    let dir = scratch("tiny-table");
    let src = small_table_pipeline(&dir, "tiny", 12, |i| usize::from(i % 3 == 0));
    let out = dir.join("run");
    match run("tiny-table", &src, &out, false) {
        Err(e) => assert!(e.to_string().contains("tiny.csv"), "{e}"),
        Ok(finished) => {
            let failed = report::failed(&finished.metrics);
            assert!(failed.iter().any(|f| f.contains("fewer than 10")), "{failed:?}");
        }
    }
}
