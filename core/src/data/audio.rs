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

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::stratify;
use crate::error::Invalid;
use crate::{Error, Result};

/// `[data]` of an audio pipeline. See the [module docs](self) for the TOML shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioDataConfig {
    /// A folder of `.wav` files, relative to the pipeline's base dir.
    pub path: PathBuf,
    /// File-name pattern with `{label}` (and optionally `{index}` and other fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A CSV with columns `file`, `label` and optionally `split`, relative to the base dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    #[serde(default = "defaults::sample_rate")]
    pub sample_rate: u32,
    /// Resample files at another rate (else they are bad files).
    #[serde(default)]
    pub resample: bool,
    /// Samples per waveform (at `sample_rate`) after padding / trimming.
    #[serde(default = "defaults::length")]
    pub length: usize,
    #[serde(default)]
    pub align: Align,
    #[serde(default)]
    pub on_bad_file: OnBadFile,
    /// Keep a seeded, class-stratified subsample of this many files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default)]
    pub split: AudioSplitConfig,
}

/// Where a clip sits in its fixed-length row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    /// Trim both ends of a long clip equally; pad a short one equally on both sides.
    #[default]
    Center,
    /// Keep the beginning; pad at the end.
    Start,
}

/// What a file that cannot be loaded does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadFile {
    /// Stop with an error naming the file.
    #[default]
    Fail,
    /// Leave it out and count it.
    Skip,
}

/// `[data.split]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSplitConfig {
    /// Files whose `{index}` field is in this inclusive range are the test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_index: Option<[u64; 2]>,
    /// Without `test_index`: the seeded share of each class that is test.
    pub test: f64,
    /// The seeded share of each class of the non-test files held out for validation.
    pub validation: f64,
}

impl Default for AudioSplitConfig {
    fn default() -> Self {
        Self { test_index: None, test: 0.2, validation: 0.1 }
    }
}

mod defaults {
    pub fn sample_rate() -> u32 {
        8000
    }
    pub fn length() -> usize {
        8000
    }
}

/// The longest waveform, in seconds: a row is allocated for every file, and the model's
/// activations grow with it.
pub const MAX_SECONDS: usize = 600;

impl AudioDataConfig {
    /// Why `length` is too long, if it is.
    pub fn length_error(&self) -> Option<String> {
        let max = MAX_SECONDS.saturating_mul(self.sample_rate as usize);
        (self.length > max).then(|| {
            format!(
                "length = {} samples is longer than {} minutes at {} Hz (at most {max} samples)",
                self.length,
                MAX_SECONDS / 60,
                self.sample_rate
            )
        })
    }

    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.path.as_os_str().is_empty() {
            return Err("`path` must name a folder of .wav files".into());
        }
        match (&self.pattern, &self.manifest) {
            (None, None) => {
                return Err(
                    "set `pattern` (labels from file names, e.g. \"{label}_{speaker}_{index}.wav\") or `manifest` (a CSV of file,label)"
                        .into(),
                );
            }
            (Some(_), Some(_)) => return Err("set `pattern` or `manifest`, not both".into()),
            (Some(p), None) => {
                let pat = Pattern::parse(p)?;
                if self.split.test_index.is_some() && !pat.has("index") {
                    return Err("`split.test_index` needs an `{index}` field in `pattern`".into());
                }
            }
            (None, Some(_)) => {
                if self.split.test_index.is_some() {
                    return Err("`split.test_index` reads `{index}` from `pattern`; with a manifest use its `split` column".into());
                }
            }
        }
        if !(1000..=384_000).contains(&self.sample_rate) {
            return Err(
                format!("sample_rate must be between 1000 and 384000 Hz, got {}", self.sample_rate).into()
            );
        }
        if self.length == 0 {
            return Err("length must be at least 1 sample".into());
        }
        if let Some(msg) = self.length_error() {
            return Err(msg.into());
        }
        if self.limit == Some(0) {
            return Err("limit must be at least 1 file".into());
        }
        let s = &self.split;
        if !(0.0..1.0).contains(&s.test) || !(0.0..1.0).contains(&s.validation) {
            return Err("split.test and split.validation must be in [0, 1)".into());
        }
        if let Some([a, b]) = s.test_index
            && a > b
        {
            return Err(format!(
                "split.test_index = [{a}, {b}] is empty: the first must not exceed the second"
            )
            .into());
        }
        Ok(())
    }
}

/// A file-name pattern: literal text and `{field}` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
}

impl Pattern {
    pub fn parse(src: &str) -> std::result::Result<Self, Invalid> {
        let mut parts = Vec::new();
        let mut rest = src;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or_else(|| format!("pattern \"{src}\": `{{` without `}}`"))?;
                let name = &after[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("pattern \"{src}\": bad field name `{{{name}}}`").into());
                }
                if matches!(parts.last(), Some(Part::Field(_))) {
                    return Err(format!("pattern \"{src}\": fields need literal text between them").into());
                }
                parts.push(Part::Field(name.to_owned()));
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                if rest[..end].contains('}') {
                    return Err(format!("pattern \"{src}\": `}}` without `{{`").into());
                }
                parts.push(Part::Lit(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        let pat = Self { parts };
        if !pat.has("label") {
            return Err(format!("pattern \"{src}\" has no `{{label}}` field").into());
        }
        Ok(pat)
    }

    fn has(&self, field: &str) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(f) if f == field))
    }

    /// The fields of `name`, or `None` when it does not match. Each field takes the
    /// shortest text that lets the rest match.
    pub fn matches(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        self.match_from(0, name, &mut out).then_some(out)
    }

    fn match_from(&self, k: usize, s: &str, out: &mut BTreeMap<String, String>) -> bool {
        match self.parts.get(k) {
            None => s.is_empty(),
            Some(Part::Lit(l)) => s.strip_prefix(l.as_str()).is_some_and(|r| self.match_from(k + 1, r, out)),
            Some(Part::Field(f)) => {
                for (end, _) in s.char_indices().skip(1).chain(std::iter::once((s.len(), ' '))) {
                    if self.match_from(k + 1, &s[end..], out) {
                        out.insert(f.clone(), s[..end].to_owned());
                        return true;
                    }
                }
                false
            }
        }
    }
}

/// One split's waveforms: `y.len()` rows of `length` samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioSplit {
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    /// File names (relative to the data folder), row by row.
    pub files: Vec<String>,
}

/// A loaded audio data set.
#[derive(Debug, Clone)]
pub struct AudioData {
    pub path: PathBuf,
    pub sample_rate: u32,
    pub length: usize,
    /// Class names by class id.
    pub classes: Vec<String>,
    pub train: AudioSplit,
    pub validation: AudioSplit,
    pub test: AudioSplit,
    /// Files left out under `on_bad_file = "skip"`, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files that had float samples outside [-1, 1] (clipped).
    pub clipped_files: usize,
    /// Files that were resampled.
    pub resampled_files: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixed {
    Train,
    Validation,
    Test,
}

struct Entry {
    file: String,
    label: String,
    index: Option<u64>,
    split: Option<Fixed>,
}

/// Reads the folder in `cfg`, relative to `base_dir`.
pub fn load(cfg: &AudioDataConfig, base_dir: &Path, seed: u64) -> Result<AudioData> {
    let dir = if cfg.path.is_absolute() { cfg.path.clone() } else { base_dir.join(&cfg.path) };
    if !dir.is_dir() {
        return Err(Error::data(
            &dir,
            "not a folder (the [data] path of an audio pipeline is a folder of .wav files)",
        ));
    }
    let mut skipped: Vec<(PathBuf, String)> = Vec::new();
    let mut bad = |path: PathBuf, msg: String| -> Result<()> {
        match cfg.on_bad_file {
            OnBadFile::Fail => Err(Error::data(path, msg)),
            OnBadFile::Skip => {
                skipped.push((path, msg));
                Ok(())
            }
        }
    };
    let mut entries = Vec::new();
    if let Some(p) = &cfg.pattern {
        let pat = Pattern::parse(p).map_err(|e| Error::Config(e.into()))?;
        for file in wav_files(&dir)? {
            match pat.matches(&file) {
                None => bad(dir.join(&file), format!("the name does not match the pattern \"{p}\""))?,
                Some(fields) => {
                    let index = match fields.get("index") {
                        None => None,
                        Some(v) => match v.parse::<u64>() {
                            Ok(i) => Some(i),
                            Err(_) => {
                                bad(dir.join(&file), format!("`{{index}}` is \"{v}\", not a whole number"))?;
                                continue;
                            }
                        },
                    };
                    entries.push(Entry { file, label: fields["label"].clone(), index, split: None });
                }
            }
        }
    } else if let Some(m) = &cfg.manifest {
        let path = if m.is_absolute() { m.clone() } else { base_dir.join(m) };
        entries = read_manifest(&path)?;
    }
    if entries.is_empty() {
        return Err(Error::data(&dir, "no usable .wav files"));
    }
    let (classes, class_of) = classes(&entries);
    let ys: Vec<u32> = entries.iter().map(|e| class_of[&e.label]).collect();

    // limit: keep a class-stratified, seeded subsample (before any file is read).
    let mut keep: Vec<usize> = (0..entries.len()).collect();
    if let Some(limit) = cfg.limit.filter(|&l| l < entries.len()) {
        keep = stratified_subsample(&ys, classes.len(), limit, seed);
    }

    // Split: fixed by the manifest or `test_index` where they say so, else seeded per class.
    let mut which = vec![Fixed::Train; entries.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_A0D1);
    // Per class: files that may go to test, and files that are not test but may be validation.
    let mut may_test: Vec<Vec<usize>> = vec![Vec::new(); classes.len()];
    let mut not_test: Vec<Vec<usize>> = vec![Vec::new(); classes.len()];
    for &i in &keep {
        let e = &entries[i];
        let c = ys[i] as usize;
        match (e.split, cfg.split.test_index, e.index) {
            (Some(fixed), _, _) => which[i] = fixed,
            (None, Some([a, b]), Some(ix)) if (a..=b).contains(&ix) => which[i] = Fixed::Test,
            (None, Some(_), _) => not_test[c].push(i),
            (None, None, _) => may_test[c].push(i),
        }
    }
    for (mut candidates, mut rest) in may_test.into_iter().zip(not_test) {
        candidates.shuffle(&mut rng);
        let k = (candidates.len() as f64 * cfg.split.test).round() as usize;
        for &i in &candidates[..k] {
            which[i] = Fixed::Test;
        }
        rest.extend_from_slice(&candidates[k..]);
        rest.sort_unstable();
        rest.shuffle(&mut rng);
        let k = (rest.len() as f64 * cfg.split.validation).round() as usize;
        for &i in &rest[..k] {
            which[i] = Fixed::Validation;
        }
    }

    // Read the kept files, in name order.
    let mut data = AudioData {
        path: dir.clone(),
        sample_rate: cfg.sample_rate,
        length: cfg.length,
        classes,
        train: AudioSplit::default(),
        validation: AudioSplit::default(),
        test: AudioSplit::default(),
        skipped: Vec::new(),
        clipped_files: 0,
        resampled_files: 0,
    };
    let mut order = keep;
    order.sort_by(|&a, &b| entries[a].file.cmp(&entries[b].file));
    let opts = ReadOptions { sample_rate: cfg.sample_rate, resample: cfg.resample };
    for i in order {
        let path = dir.join(&entries[i].file);
        let wav = match read_wav_fitted(&path, &opts, cfg.length, cfg.align) {
            Ok(w) => w,
            Err(msg) => {
                bad(path, msg.into())?;
                continue;
            }
        };
        data.clipped_files += wav.clipped as usize;
        data.resampled_files += wav.resampled as usize;
        let split = match which[i] {
            Fixed::Test => &mut data.test,
            Fixed::Validation => &mut data.validation,
            Fixed::Train => &mut data.train,
        };
        split.x.extend_from_slice(&wav.samples);
        split.y.push(ys[i]);
        split.files.push(entries[i].file.clone());
    }
    data.skipped = skipped;
    if data.train.y.is_empty() {
        return Err(Error::data(
            &dir,
            format!("no training files could be loaded ({} skipped)", data.skipped.len()),
        ));
    }
    Ok(data)
}

/// The `.wav` files of `dir` (any case), by name.
fn wav_files(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_wav = Path::new(name).extension().is_some_and(|x| x.eq_ignore_ascii_case("wav"));
        if is_wav && e.file_type().map(|t| !t.is_dir()).unwrap_or(false) {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn read_manifest(path: &Path) -> Result<Vec<Entry>> {
    let bytes = super::read_regular_file(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::data(path, format!("line {line}: not valid UTF-8"))
    })?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) =
        lines.next().ok_or_else(|| Error::data(path, "empty manifest: it needs a header `file,label`"))?;
    let header = split_csv(header).map_err(|m| Error::data(path, format!("line 1: {m}")))?;
    let col = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let (Some(fc), Some(lc)) = (col("file"), col("label")) else {
        return Err(Error::data(path, "line 1: the header needs columns `file` and `label`"));
    };
    let sc = col("split");
    let mut out = Vec::new();
    for (n, line) in lines {
        let at = |m: String| Error::data(path, format!("line {}: {m}", n + 1));
        let cells = split_csv(line).map_err(|e| at(e.into()))?;
        if cells.len() != header.len() {
            return Err(at(format!("{} cells, the header has {}", cells.len(), header.len())));
        }
        let file = cells[fc].trim().to_owned();
        let label = cells[lc].trim().to_owned();
        if file.is_empty() || label.is_empty() {
            return Err(at("empty `file` or `label`".into()));
        }
        let split = match sc.map(|c| cells[c].trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => None,
            Some("train") => Some(Fixed::Train),
            Some("validation") => Some(Fixed::Validation),
            Some("test") => Some(Fixed::Test),
            Some(other) => return Err(at(format!("split `{other}` is not train, validation or test"))),
        };
        out.push(Entry { file, label, index: None, split });
    }
    Ok(out)
}

/// One CSV line: commas, with `"..."` quoting (`""` for a quote).
fn split_csv(line: &str) -> std::result::Result<Vec<String>, Invalid> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        let cell = cells.last_mut().expect("one cell");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.trim().is_empty() => quoted = true,
            (',', false) => cells.push(String::new()),
            (c, _) => cell.push(c),
        }
    }
    if quoted { Err("unterminated quote".into()) } else { Ok(cells) }
}

/// Class names and ids: numeric order when every label is a whole number, else text order.
fn classes(entries: &[Entry]) -> (Vec<String>, BTreeMap<String, u32>) {
    let mut names: Vec<String> = entries.iter().map(|e| e.label.clone()).collect();
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().expect("checked"));
    }
    let ids = names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
    (names, ids)
}

/// `limit` rows in proportion to each class (a [`stratify::subsample`]), in index order.
fn stratified_subsample(ys: &[u32], n_classes: usize, limit: usize, seed: u64) -> Vec<usize> {
    let mut by_class = stratify::by_class(ys, n_classes);
    stratify::subsample(&mut by_class, Some(limit), &mut ChaCha8Rng::seed_from_u64(seed ^ 0x11A1_7000));
    let mut keep = by_class.concat();
    keep.sort_unstable();
    keep
}

/// How [`read_wav`] converts a file.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub sample_rate: u32,
    pub resample: bool,
}

/// A decoded file: mono samples at the target rate, in [-1, 1].
#[derive(Debug, Clone)]
pub struct Wav {
    pub samples: Vec<f32>,
    /// The file's own rate and channel count.
    pub source_rate: u32,
    pub channels: u16,
    /// Whether float samples outside [-1, 1] were clipped.
    pub clipped: bool,
    pub resampled: bool,
}

/// The highest file rate that is resampled. Each output sample of a conversion from `r` Hz
/// reads about 32·r/`sample_rate` input samples, so a header claiming gigahertz would turn
/// one file into hours of arithmetic.
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Decodes one wav file whole; the error is the reason, without the path.
pub fn read_wav(path: &Path, opts: &ReadOptions) -> std::result::Result<Wav, Invalid> {
    let (file, meta) = super::open_regular(path).map_err(|e| e.reason())?;
    decode(file, meta.len(), opts, None)
}

/// Reads one wav file into a row of `length` samples laid out as [`fit_length`] lays out the
/// whole decoded file, but decodes and resamples only the samples that the row keeps, and
/// those the resampling filter reads around them: half a second cut from a ten-minute
/// recording costs half a second of work. `samples` is the row.
pub fn read_wav_fitted(
    path: &Path,
    opts: &ReadOptions,
    length: usize,
    align: Align,
) -> std::result::Result<Wav, Invalid> {
    let (file, meta) = super::open_regular(path).map_err(|e| e.reason())?;
    decode(file, meta.len(), opts, Some((length, align)))
}

/// Decodes wav bytes (see [`read_wav`]).
pub fn decode_wav(bytes: &[u8], opts: &ReadOptions) -> std::result::Result<Wav, Invalid> {
    decode(std::io::Cursor::new(bytes), bytes.len() as u64, opts, None)
}

/// [`read_wav_fitted`] over `len` bytes of any seekable reader.
pub fn decode_wav_fitted<R: Read + Seek>(
    reader: R,
    len: u64,
    opts: &ReadOptions,
    length: usize,
    align: Align,
) -> std::result::Result<Wav, Invalid> {
    decode(reader, len, opts, Some((length, align)))
}

/// A reader that counts the bytes hound takes, which is how the start of the sample data
/// and the bytes per sample are found (hound keeps both to itself).
struct Counted<'c, R> {
    inner: R,
    pos: &'c Cell<u64>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

fn decode<R: Read + Seek>(
    reader: R,
    len: u64,
    opts: &ReadOptions,
    fit: Option<(usize, Align)>,
) -> std::result::Result<Wav, Invalid> {
    if len == 0 {
        return Err("empty file (0 bytes), not a wav file".into());
    }
    let io = |e: std::io::Error| format!("cannot read: {e}");
    let mut reader = BufReader::new(reader);
    let mut magic = [0u8; 4];
    if len >= 4 {
        reader.read_exact(&mut magic).map_err(io)?;
        if &magic != b"RIFF" {
            return Err("not a valid wav file: it does not start with a RIFF header".into());
        }
        reader.seek(SeekFrom::Start(0)).map_err(io)?;
    }
    let pos = Cell::new(0u64);
    let mut wav = hound::WavReader::new(Counted { inner: &mut reader, pos: &pos }).map_err(|e| match e {
        hound::Error::Unsupported => {
            "unsupported wav encoding (Tempered reads 8/16/24/32-bit integer and 32-bit float PCM)".into()
        }
        // hound reports a header cut short as an I/O error "Failed to read enough bytes".
        hound::Error::IoError(_) => format!("truncated or not a wav file: the header ends early ({e})"),
        other => format!("not a valid wav file: {other}"),
    })?;
    let spec = wav.spec();
    let data_start = pos.get();
    let channels = spec.channels.max(1) as usize;
    let declared = wav.len() as usize;
    let float = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => true,
        (hound::SampleFormat::Int, 8 | 16 | 24 | 32) => false,
        (format, bits) => {
            return Err(format!(
                "unsupported encoding: {bits}-bit {format:?} (Tempered reads 8/16/24/32-bit integer and 32-bit float PCM)"
            ).into());
        }
    };
    if declared == 0 {
        return Err("holds no samples".into());
    }
    let first = if float {
        wav.samples::<f32>().next().map(|s| s.map(drop))
    } else {
        wav.samples::<i32>().next().map(|s| s.map(drop))
    };
    match first {
        Some(Ok(())) => {}
        Some(Err(hound::Error::IoError(e))) => {
            return Err(format!(
                "truncated or corrupt: read 0 of the {declared} samples the header declares ({e})"
            )
            .into());
        }
        Some(Err(e)) => {
            return Err(format!(
                "unsupported wav encoding: {}-bit samples stored in a way hound cannot read ({e})",
                spec.bits_per_sample
            )
            .into());
        }
        None => return Err("holds no samples".into()),
    }
    // 24-bit samples come in 3- or 4-byte containers: the first sample tells which.
    let bytes_per_sample = pos.get() - data_start;
    let held = (len.saturating_sub(data_start) / bytes_per_sample.max(1)) as usize;
    if held < declared {
        return Err(format!(
            "truncated: the header declares {declared} samples ({} bytes), the file holds {held}",
            declared as u64 * bytes_per_sample
        )
        .into());
    }
    if !declared.is_multiple_of(channels) {
        return Err(format!("truncated: {declared} samples do not fill {channels}-channel frames").into());
    }
    let frames = declared / channels;

    let resampled = spec.sample_rate != opts.sample_rate;
    if resampled {
        if !opts.resample {
            return Err(format!(
                "sample rate {} Hz, but the pipeline wants {} Hz ([data] resample = true converts it)",
                spec.sample_rate, opts.sample_rate
            )
            .into());
        }
        if spec.sample_rate == 0 {
            return Err("the header gives a sample rate of 0 Hz".into());
        }
        if spec.sample_rate > MAX_SOURCE_RATE {
            return Err(format!(
                "the header gives a sample rate of {} Hz; Tempered resamples files of at most {MAX_SOURCE_RATE} Hz",
                spec.sample_rate
            ).into());
        }
    }
    let filter = resampled.then(|| Resampler::new(frames, spec.sample_rate, opts.sample_rate));
    let n_out = filter.as_ref().map_or(frames, |f| f.n_out);
    let (row_len, (src, dst, k)) = match fit {
        Some((length, align)) => (length, placement(n_out, length, align)),
        None => (n_out, (0, 0, n_out)),
    };
    // The input frames that outputs src..src + k read: the filter's taps move forward with
    // the output index, so the first output's first tap and the last one's last tap bound them.
    let (first_frame, end_frame) = match &filter {
        None => (src, src + k),
        Some(f) => (f.taps(src).0, f.taps(src + k - 1).1 + 1),
    };
    let end_frame = end_frame.max(first_frame);

    reader
        .seek(SeekFrom::Start(data_start + (first_frame * channels) as u64 * bytes_per_sample))
        .map_err(io)?;
    let scale = 1.0 / (1u64 << (spec.bits_per_sample.min(32) - 1)) as f64;
    let bps = bytes_per_sample as u16;
    let mut mono: Vec<f32> = Vec::with_capacity(end_frame - first_frame);
    let mut frame: Vec<f32> = Vec::with_capacity(channels);
    let mut clipped = false;
    for f in first_frame..end_frame {
        frame.clear();
        for c in 0..channels {
            let at = f * channels + c;
            let truncated = |e: hound::Error| {
                format!(
                    "truncated or corrupt: cannot read sample {at} of the {declared} the header declares ({e})"
                )
            };
            let v = if float {
                let v =
                    <f32 as hound::Sample>::read(&mut reader, spec.sample_format, bps, spec.bits_per_sample)
                        .map_err(truncated)?;
                if !v.is_finite() {
                    return Err(format!("sample {at} is {v}: corrupt float data").into());
                }
                clipped |= !(-1.0..=1.0).contains(&v);
                v.clamp(-1.0, 1.0)
            } else {
                let v =
                    <i32 as hound::Sample>::read(&mut reader, spec.sample_format, bps, spec.bits_per_sample)
                        .map_err(truncated)?;
                (v as f64 * scale) as f32
            };
            frame.push(v);
        }
        mono.push(if channels == 1 { frame[0] } else { frame.iter().sum::<f32>() / channels as f32 });
    }

    let mut samples = vec![0.0f32; row_len];
    match &filter {
        None => samples[dst..dst + k].copy_from_slice(&mono[..k]),
        Some(f) => {
            for (j, out) in samples[dst..dst + k].iter_mut().enumerate() {
                *out = f.output(&mono, first_frame, src + j);
            }
        }
    }
    Ok(Wav { samples, source_rate: spec.sample_rate, channels: spec.channels, clipped, resampled })
}

/// Windowed-sinc resampling (Hann window, 16 zero crossings each side), low-passed at the
/// lower of the two Nyquist frequencies; output clipped to [-1, 1].
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let f = Resampler::new(x.len(), from, to);
    (0..f.n_out).map(|n| f.output(x, 0, n)).collect()
}

/// The filter of [`resample`] for an input of `n_in` samples. Any one output can be
/// computed from the input samples its taps cover, which is what lets a crop be resampled
/// without the rest of the file, to the same bits.
struct Resampler {
    ratio: f64,
    /// Cutoff in cycles per input sample.
    fc: f64,
    /// Half the filter's width, in input samples.
    half: f64,
    n_in: usize,
    n_out: usize,
}

impl Resampler {
    fn new(n_in: usize, from: u32, to: u32) -> Self {
        const ZEROS: f64 = 16.0;
        let ratio = to as f64 / from as f64;
        let n_out = ((n_in as f64 * ratio).round() as usize).max(1);
        let fc = 0.5 * ratio.min(1.0);
        Self { ratio, fc, half: ZEROS / (2.0 * fc), n_in, n_out }
    }

    /// The input samples `lo..=hi` that output `n` reads (none when `lo > hi`).
    fn taps(&self, n: usize) -> (usize, usize) {
        let p = n as f64 / self.ratio;
        let lo = ((p - self.half).ceil().max(0.0)) as usize;
        let hi = ((p + self.half).floor() as usize).min(self.n_in - 1);
        (lo, hi)
    }

    /// Output `n`, from `x` holding the input from sample `offset` on (at least up to the
    /// last tap of `n`).
    fn output(&self, x: &[f32], offset: usize, n: usize) -> f32 {
        let p = n as f64 / self.ratio;
        let (lo, hi) = self.taps(n);
        let (mut acc, mut norm) = (0.0f64, 0.0f64);
        for k in lo..=hi {
            let v = x[k - offset];
            let t = k as f64 - p;
            let arg = 2.0 * self.fc * t;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
            };
            let window = 0.5 + 0.5 * (std::f64::consts::PI * t / self.half).cos();
            let h = sinc * window;
            acc += h * v as f64;
            norm += h;
        }
        // Normalising by the taps' sum keeps DC gain 1 (also at the edges).
        let v = if norm.abs() > 1e-9 { acc / norm } else { 0.0 };
        (v as f32).clamp(-1.0, 1.0)
    }
}

/// Where [`fit_length`] puts a clip of `n` samples in a row of `len`: `k` samples from `src`
/// on go to `dst` on.
fn placement(n: usize, len: usize, align: Align) -> (usize, usize, usize) {
    let (src, dst) = match align {
        Align::Start => (0, 0),
        Align::Center if n > len => ((n - len) / 2, 0),
        Align::Center => (0, (len - n) / 2),
    };
    (src, dst, (n - src).min(len - dst))
}

/// Pads with zeros or trims `x` into `out` (whose length is the target).
pub fn fit_length(x: &[f32], out: &mut [f32], align: Align) {
    let (src, dst, k) = placement(x.len(), out.len(), align);
    out.fill(0.0);
    out[dst..dst + k].copy_from_slice(&x[src..src + k]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(
        path: &Path,
        spec: hound::WavSpec,
        f: impl Fn(&mut hound::WavWriter<std::io::BufWriter<std::fs::File>>),
    ) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        f(&mut w);
        w.finalize().unwrap();
    }

    fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
        let sample_format = if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int };
        hound::WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format }
    }

    const OPTS: ReadOptions = ReadOptions { sample_rate: 8000, resample: false };

    #[test]
    fn pattern_reads_fsdd_names() {
        let p = Pattern::parse("{label}_{speaker}_{index}.wav").unwrap();
        let f = p.matches("7_jackson_32.wav").unwrap();
        assert_eq!((f["label"].as_str(), f["speaker"].as_str(), f["index"].as_str()), ("7", "jackson", "32"));
        // Fields take the shortest text that lets the rest match.
        let f = p.matches("3_yweweler_b_5.wav").unwrap();
        assert_eq!((f["speaker"].as_str(), f["index"].as_str()), ("yweweler", "b_5"));
        assert!(p.matches("7_jackson.wav").is_none());
        assert!(p.matches("7_jackson_32.wave").is_none());
        assert!(Pattern::parse("{speaker}_{index}.wav").is_err());
        assert!(Pattern::parse("{label}{index}.wav").is_err());
        assert!(Pattern::parse("{label.wav").is_err());
    }

    #[test]
    fn integer_formats_scale_to_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        for bits in [8u16, 16, 24, 32] {
            let path = dir.path().join(format!("i{bits}.wav"));
            let full = (1i64 << (bits - 1)) as f64;
            write(&path, spec(1, 8000, bits, false), |w| {
                for v in [0.5, -0.5, 0.25, -1.0] {
                    w.write_sample((v * full) as i32).unwrap();
                }
            });
            let wav = read_wav(&path, &OPTS).unwrap();
            assert_eq!(wav.samples, vec![0.5, -0.5, 0.25, -1.0], "{bits}-bit");
        }
    }

    #[test]
    fn float_is_read_and_clipped_and_stereo_is_mixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wav");
        write(&path, spec(2, 8000, 32, true), |w| {
            for v in [0.5f32, 0.25, -0.5, 1.5] {
                w.write_sample(v).unwrap();
            }
        });
        let wav = read_wav(&path, &OPTS).unwrap();
        assert_eq!(wav.samples, vec![0.375, 0.25]);
        assert!(wav.clipped);
        assert_eq!(wav.channels, 2);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(read_wav(&empty, &OPTS).unwrap_err().contains("empty file"));
        let text = dir.path().join("text.wav");
        std::fs::write(&text, b"this is not a wav file at all, just some text").unwrap();
        assert!(read_wav(&text, &OPTS).unwrap_err().contains("not a valid wav file"));
        let good = dir.path().join("good.wav");
        write(&good, spec(1, 8000, 16, false), |w| (0..1000).for_each(|i| w.write_sample(i as i16).unwrap()));
        let bytes = std::fs::read(&good).unwrap();
        let cut = decode_wav(&bytes[..bytes.len() - 500], &OPTS).unwrap_err();
        assert!(cut.contains("truncated"), "{cut}");
        let head = decode_wav(&bytes[..20], &OPTS).unwrap_err();
        assert!(head.contains("truncated or not a wav"), "{head}");
        let silent = dir.path().join("none.wav");
        write(&silent, spec(1, 8000, 16, false), |_| {});
        assert!(read_wav(&silent, &OPTS).unwrap_err().contains("no samples"));
        let fast = dir.path().join("fast.wav");
        write(&fast, spec(1, 16000, 16, false), |w| (0..1600).for_each(|_| w.write_sample(0i16).unwrap()));
        let e = read_wav(&fast, &OPTS).unwrap_err();
        assert!(e.contains("16000 Hz") && e.contains("resample = true"), "{e}");
        let ok = read_wav(&fast, &ReadOptions { sample_rate: 8000, resample: true }).unwrap();
        assert_eq!(ok.samples.len(), 800);
        assert!(ok.resampled);
    }

    #[test]
    fn resampling_keeps_a_tone_and_removes_what_cannot_be_represented() {
        let tone = |f: f64, rate: u32, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin()) as f32)
                .collect()
        };
        // 440 Hz at 16 kHz → 8 kHz: the same tone.
        let y = resample(&tone(440.0, 16000, 16000), 16000, 8000);
        let want = tone(440.0, 8000, 8000);
        assert_eq!(y.len(), 8000);
        let err =
            y[200..7800].iter().zip(&want[200..7800]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 0.01, "{err}");
        // 6 kHz is above the new Nyquist (4 kHz): filtered out.
        let y = resample(&tone(6000.0, 16000, 16000), 16000, 8000);
        let rms = (y[200..7800].iter().map(|v| v * v).sum::<f32>() / 7600.0).sqrt();
        assert!(rms < 0.01, "{rms}");
        // Upsampling 8 → 11.025 kHz keeps the length ratio.
        assert_eq!(resample(&tone(440.0, 8000, 8000), 8000, 11025).len(), 11025);
    }

    #[test]
    fn fixed_length_pads_and_trims() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut out = [9.0; 3];
        fit_length(&x, &mut out, Align::Center);
        assert_eq!(out, [2.0, 3.0, 4.0]);
        fit_length(&x, &mut out, Align::Start);
        assert_eq!(out, [1.0, 2.0, 3.0]);
        let mut out = [9.0; 8];
        fit_length(&x, &mut out, Align::Center);
        assert_eq!(out, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]);
        fit_length(&x, &mut out, Align::Start);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0, 0.0]);
    }

    fn folder(files: &[(&str, u32)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for &(name, rate) in files {
            write(&dir.path().join(name), spec(1, rate, 16, false), |w| {
                (0..400).for_each(|i| w.write_sample(((i * 37) % 2000) as i16).unwrap())
            });
        }
        dir
    }

    fn config(pattern: &str) -> AudioDataConfig {
        toml::from_str(&format!("path = \".\"\npattern = \"{pattern}\"\nlength = 500\nsplit = {{ test_index = [0, 1], validation = 0.5 }}"))
            .unwrap()
    }

    #[test]
    fn fsdd_like_folder_splits_by_index_and_numbers_digit_classes() {
        let mut names = Vec::new();
        for d in [2, 10, 1] {
            for i in 0..4 {
                names.push(format!("{d}_x_{i}.wav"));
            }
        }
        let refs: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 8000)).collect();
        let dir = folder(&refs);
        std::fs::write(dir.path().join("README.md"), "ignored").unwrap();
        let d = load(&config("{label}_{speaker}_{index}.wav"), dir.path(), 3).unwrap();
        assert_eq!(d.classes, vec!["1", "2", "10"]);
        assert_eq!(d.test.y.len(), 6);
        assert!(d.test.files.iter().all(|f| f.ends_with("_0.wav") || f.ends_with("_1.wav")));
        assert_eq!(d.validation.y.len(), 3);
        assert_eq!(d.train.y.len(), 3);
        assert_eq!(d.train.x.len(), 3 * 500);
        let again = load(&config("{label}_{speaker}_{index}.wav"), dir.path(), 3).unwrap();
        assert_eq!(d.validation.files, again.validation.files, "seeded");
    }

    #[test]
    fn bad_files_fail_or_are_skipped_and_counted() {
        let dir =
            folder(&[("1_a_0.wav", 8000), ("1_a_2.wav", 8000), ("2_a_3.wav", 8000), ("2_a_0.wav", 16000)]);
        std::fs::write(dir.path().join("2_a_4.wav"), b"").unwrap();
        let mut cfg = config("{label}_{speaker}_{index}.wav");
        cfg.split.validation = 0.0;
        let e = load(&cfg, dir.path(), 1).unwrap_err().to_string();
        assert!(e.contains("2_a_0.wav") && e.contains("16000 Hz"), "{e}");
        cfg.on_bad_file = OnBadFile::Skip;
        let d = load(&cfg, dir.path(), 1).unwrap();
        assert_eq!(d.skipped.len(), 2);
        assert_eq!(d.train.y.len() + d.test.y.len(), 3);
        cfg.resample = true;
        assert_eq!(load(&cfg, dir.path(), 1).unwrap().skipped.len(), 1);
    }

    #[test]
    fn manifest_labels_and_splits() {
        let dir = folder(&[("a.wav", 8000), ("b.wav", 8000), ("c.wav", 8000), ("d.wav", 8000)]);
        std::fs::write(
            dir.path().join("m.csv"),
            "file,label,split\na.wav,yes,train\nb.wav,no,test\n\"c.wav\",yes,\nd.wav,no,train\n",
        )
        .unwrap();
        let cfg: AudioDataConfig =
            toml::from_str("path = \".\"\nmanifest = \"m.csv\"\nsplit = { validation = 0.0, test = 0.0 }")
                .unwrap();
        cfg.validate().unwrap();
        let d = load(&cfg, dir.path(), 1).unwrap();
        assert_eq!(d.classes, vec!["no", "yes"]);
        assert_eq!(d.test.files, vec!["b.wav"]);
        assert_eq!(d.train.files, vec!["a.wav", "c.wav", "d.wav"]);
    }

    #[test]
    fn limit_keeps_classes_in_proportion() {
        let ys: Vec<u32> = (0..100).map(|i| if i < 80 { 0 } else { 1 }).collect();
        let keep = stratified_subsample(&ys, 2, 10, 5);
        assert_eq!(keep.len(), 10);
        assert_eq!(keep.iter().filter(|&&i| ys[i] == 1).count(), 2);
    }

    /// The loader as it was before crops were read alone: decode the whole file, mix it,
    /// resample all of it, then trim. Kept verbatim as what the new path must match to the bit.
    mod reference {
        use super::super::{Align, ReadOptions};

        /// The whole file at the target rate.
        pub fn whole(bytes: &[u8], opts: &ReadOptions) -> Vec<f32> {
            let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
            let spec = reader.spec();
            let channels = spec.channels as usize;
            let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, 32) => {
                    reader.samples::<f32>().map(|s| s.unwrap().clamp(-1.0, 1.0)).collect()
                }
                (_, bits) => {
                    let scale = 1.0 / (1u64 << (bits - 1)) as f64;
                    reader.samples::<i32>().map(|s| (s.unwrap() as f64 * scale) as f32).collect()
                }
            };
            let mono: Vec<f32> = if channels == 1 {
                interleaved
            } else {
                interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect()
            };
            if spec.sample_rate != opts.sample_rate {
                resample(&mono, spec.sample_rate, opts.sample_rate)
            } else {
                mono
            }
        }

        pub fn row(whole: &[f32], length: usize, align: Align) -> Vec<f32> {
            let mut out = vec![0.0; length];
            fit_length(whole, &mut out, align);
            out
        }

        fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
            if from == to || x.is_empty() {
                return x.to_vec();
            }
            let ratio = to as f64 / from as f64;
            let n_out = ((x.len() as f64 * ratio).round() as usize).max(1);
            let fc = 0.5 * ratio.min(1.0);
            const ZEROS: f64 = 16.0;
            let half = ZEROS / (2.0 * fc);
            let mut out = Vec::with_capacity(n_out);
            for n in 0..n_out {
                let p = n as f64 / ratio;
                let lo = ((p - half).ceil().max(0.0)) as usize;
                let hi = ((p + half).floor() as usize).min(x.len() - 1);
                let (mut acc, mut norm) = (0.0f64, 0.0f64);
                for (k, &v) in x.iter().enumerate().take(hi + 1).skip(lo) {
                    let t = k as f64 - p;
                    let arg = 2.0 * fc * t;
                    let sinc = if arg.abs() < 1e-12 {
                        1.0
                    } else {
                        (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
                    };
                    let window = 0.5 + 0.5 * (std::f64::consts::PI * t / half).cos();
                    let h = sinc * window;
                    acc += h * v as f64;
                    norm += h;
                }
                let v = if norm.abs() > 1e-9 { acc / norm } else { 0.0 };
                out.push((v as f32).clamp(-1.0, 1.0));
            }
            out
        }

        fn fit_length(x: &[f32], out: &mut [f32], align: Align) {
            let (n, len) = (x.len(), out.len());
            out.fill(0.0);
            let (src, dst) = match align {
                Align::Start => (0, 0),
                Align::Center if n > len => ((n - len) / 2, 0),
                Align::Center => (0, (len - n) / 2),
            };
            let k = (n - src).min(len - dst);
            out[dst..dst + k].copy_from_slice(&x[src..src + k]);
        }
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    fn assert_same_rows(path: &Path, opts: ReadOptions, lengths: &[usize]) {
        let whole = reference::whole(&std::fs::read(path).unwrap(), &opts);
        for &length in lengths {
            for align in [Align::Center, Align::Start] {
                let new = read_wav_fitted(path, &opts, length, align).unwrap().samples;
                let old = reference::row(&whole, length, align);
                assert!(
                    bits(&new) == bits(&old),
                    "{}: {opts:?}, length {length}, {align:?}: the crop differs from the whole-file path",
                    path.display()
                );
            }
        }
    }

    fn fsdd(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fsdd/recordings").join(name)
    }

    #[test]
    fn fitted_rows_match_the_whole_file_path_on_fsdd() {
        // The longest recording (2.3 s: trimmed to 8000) and short ones (padded).
        for name in ["9_theo_16.wav", "0_george_0.wav", "3_jackson_12.wav", "7_yweweler_49.wav"] {
            let path = fsdd(name);
            assert_same_rows(
                &path,
                ReadOptions { sample_rate: 8000, resample: false },
                &[8000, 4000, 1, 30000],
            );
            for rate in [16000, 11025, 4000, 3000] {
                assert_same_rows(&path, ReadOptions { sample_rate: rate, resample: true }, &[8000, 4000, 1]);
            }
        }
    }

    #[test]
    fn fitted_rows_match_the_whole_file_path_on_long_synthetic_wavs() {
        let dir = tempfile::tempdir().unwrap();
        let signal = |i: usize, rate: u32| {
            let t = i as f64 / rate as f64;
            0.4 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.3 * (2.0 * std::f64::consts::PI * 5000.0 * t).sin()
                + 0.2 * (((i * 7919) % 1000) as f64 / 500.0 - 1.0)
        };
        // 12 s of 44.1 kHz stereo, 16-bit.
        let long = dir.path().join("long.wav");
        write(&long, spec(2, 44100, 16, false), |w| {
            for i in 0..44100 * 12 {
                let v = signal(i, 44100);
                w.write_sample((v * 32767.0) as i16).unwrap();
                w.write_sample((-v * 16000.0) as i16).unwrap();
            }
        });
        assert_same_rows(&long, ReadOptions { sample_rate: 8000, resample: true }, &[4000, 8000, 200_000]);
        assert_same_rows(&long, ReadOptions { sample_rate: 44100, resample: false }, &[22050, 1_000_000]);
        // 24-bit mono at 22.05 kHz and 32-bit float at 48 kHz (values past ±1 are clipped).
        let i24 = dir.path().join("i24.wav");
        write(&i24, spec(1, 22050, 24, false), |w| {
            (0..22050 * 5).for_each(|i| w.write_sample((signal(i, 22050) * 8_000_000.0) as i32).unwrap())
        });
        assert_same_rows(&i24, ReadOptions { sample_rate: 8000, resample: true }, &[4000, 8000]);
        let f32s = dir.path().join("f32.wav");
        write(&f32s, spec(1, 48000, 32, true), |w| {
            (0..48000 * 5).for_each(|i| w.write_sample((signal(i, 48000) * 1.4) as f32).unwrap())
        });
        assert_same_rows(&f32s, ReadOptions { sample_rate: 16000, resample: true }, &[4000, 16000]);
        // The whole-file reader is the same path with nothing cut.
        let whole = read_wav(&long, &ReadOptions { sample_rate: 8000, resample: true }).unwrap().samples;
        let row = read_wav_fitted(
            &long,
            &ReadOptions { sample_rate: 8000, resample: true },
            whole.len(),
            Align::Start,
        )
        .unwrap()
        .samples;
        assert_eq!(bits(&whole), bits(&row));
    }

    /// A canonical 44-byte header for `data_len` bytes of 16-bit mono PCM at `rate`.
    fn header16(rate: u32, data_len: u32) -> Vec<u8> {
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&data_len.wrapping_add(36).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * 2).to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_len.to_le_bytes());
        h
    }

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn a_crop_of_a_long_file_reads_only_what_it_keeps() {
        // Ten minutes at 44.1 kHz (53 MB) cut to half a second at 8 kHz.
        let frames = 44100u32 * 600;
        let mut bytes = header16(44100, frames * 2);
        bytes.resize(bytes.len() + frames as usize * 2, 0);
        let len = bytes.len() as u64;
        let mut counting = Counting { inner: std::io::Cursor::new(bytes), read: 0 };
        let opts = ReadOptions { sample_rate: 8000, resample: true };
        let wav = decode_wav_fitted(&mut counting, len, &opts, 4000, Align::Center).unwrap();
        assert_eq!(wav.samples.len(), 4000);
        // 0.5 s of 44.1 kHz 16-bit is 44 KB; the filter adds 2 × 89 samples.
        assert!(counting.read < 128 * 1024, "read {} bytes of {len}", counting.read);
    }

    #[test]
    fn a_header_claiming_gigabytes_is_truncated_not_allocated() {
        let mut bytes = header16(8000, 0xFFFF_FFF0);
        bytes.extend_from_slice(&[0u8; 100]);
        let e = decode_wav(&bytes, &OPTS).unwrap_err();
        assert!(
            e.contains("truncated: the header declares 2147483640 samples") && e.contains("holds 50"),
            "{e}"
        );
        let e =
            decode_wav_fitted(std::io::Cursor::new(&bytes), bytes.len() as u64, &OPTS, 8000, Align::Center)
                .unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn absurd_source_rates_are_refused_when_resampling() {
        let mut bytes = header16(4_000_000_000 / 2, 200);
        bytes.extend_from_slice(&[0u8; 200]);
        let e = decode_wav(&bytes, &ReadOptions { sample_rate: 8000, resample: true }).unwrap_err();
        assert!(e.contains("at most 768000 Hz"), "{e}");
    }

    #[test]
    fn validation_names_the_problem() {
        let mut cfg = config("{label}_{speaker}_{index}.wav");
        assert!(cfg.validate().is_ok());
        cfg.pattern = Some("{label}.wav".into());
        assert!(cfg.validate().unwrap_err().contains("{index}"));
        cfg.pattern = None;
        assert!(cfg.validate().unwrap_err().contains("manifest"));
    }
}
