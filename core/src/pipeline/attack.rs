//! `[[attack]]`: which plugin's attack runs, with what options and limits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What to do when an attack's plugin fails during evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the run with the plugin's error.
    #[default]
    Fail,
    /// Report the error, leave that attack out, and go on.
    Skip,
}

/// One `[[attack]]`: a plugin's attack with its options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackConfig {
    /// How the rest of the file and the report refer to it (default: the attack name).
    #[serde(default)]
    pub id: String,
    /// The plugin's declared name (found on the search path) ...
    pub plugin: String,
    /// ... or an explicit path to its shared library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    pub attack: String,
    /// Passed to the plugin as JSON; the plugin validates them.
    #[serde(default)]
    pub params: toml::Table,
    /// Only examples of these true classes are attacked (e.g. `[1]`: only frauds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<u32>>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Oracle queries one example may use; the host refuses more (and counts them either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_budget: Option<u64>,
    #[serde(default)]
    pub on_error: OnError,
}

fn default_batch_size() -> usize {
    256
}

/// An attack without an `id` goes by its attack name.
pub(super) fn fill_ids(attacks: &mut [AttackConfig]) {
    for a in attacks {
        if a.id.is_empty() {
            a.id = a.attack.clone();
        }
    }
}
