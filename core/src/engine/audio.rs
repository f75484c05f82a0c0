//! Audio pipelines: a folder of wav files, the M5 raw-waveform CNN, the SNR judge, and
//! adversarial examples saved as wav pairs one can listen to.

use std::path::Path;

use candle_core::Device;

use super::Task;
use crate::data::audio::{self, AudioDataConfig};
use crate::data::{Dataset, Examples, Labelled};
use crate::evaluate::Sample;
use crate::evaluate::audio::{AudioJudge, snr_and_linf};
use crate::model::audio::{AudioModelConfig, M5};
use crate::pipeline::{Pipeline, SpecOf};
use crate::{Error, Result};

pub(super) fn prepare(
    pipeline: &Pipeline,
    spec: &SpecOf<AudioDataConfig, AudioModelConfig>,
    device: &Device,
) -> Result<Task> {
    let data = audio::load(&spec.data, &pipeline.base_dir, pipeline.seed())?;
    let width = data.length;
    let split =
        |s: &audio::AudioSplit| Labelled { x: Examples::Dense { data: s.x.clone(), width }, y: s.y.clone() };
    let dataset = Dataset {
        n_classes: data.classes.len(),
        train: split(&data.train),
        validation: split(&data.validation),
        test: split(&data.test),
    };
    tracing::info!(
        "{}: {} classes, {} samples at {} Hz per waveform; train {}, validation {}, test {}",
        data.path.display(),
        data.classes.len(),
        width,
        data.sample_rate,
        dataset.train.len(),
        dataset.validation.len(),
        dataset.test.len()
    );
    if !data.skipped.is_empty() {
        let first: Vec<String> =
            data.skipped.iter().take(5).map(|(p, why)| format!("{}: {why}", p.display())).collect();
        tracing::warn!(
            "skipped {} bad files (on_bad_file = \"skip\"): {}",
            data.skipped.len(),
            first.join("; ")
        );
    }
    if data.resampled_files > 0 {
        tracing::info!("resampled {} files to {} Hz", data.resampled_files, data.sample_rate);
    }
    if data.clipped_files > 0 {
        tracing::warn!("{} float files had samples outside [-1, 1]; they were clipped", data.clipped_files);
    }
    let model = M5::new(&spec.model, width, data.classes.len(), pipeline.seed(), device)?;
    tracing::info!("M5: {} parameters", crate::model::n_params(&model));
    Ok(Task {
        dataset,
        model: Box::new(model),
        judge: Box::new(AudioJudge),
        schema: None,
        sample_rate: data.sample_rate,
        encoder: None,
        save_samples,
        positive_class: None,
        render_samples,
    })
}

/// `samples/<attack label>/<example>-clean.wav` and `-adv.wav` at the pipeline's rate: the
/// full fixed-length rows as the model saw them.
fn save_samples(task: &Task, dir: &Path, label: &str, samples: &[Sample]) -> Result<()> {
    let dir = dir.join(super::sanitize(label));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for s in samples {
        let (Examples::Dense { data: clean, .. }, Examples::Dense { data: adv, .. }) =
            (&s.original, &s.adversarial)
        else {
            continue;
        };
        let stem = sample_stem(s);
        write_wav(&dir.join(format!("{stem}-clean.wav")), clean, task.sample_rate)?;
        write_wav(&dir.join(format!("{stem}-adv.wav")), adv, task.sample_rate)?;
    }
    Ok(())
}

/// `0042-class7-as3`: the example's index in the evaluated split, its class and the
/// adversarial prediction.
fn sample_stem(s: &Sample) -> String {
    format!("{:04}-class{}-as{}", s.index, s.label, s.adversarial_pred)
}

/// 32-bit float mono: exactly the samples the model saw (16-bit PCM would round away much of
/// a 40–50 dB perturbation of a quiet clip). Every common player reads it.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    crate::files::write_with(path, |tmp| {
        let fail = |e: hound::Error| Error::msg(format!("{}: cannot write wav: {e}", path.display()));
        let mut w = hound::WavWriter::create(tmp, spec).map_err(fail)?;
        for &v in samples {
            w.write_sample(v).map_err(fail)?;
        }
        w.finalize().map_err(fail)
    })
}

fn render_samples(_task: &Task, label: &str, samples: &[Sample]) -> String {
    let folder = format!("samples/{}", super::sanitize(label));
    let mut s = format!(
        "Listen: clean and adversarial wav pairs in `{folder}/`.\n\n| example | true class | prediction (adversarial) | p(true) before → after | SNR (dB) | L∞ | files |\n|---|---|---|---|---|---|---|\n"
    );
    for sample in samples {
        let (Examples::Dense { data: a, .. }, Examples::Dense { data: b, .. }) =
            (&sample.original, &sample.adversarial)
        else {
            continue;
        };
        let (snr, linf) = snr_and_linf(a, b);
        let stem = sample_stem(sample);
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} → {:.3} | {:.1} | {:.4} | [clean]({folder}/{stem}-clean.wav) · [adversarial]({folder}/{stem}-adv.wav) |\n",
            sample.index,
            sample.label,
            sample.adversarial_pred,
            sample.original_prob,
            sample.adversarial_prob,
            snr,
            linf
        ));
    }
    s
}
