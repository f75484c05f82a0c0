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

pub mod defence;
pub mod span;
pub mod tradeoff;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempered_plugin::Modality;

use crate::data;
use crate::data::audio::AudioDataConfig;
use crate::data::tabular::TabularDataConfig;
use crate::data::text::TextDataConfig;
use crate::model::TabularModelConfig;
use crate::model::audio::AudioModelConfig;
use crate::model::mlp::TabularModelKind;
use crate::model::text::{TextModelConfig, TextModelKind};
use crate::{Error, Result};
use span::Key;

/// A pipeline, parsed and validated: only a `Pipeline` can be run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it came from; relative data paths resolve against its repository root.
    pub file: PathBuf,
    pub base_dir: PathBuf,
    pub spec: Spec,
}

/// Everything in a pipeline file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecOf<D, M> {
    pub pipeline: PipelineSection,
    pub data: D,
    pub model: M,
    #[serde(default, rename = "attack")]
    pub attacks: Vec<AttackConfig>,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub harden: HardenConfig,
    #[serde(default)]
    pub evaluate: EvaluateConfig,
    #[serde(default)]
    pub report: ReportConfig,
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Input preprocessing defences, judged against the attacks after the last phase.
    #[serde(default, rename = "defence", skip_serializing_if = "Vec::is_empty")]
    pub defences: Vec<defence::DefenceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tradeoff: Option<tradeoff::TradeoffConfig>,
}

/// The modality-specific parts, by `pipeline.modality`.
#[derive(Debug, Clone)]
pub enum Spec {
    Tabular(SpecOf<TabularDataConfig, TabularModelConfig>),
    Text(SpecOf<TextDataConfig, TextModelConfig>),
    Audio(SpecOf<AudioDataConfig, AudioModelConfig>),
}

macro_rules! common {
    ($spec:expr, $s:ident => $e:expr) => {
        match $spec {
            Spec::Tabular($s) => $e,
            Spec::Text($s) => $e,
            Spec::Audio($s) => $e,
        }
    };
}

impl Spec {
    pub fn modality(&self) -> Modality {
        match self {
            Spec::Tabular(_) => Modality::Tabular,
            Spec::Text(_) => Modality::Text,
            Spec::Audio(_) => Modality::Audio,
        }
    }
    pub fn pipeline(&self) -> &PipelineSection {
        common!(self, s => &s.pipeline)
    }
    pub fn pipeline_mut(&mut self) -> &mut PipelineSection {
        common!(self, s => &mut s.pipeline)
    }
    pub fn attacks(&self) -> &[AttackConfig] {
        common!(self, s => &s.attacks)
    }
    pub fn train(&self) -> &TrainConfig {
        common!(self, s => &s.train)
    }
    pub fn harden(&self) -> &HardenConfig {
        common!(self, s => &s.harden)
    }
    pub fn harden_mut(&mut self) -> &mut HardenConfig {
        common!(self, s => &mut s.harden)
    }
    pub fn tradeoff(&self) -> Option<&tradeoff::TradeoffConfig> {
        common!(self, s => s.tradeoff.as_ref())
    }
    pub fn evaluate(&self) -> &EvaluateConfig {
        common!(self, s => &s.evaluate)
    }
    pub fn report(&self) -> &ReportConfig {
        common!(self, s => &s.report)
    }
    pub fn plugins(&self) -> &PluginsConfig {
        common!(self, s => &s.plugins)
    }
    pub fn defences(&self) -> &[defence::DefenceConfig] {
        common!(self, s => &s.defences)
    }
    /// The resolved configuration, as TOML (saved with every run).
    pub fn to_toml(&self) -> Result<String> {
        common!(self, s => toml::to_string_pretty(s)).map_err(|e| Error::external("cannot write config", e))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    pub name: String,
    pub modality: Modality,
    /// Seeds splits, initialisation, shuffling and every attack: same seed, same numbers.
    #[serde(default)]
    pub seed: u64,
    /// Runs go to `<out_dir>/<name>/<timestamp>/` unless `--out` is given.
    #[serde(default = "defaults::out_dir")]
    pub out_dir: PathBuf,
    #[serde(default)]
    pub device: DeviceKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    /// Needs a CUDA build (`just cuda-build`, README "Building for a CUDA GPU").
    Cuda,
}

/// What to do when an attack's plugin fails during evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the run with the plugin's error.
    #[default]
    Fail,
    /// Report the error, leave that attack out, and go on.
    Skip,
}

/// One `[[attack]]`: a plugin's attack with its options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackConfig {
    /// How the rest of the file and the report refer to it (default: the attack name).
    #[serde(default)]
    pub id: String,
    /// The plugin's declared name (found on the search path) ...
    pub plugin: String,
    /// ... or an explicit path to its shared library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    pub attack: String,
    /// Passed to the plugin as JSON; the plugin validates them.
    #[serde(default)]
    pub params: toml::Table,
    /// Only examples of these true classes are attacked (e.g. `[1]`: only frauds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<u32>>,
    #[serde(default = "defaults::attack_batch")]
    pub batch_size: usize,
    /// Oracle queries one example may use; the host refuses more (and counts them either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_budget: Option<u64>,
    #[serde(default)]
    pub on_error: OnError,
}

/// `[train]`: the clean model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Stop after this many epochs without a better validation loss (0: never).
    pub patience: usize,
    /// Per-class loss weights, in clean training and in adversarial fine-tuning: at a 3 %
    /// fraud rate an unweighted model learns that "never fraud" is 97 % right.
    pub class_weight: ClassWeight,
    /// How each epoch draws its training examples.
    pub sampling: Sampling,
    /// Start from a trained model instead of a fresh one: a checkpoint file, or a run
    /// folder (its hardened model if it has one, else its clean one). Same architecture.
    /// With `epochs = 0` the loaded model is used as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 256,
            lr: 1e-3,
            weight_decay: 1e-4,
            patience: 5,
            class_weight: ClassWeight::default(),
            sampling: Sampling::None,
            init: None,
        }
    }
}

/// `class_weight = "none" | "balanced" | [w0, w1, …]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "\"none\", \"balanced\" or a list of one weight per class")]
pub enum ClassWeight {
    Mode(WeightMode),
    /// One weight per class, in class order; the loss is their weighted mean.
    Weights(Vec<f64>),
}

impl Default for ClassWeight {
    fn default() -> Self {
        ClassWeight::Mode(WeightMode::None)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightMode {
    #[default]
    None,
    /// `n / (k · n_c)` from the training split (scikit-learn's "balanced"): every class
    /// weighs as much in the loss as every other.
    Balanced,
}

impl ClassWeight {
    pub fn is_none(&self) -> bool {
        *self == ClassWeight::Mode(WeightMode::None)
    }

    /// The weight of each of `counts.len()` classes given the training split's class
    /// counts; `None` when the loss is unweighted. An explicit list of the wrong length is
    /// an error naming what the data holds.
    pub fn resolve(&self, counts: &[usize]) -> std::result::Result<Option<Vec<f64>>, String> {
        match self {
            ClassWeight::Mode(WeightMode::None) => Ok(None),
            ClassWeight::Mode(WeightMode::Balanced) => {
                let n: usize = counts.iter().sum();
                let present = counts.iter().filter(|&&c| c > 0).count().max(1);
                // A class absent from training has no rows to weigh; 0 keeps it out.
                Ok(Some(
                    counts
                        .iter()
                        .map(|&c| if c == 0 { 0.0 } else { n as f64 / (present as f64 * c as f64) })
                        .collect(),
                ))
            }
            ClassWeight::Weights(w) if w.len() != counts.len() => Err(format!(
                "gives {} weight(s) but the data has {} classes: give one weight per class, in class order",
                w.len(),
                counts.len()
            )),
            ClassWeight::Weights(w) => Ok(Some(w.clone())),
        }
    }
}

/// `sampling = "none" | "balanced"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    /// Every training example once per epoch.
    #[default]
    None,
    /// Each epoch draws as many examples as the training split holds, with replacement,
    /// every class equally likely: the rare class is seen as often as the common one.
    Balanced,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// More clean epochs: the baseline hardening is measured against.
    Clean,
    /// Madry et al.: train on the named attack's examples (mixed with clean ones).
    #[default]
    Pgd,
    /// Fast adversarial training (Wong et al.): the named attack with
    /// `steps = 1, random_start = true` unless `params` says otherwise.
    Fgsm,
    /// A2T-like: each epoch attack a share of the training set and train on clean +
    /// adversarial examples.
    AttackInTheLoop,
    /// TRADES (Zhang et al. 2019): loss `CE(clean) + beta · KL(p_clean ‖ p_adv)`, the
    /// named attack aiming away from the model's clean prediction.
    Trades,
}

/// `[harden] early_stopping`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EarlyStopping {
    /// The clean and adversarial validation losses, mixed as in training.
    #[default]
    Objective,
    /// Accuracy on the attacked validation examples (Rice et al. 2020).
    RobustAccuracy,
}

/// `[harden]`: adversarial fine-tuning of the clean model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardenConfig {
    /// Skip hardening (and the "after" attacks) when false.
    pub enabled: bool,
    pub strategy: Strategy,
    /// The `[[attack]]` id whose examples the model trains on, or a list of ids: each
    /// batch is then shared among the attacks (several threat models at once).
    #[serde(with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub attack: Vec<String>,
    /// Overrides of that attack's params while training (e.g. fewer steps).
    pub params: toml::Table,
    pub epochs: usize,
    pub lr: f64,
    /// Loss = (1 − w) · clean + w · adversarial (not for `trades`, which uses `beta`).
    pub adversarial_weight: f64,
    /// TRADES: the weight of the KL term (6 in the paper; larger buys robustness with
    /// accuracy).
    pub beta: f64,
    /// Which epoch is kept: the best `objective` (default), or the best
    /// `robust-accuracy` on the attacked validation examples, against robust overfitting.
    pub early_stopping: EarlyStopping,
    /// Share of each epoch's training examples that are attacked (attack-in-the-loop).
    pub share: f64,
    /// Clean epochs before the first adversarial one (attack-in-the-loop).
    pub clean_epochs: usize,
    pub patience: usize,
    /// `fgsm`: watch each epoch with the attack as evaluated (a PGD probe on validation).
    /// A collapse under it stops training at the best epoch before; FGSM examples that the
    /// model beats while the probe still wins switch the rest of hardening to the probe's
    /// attack. `false` trains with FGSM unwatched (to show what the guard prevents).
    pub guard: bool,
}

impl Default for HardenConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            strategy: Strategy::Pgd,
            attack: Vec::new(),
            params: toml::Table::new(),
            epochs: 10,
            lr: 5e-4,
            adversarial_weight: 0.5,
            beta: 6.0,
            early_stopping: EarlyStopping::Objective,
            share: 1.0,
            clean_epochs: 0,
            patience: 3,
            guard: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    Validation,
    #[default]
    Test,
}

/// `[evaluate]`: which attacks run before and after hardening, and on what.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateConfig {
    pub split: SplitName,
    /// Attack ids to run (default: every `[[attack]]`).
    pub attacks: Option<Vec<String>>,
    /// At most this many examples per attack (default: the whole split).
    pub examples: Option<usize>,
    #[serde(rename = "sweep")]
    pub sweeps: Vec<SweepConfig>,
    /// Binary tasks: the decision threshold, chosen on the validation split for a target
    /// false-positive rate or precision, instead of argmax (0.5). The evaluated split is
    /// then scored once at that fixed threshold, and attacks target the frauds it detects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<OperatingPoint>,
}

impl Default for EvaluateConfig {
    fn default() -> Self {
        Self {
            split: SplitName::Test,
            attacks: None,
            examples: None,
            sweeps: Vec::new(),
            operating_point: None,
        }
    }
}

/// `operating_point = { fpr = 0.01 }` or `{ precision = 0.9 }`: exactly one target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatingPoint {
    /// The largest false-positive rate allowed on validation; the lowest threshold within
    /// it is taken (the most frauds caught for that alert budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fpr: Option<f64>,
    /// The lowest precision allowed on validation; the lowest threshold reaching it is taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
}

/// What an operating point asks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Fpr(f64),
    Precision(f64),
}

impl OperatingPoint {
    /// The target, once validated (exactly one of the two is set).
    pub fn target(&self) -> Target {
        match (self.fpr, self.precision) {
            (Some(f), _) => Target::Fpr(f),
            (None, Some(p)) => Target::Precision(p),
            (None, None) => unreachable!("validated: an operating point has a target"),
        }
    }

    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        match (self.fpr, self.precision) {
            (None, None) => Err((
                "",
                "operating_point needs a target: `{ fpr = 0.01 }` (false-positive rate) or `{ precision = 0.9 }`"
                    .into(),
            )),
            (Some(_), Some(_)) => Err((
                "",
                "operating_point takes one target, `fpr` or `precision`, not both: one threshold cannot be chosen for two"
                    .into(),
            )),
            (Some(f), None) if !(f > 0.0 && f < 1.0) => Err((
                "fpr",
                format!("operating_point.fpr = {f}: a false-positive rate strictly between 0 and 1 (0.01 is 1 %)"),
            )),
            (None, Some(p)) if !(p > 0.0 && p <= 1.0) => Err((
                "precision",
                format!("operating_point.precision = {p}: a precision in (0, 1] (0.9 is 90 %)"),
            )),
            _ => Ok(()),
        }
    }
}

/// `[[evaluate.sweep]]`: one attack re-run with one param set to each value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    pub attack: String,
    pub param: String,
    pub values: Vec<f64>,
    /// Unit shown on the plot's x axis (default: the param name).
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Adversarial examples shown in report.md and saved with the run.
    pub samples: usize,
    pub plots: bool,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self { samples: 12, plots: true }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Extra folders searched for plugins, before the defaults.
    pub search_path: Vec<PathBuf>,
}

mod defaults {
    use std::path::PathBuf;

    pub fn out_dir() -> PathBuf {
        PathBuf::from("runs")
    }
    pub fn attack_batch() -> usize {
        256
    }
}

#[derive(Deserialize)]
struct Head {
    pipeline: HeadSection,
}

#[derive(Deserialize)]
struct HeadSection {
    modality: Modality,
}

/// A validation failure: the key path it is about, and what is wrong.
pub struct Invalid {
    pub path: Vec<Key>,
    pub msg: String,
}

impl Invalid {
    pub fn new(path: Vec<Key>, msg: impl Into<String>) -> Self {
        Self { path, msg: msg.into() }
    }
}

fn keys(names: &[&str]) -> Vec<Key> {
    names.iter().map(|&n| n.into()).collect()
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
        fill_attack_ids(&mut spec);
        defence::fill_ids(common!(&mut spec, s => &mut s.defences));
        if let Err(bad) = validate(&spec) {
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
    pub fn set_device(&mut self, device: DeviceKind) -> crate::Result<()> {
        if device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
            return Err(crate::Error::Config(
                "--device cuda needs a CUDA build (`just cuda-build`; this one is CPU-only)".into(),
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

/// Why `name` cannot name a folder inside the runs folder, if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is longer than a file name can be (255 bytes)")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.starts_with('.') {
        Some("starts with `.`")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// The longest file name Linux and macOS file systems take.
const MAX_NAME_BYTES: usize = 255;

/// Bytes per trained parameter: the weight, its gradient and AdamW's two moments.
const BYTES_PER_PARAM: f64 = 16.0;
/// Bytes per activation kept for the backward pass: the value and its gradient.
const BYTES_PER_ACTIVATION: f64 = 8.0;
/// The memory limit where /proc/meminfo cannot be read.
const FALLBACK_MEMORY: u64 = 64 << 30;

/// A lower bound on what training a model takes: the data's width, class count and
/// vocabulary are unknown before the data is read, so the smallest values stand in.
struct Footprint {
    params: f64,
    /// Per example.
    activations: f64,
}

impl Footprint {
    fn bytes(&self, batch: usize) -> f64 {
        self.params * BYTES_PER_PARAM + self.activations * batch as f64 * BYTES_PER_ACTIVATION
    }
}

fn mlp_footprint(width: usize, hidden: &[usize]) -> Footprint {
    let mut dims = vec![width as f64];
    dims.extend(hidden.iter().map(|&h| h as f64));
    dims.push(2.0);
    Footprint { params: dims.windows(2).map(|d| (d[0] + 1.0) * d[1]).sum(), activations: dims.iter().sum() }
}

/// The M5's shapes as `model::audio` builds them (first conv `kernel`/`stride`, then kernel 3
/// with one zero each side; max-pool after each), for waveforms of `length` samples.
fn m5_footprint(m: &AudioModelConfig, length: usize) -> Footprint {
    let per_norm = if m.norm == crate::model::audio::Norm::Batch { 2.0 } else { 1.0 };
    let (mut params, mut c_in) = (0.0, 1.0);
    for (i, &c) in m.channels.iter().enumerate() {
        let k = if i == 0 { m.kernel as f64 } else { 3.0 };
        params += c as f64 * k * c_in + per_norm * c as f64;
        c_in = c as f64;
    }
    params += (c_in + 1.0) * 2.0;
    let mut activations = length as f64;
    if length >= m.kernel && m.stride > 0 && m.pool > 0 {
        let mut l_in = length + (m.stride - (length - m.kernel) % m.stride) % m.stride;
        for (i, &c) in m.channels.iter().enumerate() {
            let (k, s, pad) = if i == 0 { (m.kernel, m.stride, 0) } else { (3, 1, 1) };
            let Some(span) = (l_in + 2 * pad).checked_sub(k) else { break };
            let t_out = span / s + 1;
            let p_out = t_out / m.pool;
            // The conv output, then the pooled values, their argmax and the normalised output.
            activations += (t_out + 3 * p_out) as f64 * c as f64;
            l_in = p_out;
        }
    }
    Footprint { params, activations }
}

fn word_cnn_footprint(m: &TextModelConfig) -> Footprint {
    let (d, f, words) = (m.embedding_dim as f64, m.filters as f64, m.max_words as f64);
    let convs: f64 = m.widths.iter().map(|&w| w as f64 * d * f + f).sum();
    let features = f * m.widths.len() as f64;
    Footprint {
        // [PAD] and [UNK] at least in the vocabulary, two classes at least.
        params: 2.0 * d + convs + (features + 1.0) * 2.0,
        activations: words * d + words * features,
    }
}

/// MemAvailable of /proc/meminfo in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `1.5 GiB`.
fn human(bytes: f64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{v:.0} bytes") } else { format!("{v:.1} {}", units[u]) }
}

/// Refuses a model whose estimated training memory is more than the machine has: such a
/// model would abort on allocation, possibly hours in.
fn check_footprint(spec: &Spec) -> std::result::Result<(), Invalid> {
    let batch =
        spec.attacks().iter().map(|a| a.batch_size).chain([spec.train().batch_size]).max().unwrap_or(1);
    let (fp, key) = match spec {
        Spec::Tabular(s) => {
            let hidden: &[usize] = match s.model.kind {
                TabularModelKind::Mlp => &s.model.hidden,
                TabularModelKind::Logistic => &[],
            };
            let width = s.data.features.as_ref().map_or(1, Vec::len);
            (mlp_footprint(width, hidden), keys(&["model", "hidden"]))
        }
        Spec::Text(s) if s.model.kind == TextModelKind::WordCnn => {
            (word_cnn_footprint(&s.model), keys(&["model"]))
        }
        Spec::Text(_) => return Ok(()),
        Spec::Audio(s) => (m5_footprint(&s.model, s.data.length), keys(&["model", "channels"])),
    };
    let need = fp.bytes(batch);
    let (limit, what) = match available_memory() {
        Some(b) => (b as f64, "what this machine has available (MemAvailable in /proc/meminfo)"),
        None => (FALLBACK_MEMORY as f64, "the fixed cap used where /proc/meminfo cannot be read"),
    };
    if need > limit {
        return Err(Invalid::new(
            key,
            format!(
                "this model needs about {} to train ({:.3e} parameters × {BYTES_PER_PARAM} bytes, plus {:.3e} activations per example × {batch} examples per batch × {BYTES_PER_ACTIVATION} bytes), more than the {} that is {what}; make it smaller",
                human(need),
                fp.params,
                fp.activations,
                human(limit)
            ),
        ));
    }
    Ok(())
}

/// The model settings that make no model at all.
fn check_model(spec: &Spec) -> std::result::Result<(), Invalid> {
    match spec {
        Spec::Tabular(s) => {
            if s.model.kind == TabularModelKind::Mlp
                && let Some(i) = s.model.hidden.iter().position(|&h| h == 0)
            {
                return Err(Invalid::new(
                    vec!["model".into(), "hidden".into(), Key::Index(i)],
                    format!("model.hidden[{i}] = 0: every hidden layer needs at least one unit"),
                ));
            }
        }
        Spec::Text(s) => {
            if s.model.kind == TextModelKind::WordCnn {
                s.model.check_word_cnn().map_err(|m| Invalid::new(keys(&["model"]), m))?;
            }
        }
        Spec::Audio(s) => {
            if let Some(i) = s.model.channels.iter().position(|&c| c == 0) {
                return Err(Invalid::new(
                    vec!["model".into(), "channels".into(), Key::Index(i)],
                    format!("model.channels[{i}] = 0: every conv block needs at least one channel"),
                ));
            }
            s.model.validate().map_err(|m| Invalid::new(keys(&["model"]), m))?;
            if s.data.length < s.model.kernel {
                // The model would refuse it only once the data is read.
                return Err(Invalid::new(
                    keys(&["data", "length"]),
                    format!(
                        "length = {} samples is shorter than the M5's first conv kernel (model.kernel = {})",
                        s.data.length, s.model.kernel
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The `[train]` and `[evaluate]` settings for imbalanced data, as far as they can be
/// checked without the data (the class count comes with it: see
/// [`Pipeline::config_error`]).
fn check_imbalance(spec: &Spec) -> std::result::Result<(), Invalid> {
    let t = spec.train();
    if let ClassWeight::Weights(w) = &t.class_weight {
        if w.is_empty() {
            return Err(Invalid::new(
                keys(&["train", "class_weight"]),
                "train.class_weight = []: give one weight per class, or \"balanced\"",
            ));
        }
        if let Some(i) = w.iter().position(|&x| !(x >= 0.0 && x.is_finite())) {
            return Err(Invalid::new(
                vec!["train".into(), "class_weight".into(), Key::Index(i)],
                format!("train.class_weight[{i}] = {}: a weight is a finite number ≥ 0", w[i]),
            ));
        }
        if w.iter().all(|&x| x == 0.0) {
            return Err(Invalid::new(
                keys(&["train", "class_weight"]),
                "train.class_weight: every weight is 0, so nothing would be learnt",
            ));
        }
    }
    if !t.class_weight.is_none() && t.sampling != Sampling::None {
        return Err(Invalid::new(
            keys(&["train", "sampling"]),
            "train.sampling = \"balanced\" with train.class_weight: both rebalance the classes, so \
             together they overcorrect; choose one",
        ));
    }
    if let Some(op) = &spec.evaluate().operating_point {
        if spec.modality() != Modality::Tabular {
            return Err(Invalid::new(
                keys(&["evaluate", "operating_point"]),
                format!(
                    "evaluate.operating_point needs a binary task with a positive class (a tabular \
                     table of two classes); a {} pipeline has none",
                    spec.modality()
                ),
            ));
        }
        if let Err((key, msg)) = op.check() {
            let mut path = keys(&["evaluate", "operating_point"]);
            if !key.is_empty() {
                path.push(key.into());
            }
            return Err(Invalid::new(path, msg));
        }
    }
    Ok(())
}

fn fill_attack_ids(spec: &mut Spec) {
    let attacks = common!(spec, s => &mut s.attacks);
    for a in attacks.iter_mut() {
        if a.id.is_empty() {
            a.id = a.attack.clone();
        }
    }
}

fn validate(spec: &Spec) -> std::result::Result<(), Invalid> {
    let p = spec.pipeline();
    if let Some(why) = name_problem(&p.name) {
        return Err(Invalid::new(
            keys(&["pipeline", "name"]),
            format!(
                "name {} {why}: it names the run's folder under {}/, so it must be a plain file name (no `/` or `\\`, not starting with `.`)",
                data::shown(&p.name),
                p.out_dir.display()
            ),
        ));
    }
    match spec {
        Spec::Tabular(s) => s.data.validate().map_err(|m| Invalid::new(keys(&["data"]), m))?,
        Spec::Text(s) => s.data.validate().map_err(|m| Invalid::new(keys(&["data"]), m))?,
        Spec::Audio(s) => {
            if let Some(m) = s.data.length_error() {
                return Err(Invalid::new(keys(&["data", "length"]), m));
            }
            s.data.validate().map_err(|m| Invalid::new(keys(&["data"]), m))?
        }
    }
    check_model(spec)?;
    check_footprint(spec)?;
    let attacks = spec.attacks();
    let mut seen = BTreeMap::new();
    for (i, a) in attacks.iter().enumerate() {
        let at = |k: &str| vec![Key::from("attack"), Key::Index(i), k.into()];
        if let Some(j) = seen.insert(a.id.clone(), i) {
            return Err(Invalid::new(
                at("id"),
                format!(
                    "attack id `{}` is used by attacks #{} and #{}; give each a unique `id`",
                    a.id,
                    j + 1,
                    i + 1
                ),
            ));
        }
        if a.batch_size == 0 {
            return Err(Invalid::new(at("batch_size"), "batch_size must be at least 1"));
        }
        if a.query_budget == Some(0) {
            return Err(Invalid::new(
                at("query_budget"),
                "query_budget = 0: a budget of zero queries can attack nothing (leave it out for no budget)",
            ));
        }
        if a.classes.as_ref().is_some_and(Vec::is_empty) {
            return Err(Invalid::new(
                at("classes"),
                "classes = [] attacks no example: list the true classes to attack, or leave it out for all",
            ));
        }
    }
    let known = |id: &str| attacks.iter().any(|a| a.id == id);
    let t = spec.train();
    if t.batch_size == 0 || t.lr <= 0.0 || !t.lr.is_finite() {
        return Err(Invalid::new(keys(&["train"]), "train.batch_size must be ≥ 1 and train.lr > 0"));
    }
    if t.epochs == 0 && t.init.is_none() {
        return Err(Invalid::new(
            keys(&["train", "epochs"]),
            "train.epochs = 0 would attack and harden an untrained model: set at least 1, or `init` to a trained one",
        ));
    }
    check_imbalance(spec)?;
    let h = spec.harden();
    if h.enabled {
        if h.epochs == 0 {
            return Err(Invalid::new(
                keys(&["harden", "epochs"]),
                "harden.epochs = 0 hardens nothing: set at least 1, or `enabled = false` to skip hardening",
            ));
        }
        if !(0.0..=1.0).contains(&h.adversarial_weight) {
            return Err(Invalid::new(
                keys(&["harden", "adversarial_weight"]),
                "adversarial_weight must be in [0, 1]",
            ));
        }
        if !(h.share > 0.0 && h.share <= 1.0) {
            return Err(Invalid::new(keys(&["harden", "share"]), "share must be in (0, 1]"));
        }
        if h.lr <= 0.0 || !h.lr.is_finite() {
            return Err(Invalid::new(keys(&["harden", "lr"]), "lr must be > 0"));
        }
        if h.early_stopping == EarlyStopping::RobustAccuracy && h.strategy == Strategy::Clean {
            return Err(Invalid::new(
                keys(&["harden", "early_stopping"]),
                "\"robust-accuracy\" needs an attack to measure it: a clean strategy has none",
            ));
        }
        if !(h.beta.is_finite() && h.beta > 0.0) {
            return Err(Invalid::new(keys(&["harden", "beta"]), "beta must be a finite number > 0"));
        }
        if h.attack.is_empty() && h.strategy != Strategy::Clean {
            return Err(Invalid::new(
                keys(&["harden", "strategy"]),
                "this strategy trains on an attack's examples: set `harden.attack` to an [[attack]] id",
            ));
        }
        if let Some(id) = h.attack.iter().find(|id| !known(id)) {
            return Err(Invalid::new(keys(&["harden", "attack"]), format!("no [[attack]] has id `{id}`")));
        }
        if let Some((i, id)) = h.attack.iter().enumerate().find(|(i, id)| h.attack[..*i].contains(id)) {
            return Err(Invalid::new(
                vec!["harden".into(), "attack".into(), Key::Index(i)],
                format!("`{id}` is listed twice"),
            ));
        }
    }
    let e = spec.evaluate();
    if let Some(ids) = &e.attacks {
        for (i, id) in ids.iter().enumerate() {
            if !known(id) {
                return Err(Invalid::new(
                    vec!["evaluate".into(), "attacks".into(), Key::Index(i)],
                    format!("no [[attack]] has id `{id}`"),
                ));
            }
        }
    }
    for (i, sw) in e.sweeps.iter().enumerate() {
        let at = |k: &str| vec![Key::from("evaluate"), "sweep".into(), Key::Index(i), k.into()];
        if !known(&sw.attack) {
            return Err(Invalid::new(at("attack"), format!("no [[attack]] has id `{}`", sw.attack)));
        }
        if sw.values.is_empty() {
            return Err(Invalid::new(at("values"), "a sweep needs at least one value"));
        }
    }
    tradeoff::check(spec)?;
    defence::validate(spec)?;
    if p.device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
        return Err(Invalid::new(
            keys(&["pipeline", "device"]),
            "device = \"cuda\" needs a CUDA build (`just cuda-build`; this one is CPU-only)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[pipeline]
name = "t"
modality = "tabular"
seed = 7

[data]
path = "x.csv"
label = "y"

[model]
kind = "mlp"

[[attack]]
plugin = "tabular"
attack = "pgd"
params = { epsilon = 0.5 }

[harden]
attack = "pgd"
"#;

    fn parse(src: &str) -> Result<Pipeline> {
        Pipeline::parse(Path::new("pipelines/t.toml"), src)
    }

    fn err(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.seed(), 7);
        assert_eq!(p.spec.attacks()[0].id, "pgd");
        assert_eq!(p.spec.train().batch_size, 256);
        assert_eq!(p.spec.harden().strategy, Strategy::Pgd);
        assert_eq!(p.base_dir, PathBuf::from("."));
        let again = p.spec.to_toml().unwrap();
        assert!(again.contains("adversarial_weight"), "resolved config lists defaults:\n{again}");
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let src = GOOD.replace("seed = 7", "seed = 7\nsed = 8");
        assert_eq!(
            err(&src),
            "pipelines/t.toml:6:1: unknown field `sed`, expected one of `name`, `modality`, `seed`, `out_dir`, `device`"
        );
    }

    #[test]
    fn syntax_and_type_errors_name_line_and_column() {
        let e = err(&GOOD.replace("seed = 7", "seed = = 7"));
        assert!(e.starts_with("pipelines/t.toml:5:8: "), "{e}");
        let e = err(&GOOD.replace("seed = 7", "seed = \"seven\""));
        assert!(e.starts_with("pipelines/t.toml:5:8: "), "{e}");
    }

    #[test]
    fn validation_errors_point_at_the_offending_key() {
        let src = GOOD.replace("[harden]\nattack = \"pgd\"", "[harden]\nattack = \"nope\"");
        assert_eq!(err(&src), "pipelines/t.toml:20:1: no [[attack]] has id `nope`");
    }

    #[test]
    fn imbalance_settings_default_to_nothing_and_parse() {
        let p = parse(GOOD).unwrap();
        assert!(p.spec.train().class_weight.is_none());
        assert_eq!(p.spec.train().sampling, Sampling::None);
        assert!(p.spec.evaluate().operating_point.is_none());
        let src = format!(
            "{GOOD}\n[train]\nclass_weight = \"balanced\"\n[evaluate]\noperating_point = {{ fpr = 0.01 }}\n"
        );
        let p = parse(&src).unwrap();
        assert_eq!(p.spec.train().class_weight, ClassWeight::Mode(WeightMode::Balanced));
        assert_eq!(p.spec.evaluate().operating_point.unwrap().target(), Target::Fpr(0.01));
        let again = p.spec.to_toml().unwrap();
        assert!(again.contains("class_weight = \"balanced\"") && again.contains("fpr = 0.01"), "{again}");
        let p = parse(&format!("{GOOD}\n[train]\nclass_weight = [1.0, 20.0]\n")).unwrap();
        assert_eq!(p.spec.train().class_weight, ClassWeight::Weights(vec![1.0, 20.0]));
        assert_eq!(p.spec.train().class_weight.resolve(&[90, 10]).unwrap(), Some(vec![1.0, 20.0]));
        let balanced = ClassWeight::Mode(WeightMode::Balanced).resolve(&[90, 10]).unwrap().unwrap();
        assert!((balanced[0] - 100.0 / 180.0).abs() < 1e-12 && (balanced[1] - 5.0).abs() < 1e-12);
        let e = p.spec.train().class_weight.resolve(&[1, 2, 3]).unwrap_err();
        assert!(e.contains("gives 2 weight(s) but the data has 3 classes"), "{e}");
    }

    #[test]
    fn imbalance_settings_are_validated_naming_the_key() {
        let with = |extra: &str| err(&format!("{GOOD}\n{extra}\n"));
        let e = with("[evaluate]\noperating_point = { fpr = 1.5 }");
        assert!(e.starts_with("pipelines/t.toml:23:21: operating_point.fpr = 1.5"), "{e}");
        let e = with("[evaluate]\noperating_point = { fpr = 0.01, precision = 0.9 }");
        assert!(e.contains("one target, `fpr` or `precision`, not both"), "{e}");
        let e = with("[evaluate]\noperating_point = {}");
        assert!(e.contains("needs a target"), "{e}");
        let e = with("[evaluate]\noperating_point = { precision = 0 }");
        assert!(e.contains("operating_point.precision = 0"), "{e}");
        let e = with("[evaluate]\noperating_point = { recall = 0.5 }");
        assert!(e.contains("unknown field `recall`"), "{e}");
        let e = with("[train]\nclass_weight = \"heavy\"");
        assert!(e.starts_with("pipelines/t.toml:") && e.contains("\"none\", \"balanced\" or a list"), "{e}");
        let e = with("[train]\nclass_weight = [1.0, -2.0]");
        assert!(e.contains("train.class_weight[1] = -2"), "{e}");
        let e = with("[train]\nclass_weight = [0.0, 0.0]");
        assert!(e.contains("every weight is 0"), "{e}");
        let e = with("[train]\nclass_weight = \"balanced\"\nsampling = \"balanced\"");
        assert!(e.starts_with("pipelines/t.toml:2") && e.contains("choose one"), "{e}");
        let text = GOOD
            .replace("modality = \"tabular\"", "modality = \"text\"")
            .replace("[model]\nkind = \"mlp\"", "[model]\nkind = \"word-cnn\"");
        let e = err(&format!("{text}\n[evaluate]\noperating_point = {{ fpr = 0.01 }}\n"));
        assert!(e.contains("needs a binary task") && e.contains("a text pipeline has none"), "{e}");
    }

    #[test]
    fn missing_modality_is_explained() {
        let e = err("[pipeline]\nname = \"x\"\n");
        assert!(e.contains("missing `pipeline.modality`"), "{e}");
    }
}

/// `harden.attack`: one id as a string, or several as a list.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        })
    }

    /// One id is written back as a string, as it was most likely given.
    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}
