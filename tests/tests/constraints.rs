//! What a fraudster can really do, checked by the host: a column that may only move one
//! way, and a column that follows from others (balance after = balance before − amount).
//! A fixture attack that ignores them is caught on every row it moves; the first-party
//! attacks keep them and still attack.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{attack_row, built_attack, run_outputs, scratch};

/// 800 transactions: fraud is a large amount at night; balances are linked exactly (cents).
fn table(dir: &std::path::Path) -> PathBuf {
    let mut csv = String::from("hour,channel,balance_before,amount,balance_after,is_fraud\n");
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    for _ in 0..800 {
        let hour = (next() * 24.0) as u32;
        let before_cents = 10_000 + (next() * 500_000.0) as i64;
        let fraud = next() < 0.3;
        let amount_cents =
            if fraud { 20_000 + (next() * 30_000.0) as i64 } else { 500 + (next() * 15_000.0) as i64 };
        let night = !(6..22).contains(&hour);
        let channel = ["pos", "online", "atm"][(next() * 3.0) as usize % 3];
        let label = u8::from(fraud && (night || channel == "online" || next() < 0.3));
        let after = before_cents - amount_cents;
        let c = |v: i64| format!("{}{}.{:02}", if v < 0 { "-" } else { "" }, v.abs() / 100, v.abs() % 100);
        writeln!(csv, "{hour},{channel},{},{},{},{label}", c(before_cents), c(amount_cents), c(after))
            .unwrap();
    }
    let path = dir.join("transactions.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn pipeline(name: &str, attacks: &str) -> Pipeline {
    let dir = scratch(name);
    let data = table(&dir);
    let src = format!(
        r#"[pipeline]
name = "{name}"
modality = "tabular"
seed = 7

[data]
path = "{}"
label = "is_fraud"
split = {{ validation = 0.2, test = 0.3 }}
defaults = {{ kind = "continuous", mutable = true, cost = 1.0 }}

[data.columns.hour]                # the fraudster chooses when to strike
kind = "integer"

[data.columns.channel]             # and may move a point-of-sale fraud online, nothing else
kind = "categorical"
transitions = {{ pos = ["online"] }}

[data.columns.amount]
direction = "up"                  # a fraudster keeps the money: the amount only grows
lower = 0.0
upper = 1000000.0
cost = 0.01

[data.columns.balance_before]
mutable = false

[data.columns.balance_after]
lower = -10000000.0

[[data.relations]]
column = "balance_after"
equals = "balance_before - amount"

[model]
kind = "mlp"
hidden = [16]

[train]
epochs = 30
batch_size = 64
lr = 1e-2
patience = 0

{attacks}
[harden]
enabled = false
"#,
        data.display()
    );
    let file = dir.join("pipeline.toml");
    std::fs::write(&file, src).unwrap();
    Pipeline::load(&file).expect("valid pipeline")
}

fn run(p: &Pipeline) -> (Value, String) {
    let out = scratch(&p.spec.pipeline().name).join("run");
    engine::run(p, &RunOptions { out: Some(out.clone()), resume: false }).expect("the run finishes");
    run_outputs(&out)
}

#[test]
fn an_attack_that_ignores_directions_and_relations_is_caught_on_every_row() {
    let attacks = built_attack("fixture-cheat-tabular", "silent", "classes = [1]\n");
    let (m, report) = run(&pipeline("cheat-constraints", &attacks));
    let a = attack_row(&m, "silent");
    assert!(a["attacked"].as_u64().unwrap() > 0, "{a}");
    assert_eq!(a["constraint_violations"], a["attacked"], "every moved row breaks both: {a}");
    assert_eq!(a["successes"], 0);
    assert!(report.contains("broke the domain constraints or a declared budget"), "{report}");
}

#[test]
fn a_category_switch_the_pipeline_does_not_list_is_caught() {
    let attacks = built_attack("fixture-cheat-tabular", "switch", "");
    let (m, _) = run(&pipeline("cheat-switch", &attacks));
    let a = attack_row(&m, "switch");
    // The last column is `channel:unseen`, never a target: every attacked row is caught.
    assert_eq!(a["constraint_violations"], a["attacked"], "{a}");
    assert_eq!(a["successes"], 0);
}

#[test]
fn first_party_attacks_keep_directions_and_relations() {
    let attacks = "[[attack]]\nid = \"pgd\"\nplugin = \"tabular\"\nattack = \"pgd\"\nclasses = [1]\nparams = { epsilon = 1.0, steps = 10, discrete = true }\n\n\
                   [[attack]]\nid = \"fraudster\"\nplugin = \"tabular\"\nattack = \"fraudster\"\nclasses = [1]\nparams = { budget = 500.0 }\n";
    let (m, _) = run(&pipeline("keep-constraints", attacks));
    for id in ["pgd", "fraudster"] {
        let a = attack_row(&m, id);
        assert!(a["attacked"].as_u64().unwrap() > 0, "{id}: {a}");
        assert_eq!(a["constraint_violations"], 0, "{id} keeps the amount up and the balance linked: {a}");
        assert!(a["successes"].as_u64().unwrap() > 0, "{id} still fools the model within them: {a}");
    }
}

#[test]
fn a_relation_or_direction_that_cannot_hold_is_a_clear_error() {
    let err = |extra: &str, name: &str| {
        let p = pipeline(name, "");
        let src = std::fs::read_to_string(&p.file).unwrap().replace("[model]", &format!("{extra}\n[model]"));
        std::fs::write(&p.file, src).unwrap();
        match Pipeline::load(&p.file) {
            Err(e) => e.to_string(),
            Ok(p) => {
                let out = scratch(name).join("run");
                engine::run(&p, &RunOptions { out: Some(out), resume: false })
                    .expect_err("refused")
                    .to_string()
            }
        }
    };
    let e = err("[[data.relations]]\ncolumn = \"hour\"\nequals = \"amount - fee\"\n", "bad-relation");
    assert!(
        e.contains(
            "[[data.relations]] #2 (`hour = amount - fee`) names `fee`, which is not a feature column"
        ),
        "{e}"
    );
    let e = err(
        "[[data.relations]]\ncolumn = \"amount\"\nequals = \"balance_before - balance_after\"\n",
        "chained",
    );
    assert!(e.contains("`balance_after` follows from `amount`, which itself follows from others"), "{e}");
    let e = err("[data.columns.\"hou*\"]\ntransitions = { a = [\"b\"] }\n", "bad-transitions");
    assert!(e.contains("transitions is only for string categorical columns"), "{e}");
    let e = err("[data.columns.\"bal*\"]\ndirection = \"upward\"\n", "bad-direction");
    assert!(e.contains("unknown variant `upward`, expected one of `any`, `up`, `down`"), "{e}");
}
