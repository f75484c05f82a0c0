//! `tempered`: run, validate and inspect adversarial-training pipelines.

mod score;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tempered_core::bench::{BenchOptions, BenchResult};
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_core::pipeline::span::{self, Key};
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
    Validate {
        pipeline: PathBuf,
        /// Check the pipeline as it would run on this device (`--device` of `run`).
        #[arg(long, value_enum)]
        device: Option<tempered_core::pipeline::DeviceKind>,
    },
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
        /// Train on this device instead of the pipeline's `[pipeline] device`.
        #[arg(long, value_enum)]
        device: Option<tempered_core::pipeline::DeviceKind>,
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
    say_to(&mut std::io::stdout().lock(), text)
}

fn say_to(out: &mut dyn std::io::Write, text: &str) -> bool {
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
            // The engine checks the plugins' settings too, before any training; done here
            // first, a refusal is said at the key of the file that set it, as `validate` says it.
            check_plugins(&pipeline, &p, false)?;
            if let Err(e) = tempered_core::interrupt::install() {
                tracing::warn!("Ctrl-C will not wait for the write in flight: {e}");
            }
            // A diverged phase is said at the `lr` to lower.
            let finished = engine::run(&p, &RunOptions { out, resume }).map_err(|e| match e.diverged() {
                Some(section) => at_key(&pipeline, &[Key::from(section), Key::from("lr")], e),
                None => e,
            })?;
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
        Command::Validate { pipeline, device } => {
            let mut p = Pipeline::load(&pipeline)?;
            if let Some(d) = device {
                p.set_device(d)?;
            }
            check_plugins(&pipeline, &p, true)?;
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
        Command::Bench { pipeline, attack, steps, epsilon, epochs, snr_db, json, export_rows, device } => {
            bench_args(epochs, steps, epsilon, snr_db)?;
            let mut p = Pipeline::load(&pipeline)?;
            if let Some(d) = device {
                p.set_device(d)?;
            }
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
            Ok(if list_plugins(&search) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Loads every attack's plugin and creates the attack with each set of params the run will
/// use, so the plugins check them. What a plugin refuses is said at the key of the file
/// that set it: a plugin's message ("invalid type: string, expected f32") names neither.
/// `all`: also the attacks a run would skip on error (`on_error = "skip"`), which `run`
/// leaves to the engine, so that it skips them as the pipeline asks.
fn check_plugins(file: &std::path::Path, p: &Pipeline, all: bool) -> Result<(), tempered_core::Error> {
    let attack_key = |i: usize, k: &str| vec![Key::from("attack"), Key::Index(i), Key::from(k)];
    for (i, a) in p.spec.attacks().iter().enumerate() {
        if !all && a.on_error == tempered_core::pipeline::OnError::Skip {
            continue;
        }
        let plugin = engine::load_plugin(p, a).map_err(|e| at_key(file, &attack_key(i, "plugin"), e))?;
        let params = serde_json::to_value(&a.params).expect("TOML is JSON");
        let created = plugin.create(&a.attack, &params, &p.base_dir);
        drop(created.map_err(|e| at_key(file, &attack_key(i, "params"), e))?);
        engine::check_attack(p, a, &plugin).map_err(|e| {
            let key = checked_key(p, i, &e.to_string());
            at_key(file, &key, e)
        })?;
    }
    Ok(())
}

/// `e` at `file:line:col` of the key `path` (or the closest table the file has).
fn at_key(file: &std::path::Path, path: &[Key], e: tempered_core::Error) -> tempered_core::Error {
    let Ok(src) = std::fs::read_to_string(file) else { return e };
    tempered_core::Error::Config(span::at(file, &src, span::offset_of(&src, path), &e.to_string()))
}

/// The key behind a refusal of `engine::check_attack` for attack `i`, which names the
/// section whose settings the plugin refused: a sweep of that attack, `[harden]` or
/// `[tradeoff]`; else the `[[attack]]` itself.
fn checked_key(p: &Pipeline, i: usize, msg: &str) -> Vec<Key> {
    let id = &p.spec.attacks()[i].id;
    if msg.starts_with("[[evaluate.sweep]]") {
        let sweeps = &p.spec.evaluate().sweeps;
        let j = sweeps.iter().position(|s| &s.attack == id && msg.contains(&format!("sets `{} = ", s.param)));
        if let Some(j) = j.or_else(|| sweeps.iter().position(|s| &s.attack == id)) {
            return vec![Key::from("evaluate"), Key::from("sweep"), Key::Index(j), Key::from("param")];
        }
    } else if msg.starts_with("[harden]") {
        return vec![Key::from("harden"), Key::from("params")];
    } else if msg.starts_with("[tradeoff]") {
        return vec![Key::from("tradeoff"), Key::from("param")];
    }
    vec![Key::from("attack"), Key::Index(i)]
}

/// Refuses what would time nothing: zero epochs divide by zero (a NaN throughput), zero
/// steps make no adversarial example, and a non-finite budget reaches the plugin as `null`.
fn bench_args(epochs: usize, steps: u32, epsilon: f64, snr_db: f64) -> Result<(), tempered_core::Error> {
    let refuse = |msg: String| Err(tempered_core::Error::invalid(msg));
    if epochs == 0 {
        return refuse("--epochs 0: the bench times epochs, so it needs at least one".into());
    }
    if steps == 0 {
        return refuse(
            "--steps 0: a PGD-0 epoch makes no adversarial example to time; give at least 1".into(),
        );
    }
    for (flag, v) in [("--epsilon", epsilon), ("--snr-db", snr_db)] {
        if !v.is_finite() {
            return refuse(format!("{flag} {v}: the attack budget must be a finite number"));
        }
    }
    Ok(())
}

/// Prints the listing; false when standard output could not take it.
fn list_plugins(search: &SearchPath) -> bool {
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
    say(&s)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A standard output that fails every write with `kind`.
    struct Failing(std::io::ErrorKind);

    impl std::io::Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_device_fails_the_command_and_a_closed_pipe_does_not() {
        assert!(!say_to(&mut Failing(std::io::ErrorKind::StorageFull), "listing\n"), "`> /dev/full`");
        assert!(say_to(&mut Failing(std::io::ErrorKind::BrokenPipe), "listing\n"), "`| head -1`");
    }

    #[test]
    fn bench_refuses_zero_epochs_zero_steps_and_non_finite_budgets() {
        assert!(bench_args(3, 10, 0.1, 30.0).is_ok());
        let e = |r: Result<(), tempered_core::Error>| r.unwrap_err().to_string();
        assert!(e(bench_args(0, 10, 0.1, 30.0)).starts_with("--epochs 0"));
        assert!(e(bench_args(3, 0, 0.1, 30.0)).starts_with("--steps 0"));
        assert!(e(bench_args(3, 10, f64::NAN, 30.0)).starts_with("--epsilon NaN"));
        assert!(e(bench_args(3, 10, 0.1, f64::INFINITY)).starts_with("--snr-db inf"));
    }

    #[test]
    fn validate_puts_a_plugins_refusal_at_the_attacks_params() {
        let dir = std::env::temp_dir().join(format!("tempered-main-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.toml");
        std::fs::write(&file, "[pipeline]\nname = \"x\"\n\n[[attack]]\nid = \"a\"\n\n[[attack]]\nid = \"b\"\nparams = { epsilon = \"big\" }\n").unwrap();
        let path = [Key::from("attack"), Key::Index(1), Key::from("params")];
        let e = at_key(&file, &path, tempered_core::Error::plugin("tabular", "invalid type: string \"big\""));
        assert_eq!(
            e.to_string(),
            format!("{}:9:1: plugin `tabular`: invalid type: string \"big\"", file.display())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn validate_says_which_sweep_or_section_a_plugin_refused() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/fraud-small.toml");
        let p = Pipeline::load(&file).unwrap();
        let refused = tempered_core::Error::plugin("tabular", "unknown field")
            .context("[[evaluate.sweep]] of attack `pgd` sets `epsilom = 0.25`");
        let key = checked_key(&p, 0, &refused.to_string());
        assert_eq!(key, [Key::from("evaluate"), Key::from("sweep"), Key::Index(0), Key::from("param")]);
        let src = std::fs::read_to_string(&file).unwrap();
        let line = src.lines().position(|l| l.starts_with("param = \"epsilon\"")).unwrap() + 1;
        let e = at_key(&file, &key, refused).to_string();
        assert!(e.starts_with(&format!("{}:{line}:1: [[evaluate.sweep]]", file.display())), "{e}");
        assert_eq!(
            checked_key(&p, 0, "[harden] trains with attack `pgd`"),
            [Key::from("harden"), Key::from("params")]
        );
        assert_eq!(checked_key(&p, 1, "something else"), [Key::from("attack"), Key::Index(1)]);
    }
}
