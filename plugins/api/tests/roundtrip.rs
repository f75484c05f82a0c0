//! The export glue, driven through its C entry points by `testing::run`.

use serde::Deserialize;
use tempered_plugin::testing::{TestBatch, TestModel, run};
use tempered_plugin::{Attack, Batch, Input, Modality, Oracle, Perturbed, Result};

/// p(class 1) = sigmoid(sum of the row).
struct SumModel;

impl TestModel for SumModel {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        let Input::Dense { data, width } = input else { panic!("dense only") };
        data.chunks(width)
            .flat_map(|r| {
                let p = 1.0 / (1.0 + (-r.iter().sum::<f32>()).exp());
                [1.0 - p, p]
            })
            .collect()
    }
    fn loss_grad(&self, input: Input<'_>, labels: &[u32]) -> (Vec<f32>, Vec<f32>) {
        let Input::Dense { data, width } = input else { panic!("dense only") };
        let mut loss = Vec::new();
        let mut grad = Vec::new();
        for (r, &y) in data.chunks(width).zip(labels) {
            let p = 1.0 / (1.0 + (-r.iter().sum::<f32>()).exp());
            loss.push(-(if y == 1 { p } else { 1.0 - p }).ln());
            grad.extend(std::iter::repeat_n(p - y as f32, width));
        }
        (loss, grad)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepParams {
    epsilon: f32,
    #[serde(default)]
    panic: bool,
}

/// One signed-gradient step: FGSM.
struct Step(StepParams);

impl Attack for Step {
    type Params = StepParams;
    const NAME: &'static str = "step";
    const DESCRIPTION: &'static str = "one FGSM step";
    fn new(p: StepParams) -> Result<Self> {
        if p.epsilon < 0.0 {
            return Err("epsilon must be >= 0".into());
        }
        Ok(Self(p))
    }
    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.table()?;
        assert!(!self.0.panic, "asked to panic");
        let ids: Vec<u32> = (0..batch.len() as u32).collect();
        let input = Input::Dense { data: batch.data, width: batch.width };
        let (_, g) = oracle.loss_grad(input, batch.labels, &ids)?;
        Ok(Perturbed::Dense(
            batch.data.iter().zip(&g).map(|(x, g)| x + self.0.epsilon * g.signum()).collect(),
        ))
    }
}

tempered_plugin::export_plugin! {
    name: "roundtrip", version: "0.0.1", modality: Modality::Tabular, attacks: [Step],
}

fn batch() -> TestBatch {
    TestBatch::dense(Modality::Tabular, vec![1.0, 1.0, -1.0, -1.0], 2, vec![1, 0])
}

#[test]
fn gradient_step_raises_the_loss_and_queries_are_counted_per_example() {
    let out = run::<Step>(r#"{"epsilon": 0.5}"#, &batch(), &SumModel).unwrap();
    assert_eq!(out.perturbed, Perturbed::Dense(vec![0.5, 0.5, -0.5, -0.5]));
    assert_eq!(out.queries, vec![1, 1]);
}

#[test]
fn bad_params_unknown_keys_and_constructor_errors_come_back_as_messages() {
    let e = run::<Step>(r#"{"epsilon": "big"}"#, &batch(), &SumModel).unwrap_err();
    assert!(e.0.contains("bad params for attack `step`"), "{e}");
    let e = run::<Step>(r#"{"epsilon": 1, "epsilom": 2}"#, &batch(), &SumModel).unwrap_err();
    assert!(e.0.contains("epsilom"), "{e}");
    let e = run::<Step>(r#"{"epsilon": -1}"#, &batch(), &SumModel).unwrap_err();
    assert_eq!(e.0, "epsilon must be >= 0");
}

#[test]
fn a_panic_is_caught_at_the_boundary() {
    let e = run::<Step>(r#"{"epsilon": 1, "panic": true}"#, &batch(), &SumModel).unwrap_err();
    assert!(e.0.contains("panicked in perturb: asked to panic"), "{e}");
}

#[test]
fn the_entry_symbol_declares_abi_name_and_attacks() {
    let decl = unsafe { &*tempered_plugin_v1() };
    assert_eq!(decl.abi_version, tempered_plugin::ABI_VERSION);
    assert_eq!(decl.n_attacks, 1);
    let attack = unsafe { &*decl.attacks };
    assert_eq!(unsafe { attack.name.to_string_lossy() }, "step");
    assert_eq!(unsafe { decl.name.to_string_lossy() }, "roundtrip");
}
