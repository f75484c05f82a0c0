//! What the tests of the audio loader share: writing wav files, and a pattern config.

use std::path::Path;

use super::AudioDataConfig;

pub(super) fn write(
    path: &Path,
    spec: hound::WavSpec,
    f: impl Fn(&mut hound::WavWriter<std::io::BufWriter<std::fs::File>>),
) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    f(&mut w);
    w.finalize().unwrap();
}

pub(super) fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    let sample_format = if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int };
    hound::WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format }
}

pub(super) fn config(pattern: &str) -> AudioDataConfig {
    toml::from_str(&format!("path = \".\"\npattern = \"{pattern}\"\nlength = 500\nsplit = {{ test_index = [0, 1], validation = 0.5 }}"))
        .unwrap()
}
