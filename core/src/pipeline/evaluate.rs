//! `[evaluate]`: the split attacks run on, which attacks, sweeps, and the operating point
//! of a binary task.

use serde::{Deserialize, Serialize};

use super::span::{AtKey, keys};

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

    pub(super) fn check(&self) -> Result<(), AtKey> {
        let at = |key: &str| keys(&["evaluate", "operating_point", key]);
        match (self.fpr, self.precision) {
            (None, None) => Err(AtKey::new(
                keys(&["evaluate", "operating_point"]),
                "operating_point needs a target: `{ fpr = 0.01 }` (false-positive rate) or `{ precision = 0.9 }`",
            )),
            (Some(_), Some(_)) => Err(AtKey::new(
                keys(&["evaluate", "operating_point"]),
                "operating_point takes one target, `fpr` or `precision`, not both: one threshold cannot be chosen for two",
            )),
            (Some(f), None) if !(f > 0.0 && f < 1.0) => Err(AtKey::new(
                at("fpr"),
                format!(
                    "operating_point.fpr = {f}: a false-positive rate strictly between 0 and 1 (0.01 is 1 %)"
                ),
            )),
            (None, Some(p)) if !(p > 0.0 && p <= 1.0) => Err(AtKey::new(
                at("precision"),
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
