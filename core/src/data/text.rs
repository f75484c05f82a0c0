//! Text data (scaffolding: filled in by the text pipeline work).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[data]` of a text pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextDataConfig {
    pub path: PathBuf,
}

impl TextDataConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
