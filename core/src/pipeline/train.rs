//! `[train]`: how the clean model is trained, and how it weighs imbalanced classes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Invalid;

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
    /// Validate and keep an exponential moving average of the weights with this decay (in
    /// (0, 1), e.g. 0.99) instead of the last weights trained; unset: the weights as trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_average: Option<f64>,
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
            weight_average: None,
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
    pub fn resolve(&self, counts: &[usize]) -> Result<Option<Vec<f64>>, Invalid> {
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
            ClassWeight::Weights(w) if w.len() != counts.len() => Err(Invalid(format!(
                "gives {} weight(s) but the data has {} classes: give one weight per class, in class order",
                w.len(),
                counts.len()
            ))),
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
