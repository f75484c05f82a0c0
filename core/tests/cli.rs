//! The `tempered` binary as a user meets it: closed and full standard output, SIGINT and
//! SIGTERM mid-run, two processes on one run folder. Pipelines here train a small clean MLP
//! on the shipped credit-card rows with no attack, so no plugin library is needed.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TEMPERED: &str = env!("CARGO_BIN_EXE_tempered");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// `<tmp>/pipelines/<name>.toml` with `data` linked to the repository's, so that the
/// pipeline's relative data path resolves as it would in the repository.
fn pipeline(dir: &Path, name: &str, epochs: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::os::unix::fs::symlink(repo().join("data"), dir.join("data")).unwrap();
    let file = dir.join("pipelines").join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            r#"[pipeline]
name = "{name}"
modality = "tabular"
seed = 3

[data]
path = "data/creditcard-ulb/creditcard_ulb_sample.csv"
label = "Class"
limit = 600

[model]
kind = "mlp"
hidden = [16]

[train]
epochs = {epochs}
batch_size = 32
patience = 0

[harden]
enabled = false
"#
        ),
    )
    .unwrap();
    file
}

fn tempered(args: &[&str]) -> Command {
    let mut c = Command::new(TEMPERED);
    c.args(args).env("RUST_LOG", "info");
    c
}

#[test]
fn a_closed_or_full_stdout_is_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), "stdout", 1);
    let file = file.to_str().unwrap();

    // `| head -0`: the reader is gone before anything is written.
    let mut child =
        tempered(&["validate", file]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "a reader that went away is not an error: {err}");

    let full = std::fs::File::options().write(true).open("/dev/full").unwrap();
    let out = tempered(&["validate", file]).stdout(full).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write to standard output"), "{err}");
}

/// A running `tempered run`, its stderr drained by a thread (a full pipe would block it).
struct Running {
    child: std::process::Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    /// Waits for the exit; its status code and everything it wrote to stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        (status.code(), self.stderr.join().unwrap())
    }
}

/// Starts `tempered run` and waits for its first committed epoch.
fn start_run(file: &Path, out: &Path) -> Running {
    let mut child = tempered(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    while !has_commit(&out.join("checkpoints")) {
        assert!(t.elapsed() < Duration::from_secs(120), "no epoch committed in two minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    Running { child, stderr }
}

fn has_commit(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("clean")))
}

fn signal(child: &std::process::Child, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

#[test]
fn sigint_and_sigterm_say_how_to_resume_and_exit_130_and_143() {
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let file = pipeline(dir.path(), "signals", 100_000);
        let out = dir.path().join("run");
        let run = start_run(&file, &out);

        // A second process on the same folder is refused while the first one holds it.
        let second = tempered(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(1), "{err}");
        assert!(err.contains("in use by another tempered process"), "{err}");

        signal(&run.child, name);
        let (status, err) = run.finish();
        assert_eq!(status, Some(code), "SIG{name}: {err}");
        assert!(err.contains(&format!("interrupted (SIG{name})")), "{err}");
        assert!(err.contains(&format!("--out {} --resume", out.display())), "{err}");
        let leftovers: Vec<_> = walk(&out)
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "an interrupt waits for the write in flight: {leftovers:?}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_interrupted_run_resumes_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), "resume", 30);
    let out = dir.path().join("run");
    let run = start_run(&file, &out);
    signal(&run.child, "INT");
    let (status, err) = run.finish();
    assert_eq!(status, Some(130), "{err}");
    let resumed = tempered(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{err}");
    assert!(out.join("metrics.json").is_file() && out.join("report.md").is_file());
}

#[test]
fn the_device_can_be_chosen_on_the_command_line() {
    let dir = std::env::temp_dir().join(format!("tempered-cli-device-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = pipeline(&dir, "device", 1);
    let out = dir.join("run");
    let o = tempered(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--device", "cuda"])
        .output()
        .unwrap();
    if cfg!(feature = "cuda") {
        return;
    }
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--device cuda needs a CUDA build"), "{err}");
    assert!(!out.exists(), "refused before anything was written");
    let o = tempered(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--device", "cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // `validate` and `bench` take it too, and refuse it the same way.
    for args in
        [vec!["validate", file.to_str().unwrap()], vec!["bench", "--pipeline", file.to_str().unwrap()]]
    {
        let o = tempered(&[&args[..], &["--device", "cuda"]].concat()).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--device cuda needs a CUDA build"), "{args:?}: {err}");
    }
    let o = tempered(&["validate", file.to_str().unwrap(), "--device", "cpu"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tempered bench --export-rows`: the rows, columns, weights and settings a reference
/// implementation (benches/pytorch) trains on, consistent with each other and with the
/// pipeline and flags. Needs no plugin: nothing is attacked.
#[test]
fn bench_export_rows_writes_what_the_reference_trains_on() {
    let dir = std::env::temp_dir().join(format!("tempered-cli-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = pipeline(&dir, "export", 1);
    let toml = std::fs::read_to_string(&file).unwrap();
    let attack =
        "\n[[attack]]\nid = \"pgd\"\nplugin = \"tabular\"\nattack = \"pgd\"\nparams = { epsilon = 1.0 }\n";
    std::fs::write(&file, toml + attack).unwrap();
    let rows = dir.join("rows.json");
    let o = tempered(&[
        "bench",
        "--pipeline",
        file.to_str().unwrap(),
        "--epochs",
        "2",
        "--steps",
        "7",
        "--epsilon",
        "0.25",
        "--export-rows",
        rows.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&rows).unwrap()).unwrap();
    assert_eq!(j["format"], "tempered-bench-rows/1");
    let (width, n) = (j["width"].as_u64().unwrap() as usize, j["train"]["rows"].as_u64().unwrap() as usize);
    assert_eq!(width, 30);
    assert!(n > 0 && n < 600, "the training split of the 600 rows: {n}");
    assert_eq!(j["train"]["x"].as_array().unwrap().len(), n * width);
    assert_eq!(j["train"]["y"].as_array().unwrap().len(), n);
    assert_eq!(j["features"].as_array().unwrap().len(), width);
    assert_eq!(j["features"][0]["name"], "Time");
    assert!(j["features"][0]["std"].as_f64().unwrap() > 0.0);
    assert_eq!((j["epochs"].as_u64(), j["batch_size"].as_u64()), (Some(2), Some(32)));
    assert_eq!(j["attack"]["params"]["steps"], 7);
    assert_eq!(j["attack"]["params"]["epsilon"], 0.25);
    assert_eq!(j["adversarial_weight"], 0.5);
    assert!(j["optimizer"]["lr"].as_f64().unwrap() > 0.0);
    let init = j["init"].as_array().unwrap();
    let tensor = |name: &str| init.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(tensor("layer0.weight")["shape"], serde_json::json!([30, 16]));
    assert_eq!(tensor("layer0.weight")["data"].as_array().unwrap().len(), 30 * 16);
    assert_eq!(tensor("layer1.weight")["shape"], serde_json::json!([16, 2]));
    assert_eq!(tensor("standardize.mean")["data"].as_array().unwrap().len(), width);
    let _ = std::fs::remove_dir_all(&dir);
}
