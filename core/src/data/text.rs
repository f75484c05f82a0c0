//! Text data: a CSV or TSV file with a label column and a text column → a train /
//! validation / test split of sentences.
//!
//! # The `[data]` section of a text pipeline
//!
//! ```toml
//! [data]
//! path = "data/mr/mr.csv"        # .csv (comma), .tsv (tab) or .parquet; relative to the repository
//! label = "label"                # the label column (default "label")
//! text = "text"                  # the text column (default "text")
//! classes = ["0", "1"]           # label values, in class order (default: the values found, sorted)
//! split = { test_last_per_class = 533, validation = 0.1 }
//! # limit = { train = 600, validation = 150, test = 200 }   # seeded subsample of each split
//! ```
//!
//! # Reading
//!
//! A `.parquet` file is read as such; anything else is CSV, read like every CSV file the
//! engine reads (see [`crate::data::table`]): RFC 4180, a header row, one record per line (LF
//! or CRLF), a field may be double-quoted and then holds separators, quotes (written `""`) and
//! line breaks; a `"` inside an unquoted field is refused. It must be UTF-8 and a regular
//! file; every row has as many fields as the header, and no two columns share a name. A blank
//! line holds no row. A row whose text is empty (or only whitespace), or whose label is empty
//! or not one of `classes`, is an error naming the file, the data row (row 1 is the first row
//! after the header) and its line. The text is kept as it is; models and attacks split it into
//! words at whitespace.
//!
//! # Split
//!
//! - `test_last_per_class = N`: the last `N` rows of each class, in file order, are the
//!   test set: a fixed split that does not depend on the seed (MR's README suggests the
//!   last 533 sentences of each class). Without it, `test` (default 0.1) is the seeded
//!   share of each class.
//! - `validation` (default 0.1): the seeded share of each class's remaining rows.
//!   `validation_last_per_class = N` instead makes the last `N` of them, in file order, the
//!   validation set: when the test rows are a fixed tail of the file, a validation set drawn
//!   the same way is the one that predicts test (a random share predicts the training rows).
//! - The rest is train. Shuffles use ChaCha8 seeded by the pipeline seed; each split lists
//!   its rows in file order, and class shares are kept within one row.
//! - `limit`: keeps a seeded subsample of each split (stratified by class), for small test
//!   pipelines; the test rows still come from the fixed test split.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::stratify;
use super::table::{Format, Table, format_of};
use crate::error::Invalid;
use crate::{Error, Result};

/// `[data]` of a text pipeline. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextDataConfig {
    /// A `.csv`, `.tsv` or `.parquet` file, relative to the pipeline's base dir.
    pub path: PathBuf,
    /// The label column.
    #[serde(default = "defaults::label")]
    pub label: String,
    /// The text column.
    #[serde(default = "defaults::text")]
    pub text: String,
    /// The label values in class order (class `i` is `classes[i]`). Default: the values
    /// found in the file, sorted (numerically when all are integers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// The field separator: `","` or `"\t"`. Default: by extension (`.tsv`: tab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub split: TextSplit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<SplitLimit>,
}

/// How rows are split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextSplit {
    /// The seeded share of each class's non-test rows held out for validation.
    pub validation: f64,
    /// The seeded share of each class held out for test (unless `test_last_per_class`).
    pub test: f64,
    /// A fixed test split: the last `N` rows of each class, in file order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_last_per_class: Option<usize>,
    /// A fixed validation split: the last `N` non-test rows of each class, in file order
    /// (replaces the seeded `validation` share).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_last_per_class: Option<usize>,
}

impl Default for TextSplit {
    fn default() -> Self {
        Self { validation: 0.1, test: 0.1, test_last_per_class: None, validation_last_per_class: None }
    }
}

/// At most this many rows of each split (a seeded, stratified subsample).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<usize>,
}

mod defaults {
    pub fn label() -> String {
        "label".into()
    }
    pub fn text() -> String {
        "text".into()
    }
}

impl TextDataConfig {
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        let s = &self.split;
        for (name, v) in [("split.validation", s.validation), ("split.test", s.test)] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("{name} must be in [0, 1), got {v}").into());
            }
        }
        if s.test_last_per_class.is_none() && s.validation + s.test >= 1.0 {
            return Err("split.validation + split.test must leave rows for train".into());
        }
        if s.test_last_per_class == Some(0) {
            return Err("split.test_last_per_class must be at least 1".into());
        }
        if s.validation_last_per_class == Some(0) {
            return Err("split.validation_last_per_class must be at least 1".into());
        }
        if self.label == self.text {
            return Err(format!("label and text name the same column `{}`", self.label).into());
        }
        if let Some(d) = &self.delimiter
            && d != ","
            && d != "\t"
        {
            return Err(format!("delimiter must be \",\" or \"\\t\", got {d:?}").into());
        }
        if let Some(c) = &self.classes {
            if c.len() < 2 {
                return Err("classes needs at least two label values".into());
            }
            let distinct: BTreeSet<&String> = c.iter().collect();
            if distinct.len() != c.len() {
                return Err("classes lists a label value twice".into());
            }
        }
        if let Some(l) = &self.limit
            && [l.train, l.validation, l.test].contains(&Some(0))
        {
            return Err("a limit must be at least 1".into());
        }
        Ok(())
    }

    fn delimiter_byte(&self) -> u8 {
        match self.delimiter.as_deref() {
            Some("\t") => b'\t',
            Some(_) => b',',
            None if self.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv")) => b'\t',
            None => b',',
        }
    }
}

/// One split's sentences and classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub texts: Vec<String>,
    pub y: Vec<u32>,
    /// 1-based data row of each example in the file, for reports.
    pub rows: Vec<usize>,
}

/// A loaded, split text data set.
#[derive(Debug, Clone)]
pub struct TextData {
    pub path: PathBuf,
    /// Label values in class order.
    pub classes: Vec<String>,
    pub train: Split,
    pub validation: Split,
    pub test: Split,
}

/// Integers sort as numbers, anything else as text.
fn sort_labels(labels: &mut [String]) {
    if labels.iter().all(|l| l.parse::<i64>().is_ok()) {
        labels.sort_by_key(|l| l.parse::<i64>().unwrap_or(0));
    } else {
        labels.sort();
    }
}

/// The file as a table: Parquet by its extension, else CSV with the configured delimiter.
fn read_table(cfg: &TextDataConfig, path: &Path) -> Result<Table> {
    match format_of(path) {
        Some(Format::Parquet) => Table::read(path),
        _ => Table::read_csv(path, cfg.delimiter_byte()),
    }
}

/// Reads and splits the data set. `seed` makes the split reproducible.
pub fn load(cfg: &TextDataConfig, base_dir: &Path, seed: u64) -> Result<TextData> {
    let path = if cfg.path.is_absolute() { cfg.path.clone() } else { base_dir.join(&cfg.path) };
    let bad = |msg: String| Error::data(&path, msg);
    let table = read_table(cfg, &path)?;
    let names = table.column_names();
    // Names are matched trimmed: a header written `label, text` names `text`.
    let col = |name: &str| {
        let mut found = names.iter().enumerate().filter(|(_, n)| n.trim() == name);
        let (first, column) = found.next().ok_or_else(|| {
            bad(format!(
                "no column `{name}`; the header has {}",
                names.iter().map(|n| format!("`{}`", n.trim())).collect::<Vec<_>>().join(", ")
            ))
        })?;
        if let Some((again, _)) = found.next() {
            return Err(bad(format!(
                "header (line 1): columns {} and {} are both named `{name}`",
                first + 1,
                again + 1
            )));
        }
        Ok(column.as_str())
    };
    let (labels, texts) = (table.texts(col(&cfg.label)?)?, table.strings(col(&cfg.text)?)?);

    // (label, text, data row, where it is: `row 3 (line 4)`)
    let mut rows: Vec<(String, String, usize, String)> = Vec::with_capacity(texts.len());
    for (i, (label, text)) in labels.into_iter().zip(texts).enumerate() {
        let at = table.at(i);
        let Some(label) = label else {
            return Err(bad(format!("{at}: the label (`{}`) is empty", cfg.label)));
        };
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Err(bad(format!("{at}: the text (`{}`) is missing", cfg.text)));
        };
        rows.push((label, text, i + 1, at));
    }

    let classes = match &cfg.classes {
        Some(c) => c.clone(),
        None => {
            let mut found: Vec<String> =
                rows.iter().map(|r| r.0.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            sort_labels(&mut found);
            found
        }
    };
    if classes.len() < 2 {
        return Err(bad(format!("a classifier needs two classes; every row has the label `{}`", classes[0])));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes.len()];
    let mut y_all = Vec::with_capacity(rows.len());
    for (i, (label, _, _, at)) in rows.iter().enumerate() {
        let c = classes.iter().position(|c| c == label).ok_or_else(|| {
            bad(format!(
                "{at}: unknown label `{label}` in column `{}` (classes: {})",
                cfg.label,
                classes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
            ))
        })?;
        by_class[c].push(i);
        y_all.push(c as u32);
    }
    if let Some(c) = by_class.iter().position(Vec::is_empty) {
        return Err(bad(format!("no row has the label `{}`", classes[c])));
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7E47_DA7A);
    let mut parts: [Vec<usize>; 3] = Default::default();
    for (c, members) in by_class.iter().enumerate() {
        let n = members.len();
        let (rest, test): (Vec<usize>, Vec<usize>) = match cfg.split.test_last_per_class {
            Some(k) => {
                if k >= n {
                    return Err(bad(format!(
                        "split.test_last_per_class = {k}, but class `{}` has only {n} rows",
                        classes[c]
                    )));
                }
                (members[..n - k].to_vec(), members[n - k..].to_vec())
            }
            None => {
                let mut m = members.clone();
                m.shuffle(&mut rng);
                let k = ((n as f64 * cfg.split.test).round() as usize).min(n.saturating_sub(1));
                let test = m.split_off(n - k);
                (m, test)
            }
        };
        let mut rest = rest;
        let validation = match cfg.split.validation_last_per_class {
            Some(k) => {
                if k >= rest.len() {
                    return Err(bad(format!(
                        "split.validation_last_per_class = {k}, but class `{}` has only {} non-test rows",
                        classes[c],
                        rest.len()
                    )));
                }
                rest.sort_unstable();
                rest.split_off(rest.len() - k)
            }
            None => {
                rest.shuffle(&mut rng);
                let nv = ((rest.len() as f64 * cfg.split.validation).round() as usize)
                    .min(rest.len().saturating_sub(1));
                rest.split_off(rest.len() - nv)
            }
        };
        if rest.is_empty() {
            return Err(bad(format!("class `{}` has no rows left for train", classes[c])));
        }
        parts[0].extend(rest);
        parts[1].extend(validation);
        parts[2].extend(test);
    }
    let limits = cfg.limit.unwrap_or_default();
    for (part, limit) in parts.iter_mut().zip([limits.train, limits.validation, limits.test]) {
        if let Some(l) = limit {
            subsample(part, &y_all, classes.len(), l, &mut rng);
        }
        part.sort_unstable();
    }
    let make = |idx: &[usize]| Split {
        texts: idx.iter().map(|&i| rows[i].1.clone()).collect(),
        y: idx.iter().map(|&i| y_all[i]).collect(),
        rows: idx.iter().map(|&i| rows[i].2).collect(),
    };
    let [train, validation, test] = &parts;
    if validation.is_empty() || test.is_empty() {
        return Err(bad("the split leaves the validation or test set empty: give the data more rows".into()));
    }
    Ok(TextData { path, classes, train: make(train), validation: make(validation), test: make(test) })
}

/// Keeps `limit` of `idx` (a [`stratify::subsample`]), in class order.
fn subsample(idx: &mut Vec<usize>, y: &[u32], n_classes: usize, limit: usize, rng: &mut ChaCha8Rng) {
    if idx.len() <= limit {
        return;
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for &i in idx.iter() {
        by_class[y[i] as usize].push(i);
    }
    stratify::subsample(&mut by_class, Some(limit), rng);
    *idx = by_class.concat();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tempered-text-data-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn cfg(path: &Path) -> TextDataConfig {
        TextDataConfig {
            path: path.to_owned(),
            label: "label".into(),
            text: "text".into(),
            classes: None,
            delimiter: None,
            split: TextSplit::default(),
            limit: None,
        }
    }

    fn csv(rows: usize) -> String {
        let mut s = String::from("label,text\n");
        for r in 0..rows {
            s += &format!("{},\"sentence number {r} , with a comma\"\n", r % 2);
        }
        s
    }

    fn err(name: &str, body: &[u8], edit: impl Fn(&mut TextDataConfig)) -> String {
        let d = dir(name);
        let p = d.join("bad.csv");
        std::fs::write(&p, body).unwrap();
        let mut c = cfg(&p);
        edit(&mut c);
        let e = load(&c, Path::new("/"), 1).unwrap_err().to_string();
        assert!(e.contains("bad.csv"), "the error names the file: {e}");
        e
    }

    /// Every row's text, in file order.
    fn all_texts(d: &TextData) -> Vec<String> {
        let mut rows: Vec<(usize, &String)> = [&d.train, &d.validation, &d.test]
            .into_iter()
            .flat_map(|s| s.rows.iter().copied().zip(&s.texts))
            .collect();
        rows.sort();
        rows.into_iter().map(|(_, t)| t.clone()).collect()
    }

    #[test]
    fn quoted_fields_crlf_tsv_and_parquet_are_read() {
        // Three rows a class: one each for train, validation and test.
        let small = |p: &Path| TextDataConfig {
            split: TextSplit {
                validation: 0.34,
                test: 0.34,
                test_last_per_class: None,
                ..Default::default()
            },
            ..cfg(p)
        };
        let d = dir("quoted");
        let p = d.join("d.csv");
        std::fs::write(&p, b"label,text\r\n1,\"x, \"\"y\"\"\nz\"\r\n\n0,w\n1,v\n0,u\n1,t\n0,s\n").unwrap();
        let a = load(&small(&p), Path::new("/"), 1).unwrap();
        assert_eq!(all_texts(&a), ["x, \"y\"\nz", "w", "v", "u", "t", "s"], "quotes, a line break, CRLF");
        assert_eq!(
            a.test.rows.len() + a.validation.rows.len() + a.train.rows.len(),
            6,
            "a blank line is no row"
        );
        let p = d.join("d.tsv");
        std::fs::write(&p, "label\ttext\n1\ta , b\n0\t c \n1\td\n0\te\n1\tf\n0\tg\n").unwrap();
        let a = load(&small(&p), Path::new("/"), 1).unwrap();
        assert_eq!(
            all_texts(&a),
            ["a , b", " c ", "d", "e", "f", "g"],
            "a tab file by its extension; text as written"
        );
        let e = err("tsv-quote", b"label\ttext\n1\tsay \"hi\"\n0\tb\n", |c| c.delimiter = Some("\t".into()));
        assert!(e.contains("row 1 (line 2), column \"text\": a quote inside an unquoted field"), "{e}");

        let p = d.join("d.parquet");
        let mut df =
            polars::df!("label" => [1i64, 0, 1, 0, 1, 0], "text" => ["a b", "c", "d", "e f", "g", "h"])
                .unwrap();
        polars::prelude::ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
        let a = load(&small(&p), Path::new("/"), 1).unwrap();
        assert_eq!(a.classes, ["0", "1"]);
        assert_eq!(all_texts(&a), ["a b", "c", "d", "e f", "g", "h"]);
    }

    #[test]
    fn lines_are_counted_through_quoted_line_breaks() {
        let e = err("lines", b"label,text\n0,\"two\nlines\"\n1,fine\n2,bad\n", |c| {
            c.classes = Some(vec!["0".into(), "1".into()])
        });
        assert!(e.contains("row 3 (line 5): unknown label `2`"), "{e}");
    }

    /// 20 negatives then 20 positives, like MR's file order.
    fn two_blocks(name: &str) -> TextDataConfig {
        let p = dir(name).join("d.csv");
        let mut s = String::from("text,label\n");
        for r in 0..40 {
            s += &format!("row {r},{}\n", r / 20);
        }
        std::fs::write(&p, s).unwrap();
        cfg(&p)
    }

    #[test]
    fn fixed_test_split_is_the_last_rows_of_each_class() {
        let mut c = two_blocks("fixed");
        c.split =
            TextSplit { validation: 0.25, test: 0.0, test_last_per_class: Some(5), ..Default::default() };
        let a = load(&c, Path::new("/"), 1).unwrap();
        assert_eq!(a.classes, ["0", "1"]);
        assert_eq!(a.test.rows, [16, 17, 18, 19, 20, 36, 37, 38, 39, 40]);
        assert_eq!(a.test.y, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!((a.train.texts.len(), a.validation.texts.len()), (22, 8));
        let b = load(&c, Path::new("/"), 2).unwrap();
        assert_eq!(a.test, b.test, "the fixed test split does not depend on the seed");
        assert_ne!(a.validation, b.validation, "the validation split does");
        assert_eq!(load(&c, Path::new("/"), 1).unwrap().validation, a.validation, "seeded");
        c.limit = Some(SplitLimit { train: Some(6), validation: None, test: Some(4) });
        let l = load(&c, Path::new("/"), 1).unwrap();
        assert_eq!((l.train.y.iter().filter(|&&y| y == 1).count(), l.train.y.len()), (3, 6));
        assert_eq!(l.test.y, [0, 0, 1, 1]);
    }

    #[test]
    fn fixed_validation_split_is_the_rows_before_the_test_rows() {
        let mut c = two_blocks("fixed-val");
        c.split = TextSplit {
            test_last_per_class: Some(5),
            validation_last_per_class: Some(3),
            ..Default::default()
        };
        let a = load(&c, Path::new("/"), 1).unwrap();
        assert_eq!(a.validation.rows, [13, 14, 15, 33, 34, 35]);
        assert_eq!(a.test.rows, [16, 17, 18, 19, 20, 36, 37, 38, 39, 40]);
        assert_eq!(a.train.texts.len(), 24);
        assert_eq!(load(&c, Path::new("/"), 2).unwrap().validation, a.validation, "fixed: not seeded");
        // With a seeded test share, the validation rows are the last non-test rows in file order.
        c.split = TextSplit { test: 0.25, validation_last_per_class: Some(2), ..Default::default() };
        let b = load(&c, Path::new("/"), 1).unwrap();
        for class in 0..2 {
            let of = |s: &Split| -> Vec<usize> {
                s.rows.iter().zip(&s.y).filter(|r| *r.1 == class).map(|r| *r.0).collect()
            };
            let (train, validation) = (of(&b.train), of(&b.validation));
            assert!(train.iter().max() < validation.iter().min(), "class {class}: {train:?}, {validation:?}");
        }
        assert_eq!(b.validation.rows.len(), 4);
        c.split.validation_last_per_class = Some(15);
        let e = load(&c, Path::new("/"), 1).unwrap_err().to_string();
        assert!(e.contains("validation_last_per_class = 15, but class `0` has only 15 non-test rows"), "{e}");
        c.split.validation_last_per_class = Some(0);
        assert!(c.validate().is_err());
    }

    #[test]
    fn seeded_shares_and_sorted_numeric_classes() {
        let d = dir("shares");
        let p = d.join("d.csv");
        std::fs::write(&p, csv(100).replace("\n1,", "\n10,").replace("\n0,", "\n9,")).unwrap();
        let a = load(&cfg(&p), Path::new("/"), 3).unwrap();
        assert_eq!(a.classes, ["9", "10"], "integers sort as numbers");
        assert_eq!((a.train.y.len(), a.validation.y.len(), a.test.y.len()), (80, 10, 10));
        assert!(a.train.texts[0].contains(", with a comma"));
    }

    #[test]
    fn bad_rows_are_errors_naming_the_row() {
        let e = err("unknown", b"label,text\n0,fine\n1,ok\n2,what\n", |c| {
            c.classes = Some(vec!["0".into(), "1".into()])
        });
        assert!(e.contains("row 3 (line 4)") || e.contains("row 3"), "{e}");
        assert!(e.contains("unknown label `2`"), "{e}");
        let cases: [(&str, &[u8], &str); 13] = [
            ("missing", b"label,text\n0,fine\n1,\n", "row 2 (line 3): the text (`text`) is missing"),
            ("blank", b"label,text\n0,fine\n1,\"  \"\n", "row 2 (line 3)"),
            ("utf8", b"label,text\n0,fine\n1,caf\xe9\n", "row 2 (line 3), column \"text\": not valid UTF-8"),
            ("short", b"label,text\n0,fine\n1\n", "row 2 (line 3): 1 fields, but the header has 2"),
            ("fields", b"label,text\n0,fine\n1,a,b\n", "row 2 (line 3): 3 fields, but the header has 2"),
            ("nolabel", b"label,text\n0,fine\n,text\n", "row 2 (line 3): the label (`label`) is empty"),
            ("twice", b"label,text,text\n0,a,b\n", "(line 1): columns 2 and 3 are both named \"text\""),
            ("trimmed", b"label,text, text\n0,fine,other\n", "columns 2 and 3 are both named `text`"),
            ("column", b"y,sentence\n0,fine\n", "no column `label`; the header has `y`, `sentence`"),
            ("quote", b"label,text\n0,\"open\n", "row 1 (line 2), column \"text\": a quoted field is never"),
            ("one-class", b"label,text\n0,a\n0,b\n", "two classes"),
            ("empty", b"", "empty"),
            ("header-only", b"label,text\n", "no data rows (only a header with columns label, text)"),
        ];
        for (name, body, want) in cases {
            let e = err(name, body, |_| {});
            assert!(e.contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn validation_catches_impossible_splits() {
        let mut c = cfg(Path::new("x.csv"));
        assert!(c.validate().is_ok());
        c.split.validation = 1.5;
        assert!(c.validate().unwrap_err().contains("split.validation"));
        c.split = TextSplit { validation: 0.5, test: 0.5, test_last_per_class: None, ..Default::default() };
        assert!(c.validate().is_err());
        c.split = TextSplit::default();
        c.classes = Some(vec!["a".into(), "a".into()]);
        assert!(c.validate().unwrap_err().contains("twice"));
    }
}
