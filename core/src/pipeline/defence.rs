//! `[[defence]]`: input preprocessing put in front of the evaluated model, each judged
//! against the pipeline's attacks with the plain gradient and with an adaptive one (BPDA,
//! EOT); a text defence against attacks crafted on the undefended model and against
//! attacks run with the defence inside the oracle. The settings are flat keys checked against the `kind` here, so a misplaced key is
//! named at its own line rather than at the table's.

use serde::{Deserialize, Serialize};
use tempered_plugin::Modality;

use super::span::Key;
use super::{AtKey, Spec};

/// One `[[defence]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenceConfig {
    /// How the report names it (default: the kind).
    #[serde(default)]
    pub id: String,
    pub kind: DefenceKind,
    /// `quantise`: the grid step of every column (in `unit`s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// Tabular `quantise` and `random-noise`: whether `step` / `sigma` are in standard
    /// deviations of each column (as the attacks' epsilon) or in raw units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<StepUnit>,
    /// `bit-depth`: bits per sample, 1 to 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// `median`: the window in samples, odd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// `low-pass`: the cut-off frequency in Hz, below half the sample rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff_hz: Option<f64>,
    /// `low-pass`: taps of the windowed-sinc filter, odd (default 31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taps: Option<usize>,
    /// `random-noise`: the Gaussian noise's standard deviation (in `unit`s; audio: sample
    /// values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// `random-noise`: draws of the noise the adaptive (EOT) gradient averages over
    /// (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// `spelling`: a word outside the model's vocabulary is replaced by the vocabulary word
    /// at the fewest character edits, when that is at most this many (1 to
    /// [`MAX_EDIT_DISTANCE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_distance: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefenceKind {
    /// Tabular: every column rounded to the nearest multiple of its step.
    Quantise,
    /// Audio: samples rounded to `2^(bits-1)` levels per unit.
    BitDepth,
    /// Audio: running median over `window` samples.
    Median,
    /// Audio: windowed-sinc FIR low-pass.
    LowPass,
    /// Tabular or audio: Gaussian noise added to the input, drawn afresh for every input.
    RandomNoise,
    /// Text: each word the model does not know is replaced by the nearest word it knows.
    Spelling,
}

impl DefenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quantise => "quantise",
            Self::BitDepth => "bit-depth",
            Self::Median => "median",
            Self::LowPass => "low-pass",
            Self::RandomNoise => "random-noise",
            Self::Spelling => "spelling",
        }
    }

    fn modalities(self) -> &'static [Modality] {
        match self {
            Self::Quantise => &[Modality::Tabular],
            Self::BitDepth | Self::Median | Self::LowPass => &[Modality::Audio],
            Self::RandomNoise => &[Modality::Tabular, Modality::Audio],
            Self::Spelling => &[Modality::Text],
        }
    }

    /// The settings this kind reads.
    fn settings(self) -> &'static [&'static str] {
        match self {
            Self::Quantise => &["step", "unit"],
            Self::BitDepth => &["bits"],
            Self::Median => &["window"],
            Self::LowPass => &["cutoff_hz", "taps"],
            Self::RandomNoise => &["sigma", "unit", "samples"],
            Self::Spelling => &["max_distance"],
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepUnit {
    /// Standard deviations of each column, as the tabular attacks' epsilon.
    #[default]
    Std,
    Raw,
}

/// Default EOT draws of a randomised defence.
pub const DEFAULT_SAMPLES: usize = 8;
/// Default taps of the low-pass filter.
pub const DEFAULT_TAPS: usize = 31;
/// The most EOT draws: each is a full gradient call per attack step.
const MAX_SAMPLES: usize = 256;
/// The largest `max_distance` of `spelling`: past three edits most short words are within
/// reach of dozens of others, and the correction is a guess.
pub const MAX_EDIT_DISTANCE: usize = 3;

impl DefenceConfig {
    /// The settings given, by name.
    fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |name, set: bool| {
            if set {
                out.push(name);
            }
        };
        add("step", self.step.is_some());
        add("unit", self.unit.is_some());
        add("bits", self.bits.is_some());
        add("window", self.window.is_some());
        add("cutoff_hz", self.cutoff_hz.is_some());
        add("taps", self.taps.is_some());
        add("sigma", self.sigma.is_some());
        add("samples", self.samples.is_some());
        add("max_distance", self.max_distance.is_some());
        out
    }
}

/// Fills each defence's `id` from its kind where the file leaves it out.
pub(super) fn fill_ids(defences: &mut [DefenceConfig]) {
    for d in defences {
        if d.id.is_empty() {
            d.id = d.kind.as_str().to_owned();
        }
    }
}

/// Everything about `[[defence]]` that can be checked before the data is read.
pub(super) fn validate(spec: &Spec) -> std::result::Result<(), AtKey> {
    let modality = spec.modality();
    let defences = spec.defences();
    for (i, d) in defences.iter().enumerate() {
        let at = |k: &str| vec![Key::from("defence"), Key::Index(i), k.into()];
        let bad = |k: &str, msg: String| Err(AtKey::new(at(k), format!("defence `{}`: {msg}", d.id)));
        if let Some(j) = defences[..i].iter().position(|o| o.id == d.id) {
            return bad(
                "id",
                format!("the id is used by defences #{} and #{}; give each a unique `id`", j + 1, i + 1),
            );
        }
        if !d.kind.modalities().contains(&modality) {
            let fits: Vec<String> = d.kind.modalities().iter().map(|m| m.to_string()).collect();
            return bad(
                "kind",
                format!(
                    "kind = \"{}\" preprocesses {} inputs; this pipeline is {modality}",
                    d.kind.as_str(),
                    fits.join(" or ")
                ),
            );
        }
        if let Some(k) = d.given().into_iter().find(|k| !d.kind.settings().contains(k)) {
            return bad(
                k,
                format!(
                    "`{k}` is not a setting of kind = \"{}\" (it takes {})",
                    d.kind.as_str(),
                    d.kind.settings().iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let positive = |k: &str, v: Option<f64>| match v {
            None => bad(k, format!("kind = \"{}\" needs `{k}`", d.kind.as_str())),
            Some(v) if !(v.is_finite() && v > 0.0) => bad(k, format!("{k} = {v}: a finite number > 0")),
            Some(_) => Ok(()),
        };
        match d.kind {
            DefenceKind::Quantise => positive("step", d.step)?,
            DefenceKind::BitDepth => match d.bits {
                None => return bad("kind", "kind = \"bit-depth\" needs `bits` (1 to 16)".into()),
                Some(b) if !(1..=16).contains(&b) => {
                    return bad("bits", format!("bits = {b}: between 1 and 16"));
                }
                Some(_) => {}
            },
            DefenceKind::Median => match d.window {
                None => return bad("kind", "kind = \"median\" needs `window` (odd, ≥ 3)".into()),
                Some(w) if w < 3 || w % 2 == 0 || w > 1001 => {
                    return bad(
                        "window",
                        format!(
                            "window = {w}: an odd number of samples from 3 to 1001 (centred on each sample)"
                        ),
                    );
                }
                Some(_) => {}
            },
            DefenceKind::LowPass => {
                if d.cutoff_hz.is_none() {
                    return bad("kind", "kind = \"low-pass\" needs `cutoff_hz`".into());
                }
                positive("cutoff_hz", d.cutoff_hz)?;
                let nyquist = match spec {
                    Spec::Audio(s) => f64::from(s.data.sample_rate) / 2.0,
                    _ => f64::INFINITY,
                };
                let c = d.cutoff_hz.unwrap_or_default();
                if c >= nyquist {
                    return bad(
                        "cutoff_hz",
                        format!("cutoff_hz = {c}: below half the sample rate ({nyquist} Hz)"),
                    );
                }
                let taps = d.taps.unwrap_or(DEFAULT_TAPS);
                if taps < 3 || taps % 2 == 0 || taps > 1001 {
                    return bad("taps", format!("taps = {taps}: an odd number from 3 to 1001"));
                }
            }
            DefenceKind::RandomNoise => {
                if d.sigma.is_none() {
                    return bad("kind", "kind = \"random-noise\" needs `sigma`".into());
                }
                positive("sigma", d.sigma)?;
                let s = d.samples.unwrap_or(DEFAULT_SAMPLES);
                if s == 0 || s > MAX_SAMPLES {
                    return bad("samples", format!("samples = {s}: from 1 to {MAX_SAMPLES} draws"));
                }
                if spec.evaluate().operating_point.is_some() {
                    return bad(
                        "kind",
                        "a randomised defence with [evaluate] operating_point is not supported yet: the \
                         thresholded model takes one draw per gradient, so EOT would not be measured"
                            .into(),
                    );
                }
            }
            DefenceKind::Spelling => {
                match d.max_distance {
                    None => {
                        return bad(
                            "kind",
                            format!(
                                "kind = \"spelling\" needs `max_distance` (1 to {MAX_EDIT_DISTANCE} character edits)"
                            ),
                        );
                    }
                    Some(m) if !(1..=MAX_EDIT_DISTANCE).contains(&m) => {
                        return bad(
                            "max_distance",
                            format!("max_distance = {m}: from 1 to {MAX_EDIT_DISTANCE} character edits"),
                        );
                    }
                    Some(_) => {}
                }
                if let Spec::Text(s) = spec
                    && s.model.kind != crate::model::text::TextModelKind::WordCnn
                {
                    return bad(
                        "kind",
                        "kind = \"spelling\" corrects towards the model's word vocabulary, which only \
                         [model] kind = \"word-cnn\" has"
                            .into(),
                    );
                }
            }
        }
        if d.unit.is_some() && modality != Modality::Tabular {
            return bad("unit", "`unit` is for tabular columns; audio settings are in sample values".into());
        }
    }
    Ok(())
}
