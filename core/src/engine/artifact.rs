//! The attack phases' results as typed files in the run folder, so that `--resume` loads
//! what a phase already finished instead of running it again.
//!
//! A phase (`attacks-before`, `attacks-after`, each `[tradeoff]` point's validation
//! measurements `tradeoff-p<i>`) is made of units: one attack run, or one sweep point. Each
//! unit that finishes is written at once, atomically ([`crate::files`]), to
//! `phases/<phase>/<unit>.json`:
//!
//! - `inputs` ([`Inputs`]): everything its result is a function of — the hash of every
//!   tensor of the model it attacked, the operating point, the evaluated split (its name and
//!   the hash of its examples and labels), the run's seed, the attack as resolved (plugin,
//!   attack, effective params, classes, batch size, query budget), the plugin library (its
//!   declared name, version and ABI, its size and content hash), how many examples are
//!   evaluated and kept, and the engine's version;
//! - `result`: what the unit adds to the run (its metrics, kept examples or sweep point);
//! - `checksum`: a hash of `inputs` and `result` as written.
//!
//! Staleness: a unit is reused only when its stored inputs equal the current ones field for
//! field; anything else (an edited `[[attack]]` params block, another `[evaluate]
//! examples`, a hardened model that came out differently) recomputes that unit alone and
//! overwrites its file. Results are deterministic for their inputs, so a reused unit is
//! exactly what recomputing it would give, timings apart (a reused unit keeps the seconds
//! it took when it ran).
//!
//! Damage: a file that does not parse, is of another format, or whose checksum does not
//! match what it holds (cut short, edited by hand) is never used. It is reported with a
//! warning naming the file and recomputed, which is always safe, since its inputs are all
//! still at hand; a run never fails or uses a number it cannot vouch for because of it.
//!
//! A unit that failed and was skipped (`on_error = "skip"`) leaves no file: it is tried
//! again on resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::{Examples, Labelled};
use crate::evaluate::{Decision, Sample};
use crate::model::{self, Classifier, checkpoint};
use crate::pipeline::{AttackConfig, Pipeline};
use crate::plugin_host::Plugin;
use crate::{Error, Result, files};

const FORMAT: &str = "tempered-phase/1";
/// The folder of the run directory that holds every phase's units.
pub(super) const DIR: &str = "phases";

/// What one unit's result is a function of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Inputs {
    /// The unit, as the phase names it (`pgd`, `pgd epsilon=0.25`).
    pub unit: String,
    /// `tempered-core`'s version: another engine may measure differently.
    pub engine: String,
    /// [`checkpoint::hash_tensors`] of every tensor of the model attacked.
    pub model: String,
    /// The operating point the attack is judged at: the positive class and the threshold's
    /// bits (`None`: argmax).
    pub decision: Option<(u32, u32)>,
    /// `test` or `validation`, and the hash of its examples and labels.
    pub split: String,
    pub split_hash: String,
    pub seed: u64,
    /// The `[[attack]]` as resolved, with the params the plugin is created with.
    pub attack: serde_json::Value,
    pub plugin: PluginMark,
    /// `[evaluate] examples`.
    pub examples: Option<usize>,
    /// Adversarial examples kept for the report.
    pub samples: usize,
}

impl Inputs {
    /// The first field that differs from `other`, for the log.
    fn difference(&self, other: &Self) -> Option<String> {
        let (a, b) = (serde_json::to_value(self).ok()?, serde_json::to_value(other).ok()?);
        let (a, b) = (a.as_object()?, b.as_object()?);
        a.iter().find(|(k, v)| b.get(*k) != Some(v)).map(|(k, _)| k.clone())
    }
}

/// The plugin library an attack ran in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PluginMark {
    pub name: String,
    pub version: String,
    pub abi: u32,
    pub bytes: u64,
    pub hash: String,
}

/// What every unit of a phase shares: the model, the split and the decision, hashed once.
pub(super) struct Context {
    model: String,
    decision: Option<(u32, u32)>,
    split: String,
    split_hash: String,
    seed: u64,
    examples: Option<usize>,
    plugins: HashMap<PathBuf, PluginMark>,
}

impl Context {
    pub fn new(
        pipeline: &Pipeline,
        model: &dyn Classifier,
        split_name: &str,
        split: &Labelled,
        decision: Option<Decision>,
    ) -> Result<Self> {
        Ok(Self {
            model: checkpoint::hash_tensors(&model::tensors(model))?,
            decision: decision.map(|d| (d.positive, d.threshold.to_bits())),
            split: split_name.to_owned(),
            split_hash: hash_split(split)?,
            seed: pipeline.seed(),
            examples: pipeline.spec.evaluate().examples,
            plugins: HashMap::new(),
        })
    }

    /// The inputs of unit `unit`: `config` run with `params` from `plugin`, keeping
    /// `samples` examples.
    pub fn inputs(
        &mut self,
        unit: &str,
        config: &AttackConfig,
        params: &serde_json::Value,
        plugin: &Plugin,
        samples: usize,
    ) -> Result<Inputs> {
        let mark = match self.plugins.get(&plugin.path) {
            Some(m) => m.clone(),
            None => {
                let file = super::fingerprint::mark(&plugin.path)?;
                let m = PluginMark {
                    name: plugin.name.clone(),
                    version: plugin.version.clone(),
                    abi: plugin.abi_version,
                    bytes: file.bytes,
                    hash: file.hash,
                };
                self.plugins.insert(plugin.path.clone(), m.clone());
                m
            }
        };
        Ok(Inputs {
            unit: unit.to_owned(),
            engine: env!("CARGO_PKG_VERSION").to_owned(),
            model: self.model.clone(),
            decision: self.decision,
            split: self.split.clone(),
            split_hash: self.split_hash.clone(),
            seed: self.seed,
            attack: serde_json::json!({
                "plugin": config.plugin,
                "attack": config.attack,
                "params": params,
                "classes": config.classes,
                "batch_size": config.batch_size,
                "query_budget": config.query_budget,
            }),
            plugin: mark,
            examples: self.examples,
            samples,
        })
    }
}

/// Rows of a split on disk hashed per read.
const HASH_ROWS: usize = 16_384;

/// A hash of a split's examples (values as bits, texts as bytes) and labels. Rows on disk
/// hash exactly as the same rows in memory: a phase's inputs do not depend on where the
/// rows are kept.
fn hash_split(split: &Labelled) -> Result<String> {
    let mut h = crate::hash::Fnv::new();
    match &split.x {
        Examples::Dense { data, width } => {
            h.word(0);
            h.word(*width as u64);
            data.iter().for_each(|v| h.word(u64::from(v.to_bits())));
        }
        Examples::Stored(rows) => {
            h.word(0);
            h.word(rows.width() as u64);
            for start in (0..rows.len()).step_by(HASH_ROWS) {
                let values = rows.range(start, (start + HASH_ROWS).min(rows.len()))?;
                values.iter().for_each(|v| h.word(u64::from(v.to_bits())));
            }
        }
        Examples::Text(texts) => {
            h.word(1);
            for t in texts {
                h.word(t.len() as u64);
                h.bytes(t.as_bytes());
            }
        }
    }
    h.word(split.y.len() as u64);
    split.y.iter().for_each(|&y| h.word(u64::from(y)));
    Ok(format!("{:016x}", h.finish()))
}

/// One unit's file.
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    format: String,
    inputs: Inputs,
    result: T,
    checksum: String,
}

fn checksum<T: Serialize>(inputs: &Inputs, result: &T) -> Result<String> {
    let bytes = serde_json::to_vec(&(inputs, result))
        .map_err(|e| Error::external("cannot encode a phase result", e))?;
    Ok(format!("{:016x}", crate::hash::fnv1a(&bytes)))
}

/// What reading a unit's file found.
enum Found<T> {
    Missing,
    /// Its inputs differ: the field that does.
    Stale(String),
    /// Unusable: why.
    Damaged(String),
    Fresh(T),
}

fn read<T: Serialize + DeserializeOwned>(path: &Path, inputs: &Inputs) -> Found<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Missing,
        Err(e) => return Found::Damaged(format!("cannot be read ({e})")),
    };
    let stored: Stored<T> = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => return Found::Damaged(format!("does not parse ({e})")),
    };
    if stored.format != FORMAT {
        return Found::Damaged(format!("is `{}`, not `{FORMAT}`", stored.format));
    }
    match checksum(&stored.inputs, &stored.result) {
        Ok(sum) if sum == stored.checksum => {}
        _ => return Found::Damaged("does not match its checksum (cut short or edited)".into()),
    }
    match stored.inputs.difference(inputs) {
        Some(field) => Found::Stale(field),
        None if stored.inputs == *inputs => Found::Fresh(stored.result),
        None => Found::Stale("inputs".into()),
    }
}

/// The units of one phase, read and written as they finish.
pub(super) struct PhaseStore {
    dir: PathBuf,
    name: String,
    /// Units reached so far, for the test-only fail point `<phase>:<n>:end`.
    done: usize,
    /// Units reused from an earlier process, for the log's summary.
    pub reused: usize,
}

impl PhaseStore {
    pub fn new(run: &Path, name: &str) -> Self {
        Self { dir: run.join(DIR).join(name), name: name.to_owned(), done: 0, reused: 0 }
    }

    /// The file of unit `unit`.
    pub fn file(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{}.json", crate::modality::sanitize(unit)))
    }

    /// The result of unit `unit`: read from its file when that holds a result for exactly
    /// `inputs`, else computed (`None`: the unit failed and was skipped, which is not saved)
    /// and written.
    pub fn unit<T: Serialize + DeserializeOwned>(
        &mut self,
        unit: &str,
        inputs: &Inputs,
        compute: impl FnOnce() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let path = self.file(unit);
        let found = read::<T>(&path, inputs);
        let out = match found {
            Found::Fresh(t) => {
                tracing::info!("{}: reusing {unit} from {}", self.name, path.display());
                self.reused += 1;
                Some(t)
            }
            other => {
                match other {
                    Found::Stale(field) => tracing::info!(
                        "{}: {unit} is run again: its {field} changed since {} was written",
                        self.name,
                        path.display()
                    ),
                    Found::Damaged(why) => tracing::warn!(
                        "{}: {} {why}: its result is not used, {unit} is run again",
                        self.name,
                        path.display()
                    ),
                    _ => {}
                }
                let result = compute()?;
                if let Some(t) = &result {
                    std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
                    let stored = Stored {
                        format: FORMAT.to_owned(),
                        inputs: inputs.clone(),
                        result: t,
                        checksum: checksum(inputs, t)?,
                    };
                    let json = serde_json::to_vec_pretty(&stored)
                        .map_err(|e| Error::external(format!("{}: cannot encode", path.display()), e))?;
                    files::write(&path, &json)?;
                }
                result
            }
        };
        self.done += 1;
        crate::train::unit_done(&self.name, self.done)?;
        Ok(out)
    }
}

/// A kept adversarial example as a phase file holds it: every float as its bits, so it
/// reads back exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct StoredSample {
    index: usize,
    label: u32,
    original: StoredExamples,
    adversarial: StoredExamples,
    original_prob: u32,
    adversarial_prob: u32,
    adversarial_pred: u32,
    success: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum StoredExamples {
    Dense { bits: Vec<u32>, width: usize },
    Text(Vec<String>),
}

impl TryFrom<&Examples> for StoredExamples {
    type Error = Error;

    /// Kept examples are selected ones, in memory; rows on disk would be read (all of them).
    fn try_from(x: &Examples) -> Result<Self> {
        let dense = |data: &[f32], width: usize| Self::Dense {
            bits: data.iter().map(|v| v.to_bits()).collect(),
            width,
        };
        Ok(match x {
            Examples::Dense { data, width } => dense(data, *width),
            Examples::Text(t) => Self::Text(t.clone()),
            Examples::Stored(rows) => dense(&rows.range(0, rows.len())?, rows.width()),
        })
    }
}

impl From<StoredExamples> for Examples {
    fn from(x: StoredExamples) -> Self {
        match x {
            StoredExamples::Dense { bits, width } => {
                Examples::Dense { data: bits.into_iter().map(f32::from_bits).collect(), width }
            }
            StoredExamples::Text(t) => Examples::Text(t),
        }
    }
}

impl TryFrom<&Sample> for StoredSample {
    type Error = Error;

    fn try_from(s: &Sample) -> Result<Self> {
        Ok(Self {
            index: s.index,
            label: s.label,
            original: (&s.original).try_into()?,
            adversarial: (&s.adversarial).try_into()?,
            original_prob: s.original_prob.to_bits(),
            adversarial_prob: s.adversarial_prob.to_bits(),
            adversarial_pred: s.adversarial_pred,
            success: s.success,
        })
    }
}

impl From<StoredSample> for Sample {
    fn from(s: StoredSample) -> Self {
        Sample {
            index: s.index,
            label: s.label,
            original: s.original.into(),
            adversarial: s.adversarial.into(),
            original_prob: f32::from_bits(s.original_prob),
            adversarial_prob: f32::from_bits(s.adversarial_prob),
            adversarial_pred: s.adversarial_pred,
            success: s.success,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            unit: "pgd".into(),
            engine: "0".into(),
            model: "00ff".into(),
            decision: Some((1, 0.25f32.to_bits())),
            split: "test".into(),
            split_hash: hash_split(&Labelled {
                x: Examples::Dense { data: vec![0.5, 1.5], width: 2 },
                y: vec![1],
            })
            .unwrap(),
            seed: 7,
            attack: serde_json::json!({ "params": { "epsilon": 0.5 } }),
            plugin: PluginMark {
                name: "tabular".into(),
                version: "1".into(),
                abi: 1,
                bytes: 3,
                hash: "ab".into(),
            },
            examples: None,
            samples: 4,
        }
    }

    /// Rows on disk hash as the same rows in memory, across several reads.
    #[test]
    fn a_split_on_disk_hashes_as_the_same_split_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * HASH_ROWS + 5;
        let data: Vec<f32> = (0..n * 3).map(|i| (i % 1013) as f32 * 0.25 - 7.0).collect();
        let dense =
            Labelled { x: Examples::Dense { data, width: 3 }, y: (0..n).map(|i| (i % 2) as u32).collect() };
        let disk = crate::data::stored(&dense, dir.path());
        assert_eq!(hash_split(&disk).unwrap(), hash_split(&dense).unwrap());
        let mut other = dense.clone();
        if let Examples::Dense { data, .. } = &mut other.x {
            data[n * 3 - 1] += 1.0;
        }
        let other_disk = crate::data::stored(&other, dir.path());
        assert_ne!(hash_split(&other_disk).unwrap(), hash_split(&disk).unwrap(), "the last row counts");
        assert_eq!(hash_split(&other_disk).unwrap(), hash_split(&other).unwrap());
        let empty = Labelled { x: Examples::Dense { data: vec![], width: 3 }, y: vec![] };
        assert_eq!(
            hash_split(&crate::data::stored(&empty, dir.path())).unwrap(),
            hash_split(&empty).unwrap()
        );
    }

    fn sample() -> StoredSample {
        let s = Sample {
            index: 3,
            label: 1,
            original: Examples::Dense { data: vec![0.1, -0.0], width: 2 },
            adversarial: Examples::Dense { data: vec![0.1 + f32::EPSILON, f32::MIN_POSITIVE], width: 2 },
            original_prob: 0.7,
            adversarial_prob: 1.0 / 3.0,
            adversarial_pred: 0,
            success: true,
        };
        StoredSample::try_from(&s).unwrap()
    }

    /// The same inputs read back the result bit for bit; changed inputs say which field; an
    /// edited or cut file is refused, so the caller runs the unit again.
    #[test]
    fn a_unit_is_reused_only_for_its_inputs_and_only_when_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PhaseStore::new(dir.path(), "attacks-before");
        let mut runs = 0;
        let mut unit = |store: &mut PhaseStore, inputs: &Inputs| {
            store
                .unit("pgd", inputs, || {
                    runs += 1;
                    Ok(Some(vec![sample()]))
                })
                .unwrap()
                .unwrap()
        };
        let first = unit(&mut store, &inputs());
        let path = store.file("pgd");
        assert!(matches!(read::<Vec<StoredSample>>(&path, &inputs()), Found::Fresh(ref s) if *s == first));
        let back: Sample = first[0].clone().into();
        assert_eq!(back.adversarial_prob.to_bits(), (1.0f32 / 3.0).to_bits());
        let Examples::Dense { data, .. } = back.original else { panic!() };
        assert_eq!(data[1].to_bits(), (-0.0f32).to_bits(), "even the sign of a zero comes back");

        let mut other = inputs();
        other.attack = serde_json::json!({ "params": { "epsilon": 0.25 } });
        assert!(matches!(read::<Vec<StoredSample>>(&path, &other), Found::Stale(ref f) if f == "attack"));
        other = inputs();
        other.examples = Some(100);
        assert!(matches!(read::<Vec<StoredSample>>(&path, &other), Found::Stale(ref f) if f == "examples"));
        other = inputs();
        other.model = "0100".into();
        assert!(matches!(read::<Vec<StoredSample>>(&path, &other), Found::Stale(ref f) if f == "model"));

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"index\": 3", "\"index\": 4", 1)).unwrap();
        assert!(
            matches!(read::<Vec<StoredSample>>(&path, &inputs()), Found::Damaged(ref w) if w.contains("checksum"))
        );
        std::fs::write(&path, &text[..text.len() - 10]).unwrap();
        assert!(
            matches!(read::<Vec<StoredSample>>(&path, &inputs()), Found::Damaged(ref w) if w.contains("parse"))
        );
        // Caught, run again and rewritten: intact from then on.
        assert_eq!(unit(&mut store, &inputs()), first);
        assert!(matches!(read::<Vec<StoredSample>>(&path, &inputs()), Found::Fresh(_)));
        assert_eq!(runs, 2, "run once at first, once after the damage, never when intact");
    }
}
