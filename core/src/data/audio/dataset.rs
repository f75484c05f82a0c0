//! Assembling the data set: the files and their labels (from the pattern or a manifest),
//! the classes, `limit`, the split, and every kept file read into its split's rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::config::{AudioDataConfig, OnBadFile};
use super::pattern::Pattern;
use super::wav::{ReadOptions, read_wav_fitted};
use crate::data::stratify;
use crate::{Error, Result};

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
    if classes.len() < 2 {
        // Said here, where the folder is known, rather than as a training split of one class.
        return Err(Error::data(
            &dir,
            format!(
                "all {} files are of one class ({}); a classifier needs at least two",
                entries.len(),
                classes.join(", ")
            ),
        ));
    }
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
        // Whatever is named like a wav is one: a folder or a FIFO so named is then a bad
        // file (refused, or skipped with `on_bad_file = "skip"`), never silently one clip less.
        if Path::new(name).extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")) {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The manifest, read like any table (CSV, or Parquet): columns `file` and `label` (any
/// case), and an optional `split`; errors name the cell's row and line.
fn read_manifest(path: &Path) -> Result<Vec<Entry>> {
    let table = crate::data::table::Table::read(path)?;
    let names = table.column_names();
    let col = |name: &str| names.iter().find(|h| h.trim().eq_ignore_ascii_case(name)).map(String::as_str);
    let (Some(fc), Some(lc)) = (col("file"), col("label")) else {
        return Err(Error::data(
            path,
            format!("the header needs columns `file` and `label`; it has {}", names.join(", ")),
        ));
    };
    let (files, labels) = (table.texts(fc)?, table.texts(lc)?);
    let splits = col("split").map(|c| table.texts(c).map(|s| (c, s))).transpose()?;
    let mut out = Vec::with_capacity(files.len());
    for (i, (file, label)) in files.into_iter().zip(labels).enumerate() {
        let (file, label) = match (file, label) {
            (Some(f), Some(l)) => (f, l),
            (f, _) => {
                let column = if f.is_none() { fc } else { lc };
                return Err(table.cell_error(column, i, "empty cell: every clip needs a file and a label"));
            }
        };
        let split = match &splits {
            None => None,
            Some((c, s)) => match s[i].as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => None,
                Some("train") => Some(Fixed::Train),
                Some("validation") => Some(Fixed::Validation),
                Some("test") => Some(Fixed::Test),
                Some(other) => {
                    return Err(table.cell_error(
                        c,
                        i,
                        format!("split `{other}` is not train, validation or test"),
                    ));
                }
            },
        };
        out.push(Entry { file, label, index: None, split });
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::super::tests::{config, spec, write};
    use super::*;

    fn folder(files: &[(&str, u32)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for &(name, rate) in files {
            write(&dir.path().join(name), spec(1, rate, 16, false), |w| {
                (0..400).for_each(|i| w.write_sample(((i * 37) % 2000) as i16).unwrap())
            });
        }
        dir
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
        // The manifest is read like any table: errors name the cell, its row and line.
        let bad = |body: &str| {
            std::fs::write(dir.path().join("m.csv"), body).unwrap();
            load(&cfg, dir.path(), 1).unwrap_err().to_string()
        };
        let e = bad("File,Label,Split\na.wav,yes,train\nb.wav,no,later\n");
        assert!(e.contains("m.csv") && e.contains("column \"Split\", row 2 (line 3): split `later`"), "{e}");
        let e = bad("file,label\na.wav,yes\nb.wav,\n");
        assert!(e.contains("column \"label\", row 2 (line 3): empty cell"), "{e}");
        let e = bad("file,class\na.wav,yes\n");
        assert!(e.contains("needs columns `file` and `label`; it has file, class"), "{e}");
        let e = bad("file,label\na.wav,yes,extra\n");
        assert!(e.contains("row 1 (line 2): 3 fields, but the header has 2"), "{e}");
    }

    #[test]
    fn limit_keeps_classes_in_proportion() {
        let ys: Vec<u32> = (0..100).map(|i| if i < 80 { 0 } else { 1 }).collect();
        let keep = stratified_subsample(&ys, 2, 10, 5);
        assert_eq!(keep.len(), 10);
        assert_eq!(keep.iter().filter(|&&i| ys[i] == 1).count(), 2);
    }
}
