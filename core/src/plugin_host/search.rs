//! Where plugins are looked for, in order, and what a plugin's library file is called.

use std::path::{Path, PathBuf};

use super::Plugin;
use crate::{Error, Result};

/// The folders searched for plugins, in order:
/// 1. `[plugins] search_path` of the pipeline,
/// 2. `TEMPERED_PLUGIN_PATH` (separated like `PATH`),
/// 3. the folder of the running executable, its `deps/` and its parent (so test binaries
///    in `target/<profile>/deps` find plugins in `target/<profile>`),
/// 4. `target/release` and `target/debug` under the current directory.
#[derive(Debug, Clone)]
pub struct SearchPath {
    pub dirs: Vec<PathBuf>,
}

impl SearchPath {
    pub fn new(extra: &[PathBuf]) -> Self {
        let mut dirs: Vec<PathBuf> = extra.to_vec();
        if let Some(v) = std::env::var_os("TEMPERED_PLUGIN_PATH") {
            dirs.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            dirs.push(dir.to_owned());
            dirs.push(dir.join("deps"));
            if let Some(parent) = dir.parent() {
                dirs.push(parent.to_owned());
            }
        }
        dirs.push(PathBuf::from("target/release"));
        dirs.push(PathBuf::from("target/debug"));
        let mut unique: Vec<PathBuf> = Vec::new();
        for d in dirs {
            let same = |u: &PathBuf| {
                u == &d || (u.canonicalize().ok().is_some() && u.canonicalize().ok() == d.canonicalize().ok())
            };
            if !unique.iter().any(same) {
                unique.push(d);
            }
        }
        Self { dirs: unique }
    }

    /// Finds and loads the plugin that declares `name`.
    pub fn find(&self, name: &str) -> Result<Plugin> {
        let mut tried = Vec::new();
        for dir in &self.dirs {
            for file in library_file_names(name) {
                let path = dir.join(&file);
                // Whatever is there is the plugin asked for: a file that cannot be loaded
                // (truncated, a FIFO, a dangling link) is an error saying why, not a reason
                // to go on looking.
                if path.symlink_metadata().is_ok() {
                    let plugin = Plugin::load(&path)?;
                    if plugin.name != name {
                        return Err(Error::plugin(
                            name,
                            format!("{} declares the name `{}`, not `{name}`", path.display(), plugin.name),
                        ));
                    }
                    return Ok(plugin);
                }
                tried.push(path);
            }
        }
        let looked: Vec<String> = self
            .dirs
            .iter()
            .map(|d| match folder_state(d) {
                FolderState::Listable => format!("  {}", d.display()),
                problem => format!("  {}  ({problem})", d.display()),
            })
            .collect();
        Err(Error::plugin(
            name,
            format!(
                "not found. Looked for {} in:\n{}\nBuild it (`cargo build --release` at the workspace root builds \
                 every first-party plugin), set TEMPERED_PLUGIN_PATH, or give `path = \"...\"` in the [[attack]].",
                library_file_names(name).join(" / "),
                looked.join("\n")
            ),
        ))
    }

    /// Every plugin library in the search path, loaded, with failures kept for the listing:
    /// one file that cannot be loaded (truncated, empty, a FIFO named like a library) is an
    /// `Err` in the list, and the rest are still listed. Folders that cannot be listed are
    /// passed over ([`folder_state`] says why). `deps/` folders are left out: they only
    /// hold copies of what cargo also puts one level up, plus test fixtures.
    pub fn discover(&self) -> Vec<(PathBuf, Result<Plugin>)> {
        let mut found: Vec<(PathBuf, Result<Plugin>)> = Vec::new();
        for dir in self.dirs.iter().filter(|d| !d.ends_with("deps")) {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                if !is_candidate(dir, &path) {
                    continue;
                }
                if found.iter().any(|(p, _)| same_file(p, &path)) {
                    continue;
                }
                let loaded = Plugin::load(&path);
                found.push((path, loaded));
            }
        }
        found
    }
}

/// The same file under two names (cargo hard-links build products).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (a.metadata(), b.metadata()) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    a.canonicalize().ok() == b.canonicalize().ok()
}

/// Candidate file names for a plugin called `name`: first-party crates are named
/// `tempered-<name>`, third-party ones anything; `-` becomes `_` in library names.
pub fn library_file_names(name: &str) -> Vec<String> {
    let stem = name.replace('-', "_");
    let (prefix, ext) = (std::env::consts::DLL_PREFIX, std::env::consts::DLL_EXTENSION);
    vec![format!("{prefix}tempered_{stem}.{ext}"), format!("{prefix}{stem}.{ext}")]
}

/// In `deps/` folders only our own libraries are opened (they hold every dependency's
/// build products); elsewhere anything named like a shared library is a candidate, except a
/// folder. A FIFO, a device or a dangling link named `libx.so` is one: loading it is an error
/// that says what it is (and never opens a FIFO), so the listing shows it.
fn is_candidate(dir: &Path, path: &Path) -> bool {
    let is_lib = path.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION);
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let in_deps = dir.file_name().is_some_and(|d| d == "deps");
    is_lib
        && !path.is_dir()
        && (!in_deps || file.starts_with(&format!("{}tempered_", std::env::consts::DLL_PREFIX)))
}

/// What a search-path folder turned out to be when it was looked into.
#[derive(Debug)]
pub enum FolderState {
    /// It is a folder and its entries can be listed.
    Listable,
    /// Nothing is there.
    Missing,
    /// Something other than a folder is there.
    NotAFolder,
    /// It is there but cannot be looked into (permission denied, most often).
    Unreadable(std::io::Error),
}

impl std::fmt::Display for FolderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FolderState::Listable => f.write_str("listable"),
            FolderState::Missing => f.write_str("missing"),
            FolderState::NotAFolder => f.write_str("not a folder"),
            FolderState::Unreadable(e) => write!(f, "cannot read it: {e}"),
        }
    }
}

/// Looks into `dir` the way [`SearchPath::discover`] does, to tell a missing folder from
/// one that cannot be read.
pub fn folder_state(dir: &Path) -> FolderState {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FolderState::Missing,
        Err(e) => return FolderState::Unreadable(e),
        Ok(m) if !m.is_dir() => return FolderState::NotAFolder,
        Ok(_) => {}
    }
    match std::fs::read_dir(dir) {
        Ok(_) => FolderState::Listable,
        Err(e) => FolderState::Unreadable(e),
    }
}
