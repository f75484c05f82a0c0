//! docs/writing-plugins.md, executed: every file its walk-throughs give (a bold path
//! followed by a code block) is written out as a reader would, next to a `tempered`
//! checkout (a link to this repository); each plugin crate is built and its own tests
//! run with cargo, as the guide says; then `tempered validate` and `tempered run` run
//! each walk-through's pipeline, and the report must show every declared budget checked,
//! with no violation. A guide that drifts from the engine fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// `(path, contents)` of every file the guide spells out: a line `**`path`**` (text may
/// follow), then the next fenced code block.
fn guide_files() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("docs/writing-plugins.md")).unwrap();
    let mut files = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("**`") else { continue };
        let Some((path, _)) = rest.split_once("`**") else { continue };
        let mut body = String::new();
        let mut inside = false;
        for l in lines.by_ref() {
            if l.starts_with("```") {
                if inside {
                    break;
                }
                inside = true;
            } else if inside {
                body.push_str(l);
                body.push('\n');
            }
        }
        files.push((path.to_owned(), body));
    }
    files
}

/// The target folder this test binary was built in (`<target>/debug/deps/guide-…`), which
/// honours CARGO_TARGET_DIR.
fn workspace_target() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("<target>/<profile>/deps/<test>").to_owned()
}

/// On some CI machines `/dev/null` is a plain file that earlier build steps wrote into, and
/// cargo hands it to `rustc -` as an empty program when it first asks the compiler about
/// the target: the build then fails on whatever text is in it. Building in the workspace's
/// own target folder reuses the answer the outer `cargo test` cached there; this note says
/// what happened if it still goes wrong.
fn dev_null_note() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata("/dev/null") {
            Ok(m) if !m.file_type().is_char_device() => {
                return format!(
                    "\nnote: /dev/null on this machine is not a device ({} bytes in it)",
                    m.len()
                );
            }
            _ => {}
        }
    }
    String::new()
}

fn cargo(args: &[&str], dir: &Path, target: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "`cargo {}` in {} failed:\n{}{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        dev_null_note()
    );
}

fn tempered(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tempered")).args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "`tempered {}` failed:\n{text}", args.join(" "));
    text
}

#[test]
fn the_plugin_guide_builds_tests_and_runs_as_written() {
    let root = std::env::temp_dir().join(format!("tempered-guide-{}", std::process::id()));
    // Kept for a look when something fails; removed on success.
    let _ = std::fs::remove_dir_all(&root);
    let work = root.join("my-attacks");
    std::fs::create_dir_all(&work).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(repo(), root.join("tempered")).unwrap();

    let files = guide_files();
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for want in ["nudge/src/lib.rs", "typo/src/lib.rs", "hum/src/lib.rs", "pipelines/hum.toml"] {
        assert!(names.contains(&want), "the guide gives {want}: {names:?}");
    }
    for (path, body) in &files {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, body).unwrap();
    }

    // The workspace's own target folder: the three crates share their dependencies, and
    // cargo reuses what it already learnt about the compiler (see `dev_null_note`).
    let target = workspace_target();
    let lock = repo().join("Cargo.lock");
    for (krate, pipeline, budgets) in [
        ("nudge", "nudge", &["L∞ ≤ 0.5 std: 0 violations", "≤ 10 queries: 0 violations"][..]),
        (
            "typo",
            "typo",
            &[
                "one-for-one swaps of ≤ 20 % of words: 0 violations",
                "no stop word swapped (english.txt): 0 violations",
            ][..],
        ),
        ("hum", "hum", &["SNR ≥ 10 dB: 0 violations", "≤ 4 queries: 0 violations"][..]),
    ] {
        let dir = work.join(krate);
        // The workspace's versions of serde and friends: no registry lookup, same code.
        std::fs::copy(&lock, dir.join("Cargo.lock")).unwrap();
        cargo(&["build", "--release", "--offline"], &dir, &target);
        cargo(&["test", "--offline"], &dir, &target);
        // Where the guide's pipelines expect the library: the crate's own target folder.
        let so = format!("{}{krate}.{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_EXTENSION);
        std::fs::create_dir_all(dir.join("target/release")).unwrap();
        std::fs::copy(target.join("release").join(&so), dir.join("target/release").join(&so)).unwrap();

        let file = format!("pipelines/{pipeline}.toml");
        let said = tempered(&["validate", &file], &work);
        assert!(said.contains(": ok ("), "{said}");
        let out = format!("runs/{pipeline}");
        tempered(&["run", &file, "--out", &out], &work);
        let report = std::fs::read_to_string(work.join(&out).join("report.md")).unwrap();
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("- `{krate}` ")))
            .unwrap_or_else(|| panic!("{krate}: no threat-model line in\n{report}"));
        for b in budgets {
            assert!(line.contains(b), "{krate}: `{b}` missing from `{line}`");
        }
        assert!(!report.contains("not verified by the host"), "{krate}:\n{report}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
