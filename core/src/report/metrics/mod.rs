//! `metrics.json`: the machine-readable result of a run, the interface users script against.
//!
//! Keys are stable; new fields are added with `#[serde(default)]` so older files still read.
//! Rates are fractions in `0..=1`. A number that could not be computed (a rate over zero
//! examples) is written as JSON `null` and read back as `NaN`.

pub mod defences;
pub mod tradeoff;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::scores::{self, Confusion};
use crate::{Error, Result};

/// The plugin ABI's tag is the one name for a modality: it serializes as the same
/// lowercase string (`"tabular"`, `"text"`, `"audio"`).
pub use tempered_plugin::Modality;

/// Whether a measurement was taken on the model before or after adversarial fine-tuning.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Before,
    After,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::After => "after",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Metrics {
    pub pipeline: String,
    pub modality: Modality,
    pub seed: u64,
    pub clean: Clean,
    #[serde(default)]
    pub attacks: Vec<AttackMetrics>,
    #[serde(default)]
    pub sweeps: Vec<SweepPoint>,
    /// Wall-clock seconds per pipeline phase.
    #[serde(default, deserialize_with = "map_nan_if_null")]
    pub seconds: BTreeMap<String, f64>,
    /// Attacks (or sweep points) left out under `on_error = "skip"`, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// What the hardening attack did to the training examples it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardening: Option<HardeningStats>,
    /// `[tradeoff]`: every point's validation numbers and the one chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tradeoff: Option<tradeoff::Tradeoff>,
    /// `[[defence]]`: each preprocessing defence against the plain and the adaptive attacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defences: Vec<defences::DefenceMetrics>,
    /// `[model] synonym_encoding`: what the model reads as one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synonym_encoding: Option<SynonymEncodingStats>,
}

/// The word-CNN's synonym clusters.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynonymEncodingStats {
    /// Representatives in the vocabulary.
    pub clusters: usize,
    /// Words outside the vocabulary read as a representative.
    pub aliases: usize,
    /// The vocabulary, `[PAD]` and `[UNK]` included: rows of the embedding table.
    pub vocabulary: usize,
}

/// An attack run that failed and was skipped instead of failing the whole run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Skipped {
    /// The attack id, or `id param=value` for a sweep point.
    pub id: String,
    pub phase: Phase,
    pub reason: String,
}

/// Training examples handed to the hardening attack, and how many it changed: an attack
/// that changes nothing (`steps = 0`, a zero budget) trains against nothing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct HardeningStats {
    pub examples: usize,
    pub changed: usize,
    /// Examples that broke the modality's rules or a declared budget: the host trained on
    /// the original instead, so the model never learns from an example outside the threat
    /// model.
    #[serde(default)]
    pub violations: usize,
}

/// Clean (unattacked) test-set performance; `after` is `null` when the pipeline has no
/// adversarial fine-tuning stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Clean {
    pub before: CleanMetrics,
    #[serde(default)]
    pub after: Option<CleanMetrics>,
}

/// The binary-only fields are omitted for multi-class tasks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CleanMetrics {
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f64,
    pub examples: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_auc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_at_1pct_fpr: Option<f64>,
    /// At the decision threshold (0.5, i.e. argmax): a "robust" model that flags everything
    /// keeps a fine recall and shows up here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_positive_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// How many different classes the model predicted: 1 means it ignores its input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_classes: Option<usize>,
    /// With `[evaluate] operating_point`: the threshold chosen on the validation split, and
    /// what it gives there and here. `accuracy`, `false_positive_rate`, `precision`,
    /// `recall` and `predicted_classes` are then at this threshold, not at 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<OperatingPointMetrics>,
}

/// A decision threshold chosen on validation and the split evaluated at it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OperatingPointMetrics {
    /// What the threshold was chosen for, e.g. `{"fpr": 0.01}`.
    pub target: crate::pipeline::Target,
    /// An example is flagged positive when p(positive) ≥ this.
    pub threshold: f64,
    /// Positives of the evaluated split flagged at the threshold: the frauds an attack on
    /// detected frauds can attack.
    pub detected: usize,
    pub positives: usize,
    /// The same threshold on the validation split it was chosen on.
    pub validation: AtThreshold,
}

/// Counts and rates at one threshold; a rate over nothing is `null`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AtThreshold {
    pub examples: usize,
    pub positives: usize,
    pub detected: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub false_positive_rate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub precision: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub recall: f64,
}

impl AtThreshold {
    pub fn from_confusion(c: &Confusion) -> Self {
        AtThreshold {
            examples: c.total(),
            positives: c.true_positives + c.false_negatives,
            detected: c.true_positives,
            false_positive_rate: c.false_positive_rate(),
            precision: c.precision(),
            recall: c.recall(),
        }
    }
}

impl CleanMetrics {
    /// Accuracy only, for multi-class tasks.
    pub fn from_predictions(predicted: &[usize], labels: &[usize]) -> Self {
        assert_eq!(predicted.len(), labels.len(), "one label per prediction");
        let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        let accuracy = if labels.is_empty() { f64::NAN } else { right as f64 / labels.len() as f64 };
        CleanMetrics {
            accuracy,
            examples: labels.len(),
            pr_auc: None,
            recall_at_1pct_fpr: None,
            false_positive_rate: None,
            precision: None,
            recall: None,
            predicted_classes: None,
            operating_point: None,
        }
    }

    /// Every field, from positive-class scores (probabilities) and the decision threshold.
    /// Undefined values (no positive in the test set…) become `None`.
    pub fn from_binary_scores(scores: &[f32], labels: &[bool], threshold: f32) -> Self {
        let c = Confusion::at(scores, labels, threshold);
        let defined = |x: f64| (!x.is_nan()).then_some(x);
        CleanMetrics {
            accuracy: c.accuracy(),
            examples: c.total(),
            pr_auc: defined(scores::average_precision(scores, labels)),
            recall_at_1pct_fpr: defined(scores::recall_at_fpr(scores, labels, 0.01)),
            false_positive_rate: defined(c.false_positive_rate()),
            precision: defined(c.precision()),
            recall: defined(c.recall()),
            predicted_classes: None,
            operating_point: None,
        }
    }
}

/// One attack run against one model (before or after fine-tuning).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AttackMetrics {
    /// The pipeline's name for this attack and its settings, e.g. `pgd-linf-0.5`; pairs the
    /// before and after runs.
    pub id: String,
    pub plugin: String,
    pub attack: String,
    pub phase: Phase,
    /// Used to generate the fine-tuning examples. At least one attack should be `false`:
    /// a gain that holds only against the trained-against attack may be gradient masking.
    pub trained_against: bool,
    /// Examples evaluated.
    pub examples: usize,
    /// Examples the model got right before the attack; the success rate is over these.
    #[serde(default)]
    pub attacked: usize,
    #[serde(default)]
    pub successes: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub success_rate: f64,
    /// Accuracy under attack over all `examples`.
    #[serde(deserialize_with = "nan_if_null")]
    pub robust_accuracy: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub mean_queries: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub mean_perturbation: f64,
    /// What `mean_perturbation` measures, e.g. `L∞`, `% words`, `dB SNR`.
    pub perturbation_unit: String,
    /// Adversarial examples that broke the domain's constraints or a declared budget;
    /// anything but 0 voids the row.
    pub constraint_violations: usize,
    /// The attack's declared budgets as the host checked them. `null`: the plugin could not
    /// declare any (ABI 1.0), so only the modality's own rules were verified.
    #[serde(default)]
    pub budgets: Option<Vec<BudgetCheck>>,
    #[serde(default, deserialize_with = "nan_if_null")]
    pub seconds: f64,
    /// Modality-specific means, e.g. `mean_cost`, `mean_features_changed`, `words_per_input`.
    #[serde(default, deserialize_with = "map_nan_if_null")]
    pub extra: BTreeMap<String, f64>,
}

/// One declared budget over one evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BudgetCheck {
    /// As reports name it, e.g. `L∞ ≤ 0.5 std`.
    pub budget: String,
    /// Examples that broke it; `null` when the host could not check it.
    pub violations: Option<usize>,
    /// Why the host could not check it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_verified: Option<String>,
}

/// One point of an "attack success vs budget" curve.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub attack_id: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub budget: f64,
    pub budget_unit: String,
    pub phase: Phase,
    #[serde(deserialize_with = "nan_if_null")]
    pub success_rate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub robust_accuracy: f64,
}

impl Metrics {
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::external(format!("{}: cannot encode metrics", path.display()), e))?;
        json.push('\n');
        crate::files::write(path, json.as_bytes())
    }

    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::data(path, e.to_string()))
    }

    /// Attack ids in order of first appearance.
    pub fn attack_ids(&self) -> Vec<&str> {
        unique(self.attacks.iter().map(|a| a.id.as_str()))
    }

    pub fn attack(&self, id: &str, phase: Phase) -> Option<&AttackMetrics> {
        self.attacks.iter().find(|a| a.id == id && a.phase == phase)
    }

    /// Swept attack ids in order of first appearance.
    pub fn sweep_ids(&self) -> Vec<&str> {
        unique(self.sweeps.iter().map(|s| s.attack_id.as_str()))
    }

    /// `(budget, value)` by increasing budget for one attack and phase, ready to plot;
    /// `value` picks the rate, e.g. `|p| p.success_rate`.
    pub fn sweep_series(
        &self,
        attack_id: &str,
        phase: Phase,
        value: fn(&SweepPoint) -> f64,
    ) -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = self
            .sweeps
            .iter()
            .filter(|s| s.attack_id == attack_id && s.phase == phase)
            .map(|s| (s.budget, value(s)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    }
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

// serde_json writes NaN as `null` but refuses `null` for an f64: without these a run whose
// rate had no denominator would write a metrics.json that `Metrics::read` rejects.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn map_nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let map = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn attack(id: &str, phase: Phase, trained: bool, success: f64, robust: f64) -> AttackMetrics {
        AttackMetrics {
            id: id.into(),
            plugin: "tabular".into(),
            attack: id.split('-').next().unwrap().into(),
            phase,
            trained_against: trained,
            examples: 1000,
            attacked: 950,
            successes: (success * 950.0).round() as usize,
            success_rate: success,
            robust_accuracy: robust,
            mean_queries: 20.0,
            mean_perturbation: 0.123,
            perturbation_unit: "L∞".into(),
            constraint_violations: 0,
            budgets: Some(vec![BudgetCheck {
                budget: "L∞ ≤ 0.5 std".into(),
                violations: Some(0),
                not_verified: None,
            }]),
            seconds: 3.5,
            extra: BTreeMap::from([("mean_features_changed".into(), 2.5), ("mean_cost".into(), 41.0)]),
        }
    }

    pub(crate) fn sample() -> Metrics {
        let sweeps = [
            (Phase::Before, 0.1, 0.4, 0.57),
            (Phase::Before, 0.5, 0.9, 0.095),
            (Phase::After, 0.1, 0.05, 0.9),
            (Phase::After, 0.5, 0.2, 0.76),
        ]
        .into_iter()
        .map(|(phase, budget, success_rate, robust_accuracy)| SweepPoint {
            attack_id: "pgd-linf".into(),
            budget,
            budget_unit: "L∞".into(),
            phase,
            success_rate,
            robust_accuracy,
        })
        .collect();
        Metrics {
            synonym_encoding: None,
            pipeline: "fraud-mlp".into(),
            modality: Modality::Tabular,
            seed: 42,
            clean: Clean {
                before: CleanMetrics {
                    accuracy: 0.971,
                    examples: 1000,
                    pr_auc: Some(0.81),
                    recall_at_1pct_fpr: Some(0.62),
                    false_positive_rate: Some(0.004),
                    precision: Some(0.9),
                    recall: Some(0.7),
                    predicted_classes: Some(2),
                    operating_point: None,
                },
                after: Some(CleanMetrics {
                    accuracy: 0.962,
                    examples: 1000,
                    pr_auc: Some(0.79),
                    recall_at_1pct_fpr: Some(0.58),
                    false_positive_rate: Some(0.006),
                    precision: Some(0.88),
                    recall: Some(0.69),
                    predicted_classes: Some(2),
                    operating_point: None,
                }),
            },
            attacks: vec![
                attack("pgd-linf-0.5", Phase::Before, true, 0.85, 0.14),
                attack("hopskip-l2", Phase::Before, false, 0.7, 0.29),
                attack("pgd-linf-0.5", Phase::After, true, 0.12, 0.84),
                attack("hopskip-l2", Phase::After, false, 0.3, 0.66),
            ],
            sweeps,
            seconds: BTreeMap::from([
                ("train".into(), 62.0),
                ("attack_before".into(), 30.5),
                ("finetune".into(), 140.0),
                ("attack_after".into(), 31.0),
            ]),
            skipped: Vec::new(),
            hardening: Some(HardeningStats { examples: 5000, changed: 4870, violations: 0 }),
            tradeoff: None,
            defences: Vec::new(),
        }
    }

    #[test]
    fn json_round_trip() {
        let dir = std::env::temp_dir().join(format!("tempered-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.json");
        let m = sample();
        m.write(&path).unwrap();
        assert_eq!(Metrics::read(&path).unwrap(), m);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["modality"], "tabular");
        assert_eq!(v["clean"]["before"]["recall_at_1pct_fpr"], 0.62);
        assert_eq!(v["attacks"][2]["phase"], "after");
        assert_eq!(v["attacks"][1]["trained_against"], false);
        assert_eq!(v["seconds"]["finetune"], 140.0);
        let multi = serde_json::to_value(CleanMetrics::from_predictions(&[1, 2, 0], &[1, 2, 2])).unwrap();
        assert_eq!(multi.as_object().unwrap().keys().collect::<Vec<_>>(), ["accuracy", "examples"]);
    }

    #[test]
    fn nan_survives_as_null() {
        let mut m = sample();
        m.attacks[0].mean_queries = f64::NAN;
        m.seconds.insert("report".into(), f64::NAN);
        let json = serde_json::to_string(&m).unwrap();
        let back: Metrics = serde_json::from_str(&json).unwrap();
        assert!(back.attacks[0].mean_queries.is_nan());
        assert!(back.seconds["report"].is_nan());
    }

    #[test]
    fn minimal_file_reads() {
        let json = r#"{"pipeline":"p","modality":"text","seed":1,
            "clean":{"before":{"accuracy":0.9,"examples":10}},
            "attacks":[{"id":"a","plugin":"x","attack":"a","phase":"before","trained_against":true,
              "examples":10,"success_rate":0.5,"robust_accuracy":0.4,"mean_queries":3,
              "mean_perturbation":0.1,"perturbation_unit":"% words","constraint_violations":0}]}"#;
        let m: Metrics = serde_json::from_str(json).unwrap();
        assert_eq!(m.modality, Modality::Text);
        assert!(m.clean.after.is_none() && m.sweeps.is_empty() && m.seconds.is_empty());
    }

    #[test]
    fn clean_metrics_from_scores() {
        let c = CleanMetrics::from_binary_scores(&[0.9, 0.8, 0.3, 0.1], &[true, false, true, false], 0.5);
        assert_eq!((c.accuracy, c.examples), (0.5, 4));
        assert_eq!((c.false_positive_rate, c.precision, c.recall), (Some(0.5), Some(0.5), Some(0.5)));
        assert_eq!(c.recall_at_1pct_fpr, Some(0.5));
        let none_positive = CleanMetrics::from_binary_scores(&[0.2, 0.1], &[false, false], 0.5);
        assert_eq!((none_positive.pr_auc, none_positive.recall), (None, None));
    }

    #[test]
    fn sweep_series_sorted_by_budget() {
        let mut m = sample();
        m.sweeps.swap(0, 1);
        assert_eq!(
            m.sweep_series("pgd-linf", Phase::Before, |p| p.success_rate),
            vec![(0.1, 0.4), (0.5, 0.9)]
        );
        assert_eq!(m.sweep_ids(), ["pgd-linf"]);
        assert_eq!(m.attack_ids(), ["pgd-linf-0.5", "hopskip-l2"]);
    }
}
