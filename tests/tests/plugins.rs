//! The plugin boundary from the engine's side: a third-party plugin builds and loads, and
//! every way a plugin can be broken is an error that names it, never a crash.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_core::plugin_host::{Plugin, SearchPath};
use tempered_tests::{pipeline_file, read_json, repo, repo_pipeline, scratch};

/// The folder cargo builds this test's dependencies (and their .so files) into.
fn deps_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_owned()
}

fn lib(name: &str) -> PathBuf {
    let file = format!("{}{name}.{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_EXTENSION);
    let p = deps_dir().join(&file);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// fraud-small with its attacks replaced by `attacks` (TOML) and no hardening.
fn pipeline_with(name: &str, attacks: &str) -> Pipeline {
    let base = repo_pipeline("fraud-small.toml");
    let head = base.split("[[attack]]").next().unwrap();
    let src = format!("{head}{attacks}\n[harden]\nenabled = false\n");
    Pipeline::load(&pipeline_file(name, &src)).expect("valid pipeline")
}

fn run(p: &Pipeline, name: &str) -> Result<engine::Finished, tempered_core::Error> {
    engine::run(p, &RunOptions { out: Some(scratch(name).join("run")), resume: false })
}

#[test]
fn the_out_of_tree_example_plugin_builds_loads_and_attacks() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "tempered-example-jitter"])
        .current_dir(repo())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building examples/plugin-jitter failed");
    let so = repo().join("target/debug").join(format!(
        "{}tempered_example_jitter.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    ));
    let attacks = format!(
        "[[attack]]\nplugin = \"jitter\"\npath = \"{}\"\nattack = \"jitter\"\nclasses = [1]\nparams = {{ epsilon = 1.0, tries = 4 }}\n",
        so.display()
    );
    let finished = run(&pipeline_with("jitter", &attacks), "jitter").expect("the example plugin runs");
    let a = &finished.metrics.attacks[0];
    assert_eq!((a.plugin.as_str(), a.attack.as_str()), ("jitter", "jitter"));
    assert_eq!(a.constraint_violations, 0);
    assert_eq!(a.mean_queries, 4.0, "one predict per try, counted by the host");
}

fn misbehaving(attack: &str, on_error: &str) -> String {
    format!(
        "[[attack]]\nplugin = \"fixture-misbehaving\"\npath = \"{}\"\nattack = \"{attack}\"\non_error = \"{on_error}\"\n",
        lib("tempered_fixture_misbehaving").display()
    )
}

fn run_error(attack: &str) -> String {
    let p = pipeline_with(&format!("bad-{attack}"), &misbehaving(attack, "fail"));
    run(&p, &format!("bad-{attack}")).expect_err("the run fails cleanly").to_string()
}

#[test]
fn a_panicking_plugin_is_an_error_naming_it() {
    let e = run_error("panic");
    assert!(e.starts_with("plugin `fixture-misbehaving`: attack `panic`:"), "{e}");
    assert!(e.contains("this attack always panics") && e.contains("panicked"), "{e}");
}

#[test]
fn a_wrong_output_shape_is_an_error_naming_the_plugin() {
    let e = run_error("wrong-shape");
    assert!(e.starts_with("plugin `fixture-misbehaving`: attack `wrong-shape`: returned"), "{e}");
    assert!(e.contains("expected"), "{e}");
}

#[test]
fn non_finite_output_and_plugin_errors_are_reported() {
    assert!(run_error("non-finite").contains("non-finite value"));
    assert!(run_error("fail").contains("out of cheese"));
}

#[test]
fn on_error_skip_leaves_the_attack_out_and_finishes_the_run() {
    let good = "[[attack]]\nplugin = \"tabular\"\nattack = \"pgd\"\nclasses = [1]\nparams = { epsilon = 0.5, steps = 2 }\n";
    let attacks = format!("{}\n{good}", misbehaving("panic", "skip"));
    let finished = run(&pipeline_with("skip", &attacks), "skip").expect("skipping keeps the run alive");
    let ids: Vec<&str> = finished.metrics.attacks.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["pgd"]);
    assert!(read_json(&finished.dir.join("metrics.json"))["attacks"].is_array());
}

#[test]
fn a_plugin_with_another_abi_major_is_refused_before_anything_else_is_read() {
    let e = Plugin::load(&lib("tempered_fixture_future_abi")).expect_err("refused").to_string();
    assert!(e.contains("ABI version 2.0 is not supported: this engine speaks 1.0"), "{e}");
}

#[test]
fn a_library_without_the_entry_symbol_is_not_a_plugin() {
    // Any shared library will do; the C runtime's is on every machine that runs cargo.
    let dir = scratch("nosymbol");
    let c = dir.join("empty.c");
    std::fs::write(&c, "int tempered_something_else(void) { return 1; }\n").unwrap();
    let so = dir.join("libempty.so");
    let ok = Command::new("cc").arg("-shared").arg("-fPIC").arg("-o").arg(&so).arg(&c).status();
    if !ok.is_ok_and(|s| s.success()) {
        panic!("cc is needed to build the fixture library");
    }
    let e = Plugin::load(&so).expect_err("refused").to_string();
    assert!(e.contains("no `tempered_plugin_v1` symbol"), "{e}");
    let garbage = dir.join("libgarbage.so");
    std::fs::write(&garbage, b"not a library").unwrap();
    let e = Plugin::load(&garbage).expect_err("refused").to_string();
    assert!(e.contains("cannot load"), "{e}");
}

#[test]
fn a_missing_plugin_names_every_place_it_looked() {
    let search = SearchPath { dirs: vec![PathBuf::from("/nonexistent/a"), PathBuf::from("/nonexistent/b")] };
    let e = search.find("nope").expect_err("not found").to_string();
    assert!(e.contains("plugin `nope`: not found"), "{e}");
    assert!(e.contains("/nonexistent/a") && e.contains("/nonexistent/b"), "{e}");
    assert!(e.contains("libtempered_nope.so"), "{e}");
}

#[test]
fn the_first_party_plugin_is_found_by_name_with_its_attacks() {
    let p = SearchPath::new(&[]).find("tabular").expect("built as a dev-dependency");
    let names: Vec<&str> = p.attacks.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["pgd", "fraudster", "lowprofool"]);
    assert!(Path::new(&p.path).is_file());
    let e = p.create("pgd", &serde_json::json!({ "epsilon": "big" })).err().unwrap().to_string();
    assert!(e.starts_with("plugin `tabular`: attack `pgd`:"), "bad params are the plugin's error: {e}");
}
