//! What `tempered score` reads from the run folder besides the rows: the encoding, the
//! checkpoint of the chosen model and the decision threshold.

use std::path::{Path, PathBuf};

use tempered_core::data::tabular::{ENCODING_VERSION, Encoding};
use tempered_core::{Error, Result};

use super::ModelChoice;

pub(super) fn read_encoding(path: &Path) -> Result<Encoding> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::io(path, e)
            .context("cannot read the run's encoding (runs of tabular pipelines write it beside config.toml)")
    })?;
    let enc: Encoding = serde_json::from_slice(&bytes)
        .map_err(|e| Error::data(path, format!("not an encoding this version reads: {e}")))?;
    if enc.version != ENCODING_VERSION {
        return Err(Error::data(
            path,
            format!("encoding version {}, this tempered reads version {ENCODING_VERSION}", enc.version),
        ));
    }
    Ok(enc)
}
/// The asked-for model, else the hardened one when hardening finished, else the clean one.
pub(super) fn checkpoint(run: &Path, choice: Option<ModelChoice>) -> Result<(ModelChoice, PathBuf)> {
    let path = |c: ModelChoice| run.join("checkpoints").join(format!("{}.safetensors", c.name()));
    let choice = match choice {
        Some(c) => c,
        None if path(ModelChoice::Hardened).is_file() => ModelChoice::Hardened,
        None => ModelChoice::Clean,
    };
    let p = path(choice);
    if !p.is_file() {
        return Err(Error::data(
            run,
            format!(
                "no {} model ({} is missing: {})",
                choice.name(),
                p.display(),
                match choice {
                    ModelChoice::Hardened => "the run did not harden, or did not finish hardening",
                    ModelChoice::Clean => "the run did not finish training",
                }
            ),
        ));
    }
    Ok((choice, p))
}

/// The decision threshold and where it came from; `None` for more than two classes.
pub(super) fn threshold(
    run: &Path,
    choice: ModelChoice,
    given: Option<f64>,
    n_classes: usize,
) -> Result<Option<(f64, String)>> {
    if n_classes != 2 {
        if given.is_some() {
            return Err(Error::invalid(format!(
                "--threshold applies to two classes; this run has {n_classes} (its decision is the most probable class)"
            )));
        }
        return Ok(None);
    }
    if let Some(t) = given {
        if !(0.0..=1.0).contains(&t) {
            return Err(Error::invalid(format!("--threshold {t}: a probability threshold is within [0, 1]")));
        }
        return Ok(Some((t, "from --threshold".to_owned())));
    }
    let path = run.join("metrics.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some((0.5, "the default: the run has no metrics.json".to_owned())));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let metrics: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::data(&path, format!("not JSON: {e}")))?;
    Ok(Some(match operating_threshold(&metrics, choice) {
        Some((t, at)) => (t, format!("the run's operating threshold, {} {at}", path.display())),
        None => (0.5, format!("the default: {} has no operating threshold", path.display())),
    }))
}

/// A `threshold` number under `clean`: first in the measurements of the chosen model
/// (`clean.before` for the clean one, `clean.after` for the hardened one), then anywhere
/// else under `clean` but the other model's. Returns it and its dotted path.
fn operating_threshold(metrics: &serde_json::Value, choice: ModelChoice) -> Option<(f64, String)> {
    fn find(v: &serde_json::Value, at: &str, skip: &[&str]) -> Option<(f64, String)> {
        let obj = v.as_object()?;
        if let Some(t) = obj.get("threshold").and_then(serde_json::Value::as_f64) {
            return Some((t, format!("{at}.threshold")));
        }
        obj.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .find_map(|(k, v)| find(v, &format!("{at}.{k}"), &[]))
    }
    let clean = metrics.get("clean")?;
    let other = match choice {
        ModelChoice::Clean => ModelChoice::Hardened.phase(),
        ModelChoice::Hardened => ModelChoice::Clean.phase(),
    };
    let own = choice.phase();
    clean
        .get(own)
        .and_then(|v| find(v, &format!("clean.{own}"), &[]))
        .or_else(|| find(clean, "clean", &[own, other]))
        .filter(|(t, _)| (0.0..=1.0).contains(t))
}
