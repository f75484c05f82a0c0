//! `metrics.json` `defences`: each `[[defence]]` against each attack, and the verdict
//! (the rule and the report section are `report::defences`).

use serde::{Deserialize, Serialize};

use super::{AttackMetrics, CleanMetrics, Phase};

/// One `[[defence]]` judged on the final model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DefenceMetrics {
    pub id: String,
    pub kind: String,
    /// Its settings in words.
    pub description: String,
    /// The model it was put in front of: the hardened one when hardening ran.
    pub phase: Phase,
    /// The evaluated split through the defence; compare `clean.<phase>` of the run.
    pub clean: CleanMetrics,
    /// The gradient a naive attack gets (`through`) and the adaptive one (`bpda`, `eot-k`);
    /// for a text defence, `transfer` and `query-defended` (see the module docs).
    pub plain_gradient: String,
    pub adaptive_gradient: String,
    pub attacks: Vec<DefendedAttack>,
}

/// One attack against one defence: undefended, with the plain gradient, with the adaptive one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DefendedAttack {
    pub id: String,
    /// Whether the attack asked for input gradients; `false`: it only queried, so against a
    /// dense defence it ran once (a text defence always has both runs).
    pub uses_gradients: Option<bool>,
    pub undefended: Option<Rates>,
    pub plain: Option<Rates>,
    pub adaptive: Option<Rates>,
    pub verdict: Verdict,
    /// The verdict with its numbers, in words.
    pub reason: String,
}

/// What one run of an attack did; a rate over zero examples is `null`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub examples: usize,
    pub attacked: usize,
    pub successes: usize,
    pub success_rate: Option<f64>,
    pub robust_accuracy: Option<f64>,
    pub constraint_violations: usize,
}

impl Rates {
    pub fn new(examples: usize, attacked: usize, successes: usize, violations: usize) -> Self {
        let rate = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
        Self {
            examples,
            attacked,
            successes,
            success_rate: rate(successes, attacked),
            robust_accuracy: rate(attacked - successes.min(attacked), examples),
            constraint_violations: violations,
        }
    }

    pub fn of(a: &AttackMetrics) -> Self {
        Self::new(a.examples, a.attacked, a.successes, a.constraint_violations)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Masked,
    Holds,
    HoldsQueryOnly,
    NoGain,
    NotMeasured,
}

impl Verdict {
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Masked => "masked: falls to the adaptive attack",
            Verdict::Holds => "holds against the adaptive attack",
            Verdict::HoldsQueryOnly => "holds against this query attack",
            Verdict::NoGain => "no gain",
            Verdict::NotMeasured => "not measured",
        }
    }
}
