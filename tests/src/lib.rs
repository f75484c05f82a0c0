//! Helpers shared by the end-to-end tests: where the repository is, scratch folders, and
//! pipelines written on the fly from the repository's own files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// A fresh, empty folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tempered-test-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `src` as `<repo>/pipelines/<name>` would be read (relative paths resolve against
/// the repository) without touching the repository: the file lives in a scratch
/// `pipelines/` folder whose parent links `data` back to the real one.
pub fn pipeline_file(name: &str, src: &str) -> PathBuf {
    let root = scratch(name);
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(repo().join("data"), root.join("data")).unwrap();
    let file = root.join("pipelines").join(format!("{name}.toml"));
    std::fs::write(&file, src).unwrap();
    file
}

/// The repository's `pipelines/<name>`.
pub fn repo_pipeline(name: &str) -> String {
    std::fs::read_to_string(repo().join("pipelines").join(name)).expect("pipeline exists")
}

/// `metrics.json` without timings, which are the only numbers allowed to differ between
/// two runs with the same seed.
pub fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("seconds");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// Checks a run's numbers against `tests/golden/<name>.json`, the numbers the shipped
/// pipeline gave with its seed when the file was written: every value there must be
/// present and identical (fields added since are allowed; timings are not compared).
///
/// A change of numbers on purpose is recorded with
/// `TEMPERED_BLESS=1 cargo test -p tempered-tests`, and the diff of the golden file goes
/// into the commit that explains it.
pub fn assert_golden(name: &str, metrics: &serde_json::Value) {
    let file = repo().join("tests/golden").join(format!("{name}.json"));
    let now = without_timings(metrics.clone());
    if std::env::var_os("TEMPERED_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
        return;
    }
    let golden = read_json(&file);
    let mut diffs = Vec::new();
    golden_diff("", &golden, &now, &mut diffs);
    assert!(
        diffs.is_empty(),
        "{name}: the numbers differ from {} (TEMPERED_BLESS=1 records new ones on purpose):\n{}",
        file.display(),
        diffs.join("\n")
    );
}

fn golden_diff(at: &str, golden: &serde_json::Value, now: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (golden, now) {
        (Value::Object(g), Value::Object(n)) => {
            for (k, gv) in g {
                match n.get(k) {
                    Some(nv) => golden_diff(&format!("{at}.{k}"), gv, nv, out),
                    None => out.push(format!("{at}.{k}: missing (was {gv})")),
                }
            }
        }
        (Value::Array(g), Value::Array(n)) if g.len() == n.len() => {
            for (i, (gv, nv)) in g.iter().zip(n).enumerate() {
                golden_diff(&format!("{at}[{i}]"), gv, nv, out);
            }
        }
        _ if golden == now => {}
        _ => out.push(format!("{at}: {golden} → {now}")),
    }
}

/// Runs the test `name` of the current test binary in a child process (the binary
/// re-executed with `--exact name`), with `env` added to its environment: a process to kill
/// and restart without needing the `tempered` binary. The child test reads its
/// instructions from `env` and does nothing when they are absent.
pub fn run_test_in_child(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the test binary runs as a child")
}

/// Whether the run in `run_dir` committed no training epoch at all (no `clean*` checkpoint).
pub fn nothing_trained(run_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(run_dir.join("checkpoints")) else { return true };
    !entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("clean"))
}

/// The files a finished run must have left in `out`; the first `.png` among them must start
/// with the PNG signature.
pub fn assert_run_files(out: &Path, files: &[&str]) {
    for file in files {
        assert!(out.join(file).is_file(), "{file} missing from the run directory");
    }
    if let Some(png) = files.iter().find(|f| f.ends_with(".png")) {
        let png = std::fs::read(out.join(png)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}

/// The checks every first-party attack row of `metrics.json` passes: it ran in `plugin`,
/// the host found no constraint violation (`kept` says which), every budget it declared
/// was checked and kept, only `trained` was hardened against, and rates lie in [0, 1].
/// Returns the row's id.
pub fn assert_first_party_attack<'a>(
    a: &'a serde_json::Value,
    plugin: &str,
    trained: &str,
    kept: &str,
) -> &'a str {
    let id = a["id"].as_str().unwrap();
    assert_eq!(a["plugin"], plugin);
    assert_eq!(a["constraint_violations"], 0, "{id}: {kept}");
    let budgets = a["budgets"].as_array().unwrap_or_else(|| panic!("{id}: budgets declared"));
    assert!(!budgets.is_empty(), "{id}: a first-party attack declares its budgets");
    for b in budgets {
        assert_eq!(b["violations"], 0, "{id}: every declared budget checked and kept: {b}");
    }
    assert_eq!(a["trained_against"], id == trained, "{id}");
    for key in ["success_rate", "robust_accuracy"] {
        let v = a[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{id}.{key} = {v}");
    }
    id
}

/// Every phase of a run is timed in `metrics.json`.
pub fn assert_phases_timed(m: &serde_json::Value) {
    for phase in ["train", "attack_before", "harden", "attack_after"] {
        assert!(m["seconds"][phase].as_f64().is_some(), "seconds.{phase} missing");
    }
}

/// The shared library `name` (without prefix and extension) that cargo built, as a
/// dev-dependency of this crate, into the folder of the current test binary.
pub fn built_lib(name: &str) -> PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    let p = dir.join(format!("{}{name}.{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_EXTENSION));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// A finished run's `metrics.json` and `report.md`.
pub fn run_outputs(out: &Path) -> (serde_json::Value, String) {
    (read_json(&out.join("metrics.json")), std::fs::read_to_string(out.join("report.md")).unwrap())
}

/// The row of attack `id` in `metrics.json`.
pub fn attack_row<'a>(m: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    m["attacks"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("no {id}"))
}

/// The `metrics.json` of the run in `out`, without timings: what two runs with the same
/// seed must agree on.
pub fn run_metrics(out: &Path) -> serde_json::Value {
    without_timings(read_json(&out.join("metrics.json")))
}

/// An `[[attack]]` table for `attack` of the plugin `plugin` as cargo built it (see
/// [`built_lib`]), with the attack's name as its id, followed by `extra` TOML.
pub fn built_attack(plugin: &str, attack: &str, extra: &str) -> String {
    let so = built_lib(&format!("tempered_{}", plugin.replace('-', "_")));
    format!(
        "[[attack]]\nid = \"{attack}\"\nplugin = \"{plugin}\"\npath = \"{}\"\nattack = \"{attack}\"\n{extra}",
        so.display()
    )
}

/// Runs `run` twice, into `<scratch>/a` and `<scratch>/b`, and checks that the two runs'
/// metrics agree but for timings; returns the scratch folder for further comparisons.
pub fn assert_reproducible(name: &str, run: impl Fn(&Path)) -> PathBuf {
    let dir = scratch(name);
    run(&dir.join("a"));
    run(&dir.join("b"));
    assert_eq!(run_metrics(&dir.join("a")), run_metrics(&dir.join("b")));
    dir
}

/// The `metrics.json` of the repository's pipeline `name` run into `out`: it names the
/// pipeline and its modality, and its numbers are the golden ones ([`assert_golden`]).
pub fn golden_run_metrics(out: &Path, name: &str, modality: &str) -> serde_json::Value {
    let m = read_json(&out.join("metrics.json"));
    assert_eq!(m["pipeline"], name);
    assert_golden(name, &m);
    assert_eq!(m["modality"], modality);
    m
}

/// Makes a run abort at one point: `<phase>:<epoch>:<where>` (see `core/src/train/failpoint.rs`).
pub const FAILPOINT: &str = "TEMPERED_FAILPOINT";
const CHILD_PIPELINE: &str = "TEMPERED_TEST_CHILD_PIPELINE";
const CHILD_OUT: &str = "TEMPERED_TEST_CHILD_OUT";
const CHILD_RESUME: &str = "TEMPERED_TEST_CHILD_RESUME";

/// What a child test started by [`child_run`] is to run.
pub struct ChildRun {
    pub pipeline: PathBuf,
    pub out: PathBuf,
    pub resume: bool,
}

/// In a child test: the run its parent ([`child_run`]) asked for, with the repository root
/// as the working folder (the text attacks' word lists are relative to it); `None` in a
/// plain `cargo test`, where the child test is to do nothing.
pub fn child_args() -> Option<ChildRun> {
    let pipeline = PathBuf::from(std::env::var_os(CHILD_PIPELINE)?);
    std::env::set_current_dir(repo()).expect("cd to the repository root");
    let out = PathBuf::from(std::env::var_os(CHILD_OUT).expect("an output folder"));
    Some(ChildRun { pipeline, out, resume: std::env::var_os(CHILD_RESUME).is_some() })
}

/// Runs the pipeline file `pipeline` into `out` in a child process (the test `child_test`,
/// which runs what [`child_args`] gives it): resuming the run there when `resume`, aborted at
/// the failpoint `kill` when given. Panics unless the child ends as asked.
pub fn child_run(child_test: &str, pipeline: &Path, out: &Path, resume: bool, kill: Option<&str>) {
    let utf8 = |p: &Path| p.to_str().expect("a UTF-8 path").to_owned();
    let mut env = vec![(CHILD_PIPELINE, utf8(pipeline)), (CHILD_OUT, utf8(out))];
    if resume {
        env.push((CHILD_RESUME, "1".into()));
    }
    if let Some(k) = kill {
        env.push((FAILPOINT, k.into()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = run_test_in_child(child_test, &env);
    let what = pipeline.display();
    let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let Some(kill) = kill else {
        assert!(o.status.success(), "{what}: the run failed:\n{log}");
        return;
    };
    assert!(!o.status.success(), "{what}: the run was to be killed at {kill}:\n{log}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(6), "{what}: killed at {kill} by SIGABRT:\n{log}");
    }
    assert!(log.contains(&format!("{FAILPOINT}: ")), "{what}: died before {kill}:\n{log}");
}

/// The checkpoint files a resumed run must not leave behind: temporary commits and the
/// per-epoch ones a finished phase replaces.
pub fn leftover_checkpoints(out: &Path) -> Vec<String> {
    std::fs::read_dir(out.join("checkpoints"))
        .expect("a checkpoints folder")
        .map(|e| e.expect("a folder entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp") || n.contains("-epoch-"))
        .collect()
}

/// An `[[attack]]` table: the tabular plugin's L∞ PGD of `steps` steps on class 1 (fraud),
/// integer and one-hot columns kept whole.
pub fn tabular_pgd_attack(steps: u32) -> String {
    format!(
        "[[attack]]\nid = \"pgd\"\nplugin = \"tabular\"\nattack = \"pgd\"\nclasses = [1]\n\
         params = {{ norm = \"linf\", epsilon = 0.5, steps = {steps}, discrete = true }}\n"
    )
}
