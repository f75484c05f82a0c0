//! `[harden]`: adversarial fine-tuning of the clean model, and its strategies.

use serde::{Deserialize, Serialize};

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
    /// Accuracy on the attacked validation examples (Rice et al. 2020); under the guard's
    /// probe while one watches FGSM training (Wong et al. 2020).
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
    /// Guarded `fgsm` counts accuracy under its PGD probe, not under FGSM.
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
    /// Validate and keep an exponential moving average of the weights with this decay (in
    /// (0, 1), e.g. 0.99) instead of the last weights trained (Polyak averaging: flatter,
    /// against robust overfitting); unset: the weights as trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_average: Option<f64>,
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
            weight_average: None,
        }
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
