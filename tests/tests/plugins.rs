//! The plugin boundary from the engine's side: a third-party plugin builds and loads, and
//! every way a plugin can be broken is an error that names it, never a crash.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_core::plugin_host::{FolderState, Plugin, SearchPath, folder_state};
use tempered_tests::{built_lib, pipeline_file, read_json, repo, repo_pipeline, scratch};

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
    // Where cargo put it: this test's own profile folder (`<target>/debug`), which also
    // honours CARGO_TARGET_DIR.
    let profile_dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_owned();
    let so = profile_dir.join(format!(
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
        built_lib("tempered_fixture_misbehaving").display()
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
    let e = Plugin::load(&built_lib("tempered_fixture_future_abi")).expect_err("refused").to_string();
    assert!(e.contains("ABI version 2.0 is not supported: this engine speaks 1.1"), "{e}");
}

#[test]
fn a_plugin_built_for_a_newer_minor_is_refused_with_what_to_do() {
    let e = Plugin::load(&built_lib("tempered_fixture_future_minor")).expect_err("refused").to_string();
    assert!(e.contains("built for ABI 1.2, newer than this engine's 1.1"), "{e}");
    assert!(
        e.contains("Update the engine, or build the plugin against a tempered-plugin that speaks ABI 1.1")
    );
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
    assert_eq!(names, ["pgd", "fraudster", "lowprofool", "moeva"]);
    assert!(Path::new(&p.path).is_file());
    let e = p.create("pgd", &serde_json::json!({ "epsilon": "big" }), &repo()).err().unwrap().to_string();
    assert!(e.starts_with("plugin `tabular`: attack `pgd`:"), "bad params are the plugin's error: {e}");
}

/// Runs `f` on another thread and fails the test if it takes a minute: opening a FIFO named
/// like a library would block forever.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what} blocked for a minute"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// The first `keep(len)` bytes of the first-party tabular plugin, written as `dir/file`.
fn truncated_tabular(dir: &Path, file: &str, keep: impl Fn(usize) -> usize) -> (PathBuf, usize) {
    let whole = std::fs::read(built_lib("tempered_tabular")).unwrap();
    let kept = keep(whole.len());
    let cut = dir.join(file);
    std::fs::write(&cut, &whole[..kept]).unwrap();
    (cut, kept)
}

/// A FIFO at `path`, or `false` (with a message) where `mkfifo` is not available.
fn mkfifo(path: &Path) -> bool {
    let made = Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success());
    if !made {
        eprintln!("mkfifo is not available: the FIFO case is skipped");
    }
    made
}

#[test]
fn a_truncated_library_is_refused_before_the_loader_maps_it() {
    // The first half: in a debug build, most of the file is debug information, and what is
    // cut off is the section header table; in a release build, segments too.
    let dir = scratch("truncated");
    let (cut, half) = truncated_tabular(&dir, "libtempered_tabular.so", |len| len / 2);
    let e = Plugin::load(&cut).expect_err("refused").to_string();
    assert!(e.starts_with(&format!("plugin `{}`: cannot load: truncated: ", cut.display())), "{e}");
    assert!(e.ends_with(&format!(", the file has {half} bytes")), "{e}");
    // Found by name (`tempered run` and `validate` without `path`), it is the same error.
    let e = SearchPath { dirs: vec![dir] }.find("tabular").expect_err("refused").to_string();
    assert!(e.contains(&cut.display().to_string()) && e.contains("cannot load: truncated: "), "{e}");

    // The first 4 KiB hold the ELF and program headers but end inside the first loadable
    // segment. Without the check, the loader maps the segments past the end of the file and
    // the first page it touches there kills this test binary with SIGBUS.
    let (cut, kept) = truncated_tabular(&scratch("truncated"), "libtempered_tabular.so", |_| 4096);
    let e = Plugin::load(&cut).expect_err("refused").to_string();
    assert!(e.starts_with(&format!("plugin `{}`: cannot load: truncated: segment ", cut.display())), "{e}");
    assert!(e.ends_with(&format!(", the file has {kept} bytes")), "{e}");
}

#[test]
fn an_empty_library_reports_the_dynamic_loaders_reason() {
    let so = scratch("empty").join("libfoo.so");
    std::fs::write(&so, b"").unwrap();
    let e = Plugin::load(&so).expect_err("refused").to_string();
    assert!(e.starts_with(&format!("plugin `{}`: cannot load: dlopen failed: ", so.display())), "{e}");
    // The loader's own words (dlerror) follow libloading's "dlopen failed".
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(e.ends_with("file too short"), "glibc's reason: {e}");
    }
}

#[test]
fn what_is_not_a_regular_file_is_refused_without_being_opened() {
    let dir = scratch("notafile");
    let folder = dir.join("libdir.so");
    std::fs::create_dir(&folder).unwrap();
    let e = Plugin::load(&folder).expect_err("refused").to_string();
    assert!(e.ends_with("cannot load: not a regular file: it is a directory"), "{e}");
    let fifo = dir.join("libfifo.so");
    if mkfifo(&fifo) {
        let f = fifo.clone();
        let e = within_a_minute("loading a FIFO", move || {
            Plugin::load(&f).map(|_| ()).map_err(|e| e.to_string())
        });
        let e = e.expect_err("refused");
        assert!(e.starts_with(&format!("plugin `{}`: ", fifo.display())), "{e}");
        assert!(e.ends_with("cannot load: not a regular file: it is a FIFO (named pipe)"), "{e}");
    }
}

#[test]
fn discovery_lists_the_good_library_and_says_why_each_other_one_is_unusable() {
    let dir = scratch("discover");
    truncated_tabular(&dir, "libtruncated.so", |len| len / 2);
    std::fs::write(dir.join("libfoo.so"), b"").unwrap();
    let fifo = mkfifo(&dir.join("libfifo.so"));
    std::fs::create_dir(dir.join("libdir.so")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(built_lib("tempered_tabular"), dir.join("libtempered_tabular.so")).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(built_lib("tempered_tabular"), dir.join("libtempered_tabular.so")).unwrap();

    let search = SearchPath { dirs: vec![dir] };
    let found = within_a_minute("discovery", move || {
        let listing = search.discover().into_iter().map(|(path, loaded)| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            (file, loaded.map(|p| p.name).map_err(|e| e.to_string()))
        });
        listing.collect::<Vec<_>>()
    });
    let get = |file: &str| {
        let hit = found.iter().find(|(f, _)| f == file);
        hit.unwrap_or_else(|| panic!("{file} is listed: {found:?}")).1.clone()
    };
    assert_eq!(get("libtempered_tabular.so"), Ok("tabular".to_owned()));
    let e = get("libtruncated.so").expect_err("unusable");
    assert!(e.contains("libtruncated.so`: cannot load: truncated: "), "{e}");
    let e = get("libfoo.so").expect_err("unusable");
    assert!(e.contains("libfoo.so`: cannot load: dlopen failed: "), "{e}");
    let mut expected = vec!["libfoo.so", "libtempered_tabular.so", "libtruncated.so"];
    if fifo {
        let e = get("libfifo.so").expect_err("unusable");
        assert!(
            e.ends_with("libfifo.so`: cannot load: not a regular file: it is a FIFO (named pipe)"),
            "{e}"
        );
        expected.push("libfifo.so");
    }
    // A folder named like a library is not one.
    let mut listed: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected);
}

/// As a user who cannot look into `locked`: it and a folder inside it are unreadable, not
/// missing, and a plugin not found there says so.
#[cfg(unix)]
fn check_unreadable(locked: &Path) {
    assert!(std::fs::read_dir(locked).is_err(), "{} can be read", locked.display());
    let inner = locked.join("inner");
    for d in [locked, &inner] {
        let state = folder_state(d);
        assert!(matches!(state, FolderState::Unreadable(_)), "{}: {state}", d.display());
        assert!(state.to_string().starts_with("cannot read it: Permission denied"), "{state}");
    }
    let e = SearchPath { dirs: vec![inner.clone()] }.find("nope").expect_err("not found").to_string();
    assert!(e.contains(&format!("{}  (cannot read it: Permission denied", inner.display())), "{e}");
}

#[cfg(unix)]
#[test]
fn an_unreadable_plugin_folder_is_not_a_missing_one() {
    use std::os::unix::fs::PermissionsExt;
    const NAME: &str = "an_unreadable_plugin_folder_is_not_a_missing_one";
    const LOCKED: &str = "TEMPERED_TEST_LOCKED_FOLDER";
    if let Some(locked) = std::env::var_os(LOCKED) {
        return check_unreadable(Path::new(&locked));
    }
    let dir = scratch("unreadable");
    assert!(matches!(folder_state(&dir.join("absent")), FolderState::Missing));
    assert!(matches!(folder_state(&dir), FolderState::Listable));
    let locked = dir.join("locked");
    std::fs::create_dir_all(locked.join("inner")).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    /// Unlocks the folder however the test ends, so that it can be removed.
    struct Unlock(PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }
    let _unlock = Unlock(locked.clone());
    if std::fs::read_dir(&locked).is_err() {
        return check_unreadable(&locked);
    }
    // Root reads any folder: run this test again as `nobody`, who cannot.
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(LOCKED, &locked)
        .output();
    match child {
        Ok(out) if out.status.code() == Some(0) || out.status.code() == Some(101) => {
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && text.contains("1 passed"), "as nobody:\n{text}");
        }
        Ok(out) => eprintln!(
            "cannot run as nobody (setpriv: {}): the unreadable case is skipped",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("cannot run as nobody (setpriv: {e}): the unreadable case is skipped"),
    }
}
