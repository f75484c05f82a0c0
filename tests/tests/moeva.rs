//! `moeva`, the black-box evolutionary fraudster, on the transaction log the way a fraud
//! team would declare it: the amount only goes up, the balance after follows from it, and
//! a channel may only switch the ways a fraudster can really switch it. The host judges
//! every example it returns, counts its queries against a cap below the attack's own,
//! and a seeded run repeats.

use std::path::Path;

use serde_json::Value;
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{
    assert_reproducible, attack_row, built_attack, pipeline_file, repo_pipeline, run_outputs,
};

/// The host's cap per example, below the attack's own 20 × (20 + 1) = 420.
const HOST_CAP: u64 = 300;

/// `pipelines/transactions-small.toml` with a fraudster's constraints added, its attacks
/// replaced by `moeva`, no hardening, and every successful example kept as a sample.
fn pipeline() -> Pipeline {
    let shipped = repo_pipeline("transactions-small.toml");
    let head = shipped.split("[[attack]]").next().unwrap();
    let with = |src: &str, at: &str, add: &str| {
        assert!(src.contains(at), "the shipped pipeline still has `{at}`");
        src.replacen(at, &format!("{at}\n{add}"), 1)
    };
    // The shipped amount only grows already (the fraud keeps its money).
    assert!(head.contains("[data.columns.amount]\nlower = 0.01\ncost = 0.01\ndirection = \"up\""));
    let head = with(
        head,
        "[data.columns.channel]",
        "transitions = { pos = [\"contactless\", \"online\"], contactless = [\"pos\", \"online\"], phone = [\"online\"] }",
    );
    // Before `[model]`: the balance may go below the training data's, and follows the amount.
    let head = head.replacen(
        "[model]",
        "[data.columns.balance_after]\nlower = -1000000000.0\n\n\
         [[data.relations]]\ncolumn = \"balance_after\"\nequals = \"balance_before - amount\"\n\n[model]",
        1,
    );
    let attack = built_attack(
        "tabular",
        "moeva",
        &format!(
            "classes = [1]\nquery_budget = {HOST_CAP}\n\
             params = {{ epsilon = 0.5, budget = 6.0, population = 20, generations = 20 }}\n\n"
        ),
    );
    let src = format!(
        "{head}{attack}[harden]\nenabled = false\n\n[evaluate]\noperating_point = {{ fpr = 0.01 }}\n\n[report]\nsamples = 1000\n"
    );
    Pipeline::load(&pipeline_file("moeva-transactions", &src)).expect("valid pipeline")
}

fn run_into(p: &Pipeline, out: &Path) {
    engine::run(p, &RunOptions { out: Some(out.to_owned()), resume: false }).expect("the run finishes");
}

/// `(example, column, before, after)` of every changed cell of every successful `moeva`
/// example the run kept as a sample.
fn changed_cells(out: &Path) -> Vec<(String, String, f64, f64)> {
    let mut cells = Vec::new();
    for entry in std::fs::read_dir(out.join("samples")).expect("samples were written") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("moeva") || !name.ends_with(".csv") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            cells.push((f[0].to_owned(), f[4].to_owned(), f[5].parse().unwrap(), f[6].parse().unwrap()));
        }
    }
    cells
}

#[test]
fn moeva_fools_detected_frauds_within_every_constraint_and_budget_and_repeats() {
    let p = pipeline();
    let dir = assert_reproducible("moeva-transactions", |out| run_into(&p, out));
    let out = dir.join("a");
    let (m, report): (Value, String) = run_outputs(&out);
    let a = attack_row(&m, "moeva");
    let attacked = a["attacked"].as_u64().unwrap();
    assert!(attacked >= 10, "detected frauds were attacked: {a}");
    assert!(a["successes"].as_u64().unwrap() > 0, "some detected frauds evade: {a}");
    assert_eq!(a["constraint_violations"], 0, "{a}");

    // Every budget it declares is checked by the host, and kept.
    let budgets: Vec<&str> =
        a["budgets"].as_array().unwrap().iter().map(|b| b["budget"].as_str().unwrap()).collect();
    assert_eq!(budgets, ["L∞ ≤ 0.5 std", "cost ≤ 6", "≤ 420 queries"], "{a}");
    for b in a["budgets"].as_array().unwrap() {
        assert_eq!(b["violations"], 0, "{b}");
    }
    let line = report.lines().find(|l| l.starts_with("- `moeva` ")).expect("a threat-model line");
    assert!(!line.contains("not verified"), "{line}");

    // The host counted the queries: never past its cap, which is below the attack's own.
    let max_q = a["extra"]["max_queries"].as_f64().unwrap();
    assert!(max_q <= HOST_CAP as f64 && max_q > 0.0, "{a}");
    assert!(a["mean_queries"].as_f64().unwrap() <= HOST_CAP as f64);

    // The successful examples: a category switch among the moves, along allowed lines
    // only; the amount never down; the balance after always the balance before − amount.
    let cells = changed_cells(&out);
    assert!(!cells.is_empty(), "samples of the successes");
    let switched_to =
        |prefix: &str| cells.iter().filter(|(_, c, _, after)| c.starts_with(prefix) && *after == 1.0).count();
    let categorical: usize = [
        "merchant_category=",
        "channel=",
        "country=",
        "device_type=",
        "entry_mode=",
        "currency=",
        "merchant_risk_tier=",
    ]
    .iter()
    .map(|p| switched_to(p))
    .sum();
    assert!(categorical > 0, "a successful example switched a category: {cells:?}");
    for (ex, col, before, after) in &cells {
        match col.as_str() {
            "amount" => assert!(after >= before, "example {ex}: amount {before} -> {after}"),
            "channel=atm" | "channel=phone" | "channel:unseen" => {
                assert!(*after == 0.0, "example {ex}: switched into {col}, which no transition allows")
            }
            c => assert!(
                !c.starts_with("balance_before") && !c.starts_with("card_") && !c.starts_with("customer_"),
                "example {ex}: immutable {c} changed"
            ),
        }
    }
    // Where the amount moved, the balance after moved by as much, the other way.
    for (ex, _, before, after) in cells.iter().filter(|c| c.1 == "amount") {
        let bal = cells.iter().find(|c| &c.0 == ex && c.1 == "balance_after");
        let (_, _, b0, b1) =
            bal.unwrap_or_else(|| panic!("example {ex}: amount moved, balance_after did not"));
        let (d_amount, d_balance) = (after - before, b1 - b0);
        assert!(
            (d_amount + d_balance).abs() <= 0.01 + 1e-6 * b0.abs(),
            "example {ex}: {d_amount} vs {d_balance}"
        );
    }
}
