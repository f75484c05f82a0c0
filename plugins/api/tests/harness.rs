//! The test harness holds a plugin to what the engine holds it to: a wrong shape or a
//! non-finite value is an error with the engine's wording, an example that breaks a
//! declared budget or the modality's rules fails `run`, and the query cap refuses a call
//! whole. A plugin that passes its own tests does not then fail in a pipeline.

use serde::Deserialize;
use tempered_plugin::testing::{TestBatch, TestModel, run, run_judged};
use tempered_plugin::{Attack, Batch, Budget, Input, Modality, Oracle, Perturbed, Result, ThreatModel};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// How far every value moves.
    by: f32,
    /// What the attack claims: an L∞ ball of this many standard deviations.
    claim: f64,
    /// Rows returned short by this many values.
    #[serde(default)]
    short: usize,
    /// `predict` calls per perturb.
    #[serde(default)]
    asks: u32,
    /// Returns NaN as the first value.
    #[serde(default)]
    nan: bool,
    /// Asks with no ids: row i is example i.
    #[serde(default)]
    identity: bool,
}

struct Shove(Params);

impl Attack for Shove {
    type Params = Params;
    const NAME: &'static str = "shove";
    const DESCRIPTION: &'static str = "moves every value by `by`, whatever it claims";

    fn new(p: Params) -> Result<Self> {
        Ok(Self(p))
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([Budget::LinfStd { epsilon: self.0.claim }, Budget::Queries { max: 2 }])
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        let ids: Vec<u32> = if self.0.identity { Vec::new() } else { (0..batch.len() as u32).collect() };
        for _ in 0..self.0.asks {
            oracle.predict(Input::Dense { data: batch.data, width: batch.width }, &ids)?;
        }
        let mut out: Vec<f32> = batch.data.iter().map(|v| v + self.0.by).collect();
        out.truncate(out.len() - self.0.short);
        if self.0.nan {
            out[0] = f32::NAN;
        }
        Ok(Perturbed::Dense(out))
    }
}

struct Half;

impl TestModel for Half {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        let Input::Dense { data, width } = input else { panic!("dense") };
        vec![0.5; data.len() / width * 2]
    }
    fn loss_grad(&self, _: Input<'_>, _: &[u32]) -> (Vec<f32>, Vec<f32>) {
        unimplemented!()
    }
}

fn batch() -> TestBatch {
    TestBatch::dense(Modality::Tabular, vec![0.0, 1.0, 2.0, 3.0], 2, vec![0, 1])
}

#[test]
fn an_attack_within_its_claims_passes() {
    let out = run::<Shove>(r#"{"by": 0.5, "claim": 0.5, "asks": 2}"#, &batch(), &Half).unwrap();
    assert_eq!(out.queries, vec![2, 2]);
    assert!(out.violations().is_empty());
}

#[test]
fn no_ids_means_row_i_is_example_i() {
    let out =
        run::<Shove>(r#"{"by": 0.5, "claim": 0.5, "asks": 2, "identity": true}"#, &batch(), &Half).unwrap();
    assert_eq!(out.queries, vec![2, 2]);
}

#[test]
fn breaking_a_declared_budget_fails_the_test_as_it_would_fail_the_engine() {
    let e = run::<Shove>(r#"{"by": 1.0, "claim": 0.5}"#, &batch(), &Half).unwrap_err();
    assert_eq!(
        e.0,
        "the engine would count 2 violation(s): example 0: L∞ change 1.00000 std exceeds 0.5; \
         example 1: L∞ change 1.00000 std exceeds 0.5"
    );
    let out = run_judged::<Shove>(r#"{"by": 1.0, "claim": 0.5, "asks": 3}"#, &batch(), &Half).unwrap();
    assert_eq!(out.verdicts[0].broken, [0, 1], "the ball and the queries: {:?}", out.verdicts[0].notes);
    assert_eq!(out.verdicts[0].notes[1], "3 queries, over the declared 2");
}

#[test]
fn a_wrong_shape_or_a_non_finite_value_is_the_engines_error() {
    let e = run::<Shove>(r#"{"by": 0.5, "claim": 0.5, "short": 1}"#, &batch(), &Half).unwrap_err();
    assert_eq!(e.0, "returned 3 values for 2 examples of width 2 (expected 4)");
    let e = run::<Shove>(r#"{"by": 0.5, "claim": 0.5, "nan": true}"#, &batch(), &Half).unwrap_err();
    assert_eq!(e.0, "returned a non-finite value (NaN) for example 0 at position 0");
}

#[test]
fn the_query_cap_refuses_a_call_whole() {
    let mut b = batch();
    b.query_budget = Some(1);
    let e = run::<Shove>(r#"{"by": 0.5, "claim": 0.5, "asks": 2}"#, &b, &Half).unwrap_err();
    assert_eq!(e.0, "host: query budget: example 0 has 0 of its 1 queries left and the call asks 1");
}

#[test]
fn the_modalitys_own_rules_hold_without_any_declaration() {
    let mut b = batch();
    b.features[1].mutable = false;
    let e = run::<Shove>(r#"{"by": 0.5, "claim": 0.5}"#, &b, &Half).unwrap_err();
    assert!(e.0.contains("example 0: immutable `x1` changed from 1 to 1.5"), "{}", e.0);
}

/// Asks the oracle from two threads at once, half the batch each.
struct Split;

impl Attack for Split {
    type Params = serde_json::Value;
    const NAME: &'static str = "split";
    const DESCRIPTION: &'static str = "asks about each half of the batch from its own thread";

    fn new(_: serde_json::Value) -> Result<Self> {
        Ok(Self)
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        let (n, w) = (batch.len(), batch.width);
        std::thread::scope(|s| {
            let halves: Vec<_> = [(0, n / 2), (n / 2, n)]
                .into_iter()
                .map(|(a, b)| {
                    s.spawn(move || {
                        let ids: Vec<u32> = (a as u32..b as u32).collect();
                        oracle.predict(Input::Dense { data: &batch.data[a * w..b * w], width: w }, &ids)
                    })
                })
                .collect();
            for h in halves {
                h.join().expect("no panic")?;
            }
            Ok::<(), tempered_plugin::PluginError>(())
        })?;
        Ok(Perturbed::Dense(batch.data.to_vec()))
    }
}

#[test]
fn the_oracle_can_be_asked_from_several_threads() {
    let b = TestBatch::dense(Modality::Tabular, (0..16).map(|v| v as f32).collect(), 2, vec![0; 8]);
    let out = run::<Split>("{}", &b, &Half).unwrap();
    assert_eq!(out.queries, vec![1; 8], "every row counted once, against its own example");
}
