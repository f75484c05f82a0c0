//! The full shipped `sentiment.toml` and `speech.toml` against their golden numbers. They take
//! minutes, so they are not part of `cargo test`: `just golden-full` runs them (release
//! profile), after any change meant to keep every number.

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{assert_golden, read_json, repo, scratch};

fn golden(name: &str) {
    // The text plugin's word lists are relative to the repository.
    std::env::set_current_dir(repo()).unwrap();
    let p = Pipeline::load(&repo().join(format!("pipelines/{name}.toml"))).expect("valid pipeline");
    let out = scratch(&format!("{name}-golden")).join("run");
    engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).expect("run succeeds");
    assert_golden(name, &read_json(&out.join("metrics.json")));
}

#[test]
#[ignore = "minutes: run with `just golden-full`"]
fn sentiment_toml_gives_its_golden_numbers() {
    golden("sentiment");
}

#[test]
#[ignore = "minutes: run with `just golden-full`"]
fn speech_toml_gives_its_golden_numbers() {
    golden("speech");
}
