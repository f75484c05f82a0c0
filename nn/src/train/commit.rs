//! The trainer's checkpoints: every epoch ends in one commit, a single safetensors file
//! that, with the model as it was built, holds all a run needs to continue bit for bit.
//!
//! - `<phase>-epoch-NNNN.safetensors`, after epoch N of an unfinished phase: the tensors
//!   the optimiser trains, under their own names, AdamW's moments (`@adamw/m/<i>`,
//!   `@adamw/v/<i>`, in the order of [`crate::model::Classifier::trainable`]), and in
//!   `__metadata__`: the [`TrainState`] as JSON, AdamW's step count, the model's random
//!   state ([`crate::model::Classifier::rng_state`]: dropout masks), the adversary's
//!   counters, and:
//!   - `frozen`, `frozen_hash`: the names of the tensors the optimiser never changes (a
//!     BERT's embeddings and lower layers under `train_layers`, a tabular model's
//!     standardisation), which are left out: every process gets them back from where the
//!     model is built (the pretrained folder, the training split, `[train] init`), and a
//!     resume checks their hash against the one recorded here, so a model folder changed
//!     under a run is refused instead of mixed in;
//!   - `average_decay`, `average_updates`, with the running sum of the phase's average of
//!     the weights (`weight_average`, `average.rs`) under `@average/<name>`. The weights
//!     such a commit *keeps* (validated, and the best epoch's when it is the best) are its
//!     own with the bias-corrected average in their place;
//!   - `best_commit`, `best_hash`, when the best epoch so far is an earlier one: the best
//!     weights are not copied again into every later commit, they stay in that epoch's own
//!     commit (which is kept on disk while a newer commit names it), and the hash of its
//!     trained tensors is checked when they are read back.
//! - `<phase>.safetensors`, the phase's final commit: every tensor of the kept (best)
//!   model, frozen ones included (a plain weights file for [`model::load`], `tempered
//!   score` and `[train] init`), the finished state, the random state at the end of the
//!   phase (the next phase carries on from it) and the adversary's counters. No moments: it
//!   reloads fast.
//!
//! Commits of `tempered-train/1` (every tensor, and the best epoch's under `@best/`) are
//! still read.
//!
//! A commit is written to a temporary name, synced and renamed ([`crate::files`]), the
//! folder synced, and only then are the commits it replaces removed (all older ones but the
//! one it names as the best). A process killed at any moment leaves the newest complete
//! commit in place, and the commit it names: an epoch's commit is complete before any later
//! one can name it, and is removed only once a newer commit no longer does. A resume starts
//! from it and redoes the epoch that was in progress, the same way: the shuffle and the
//! attack seeds are functions of the seed and the epoch, and everything else that carries
//! over is in the commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::TrainState;
use super::adamw::AdamW;
use super::average::{self, WeightAverage};
use super::failpoint::{self, FailPoint, Point};
use crate::model::checkpoint::{self, Reader};
use crate::model::{self, Classifier};
use crate::{Error, Result};

const FORMAT: &str = "tempered-train/2";
/// Formats this trainer reads: its own and the one before (which copied every tensor).
const READS: [&str; 2] = ["tempered-train/1", FORMAT];
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
        self.remove_commits_except(&[newest])
    }

    /// Removes every epoch commit but those in `keep`.
    fn remove_commits_except(&self, keep: &[&Path]) -> Result<()> {
        for (_, old) in self.epoch_commits()? {
            if !keep.contains(&old.as_path()) {
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
    if !r.meta("format").is_some_and(|f| READS.contains(&f)) {
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

/// The tensors of a model its optimiser never updates, which epoch commits leave out.
pub(super) struct Frozen {
    names: Vec<String>,
    hash: String,
}

impl Frozen {
    /// Every tensor of `model` that is not one of its [`Classifier::trainable`] vars (told
    /// apart by identity, not by name), with the hash of their values now.
    pub fn of(model: &dyn Classifier) -> Result<Self> {
        let trained: Vec<_> = model.trainable().iter().map(|v| v.as_tensor().id()).collect();
        let frozen: Vec<(String, Tensor)> =
            model::tensors(model).into_iter().filter(|(_, t)| !trained.contains(&t.id())).collect();
        let hash = checkpoint::hash_tensors(&frozen)?;
        Ok(Self { names: frozen.into_iter().map(|(n, _)| n).collect(), hash })
    }

    fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// The frozen tensor names a commit records (none for a final commit or an older format).
fn frozen_names(file: &Reader) -> Vec<String> {
    file.meta("frozen").map(|s| s.lines().map(str::to_owned).collect()).unwrap_or_default()
}

/// What a resumed phase continues with.
pub(super) struct Resumed {
    pub state: TrainState,
    /// The best epoch's trained tensors (every tensor, for a final commit).
    pub best: Vec<(String, Tensor)>,
    pub adversary: Option<serde_json::Value>,
}

/// The model's tensors that `file` holds (all but the `frozen` ones), read under `prefix`
/// and checked (present, same dtype and shape, finite) but not loaded.
fn read_saved(
    model: &dyn Classifier,
    file: &Reader,
    prefix: &str,
    frozen: &[String],
) -> Result<Vec<(String, Tensor)>> {
    model::tensors(model)
        .into_iter()
        .filter(|(name, _)| !frozen.contains(name))
        .map(|(name, t)| {
            let read = file.tensor(&format!("{prefix}{name}"), &checkpoint::Expected::of(&t), t.device())?;
            Ok((name, read))
        })
        .collect()
}

/// Checks that the tensors `file` left out are, in `model` now, the ones it was trained
/// with: still frozen, and with the values whose hash the commit recorded.
fn check_frozen(model: &dyn Classifier, file: &Reader, frozen: &[String]) -> Result<()> {
    if frozen.is_empty() {
        return Ok(());
    }
    let bad = |msg: String| Error::data(file.path(), msg);
    let now = Frozen::of(model)?;
    if let Some(name) = frozen.iter().find(|n| !now.contains(n)) {
        return Err(bad(format!(
            "tensor `{name}` was frozen when this commit was written and is trained now: \
             the model's trainable layers changed; start a new run"
        )));
    }
    let values: Vec<(String, Tensor)> =
        model::tensors(model).into_iter().filter(|(n, _)| frozen.contains(n)).collect();
    let want = file.meta("frozen_hash").ok_or_else(|| bad("frozen tensors but no frozen_hash".into()))?;
    if checkpoint::hash_tensors(&values)? != want {
        return Err(bad(format!(
            "the {} frozen tensors this commit left out (they come from where the model is \
             built: its pretrained folder or [train] init) have other values than when it was \
             written: the model files changed since the run started; restore them or start a new run",
            frozen.len()
        )));
    }
    Ok(())
}

/// The best epoch's tensors of an epoch commit that is not the best epoch itself: under
/// `@best/` in an older commit, else in the commit it names, checked against its hash.
fn read_best(model: &dyn Classifier, file: &Reader, frozen: &[String]) -> Result<Vec<(String, Tensor)>> {
    let bad = |msg: String| Error::data(file.path(), msg);
    let first = model::tensors(model).into_iter().map(|(n, _)| n).find(|n| !frozen.contains(n));
    if first.is_some_and(|n| file.has(&format!("@best/{n}"))) {
        return read_saved(model, file, "@best/", frozen);
    }
    let name =
        file.meta("best_commit").ok_or_else(|| bad("no best epoch's weights, nor a best_commit".into()))?;
    let want = file.meta("best_hash").ok_or_else(|| bad("a best_commit but no best_hash".into()))?;
    if name.contains(['/', '\\']) {
        return Err(bad(format!("best_commit `{name}` is not a file name")));
    }
    let path = file.path().with_file_name(name);
    if !path.is_file() {
        return Err(bad(format!(
            "the best epoch's weights are in {}, which is missing: delete the checkpoints to train again",
            path.display()
        )));
    }
    let named = open(&path)?;
    let best = kept(&named, read_saved(model, &named, "", frozen)?)?;
    if checkpoint::hash_tensors(&sorted(best.clone()))? != want {
        return Err(Error::data(
            &path,
            format!(
                "its tensors are not the best epoch's that {} names (another file, or changed since): \
                 delete the checkpoints to train again",
                file.path().display()
            ),
        ));
    }
    Ok(best)
}

/// The decay and update count of the average `file` saved, if it saved one.
fn averaged(file: &Reader) -> Result<Option<(f64, usize)>> {
    let bad = |msg: String| Error::data(file.path(), msg);
    let (Some(decay), Some(updates)) = (file.meta("average_decay"), file.meta("average_updates")) else {
        return Ok(None);
    };
    let decay = u64::from_str_radix(decay, 16)
        .map(f64::from_bits)
        .ok()
        .filter(|d| *d > 0.0 && *d < 1.0)
        .ok_or_else(|| bad(format!("average_decay `{decay}`: not a decay")))?;
    let updates = updates.parse().map_err(|_| bad(format!("average_updates `{updates}`: not a count")))?;
    Ok(Some((decay, updates)))
}

/// The weights `file` keeps: `weights`, its own, with the average of the weights it saved
/// (`@average/<name>`, bias-corrected as [`WeightAverage::swap_in`] reads it) in their place.
fn kept(file: &Reader, mut weights: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
    let Some(c) = averaged(file)?.and_then(|(decay, updates)| average::correction(decay, updates)) else {
        return Ok(weights);
    };
    for (name, t) in &mut weights {
        let key = format!("{AVERAGE}{name}");
        if file.has(&key) {
            *t = file.tensor(&key, &checkpoint::Expected::of(t), t.device())?.affine(c, 0.0)?;
        }
    }
    Ok(weights)
}

/// Where an epoch commit keeps the average of the weights.
const AVERAGE: &str = "@average/";

fn sorted(mut t: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// Everything a commit of `file` holds for `model`, `opt` and `average` (`None`, `None`:
/// the final commit), checked before anything is loaded, so a damaged file leaves the
/// model as it was.
pub(super) fn load(
    file: &Reader,
    phase: &str,
    model: &dyn Classifier,
    opt: Option<&mut AdamW>,
    average: Option<&mut WeightAverage>,
) -> Result<Resumed> {
    let bad = |msg: String| Error::data(file.path(), msg);
    let state = state_of(file)?;
    if state.phase != phase {
        return Err(bad(format!("holds phase `{}`, not `{phase}`", state.phase)));
    }
    let frozen = frozen_names(file);
    let weights = read_saved(model, file, "", &frozen)?;
    check_frozen(model, file, &frozen)?;
    let best = match opt {
        Some(_) if state.best_epoch != state.epochs_done => read_best(model, file, &frozen)?,
        _ => kept(file, weights.clone())?,
    };
    let averaged = match (&average, averaged(file)?) {
        (Some(avg), Some((decay, _))) if decay != avg.decay() => {
            return Err(bad(format!(
                "written with weight_average = {decay}, and this phase averages with {}: start a new run",
                avg.decay()
            )));
        }
        (Some(avg), Some((_, updates))) => {
            let device = model.device();
            let tensors = avg
                .tensors()
                .map(|(name, t)| {
                    file.tensor(&format!("{AVERAGE}{name}"), &checkpoint::Expected::of(t), device)
                })
                .collect::<Result<Vec<_>>>()?;
            Some((updates, tensors))
        }
        (Some(_), None) => {
            return Err(bad("written without an average of the weights, which this phase now keeps \
                 (weight_average): start a new run"
                .into()));
        }
        (None, Some(_)) if opt.is_some() => {
            return Err(bad("written with an average of the weights (weight_average), which this \
                 phase no longer keeps: start a new run"
                .into()));
        }
        (None, _) => None,
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
    if let (Some(avg), Some((updates, tensors))) = (average, averaged) {
        avg.restore(updates, tensors)?;
    }
    Ok(Resumed { state, best, adversary })
}

/// What one commit saves.
pub(super) struct Commit<'a> {
    pub model: &'a dyn Classifier,
    pub state: &'a TrainState,
    /// `None` for the final commit.
    pub opt: Option<&'a AdamW>,
    /// The best epoch's tensors, when they are not the model's current ones (an epoch
    /// commit then names the best epoch's commit and records their hash).
    pub best: Option<&'a [(String, Tensor)]>,
    /// What an epoch commit leaves out (`None`: every tensor is written).
    pub frozen: Option<&'a Frozen>,
    /// The phase's average of the weights, for an epoch commit.
    pub average: Option<&'a WeightAverage>,
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
    let mut meta = HashMap::from([
        ("format".to_owned(), FORMAT.to_owned()),
        ("state".to_owned(), serde_json::to_string(c.state).expect("a training state serializes")),
    ]);
    let frozen = c.frozen.filter(|f| !c.state.finished && !f.names.is_empty());
    if let Some(f) = frozen {
        tensors.retain(|(n, _)| !f.contains(n));
        meta.insert("frozen".into(), f.names.join("\n"));
        meta.insert("frozen_hash".into(), f.hash.clone());
    }
    let mut best_commit = None;
    if let Some(best) = c.best.filter(|_| !c.state.finished) {
        let kept: Vec<(String, Tensor)> =
            best.iter().filter(|(n, _)| frozen.is_none_or(|f| !f.contains(n))).cloned().collect();
        let file = ck.epoch_commit(c.state.best_epoch);
        if file.is_file() {
            let name = file.file_name().expect("a commit file name").to_string_lossy().into_owned();
            meta.insert("best_commit".into(), name);
            meta.insert("best_hash".into(), checkpoint::hash_tensors(&sorted(kept))?);
            best_commit = Some(file);
        } else {
            // A phase resumed from an older format's commit: its best epoch's commit is gone,
            // so the best weights travel inside this one, as that format kept them.
            tensors.extend(kept.into_iter().map(|(n, t)| (format!("@best/{n}"), t)));
        }
    }
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
    if let Some(avg) = c.average.filter(|_| !c.state.finished) {
        let (decay, updates, tensors_of) = avg.saved();
        meta.insert("average_decay".into(), format!("{:016x}", decay.to_bits()));
        meta.insert("average_updates".into(), updates.to_string());
        tensors.extend(tensors_of.map(|(name, t)| (format!("{AVERAGE}{name}"), t.clone())));
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
    let keep: Vec<&Path> = std::iter::once(path.as_path()).chain(best_commit.as_deref()).collect();
    ck.remove_commits_except(&keep)
}

/// Makes a rename in `dir` durable (a power cut could otherwise undo it).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::failpoint::Action;
    use super::super::{Balance, Fit, fit_with};
    use super::*;
    use crate::examples::{Dataset, Examples, Labelled};
    use crate::model::bert::{BertClassifier, BertConfig, Pooling, write_tiny_model};
    use candle_core::Device;

    fn split(texts: &[&str]) -> Labelled {
        let y = texts
            .iter()
            .map(|t| u32::from(["great", "fun", "good", "best", "love"].iter().any(|w| t.contains(w))))
            .collect();
        Labelled { x: Examples::Text(texts.iter().map(|t| t.to_string()).collect()), y }
    }

    fn data() -> Dataset {
        let train = [
            "the film was great fun",
            "a boring plot and the worst acting",
            "not very good , but funny",
            "this movie is terrible !",
            "the best story , great acting",
            "dull and boring , the worst",
            "i love this film",
            "a terrible , dull movie",
        ];
        let validation = ["great fun", "boring and dull", "the best film", "the worst plot"];
        Dataset {
            n_classes: 2,
            train: split(&train),
            validation: split(&validation),
            test: split(&validation),
        }
    }

    fn bert(dir: &Path) -> BertClassifier {
        let cfg = BertConfig {
            path: dir.to_owned(),
            train_layers: Some(1),
            max_tokens: 16,
            pooling: Pooling::Mean,
        };
        BertClassifier::load(&cfg, dir, 2, 3, &Device::Cpu).unwrap()
    }

    fn fit_cfg() -> Fit {
        Fit::clean(4, 4, 0.05)
    }

    fn bits(m: &dyn Classifier) -> Vec<(String, Vec<u32>)> {
        model::tensors(m)
            .into_iter()
            .map(|(n, t)| {
                (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect())
            })
            .collect()
    }

    fn untimed(mut s: TrainState) -> TrainState {
        s.log.iter_mut().for_each(|e| e.seconds = 0.0);
        s
    }

    /// A BERT with its lower layer and embeddings frozen: the epoch commits hold only the
    /// trained tensors (and their moments), the best epoch's weights stay in that epoch's
    /// commit, and a run killed after any epoch resumes to the uninterrupted run's weights
    /// bit for bit. A pretrained folder changed under the run is refused on resume.
    #[test]
    fn a_bert_commit_leaves_out_frozen_tensors_and_still_resumes_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("tiny-bert");
        write_tiny_model(&folder, 5).unwrap();
        let data = data();
        let ck = |d: &str| {
            let dir = tmp.path().join(d);
            std::fs::create_dir_all(&dir).unwrap();
            Checkpoints { dir, phase: "clean".into() }
        };
        let full_model = bert(&folder);
        let full = fit_with(&full_model, &data, &fit_cfg(), &Balance::default(), None, 9, &ck("full"), None)
            .unwrap();
        let frozen = Frozen::of(&full_model).unwrap();
        let trained: Vec<String> =
            model::tensors(&full_model).into_iter().map(|(n, _)| n).filter(|n| !frozen.contains(n)).collect();
        assert!(frozen.names.iter().any(|n| n.contains("word_embeddings")), "{:?}", frozen.names);
        assert!(frozen.names.iter().any(|n| n.contains("layer.0.")), "{:?}", frozen.names);
        assert!(
            trained.iter().any(|n| n.contains("layer.1."))
                && trained.iter().any(|n| n.starts_with("classifier"))
        );

        for epoch in 1..=3 {
            let ck = ck(&format!("kill-{epoch}"));
            let fail = FailPoint { epoch, point: Point::End, action: Action::Fail };
            let killed =
                fit_with(&bert(&folder), &data, &fit_cfg(), &Balance::default(), None, 9, &ck, Some(&fail));
            assert!(killed.is_err());
            let commit = Reader::open(&ck.epoch_commit(epoch)).unwrap();
            for name in &frozen.names {
                assert!(!commit.has(name), "epoch {epoch}: frozen `{name}` was written");
            }
            for name in &trained {
                assert!(commit.has(name), "epoch {epoch}: trained `{name}` is missing");
            }
            assert!(!commit.has("@adamw/m/0") || commit.meta("adamw_step").is_some());
            let resumed_model = bert(&folder);
            let resumed =
                fit_with(&resumed_model, &data, &fit_cfg(), &Balance::default(), None, 9, &ck, None).unwrap();
            assert_eq!(untimed(resumed), untimed(full.clone()), "killed after epoch {epoch}");
            assert!(
                bits(&resumed_model) == bits(&full_model),
                "killed after epoch {epoch}: the weights differ"
            );
            let final_commit = Reader::open(&ck.best()).unwrap();
            assert!(
                frozen.names.iter().all(|n| final_commit.has(n)),
                "the final commit is a whole weights file"
            );
        }

        // Killed again, then the pretrained weights change under the run: refused, by name.
        let ck = ck("changed");
        let fail = FailPoint { epoch: 2, point: Point::End, action: Action::Fail };
        assert!(
            fit_with(&bert(&folder), &data, &fit_cfg(), &Balance::default(), None, 9, &ck, Some(&fail))
                .is_err()
        );
        write_tiny_model(&folder, 6).unwrap();
        let e = fit_with(&bert(&folder), &data, &fit_cfg(), &Balance::default(), None, 9, &ck, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("clean-epoch-0002.safetensors") && e.contains("frozen tensors"), "{e}");
    }

    /// An epoch commit after a worse epoch names the best epoch's commit instead of copying
    /// its weights; that commit is kept while named, and a swapped one is refused.
    #[test]
    fn the_best_epoch_is_named_not_copied_and_checked_when_read() {
        use crate::model::{Mlp, TabularModelConfig};
        let tmp = tempfile::tempdir().unwrap();
        let ck = Checkpoints { dir: tmp.path().to_owned(), phase: "clean".into() };
        let n = 64;
        let x: Vec<f32> = (0..n * 2).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let y: Vec<u32> = (0..n).map(|i| u32::from(x[2 * i] + x[2 * i + 1] > 0.0)).collect();
        let split = Labelled { x: Examples::Dense { data: x, width: 2 }, y };
        let data = Dataset { n_classes: 2, train: split.clone(), validation: split.clone(), test: split };
        let make = || {
            Mlp::new(&TabularModelConfig::default(), &[0.0, 0.0], &[1.0, 1.0], 2, 3, &Device::Cpu).unwrap()
        };
        // A learning rate high enough that some epoch is worse than the best before it.
        let cfg = Fit { lr: 1.5, batch_size: 16, epochs: 6, ..fit_cfg() };
        let full = fit_with(&make(), &data, &cfg, &Balance::default(), None, 9, &ck, None).unwrap();
        let worse = full.log.iter().find(|e| {
            e.epoch < cfg.epochs && full.log[..e.epoch - 1].iter().any(|b| b.objective <= e.objective)
        });
        let Some(worse) = worse.map(|e| e.epoch) else {
            panic!("no worse epoch to test with: {:?}", full.log)
        };
        std::fs::remove_dir_all(tmp.path()).unwrap();
        std::fs::create_dir_all(tmp.path()).unwrap();
        let fail = FailPoint { epoch: worse, point: Point::End, action: Action::Fail };
        assert!(fit_with(&make(), &data, &cfg, &Balance::default(), None, 9, &ck, Some(&fail)).is_err());
        let commit = Reader::open(&ck.epoch_commit(worse)).unwrap();
        let named = commit.meta("best_commit").expect("a worse epoch names the best one").to_owned();
        assert!(!commit.has("@best/layer0.weight"), "the best weights are not copied");
        let best_file = ck.dir.join(&named);
        assert!(best_file.is_file(), "{named} is kept while it is named");
        let on_disk: Vec<String> = std::fs::read_dir(&ck.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(on_disk.len(), 2, "the newest commit and the one it names: {on_disk:?}");

        // Another epoch's commit in its place: refused by its hash, naming both files.
        let saved = std::fs::read(&best_file).unwrap();
        std::fs::copy(ck.epoch_commit(worse), &best_file).unwrap();
        let e =
            fit_with(&make(), &data, &cfg, &Balance::default(), None, 9, &ck, None).unwrap_err().to_string();
        assert!(e.contains(&named) && e.contains("not the best epoch's"), "{e}");
        // Put back, the run resumes to the uninterrupted numbers.
        std::fs::write(&best_file, &saved).unwrap();
        let resumed = fit_with(&make(), &data, &cfg, &Balance::default(), None, 9, &ck, None).unwrap();
        assert_eq!(untimed(resumed.clone()), untimed(full.clone()));

        // The same kill left by the trainer before: the best weights under `@best/` inside
        // the commit, the best epoch's commit gone. It resumes to the same numbers too (and
        // a later worse epoch, with nothing to name, carries the best weights inside).
        std::fs::remove_dir_all(tmp.path()).unwrap();
        std::fs::create_dir_all(tmp.path()).unwrap();
        assert!(fit_with(&make(), &data, &cfg, &Balance::default(), None, 9, &ck, Some(&fail)).is_err());
        let (path, reference) = (ck.epoch_commit(worse), make());
        let (file, best) = (Reader::open(&path).unwrap(), Reader::open(&best_file).unwrap());
        let mut tensors = Vec::new();
        for (name, t) in model::tensors(&reference) {
            // That layout held the frozen tensors too (here the standardisation), as built.
            let e = checkpoint::Expected::of(&t);
            let read = |r: &Reader| {
                if r.has(&name) { r.tensor(&name, &e, &Device::Cpu).unwrap() } else { t.clone() }
            };
            tensors.push((format!("@best/{name}"), read(&best)));
            tensors.push((name.clone(), read(&file)));
        }
        let opt = AdamW::new(reference.trainable(), Default::default()).unwrap();
        for (i, e) in opt.expected().iter().enumerate() {
            for k in ["m", "v"] {
                let name = format!("@adamw/{k}/{i}");
                tensors.push((name.clone(), file.tensor(&name, e, &Device::Cpu).unwrap()));
            }
        }
        let mut meta = HashMap::from([("format".to_owned(), "tempered-train/1".to_owned())]);
        for key in ["state", "state_f64", "adamw_step", "model_rng", "adversary"] {
            if let Some(v) = file.meta(key) {
                meta.insert(key.to_owned(), v.to_owned());
            }
        }
        drop((file, best));
        checkpoint::write(&path, &tensors, meta).unwrap();
        std::fs::remove_file(&best_file).unwrap();
        let next = FailPoint { epoch: worse + 1, point: Point::End, action: Action::Fail };
        assert!(fit_with(&make(), &data, &cfg, &Balance::default(), None, 9, &ck, Some(&next)).is_err());
        let carried = Reader::open(&ck.epoch_commit(worse + 1)).unwrap();
        assert!(full.best_epoch < worse, "epoch {} is worse too: {:?}", worse + 1, full.log);
        assert!(carried.has("@best/layer0.weight") && carried.meta("best_commit").is_none());
        drop(carried);
        let resumed = fit_with(&make(), &data, &cfg, &Balance::default(), None, 9, &ck, None).unwrap();
        assert_eq!(untimed(resumed), untimed(full));
    }

    /// Bytes and seconds of one epoch commit of an all-MiniLM-L6-v2-shaped BERT (vocabulary
    /// 30522, hidden 384, 6 layers, random weights: sizes and times do not depend on the
    /// values) fine-tuned with `train_layers = 2`, as `pipelines/sentiment-bert.toml` does:
    /// the layout before this trainer (every tensor, and every tensor again under `@best/`
    /// after a worse epoch) against this one. A benchmark, not a CI test (BENCHMARKS.md):
    /// `cargo test --release -p tempered-nn --lib bench_commit -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: writes about a gigabyte of checkpoints; run in a release build"]
    fn bench_commit_size_and_time() {
        use crate::model::params::ParamBuilder;
        use candle_nn::ParamsAdamW;
        use std::time::Instant;

        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("minilm-shaped");
        write_tiny_model(&folder, 5).unwrap();
        let (vocab, h, m, layers, positions) = (30522usize, 384usize, 1536usize, 6usize, 512usize);
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
        for (k, v) in [
            ("vocab_size", vocab),
            ("hidden_size", h),
            ("num_hidden_layers", layers),
            ("num_attention_heads", 12),
            ("intermediate_size", m),
            ("max_position_embeddings", positions),
        ] {
            config[k] = v.into();
        }
        std::fs::write(folder.join("config.json"), config.to_string()).unwrap();
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![vocab, h]),
            ("embeddings.position_embeddings.weight".into(), vec![positions, h]),
            ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
            ("embeddings.LayerNorm.weight".into(), vec![h]),
            ("embeddings.LayerNorm.bias".into(), vec![h]),
            ("pooler.dense.weight".into(), vec![h, h]),
            ("pooler.dense.bias".into(), vec![h]),
        ];
        for l in 0..layers {
            let p = format!("encoder.layer.{l}");
            for (name, n_in, n_out) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", h, m),
                ("output.dense", m, h),
            ] {
                shapes.push((format!("{p}.{name}.weight"), vec![n_out, n_in]));
                shapes.push((format!("{p}.{name}.bias"), vec![n_out]));
            }
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                shapes.push((format!("{p}.{norm}.weight"), vec![h]));
                shapes.push((format!("{p}.{norm}.bias"), vec![h]));
            }
        }
        let tensors: HashMap<String, Tensor> = shapes
            .into_iter()
            .map(|(name, shape)| {
                let t = ParamBuilder::new(1, &Device::Cpu).uniform(&name, &shape, 0.05).unwrap();
                (name, t.as_tensor().clone())
            })
            .collect();
        candle_core::safetensors::save(&tensors, folder.join("model.safetensors")).unwrap();
        let cfg = BertConfig {
            path: folder.clone(),
            train_layers: Some(2),
            max_tokens: 64,
            pooling: Pooling::Mean,
        };
        let bert = BertClassifier::load(&cfg, &folder, 2, 3, &Device::Cpu).unwrap();
        let opt = AdamW::new(bert.trainable(), ParamsAdamW::default()).unwrap();
        let best = model::snapshot(&bert).unwrap();
        let state = |epochs_done: usize, finished: bool| TrainState {
            phase: "clean".into(),
            epochs_done,
            best_epoch: 1,
            best_objective: Some(0.5),
            finished,
            ..Default::default()
        };
        let ck = Checkpoints { dir: tmp.path().join("ck"), phase: "clean".into() };
        std::fs::create_dir_all(&ck.dir).unwrap();
        let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
        // The best of three, each a whole commit: serialised, written, synced and renamed.
        let timed = |f: &mut dyn FnMut()| {
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let old = ck.dir.join("old-layout.safetensors");
        let old_secs = timed(&mut || {
            let mut all = model::tensors(&bert);
            all.extend(best.iter().map(|(n, t)| (format!("@best/{n}"), t.clone())));
            for (i, (m, v)) in opt.moments().unwrap().into_iter().enumerate() {
                all.push((format!("@adamw/m/{i}"), m));
                all.push((format!("@adamw/v/{i}"), v));
            }
            crate::files::write_with(&old, |tmp| checkpoint::write(tmp, &all, HashMap::new())).unwrap();
            sync_dir(&ck.dir).unwrap();
        });
        let frozen_secs = timed(&mut || drop(Frozen::of(&bert).unwrap()));
        let frozen = Frozen::of(&bert).unwrap();
        fn commit<'a>(
            model: &'a dyn Classifier,
            s: &'a TrainState,
            best: Option<&'a [(String, Tensor)]>,
            opt: Option<&'a AdamW>,
            frozen: &'a Frozen,
        ) -> Commit<'a> {
            let frozen = if s.finished { None } else { Some(frozen) };
            Commit { model, state: s, opt, best, frozen, average: None, adversary: None }
        }
        let (s1, s2, done) = (state(1, false), state(2, false), state(2, true));
        let better_secs =
            timed(&mut || write(&ck, &commit(&bert, &s1, None, Some(&opt), &frozen), 1, None).unwrap());
        let better = size(&ck.epoch_commit(1));
        let worse_secs = timed(&mut || {
            write(&ck, &commit(&bert, &s2, Some(&best), Some(&opt), &frozen), 2, None).unwrap()
        });
        let worse = size(&ck.epoch_commit(2));
        let final_secs =
            timed(&mut || write(&ck, &commit(&bert, &done, None, None, &frozen), 2, None).unwrap());
        eprintln!(
            "MiniLM-L6-shaped BERT, train_layers = 2: {} tensors, {} trained, {} frozen",
            model::tensors(&bert).len(),
            bert.trainable().len(),
            frozen.names.len()
        );
        eprintln!("before: epoch commit after a worse epoch {:.1} MB in {old_secs:.3} s", size(&old));
        eprintln!("after:  epoch commit after a better epoch {better:.1} MB in {better_secs:.3} s");
        eprintln!("after:  epoch commit after a worse epoch {worse:.1} MB in {worse_secs:.3} s");
        eprintln!("after:  hashing the frozen tensors (once per phase) {frozen_secs:.3} s");
        eprintln!("both:   final commit {:.1} MB in {final_secs:.3} s", size(&ck.best()));
    }
}
