//! Audio models (scaffolding: filled in by the audio pipeline work).

use serde::{Deserialize, Serialize};

/// `[model]` of a audio pipeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioModelConfig {}
