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
