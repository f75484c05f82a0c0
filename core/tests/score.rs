//! `tempered score` as a user meets it: a small tabular pipeline is run through the real
//! binary, then its run folder scores files of rows. The run's own test split, scored from
//! its raw cells, must give the probabilities the run measured, to the bit.
//!
//! The pipelines are the shipped small ones with their attacks taken out and a `clean`
//! hardening (more clean epochs), so a hardened checkpoint exists without a plugin library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use candle_core::Device;
use polars::prelude::{CsvReadOptions, DataFrame, DataType, ParquetReader, ParquetWriter, SerReader};
use tempered_core::data::Examples;
use tempered_core::data::tabular::{self, TabularData};
use tempered_core::model::{self, Mlp};
use tempered_core::pipeline::{Pipeline, Spec};
use tempered_core::{evaluate, report};

const TEMPERED: &str = env!("CARGO_BIN_EXE_tempered");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("score").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tempered(args: &[&str]) -> Output {
    Command::new(TEMPERED).args(args).env("RUST_LOG", "info").env("TEMPERED_QUIET", "1").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tempered score RUN INPUT --out OUT [extra…]`.
fn score(run: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args =
        vec!["score", run.to_str().unwrap(), input.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    tempered(&args)
}

/// [`score`], which must succeed.
fn score_ok(run: &Path, input: &Path, out: &Path) {
    let o = score(run, input, out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The `probability` column of a scored table.
fn probabilities(scored: &DataFrame) -> Vec<f32> {
    scored.column("probability").unwrap().f32().unwrap().iter().map(Option::unwrap).collect()
}

/// A finished run of `pipelines/<name>.toml` without its attacks.
struct Run {
    pipeline: PathBuf,
    dir: PathBuf,
}

fn run(name: &str) -> Run {
    let root = scratch(name);
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    // The pipeline's relative data path resolves as in the repository.
    std::os::unix::fs::symlink(repo().join("data"), root.join("data")).unwrap();
    let src = std::fs::read_to_string(repo().join(format!("pipelines/{name}.toml"))).unwrap();
    let mut t: toml::Table = src.parse().unwrap();
    t.remove("attack");
    if let Some(toml::Value::Table(e)) = t.get_mut("evaluate") {
        e.remove("sweep");
    }
    let harden: toml::Table = "strategy = \"clean\"\nepochs = 2\npatience = 0".parse().unwrap();
    t.insert("harden".into(), harden.into());
    let pipeline = root.join("pipelines").join(format!("{name}.toml"));
    std::fs::write(&pipeline, toml::to_string(&t).unwrap()).unwrap();
    let dir = root.join("run");
    let o = tempered(&["run", pipeline.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "tempered run {name}: {}", stderr(&o));
    assert!(dir.join("checkpoints/hardened.safetensors").is_file());
    Run { pipeline, dir }
}

fn transactions() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| run("transactions-small"))
}

fn fraud() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| run("fraud-small"))
}

/// The run's data and split, re-derived by the loader the engine uses.
fn data(run: &Run) -> (Pipeline, TabularData) {
    let p = Pipeline::load(&run.pipeline).unwrap();
    let Spec::Tabular(s) = &p.spec else { panic!("a tabular pipeline") };
    let d = tabular::load(&s.data, &p.base_dir, p.seed()).unwrap();
    (p, d)
}

/// The test split's positive-class probabilities as the engine computes them for its
/// metrics: the encoded rows through the checkpoint, in batches of 1024.
fn engine_test_probabilities(run: &Run, which: &str) -> Vec<f32> {
    let (p, d) = data(run);
    let Spec::Tabular(s) = &p.spec else { unreachable!() };
    let mean: Vec<f32> = d.features.iter().map(|f| f.mean).collect();
    let std: Vec<f32> = d.features.iter().map(|f| f.std()).collect();
    let mlp = Mlp::new(&s.model, &mean, &std, d.n_classes, p.seed(), &Device::Cpu).unwrap();
    model::load(&mlp, &run.dir.join(format!("checkpoints/{which}.safetensors"))).unwrap();
    let x = Examples::Dense { data: d.test.values().unwrap().into_owned(), width: d.width() };
    let (_, probs) = evaluate::predict(&mlp, &x, 1024).unwrap();
    probs.iter().map(|p| p[1]).collect()
}

fn read_csv(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_owned()))
        .unwrap()
        .finish()
        .unwrap()
}

fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

/// A text column of a CSV read as text, parsed.
fn floats(df: &DataFrame, col: &str) -> Vec<f32> {
    df.column(col).unwrap().str().unwrap().iter().map(|v| v.unwrap().parse().unwrap()).collect()
}

fn texts(df: &DataFrame, col: &str) -> Vec<String> {
    let c = df.column(col).unwrap().cast(&DataType::String).unwrap();
    c.str().unwrap().iter().map(|v| v.unwrap_or_default().to_owned()).collect()
}

/// Scores the whole data file of `run` with `model` and checks the test split's rows
/// against the engine's probabilities and the run's own `metrics.json`.
fn reproduces_the_test_split(run: &Run, file: &str, model: &str, phase: &str) {
    let out = run.dir.parent().unwrap().join(format!("scores-{model}.csv"));
    let input = repo().join(file);
    let o = score(&run.dir, &input, &out, &["--model", model]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    let first = log.lines().next().unwrap_or_default();
    assert!(first.contains("threshold"), "the first log line names the threshold: {log}");

    let scored = read_csv(&out);
    let (_, d) = data(run);
    let all = floats(&scored, "probability");
    let test: Vec<f32> = d.test.rows.iter().map(|&r| all[r - 1]).collect();
    let engine = engine_test_probabilities(run, model);
    assert_eq!(test.len(), engine.len());
    for (k, (a, b)) in test.iter().zip(&engine).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "test row {} (file row {}): scored {a}, engine {b}",
            k,
            d.test.rows[k]
        );
    }
    // The run's own measurement of those rows.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("metrics.json")).unwrap()).unwrap();
    let labels: Vec<bool> = d.test.y.iter().map(|&y| y == 1).collect();
    let pr_auc = report::scores::average_precision(&test, &labels);
    assert_eq!(Some(pr_auc), metrics["clean"][phase]["pr_auc"].as_f64(), "PR-AUC of the scored test rows");
    // Decisions follow the threshold the log names.
    let t: f32 = first
        .split("threshold ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a number after `threshold`: {first}"));
    let decisions = texts(&scored, "decision");
    for (p, dcs) in all.iter().zip(&decisions) {
        assert_eq!(dcs, if *p >= t { "1" } else { "0" });
    }
    assert_eq!(scored.height(), all.len());
    // With an operating point, the run counted the test frauds flagged at its threshold.
    if let Some(detected) = metrics["clean"][phase]["operating_point"]["detected"].as_u64() {
        let flagged =
            d.test.rows.iter().zip(&d.test.y).filter(|&(&r, &y)| y == 1 && decisions[r - 1] == "1").count();
        assert_eq!(flagged as u64, detected, "frauds of the test split flagged");
    }
}

#[test]
fn scoring_the_test_split_reproduces_the_runs_probabilities() {
    let r = transactions();
    reproduces_the_test_split(r, "data/transactions/transactions_sample.csv", "hardened", "after");
    reproduces_the_test_split(r, "data/transactions/transactions_sample.csv", "clean", "before");
    // Identifier columns come through; feature columns do not.
    let scored = read_csv(&r.dir.parent().unwrap().join("scores-hardened.csv"));
    let names: Vec<String> = scored.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "transaction_id",
            "customer_id",
            "hour_of_day",
            "day_of_week",
            "is_fraud",
            "probability",
            "decision"
        ]
    );
    assert_eq!(texts(&scored, "transaction_id")[..3], ["1", "2", "3"]);
}

#[test]
fn scoring_the_numeric_fraud_table_reproduces_the_runs_probabilities() {
    reproduces_the_test_split(fraud(), "data/creditcard-ulb/creditcard_ulb_sample.csv", "hardened", "after");
}

/// The first `n` rows of the transactions file, typed (numbers, text) as Parquet.
fn head_parquet(n: usize, path: &Path) -> DataFrame {
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(repo().join("data/transactions/transactions_sample.csv")))
        .unwrap()
        .finish()
        .unwrap()
        .head(Some(n));
    ParquetWriter::new(std::fs::File::create(path).unwrap()).finish(&mut df).unwrap();
    df
}

#[test]
fn parquet_in_and_out_give_the_csv_scores() {
    let r = transactions();
    let dir = scratch("parquet");
    let input = dir.join("rows.parquet");
    let typed = head_parquet(500, &input);
    assert!(typed.column("amount").unwrap().dtype().is_float(), "a typed file");
    let out = dir.join("scores.parquet");
    score_ok(&r.dir, &input, &out);
    let scored = read_parquet(&out);
    assert_eq!(scored.height(), 500);
    assert_eq!(
        scored.column("transaction_id").unwrap().dtype(),
        typed.column("transaction_id").unwrap().dtype()
    );
    let p: Vec<f32> = probabilities(&scored);

    let csv_out = dir.join("scores.csv");
    let csv_in = repo().join("data/transactions/transactions_sample.csv");
    score_ok(&r.dir, &csv_in, &csv_out);
    let from_csv = floats(&read_csv(&csv_out), "probability");
    assert_eq!(p, from_csv[..500]);
}

/// The transactions file's header and first `n` rows, with `edit` applied to each row's cells.
fn edited_csv(
    path: &Path,
    n: usize,
    edit: impl Fn(usize, &mut Vec<String>),
    header: impl Fn(&mut Vec<String>),
) {
    let src = std::fs::read_to_string(repo().join("data/transactions/transactions_sample.csv")).unwrap();
    let mut lines = src.lines();
    let mut h: Vec<String> = lines.next().unwrap().split(',').map(str::to_owned).collect();
    header(&mut h);
    let mut out = h.join(",") + "\n";
    for (i, line) in lines.take(n).enumerate() {
        let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        edit(i, &mut cells);
        out += &(cells.join(",") + "\n");
    }
    std::fs::write(path, out).unwrap();
}

/// [`edited_csv`] of 5 rows with one cell changed.
fn with_cell(path: &Path, row: usize, col: usize, value: String) {
    edited_csv(
        path,
        5,
        |i, c| {
            if i == row {
                c[col] = value.clone()
            }
        },
        |_| {},
    );
}

#[test]
fn an_unseen_category_goes_to_the_unseen_bucket() {
    let r = transactions();
    let dir = scratch("unseen");
    let col = 3; // merchant_category
    let score = |name: &str, value: &'static str| {
        let input = dir.join(format!("{name}.csv"));
        edited_csv(&input, 20, |_, c| c[col] = value.to_owned(), |h| assert_eq!(h[col], "merchant_category"));
        let out = dir.join(format!("{name}-scores.csv"));
        let o = score(&r.dir, &input, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        floats(&read_csv(&out), "probability")
    };
    let a = score("space", "space_tourism");
    let b = score("moon", "moon_rentals");
    assert!(a.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
    assert_eq!(a, b, "two values the train split never had share one bucket");
}

#[test]
fn a_missing_column_or_a_bad_cell_is_named_and_the_old_output_stays() {
    let r = transactions();
    let dir = scratch("bad");
    let out = dir.join("scores.csv");
    std::fs::write(&out, "previous\n").unwrap();

    let input = dir.join("no-amount.csv");
    let amount = 17;
    edited_csv(
        &input,
        5,
        |_, c| {
            c.remove(amount);
        },
        |h| {
            assert_eq!(h[amount], "amount");
            h.remove(amount);
        },
    );
    let o = score(&r.dir, &input, &out, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(input.to_str().unwrap()) && e.contains("\"amount\" not found"), "{e}");

    let input = dir.join("bad-cell.csv");
    with_cell(&input, 2, amount, "lots".into());
    let o = score(&r.dir, &input, &out, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(input.to_str().unwrap()) && e.contains("row 3 (line 4), column \"amount\""), "{e}");
    assert!(e.contains("\"lots\" is not a number"), "{e}");

    // An empty cell where the column refuses them, and a stray quote.
    let channel = 4;
    with_cell(&input, 3, channel, String::new());
    let o = score(&r.dir, &input, &out, &[]);
    let e = stderr(&o);
    assert!(e.contains("row 4 (line 5), column \"channel\": empty cell"), "{e}");
    with_cell(&input, 1, 2, "C0\"7".into());
    let o = score(&r.dir, &input, &out, &[]);
    let e = stderr(&o);
    assert!(e.contains("row 2 (line 3), column \"customer_id\": a quote inside an unquoted field"), "{e}");

    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "previous\n",
        "a failed scoring leaves the old output"
    );
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().contains(".tmp")), "no temporary left: {left:?}");
}

#[test]
fn a_threshold_given_is_said_and_applied() {
    let r = transactions();
    let dir = scratch("threshold");
    let input = dir.join("rows.csv");
    edited_csv(&input, 200, |_, _| {}, |_| {});
    let out = dir.join("scores.csv");
    let o = score(&r.dir, &input, &out, &["--threshold", "0.02"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.lines().next().unwrap().contains("threshold 0.02 (from --threshold)"), "{log}");
    let scored = read_csv(&out);
    let p = floats(&scored, "probability");
    let d = texts(&scored, "decision");
    for (p, d) in p.iter().zip(&d) {
        assert_eq!(d, if *p >= 0.02 { "1" } else { "0" });
    }
}

#[test]
fn a_text_run_folder_is_refused() {
    let dir = scratch("text-run");
    std::fs::copy(repo().join("pipelines/sentiment-small.toml"), dir.join("config.toml")).unwrap();
    let out = dir.join("scores.csv");
    let input = repo().join("data/transactions/transactions_sample.csv");
    let o = score(&dir, &input, &out, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("a text run") && e.contains("tabular runs only"), "{e}");
    assert!(!out.exists());
}

/// A copy of the transactions run whose `metrics.json` carries operating thresholds, as a
/// run with `[evaluate] operating_point` writes them.
fn run_with_thresholds(dir: &Path) -> PathBuf {
    let r = transactions();
    let copy = dir.join("run");
    std::fs::create_dir_all(copy.join("checkpoints")).unwrap();
    for f in
        ["config.toml", "encoding.json", "checkpoints/clean.safetensors", "checkpoints/hardened.safetensors"]
    {
        std::fs::copy(r.dir.join(f), copy.join(f)).unwrap();
    }
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("metrics.json")).unwrap()).unwrap();
    m["clean"]["before"]["operating_point"] =
        serde_json::json!({ "target": { "fpr": 0.01 }, "threshold": 0.2 });
    m["clean"]["after"]["operating_point"] =
        serde_json::json!({ "target": { "fpr": 0.01 }, "threshold": 0.05 });
    std::fs::write(copy.join("metrics.json"), m.to_string()).unwrap();
    copy
}

#[test]
fn the_runs_operating_threshold_decides_for_its_model() {
    let dir = scratch("operating-point");
    let run = run_with_thresholds(&dir);
    let input = dir.join("rows.csv");
    edited_csv(&input, 300, |_, _| {}, |_| {});
    for (model, t, at) in [
        (None, 0.05f32, "clean.after.operating_point.threshold"),
        (Some("clean"), 0.2, "clean.before.operating_point.threshold"),
    ] {
        let out = dir.join("scores.csv");
        let extra: Vec<&str> = model.map(|m| ["--model", m]).into_iter().flatten().collect();
        let o = score(&run, &input, &out, &extra);
        let log = stderr(&o);
        assert!(o.status.success(), "{log}");
        let first = log.lines().next().unwrap();
        assert!(
            first.contains(&format!("threshold {t} (the run's operating threshold")) && first.contains(at),
            "{first}"
        );
        let scored = read_csv(&out);
        let p = floats(&scored, "probability");
        let d = texts(&scored, "decision");
        assert!(p.iter().any(|&p| p >= t) && p.iter().any(|&p| p < t), "the threshold splits these rows");
        for (p, d) in p.iter().zip(&d) {
            assert_eq!(d, if *p >= t { "1" } else { "0" });
        }
    }
}

#[test]
fn a_file_of_many_chunks_scores_like_its_rows_and_names_rows_past_the_first_chunk() {
    let r = transactions();
    let dir = scratch("chunks");
    // The 20,000 rows three times over (past one 50,000-row chunk), with an identifier
    // column whose second cell is quoted over two lines.
    let src = std::fs::read_to_string(repo().join("data/transactions/transactions_sample.csv")).unwrap();
    let mut lines = src.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let mut body = format!("{header},note\n");
    for k in 0..3 * rows.len() {
        let note = if k == 1 { "\"two\nlines, \"\"quoted\"\"\"" } else { "x" };
        body += &format!("{},{note}\n", rows[k % rows.len()]);
    }
    let input = dir.join("big.csv");
    std::fs::write(&input, &body).unwrap();
    let out = dir.join("big-scores.parquet");
    score_ok(&r.dir, &input, &out);
    let scored = read_parquet(&out);
    assert_eq!(scored.height(), 3 * rows.len());
    assert_eq!(texts(&scored, "note")[1], "two\nlines, \"quoted\"");
    let p: Vec<f32> = probabilities(&scored);
    let single = dir.join("single.csv");
    score_ok(&r.dir, &repo().join("data/transactions/transactions_sample.csv"), &single);
    let once = floats(&read_csv(&single), "probability");
    for (k, chunk) in p.chunks(rows.len()).enumerate() {
        assert_eq!(chunk, once, "copy {k}");
    }

    // The same rows as Parquet, read in slices.
    let typed = dir.join("big.parquet");
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(input.clone()))
        .unwrap()
        .finish()
        .unwrap();
    ParquetWriter::new(std::fs::File::create(&typed).unwrap())
        .with_row_group_size(Some(7_000))
        .finish(&mut df)
        .unwrap();
    score_ok(&r.dir, &typed, &out);
    let again: Vec<f32> =
        read_parquet(&out).column("probability").unwrap().f32().unwrap().iter().map(Option::unwrap).collect();
    assert_eq!(again, p);

    // A bad cell in the second chunk: its row, and its line one further down (the
    // two-line cell).
    let bad_row = 55_000;
    let mut lines: Vec<String> = body.lines().map(str::to_owned).collect();
    let line = bad_row + 2; // the header, then the extra line of row 2
    let mut cells: Vec<String> = lines[line - 1].split(',').map(str::to_owned).collect();
    cells[17] = "-".into();
    lines[line - 1] = cells.join(",");
    let input = dir.join("big-bad.csv");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let o = score(&r.dir, &input, &out, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("row {bad_row} (line {line}), column \"amount\"")), "{e}");
    assert_eq!(read_parquet(&out).height(), 3 * rows.len(), "the previous output is whole");
}

#[test]
fn three_classes_give_a_probability_per_class_and_the_most_probable_class() {
    let root = scratch("three-classes");
    // Which of three bands `a + b` falls in, with a text label and an identifier.
    let mut csv = String::from("id,a,b,kind\n");
    for i in 0..600u32 {
        let a = (i * 37 % 101) as f32 / 10.0;
        let b = (i * 53 % 89) as f32 / 10.0;
        let kind = match a + b {
            s if s < 6.0 => "low",
            s if s < 12.0 => "mid",
            _ => "high",
        };
        csv += &format!("r{i},{a},{b},{kind}\n");
    }
    std::fs::write(root.join("bands.csv"), &csv).unwrap();
    let pipeline = root.join("bands.toml");
    std::fs::write(
        &pipeline,
        r#"[pipeline]
name = "bands"
modality = "tabular"
seed = 1

[data]
path = "bands.csv"
label = "kind"
classes = ["low", "mid", "high"]
features = ["a", "b"]
split = { validation = 0.2, test = 0.2 }

[model]
kind = "mlp"
hidden = [16]

[train]
epochs = 30
batch_size = 32
lr = 1e-2
patience = 0

[harden]
enabled = false
"#,
    )
    .unwrap();
    let run = root.join("run");
    let o = tempered(&["run", pipeline.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = root.join("scores.csv");
    let input = root.join("bands.csv");
    let o = score(&run, &input, &out, &[]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.lines().next().unwrap().contains("no threshold (3 classes"), "{log}");
    assert!(log.contains("with the clean model"), "no hardening: the clean model scores: {log}");
    let scored = read_csv(&out);
    let names: Vec<String> = scored.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(names, ["id", "kind", "p_low", "p_mid", "p_high", "decision"]);
    let p: Vec<Vec<f32>> = ["p_low", "p_mid", "p_high"].iter().map(|c| floats(&scored, c)).collect();
    let decision = texts(&scored, "decision");
    let kind = texts(&scored, "kind");
    let mut right = 0;
    for i in 0..scored.height() {
        let row = [p[0][i], p[1][i], p[2][i]];
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row {i}: {row:?}");
        let best = (0..3).max_by(|&x, &y| row[x].total_cmp(&row[y])).unwrap();
        assert_eq!(decision[i], ["low", "mid", "high"][best]);
        right += usize::from(decision[i] == kind[i]);
    }
    assert!(right * 10 > scored.height() * 8, "a model that learned the bands: {right} right");
    let o = score(&run, &input, &out, &["--threshold", "0.5"]);
    assert!(stderr(&o).contains("--threshold applies to two classes"), "{}", stderr(&o));
}
