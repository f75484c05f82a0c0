//! The loaders against hostile input: special files, oversized and malformed files,
//! settings that make no model, and thousands of random and mutated inputs.
//!
//! The property tests run a few hundred cases each by default (a few seconds in all);
//! `PROPTEST_CASES=N` runs N cases of each.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use tempered_core::data::audio::{self, Align, AudioDataConfig, ReadOptions};
use tempered_core::data::{tabular, text};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{pipeline_file, repo, repo_pipeline, scratch};

use common::load_err;

// ---------------------------------------------------------------------------------------
// Helpers

/// 1-based line of the first line of `src` that starts with `prefix`.
fn line_of(src: &str, prefix: &str) -> usize {
    src.lines().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line {prefix:?}")) + 1
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs").success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Runs `f` on a thread of its own and fails, rather than hangs, when it blocks.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("{what}: still blocked after 20 s"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

fn tabular_cfg(path: &Path) -> tabular::TabularDataConfig {
    serde_json::from_value(serde_json::json!({ "path": path, "label": "y" })).unwrap()
}

fn text_cfg(path: &Path) -> text::TextDataConfig {
    serde_json::from_value(serde_json::json!({ "path": path })).unwrap()
}

fn audio_cfg(dir: &Path, resample: bool, length: usize, align: &str) -> AudioDataConfig {
    serde_json::from_value(serde_json::json!({
        "path": dir,
        "pattern": "{label}_{speaker}_{index}.wav",
        "resample": resample,
        "length": length,
        "align": align,
        "split": { "test": 0.0, "validation": 0.0 },
    }))
    .unwrap()
}

fn fsdd(name: &str) -> PathBuf {
    repo().join("data/fsdd/recordings").join(name)
}

// ---------------------------------------------------------------------------------------
// 1. Only regular files are opened; the pipeline file has a size limit.

#[test]
fn a_fifo_named_like_a_pipeline_is_refused_not_waited_on() {
    let fifo = scratch("fifo-pipeline").join("x.toml");
    mkfifo(&fifo);
    let f = fifo.clone();
    let e = within("Pipeline::load on a FIFO", move || Pipeline::load(&f).map(drop)).unwrap_err().to_string();
    assert_eq!(e, format!("{}: not a regular file (a FIFO)", fifo.display()));
}

#[test]
fn a_pipeline_file_over_a_mebibyte_is_refused() {
    let mut src = repo_pipeline("fraud-small.toml");
    src += &format!("# {}\n", "x".repeat(1 << 20));
    let e = load_err("huge", &src);
    assert!(e.contains("too big for a pipeline file") && e.contains("1 MiB"), "{e}");
}

#[test]
fn fifo_data_files_are_refused_by_every_loader() {
    let dir = scratch("fifo-data");
    let csv = dir.join("x.csv");
    mkfifo(&csv);
    let (d, c) = (dir.clone(), csv.clone());
    let e = within("tabular::load on a FIFO", move || tabular::load(&tabular_cfg(&c), &d, 1).map(drop));
    let e = e.unwrap_err().to_string();
    assert_eq!(e, format!("{}: not a regular file (a FIFO)", csv.display()));
    let (d, c) = (dir.clone(), csv.clone());
    let e = within("text::load on a FIFO", move || text::load(&text_cfg(&c), &d, 1).map(drop));
    let e = e.unwrap_err().to_string();
    assert_eq!(e, format!("{}: not a regular file (a FIFO)", csv.display()));

    // A FIFO among the recordings is a bad file: it fails the load by name, or is skipped.
    let wavs = scratch("fifo-wavs");
    for name in ["0_george_5.wav", "1_george_5.wav"] {
        std::fs::copy(fsdd(name), wavs.join(name)).unwrap();
    }
    mkfifo(&wavs.join("1_george_6.wav"));
    let w = wavs.clone();
    let e = within("audio::load with a FIFO", move || {
        audio::load(&audio_cfg(&w, false, 8000, "center"), &w, 1).map(drop)
    });
    let e = e.unwrap_err().to_string();
    assert!(e.contains("1_george_6.wav: not a regular file (a FIFO)"), "{e}");
    let w = wavs.clone();
    let d = within("audio::load skipping a FIFO", move || {
        let mut cfg = audio_cfg(&w, false, 8000, "center");
        cfg.on_bad_file = audio::OnBadFile::Skip;
        audio::load(&cfg, &w, 1)
    })
    .unwrap();
    assert_eq!((d.train.files.len(), d.skipped.len()), (2, 1));

    // And a manifest that is a FIFO.
    let manifest = wavs.join("labels.csv");
    mkfifo(&manifest);
    let w = wavs.clone();
    let e = within("audio::load with a FIFO manifest", move || {
        let cfg: AudioDataConfig =
            serde_json::from_value(serde_json::json!({ "path": &w, "manifest": "labels.csv" })).unwrap();
        audio::load(&cfg, &w, 1).map(drop)
    });
    let e = e.unwrap_err().to_string();
    assert_eq!(e, format!("{}: not a regular file (a FIFO)", manifest.display()));
}

// ---------------------------------------------------------------------------------------
// 2. A long recording costs what its crop costs.

#[test]
fn half_a_second_of_a_ten_minute_recording_is_read_in_well_under_a_second() {
    let dir = scratch("long-wav");
    // Ten minutes of 44.1 kHz silence, sparse on disk: only the crop should be read and
    // resampled (the whole file resampled took 41 s in release).
    let frames = 44_100u32 * 600;
    let path = dir.join("1_long_0.wav");
    std::fs::write(&path, audio::pcm16_header(44_100, frames * 2)).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(44 + frames as u64 * 2).unwrap();
    std::fs::copy(fsdd("0_george_5.wav"), dir.join("0_george_5.wav")).unwrap();
    let cfg = audio_cfg(&dir, true, 4000, "center");
    let start = Instant::now();
    let d = audio::load(&cfg, &dir, 1).unwrap();
    let took = start.elapsed();
    assert_eq!(d.resampled_files, 1);
    assert_eq!(d.train.x.len(), 2 * 4000);
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// ---------------------------------------------------------------------------------------
// 3. CSV: ragged rows and duplicate headers.

fn tabular_err(name: &str, body: &str) -> String {
    let dir = scratch(name);
    let path = dir.join("t.csv");
    std::fs::write(&path, body).unwrap();
    let e = tabular::load(&tabular_cfg(&path), &dir, 1).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "the error names the file: {e}");
    e
}

#[test]
fn a_row_with_extra_fields_names_its_row_and_both_counts() {
    let mut body = String::from("a,b,y\n");
    for r in 0..20 {
        body += &format!("{r},{},{}\n", r * 2, r % 2);
    }
    let body = body.replacen("\n4,8,0\n", "\n4,8,0,17\n", 1); // data row 5
    let e = tabular_err("ragged", &body);
    assert!(e.ends_with(": row 5 (line 6): 4 fields, but the header has 3"), "{e}");
    assert!(!e.contains("truncate_ragged_lines"), "no reader option the user cannot set: {e}");
}

#[test]
fn a_duplicate_column_name_is_refused_naming_both_positions() {
    let mut body = String::from("V1,V2,V1,y\n");
    for r in 0..20 {
        body += &format!("{r},{},{},{}\n", r * 2, r * 3, r % 2);
    }
    let e = tabular_err("duplicate", &body);
    assert!(e.contains("columns 1 and 3 are both named \"V1\""), "{e}");
}

// ---------------------------------------------------------------------------------------
// 4. The pipeline's name is a plain file name.

#[test]
fn a_name_that_would_leave_the_runs_folder_is_refused_at_its_key() {
    let base = repo_pipeline("fraud-small.toml");
    for bad in ["..", ".", ".hidden", "a/b", "..\\\\x", "../../etc"] {
        let src = base.replace("name = \"fraud-small\"", &format!("name = \"{bad}\""));
        let e = load_err("bad-name", &src);
        let line = line_of(&src, "name = ");
        assert!(e.starts_with(&format!(":{line}:1: name ")), "{bad}: {e}");
        assert!(e.contains("plain file name"), "{bad}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// 5. Settings that make no model, or no run, are refused at load.

#[test]
fn a_zero_width_hidden_layer_is_refused_at_its_element() {
    let src = repo_pipeline("fraud-small.toml").replace("hidden = [32, 32]", "hidden = [0, 32]");
    let e = load_err("zero-hidden", &src);
    let line = line_of(&src, "hidden = ");
    assert!(e.starts_with(&format!(":{line}:11: model.hidden[0] = 0")), "{e}");
}

#[test]
fn models_too_big_for_the_machine_are_refused_with_the_estimate() {
    let src = repo_pipeline("fraud-small.toml").replace("hidden = [32, 32]", "hidden = [1000000, 1000000]");
    let e = load_err("huge-mlp", &src);
    assert!(e.starts_with(&format!(":{}:1: ", line_of(&src, "hidden = "))), "{e}");
    assert!(e.contains("needs about 14.6 TiB") && e.contains("1.000e12 parameters"), "{e}");
    let src = repo_pipeline("speech-small.toml")
        .replace("channels = [16, 16, 32, 32]", "channels = [100000, 100000]");
    let e = load_err("huge-m5", &src);
    assert!(e.contains("needs about") && e.contains("more than the"), "{e}");
}

#[test]
fn an_audio_length_past_ten_minutes_is_refused() {
    let src = repo_pipeline("speech-small.toml").replace("length = 4000", "length = 4000000000");
    let e = load_err("long-audio", &src);
    assert!(e.starts_with(&format!(":{}:1: length = 4000000000 samples", line_of(&src, "length = "))), "{e}");
    assert!(e.contains("10 minutes at 8000 Hz (at most 4800000 samples)"), "{e}");
}

#[test]
fn nan_and_infinity_are_not_finite_numbers_at_their_value() {
    let base = repo_pipeline("fraud-small.toml");
    for (from, to, key, col) in [
        ("lr = 3e-3", "lr = nan", "train.lr = nan", 6),
        ("values = [0.25, 1.0]", "values = [0.25, nan]", "evaluate.sweep[0].values[1] = nan", 17),
        (
            "params = { norm = \"linf\", epsilon = 0.5, steps = 5 }",
            "params = { norm = \"linf\", epsilon = inf, steps = 5 }",
            "attack[0].params.epsilon = inf",
            37,
        ),
        ("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nlr = -inf", "harden.lr = -inf", 6),
    ] {
        let src = base.replacen(from, to, 1);
        assert_ne!(src, base, "{from}");
        let e = load_err("nan", &src);
        let line = line_of(&src, to.lines().last().unwrap());
        assert_eq!(e, format!(":{line}:{col}: {key} is not a finite number"));
    }
    // An infinite bound on a tabular feature means "no bound" and stays allowed.
    let src = base.replace("lower = 0.0\n", "lower = 0.0\nupper = inf\n");
    Pipeline::load(&pipeline_file("inf-bound", &src)).expect("upper = inf is a valid bound");
}

#[test]
fn zero_query_budgets_and_zero_epochs_are_refused() {
    let base = repo_pipeline("fraud-small.toml");
    let src = base.replacen("attack = \"pgd\"\n", "attack = \"pgd\"\nquery_budget = 0\n", 1);
    let e = load_err("budget", &src);
    assert!(e.starts_with(&format!(":{}:1: query_budget = 0", line_of(&src, "query_budget"))), "{e}");
    let src = base.replacen("epochs = 6", "epochs = 0", 1);
    let e = load_err("train-epochs", &src);
    assert!(
        e.starts_with(&format!(":{}:1: ", line_of(&src, "epochs = 0"))) && e.contains("untrained"),
        "{e}"
    );
    let src = base.replacen("epochs = 2", "epochs = 0", 1);
    let e = load_err("harden-epochs", &src);
    assert!(e.starts_with(&format!(":{}:1: harden.epochs = 0", line_of(&src, "epochs = 0"))), "{e}");
    // Not when hardening is off.
    let src = src.replace("[harden]\n", "[harden]\nenabled = false\n");
    Pipeline::load(&pipeline_file("harden-off", &src)).expect("no hardening, no harden.epochs");
}

#[test]
fn every_shipped_pipeline_still_loads() {
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            Pipeline::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. Property tests: no panic, no hang, and every error names the file.

fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config { cases, failure_persistence: None, ..Config::default() }
}

fn check(result: Result<(), tempered_core::Error>, names: &str) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        let msg = e.to_string();
        prop_assert!(msg.contains(names), "the error does not name {names}: {msg}");
        prop_assert!(msg.len() > names.len() + 2, "an empty message: {msg}");
    }
    Ok(())
}

/// Writes `bytes` as `file` in a fresh folder `name`, loads it with `load(folder, file)`, and
/// [`check`]s that an error names the file.
fn load_written(
    name: &str,
    file: &str,
    bytes: impl AsRef<[u8]>,
    load: impl FnOnce(&Path, &Path) -> Result<(), tempered_core::Error>,
) -> Result<(), TestCaseError> {
    let dir = scratch(name);
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    let result = load(&dir, &path);
    let _ = std::fs::remove_dir_all(&dir);
    check(result, &path.display().to_string())
}

fn shipped_pipelines() -> &'static [String] {
    static P: OnceLock<Vec<String>> = OnceLock::new();
    P.get_or_init(|| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("pipelines"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    })
}

const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e308",
    "1e-320",
    "18446744073709551615",
    "18446744073709551616",
    "4000000000",
    "1000000",
    "0.0",
    "-0.0",
    "\"\"",
    "\"..\"",
    "\"a/b\"",
    "\".x\"",
    "[]",
    "[0]",
    "[0, 32]",
    "[1000000, 1000000]",
    "[nan]",
    "{}",
    "true",
    "\"nan\"",
    "\"cuda\"",
    "\"text\"",
    "\"audio\"",
    "\"tabular\"",
    "1979-05-27",
    "'''x'''",
];

const JUNK: &[&str] = &[
    "x = 1\n",
    "[x]\n",
    "[[attack]]\n",
    "[[evaluate.sweep]]\n",
    "= =",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "#",
    "\\",
    "\u{0}",
    "é",
    "\u{feff}",
    "epochs = 0\n",
    "hidden = [0]\n",
    "query_budget = 0\n",
    "length = 4000000000\n",
    "lr = nan\n",
    "name = \"..\"\n",
    "modality = \"audio\"\n",
    "[model]\n",
    "[data]\n",
    "[pipeline]\n",
    "a.b.c = 1\n",
    "x = { y = { z = inf } }\n",
    "\r\n",
];

#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Cut(Index),
    Insert(Index, String),
    Remove(Index, usize),
    /// A new value for the key on one of the lines that have one.
    Value(Index, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let junk = prop_oneof![
        3 => prop::sample::select(JUNK).prop_map(str::to_owned),
        1 => "[ -~\n]{0,16}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ];
    let value = prop_oneof![
        4 => prop::sample::select(VALUES).prop_map(str::to_owned),
        1 => any::<f64>().prop_map(|v| format!("{v:?}")),
        1 => any::<i64>().prop_map(|v| v.to_string()),
    ];
    prop_oneof![
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        1 => any::<Index>().prop_map(Edit::Cut),
        2 => (any::<Index>(), junk).prop_map(|(i, s)| Edit::Insert(i, s)),
        1 => (any::<Index>(), 1..40usize).prop_map(|(i, n)| Edit::Remove(i, n)),
        8 => (any::<Index>(), value).prop_map(|(i, v)| Edit::Value(i, v)),
    ]
}

fn apply(src: &str, edits: &[Edit]) -> Vec<u8> {
    let mut b = src.as_bytes().to_vec();
    for e in edits {
        match e {
            Edit::Flip(i, v) if !b.is_empty() => {
                let at = i.index(b.len());
                b[at] = *v;
            }
            Edit::Flip(..) => {}
            Edit::Cut(i) => b.truncate(i.index(b.len() + 1)),
            Edit::Insert(i, s) => {
                let at = i.index(b.len() + 1);
                b.splice(at..at, s.bytes());
            }
            Edit::Remove(i, n) => {
                let at = i.index(b.len() + 1);
                b.drain(at..(at + n).min(b.len()));
            }
            Edit::Value(i, v) => {
                let text = String::from_utf8_lossy(&b).into_owned();
                let lines: Vec<&str> = text.split('\n').collect();
                let with_value: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].contains(" = ")).collect();
                if with_value.is_empty() {
                    continue;
                }
                let k = with_value[i.index(with_value.len())];
                let key = &lines[k][..lines[k].find(" = ").expect("has a value")];
                let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
                out[k] = format!("{key} = {v}");
                b = out.join("\n").into_bytes();
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(cases(600))]

    #[test]
    fn mutated_pipelines_are_loaded_or_refused_by_name(
        which in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..4),
        through_a_file in prop::bool::weighted(0.05),
    ) {
        let shipped = shipped_pipelines();
        let bytes = apply(&shipped[which.index(shipped.len())], &edits);
        match std::str::from_utf8(&bytes) {
            Ok(src) if !through_a_file => {
                let file = Path::new("pipelines/fuzz.toml");
                check(Pipeline::parse(file, src).map(drop), "pipelines/fuzz.toml")?;
            }
            _ => {
                let file = pipeline_file("fuzz", "");
                std::fs::write(&file, &bytes).unwrap();
                check(Pipeline::load(&file).map(drop), &file.display().to_string())?;
                let _ = std::fs::remove_dir_all(file.parent().unwrap().parent().unwrap());
            }
        }
    }
}

const CELLS: &[&str] = &[
    "",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "-1e400",
    "1e38",
    "3.5e38",
    "-0",
    "\"1\"",
    "\"a,b\"",
    "\"a\"\"b\"",
    "\"unterminated",
    "a\"b",
    "\"x\ny\"",
    " 1 ",
    "0x10",
    "1_000",
    "\r",
    "é",
    "\u{0}",
    "\"\"",
    "true",
    "1.5",
    "2",
    "x",
];

/// Header names other than the label `y`; quoted and blank ones included.
const NAMES: &[&str] = &["a", "b", "c", "d", "V1", " a", "\"q\"", ""];

/// What turns a valid table or text file into a doubtful one.
#[derive(Debug, Clone)]
enum Damage {
    /// This cell (row, column) becomes this text.
    Cell(Index, Index, String),
    /// This row gets one or two fields more, or one less.
    Ragged(Index, i8),
    /// This row becomes a blank line.
    Blank(Index),
    /// This byte of the file becomes this byte.
    Byte(Index, u8),
}

/// Half the files undamaged, so that loads get through to the split; the rest with one to
/// three of `damage`.
fn damages(damage: impl Strategy<Value = Damage>) -> impl Strategy<Value = Vec<Damage>> {
    prop_oneof![Just(Vec::new()), prop::collection::vec(damage, 1..4)]
}

/// Applies the row-level damage to `rows`; returns the byte-level damage.
fn damage_rows(rows: &mut [Vec<String>], damages: Vec<Damage>) -> Vec<(Index, u8)> {
    let mut bytes = Vec::new();
    for d in damages {
        if let Damage::Byte(i, v) = d {
            bytes.push((i, v));
            continue;
        }
        if rows.is_empty() {
            continue;
        }
        match d {
            Damage::Cell(r, c, v) => {
                let row = &mut rows[r.index(rows.len())];
                if !row.is_empty() {
                    let k = c.index(row.len());
                    row[k] = v;
                }
            }
            Damage::Ragged(r, n) => {
                let row = &mut rows[r.index(rows.len())];
                match n {
                    -1 => drop(row.pop()),
                    n => row.extend((0..n).map(|k| k.to_string())),
                }
            }
            Damage::Blank(r) => rows[r.index(rows.len())].clear(),
            Damage::Byte(..) => unreachable!("handled above"),
        }
    }
    bytes
}

/// Joins rows into a file: optionally a BOM, CRLF line ends, no final line break.
fn join_rows(rows: &[Vec<String>], (bom, crlf, last_newline): (bool, bool, bool)) -> Vec<u8> {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut out = if bom { "\u{feff}".to_owned() } else { String::new() };
    out += &rows.iter().map(|r| r.join(",")).collect::<Vec<_>>().join(eol);
    if last_newline {
        out += eol;
    }
    out.into_bytes()
}

fn flip_bytes(out: &mut [u8], flips: Vec<(Index, u8)>) {
    for (i, v) in flips {
        if !out.is_empty() {
            let at = i.index(out.len());
            out[at] = v;
        }
    }
}

/// A CSV table: a header (usually with the label `y`, now and then a name twice), rows of
/// numbers with labels 0 and 1, then maybe some damage: odd cells (NaN, infinities, huge
/// numbers, quotes, text), ragged rows, blank lines, stray bytes.
fn csv() -> impl Strategy<Value = Vec<u8>> {
    let header = (
        prop::sample::subsequence(NAMES, 0..5),
        prop::option::weighted(0.9, any::<Index>()),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(mut names, y, twice)| {
            if let Some(i) = y {
                names.insert(i.index(names.len() + 1), "y");
            }
            if twice && !names.is_empty() {
                names.push(names[0]);
            }
            names
        });
    let number = prop_oneof![
        2 => (-1000i64..1000).prop_map(|v| v.to_string()),
        1 => (-1e6f64..1e6).prop_map(|v| v.to_string()),
    ];
    let row = (prop::collection::vec(number, 8), prop::sample::select(vec!["0", "1"]));
    let odd = prop_oneof![
        3 => prop::sample::select(CELLS).prop_map(str::to_owned),
        1 => any::<f64>().prop_map(|v| v.to_string()),
        1 => "[ -~]{0,8}",
    ];
    let damage = prop_oneof![
        4 => (any::<Index>(), any::<Index>(), odd).prop_map(|(r, c, v)| Damage::Cell(r, c, v)),
        1 => (any::<Index>(), prop::sample::select(vec![1i8, 2, -1])).prop_map(|(r, n)| Damage::Ragged(r, n)),
        1 => any::<Index>().prop_map(Damage::Blank),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Byte(i, b)),
    ];
    (header, prop::collection::vec(row, 0..40), damages(damage), any::<(bool, bool, bool)>()).prop_map(
        |(header, rows, damages, layout)| {
            let label = header.iter().position(|&h| h == "y");
            let mut table: Vec<Vec<String>> = vec![header.iter().map(|&h| h.to_owned()).collect()];
            for (cells, y) in rows {
                let mut cells = cells[..header.len().max(1)].to_vec();
                if let Some(l) = label {
                    cells[l] = y.to_owned();
                }
                table.push(cells);
            }
            let flips = damage_rows(&mut table[1..], damages);
            let mut out = join_rows(&table, layout);
            flip_bytes(&mut out, flips);
            out
        },
    )
}

/// A text data set: `label,text` rows (quoted fields with separators, quotes and line
/// breaks included), then maybe some damage: empty or unknown labels, empty or unclosed
/// texts, ragged rows, bytes that are not UTF-8.
fn text_csv() -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        12 => Just("label,text"),
        2 => Just("text,label"),
        1 => prop::sample::select(vec!["label,text,extra", "label", "", "label,label", "\"label\",text"]),
    ];
    let sentence = prop_oneof![
        8 => "[a-z][a-z ]{0,11}",
        1 => prop::sample::select(vec![
            "\"quoted, with comma\"", "\"a \"\"quote\"\"\"", "\"line\nbreak\"", "é à", "a\"b",
        ])
        .prop_map(str::to_owned),
    ];
    let row = (prop::sample::select(vec!["0", "1"]), sentence);
    let odd = prop_oneof![
        3 => prop::sample::select(vec![
            "\"never closed", "", "  ", "\t", "\r", "\"\"", "\"x\"y", "2", " 1", "x",
        ])
        .prop_map(str::to_owned),
        1 => prop::collection::vec(any::<u8>(), 0..6).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    let damage = prop_oneof![
        4 => (any::<Index>(), any::<Index>(), odd).prop_map(|(r, c, v)| Damage::Cell(r, c, v)),
        1 => (any::<Index>(), prop::sample::select(vec![1i8, -1])).prop_map(|(r, n)| Damage::Ragged(r, n)),
        1 => any::<Index>().prop_map(Damage::Blank),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Byte(i, b)),
    ];
    (header, prop::collection::vec(row, 0..40), damages(damage), any::<(bool, bool)>()).prop_map(
        |(header, rows, damages, (bom, crlf))| {
            let text_first = header.starts_with("text");
            let mut table: Vec<Vec<String>> = vec![vec![header.to_owned()]];
            for (label, text) in rows {
                let (l, t) = (label.to_owned(), text);
                table.push(if text_first { vec![t, l] } else { vec![l, t] });
            }
            let flips = damage_rows(&mut table[1..], damages);
            let mut out = join_rows(&table, (bom, crlf, true));
            flip_bytes(&mut out, flips);
            out
        },
    )
}

fn fsdd_wav() -> &'static [u8] {
    static W: OnceLock<Vec<u8>> = OnceLock::new();
    W.get_or_init(|| std::fs::read(fsdd("0_george_0.wav")).unwrap())
}

#[derive(Debug, Clone)]
enum WavEdit {
    /// Any byte of the 44-byte header.
    Byte(Index, u8),
    /// A header field: the RIFF length, fmt length, rate, byte rate or data length.
    U32(usize, u32),
    /// Format tag, channels, block align or bits per sample.
    U16(usize, u16),
    Cut(Index),
    Append(Vec<u8>),
    /// A consistent header for another sample rate (the data is read at that rate).
    Rate(u32),
    /// A consistent header for other channels, bits and format: the bytes are read as
    /// stereo 16-bit, 32-bit float (NaN, infinities, values past ±1) or 8-bit.
    Layout(u16, u16, u16),
}

fn wav_edit() -> impl Strategy<Value = WavEdit> {
    let u32s = prop_oneof![
        2 => prop::sample::select(vec![
            0u32, 1, 2, 7, 16, 18, 36, 40, 1000, 8000, 16000, 44100, 768_000, 768_001,
            0x7FFF_FFFF, 0xFFFF_FFF0, 0xFFFF_FFFF,
        ]),
        1 => any::<u32>(),
    ];
    let u16s = prop_oneof![
        2 => prop::sample::select(vec![0u16, 1, 2, 3, 4, 8, 12, 16, 24, 32, 64, 0xFFFE, 0xFFFF]),
        1 => any::<u16>(),
    ];
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| WavEdit::Byte(i, b)),
        4 => (prop::sample::select(vec![4usize, 16, 24, 28, 40]), u32s).prop_map(|(at, v)| WavEdit::U32(at, v)),
        4 => (prop::sample::select(vec![20usize, 22, 32, 34]), u16s).prop_map(|(at, v)| WavEdit::U16(at, v)),
        2 => any::<Index>().prop_map(WavEdit::Cut),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(WavEdit::Append),
        4 => prop_oneof![
            3 => prop::sample::select(vec![
                1u32, 7, 1000, 4000, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 768_000, 768_001,
            ]),
            1 => 1u32..0x7FFF_FFFF,
        ]
        .prop_map(WavEdit::Rate),
        4 => prop::sample::select(vec![(2u16, 16u16, 1u16), (1, 32, 3), (2, 32, 3), (1, 8, 1), (4, 8, 1)])
            .prop_map(|(c, b, f)| WavEdit::Layout(c, b, f)),
    ]
}

fn apply_wav(edits: &[WavEdit]) -> Vec<u8> {
    let mut b = fsdd_wav().to_vec();
    for e in edits {
        match e {
            WavEdit::Byte(i, v) => {
                let at = i.index(44.min(b.len()).max(1));
                if at < b.len() {
                    b[at] = *v;
                }
            }
            WavEdit::U32(at, v) if b.len() >= at + 4 => b[*at..at + 4].copy_from_slice(&v.to_le_bytes()),
            WavEdit::U16(at, v) if b.len() >= at + 2 => b[*at..at + 2].copy_from_slice(&v.to_le_bytes()),
            WavEdit::U32(..) | WavEdit::U16(..) => {}
            WavEdit::Cut(i) => b.truncate(i.index(b.len() + 1)),
            WavEdit::Append(more) => b.extend_from_slice(more),
            WavEdit::Rate(r) if b.len() >= 44 => {
                let align = u16::from_le_bytes([b[32], b[33]]) as u32;
                b[24..28].copy_from_slice(&r.to_le_bytes());
                b[28..32].copy_from_slice(&r.wrapping_mul(align).to_le_bytes());
            }
            WavEdit::Layout(channels, bits, format) if b.len() >= 44 => {
                let rate = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
                let align = channels * bits / 8;
                b[20..22].copy_from_slice(&format.to_le_bytes());
                b[22..24].copy_from_slice(&channels.to_le_bytes());
                b[28..32].copy_from_slice(&rate.wrapping_mul(align as u32).to_le_bytes());
                b[32..34].copy_from_slice(&align.to_le_bytes());
                b[34..36].copy_from_slice(&bits.to_le_bytes());
            }
            WavEdit::Rate(_) | WavEdit::Layout(..) => {}
        }
    }
    b
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn random_tables_are_loaded_or_refused_by_name(body in csv(), seed in 0u64..4) {
        load_written("fuzz-csv", "t.csv", &body, |dir, path| {
            tabular::load(&tabular_cfg(path), dir, seed).map(drop)
        })?;
    }

    #[test]
    fn random_text_files_are_loaded_or_refused_by_name(body in text_csv(), seed in 0u64..4) {
        load_written("fuzz-text", "t.csv", &body, |dir, path| {
            text::load(&text_cfg(path), dir, seed).map(drop)
        })?;
    }

    #[test]
    fn mutated_wavs_are_loaded_or_refused_by_name(
        edits in prop::collection::vec(wav_edit(), 0..4),
        resample in any::<bool>(),
        length in prop::sample::select(vec![1usize, 100, 4000, 8000, 20000]),
        align in prop::sample::select(vec!["center", "start"]),
    ) {
        let bytes = apply_wav(&edits);
        // The whole-file decoder too, where it does not resample (that output grows with
        // the rate the header claims).
        let _ = audio::decode_wav(&bytes, &ReadOptions { sample_rate: 8000, resample: false });
        let _ = audio::decode_wav_fitted(
            std::io::Cursor::new(&bytes),
            bytes.len() as u64,
            &ReadOptions { sample_rate: 8000, resample },
            length,
            if align == "start" { Align::Start } else { Align::Center },
        );
        load_written("fuzz-wav", "1_fuzz_0.wav", &bytes, |dir, _| {
            // A sound file of another class beside it: a folder of one class is refused as a
            // whole (naming the folder), which would hide what the loader says of the file.
            std::fs::write(dir.join("2_fuzz_0.wav"), apply_wav(&[])).unwrap();
            audio::load(&audio_cfg(dir, resample, length, align), dir, 1).map(drop)
        })?;
    }
}
