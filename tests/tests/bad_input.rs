//! The bad-input catalogue: every mistake a user can make in a pipeline file or a data
//! file gets an error naming the file and the place.

mod common;

use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{pipeline_file, repo_pipeline, scratch};

use common::{load_err, refused_on_data};

#[test]
fn malformed_toml_reports_line_and_column() {
    let src = repo_pipeline("fraud-small.toml").replace("seed = 7", "seed = = 7");
    let e = load_err("malformed", &src);
    assert!(e.starts_with(":6:8: "), "{e}");
}

#[test]
fn an_unknown_key_reports_line_column_and_the_keys_that_exist() {
    let src = repo_pipeline("fraud-small.toml").replace("epochs = 6", "epochs = 6\nepoch = 7");
    let e = load_err("unknown", &src);
    let line = src.lines().position(|l| l == "epoch = 7").unwrap() + 1;
    assert!(e.starts_with(&format!(":{line}:1: unknown field `epoch`")), "{e}");
    assert!(e.contains("`epochs`"), "{e}");
}

#[test]
fn a_wrong_type_and_a_dangling_reference_point_at_their_keys() {
    let src = repo_pipeline("fraud-small.toml").replace("lr = 3e-3", "lr = \"fast\"");
    let line = src.lines().position(|l| l == "lr = \"fast\"").unwrap() + 1;
    assert!(load_err("type", &src).starts_with(&format!(":{line}:6: ")));
    let src = repo_pipeline("fraud-small.toml")
        .replace("[harden]\nstrategy = \"pgd\"\nattack = \"pgd\"", "[harden]\nattack = \"pgd-typo\"");
    let e = load_err("dangling", &src);
    assert!(e.contains("no [[attack]] has id `pgd-typo`"), "{e}");
}

/// Runs fraud-small on `csv` (written to a scratch folder) and returns the error.
fn data_err(name: &str, csv: &str) -> String {
    refused_on_data(name, "fraud-small.toml", csv.as_bytes(), |src, data| {
        src.replace("data/creditcard-ulb/creditcard_ulb_sample.csv", data).replace("limit = 900\n", "")
    })
}

/// A small valid table in the ULB layout, with `edit` applied to data row `row`.
fn table(rows: usize, edit: impl Fn(usize, &mut Vec<String>)) -> String {
    let mut header: Vec<String> = vec!["Time".into()];
    header.extend((1..=28).map(|i| format!("V{i}")));
    header.extend(["Amount".into(), "Class".into()]);
    let mut out = header.join(",") + "\n";
    for r in 0..rows {
        let mut cells: Vec<String> = vec![format!("{}", r * 10)];
        cells.extend((1..=28).map(|i| format!("{:.3}", ((r * 7 + i) % 11) as f32 / 5.0 - 1.0)));
        cells.push(format!("{}.5", r % 50));
        cells.push(if r % 5 == 0 { "1".into() } else { "0".into() });
        edit(r + 1, &mut cells);
        out += &(cells.join(",") + "\n");
    }
    out
}

/// [`table`] of 40 rows with the cell of data row `row`, column `col` set to `value`.
fn table_with_cell(row: usize, col: usize, value: &str) -> String {
    table(40, |r, c| {
        if r == row {
            c[col] = value.to_owned()
        }
    })
}

#[test]
fn a_string_in_a_numeric_column_names_column_and_row() {
    let e = data_err("string", &table_with_cell(17, 29, "abc"));
    assert!(e.contains("Amount") && e.contains("row 17") && e.contains("abc"), "{e}");
}

#[test]
fn nan_and_empty_cells_name_column_and_row() {
    let e = data_err("nan", &table_with_cell(5, 3, "NaN"));
    assert!(e.contains("V3") && e.contains("row 5"), "{e}");
    let e = data_err("empty-cell", &table_with_cell(9, 1, ""));
    assert!(e.contains("V1") && e.contains("row 9"), "{e}");
}

#[test]
fn an_empty_file_a_single_class_and_a_missing_column_are_explained() {
    let e = data_err("empty", "");
    assert!(e.to_lowercase().contains("empty"), "{e}");
    let e = data_err("header-only", &table(0, |_, _| {}));
    assert!(e.contains("no data rows"), "{e}");
    let e = data_err("one-class", &table(40, |_, c| *c.last_mut().unwrap() = "0".into()));
    assert!(e.contains("Class") && e.contains("one class"), "{e}");
    let e = data_err("no-label", &table(40, |_, _| {}).replace("Class", "Klass"));
    assert!(e.contains("Class") && e.contains("Klass"), "names the missing column and the ones there: {e}");
}

#[test]
fn an_empty_file_or_one_without_pipeline_points_at_its_first_line() {
    for src in ["", "  \n\n", "[model]\nkind = \"mlp\"\n"] {
        let e = load_err("no-pipeline", src);
        assert!(e.starts_with(":1:1: missing `pipeline.modality`"), "{e:?} for {src:?}");
    }
}

#[test]
fn huge_names_and_keys_are_refused_in_a_few_lines() {
    let src = repo_pipeline("fraud-small.toml")
        .replace("name = \"fraud-small\"", &format!("name = \"{}\"", "x".repeat(100_000)));
    let e = load_err("long-name", &src);
    assert!(e.starts_with(":4:1: name ") && e.contains("255 bytes"), "{}", &e[..200.min(e.len())]);
    assert!(e.len() < 1000, "the name is not echoed whole: {} bytes", e.len());
    let src = format!("{}\n[report.{}]\nx = 1\n", repo_pipeline("fraud-small.toml"), "k".repeat(100_000));
    let e = load_err("long-key", &src);
    assert!(
        e.contains("unknown field") && e.contains("… (100003 characters) expected"),
        "{}",
        &e[..200.min(e.len())]
    );
    assert!(e.len() < 2000, "the key is not echoed whole: {} bytes", e.len());
}

#[test]
fn an_empty_class_list_is_refused_at_its_key() {
    let src = repo_pipeline("fraud-small.toml").replacen("classes = [1]", "classes = []", 1);
    let line = src.lines().position(|l| l == "classes = []").unwrap() + 1;
    let e = load_err("no-classes", &src);
    assert!(e.starts_with(&format!(":{line}:1: classes = [] attacks no example")), "{e}");
}

#[test]
fn an_audio_length_shorter_than_the_first_kernel_is_refused_before_reading_data() {
    let src = repo_pipeline("speech-small.toml").replace("length = 4000", "length = 10");
    let line = src.lines().position(|l| l == "length = 10").unwrap() + 1;
    let e = load_err("short-audio", &src);
    assert!(e.starts_with(&format!(":{line}:1: length = 10 samples is shorter than")), "{e}");
}

#[test]
fn an_unnamed_column_and_a_huge_cell_name_the_file_in_a_few_lines() {
    let e = data_err("unnamed", &table(40, |_, _| {}).replacen("Time,", ",", 1));
    assert!(e.contains("header (line 1): column 1 has no name"), "{e}");
    let e = data_err("huge-cell", &table_with_cell(3, 29, &"9".repeat(1 << 20)));
    assert!(e.contains("column \"Amount\", row 3") && e.contains("(1048576 characters)"), "{}", &e[..300]);
    assert!(e.len() < 1000, "the cell is not echoed whole: {} bytes", e.len());
}

/// speech-small on a folder of `files` (name, label tone) written as half-second wavs.
fn audio_err(name: &str, files: &[&str], extra: impl Fn(&std::path::Path)) -> String {
    let dir = scratch(name);
    let wavs = dir.join("wav");
    std::fs::create_dir_all(&wavs).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    for f in files {
        let mut w = hound::WavWriter::create(wavs.join(f), spec).unwrap();
        for i in 0..4000 {
            w.write_sample(((i as f32 * 0.3).sin() * 8000.0) as i16).unwrap();
        }
        w.finalize().unwrap();
    }
    extra(&wavs);
    let src = repo_pipeline("speech-small.toml")
        .replace("data/fsdd/recordings", &wavs.display().to_string())
        .replace("limit = 400\n", "")
        .replace("test_index = [0, 4]", "test_index = [0, 1]");
    let p = Pipeline::load(&pipeline_file(name, &src)).unwrap();
    let e = engine::run(&p, &RunOptions { out: Some(dir.join("run")), resume: false }).expect_err("refused");
    e.to_string()
}

#[test]
fn a_one_class_wav_folder_and_a_folder_named_like_a_wav_name_the_files() {
    let names: Vec<String> = (0..8).map(|i| format!("3_ann_{i}.wav")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let e = audio_err("one-class-wav", &names, |_| {});
    assert!(e.contains("one-class-wav") && e.contains("one class (3)"), "names the folder: {e}");
    let two: Vec<String> =
        (0..8).flat_map(|i| [format!("3_ann_{i}.wav"), format!("4_bob_{i}.wav")]).collect();
    let two: Vec<&str> = two.iter().map(String::as_str).collect();
    let e = audio_err("dir-wav", &two, |d| std::fs::create_dir(d.join("4_bob_9.wav")).unwrap());
    assert!(e.contains("4_bob_9.wav"), "a folder named like a wav is not silently left out: {e}");
}
