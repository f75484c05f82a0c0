//! Text pipelines (scaffolding: filled in by the text pipeline work).

use candle_core::Device;

use super::Task;
use crate::data::text::TextDataConfig;
use crate::model::text::TextModelConfig;
use crate::pipeline::{Pipeline, SpecOf};
use crate::{Error, Result};

pub(super) fn prepare(_pipeline: &Pipeline, _spec: &SpecOf<TextDataConfig, TextModelConfig>, _device: &Device) -> Result<Task> {
    Err(Error::msg("text pipelines are not implemented yet"))
}
