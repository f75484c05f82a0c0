//! The run directory: `<out_dir>/<pipeline>/<timestamp>/` with the resolved config, the
//! data fingerprint, checkpoints, the attack phases' results (`phases/`, see
//! `artifact.rs`), metrics, report, plots and samples.
//!
//! A process holds `.lock` while it writes the directory, so two `--resume` of one run
//! cannot interleave their writes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::RunOptions;
use super::fingerprint::Fingerprint;
use crate::pipeline::Pipeline;
use crate::{Error, Result, files};

pub struct RunDir {
    pub path: PathBuf,
    /// Held until the run ends; the OS releases it if the process dies.
    _lock: File,
}

const CONFIG: &str = "config.toml";
const FINGERPRINT: &str = "data-fingerprint.json";
const LOCK: &str = ".lock";

/// Sections whose change invalidates the clean model; anything else only invalidates
/// what comes after it.
const CLEAN_SECTIONS: [&str; 4] = ["pipeline", "data", "model", "train"];

impl RunDir {
    pub fn create(pipeline: &Pipeline, opts: &RunOptions) -> Result<Self> {
        let resolved = format!(
            "# Resolved from {} (every default spelled out).\n{}",
            pipeline.file.display(),
            pipeline.spec.to_toml()?
        );
        let path = match &opts.out {
            Some(p) => p.clone(),
            None => {
                let root = pipeline.resolve(&pipeline.spec.pipeline().out_dir).join(pipeline.name());
                let mut p = root.join(timestamp());
                let mut k = 1;
                while p.exists() {
                    k += 1;
                    p = root.join(format!("{}-{k}", timestamp()));
                }
                p
            }
        };
        if path.exists() && !path.is_dir() {
            return Err(Error::invalid(format!(
                "--out {}: is a file, not a folder: choose a folder for the run",
                path.display()
            )));
        }
        let config = path.join(CONFIG);
        let fingerprint_file = path.join(FINGERPRINT);
        let fingerprint = Fingerprint::of(&pipeline.base_dir, &data_sources(pipeline))?;
        let lock;
        if opts.resume {
            let saved = std::fs::read_to_string(&config)
                .map_err(|e| Error::io(&config, e).context(format!("cannot resume {}", path.display())))?;
            lock = take_lock(&path)?;
            let saved_print = Fingerprint::read(&fingerprint_file)?;
            if let Some(change) = saved_print.as_ref().and_then(|s| s.difference(&fingerprint)) {
                return Err(Error::invalid(format!(
                    "cannot resume {}: the data changed since the run started: {change}",
                    path.display()
                )));
            }
            if body(&saved) != body(&resolved) {
                accept_changes(pipeline, &path, body(&saved), body(&resolved))?;
                files::write(&config, resolved.as_bytes())?;
            }
            if saved_print.is_none() {
                fingerprint.write(&fingerprint_file)?;
            }
        } else {
            let busy = std::fs::read_dir(&path).map(|mut d| d.next().is_some()).unwrap_or(false);
            if busy {
                return Err(Error::invalid(format!(
                    "{} already holds a run: pass --resume to continue it, or choose another --out",
                    path.display()
                )));
            }
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            lock = take_lock(&path)?;
            files::write(&config, resolved.as_bytes())?;
            fingerprint.write(&fingerprint_file)?;
        }
        let dir = Self { path, _lock: lock };
        std::fs::create_dir_all(dir.checkpoints()).map_err(|e| Error::io(dir.checkpoints(), e))?;
        crate::interrupt::set_resume_hint(format!(
            "tempered run {} --out {} --resume",
            pipeline.file.display(),
            dir.path.display()
        ));
        Ok(dir)
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::invalid(format!(
            "{} is in use by another tempered process: wait for it to finish (or stop it) first",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// The files and folders a pipeline reads its data from.
fn data_sources(pipeline: &Pipeline) -> Vec<PathBuf> {
    use crate::pipeline::Spec;
    let mut out = match &pipeline.spec {
        Spec::Tabular(s) => {
            let files: Vec<PathBuf> =
                s.data.resolved_files(Path::new("")).iter().map(|p| pipeline.resolve(p)).collect();
            crate::data::tabular::partitions::expand_all(&files)
        }
        Spec::Text(s) => vec![s.data.path.clone()],
        Spec::Audio(s) => std::iter::once(s.data.path.clone()).chain(s.data.manifest.clone()).collect(),
    };
    for p in &mut out {
        *p = pipeline.resolve(p);
    }
    // The model a run starts from is part of what it was run on.
    out.extend(pipeline.init_checkpoint());
    out
}

/// A resume with another config is allowed when the finished phases do not depend on what
/// changed: a change outside the clean model's sections throws away the hardening
/// checkpoints (hardening is redone); a change of the clean model's own sections is refused.
fn accept_changes(pipeline: &Pipeline, dir: &Path, saved: &str, now: &str) -> Result<()> {
    let refuse = |what: String| {
        Error::invalid(format!(
            "cannot resume {}: {what} changed since the run started (compare {}); \
             start a new run for that",
            dir.display(),
            dir.join(CONFIG).display()
        ))
    };
    let parse = |s: &str| s.parse::<toml::Table>().map_err(|e| refuse(format!("the saved config ({e})")));
    let (saved, now) = (parse(saved)?, parse(now)?);
    let changed: Vec<&str> = saved
        .keys()
        .chain(now.keys().filter(|k| !saved.contains_key(*k)))
        .map(String::as_str)
        .filter(|k| saved.get(*k) != now.get(*k))
        .collect();
    if let Some(k) = changed.iter().find(|k| CLEAN_SECTIONS.contains(k)) {
        return Err(refuse(format!("[{k}], which the trained clean model depends on,")));
    }
    let harden_ids = pipeline.spec.harden().attack.clone();
    let attack_of = |t: &toml::Table| -> Vec<Option<toml::Value>> {
        let find = |id: &str| -> Option<toml::Value> {
            t.get("attack")?
                .as_array()?
                .iter()
                .find(|a| a.get("id").and_then(|v| v.as_str()) == Some(id))
                .cloned()
        };
        harden_ids.iter().map(|id| find(id)).collect()
    };
    let hardening_changed =
        changed.contains(&"harden") || changed.contains(&"tradeoff") || attack_of(&saved) != attack_of(&now);
    if hardening_changed {
        let ck = dir.join("checkpoints");
        let entries = std::fs::read_dir(&ck).map_err(|e| Error::io(&ck, e))?;
        for entry in entries.flatten() {
            // `harden-p<i>`: the points of a [tradeoff] sweep.
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("hardened") || name.starts_with("harden-p") {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        tracing::warn!("the hardening settings changed: the clean model is kept, hardening starts again");
    }
    tracing::info!("resuming with changed [{}]", changed.join("], ["));
    Ok(())
}

/// The config without its header comment (which names the file it came from).
fn body(s: &str) -> &str {
    s.split_once('\n').map_or(s, |(_, rest)| rest)
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn timestamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}
