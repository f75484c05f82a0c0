//! Audio pipelines (scaffolding: filled in by the audio pipeline work).

use candle_core::Device;

use super::Task;
use crate::data::audio::AudioDataConfig;
use crate::model::audio::AudioModelConfig;
use crate::pipeline::{Pipeline, SpecOf};
use crate::{Error, Result};

pub(super) fn prepare(_pipeline: &Pipeline, _spec: &SpecOf<AudioDataConfig, AudioModelConfig>, _device: &Device) -> Result<Task> {
    Err(Error::msg("audio pipelines are not implemented yet"))
}
