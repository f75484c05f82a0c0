//! `[tradeoff]`: the robustness–accuracy trade-off as one run. Each value of one hardening
//! setting is an independent hardening of the same clean model, measured on the validation
//! split; a rule over those validation numbers picks the point whose model becomes the
//! hardened model, which the test split then sees once.

use serde::{Deserialize, Serialize};

use super::span::Key;
use super::{AtKey, HardenConfig, Spec, Strategy, keys};

/// `[tradeoff]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeoffConfig {
    /// What is swept: `beta` (TRADES), `adversarial_weight`, or `params.<name>`, a param of
    /// the hardening attack (as `[harden] params` sets it).
    pub param: String,
    /// One independent hardening run per value, in this order.
    pub values: Vec<f64>,
    #[serde(default)]
    pub choose: ChooseRule,
}

/// How the point is chosen, on the validation split only: among the points whose clean
/// metric (PR-AUC for a binary task, else accuracy) is at most `max_clean_drop` below the
/// clean model's, the one with the highest robust accuracy; ties go to the next-worst
/// attacks, then to the smaller drop, then to the earlier value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChooseRule {
    /// The largest loss of the clean metric allowed, in its own units (0.02: two points).
    pub max_clean_drop: f64,
    /// The attack whose robust accuracy is maximised (default: the worst case over the
    /// trained-against attacks). Held-out attacks are measured at every point but never
    /// choose: the model they are reported on must not be picked with their help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<String>,
}

impl Default for ChooseRule {
    fn default() -> Self {
        Self { max_clean_drop: 0.01, attack: None }
    }
}

/// What `param` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept<'a> {
    Beta,
    AdversarialWeight,
    /// A param of the hardening attack.
    AttackParam(&'a str),
}

impl TradeoffConfig {
    /// `param`, understood; `None` when it names nothing that can be swept.
    pub fn swept(&self) -> Option<Swept<'_>> {
        match self.param.as_str() {
            "beta" => Some(Swept::Beta),
            "adversarial_weight" => Some(Swept::AdversarialWeight),
            p => p.strip_prefix("params.").filter(|n| !n.is_empty()).map(Swept::AttackParam),
        }
    }

    /// `harden` with the swept setting at `value`.
    pub fn apply(&self, harden: &HardenConfig, value: f64) -> HardenConfig {
        let mut h = harden.clone();
        match self.swept().expect("validated: the param is known") {
            Swept::Beta => h.beta = value,
            Swept::AdversarialWeight => h.adversarial_weight = value,
            Swept::AttackParam(name) => {
                h.params.insert(name.to_owned(), param_value(value));
            }
        }
        h
    }

    /// `pipeline` with its `[harden]` swept to `value`.
    pub fn applied_to(&self, pipeline: &super::Pipeline, value: f64) -> super::Pipeline {
        let mut p = pipeline.clone();
        *p.spec.harden_mut() = self.apply(pipeline.spec.harden(), value);
        p
    }
}

/// A whole number becomes a TOML integer, so an integer param (`steps`) can be swept too.
fn param_value(v: f64) -> toml::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 { toml::Value::Integer(v as i64) } else { toml::Value::Float(v) }
}

/// The checks that need no plugin and no data; the attack checks each value of a
/// `params.<name>` sweep when it is loaded.
pub(super) fn check(spec: &Spec) -> std::result::Result<(), AtKey> {
    let Some(t) = spec.tradeoff() else { return Ok(()) };
    let h = spec.harden();
    let at = |k: &str| keys(&["tradeoff", k]);
    if !h.enabled {
        return Err(AtKey::new(
            keys(&["tradeoff"]),
            "[tradeoff] sweeps a hardening setting, but [harden] enabled = false",
        ));
    }
    if h.strategy == Strategy::Clean {
        return Err(AtKey::new(
            keys(&["tradeoff"]),
            "[tradeoff] with strategy = \"clean\": clean fine-tuning has no robustness to trade",
        ));
    }
    let Some(swept) = t.swept() else {
        return Err(AtKey::new(
            at("param"),
            format!(
                "tradeoff.param = {:?}: sweep \"beta\" (TRADES), \"adversarial_weight\", or \
                 \"params.<name>\" (a param of the hardening attack, e.g. \"params.epsilon\")",
                t.param
            ),
        ));
    };
    match swept {
        Swept::Beta if h.strategy != Strategy::Trades => {
            return Err(AtKey::new(
                at("param"),
                format!(
                    "tradeoff.param = \"beta\" is TRADES' weight; strategy {:?} does not use it \
                     (sweep \"adversarial_weight\" or \"params.<name>\")",
                    h.strategy
                ),
            ));
        }
        Swept::AdversarialWeight if h.strategy == Strategy::Trades => {
            return Err(AtKey::new(
                at("param"),
                "tradeoff.param = \"adversarial_weight\": strategy \"trades\" weighs its KL term \
                 with `beta` instead (sweep \"beta\")",
            ));
        }
        _ => {}
    }
    if t.values.is_empty() {
        return Err(AtKey::new(at("values"), "tradeoff.values is empty: give at least one value"));
    }
    for (i, &v) in t.values.iter().enumerate() {
        let here = || vec![Key::from("tradeoff"), "values".into(), Key::Index(i)];
        let wrong = match swept {
            Swept::Beta if !(v.is_finite() && v > 0.0) => Some("beta must be a finite number > 0"),
            Swept::AdversarialWeight if !(0.0..=1.0).contains(&v) => {
                Some("adversarial_weight must be in [0, 1]")
            }
            _ if !v.is_finite() => Some("not a finite number"),
            _ => None,
        };
        if let Some(why) = wrong {
            return Err(AtKey::new(here(), format!("tradeoff.values[{i}] = {v}: {why}")));
        }
        if let Some(j) = t.values[..i].iter().position(|&u| u == v) {
            return Err(AtKey::new(
                here(),
                format!(
                    "tradeoff.values[{i}] = {v} repeats values[{j}]: each point is a separate training run"
                ),
            ));
        }
    }
    let c = &t.choose;
    if !(0.0..=1.0).contains(&c.max_clean_drop) {
        return Err(AtKey::new(
            keys(&["tradeoff", "choose", "max_clean_drop"]),
            format!("choose.max_clean_drop = {}: a drop of the clean metric in [0, 1]", c.max_clean_drop),
        ));
    }
    if let Some(id) = &c.attack {
        let evaluated = spec.attacks().iter().any(|a| &a.id == id)
            && spec.evaluate().attacks.as_ref().is_none_or(|ids| ids.contains(id));
        if !evaluated {
            return Err(AtKey::new(
                keys(&["tradeoff", "choose", "attack"]),
                format!("choose.attack = `{id}`: no evaluated [[attack]] has that id"),
            ));
        }
        if !spec.harden().attack.contains(id) {
            return Err(AtKey::new(
                keys(&["tradeoff", "choose", "attack"]),
                format!(
                    "choose.attack = `{id}` is held out of hardening: choosing the model by it would make it \
                     no longer held out; name one of [harden] attack ({})",
                    spec.harden().attack.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(param: &str) -> TradeoffConfig {
        TradeoffConfig { param: param.into(), values: vec![1.0], choose: ChooseRule::default() }
    }

    #[test]
    fn each_param_sets_its_own_setting() {
        let h = HardenConfig::default();
        assert_eq!(sweep("beta").apply(&h, 3.0).beta, 3.0);
        assert_eq!(sweep("adversarial_weight").apply(&h, 0.75).adversarial_weight, 0.75);
        let p = sweep("params.epsilon").apply(&h, 0.25).params;
        assert_eq!(p.get("epsilon"), Some(&toml::Value::Float(0.25)));
        // A whole number reaches an integer param as an integer.
        let p = sweep("params.steps").apply(&h, 3.0).params;
        assert_eq!(p.get("steps"), Some(&toml::Value::Integer(3)));
        assert_eq!(sweep("params.").swept(), None);
        assert_eq!(sweep("epsilon").swept(), None);
    }
}
