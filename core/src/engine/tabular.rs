//! Tabular pipelines: polars data, the MLP / logistic model, the schema handed to plugins.

use candle_core::Device;
use tempered_plugin::abi::{FeatureSpec, StrRef};

use super::Task;
use crate::Result;
use crate::data::tabular::{self, TabularDataConfig};
use crate::data::{Dataset, Examples, Labelled};
use crate::evaluate::Sample;
use crate::evaluate::tabular::TabularJudge;
use crate::model::{Mlp, TabularModelConfig};
use crate::pipeline::{Pipeline, SpecOf};
use crate::plugin_host::Schema;

pub(super) fn prepare(
    pipeline: &Pipeline,
    spec: &SpecOf<TabularDataConfig, TabularModelConfig>,
    device: &Device,
) -> Result<Task> {
    let data = tabular::load(&spec.data, &pipeline.base_dir, pipeline.seed())?;
    let width = data.features.len();
    let split =
        |s: &tabular::Split| Labelled { x: Examples::Dense { data: s.x.clone(), width }, y: s.y.clone() };
    let dataset = Dataset {
        n_classes: data.n_classes,
        train: split(&data.train),
        validation: split(&data.validation),
        test: split(&data.test),
    };
    tracing::info!(
        "{}: {} features, {} classes; train {}, validation {}, test {}",
        data.path.display(),
        width,
        data.n_classes,
        dataset.train.len(),
        dataset.validation.len(),
        dataset.test.len()
    );
    let mean: Vec<f32> = data.features.iter().map(|f| f.mean).collect();
    let std: Vec<f32> = data.features.iter().map(|f| f.std).collect();
    let model = Mlp::new(&spec.model, &mean, &std, data.n_classes, pipeline.seed(), device)?;
    let schema = schema(&data.features);
    Ok(Task {
        dataset,
        model: Box::new(model),
        judge: Box::new(TabularJudge { features: data.features.clone() }),
        schema: Some(schema),
        sample_rate: 0,
        encoder: None,
        save_samples,
        positive_class: (data.n_classes == 2).then_some(1),
        render_samples,
    })
}

/// The columns as plugins see them: raw units, with the standardisation scale.
pub fn schema(features: &[tabular::FeatureInfo]) -> Schema {
    Schema::new(
        features
            .iter()
            .map(|f| {
                let spec = FeatureSpec {
                    name: StrRef::empty(),
                    kind: f.kind as u32,
                    mutable: f.mutable as u8,
                    lower: f.lower,
                    upper: f.upper,
                    cost: f.cost,
                    scale: f.std,
                    group: f.group.map_or(-1, |g| g as i32),
                };
                (f.name.clone(), spec)
            })
            .collect(),
    )
}

/// `samples/<label>.csv`: one line per changed cell.
fn save_samples(task: &Task, dir: &std::path::Path, label: &str, samples: &[Sample]) -> Result<()> {
    let names = task.schema.as_ref().map(Schema::names).unwrap_or(&[]);
    let mut csv = String::from("example,class,p_class_before,p_class_after,column,before,after\n");
    for s in samples {
        let (Examples::Dense { data: a, .. }, Examples::Dense { data: b, .. }) =
            (&s.original, &s.adversarial)
        else {
            continue;
        };
        for (j, (x, z)) in a.iter().zip(b).enumerate().filter(|(_, (x, z))| x != z) {
            let name = names.get(j).map_or("?", String::as_str);
            csv.push_str(&format!(
                "{},{},{},{},{name},{x},{z}\n",
                s.index, s.label, s.original_prob, s.adversarial_prob
            ));
        }
    }
    let path = dir.join(format!("{}.csv", super::sanitize(label)));
    crate::files::write(&path, csv.as_bytes())
}

/// A table per example: only the cells the attack changed.
fn render_samples(task: &Task, _label: &str, samples: &[Sample]) -> String {
    let names = task.schema.as_ref().map(Schema::names).unwrap_or(&[]);
    let mut s = String::from(
        "| example | class | p(class) before → after | changed cells (before → after) |\n|---|---|---|---|\n",
    );
    for sample in samples {
        let (Examples::Dense { data: a, .. }, Examples::Dense { data: b, .. }) =
            (&sample.original, &sample.adversarial)
        else {
            continue;
        };
        let cells: Vec<String> = a
            .iter()
            .zip(b)
            .enumerate()
            .filter(|(_, (x, z))| x != z)
            .map(|(j, (x, z))| {
                format!("{}: {} → {}", names.get(j).map_or("?", String::as_str), fmt(*x), fmt(*z))
            })
            .collect();
        s.push_str(&format!(
            "| {} | {} | {:.3} → {:.3} | {} |\n",
            sample.index,
            sample.label,
            sample.original_prob,
            sample.adversarial_prob,
            if cells.is_empty() { "—".to_owned() } else { cells.join("; ") }
        ));
    }
    s
}

fn fmt(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 { format!("{v:.0}") } else { format!("{v:.4}") }
}
