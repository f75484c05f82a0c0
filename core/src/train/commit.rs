//! The trainer's checkpoints: every epoch ends in one commit, a single safetensors file
//! that holds all a run needs to continue bit for bit.
//!
//! - `<phase>-epoch-NNNN.safetensors`, after epoch N of an unfinished phase: the model's
//!   tensors under their own names, AdamW's moments (`@adamw/m/<i>`, `@adamw/v/<i>`, in the
//!   order of [`crate::model::Classifier::trainable`]), the best epoch's tensors
//!   (`@best/<name>`; absent when the best epoch is this one), and in `__metadata__`: the
//!   [`TrainState`] as JSON, AdamW's step count, the model's random state
//!   ([`crate::model::Classifier::rng_state`]: dropout masks) and the adversary's counters.
//! - `<phase>.safetensors`, the phase's final commit: the kept (best) weights, the
//!   finished state, the random state at the end of the phase (the next phase carries on
//!   from it) and the adversary's counters. No moments: it reloads fast.
//!
//! A commit is written to a temporary name, synced and renamed ([`crate::files`]), the
//! folder synced, and only then are older commits removed. A process killed at any moment
//! leaves the newest complete commit in place; a resume starts from it and redoes the epoch
//! that was in progress, the same way: the shuffle and the attack seeds are functions of
//! the seed and the epoch, and everything else that carries over is in the commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::TrainState;
use super::adamw::AdamW;
use super::failpoint::{self, FailPoint, Point};
use crate::model::checkpoint::{self, Reader};
use crate::model::{self, Classifier};
use crate::{Error, Result};

const FORMAT: &str = "tempered-train/1";
const EPOCH_TAG: &str = "-epoch-";

/// Where a phase keeps its commits.
pub struct Checkpoints {
    pub dir: PathBuf,
    pub phase: String,
}

/// The newest commit of a phase.
pub(super) enum Latest {
    Finished(Reader),
    Epoch(Reader),
}

impl Checkpoints {
    /// The phase's final commit, `<phase>.safetensors`: the kept weights (a plain weights
    /// file for [`model::load`]) and the finished state.
    pub fn best(&self) -> PathBuf {
        self.dir.join(format!("{}.safetensors", self.phase))
    }

    fn epoch_commit(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("{}{EPOCH_TAG}{epoch:04}.safetensors", self.phase))
    }

    /// The phase's epoch commits, oldest first.
    fn epoch_commits(&self) -> Result<Vec<(usize, PathBuf)>> {
        let prefix = format!("{}{EPOCH_TAG}", self.phase);
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".safetensors"));
            if let Some(epoch) = epoch.and_then(|n| n.parse::<usize>().ok()) {
                out.push((epoch, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Temporary files of this phase's commits that a killed process left behind
    /// (`.<name>.<pid>.tmp.safetensors`, see [`crate::files`]).
    pub(super) fn remove_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let (finished, epochs) = (format!(".{}.", self.phase), format!(".{}{EPOCH_TAG}", self.phase));
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with(&finished) || name.starts_with(&epochs)) && name.contains(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes the epoch commits that `newest` replaces (all but itself): what a process
    /// killed right after a commit may have left.
    pub(super) fn remove_commits_before(&self, newest: &Path) -> Result<()> {
        for (_, old) in self.epoch_commits()? {
            if old != newest {
                std::fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
            }
        }
        Ok(())
    }

    /// The newest commit, opened (its tensors not yet checked).
    pub(super) fn latest(&self) -> Result<Option<Latest>> {
        let best = self.best();
        if best.exists() {
            return Ok(Some(Latest::Finished(open(&best)?)));
        }
        if let Some((_, path)) = self.epoch_commits()?.pop() {
            return Ok(Some(Latest::Epoch(open(&path)?)));
        }
        for old in [format!("{}-state.json", self.phase), format!("{}-last.safetensors", self.phase)] {
            let old = self.dir.join(old);
            if old.exists() {
                return Err(Error::data(
                    &old,
                    "a checkpoint of an older tempered, which cannot be resumed exactly: start a new run",
                ));
            }
        }
        Ok(None)
    }

    /// The state of the newest commit, if any.
    pub fn read_state(&self) -> Result<Option<TrainState>> {
        match self.latest()? {
            None => Ok(None),
            Some(Latest::Finished(r) | Latest::Epoch(r)) => state_of(&r).map(Some),
        }
    }
}

fn open(path: &Path) -> Result<Reader> {
    let r = Reader::open(path)?;
    if r.meta("format") != Some(FORMAT) {
        return Err(Error::data(
            path,
            format!("not a commit of this trainer (no `format = {FORMAT}` in its metadata)"),
        ));
    }
    Ok(r)
}

/// Every float of a state, in a fixed order. serde_json's default float parsing is not
/// correctly rounded (it may be one ulp off), so their bits travel beside the JSON.
fn floats(s: &mut TrainState) -> Vec<&mut f64> {
    let mut out: Vec<&mut f64> = s.best_objective.iter_mut().collect();
    for e in &mut s.log {
        out.extend([
            &mut e.train_loss,
            &mut e.validation_loss,
            &mut e.validation_accuracy,
            &mut e.objective,
            &mut e.seconds,
        ]);
    }
    out
}

fn state_of(r: &Reader) -> Result<TrainState> {
    let bad = |msg: String| Error::data(r.path(), msg);
    let json = r.meta("state").ok_or_else(|| bad("no training state in its metadata".into()))?;
    let mut state: TrainState = serde_json::from_str(json)
        .map_err(|e| Error::external(format!("{}: training state", r.path().display()), e))?;
    let bits: Vec<u64> = r
        .meta("state_f64")
        .unwrap_or_default()
        .split_whitespace()
        .map(|b| u64::from_str_radix(b, 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::external(format!("{}: training state floats", r.path().display()), e))?;
    let mut fields = floats(&mut state);
    if fields.len() != bits.len() {
        return Err(bad(format!("{} floats for a training state of {}", bits.len(), fields.len())));
    }
    for (f, b) in fields.iter_mut().zip(bits) {
        **f = f64::from_bits(b);
    }
    Ok(state)
}

/// What a resumed phase continues with.
pub(super) struct Resumed {
    pub state: TrainState,
    /// The best epoch's tensors.
    pub best: Vec<(String, Tensor)>,
    pub adversary: Option<serde_json::Value>,
}

/// Everything a commit of `file` holds for `model` and `opt` (`None`: the final commit),
/// checked before anything is loaded, so a damaged file leaves the model as it was.
pub(super) fn load(
    file: &Reader,
    phase: &str,
    model: &dyn Classifier,
    opt: Option<&mut AdamW>,
) -> Result<Resumed> {
    let bad = |msg: String| Error::data(file.path(), msg);
    let state = state_of(file)?;
    if state.phase != phase {
        return Err(bad(format!("holds phase `{}`, not `{phase}`", state.phase)));
    }
    let weights = model::read_tensors(model, file, "")?;
    let best = match opt {
        Some(_) if state.best_epoch != state.epochs_done => model::read_tensors(model, file, "@best/")?,
        _ => weights.clone(),
    };
    let rng = match file.meta("model_rng") {
        Some(hex) => Some(checkpoint::from_hex(hex).ok_or_else(|| bad("model_rng: not hex".into()))?),
        None => None,
    };
    let adversary = match file.meta("adversary") {
        Some(json) => Some(
            serde_json::from_str(json)
                .map_err(|e| Error::external(format!("{}: adversary", file.path().display()), e))?,
        ),
        None => None,
    };
    let moments = match &opt {
        Some(opt) => {
            let step: usize = file
                .meta("adamw_step")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("no AdamW step count in its metadata".into()))?;
            let device = model.device();
            let moments = opt
                .expected()
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    Ok((
                        file.tensor(&format!("@adamw/m/{i}"), e, device)?,
                        file.tensor(&format!("@adamw/v/{i}"), e, device)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            Some((step, moments))
        }
        None => None,
    };
    model::restore(model, &weights)?;
    match (rng, model.rng_state()) {
        (Some(rng), Some(_)) => model
            .set_rng_state(&rng)
            .map_err(|e| e.context(format!("{}: model_rng", file.path().display())))?,
        (None, Some(_)) => return Err(bad("no model_rng, which this model needs to continue".into())),
        _ => {}
    }
    if let (Some(opt), Some((step, moments))) = (opt, moments) {
        opt.restore(step, &moments)?;
    }
    Ok(Resumed { state, best, adversary })
}

/// What one commit saves.
pub(super) struct Commit<'a> {
    pub model: &'a dyn Classifier,
    pub state: &'a TrainState,
    /// `None` for the final commit.
    pub opt: Option<&'a AdamW>,
    /// The best epoch's tensors, when they are not the model's current ones.
    pub best: Option<&'a [(String, Tensor)]>,
    pub adversary: Option<serde_json::Value>,
}

/// Writes `c` as the commit ending `epoch` (the final one when `c.state.finished`), then
/// removes the commits it replaces.
pub(super) fn write(ck: &Checkpoints, c: &Commit<'_>, epoch: usize, fail: Option<&FailPoint>) -> Result<()> {
    let path = if c.state.finished { ck.best() } else { ck.epoch_commit(epoch) };
    let mut tensors = model::tensors(c.model);
    if let Some((name, _)) = tensors.iter().find(|(n, _)| n.starts_with('@')) {
        return Err(Error::invalid(format!(
            "model tensor `{name}`: names starting with @ are the trainer's"
        )));
    }
    if let Some(best) = c.best {
        tensors.extend(best.iter().map(|(n, t)| (format!("@best/{n}"), t.clone())));
    }
    let mut meta = HashMap::from([
        ("format".to_owned(), FORMAT.to_owned()),
        ("state".to_owned(), serde_json::to_string(c.state).expect("a training state serializes")),
    ]);
    let mut state = c.state.clone();
    let bits: Vec<String> = floats(&mut state).iter().map(|f| format!("{:016x}", f.to_bits())).collect();
    meta.insert("state_f64".into(), bits.join(" "));
    if let Some(opt) = c.opt {
        meta.insert("adamw_step".into(), opt.step_count().to_string());
        for (i, (m, v)) in opt.moments()?.into_iter().enumerate() {
            tensors.push((format!("@adamw/m/{i}"), m));
            tensors.push((format!("@adamw/v/{i}"), v));
        }
    }
    if let Some(rng) = c.model.rng_state() {
        meta.insert("model_rng".into(), checkpoint::to_hex(&rng));
    }
    if let Some(a) = c.adversary.as_ref().filter(|a| !a.is_null()) {
        meta.insert("adversary".into(), a.to_string());
    }
    crate::files::write_with(&path, |tmp| {
        checkpoint::write(tmp, &tensors, meta)?;
        failpoint::reached(fail, &ck.phase, epoch, Point::Tmp)
    })?;
    sync_dir(&ck.dir)?;
    failpoint::reached(fail, &ck.phase, epoch, Point::Renamed)?;
    ck.remove_commits_before(&path)
}

/// Makes a rename in `dir` durable (a power cut could otherwise undo it).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
