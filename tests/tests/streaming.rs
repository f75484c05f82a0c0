//! A table read a chunk of rows at a time, its encoded rows kept on disk (`[data] stream =
//! true`), gives exactly the numbers of the same table read whole: the loader's features,
//! encoding and splits for any chunk size and every split kind (Parquet: the loader's own
//! tests); and a whole run's `metrics.json` through the real plugin.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempered_core::data::tabular::{self, Rows, TabularData, TabularDataConfig};
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{read_json, repo, repo_pipeline, scratch, without_timings};

/// 300 raw rows: numbers with empty cells, a string category with an empty bucket, Yes/No,
/// an ISO date-time, string labels (one fraud in six).
fn table() -> String {
    let mut s = String::from("amount,merchant,card_present,when,device,label\n");
    for i in 0..300usize {
        let fraud = i % 6 == 0;
        let amount = if i % 29 == 3 { String::new() } else { format!("{:.2}", 5.0 + (i * 13 % 97) as f64) };
        let merchant = ["grocery", "fuel", "travel", "grocery", "jewelry"][i % 5];
        let card = if fraud || i % 4 == 0 { "No" } else { "Yes" };
        let when = format!("2024-{:02}-{:02}T{:02}:30:00", 1 + i / 28 % 12, 1 + i % 28, i * 7 % 24);
        let device = ["ios", "", "android"][i % 3];
        let label = if fraud { "fraud" } else { "genuine" };
        let _ = writeln!(s, "{amount},{merchant},{card},{when},{device},{label}");
    }
    s
}

fn data(path: &Path, extra: Value) -> TabularDataConfig {
    let mut v = json!({
        "path": path,
        "label": "label",
        "classes": ["genuine", "fraud"],
        "split": { "validation": 0.2, "test": 0.3 },
        "columns": {
            "amount": { "missing": "impute", "lower": 0.0, "direction": "up" },
            "merchant": { "kind": "categorical", "max_categories": 3 },
            "card_present": { "kind": "binary" },
            "when": { "kind": "datetime" },
            "device": { "kind": "categorical", "missing": "impute" },
        }
    });
    for (k, x) in extra.as_object().unwrap() {
        match x {
            Value::Null => _ = v.as_object_mut().unwrap().remove(k),
            x => v[k] = x.clone(),
        }
    }
    serde_json::from_value(v).expect("a valid [data] section")
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// Loads `cfg` whole and then a chunk of `chunk` rows at a time, rows on disk.
fn both(cfg: &TabularDataConfig, chunk: usize) -> (TabularData, TabularData) {
    let dir = scratch("streaming-rows");
    let mut whole = cfg.clone();
    whole.stream = Some(false);
    let mut streamed = cfg.clone();
    streamed.stream = Some(true);
    let a = tabular::load_in_chunks(&whole, Path::new("/"), 5, &dir, chunk).expect("loads whole");
    let b = tabular::load_in_chunks(&streamed, Path::new("/"), 5, &dir, chunk).expect("loads streamed");
    (a, b)
}

fn assert_same(a: &TabularData, b: &TabularData, what: &str) {
    assert!(matches!(a.train.x, Rows::Memory(_)), "{what}: read whole, rows in memory");
    assert!(matches!(b.train.x, Rows::Disk(_)), "{what}: streamed, rows on disk");
    assert_eq!(a.features, b.features, "{what}: features, bounds and standardisation");
    assert_eq!(a.encoding, b.encoding, "{what}: encoding");
    assert_eq!(a.constraints.directions, b.constraints.directions, "{what}: directions");
    for (name, x, y) in [
        ("train", &a.train, &b.train),
        ("validation", &a.validation, &b.validation),
        ("test", &a.test, &b.test),
    ] {
        assert!(!x.is_empty(), "{what}: {name} has rows");
        assert!(x == y, "{what}: the {name} split differs");
    }
}

#[test]
fn a_table_read_a_chunk_at_a_time_loads_the_rows_of_reading_it_whole() {
    let dir = scratch("streaming-load");
    let body = table();
    let csv = write(&dir, "t.csv", &body);
    for chunk in [1, 7, 64, 100_000] {
        let (a, b) = both(&data(&csv, json!({})), chunk);
        assert_same(&a, &b, &format!("stratified split, chunks of {chunk}"));
    }
    let (a, b) = both(&data(&csv, json!({ "limit": 120 })), 11);
    assert_same(&a, &b, "limit");
    assert_eq!(a.train.len() + a.validation.len() + a.test.len(), 120);
    let (a, b) = both(&data(&csv, json!({ "split": { "by": "when", "validation": 0.2, "test": 0.3 } })), 13);
    assert_same(&a, &b, "out-of-time split");

    // Split in advance, over three files; and Parquet.
    let lines: Vec<&str> = body.lines().collect();
    let part = |name: &str, rows: std::ops::Range<usize>| {
        let mut s = format!("{}\n", lines[0]);
        lines[1 + rows.start..1 + rows.end].iter().for_each(|l| s.push_str(&format!("{l}\n")));
        write(&dir, name, &s)
    };
    let (tr, va, te) = (part("train.csv", 0..180), part("val.csv", 180..240), part("test.csv", 240..300));
    let files = json!({ "path": tr, "files": { "validation": va, "test": te }, "split": null });
    let (a, b) = both(&data(&tr, files), 17);
    assert_same(&a, &b, "split files");
    assert_eq!((a.train.len(), a.validation.len(), a.test.len()), (180, 60, 60));
}

#[test]
fn an_error_in_a_later_chunk_names_its_row_and_line() {
    let dir = scratch("streaming-error");
    let mut body = table();
    body.push_str("12.5,fuel,Maybe,2024-05-01,ios,genuine\n");
    let csv = write(&dir, "t.csv", &body);
    let mut cfg = data(&csv, json!({}));
    cfg.stream = Some(true);
    let e = tabular::load_in_chunks(&cfg, Path::new("/"), 5, &dir, 16).expect_err("refused").to_string();
    assert!(e.contains(&csv.display().to_string()), "names the file: {e}");
    assert!(e.contains("column \"card_present\", row 301 (line 302)"), "names the cell: {e}");
}

/// `transactions-small.toml` with `stream = true` set (or not) in its `[data]`.
fn transactions(stream: bool) -> Pipeline {
    let src = repo_pipeline("transactions-small.toml");
    let src = src.replacen("[data]\n", &format!("[data]\nstream = {stream}\n"), 1);
    assert!(src.contains("stream = "), "the [data] section was found");
    Pipeline::parse(&repo().join("pipelines/transactions-small.toml"), &src).expect("valid pipeline")
}

#[test]
fn a_streamed_run_gives_the_numbers_of_the_in_memory_run() {
    let dir = scratch("streaming-run");
    let mut metrics = Vec::new();
    for stream in [false, true] {
        let out = dir.join(format!("stream-{stream}"));
        engine::run(&transactions(stream), &RunOptions { out: Some(out.clone()), resume: false })
            .expect("run succeeds");
        metrics.push(without_timings(read_json(&out.join("metrics.json"))));
        // The rows on disk were unnamed files: nothing is left behind in the run folder.
        let left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "stray files: {left:?}");
    }
    assert!(metrics[0]["attacks"].as_array().is_some_and(|a| !a.is_empty()), "attacks ran");
    assert_eq!(metrics[0], metrics[1], "metrics.json of the streamed run equals the in-memory run's");
}
