//! The checks a parsed pipeline passes before it can run: each failure names the key it
//! is about, so the error points at its line.

use std::collections::BTreeMap;

use tempered_plugin::Modality;

use super::span::{AtKey, Key, keys};
use super::{ClassWeight, DeviceKind, EarlyStopping, Sampling, Spec, Strategy, defence, footprint, tradeoff};
use crate::data;
use crate::model::mlp::TabularModelKind;
use crate::model::text::TextModelKind;

/// Everything that can be checked before the data is read.
pub(super) fn validate(spec: &Spec) -> std::result::Result<(), AtKey> {
    let p = spec.pipeline();
    if let Some(why) = name_problem(&p.name) {
        return Err(AtKey::new(
            keys(&["pipeline", "name"]),
            format!(
                "name {} {why}: it names the run's folder under {}/, so it must be a plain file name (no `/` or `\\`, not starting with `.`)",
                data::shown(&p.name),
                p.out_dir.display()
            ),
        ));
    }
    match spec {
        Spec::Tabular(s) => s.data.validate().map_err(|m| AtKey::new(keys(&["data"]), m))?,
        Spec::Text(s) => s.data.validate().map_err(|m| AtKey::new(keys(&["data"]), m))?,
        Spec::Audio(s) => {
            if let Some(m) = s.data.length_error() {
                return Err(AtKey::new(keys(&["data", "length"]), m));
            }
            s.data.validate().map_err(|m| AtKey::new(keys(&["data"]), m))?
        }
    }
    check_model(spec)?;
    footprint::check_footprint(spec)?;
    let attacks = spec.attacks();
    let mut seen = BTreeMap::new();
    for (i, a) in attacks.iter().enumerate() {
        let at = |k: &str| vec![Key::from("attack"), Key::Index(i), k.into()];
        if let Some(j) = seen.insert(a.id.clone(), i) {
            return Err(AtKey::new(
                at("id"),
                format!(
                    "attack id `{}` is used by attacks #{} and #{}; give each a unique `id`",
                    a.id,
                    j + 1,
                    i + 1
                ),
            ));
        }
        if a.batch_size == 0 {
            return Err(AtKey::new(at("batch_size"), "batch_size must be at least 1"));
        }
        if a.query_budget == Some(0) {
            return Err(AtKey::new(
                at("query_budget"),
                "query_budget = 0: a budget of zero queries can attack nothing (leave it out for no budget)",
            ));
        }
        if a.classes.as_ref().is_some_and(Vec::is_empty) {
            return Err(AtKey::new(
                at("classes"),
                "classes = [] attacks no example: list the true classes to attack, or leave it out for all",
            ));
        }
    }
    let known = |id: &str| attacks.iter().any(|a| a.id == id);
    let t = spec.train();
    if t.batch_size == 0 || t.lr <= 0.0 || !t.lr.is_finite() {
        return Err(AtKey::new(keys(&["train"]), "train.batch_size must be ≥ 1 and train.lr > 0"));
    }
    check_weight_average(t.weight_average, "train")?;
    if t.epochs == 0 && t.init.is_none() {
        return Err(AtKey::new(
            keys(&["train", "epochs"]),
            "train.epochs = 0 would attack and harden an untrained model: set at least 1, or `init` to a trained one",
        ));
    }
    check_imbalance(spec)?;
    let h = spec.harden();
    if h.enabled {
        if h.epochs == 0 {
            return Err(AtKey::new(
                keys(&["harden", "epochs"]),
                "harden.epochs = 0 hardens nothing: set at least 1, or `enabled = false` to skip hardening",
            ));
        }
        if !(0.0..=1.0).contains(&h.adversarial_weight) {
            return Err(AtKey::new(
                keys(&["harden", "adversarial_weight"]),
                "adversarial_weight must be in [0, 1]",
            ));
        }
        check_weight_average(h.weight_average, "harden")?;
        if !(h.share > 0.0 && h.share <= 1.0) {
            return Err(AtKey::new(keys(&["harden", "share"]), "share must be in (0, 1]"));
        }
        if h.lr <= 0.0 || !h.lr.is_finite() {
            return Err(AtKey::new(keys(&["harden", "lr"]), "lr must be > 0"));
        }
        if h.early_stopping == EarlyStopping::RobustAccuracy && h.strategy == Strategy::Clean {
            return Err(AtKey::new(
                keys(&["harden", "early_stopping"]),
                "\"robust-accuracy\" needs an attack to measure it: a clean strategy has none",
            ));
        }
        if !(h.beta.is_finite() && h.beta > 0.0) {
            return Err(AtKey::new(keys(&["harden", "beta"]), "beta must be a finite number > 0"));
        }
        if h.attack.is_empty() && h.strategy != Strategy::Clean {
            return Err(AtKey::new(
                keys(&["harden", "strategy"]),
                "this strategy trains on an attack's examples: set `harden.attack` to an [[attack]] id",
            ));
        }
        if let Some(id) = h.attack.iter().find(|id| !known(id)) {
            return Err(AtKey::new(keys(&["harden", "attack"]), format!("no [[attack]] has id `{id}`")));
        }
        if let Some((i, id)) = h.attack.iter().enumerate().find(|(i, id)| h.attack[..*i].contains(id)) {
            return Err(AtKey::new(
                vec!["harden".into(), "attack".into(), Key::Index(i)],
                format!("`{id}` is listed twice"),
            ));
        }
    }
    let e = spec.evaluate();
    if let Some(ids) = &e.attacks {
        for (i, id) in ids.iter().enumerate() {
            if !known(id) {
                return Err(AtKey::new(
                    vec!["evaluate".into(), "attacks".into(), Key::Index(i)],
                    format!("no [[attack]] has id `{id}`"),
                ));
            }
        }
    }
    for (i, sw) in e.sweeps.iter().enumerate() {
        let at = |k: &str| vec![Key::from("evaluate"), "sweep".into(), Key::Index(i), k.into()];
        if !known(&sw.attack) {
            return Err(AtKey::new(at("attack"), format!("no [[attack]] has id `{}`", sw.attack)));
        }
        if sw.values.is_empty() {
            return Err(AtKey::new(at("values"), "a sweep needs at least one value"));
        }
    }
    tradeoff::check(spec)?;
    defence::validate(spec)?;
    if p.device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
        return Err(AtKey::new(
            keys(&["pipeline", "device"]),
            "device = \"cuda\" needs a CUDA build (`just cuda-build`; this one is CPU-only)",
        ));
    }
    Ok(())
}

/// Why `name` cannot name a folder inside the runs folder, if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is longer than a file name can be (255 bytes)")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.starts_with('.') {
        Some("starts with `.`")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// The longest file name Linux and macOS file systems take.
const MAX_NAME_BYTES: usize = 255;

/// The model settings that make no model at all.
fn check_model(spec: &Spec) -> std::result::Result<(), AtKey> {
    match spec {
        Spec::Tabular(s) => {
            if s.model.kind == TabularModelKind::Mlp
                && let Some(i) = s.model.hidden.iter().position(|&h| h == 0)
            {
                return Err(AtKey::new(
                    vec!["model".into(), "hidden".into(), Key::Index(i)],
                    format!("model.hidden[{i}] = 0: every hidden layer needs at least one unit"),
                ));
            }
        }
        Spec::Text(s) => {
            if let Some(e) = &s.model.synonym_encoding {
                let at = keys(&["model", "synonym_encoding"]);
                if s.model.kind != TextModelKind::WordCnn {
                    return Err(AtKey::new(
                        at,
                        "model.synonym_encoding is a word-CNN setting: a BERT model reads sub-words, which \
                         a word-level encoding cannot reach",
                    ));
                }
                e.check().map_err(|m| AtKey::new(at, m))?;
            }
            if s.model.kind == TextModelKind::WordCnn {
                s.model.check_word_cnn().map_err(|m| AtKey::new(keys(&["model"]), m))?;
            }
        }
        Spec::Audio(s) => {
            if let Some(i) = s.model.channels.iter().position(|&c| c == 0) {
                return Err(AtKey::new(
                    vec!["model".into(), "channels".into(), Key::Index(i)],
                    format!("model.channels[{i}] = 0: every conv block needs at least one channel"),
                ));
            }
            s.model.validate().map_err(|m| AtKey::new(keys(&["model"]), m))?;
            if s.data.length < s.model.kernel {
                // The model would refuse it only once the data is read.
                return Err(AtKey::new(
                    keys(&["data", "length"]),
                    format!(
                        "length = {} samples is shorter than the M5's first conv kernel (model.kernel = {})",
                        s.data.length, s.model.kernel
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The `[train]` and `[evaluate]` settings for imbalanced data, as far as they can be
/// checked without the data (the class count comes with it: see
/// [`Pipeline::config_error`](super::Pipeline::config_error)).
/// `weight_average` of `[train]` or `[harden]`: a decay strictly between 0 and 1.
fn check_weight_average(decay: Option<f64>, section: &str) -> std::result::Result<(), AtKey> {
    match decay {
        Some(d) if !(d > 0.0 && d < 1.0) => Err(AtKey::new(
            keys(&[section, "weight_average"]),
            format!(
                "weight_average = {d}: the decay of the average must be in (0, 1), e.g. 0.99 \
                 (leave it out to keep the weights as trained)"
            ),
        )),
        _ => Ok(()),
    }
}

fn check_imbalance(spec: &Spec) -> std::result::Result<(), AtKey> {
    let t = spec.train();
    if let ClassWeight::Weights(w) = &t.class_weight {
        if w.is_empty() {
            return Err(AtKey::new(
                keys(&["train", "class_weight"]),
                "train.class_weight = []: give one weight per class, or \"balanced\"",
            ));
        }
        if let Some(i) = w.iter().position(|&x| !(x >= 0.0 && x.is_finite())) {
            return Err(AtKey::new(
                vec!["train".into(), "class_weight".into(), Key::Index(i)],
                format!("train.class_weight[{i}] = {}: a weight is a finite number ≥ 0", w[i]),
            ));
        }
        if w.iter().all(|&x| x == 0.0) {
            return Err(AtKey::new(
                keys(&["train", "class_weight"]),
                "train.class_weight: every weight is 0, so nothing would be learnt",
            ));
        }
    }
    if !t.class_weight.is_none() && t.sampling != Sampling::None {
        return Err(AtKey::new(
            keys(&["train", "sampling"]),
            "train.sampling = \"balanced\" with train.class_weight: both rebalance the classes, so \
             together they overcorrect; choose one",
        ));
    }
    if let Some(op) = &spec.evaluate().operating_point {
        if spec.modality() != Modality::Tabular {
            return Err(AtKey::new(
                keys(&["evaluate", "operating_point"]),
                format!(
                    "evaluate.operating_point needs a binary task with a positive class (a tabular \
                     table of two classes); a {} pipeline has none",
                    spec.modality()
                ),
            ));
        }
        op.check()?;
    }
    Ok(())
}
