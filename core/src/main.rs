//! `tempered`: run, validate and inspect adversarial-training pipelines.

mod score;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tempered_core::bench::{BenchOptions, BenchResult};
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_core::plugin_host::{FolderState, SearchPath, folder_state, format_abi};
use tempered_core::report;

#[derive(Parser)]
#[command(
    name = "tempered",
    version,
    about = "Adversarial training pipelines: train → attack → harden → attack again → report"
)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline end to end.
    Run {
        pipeline: PathBuf,
        /// Run directory (default: <out_dir>/<name>/<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in --out from its checkpoints.
        #[arg(long, requires = "out")]
        resume: bool,
        /// Train and attack on this device instead of the pipeline's `[pipeline] device`.
        #[arg(long, value_enum)]
        device: Option<tempered_core::pipeline::DeviceKind>,
    },
    /// Check a pipeline file (and that its plugins load) without running it.
    Validate { pipeline: PathBuf },
    /// Measure training throughput: clean epochs vs adversarial (PGD) epochs, in one run.
    Bench {
        /// The pipeline whose data, model, training settings and attack are used.
        #[arg(long, default_value = "pipelines/fraud.toml")]
        pipeline: PathBuf,
        /// The [[attack]] id that makes the adversarial examples.
        #[arg(long, default_value = "pgd")]
        attack: String,
        #[arg(long, default_value_t = 10)]
        steps: u32,
        #[arg(long, default_value_t = 0.1)]
        epsilon: f64,
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// Pipelines whose attacks take an SNR budget in dB (audio, e.g. pipelines/speech.toml):
        /// the attack's `snr_db` (replaces --epsilon there).
        #[arg(long, default_value_t = 30.0)]
        snr_db: f64,
        /// Print the result as one JSON object instead of the table (for scripts that
        /// compare against a reference, benches/pytorch).
        #[arg(long)]
        json: bool,
        /// Tabular pipelines: write the training rows, columns, initial weights and
        /// settings the bench uses to FILE as JSON, and exit without timing anything
        /// (what benches/pytorch trains on).
        #[arg(long, value_name = "FILE", conflicts_with = "json")]
        export_rows: Option<PathBuf>,
    },
    /// Score a table of new rows with a tabular run's model and its saved encoding:
    /// every column the model does not read is copied through, then `probability` and
    /// `decision` (more than two classes: `p_<class>` per class, and the most probable class).
    Score {
        /// The run folder `tempered run --out` wrote.
        run: PathBuf,
        /// The rows to score, .csv or .parquet, with the columns the run's pipeline read.
        input: PathBuf,
        /// Where the scores go, .csv or .parquet (written whole or not at all).
        #[arg(long)]
        out: PathBuf,
        /// Which of the run's models scores (default: hardened when the run hardened, else clean).
        #[arg(long, value_enum)]
        model: Option<score::ModelChoice>,
        /// `decision` is 1 where `probability >= threshold` (default: the run's operating
        /// threshold from metrics.json when it has one, else 0.5).
        #[arg(long)]
        threshold: Option<f64>,
    },
    /// List the plugins found, their ABI versions and attacks, and where they were looked for.
    Plugins {
        /// Also search the folders of this pipeline's `[plugins] search_path`.
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).init();
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout without the panic `println!` gives on a closed pipe (`| head -1`) or a
/// full device (`> /dev/full`): a reader that went away is not an error; a device that
/// cannot take the output is said once on stderr.
fn say(text: &str) -> bool {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            false
        }
    }
}

macro_rules! sayln {
    ($($arg:tt)*) => {
        say(&format!("{}\n", format_args!($($arg)*)))
    };
}

fn execute(command: Command) -> Result<ExitCode, tempered_core::Error> {
    match command {
        Command::Run { pipeline, out, resume, device } => {
            let mut p = Pipeline::load(&pipeline)?;
            if let Some(d) = device {
                p.set_device(d)?;
            }
            if let Err(e) = tempered_core::interrupt::install() {
                tracing::warn!("Ctrl-C will not wait for the write in flight: {e}");
            }
            let finished = engine::run(&p, &RunOptions { out, resume })?;
            let printed = sayln!("{}", report::summary(&finished.metrics))
                & sayln!("Run saved in {}", finished.dir.display());
            let failed = report::failed(&finished.metrics);
            if !failed.is_empty() {
                eprintln!(
                    "error: {} check(s) failed: the run's numbers are not a result (see the top of {})",
                    failed.len(),
                    finished.dir.join("report.md").display()
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(if printed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Validate { pipeline } => {
            let p = Pipeline::load(&pipeline)?;
            for a in p.spec.attacks() {
                let plugin = engine::load_plugin(&p, a)?;
                let params = serde_json::to_value(&a.params).expect("TOML is JSON");
                // Creating the attack makes the plugin check its params, too.
                drop(plugin.create(&a.attack, &params, &p.base_dir)?);
                engine::check_attack(&p, a, &plugin)?;
            }
            let printed = sayln!(
                "{}: ok ({} pipeline `{}`, {} attack(s), seed {})",
                pipeline.display(),
                p.spec.modality(),
                p.name(),
                p.spec.attacks().len(),
                p.seed()
            );
            Ok(if printed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Bench { pipeline, attack, steps, epsilon, epochs, snr_db, json, export_rows } => {
            let p = Pipeline::load(&pipeline)?;
            let budgets = [("epsilon".to_owned(), epsilon), ("snr_db".to_owned(), snr_db)].into();
            let opts = BenchOptions { attack, steps, budgets, epochs };
            if let Some(file) = export_rows {
                let rows = tempered_core::bench::export_rows(&p, &opts, &file)?;
                let printed = sayln!("Wrote {rows} training rows to {}", file.display());
                return Ok(if printed { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            let r = tempered_core::bench::run(&p, &opts)?;
            let printed = if json {
                sayln!("{}", r.to_json(&pipeline, epochs))
            } else {
                print_bench(&pipeline, &r, epochs)
            };
            Ok(if printed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Score { run, input, out, model, threshold } => {
            let s = score::score(&score::Options { run, input, out, model, threshold })?;
            let printed = sayln!("Scored {} rows into {}", s.rows, s.out.display());
            Ok(if printed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Plugins { pipeline } => {
            let search = match pipeline {
                Some(f) => engine::search_path(&Pipeline::load(&f)?),
                None => SearchPath::new(&[]),
            };
            list_plugins(&search);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list_plugins(search: &SearchPath) {
    use std::fmt::Write as _;
    let mut s = String::from("Searched, in order:\n");
    for d in &search.dirs {
        // A folder that is there but cannot be read says so: it is not "missing".
        match folder_state(d) {
            FolderState::Listable => {
                let _ = writeln!(s, "  {}", d.display());
            }
            problem => {
                let _ = writeln!(s, "  {}  ({problem})", d.display());
            }
        }
    }
    let found = search.discover();
    if found.is_empty() {
        s.push_str("\nNo plugins found. `cargo build --release` at the workspace root builds the first-party ones.\n");
    } else {
        s.push('\n');
    }
    for (path, result) in found {
        match result {
            Ok(p) => {
                let abi = format_abi(p.abi_version);
                let _ =
                    writeln!(s, "{} {} ({}, ABI {abi})  {}", p.name, p.version, p.modality, path.display());
                for a in &p.attacks {
                    let _ = writeln!(s, "    {:<14} {}", a.name, a.description);
                }
            }
            // Loading errors are labelled with the path already: say it once.
            Err(tempered_core::Error::Plugin { plugin, msg }) if plugin == path.display().to_string() => {
                let _ = writeln!(s, "(unusable) {plugin}: {msg}");
            }
            Err(e) => {
                let _ = writeln!(s, "(unusable) {}: {e}", path.display());
            }
        }
    }
    // A closed pipe (`tempered plugins | head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), s.as_bytes());
}

fn print_bench(file: &std::path::Path, r: &BenchResult, epochs: usize) -> bool {
    let mut ok = sayln!(
        "tempered bench · {} · {} parameters · {} values per example · batch {} · {} train examples · {} thread(s)",
        file.display(),
        r.params,
        r.width,
        r.batch_size,
        r.train_examples,
        r.threads
    );
    ok &= sayln!("  adversarial examples: {}", r.attack);
    ok &= sayln!("  clean epoch        {:>10.1} examples/s", r.clean_per_sec);
    ok &= sayln!("  PGD-{} epoch       {:>10.1} examples/s", r.steps, r.adversarial_per_sec);
    // Each pipeline's goal for the ratio lives with its numbers in BENCHMARKS.md.
    ok &= sayln!("  ratio clean/PGD    {:>10.2}", r.ratio());
    ok &= match r.test.pr_auc {
        Some(pr_auc) => sayln!("  test PR-AUC        {pr_auc:>10.3}  (after {epochs} clean epochs)"),
        None => sayln!("  test accuracy      {:>10.3}  (after {epochs} clean epochs)", r.test.accuracy),
    };
    if let Some((auto, manual)) = r.input_grad_micros {
        ok &= sayln!(
            "  input gradient, 256 rows: autograd {auto:.0} µs, hand-written {manual:.0} µs ({:.1}×)",
            auto / manual
        );
    }
    ok
}
