//! Audio data (scaffolding: filled in by the audio pipeline work).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[data]` of a audio pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioDataConfig {
    pub path: PathBuf,
}

impl AudioDataConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
