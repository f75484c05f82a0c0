//! Helpers that run the engine, shared by the end-to-end test files that declare
//! `mod common;` (the `tempered-tests` library itself does not link the engine).

#![allow(dead_code)]

use std::path::Path;

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{pipeline_file, repo, repo_pipeline, scratch};

/// Runs the repository's `pipelines/<name>` into `out`; it must succeed.
pub fn run_repo_pipeline(name: &str, out: &Path) -> engine::Finished {
    let p = Pipeline::load(&repo().join("pipelines").join(name)).expect("valid pipeline");
    engine::run(&p, &RunOptions { out: Some(out.to_owned()), resume: false }).expect("run succeeds")
}

/// `Pipeline::load`'s error for `src`, without the file name it starts with.
pub fn load_err(name: &str, src: &str) -> String {
    let file = pipeline_file(name, src);
    let e = Pipeline::load(&file).expect_err("refused").to_string();
    let shown = file.display().to_string();
    assert!(e.starts_with(&shown), "the error names the file: {e}");
    e[shown.len()..].to_owned()
}

/// The error a run of the repository's `pipeline` is refused with when it reads `data`,
/// written to a scratch folder as `bad.csv`: `point` edits the pipeline's text to read that
/// path. The error must name the file.
pub fn refused_on_data(
    name: &str,
    pipeline: &str,
    data: &[u8],
    point: impl Fn(String, &str) -> String,
) -> String {
    let dir = scratch(name);
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, data).unwrap();
    let src = point(repo_pipeline(pipeline), &csv.display().to_string());
    let p = Pipeline::load(&pipeline_file(name, &src)).unwrap();
    let e = engine::run(&p, &RunOptions { out: Some(dir.join("run")), resume: false }).expect_err("refused");
    let e = e.to_string();
    assert!(e.contains("bad.csv"), "error names the file: {e}");
    e
}
