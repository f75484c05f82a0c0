//! Audio pipelines: a folder of wav files, the M5 raw-waveform CNN, the SNR judge, and
//! adversarial examples saved as wav pairs one can listen to.

use std::path::Path;

use tempered_plugin::Modality;

use super::{Parts, Prepare, Setup, SweepMetric, Task, dataset, dense, sanitize};
use crate::data::audio::{self, AudioDataConfig};
use crate::data::{Examples, Labelled};
use crate::evaluate::Sample;
use crate::evaluate::audio::{AudioJudge, snr_and_linf};
use crate::model::audio::{AudioModelConfig, M5};
use crate::pipeline::{Pipeline, SpecOf};
use crate::{Error, Result};

pub(super) struct Audio {
    parts: Parts,
    sample_rate: u32,
}

impl Prepare for Audio {
    type Data = AudioDataConfig;
    type Model = AudioModelConfig;

    fn prepare(
        pipeline: &Pipeline,
        spec: &SpecOf<AudioDataConfig, AudioModelConfig>,
        setup: &Setup,
    ) -> Result<Self> {
        let data = audio::load(&spec.data, &pipeline.base_dir, pipeline.seed())?;
        let width = data.length;
        let splits = [&data.train, &data.validation, &data.test];
        let dataset = dataset(data.classes.len(), splits, |s| Labelled {
            x: Examples::Dense { data: s.x.clone(), width },
            y: s.y.clone(),
        });
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
            tracing::warn!(
                "{} float files had samples outside [-1, 1]; they were clipped",
                data.clipped_files
            );
        }
        let model = M5::new(&spec.model, width, data.classes.len(), pipeline.seed(), setup.device)?;
        tracing::info!("M5: {} parameters", crate::model::n_params(&model));
        let parts = Parts {
            dataset,
            model: Box::new(model),
            judge: Box::new(AudioJudge { sample_rate: data.sample_rate }),
        };
        Ok(Audio { parts, sample_rate: data.sample_rate })
    }
}

impl Task for Audio {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn modality(&self) -> Modality {
        Modality::Audio
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// `samples/<attack label>/<example>-clean.wav` and `-adv.wav` at the pipeline's rate: the
    /// full fixed-length rows as the model saw them.
    fn save_samples(&self, dir: &Path, label: &str, samples: &[Sample]) -> Result<()> {
        let dir = dir.join(sanitize(label));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for s in samples {
            let Some((clean, adv)) = dense(s) else { continue };
            let stem = sample_stem(s);
            write_wav(&dir.join(format!("{stem}-clean.wav")), clean, self.sample_rate)?;
            write_wav(&dir.join(format!("{stem}-adv.wav")), adv, self.sample_rate)?;
        }
        Ok(())
    }

    fn render_samples(&self, label: &str, samples: &[Sample]) -> String {
        render_samples(label, samples)
    }

    // A noise budget in dB reads best as what the model keeps.
    fn sweep_metric(&self) -> SweepMetric {
        SweepMetric::RobustAccuracy
    }

    fn bench_budget(&self) -> Option<&'static str> {
        Some("snr_db")
    }
}

/// `0042-class7-as3`: the example's index in the evaluated split, its class and the
/// adversarial prediction.
fn sample_stem(s: &Sample) -> String {
    format!("{:04}-class{}-as{}", s.index, s.label, s.adversarial_pred)
}

/// 32-bit float mono: exactly the samples the model saw (16-bit PCM would round away much of
/// a 40–50 dB perturbation of a quiet clip). Every common player reads it.
fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    crate::files::write_with(path, |tmp| {
        let fail = |e: hound::Error| Error::external(format!("{}: cannot write wav", path.display()), e);
        let mut w = hound::WavWriter::create(tmp, spec).map_err(fail)?;
        for &v in samples {
            w.write_sample(v).map_err(fail)?;
        }
        w.finalize().map_err(fail)
    })
}

fn render_samples(label: &str, samples: &[Sample]) -> String {
    let folder = format!("samples/{}", sanitize(label));
    let mut s = format!(
        "Listen: clean and adversarial wav pairs in `{folder}/`.\n\n| example | true class | prediction (adversarial) | p(true) before → after | SNR (dB) | L∞ | files |\n|---|---|---|---|---|---|---|\n"
    );
    for sample in samples {
        let Some((a, b)) = dense(sample) else { continue };
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
