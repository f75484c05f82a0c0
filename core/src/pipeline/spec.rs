//! What a pipeline file holds: the [`Spec`] of each modality (its `[data]` and `[model]`
//! types), the `[pipeline]` table, and the sections every modality shares.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tempered_plugin::Modality;

use super::{AttackConfig, EvaluateConfig, HardenConfig, TrainConfig, defence, tradeoff};
use crate::data::audio::AudioDataConfig;
use crate::data::tabular::TabularDataConfig;
use crate::data::text::TextDataConfig;
use crate::model::TabularModelConfig;
use crate::model::audio::AudioModelConfig;
use crate::model::text::TextModelConfig;
use crate::{Error, Result};

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
    pub(super) fn attacks_mut(&mut self) -> &mut [AttackConfig] {
        common!(self, s => &mut s.attacks)
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
    pub(super) fn defences_mut(&mut self) -> &mut [defence::DefenceConfig] {
        common!(self, s => &mut s.defences)
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
    #[serde(default = "default_out_dir")]
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

fn default_out_dir() -> PathBuf {
    PathBuf::from("runs")
}
