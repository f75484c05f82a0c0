//! The pipeline file: TOML → a validated [`Pipeline`].
//!
//! Defaults live in the structs (`#[serde(default)]`), unknown keys are errors, and every
//! error — syntax, type, unknown key or a failed validation — names `file:line:col`.
//! The `[data]` and `[model]` tables depend on `pipeline.modality`, so a file is read in
//! two passes: the modality first, then the whole file with the matching types, which
//! keeps the toml crate's exact spans (an internally tagged enum would lose them).
//!
//! The file is a regular file of at most 1 MiB of UTF-8. A NaN or infinite float is an
//! error wherever it appears (an infinite bound of a tabular feature excepted), and the
//! validation refuses, before anything is trained, settings that make no model or no run:
//! a name that is not a plain file name, zero widths, zero epochs, a zero query budget, an
//! audio length past 10 minutes, and a model whose estimated training memory is more than
//! the machine has.

mod attack;
pub mod defence;
mod evaluate;
mod footprint;
mod harden;
pub mod span;
mod spec;
pub mod tradeoff;
mod train;
mod validate;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tempered_plugin::Modality;

use crate::data;
use crate::{Error, Result};
use span::Key;
use span::keys;

pub use attack::{AttackConfig, OnError};
pub use evaluate::{EvaluateConfig, OperatingPoint, SplitName, SweepConfig, Target};
pub use harden::{EarlyStopping, HardenConfig, Strategy};
pub use span::AtKey;
pub use spec::{DeviceKind, PipelineSection, PluginsConfig, ReportConfig, Spec, SpecOf};
pub use train::{ClassWeight, Sampling, TrainConfig, WeightMode};

/// A pipeline, parsed and validated: only a `Pipeline` can be run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it came from; relative data paths resolve against its repository root.
    pub file: PathBuf,
    pub base_dir: PathBuf,
    pub spec: Spec,
}

#[derive(Deserialize)]
struct Head {
    pipeline: HeadSection,
}

#[derive(Deserialize)]
struct HeadSection {
    modality: Modality,
}

/// The largest pipeline file read. A pipeline is a few KB; a bigger file is something else,
/// and reading it whole would be the first thing a run does.
pub const MAX_PIPELINE_BYTES: u64 = 1 << 20;

impl Pipeline {
    /// Reads, parses and validates a pipeline file.
    pub fn load(file: &Path) -> Result<Self> {
        let refuse = |msg: String| Error::Config(format!("{}: {msg}", file.display()));
        let (handle, meta) = data::open_regular(file).map_err(|e| match e {
            data::NotOpened::Io(e) => Error::io(file, e),
            other => refuse(other.reason()),
        })?;
        let too_big = |len: u64| {
            refuse(format!(
                "{len} bytes is too big for a pipeline file (at most {MAX_PIPELINE_BYTES} bytes, 1 MiB; a pipeline is a few KB)"
            ))
        };
        if meta.len() > MAX_PIPELINE_BYTES {
            return Err(too_big(meta.len()));
        }
        let mut bytes = Vec::new();
        handle.take(MAX_PIPELINE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(file, e))?;
        if bytes.len() as u64 > MAX_PIPELINE_BYTES {
            return Err(too_big(bytes.len() as u64));
        }
        let src = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            Error::Config(span::at(
                file,
                &text,
                Some(valid),
                "not valid UTF-8 (a pipeline file is UTF-8 text)",
            ))
        })?;
        Self::parse(file, &src)
    }

    /// Parses and validates `src`, naming `file` in errors.
    pub fn parse(file: &Path, src: &str) -> Result<Self> {
        let de_err = |e: toml::de::Error| {
            Error::Config(span::at(file, src, e.span().map(|s| s.start), e.message().trim()))
        };
        let head: Head = toml::from_str(src).map_err(|e| {
            // Report syntax errors as they are; a missing modality deserves its own words.
            if e.message().contains("missing field `pipeline`")
                || e.message().contains("missing field `modality`")
            {
                Error::Config(span::at(
                    file,
                    src,
                    // No [pipeline] table at all (an empty file): the top of the file is where it goes.
                    span::offset_of(src, &keys(&["pipeline"])).or(Some(0)),
                    "missing `pipeline.modality` (one of \"tabular\", \"text\", \"audio\")",
                ))
            } else {
                de_err(e)
            }
        })?;
        // Before the typed pass: a NaN that reaches a plugin's params as JSON becomes `null`,
        // and the plugin's "invalid type: null" would not say which key or why.
        let tabular = head.pipeline.modality == Modality::Tabular;
        if let Some(nf) = span::non_finite(src, |path| tabular && infinite_bound_allowed(path)) {
            return Err(Error::Config(span::at(
                file,
                src,
                Some(nf.offset),
                &format!("{} = {} is not a finite number", span::dotted(&nf.path), nf.text),
            )));
        }
        let spec = match head.pipeline.modality {
            Modality::Tabular => Spec::Tabular(toml::from_str(src).map_err(de_err)?),
            Modality::Text => Spec::Text(toml::from_str(src).map_err(de_err)?),
            Modality::Audio => Spec::Audio(toml::from_str(src).map_err(de_err)?),
        };
        let mut spec = spec;
        attack::fill_ids(spec.attacks_mut());
        defence::fill_ids(spec.defences_mut());
        if let Err(bad) = validate::validate(&spec) {
            return Err(Error::Config(span::at(file, src, span::offset_of(src, &bad.path), &bad.msg)));
        }
        let base_dir = base_dir_of(file);
        Ok(Self { file: file.to_owned(), base_dir, spec })
    }

    pub fn name(&self) -> &str {
        &self.spec.pipeline().name
    }

    pub fn seed(&self) -> u64 {
        self.spec.pipeline().seed
    }

    /// A configuration error found once the data is read (a class count, a task that is
    /// not binary), named `file:line:col` at the key `path` when the file still reads.
    pub fn config_error(&self, path: &[&str], msg: &str) -> Error {
        match std::fs::read_to_string(&self.file) {
            Ok(src) => Error::Config(span::at(&self.file, &src, span::offset_of(&src, &keys(path)), msg)),
            Err(_) => Error::Config(format!("{}: {msg}", self.file.display())),
        }
    }

    /// Runs on `device` instead of `[pipeline] device` (the command line's `--device`):
    /// refused, as in the file, when this build cannot use it.
    pub fn set_device(&mut self, device: DeviceKind) -> Result<()> {
        if device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
            return Err(Error::invalid(
                "--device cuda needs a CUDA build (`just cuda-build`; this one is CPU-only)",
            ));
        }
        self.spec.pipeline_mut().device = device;
        Ok(())
    }

    /// The checkpoint `[train] init` names, resolved: a file as it is, a run folder's
    /// hardened model if it has one, else its clean one.
    pub fn init_checkpoint(&self) -> Option<PathBuf> {
        let p = self.resolve(self.spec.train().init.as_deref()?);
        if !p.is_dir() {
            return Some(p);
        }
        let ck = p.join("checkpoints");
        let hardened = ck.join("hardened.safetensors");
        Some(if hardened.is_file() { hardened } else { ck.join("clean.safetensors") })
    }

    /// Resolves a path from the file against the base directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_owned() } else { self.base_dir.join(p) }
    }
}

/// Paths in a pipeline are relative to the repository it lives in: the parent of a
/// `pipelines/` folder, else the file's own folder.
fn base_dir_of(file: &Path) -> PathBuf {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    if dir.file_name().is_some_and(|n| n == "pipelines") {
        dir.parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(PathBuf::from("."))
    } else {
        dir
    }
}

/// A tabular feature's bounds may be infinite (`upper = inf`: no bound).
fn infinite_bound_allowed(path: &[Key]) -> bool {
    let name = |i: usize| match path.get(i) {
        Some(Key::Name(n)) => Some(n.as_str()),
        _ => None,
    };
    let bound = matches!(path.last(), Some(Key::Name(n)) if n == "lower" || n == "upper");
    bound
        && name(0) == Some("data")
        && match (name(1), path.len()) {
            (Some("defaults"), 3) => true,
            (Some("columns"), 4) => name(2).is_some(),
            _ => false,
        }
}

#[cfg(test)]
mod tests;
