//! Text models (scaffolding: filled in by the text pipeline work).

use serde::{Deserialize, Serialize};

/// `[model]` of a text pipeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextModelConfig {}
