//! `txgen`: write a synthetic card-transaction table as CSV. See `data/transactions/README.md`.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use tempered_txgen::{Config, Summary, rows, write_csv};

/// Write a synthetic card-transaction table (40 columns, fraud label `is_fraud`) as CSV.
/// The same arguments always give the same bytes.
#[derive(Parser, Debug)]
#[command(name = "txgen", version)]
struct Args {
    /// Number of transactions (rows after the header).
    #[arg(long)]
    rows: u64,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Target fraction of fraudulent rows (0.001 to 0.2).
    #[arg(long, default_value_t = 0.03)]
    fraud_rate: f64,
    /// Output CSV file, or `-` for standard output.
    #[arg(long)]
    out: PathBuf,
    /// Fraction of rows in which each of device_type, minutes_since_last_tx and
    /// distance_from_home_km is empty (0 to 0.5).
    #[arg(long, default_value_t = 0.02)]
    missing: f64,
    /// Days covered, starting 2024-01-01 (1 to 3650).
    #[arg(long, default_value_t = 30)]
    days: u32,
}

enum Error {
    Args(String),
    Create(PathBuf, io::Error),
    Write(String, io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Args(m) => write!(f, "{m}"),
            Error::Create(p, e) => write!(f, "cannot create {}: {e}", p.display()),
            Error::Write(p, e) => write!(f, "cannot write {p}: {e}"),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stops early (`txgen ... --out - | head`) is not an error.
        Err(Error::Write(_, e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("txgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Error> {
    let cfg = Config {
        rows: args.rows,
        seed: args.seed,
        fraud_rate: args.fraud_rate,
        missing: args.missing,
        days: args.days,
    };
    let start = Instant::now();
    let rows = rows(&cfg).map_err(Error::Args)?;
    let summary = if args.out == Path::new("-") {
        let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
        write_csv(rows, &mut out).map_err(|e| Error::Write("standard output".into(), e))?
    } else {
        write_file(&args.out, rows)?
    };
    let secs = start.elapsed().as_secs_f64();
    let Summary { rows: n, frauds } = summary;
    eprintln!(
        "txgen: {n} rows, {frauds} frauds ({:.3} %), {secs:.2} s ({:.0} rows/s){}",
        100.0 * frauds as f64 / n as f64,
        n as f64 / secs.max(1e-9),
        if args.out == Path::new("-") { String::new() } else { format!(", {}", args.out.display()) },
    );
    Ok(())
}

/// Writes next to the target and renames, so an interrupted run never leaves a truncated
/// table under the real name.
fn write_file(path: &Path, rows: tempered_txgen::Rows) -> Result<Summary, Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp).map_err(|e| Error::Create(path.to_owned(), e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = write_csv(rows, &mut out)
        .and_then(|s| out.into_inner().map_err(|e| e.into_error())?.sync_all().map(|()| s))
        .and_then(|s| fs::rename(&tmp, path).map(|()| s));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::Write(path.display().to_string(), e)
    })
}
