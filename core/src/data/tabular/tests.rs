//! The loader's own tests: the real ULB sample, splits, bounds, one-hot groups and every
//! error it names.

use super::*;
use crate::Error;
use crate::error::Invalid;
use polars::prelude::{Column, DataFrame, ParquetWriter, SerReader};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::time::Instant;

fn ulb_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const ULB: &str = "data/creditcard-ulb/creditcard_ulb_sample.csv";

fn cfg(path: impl Into<PathBuf>, label: &str) -> TabularDataConfig {
    TabularDataConfig {
        path: path.into(),
        label: label.into(),
        classes: None,
        features: None,
        defaults: FeatureConfig::default(),
        columns: BTreeMap::new(),
        split: SplitConfig::default(),
        limit: None,
        files: None,
        relations: Vec::new(),
        stream: None,
    }
}

fn parse_toml(src: &str) -> std::result::Result<TabularDataConfig, Invalid> {
    #[derive(Deserialize)]
    struct W {
        data: TabularDataConfig,
    }
    toml::from_str::<W>(src).map(|w| w.data).map_err(|e| Invalid::new(e.to_string()))
}

/// Writes `content` to `name` in a fresh temp dir; returns (dir guard, path).
fn write(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

/// A synthetic table: `n` rows, class 1 every `every`th row, columns a (0..n), b (constant
/// 5), c (binary), label y.
fn synthetic(n: usize, every: usize) -> String {
    let mut s = String::from("a,b,c,y\n");
    for i in 0..n {
        let y = usize::from(i % every == 0);
        let _ = writeln!(s, "{},5,{},{}", i as f32 * 0.5 - 3.0, i % 2, y);
    }
    s
}

fn load_err(content: &str, c: impl FnOnce(PathBuf) -> TabularDataConfig) -> String {
    let (_dir, path) = write("bad.csv", content);
    let e = load(&c(path.clone()), Path::new("/"), 1).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "error must name the file: {e}");
    e
}

#[test]
fn loads_the_real_ulb_sample_stratified() {
    let start = Instant::now();
    let data = load(&cfg(ULB, "Class"), &ulb_dir(), 7).unwrap();
    eprintln!("ULB load: {:?}", start.elapsed());
    assert_eq!(data.features.len(), 30);
    assert_eq!(data.width(), 30);
    assert_eq!(data.features[0].name, "Time");
    assert_eq!(data.features[29].name, "Amount");
    assert_eq!(data.n_classes, 2);
    assert!(data.path.ends_with(ULB));
    let (tr, va, te) = (&data.train, &data.validation, &data.test);
    assert_eq!(tr.len() + va.len() + te.len(), 6645);
    let totals = [6645 - 473, 473];
    for (split, frac) in [(tr, 0.60), (va, 0.15), (te, 0.25)] {
        let counts = split.class_counts(2);
        for c in 0..2 {
            let expected = totals[c] as f64 * frac;
            assert!(
                (counts[c] as f64 - expected).abs() <= 1.0,
                "class {c}: {} rows, expected {expected}",
                counts[c]
            );
        }
        assert_eq!(split.values().unwrap().len(), split.len() * 30);
        assert!(split.rows.windows(2).all(|w| w[0] < w[1]), "rows in file order");
    }
    // Every file row lands in exactly one split.
    let mut all: Vec<usize> = tr.rows.iter().chain(&va.rows).chain(&te.rows).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=6645).collect::<Vec<_>>());
    // Row 1 of the file: Time 4.0, V1 1.22965763450793, whichever split has it.
    let (split, i) =
        [tr, va, te].into_iter().find_map(|s| s.rows.iter().position(|&r| r == 1).map(|i| (s, i))).unwrap();
    assert_eq!(split.row(i).unwrap()[0], 4.0);
    assert!((split.row(i).unwrap()[1] - 1.229_657_6).abs() < 1e-6);
    let time = &data.features[0];
    assert_eq!((time.lower, time.upper), (4.0, 172_756.0));
    assert!(data.features.iter().all(|f| f.kind == FeatureKind::Continuous && f.mutable && f.cost == 1.0));
}

#[test]
fn same_seed_same_split_other_seed_other_split() {
    let (_dir, path) = write("t.csv", &synthetic(300, 5));
    let c = cfg(&path, "y");
    let a = load(&c, Path::new("/"), 11).unwrap();
    let b = load(&c, Path::new("/"), 11).unwrap();
    let other = load(&c, Path::new("/"), 12).unwrap();
    assert_eq!(a.train, b.train);
    assert_eq!(a.validation, b.validation);
    assert_eq!(a.test, b.test);
    assert_ne!(a.test.rows, other.test.rows);
    assert_eq!(a.test.len(), other.test.len());
}

#[test]
fn standardisation_is_fitted_on_train_only() {
    let (_dir, path) = write("t.csv", &synthetic(200, 4));
    let data = load(&cfg(&path, "y"), Path::new("/"), 3).unwrap();
    let tr = &data.train;
    let col: Vec<f64> = (0..tr.len()).map(|i| f64::from(tr.row(i).unwrap()[0])).collect();
    let mean = col.iter().sum::<f64>() / col.len() as f64;
    let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
    let a = &data.features[0];
    assert!((f64::from(a.mean) - mean).abs() < 1e-4, "{} vs train mean {mean}", a.mean);
    assert!((f64::from(a.scale) - std).abs() < 1e-4);
    // The whole-file mean of a is (0..200)*0.5-3 → 46.75; train's differs.
    assert!((a.mean - 46.75).abs() > 1e-3);
    // Constant column: std 1.
    assert_eq!((data.features[1].mean, data.features[1].scale), (5.0, 1.0));
}

#[test]
fn bounds_are_observed_over_the_whole_file() {
    let (_dir, path) = write("t.csv", &synthetic(200, 4));
    for seed in 0..3 {
        let data = load(&cfg(&path, "y"), Path::new("/"), seed).unwrap();
        let a = &data.features[0];
        assert_eq!((a.lower, a.upper), (-3.0, 96.5), "whole file, whatever the split");
        assert_eq!((data.features[1].lower, data.features[1].upper), (5.0, 5.0));
    }
    // Declared binary → [0, 1].
    let mut c = cfg(&path, "y");
    c.columns.insert("c".into(), FeatureConfig { kind: Some(ColumnKind::Binary), ..Default::default() });
    let data = load(&c, Path::new("/"), 0).unwrap();
    assert_eq!((data.features[2].lower, data.features[2].upper), (0.0, 1.0));
}

#[test]
fn toml_overrides_are_applied() {
    let c = parse_toml(
        r#"
[data]
path = "t.csv"
label = "y"
features = ["c", "a", "b"]
split = { validation = 0.2, test = 0.3 }
defaults = { mutable = true, cost = 2.0, upper = 1000.0 }
[data.columns.a]
kind = "integer"
lower = -10
mutable = false
[data.columns.c]
kind = "binary"
cost = 0.5
"#,
    )
    .unwrap();
    assert_eq!(c.split, SplitConfig { validation: 0.2, test: 0.3, by: None });
    let mut body = String::from("a,b,c,y\n");
    for i in 0..40 {
        let _ = writeln!(body, "{}.0,{},{},{}", i, i as f32 / 4.0, i % 2, i % 3 % 2);
    }
    let (dir, _) = write("t.csv", &body);
    let data = load(&c, dir.path(), 0).unwrap();
    let names: Vec<&str> = data.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["c", "a", "b"]);
    let [fc, fa, fb] = &data.features[..] else { panic!() };
    assert_eq!(
        (fc.kind, fc.mutable, fc.cost, fc.lower, fc.upper),
        (FeatureKind::Binary, true, 0.5, 0.0, 1.0)
    );
    assert_eq!(
        (fa.kind, fa.mutable, fa.cost, fa.lower, fa.upper),
        (FeatureKind::Integer, false, 2.0, -10.0, 1000.0)
    );
    assert_eq!(
        (fb.kind, fb.mutable, fb.cost, fb.lower, fb.upper),
        (FeatureKind::Continuous, true, 2.0, 0.0, 1000.0)
    );
    // Columns in `features` order: c = (row - 1) % 2, a = row - 1.
    let (row, file_row) = (data.train.row(0).unwrap(), data.train.rows[0]);
    assert_eq!((row[0], row[1]), (((file_row - 1) % 2) as f32, (file_row - 1) as f32));

    // Unknown keys are errors.
    let e = parse_toml("[data]\npath = \"t.csv\"\nlabel = \"y\"\nsplit = { valid = 0.2 }\n").unwrap_err();
    assert!(e.contains("valid"), "{e}");
    let e = parse_toml("[data]\npath = \"t.csv\"\nlabel = \"y\"\n[data.columns.a]\ncots = 1\n").unwrap_err();
    assert!(e.contains("cots"), "{e}");
}

#[test]
fn one_hot_groups_get_ids_and_are_checked() {
    let src = r#"
[data]
path = "t.csv"
label = "y"
[data.columns.red]
kind = "categorical"
group = "colour"
[data.columns.blue]
kind = "categorical"
group = "colour"
"#;
    let c = parse_toml(src).unwrap();
    let mut body = String::from("x,red,blue,y\n");
    for i in 0..20 {
        let _ = writeln!(body, "{i},{},{},{}", i % 2, 1 - i % 2, i % 2);
    }
    let (dir, _) = write("t.csv", &body);
    let data = load(&c, dir.path(), 0).unwrap();
    let groups: Vec<Option<u32>> = data.features.iter().map(|f| f.group).collect();
    assert_eq!(groups, [None, Some(0), Some(0)]);
    assert_eq!(data.features[1].kind, FeatureKind::Categorical);

    // Row 4 has both set.
    let body = body.replacen("3,1,0,1", "3,1,1,1", 1);
    let (dir, path) = write("t.csv", &body);
    let e = load(&c, dir.path(), 0).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.contains("\"colour\"") && e.contains("row 4 (line 5)") && e.contains("red = 1, blue = 1"),
        "{e}"
    );
}

#[test]
fn limit_keeps_a_stratified_seeded_subsample() {
    let (_dir, path) = write("t.csv", &synthetic(1000, 10));
    let mut c = cfg(&path, "y");
    c.limit = Some(100);
    let a = load(&c, Path::new("/"), 5).unwrap();
    let b = load(&c, Path::new("/"), 5).unwrap();
    assert_eq!(a.train, b.train);
    let counts: Vec<usize> = (0..2)
        .map(|k| a.train.class_counts(2)[k] + a.validation.class_counts(2)[k] + a.test.class_counts(2)[k])
        .collect();
    assert_eq!(counts, [90, 10]);
    assert_eq!(a.test.class_counts(2), [23, 3]); // round(90 × 0.25), round(10 × 0.25)
    // Bounds stay those of the whole file.
    assert_eq!((a.features[0].lower, a.features[0].upper), (-3.0, 496.5));
    // A subsample, not the first rows.
    assert!(a.train.rows.iter().any(|&r| r > 500));
    // Tiny class: still represented.
    let (_dir2, path2) = write("t.csv", &synthetic(1000, 200));
    let mut c2 = cfg(&path2, "y");
    c2.limit = Some(20);
    let d = load(&c2, Path::new("/"), 5).unwrap();
    let ones: usize = [&d.train, &d.validation, &d.test].iter().map(|s| s.class_counts(2)[1]).sum();
    assert!(ones >= 1);
    assert_eq!(d.train.len() + d.validation.len() + d.test.len(), 20);
}

/// A table in partitions loads as the table in one file: a folder of Parquet parts, a glob
/// over CSV parts, and split-in-advance files whose train source is itself a glob.
#[test]
fn a_folder_or_a_glob_of_partitions_loads_as_one_table() {
    let text = synthetic(150, 4);
    let (dir, whole) = write("whole.csv", &text);
    let lines: Vec<&str> = text.lines().collect();
    let (header, rows) = (lines[0], &lines[1..]);
    let parts = [&rows[..40], &rows[40..95], &rows[95..]];
    std::fs::create_dir_all(dir.path().join("pq")).unwrap();
    for (k, part) in parts.iter().enumerate() {
        let body = format!("{header}\n{}\n", part.join("\n"));
        std::fs::write(dir.path().join(format!("part-{k}.csv")), body).unwrap();
        let mut df = polars::prelude::CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(dir.path().join(format!("part-{k}.csv"))))
            .unwrap()
            .finish()
            .unwrap();
        ParquetWriter::new(File::create(dir.path().join(format!("pq/{k}.parquet"))).unwrap())
            .finish(&mut df)
            .unwrap();
    }
    // A hidden file is never a partition (here a writer's half-written part).
    std::fs::write(dir.path().join("pq/.9.parquet"), "half a file").unwrap();
    let one = load(&cfg(&whole, "y"), Path::new("/"), 3).unwrap();
    for path in ["pq", "part-*.csv"] {
        let parted = load(&cfg(path, "y"), dir.path(), 3).unwrap();
        assert_eq!(parted.features, one.features, "{path}");
        assert_eq!(
            (&parted.train, &parted.validation, &parted.test),
            (&one.train, &one.validation, &one.test),
            "{path}"
        );
    }
    // Split in advance: the train source a glob of two parts, then one file each.
    let mut c = cfg("part-?.csv", "y");
    std::fs::rename(dir.path().join("part-2.csv"), dir.path().join("test.csv")).unwrap();
    c.files = Some(SplitFiles { validation: "test.csv".into(), test: "test.csv".into() });
    let d = load(&c, dir.path(), 3).unwrap();
    assert_eq!((d.train.len(), d.validation.len(), d.test.len()), (95, 55, 55));

    let e = load(&cfg("part-*.parquet", "y"), dir.path(), 3).unwrap_err().to_string();
    assert!(e.contains("no file in") && e.contains("matches \"part-*.parquet\""), "{e}");
    std::fs::copy(dir.path().join("test.csv"), dir.path().join("pq/3.csv")).unwrap();
    let e = load(&cfg("pq", "y"), dir.path(), 3).unwrap_err().to_string();
    assert!(e.contains("are not the same file type"), "{e}");
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let e = load(&cfg("empty", "y"), dir.path(), 3).unwrap_err().to_string();
    assert!(e.contains("holds no .csv or .parquet file"), "{e}");
}

#[test]
fn parquet_round_trip_matches_csv() {
    let (dir, csv) = write("t.csv", &synthetic(120, 3));
    let n = 120;
    let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
    let b: Vec<i64> = vec![5; n];
    let c: Vec<bool> = (0..n).map(|i| i % 2 == 1).collect();
    let y: Vec<i32> = (0..n).map(|i| i32::from(i % 3 == 0)).collect();
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("a".into(), a),
            Column::new("b".into(), b),
            Column::new("c".into(), c),
            Column::new("y".into(), y.clone()),
        ],
    )
    .unwrap();
    let pq = dir.path().join("t.parquet");
    ParquetWriter::new(File::create(&pq).unwrap()).finish(&mut df).unwrap();
    let from_csv = load(&cfg(&csv, "y"), Path::new("/"), 9).unwrap();
    let from_pq = load(&cfg("t.parquet", "y"), dir.path(), 9).unwrap();
    assert_eq!(from_pq.features, from_csv.features);
    assert_eq!(from_pq.train, from_csv.train);
    assert_eq!(from_pq.validation, from_csv.validation);
    assert_eq!(from_pq.test, from_csv.test);
    // Read a slice of rows at a time (row groups of 25), rows on disk: the same.
    let mut streamed = cfg("t.parquet", "y");
    streamed.stream = Some(true);
    ParquetWriter::new(File::create(&pq).unwrap()).with_row_group_size(Some(25)).finish(&mut df).unwrap();
    let from_chunks = load_in_chunks(&streamed, dir.path(), 9, dir.path(), 16).unwrap();
    assert!(matches!(from_chunks.train.x, Rows::Disk(_)));
    assert_eq!(from_chunks.features, from_csv.features);
    assert_eq!(from_chunks.train, from_csv.train);
    assert_eq!(from_chunks.test, from_csv.test);

    // A null in a Parquet column names the column and row.
    let a2: Vec<Option<f64>> = (0..n).map(|i| if i == 16 { None } else { Some(i as f64) }).collect();
    let mut df =
        DataFrame::new(n, vec![Column::new("a".into(), a2), Column::new("y".into(), y.clone())]).unwrap();
    ParquetWriter::new(File::create(&pq).unwrap()).finish(&mut df).unwrap();
    let e = load(&cfg(&pq, "y"), Path::new("/"), 9).unwrap_err().to_string();
    assert!(e.contains("t.parquet") && e.contains("column \"a\", row 17") && e.contains("null"), "{e}");
    // NaN too.
    let a3: Vec<f64> = (0..n).map(|i| if i == 4 { f64::NAN } else { i as f64 }).collect();
    let mut df = DataFrame::new(n, vec![Column::new("a".into(), a3), Column::new("y".into(), y)]).unwrap();
    ParquetWriter::new(File::create(&pq).unwrap()).finish(&mut df).unwrap();
    let e = load(&cfg(&pq, "y"), Path::new("/"), 9).unwrap_err().to_string();
    assert!(e.contains("column \"a\", row 5") && e.contains("NaN"), "{e}");
}

#[test]
fn a_string_in_a_numeric_column_names_column_row_and_line() {
    let mut body = synthetic(30, 3);
    body = body.replacen("\n5,5,0,", "\nabc,5,0,", 1); // data row 17: a = 16*0.5-3 = 5
    let e = load_err(&body, |p| cfg(p, "y"));
    assert!(e.contains("column \"a\", row 17 (line 18): \"abc\" is not a number"), "{e}");
}

#[test]
fn empty_nan_and_inf_cells_are_errors() {
    for (bad, want) in
        [("", "empty cell"), ("NaN", "NaN"), ("inf", "not a finite number"), ("-inf", "finite")]
    {
        let body = synthetic(30, 3).replacen("\n-2,5,", &format!("\n-2,{bad},"), 1); // data row 3: a = -2
        let e = load_err(&body, |p| cfg(p, "y"));
        assert!(e.contains("column \"b\", row 3 (line 4)") && e.contains(want), "{bad:?}: {e}");
    }
}

#[test]
fn empty_files_are_errors() {
    let e = load_err("", |p| cfg(p, "y"));
    assert!(e.contains("empty"), "{e}");
    let e = load_err("a,b,y\n", |p| cfg(p, "y"));
    assert!(e.contains("no data rows") && e.contains("a, b, y"), "{e}");
}

#[test]
fn rows_polars_cannot_split_are_named_without_its_reader_options() {
    let e = load_err("a,y\n1,0\n\n2,1,5\n3,0\n4,1\n", |p| cfg(p, "y"));
    assert!(
        e.ends_with(": row 2 (line 4): 3 fields, but the header has 2"),
        "a blank line holds no row: {e}"
    );
    let e = load_err("a,y\n1,0\n2\n3,0\n4,1\n", |p| cfg(p, "y"));
    assert!(e.ends_with(": row 2 (line 3): 1 fields, but the header has 2"), "a short row: {e}");
    let e = load_err("a,y\n\"1\n\",0\n2,1\n3,0\nx,1\n", |p| cfg(p, "y"));
    assert!(
        e.contains("column \"a\", row 4 (line 6): \"x\" is not a number"),
        "lines after a quoted line break: {e}"
    );
    let e = load_err("a,y\n1,0\n2,1\r\n3,0\n4,1,\n", |p| cfg(p, "y"));
    assert!(e.ends_with(": row 4 (line 5): 3 fields, but the header has 2"), "{e}");
    let e = load_err("a,y\n1,0\na\"b,1\n3,0\n4,1\n", |p| cfg(p, "y"));
    assert!(e.contains(": row 2 (line 3), column \"a\": a quote inside an unquoted field"), "{e}");
    let e = load_err("a,y\n1,0\n\"x\"y,1\n3,0\n4,1\n", |p| cfg(p, "y"));
    assert!(e.contains(": row 2 (line 3), column \"a\": text after the closing quote"), "{e}");
    let e = load_err("a,y\n1,0\n2,\"1\n3,0\n4,1\n", |p| cfg(p, "y"));
    assert!(e.contains(": row 2 (line 3), column \"y\": a quoted field is never closed"), "{e}");
    // Quoted fields and CRLF line ends are fine.
    let mut body = String::from("\"a\",\"y\"\r\n");
    for r in 0..12 {
        body += &format!("\"{r}\",\"{}\"\r\n", r % 2);
    }
    let (_dir, path) = write("t.csv", &body);
    assert_eq!(load(&cfg(&path, "y"), Path::new("/"), 1).unwrap().n_classes, 2);
}

#[test]
fn a_duplicate_header_names_both_columns() {
    let e = load_err("a,b,a,y\n1,2,3,0\n", |p| cfg(p, "y"));
    assert!(e.contains("header (line 1): columns 1 and 3 are both named \"a\""), "{e}");
    // Polars would have renamed the second one.
    let e = load_err("a,a_duplicated_0,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n", |p| cfg(p, "label"));
    assert!(e.contains("a, a_duplicated_0, y"), "distinct names are left alone: {e}");
}

#[test]
fn a_single_class_label_is_an_error() {
    let e = load_err("a,y\n1,0\n2,0\n3,0\n4,0\n", |p| cfg(p, "y"));
    assert!(e.contains("label column \"y\" has one class only"), "{e}");
    let e = load_err("a,y\n1,0\n2,2\n3,0\n4,2\n", |p| cfg(p, "y"));
    assert!(e.contains("class 1 has no rows"), "{e}");
}

#[test]
fn bad_labels_name_the_row() {
    let e = load_err("a,y\n1,0\n2,1\n3,1.5\n4,0\n", |p| cfg(p, "y"));
    assert!(e.contains("column \"y\", row 3 (line 4): 1.5 is not a class label"), "{e}");
    let e = load_err("a,y\n1,0\n2,1\n3,0\n4,-1\n", |p| cfg(p, "y"));
    assert!(e.contains("column \"y\", row 4 (line 5): -1 is not a class label"), "{e}");
    let e = load_err("a,y\n1,0\n2,yes\n3,0\n4,1\n", |p| cfg(p, "y"));
    assert!(e.contains("column \"y\", row 2 (line 3): \"yes\" is not a number"), "{e}");
}

#[test]
fn a_missing_column_lists_the_columns() {
    let e = load_err(&synthetic(10, 2), |p| cfg(p, "label"));
    assert!(e.contains("label column \"label\" not found") && e.contains("a, b, c, y"), "{e}");
    let e = load_err(&synthetic(10, 2), |p| TabularDataConfig {
        features: Some(vec!["a".into(), "zz".into()]),
        ..cfg(p, "y")
    });
    assert!(e.contains("feature column \"zz\" not found") && e.contains("a, b, c, y"), "{e}");
    let e = load_err(&synthetic(10, 2), |p| {
        let mut c = cfg(p, "y");
        c.columns.insert("Amount".into(), FeatureConfig::default());
        c
    });
    assert!(
        e.contains("column \"Amount\" (of [data.columns.Amount]) not found") && e.contains("a, b, c, y"),
        "{e}"
    );
}

#[test]
fn kind_and_bound_violations_name_the_cell() {
    let with = |col: &str, f: FeatureConfig| {
        let col = col.to_string();
        move |p: PathBuf| {
            let mut c = cfg(p, "y");
            c.columns.insert(col, f);
            c
        }
    };
    let body = synthetic(30, 3);
    let int = FeatureConfig { kind: Some(ColumnKind::Integer), ..Default::default() };
    let e = load_err(&body, with("a", int));
    assert!(e.contains("column \"a\", row 2 (line 3): -2.5 is not an integer"), "{e}");
    let bin = FeatureConfig { kind: Some(ColumnKind::Binary), ..Default::default() };
    let e = load_err(&body, with("b", bin));
    assert!(e.contains("column \"b\", row 1 (line 2): 5 is not 0 or 1"), "{e}");
    let low = FeatureConfig { lower: Some(0.0), ..Default::default() };
    let e = load_err(&body, with("a", low));
    assert!(e.contains("column \"a\", row 1 (line 2): -3 is below lower = 0"), "{e}");
}

#[test]
fn an_unreadable_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let e = load(&cfg(&missing, "y"), Path::new("/"), 0).unwrap_err().to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    // A folder is a table in partitions, whatever its name (Spark writes `t.parquet/`).
    let sub = dir.path().join("folder.csv");
    std::fs::create_dir(&sub).unwrap();
    let e = load(&cfg(&sub, "y"), Path::new("/"), 0).unwrap_err().to_string();
    assert!(e.contains(&sub.display().to_string()) && e.contains("holds no .csv or .parquet file"), "{e}");
    // Garbage that is not Parquet.
    let (_d, path) = write("t.parquet", "not parquet at all");
    let e = load(&cfg(&path, "y"), Path::new("/"), 0).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()) && e.contains("Parquet"), "{e}");
}

#[test]
fn validate_names_the_key() {
    let ok = cfg("t.csv", "y");
    assert_eq!(ok.validate(), Ok(()));
    let check = |f: &dyn Fn(&mut TabularDataConfig), want: &str| {
        let mut c = ok.clone();
        f(&mut c);
        let e = c.validate().unwrap_err();
        assert!(e.contains(want), "want {want:?} in {e:?}");
    };
    check(&|c| c.split.test = 1.5, "split.test must be in (0, 1)");
    check(&|c| c.split.validation = 0.0, "split.validation must be in (0, 1)");
    check(
        &|c| c.split = SplitConfig { validation: 0.5, test: 0.5, by: None },
        "split.validation + split.test must be < 1",
    );
    check(&|c| c.limit = Some(3), "limit must be at least 4");
    check(&|c| c.path = "t.xlsx".into(), "expected a .csv or .parquet");
    check(&|c| c.label = String::new(), "label");
    check(&|c| c.features = Some(vec![]), "features");
    check(&|c| c.features = Some(vec!["a".into(), "a".into()]), "listed twice");
    check(&|c| c.features = Some(vec!["y".into()]), "label column");
    check(&|c| c.defaults.cost = Some(-1.0), "defaults.cost must be a finite number >= 0");
    check(
        &|c| {
            c.columns.insert(
                "a".into(),
                FeatureConfig { lower: Some(2.0), upper: Some(1.0), ..Default::default() },
            );
        },
        "columns.a.lower (2) must be <= columns.a.upper (1)",
    );
    check(
        &|c| {
            c.defaults.upper = Some(1.0);
            c.columns.insert("a".into(), FeatureConfig { lower: Some(2.0), ..Default::default() });
        },
        "columns.a.lower (2) must be <= defaults.upper (1)",
    );
    check(
        &|c| {
            let f = FeatureConfig {
                kind: Some(ColumnKind::Categorical),
                group: Some("g".into()),
                ..Default::default()
            };
            c.columns.insert("a".into(), f);
        },
        "at least two columns",
    );
    check(
        &|c| {
            c.columns.insert("a".into(), FeatureConfig { group: Some("g".into()), ..Default::default() });
        },
        "only for categorical columns",
    );
    check(
        &|c| {
            let f = FeatureConfig { kind: Some(ColumnKind::Binary), upper: Some(3.0), ..Default::default() };
            c.columns.insert("a".into(), f);
        },
        "do not apply to a binary column",
    );
    check(&|c| drop(c.columns.insert("y".into(), FeatureConfig::default())), "is the label column");
    check(
        &|c| {
            c.features = Some(vec!["a".into()]);
            c.columns.insert("b".into(), FeatureConfig::default());
        },
        "columns.b: \"b\" is not listed in `features`",
    );
    check(&|c| c.defaults.group = Some("g".into()), "defaults.group is not allowed");
    // load reports validation failures as config errors.
    let mut bad = ok.clone();
    bad.split.test = 2.0;
    let e = load(&bad, Path::new("/"), 0).unwrap_err();
    assert!(matches!(e, Error::Config(ref m) if m.contains("split.test")), "{e}");
}

#[test]
fn tiny_tables_still_get_three_nonempty_splits() {
    let (_dir, path) = write("t.csv", "a,y\n1,0\n2,1\n3,0\n4,1\n");
    let data = load(&cfg(&path, "y"), Path::new("/"), 0).unwrap();
    assert!(!data.validation.is_empty() && !data.test.is_empty());
    assert_eq!(data.train.class_counts(2), [1, 1]);
}

#[test]
fn parquet_text_columns_are_categories_binaries_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    let shop: Vec<&str> = (0..n).map(|i| ["a", "b", "b", "c"][i % 4]).collect();
    let yes: Vec<Option<&str>> =
        (0..n).map(|i| if i == 7 { None } else { Some(["No", "Yes"][i % 2]) }).collect();
    let when: Vec<String> = (0..n).map(|i| format!("2024-01-{:02}T{:02}:00:00", 1 + i % 9, i % 24)).collect();
    let y: Vec<&str> = (0..n).map(|i| if i % 4 == 0 { "fraud" } else { "ok" }).collect();
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("shop".into(), shop),
            Column::new("yes".into(), yes),
            Column::new("when".into(), when),
            Column::new("y".into(), y),
        ],
    )
    .unwrap();
    let pq = dir.path().join("t.parquet");
    ParquetWriter::new(File::create(&pq).unwrap()).finish(&mut df).unwrap();
    let c = parse_toml(
        r#"
[data]
path = "t.parquet"
label = "y"
classes = ["ok", "fraud"]
defaults = { missing = "impute" }
[data.columns.shop]
kind = "categorical"
[data.columns.yes]
kind = "binary"
[data.columns.when]
kind = "datetime"
"#,
    )
    .unwrap();
    // `missing = "impute"` from `defaults` does not apply to the datetime column.
    let data = load(&c, dir.path(), 1).unwrap();
    let names: Vec<&str> = data.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "shop=b",
            "shop=a",
            "shop=c",
            "shop:missing",
            "shop:unseen",
            "yes",
            "yes:missing",
            "when:hour",
            "when:weekday",
            "when:day"
        ]
    );
    assert_eq!(data.n_classes, 2);
    assert_eq!(data.encoding.classes, ["ok", "fraud"]);
    // The null in `yes` (row 8) is imputed with the train mode and flagged.
    let (s, i) = [&data.train, &data.validation, &data.test]
        .into_iter()
        .find_map(|s| s.rows.iter().position(|&r| r == 8).map(|i| (s, i)))
        .unwrap();
    assert_eq!(s.row(i).unwrap()[6], 1.0);
    // Given for the datetime column itself, it is an error.
    let mut bad = c.clone();
    bad.columns.get_mut("when").unwrap().missing = Some(MissingPolicy::Impute);
    let e = load(&bad, dir.path(), 1).unwrap_err().to_string();
    assert!(
        e.contains("columns.when.missing = \"impute\" does not apply to datetime column \"when\""),
        "{e}"
    );
}

#[test]
fn integer_labels_that_are_text_point_at_classes() {
    let e = load_err("a,y\n1,no\n2,yes\n3,no\n4,yes\n", |p| cfg(p, "y"));
    assert!(e.contains("\"no\" is not a number (labels that are text need `classes = [...]`"), "{e}");
}
