//! The `[data]` section of an audio pipeline ([`AudioDataConfig`], documented in the
//! [parent module](super)) and what can be checked of it before any file is read.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::pattern::Pattern;
use crate::error::Invalid;

/// `[data]` of an audio pipeline. See the [module docs](super) for the TOML shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioDataConfig {
    /// A folder of `.wav` files, relative to the pipeline's base dir.
    pub path: PathBuf,
    /// File-name pattern with `{label}` (and optionally `{index}` and other fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A CSV with columns `file`, `label` and optionally `split`, relative to the base dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    #[serde(default = "defaults::sample_rate")]
    pub sample_rate: u32,
    /// Resample files at another rate (else they are bad files).
    #[serde(default)]
    pub resample: bool,
    /// Samples per waveform (at `sample_rate`) after padding / trimming.
    #[serde(default = "defaults::length")]
    pub length: usize,
    #[serde(default)]
    pub align: Align,
    #[serde(default)]
    pub on_bad_file: OnBadFile,
    /// Keep a seeded, class-stratified subsample of this many files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default)]
    pub split: AudioSplitConfig,
}

/// Where a clip sits in its fixed-length row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    /// Trim both ends of a long clip equally; pad a short one equally on both sides.
    #[default]
    Center,
    /// Keep the beginning; pad at the end.
    Start,
}

/// What a file that cannot be loaded does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadFile {
    /// Stop with an error naming the file.
    #[default]
    Fail,
    /// Leave it out and count it.
    Skip,
}

/// `[data.split]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSplitConfig {
    /// Files whose `{index}` field is in this inclusive range are the test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_index: Option<[u64; 2]>,
    /// Without `test_index`: the seeded share of each class that is test.
    pub test: f64,
    /// The seeded share of each class of the non-test files held out for validation.
    pub validation: f64,
}

impl Default for AudioSplitConfig {
    fn default() -> Self {
        Self { test_index: None, test: 0.2, validation: 0.1 }
    }
}

mod defaults {
    pub fn sample_rate() -> u32 {
        8000
    }
    pub fn length() -> usize {
        8000
    }
}

/// The longest waveform, in seconds: a row is allocated for every file, and the model's
/// activations grow with it.
pub const MAX_SECONDS: usize = 600;

impl AudioDataConfig {
    /// Why `length` is too long, if it is.
    pub fn length_error(&self) -> Option<String> {
        let max = MAX_SECONDS.saturating_mul(self.sample_rate as usize);
        (self.length > max).then(|| {
            format!(
                "length = {} samples is longer than {} minutes at {} Hz (at most {max} samples)",
                self.length,
                MAX_SECONDS / 60,
                self.sample_rate
            )
        })
    }

    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.path.as_os_str().is_empty() {
            return Err("`path` must name a folder of .wav files".into());
        }
        match (&self.pattern, &self.manifest) {
            (None, None) => {
                return Err(
                    "set `pattern` (labels from file names, e.g. \"{label}_{speaker}_{index}.wav\") or `manifest` (a CSV of file,label)"
                        .into(),
                );
            }
            (Some(_), Some(_)) => return Err("set `pattern` or `manifest`, not both".into()),
            (Some(p), None) => {
                let pat = Pattern::parse(p)?;
                if self.split.test_index.is_some() && !pat.has("index") {
                    return Err("`split.test_index` needs an `{index}` field in `pattern`".into());
                }
            }
            (None, Some(_)) => {
                if self.split.test_index.is_some() {
                    return Err("`split.test_index` reads `{index}` from `pattern`; with a manifest use its `split` column".into());
                }
            }
        }
        if !(1000..=384_000).contains(&self.sample_rate) {
            return Err(
                format!("sample_rate must be between 1000 and 384000 Hz, got {}", self.sample_rate).into()
            );
        }
        if self.length == 0 {
            return Err("length must be at least 1 sample".into());
        }
        if let Some(msg) = self.length_error() {
            return Err(msg.into());
        }
        if self.limit == Some(0) {
            return Err("limit must be at least 1 file".into());
        }
        let s = &self.split;
        if !(0.0..1.0).contains(&s.test) || !(0.0..1.0).contains(&s.validation) {
            return Err("split.test and split.validation must be in [0, 1)".into());
        }
        if let Some([a, b]) = s.test_index
            && a > b
        {
            return Err(format!(
                "split.test_index = [{a}, {b}] is empty: the first must not exceed the second"
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;

    #[test]
    fn validation_names_the_problem() {
        let mut cfg = config("{label}_{speaker}_{index}.wav");
        assert!(cfg.validate().is_ok());
        cfg.pattern = Some("{label}.wav".into());
        assert!(cfg.validate().unwrap_err().contains("{index}"));
        cfg.pattern = None;
        assert!(cfg.validate().unwrap_err().contains("manifest"));
    }
}
