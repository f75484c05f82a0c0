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
//! file bad. A file at another sample rate is resampled with a windowed-sinc (Hann, 16
//! zero crossings each side) low-pass interpolator when `resample = true`, and is a bad file
//! otherwise (the error says so). Each waveform is then padded with zeros or trimmed to
//! `length` samples: `align = "center"` keeps the middle of a long clip and centres a short
//! one; `"start"` keeps the beginning and pads at the end.
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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

impl AudioDataConfig {
    pub fn validate(&self) -> Result<(), String> {
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
            return Err(format!("sample_rate must be between 1000 and 384000 Hz, got {}", self.sample_rate));
        }
        if self.length == 0 {
            return Err("length must be at least 1 sample".into());
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
            ));
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
    pub fn parse(src: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or_else(|| format!("pattern \"{src}\": `{{` without `}}`"))?;
                let name = &after[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("pattern \"{src}\": bad field name `{{{name}}}`"));
                }
                if matches!(parts.last(), Some(Part::Field(_))) {
                    return Err(format!("pattern \"{src}\": fields need literal text between them"));
                }
                parts.push(Part::Field(name.to_owned()));
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                if rest[..end].contains('}') {
                    return Err(format!("pattern \"{src}\": `}}` without `{{`"));
                }
                parts.push(Part::Lit(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        let pat = Self { parts };
        if !pat.has("label") {
            return Err(format!("pattern \"{src}\" has no `{{label}}` field"));
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
        let pat = Pattern::parse(p).map_err(Error::Config)?;
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
        let wav = match read_wav(&path, &opts) {
            Ok(w) => w,
            Err(msg) => {
                bad(path, msg)?;
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
        let start = split.x.len();
        split.x.resize(start + cfg.length, 0.0);
        fit_length(&wav.samples, &mut split.x[start..], cfg.align);
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
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
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
        let cells = split_csv(line).map_err(at)?;
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
fn split_csv(line: &str) -> Result<Vec<String>, String> {
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

/// `limit` rows in proportion to each class (largest remainder, every class at least one).
fn stratified_subsample(ys: &[u32], n_classes: usize, limit: usize, seed: u64) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &y) in ys.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11A1_7000);
    let total = ys.len() as f64;
    let exact: Vec<f64> = by_class.iter().map(|c| c.len() as f64 * limit as f64 / total).collect();
    let mut take: Vec<usize> =
        exact.iter().zip(&by_class).map(|(e, c)| (e.floor() as usize).clamp(1, c.len())).collect();
    let mut order: Vec<usize> = (0..n_classes).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let mut left = limit.saturating_sub(take.iter().sum());
    for &c in order.iter().cycle().take(n_classes * 4) {
        if left == 0 {
            break;
        }
        if take[c] < by_class[c].len() {
            take[c] += 1;
            left -= 1;
        }
    }
    let mut keep = Vec::new();
    for (members, k) in by_class.iter_mut().zip(take) {
        members.shuffle(&mut rng);
        keep.extend_from_slice(&members[..k]);
    }
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

/// Decodes one wav file; the error is the reason, without the path.
pub fn read_wav(path: &Path, opts: &ReadOptions) -> Result<Wav, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    decode_wav(&bytes, opts)
}

/// Decodes wav bytes (see [`read_wav`]).
pub fn decode_wav(bytes: &[u8], opts: &ReadOptions) -> Result<Wav, String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes), not a wav file".into());
    }
    if bytes.len() >= 4 && &bytes[..4] != b"RIFF" {
        return Err("not a valid wav file: it does not start with a RIFF header".into());
    }
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|e| match e {
        hound::Error::Unsupported => {
            "unsupported wav encoding (Tempered reads 8/16/24/32-bit integer and 32-bit float PCM)".into()
        }
        // hound reports a header cut short as an I/O error "Failed to read enough bytes".
        hound::Error::IoError(_) => format!("truncated or not a wav file: the header ends early ({e})"),
        other => format!("not a valid wav file: {other}"),
    })?;
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let declared = reader.len() as usize;
    let truncated = |got: usize, e: hound::Error| {
        format!("truncated or corrupt: read {got} of the {declared} samples the header declares ({e})")
    };
    let mut interleaved: Vec<f32> = Vec::with_capacity(declared);
    let mut clipped = false;
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for s in reader.samples::<f32>() {
                let v = s.map_err(|e| truncated(interleaved.len(), e))?;
                if !v.is_finite() {
                    return Err(format!("sample {} is {v}: corrupt float data", interleaved.len()));
                }
                clipped |= !(-1.0..=1.0).contains(&v);
                interleaved.push(v.clamp(-1.0, 1.0));
            }
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for s in reader.samples::<i32>() {
                let v = s.map_err(|e| truncated(interleaved.len(), e))?;
                interleaved.push((v as f64 * scale) as f32);
            }
        }
        (format, bits) => {
            return Err(format!(
                "unsupported encoding: {bits}-bit {format:?} (Tempered reads 8/16/24/32-bit integer and 32-bit float PCM)"
            ));
        }
    }
    if interleaved.len() < declared {
        return Err(format!(
            "truncated: read {} of the {declared} samples the header declares",
            interleaved.len()
        ));
    }
    if interleaved.is_empty() {
        return Err("holds no samples".into());
    }
    if !interleaved.len().is_multiple_of(channels) {
        return Err(format!(
            "truncated: {} samples do not fill {channels}-channel frames",
            interleaved.len()
        ));
    }
    let mono: Vec<f32> = if channels == 1 {
        interleaved
    } else {
        interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect()
    };
    let resampled = spec.sample_rate != opts.sample_rate;
    let samples = if resampled {
        if !opts.resample {
            return Err(format!(
                "sample rate {} Hz, but the pipeline wants {} Hz ([data] resample = true converts it)",
                spec.sample_rate, opts.sample_rate
            ));
        }
        if spec.sample_rate == 0 {
            return Err("the header gives a sample rate of 0 Hz".into());
        }
        resample(&mono, spec.sample_rate, opts.sample_rate)
    } else {
        mono
    };
    Ok(Wav { samples, source_rate: spec.sample_rate, channels: spec.channels, clipped, resampled })
}

/// Windowed-sinc resampling (Hann window, 16 zero crossings each side), low-passed at the
/// lower of the two Nyquist frequencies; output clipped to [-1, 1].
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let ratio = to as f64 / from as f64;
    let n_out = ((x.len() as f64 * ratio).round() as usize).max(1);
    // Cutoff in cycles per input sample.
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
        // Normalising by the taps' sum keeps DC gain 1 (also at the edges).
        let v = if norm.abs() > 1e-9 { acc / norm } else { 0.0 };
        out.push((v as f32).clamp(-1.0, 1.0));
    }
    out
}

/// Pads with zeros or trims `x` into `out` (whose length is the target).
pub fn fit_length(x: &[f32], out: &mut [f32], align: Align) {
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
