//! `tempered score`: a run's model and its saved encoding score a file of new rows.
//!
//! The run folder gives everything: `config.toml` (the model's architecture),
//! `encoding.json` (how the file's columns became features, with the train split's
//! standardisation), `checkpoints/{clean,hardened}.safetensors` (the weights, standardisation
//! included, exactly as the run evaluated them) and, when present, `metrics.json` (the
//! operating threshold). Rows are read, encoded, predicted and written a chunk at a time, so
//! a file larger than memory can be scored; the output appears whole or not at all.
//!
//! Here the whole command; `run_folder` reads what the run left (encoding, checkpoint,
//! threshold), `reader` and `record` cut the input into chunks of rows, `encode` turns a
//! chunk into the model's features and `writer` writes the scores.

mod encode;
mod run_folder;
mod writer;

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::Device;
use polars::prelude::{Column, DataFrame, IntoColumn, NamedFrom, Series};
use tempered_core::data::Examples;
use tempered_core::data::table::Format;
use tempered_core::data::table::chunks::{CHUNK_ROWS, Reader};
use tempered_core::data::tabular::ColumnEncoding;
use tempered_core::model::{self, Mlp};
use tempered_core::pipeline::{Pipeline, Spec};
use tempered_core::progress::Progress;
use tempered_core::{Error, Result, evaluate};

use encode::encode;
use run_folder::{checkpoint, read_encoding, threshold};
use writer::Writer;

/// Rows per forward pass, as the engine's own evaluation uses.
const PREDICT_BATCH: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    Clean,
    Hardened,
}

impl ModelChoice {
    fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Hardened => "hardened",
        }
    }

    /// The `clean.<phase>` of `metrics.json` that measured this model.
    fn phase(self) -> &'static str {
        match self {
            Self::Clean => "before",
            Self::Hardened => "after",
        }
    }
}

pub struct Options {
    pub run: PathBuf,
    pub input: PathBuf,
    pub out: PathBuf,
    pub model: Option<ModelChoice>,
    pub threshold: Option<f64>,
}

pub struct Scored {
    pub rows: usize,
    pub out: PathBuf,
}

fn format_of(path: &Path, what: &str) -> Result<Format> {
    tempered_core::data::table::format_of(path)
        .ok_or_else(|| Error::data(path, format!("unsupported {what} file type; expected .csv or .parquet")))
}

/// Whether `a` and `b` are one file (same path, a link, a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (a.metadata(), b.metadata()) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

pub fn score(opts: &Options) -> Result<Scored> {
    if same_file(&opts.input, &opts.out) {
        // The output replaces its target whole once written: the rows would be lost.
        return Err(Error::data(
            &opts.out,
            "--out is the input file: the scores would replace the rows they come from; choose another --out",
        ));
    }
    let run = &opts.run;
    let config = run.join("config.toml");
    let src = std::fs::read_to_string(&config).map_err(|e| {
        Error::io(&config, e).context(format!(
            "{}: not a run folder (give the folder `tempered run --out` wrote)",
            run.display()
        ))
    })?;
    let pipeline = Pipeline::parse(&config, &src)?;
    let spec = match &pipeline.spec {
        Spec::Tabular(s) => s,
        other => {
            return Err(Error::data(
                run,
                format!("a {} run; `tempered score` scores tabular runs only", other.modality()),
            ));
        }
    };
    let encoding = read_encoding(&run.join("encoding.json"))?;
    let (choice, checkpoint) = checkpoint(run, opts.model)?;
    let n_classes = encoding.classes.len();
    let threshold = threshold(run, choice, opts.threshold, n_classes)?;
    // The first line says which decision rule the output holds, and why.
    match &threshold {
        Some((t, from)) => tracing::info!(
            "threshold {t} ({from}); scoring {} with the {} model of {}",
            opts.input.display(),
            choice.name(),
            run.display()
        ),
        None => tracing::info!(
            "no threshold ({n_classes} classes: decision is the most probable class); scoring {} with the {} model of {}",
            opts.input.display(),
            choice.name(),
            run.display()
        ),
    }

    let mean: Vec<f32> = encoding.features.iter().map(|f| f.mean).collect();
    let std: Vec<f32> = encoding.features.iter().map(|f| f.std()).collect();
    // The seed only initialises weights the checkpoint then replaces, standardisation too.
    let mlp = Mlp::new(&spec.model, &mean, &std, n_classes, 0, &Device::Cpu)?;
    model::load(&mlp, &checkpoint)
        .map_err(|e| e.context(format!("{} model {}", choice.name(), checkpoint.display())))?;

    format_of(&opts.input, "input")?;
    let out_format = format_of(&opts.out, "output")?;
    let mut reader = Reader::open(&opts.input, CHUNK_ROWS)?;
    let columns = reader.columns().to_vec();
    let needed: Vec<&str> = encoding.columns.iter().map(ColumnEncoding::column).collect();
    let missing: Vec<&str> = needed.iter().copied().filter(|c| !columns.iter().any(|k| k == c)).collect();
    if !missing.is_empty() {
        return Err(Error::data(
            &opts.input,
            format!(
                "column(s) {} not found: the model's encoding needs them; the file has columns: {}",
                quoted(&missing),
                columns.join(", ")
            ),
        ));
    }
    let needed_set: HashSet<&str> = needed.iter().copied().collect();
    let passthrough: Vec<String> =
        columns.iter().filter(|c| !needed_set.contains(c.as_str())).cloned().collect();
    let outputs: Vec<String> = match n_classes {
        2 => vec!["probability".to_owned()],
        _ => encoding.classes.iter().map(|c| format!("p_{c}")).collect(),
    };
    if let Some(c) = passthrough.iter().find(|c| outputs.contains(c) || *c == "decision") {
        return Err(Error::data(
            &opts.input,
            format!("column {c:?} would clash with the score column of that name: rename it in the input"),
        ));
    }

    let out_dir = opts.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !out_dir.is_dir() {
        return Err(Error::invalid(format!(
            "--out {}: the folder {} does not exist",
            opts.out.display(),
            out_dir.display()
        )));
    }
    let mut rows = 0;
    tempered_core::files::write_with(&opts.out, |tmp| {
        let file = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut writer = Writer::new(file, out_format);
        let mut progress = Progress::new(&format!("scoring ({})", reader.progress_unit()), reader.total());
        while let Some(chunk) = reader.next_chunk()? {
            let x = encode(&encoding, &chunk.table, &opts.input)?;
            let (pred, probs) = evaluate::predict(
                &mlp,
                &Examples::Dense { data: x, width: encoding.features.len() },
                PREDICT_BATCH,
            )?;
            let mut cols: Vec<Column> = passthrough
                .iter()
                .map(|c| chunk.table.df().column(c).cloned())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| {
                    Error::external(format!("{}: passing columns through", opts.input.display()), e)
                })?;
            let decision = match &threshold {
                Some((t, _)) => {
                    let p: Vec<f32> = probs.iter().map(|p| p[1]).collect();
                    let d: Vec<i32> = p.iter().map(|&p| i32::from(p >= *t as f32)).collect();
                    cols.push(Series::new("probability".into(), p).into_column());
                    Series::new("decision".into(), d).into_column()
                }
                None => {
                    for (k, name) in outputs.iter().enumerate() {
                        let p: Vec<f32> = probs.iter().map(|p| p[k]).collect();
                        cols.push(Series::new(name.as_str().into(), p).into_column());
                    }
                    let d: Vec<&str> = pred.iter().map(|&c| encoding.classes[c as usize].as_str()).collect();
                    Series::new("decision".into(), d).into_column()
                }
            };
            cols.push(decision);
            let mut out = DataFrame::new(chunk.table.height(), cols).map_err(|e| {
                Error::external(format!("{}: cannot assemble the scores", opts.out.display()), e)
            })?;
            out.rechunk_mut();
            writer
                .write(&out)
                .map_err(|e| Error::external(format!("{}: cannot write", opts.out.display()), e))?;
            rows += out.height();
            progress.inc(chunk.progress);
        }
        progress.finish();
        if rows == 0 {
            return Err(Error::data(&opts.input, "no data rows (only a header)"));
        }
        writer.finish().map_err(|e| Error::external(format!("{}: cannot write", opts.out.display()), e))
    })?;
    Ok(Scored { rows, out: opts.out.clone() })
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_written_over_their_own_input_are_refused_before_anything_is_read() {
        let dir = std::env::temp_dir().join(format!("tempered-score-same-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rows = dir.join("rows.csv");
        std::fs::write(&rows, "a,b\n1,2\n").unwrap();
        let opts = |out: PathBuf| Options {
            run: dir.join("no-run"),
            input: rows.clone(),
            out,
            model: None,
            threshold: None,
        };
        let e = score(&opts(rows.clone())).err().expect("refused").to_string();
        assert!(e.contains("rows.csv: --out is the input file"), "{e}");
        std::fs::hard_link(&rows, dir.join("link.csv")).unwrap();
        let e = score(&opts(dir.join("link.csv"))).err().expect("refused").to_string();
        assert!(e.contains("--out is the input file"), "a hard link is the same file: {e}");
        assert_eq!(std::fs::read_to_string(&rows).unwrap(), "a,b\n1,2\n", "the rows are untouched");
        // Another file goes on to the run folder (absent here).
        let e = score(&opts(dir.join("scores.csv"))).err().expect("no run").to_string();
        assert!(e.contains("not a run folder"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
