//! Audio data: a folder of wav files → fixed-length mono waveforms in [-1, 1] at one
//! sample rate, with labels and a train / validation / test split.
//!
//! # The `[data]` section of an audio pipeline
//!
//! ```toml
//! [data]
//! path = "data/fsdd/recordings"            # a folder of .wav files, relative to the pipeline's repository
//! pattern = "{label}_{speaker}_{index}.wav" # labels from the file name ...
//! # manifest = "labels.csv"                # ... or from a CSV: columns `file`, `label`, optional `split`
//! sample_rate = 8000                        # every waveform ends up at this rate (default 8000)
//! resample = false                          # another rate is an error unless this is true (default false)
//! length = 8000                             # samples per waveform after padding / trimming (default 8000)
//! align = "center"                          # "center" (default) or "start": where a clip sits in its row
//! on_bad_file = "fail"                      # "fail" (default) or "skip": see below
//! # limit = 500                             # keep a seeded, class-stratified subsample of this many files
//! split = { test_index = [0, 4], validation = 0.1 }
//! ```
//!
//! ## Labels
//!
//! `pattern` is the file name with `{field}` placeholders; each matches one or more
//! characters, `{label}` is required, and two placeholders need literal text between them.
//! Any other field names are free (`{speaker}`), and `{index}` must be a whole number when
//! `split.test_index` uses it. `.wav` files whose name does not match are bad files (below);
//! files with any other extension are ignored. With `manifest`, a CSV with a header names each
//! file (relative to `path`) and its label, and an optional `split` column (`train`,
//! `validation`, `test`, or empty for "decide by `[data.split]`") fixes its split.
//!
//! Labels are strings; the classes are the distinct labels, numbered in numeric order when
//! every label is a whole number (FSDD's digits: class 3 is the digit 3), else in text order.
//!
//! ## Formats
//!
//! RIFF WAVE (hound): 8-, 16-, 24- and 32-bit integer PCM (scaled by 2^(bits−1)) and 32-bit
//! float PCM. More than one channel is mixed down to mono by averaging. Float samples
//! outside [-1, 1] are clipped (and counted in the log); NaN or infinite samples make the
//! file bad. A file at another sample rate (up to 768 kHz) is resampled with a windowed-sinc
//! (Hann, 16 zero crossings each side) low-pass interpolator when `resample = true`, and is a
//! bad file otherwise (the error says so). Each waveform is then padded with zeros or trimmed
//! to `length` samples: `align = "center"` keeps the middle of a long clip and centres a
//! short one; `"start"` keeps the beginning and pads at the end.
//!
//! Only the samples a waveform keeps are decoded and resampled (with the few the filter
//! reads beyond each end), so a long recording costs what its crop costs; the result is the
//! same to the bit as converting the whole file and then trimming it. The checks on sample
//! values (NaN, clipping) therefore see the kept part; the header, the file's length and
//! its sample rate are always checked. `length` is at most 10 minutes at `sample_rate`.
//!
//! ## Bad files
//!
//! A corrupt or truncated wav, an empty file, a file with no samples, a wrong sample rate
//! (without `resample`) or a name the pattern cannot read: with `on_bad_file = "fail"` the
//! load stops with an error naming the file and what is wrong; with `"skip"` the file is left
//! out, the load goes on, and [`AudioData::skipped`] lists each skipped file with its reason
//! (the run logs how many). Skipping every file is still an error.
//!
//! ## Split
//!
//! With `split.test_index = [a, b]`, files whose `{index}` is in `a..=b` are the test split
//! (FSDD's official split: recordings 0–4 test, 5–49 train); otherwise a seeded share
//! `split.test` of each class is. Then a seeded share `split.validation` of each class of the
//! remaining files is held out for validation. Shuffles are ChaCha8 seeded by the pipeline
//! seed; each split lists its files in name order. `limit` (applied first, before any file is
//! read) keeps a seeded subsample of that many files in proportion to each class.
//!
//! ## Layout
//!
//! `config` holds the `[data]` section and its checks, `pattern` the file-name patterns,
//! `dataset` the assembly of the splits (labels, manifest, `limit`, split, reading),
//! `wav` the decoding of one file and `resample` the resampling and the fitting of a clip
//! into its row.

mod config;
mod dataset;
mod pattern;
mod resample;
#[cfg(test)]
mod tests;
mod wav;

pub use config::{Align, AudioDataConfig, AudioSplitConfig, MAX_SECONDS, OnBadFile};
pub use dataset::{AudioData, AudioSplit, load};
pub use pattern::Pattern;
pub use resample::{fit_length, resample};
pub use wav::{
    MAX_SOURCE_RATE, ReadOptions, Wav, decode_wav, decode_wav_fitted, pcm16_header, read_wav, read_wav_fitted,
};
