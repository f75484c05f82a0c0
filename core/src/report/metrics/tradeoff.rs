//! `metrics.json` `tradeoff`: the points of a `[tradeoff]` sweep, measured on the
//! validation split only (the report's section is `report::tradeoff`).

use serde::{Deserialize, Deserializer, Serialize};

/// `metrics.json` `tradeoff`: the sweep, measured on the validation split only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tradeoff {
    /// The swept setting, as `[tradeoff] param` names it (`beta`, `params.epsilon`).
    pub param: String,
    /// The clean metric: `pr_auc` for a binary task, else `accuracy`.
    pub clean_metric: String,
    /// The clean model's clean metric on validation, which the drops are measured from.
    #[serde(deserialize_with = "nan_if_null")]
    pub clean_model: f64,
    /// The rule: the largest drop of the clean metric allowed ...
    pub max_clean_drop: f64,
    /// ... and the attack whose robust accuracy is maximised (`null`: the worst case over
    /// every evaluated attack).
    pub robust_against: Option<String>,
    pub points: Vec<TradeoffPoint>,
    /// Index into `points` of the chosen point, whose model is the hardened model.
    pub chosen: usize,
    pub chosen_value: f64,
    /// The choice, in words.
    pub why: String,
    /// Whether the chosen point met the rule; `false` when none did (the smallest drop was
    /// taken instead).
    pub rule_met: bool,
    /// The plot, relative to the run folder, when one was drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plot: Option<String>,
}

/// One value of the swept setting: its hardened model on the validation split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TradeoffPoint {
    pub value: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub clean: f64,
    /// `clean_model − clean`: positive is a loss.
    #[serde(deserialize_with = "nan_if_null")]
    pub clean_drop: f64,
    pub attacks: Vec<PointAttack>,
    /// The robust accuracy the rule compares (see `robust_against`); `null` when no attack
    /// had an example to attack.
    #[serde(deserialize_with = "nan_if_null")]
    pub robust: f64,
    /// The hardening epoch kept, of those trained.
    pub best_epoch: usize,
    pub epochs_done: usize,
    /// Hardening and measuring this point.
    #[serde(default, deserialize_with = "nan_if_null")]
    pub seconds: f64,
}

/// One attack against one point's model, on validation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PointAttack {
    pub id: String,
    pub trained_against: bool,
    pub examples: usize,
    pub attacked: usize,
    pub successes: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub success_rate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub robust_accuracy: f64,
}

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Tradeoff {
    /// Attack ids with whether they were trained against, in the points' order.
    pub fn attack_ids(&self) -> Vec<(&str, bool)> {
        let mut ids: Vec<(&str, bool)> = Vec::new();
        for a in self.points.iter().flat_map(|p| &p.attacks) {
            if !ids.iter().any(|(id, _)| *id == a.id) {
                ids.push((&a.id, a.trained_against));
            }
        }
        ids
    }

    pub fn metric_name(&self) -> &'static str {
        if self.clean_metric == "pr_auc" { "PR-AUC" } else { "accuracy" }
    }
}
