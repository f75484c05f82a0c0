//! The promises `data/transactions/README.md` makes about a generated table, checked on the
//! CSV text itself (what a downstream loader sees), not on the generator's structs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use tempered_txgen::{COLUMNS, Config, MAYBE_MISSING, rows, write_csv};

fn config(rows: u64, seed: u64, fraud_rate: f64) -> Config {
    Config { rows, seed, fraud_rate, ..Config::default() }
}

fn csv(cfg: &Config) -> String {
    let mut out = Vec::new();
    write_csv(rows(cfg).unwrap(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// One table shared by the tests that need many rows (built once; tests run in parallel).
/// 100,000 rows at the top of the documented fraud-rate range, where a single column is most
/// likely to give the label away.
fn big() -> &'static str {
    static BIG: OnceLock<String> = OnceLock::new();
    BIG.get_or_init(|| csv(&config(100_000, 11, 0.06)))
}

fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().skip(1).map(|l| l.split(',').collect())
}

fn col(name: &str) -> usize {
    COLUMNS.iter().position(|c| *c == name).unwrap()
}

/// A 2-decimal string as integer cents, refusing any other shape.
fn cents(s: &str) -> i64 {
    let (units, frac) = s.split_once('.').unwrap_or_else(|| panic!("no decimals in {s:?}"));
    assert_eq!(frac.len(), 2, "{s:?}");
    let negative = units.starts_with('-');
    let v = units.trim_start_matches('-').parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap();
    if negative { -v } else { v }
}

fn rate(labels: &[bool]) -> f64 {
    labels.iter().filter(|&&f| f).count() as f64 / labels.len() as f64
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = csv(&config(3000, 7, 0.03));
    assert_eq!(a, csv(&config(3000, 7, 0.03)));
    assert_ne!(a, csv(&config(3000, 8, 0.03)));
}

#[test]
fn fraud_rate_changes_labels_only() {
    let low = csv(&config(3000, 5, 0.01));
    let high = csv(&config(3000, 5, 0.06));
    let (mut l, mut h) = (0, 0);
    for (a, b) in low.lines().zip(high.lines()).skip(1) {
        assert_eq!(a[..a.len() - 1], b[..b.len() - 1]);
        l += usize::from(a.ends_with('1'));
        h += usize::from(b.ends_with('1'));
    }
    assert!(h > 2 * l, "{l} frauds at 1 %, {h} at 6 %");
}

#[test]
fn header_and_field_counts() {
    let text = big();
    assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
    assert_eq!(COLUMNS.len(), 40);
    let mut n = 0;
    for r in records(text) {
        assert_eq!(r.len(), COLUMNS.len(), "{r:?}");
        n += 1;
    }
    assert_eq!(n, 100_000);
    assert!(text.ends_with('\n'));
}

#[test]
fn balance_after_is_balance_before_minus_amount_exactly() {
    let (a, before, after) = (col("amount"), col("balance_before"), col("balance_after"));
    for r in records(big()) {
        let amount = cents(r[a]);
        assert!(amount > 0, "{r:?}");
        assert_eq!(cents(r[after]), cents(r[before]) - amount, "{r:?}");
    }
}

#[test]
fn fraud_rate_is_hit() {
    let labels: Vec<bool> = records(big()).map(|r| r[col("is_fraud")] == "1").collect();
    let realised = rate(&labels);
    assert!((realised / 0.06 - 1.0).abs() < 0.15, "target 0.06, got {realised}");

    let labels: Vec<bool> = rows(&config(100_000, 3, 0.01)).unwrap().map(|r| r.is_fraud).collect();
    let realised = rate(&labels);
    assert!((realised / 0.01 - 1.0).abs() < 0.15, "target 0.01, got {realised}");
}

#[test]
fn missing_fraction_as_asked() {
    let mut empty = [0u32; 40];
    for r in records(big()) {
        for (i, f) in r.iter().enumerate() {
            empty[i] += u32::from(f.is_empty());
        }
    }
    for (name, empty) in COLUMNS.iter().zip(empty) {
        if MAYBE_MISSING.contains(name) {
            assert!((f64::from(empty) / 100_000.0 - 0.02).abs() < 0.004, "{name}: {empty} empty");
        } else {
            assert_eq!(empty, 0, "{name} has empty cells");
        }
    }
    let none = csv(&Config { missing: 0.0, ..config(5000, 1, 0.03) });
    assert!(records(&none).all(|r| r.iter().all(|f| !f.is_empty())));
    let many = csv(&Config { missing: 0.1, ..config(5000, 1, 0.03) });
    let empty = records(&many).filter(|r| r[col("device_type")].is_empty()).count() as f64;
    assert!((empty / 5000.0 - 0.1).abs() < 0.02, "{empty} of 5000 empty at 10 %");
}

/// If the label were a function of one column, some value of it (or, for a number, some
/// twentieth of its sorted range) would be all fraud. Here none is even half fraud.
#[test]
fn no_single_column_decides_fraud() {
    let label = col("is_fraud");
    let recs: Vec<Vec<&str>> = records(big()).collect();
    for (i, name) in COLUMNS.iter().enumerate() {
        if ["transaction_id", "timestamp", "is_fraud"].contains(name) {
            continue;
        }
        let numeric = recs.iter().all(|r| r[i].is_empty() || r[i].parse::<f64>().is_ok());
        let mut groups: HashMap<String, Vec<bool>> = HashMap::new();
        let mut by_value: HashMap<&str, Vec<bool>> = HashMap::new();
        if numeric {
            let mut vals: Vec<(f64, bool)> = recs
                .iter()
                .filter(|r| !r[i].is_empty())
                .map(|r| (r[i].parse().unwrap(), r[label] == "1"))
                .collect();
            vals.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (k, chunk) in vals.chunks(vals.len().div_ceil(20)).enumerate() {
                groups.insert(format!("bin {k} from {}", chunk[0].0), chunk.iter().map(|v| v.1).collect());
            }
        } else {
            for r in &recs {
                by_value.entry(r[i]).or_default().push(r[label] == "1");
            }
            groups.extend(by_value.into_iter().map(|(k, v)| (k.to_string(), v)));
        }
        for (value, labels) in groups {
            if labels.len() >= 200 {
                let rate = rate(&labels);
                assert!(rate < 0.5, "{name} = {value}: fraud rate {rate} over {} rows", labels.len());
            }
        }
    }
}

/// The documented interaction: night-time card-not-present digital goods or gambling is far
/// riskier than night, card-not-present or those categories are on their own.
#[test]
fn fraud_needs_interactions() {
    let (hour, cp, cat, label) =
        (col("hour_of_day"), col("card_present"), col("merchant_category"), col("is_fraud"));
    let mut groups: HashMap<&str, Vec<bool>> = HashMap::new();
    for r in records(big()) {
        let night = r[hour].parse::<u32>().unwrap() < 6;
        let cnp = r[cp] == "No";
        let digital = r[cat] == "digital_goods" || r[cat] == "gambling";
        let fraud = r[label] == "1";
        for (on, key) in
            [(night, "night"), (cnp, "cnp"), (digital, "digital"), (night && cnp && digital, "all")]
        {
            if on {
                groups.entry(key).or_default().push(fraud);
            }
        }
    }
    let all = rate(&groups["all"]);
    for key in ["night", "cnp", "digital"] {
        let single = rate(&groups[key]);
        assert!(all > 1.5 * single, "night x cnp x digital {all} vs {key} alone {single}");
    }
}

#[test]
fn timestamps_increase_with_daily_seasonality() {
    let (ts, hour) = (col("timestamp"), col("hour_of_day"));
    let mut last = "";
    let mut per_hour = [0u32; 24];
    for r in records(big()) {
        let t = r[ts];
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[10..11], "T");
        // ISO 8601 with fixed widths sorts as text in time order.
        assert!(t >= last, "{t} after {last}");
        assert_eq!(t[11..13].parse::<usize>().unwrap(), r[hour].parse::<usize>().unwrap());
        per_hour[r[hour].parse::<usize>().unwrap()] += 1;
        last = t;
    }
    assert!(big().lines().nth(1).unwrap().contains(",2024-01-01T"));
    assert!(last < "2024-01-31T00:00:00", "30 days from 2024-01-01, last {last}");
    let small_hours: u32 = per_hour[2..5].iter().sum();
    let lunch: u32 = per_hour[12..15].iter().sum();
    assert!(small_hours * 5 < lunch, "2-5 a.m. {small_hours}, noon-3 p.m. {lunch}");
}

fn txgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_txgen"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("txgen-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn cli_file_equals_stdout_and_library() {
    let dir = scratch("cli");
    let path = dir.join("t.csv");
    let args = ["--rows", "2000", "--seed", "9", "--fraud-rate", "0.02"];
    let out = txgen().args(args).arg("--out").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing on stdout when writing a file");
    let summary = String::from_utf8(out.stderr).unwrap();
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(summary.contains("2000 rows"), "{summary}");
    let file = std::fs::read_to_string(&path).unwrap();
    let piped = txgen().args(args).args(["--out", "-"]).output().unwrap();
    assert_eq!(file.as_bytes(), piped.stdout.as_slice());
    assert_eq!(file, csv(&config(2000, 9, 0.02)));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no .partial file left behind");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cli_errors_name_the_problem() {
    let dir = scratch("errors");
    let path = dir.join("no/such/dir/t.csv");
    let out = txgen().args(["--rows", "10", "--out"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("cannot create") && err.contains(&*path.to_string_lossy()), "{err}");

    for (flag, value) in [("--fraud-rate", "0.9"), ("--missing", "0.7"), ("--days", "0"), ("--rows", "0")] {
        let mut args = vec!["--rows", "10", "--out", "-"];
        if flag == "--rows" {
            args = vec!["--out", "-"];
        }
        let out = txgen().args(&args).args([flag, value]).output().unwrap();
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
    let out = txgen().args(["--rows", "ten", "--out", "-"]).output().unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(dir).unwrap();
}
