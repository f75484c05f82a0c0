//! Paths in a plugin's params, resolved where the pipeline's own paths are: a pipeline
//! copied elsewhere with its data keeps working, whatever folder the engine runs from.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

thread_local! {
    /// The folder of the params being deserialized on this thread (empty: none given).
    static BASE_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Runs `f` (a params deserialization) with relative [`PipelinePath`]s resolved against
/// `base`.
pub(crate) fn with_base_dir<T>(base: &str, f: impl FnOnce() -> T) -> T {
    let previous = BASE_DIR.with(|b| b.replace(Some(PathBuf::from(base))));
    let out = f();
    BASE_DIR.with(|b| *b.borrow_mut() = previous);
    out
}

/// A file or folder named in an attack's params. A relative path is resolved against the
/// folder the engine resolves the pipeline's own paths against (the repository holding a
/// `pipelines/` folder, else the pipeline file's folder), so `"data/stopwords.txt"` means
/// the same in a plugin's params as in `[data] path`. Use it instead of `PathBuf` in a
/// `Params` struct:
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Params { words: tempered_plugin::PipelinePath }
/// ```
///
/// In [`testing::run`](crate::testing::run), which has no pipeline, a relative path stays
/// relative (to the current directory).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelinePath(PathBuf);

impl PipelinePath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    pub fn into_path_buf(self) -> PathBuf {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for PipelinePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = PathBuf::deserialize(d)?;
        if p.is_absolute() {
            return Ok(Self(p));
        }
        Ok(Self(BASE_DIR.with(|b| b.borrow().as_ref().map_or(p.clone(), |base| base.join(&p)))))
    }
}

impl std::ops::Deref for PipelinePath {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for PipelinePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl From<PipelinePath> for PathBuf {
    fn from(p: PipelinePath) -> PathBuf {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Params {
        words: PipelinePath,
        more: Vec<PipelinePath>,
    }

    #[test]
    fn relative_paths_resolve_against_the_base_and_absolute_ones_stay() {
        let json = r#"{"words": "data/stop.txt", "more": ["/abs/list.txt", "x.txt"]}"#;
        let p: Params = with_base_dir("/repo", || serde_json::from_str(json)).unwrap();
        assert_eq!(p.words.as_path(), Path::new("/repo/data/stop.txt"));
        assert_eq!(p.more[0].as_path(), Path::new("/abs/list.txt"));
        assert_eq!(p.more[1].as_path(), Path::new("/repo/x.txt"));
        let p: Params = serde_json::from_str(json).unwrap();
        assert_eq!(p.words.as_path(), Path::new("data/stop.txt"), "no base: as written");
    }
}
