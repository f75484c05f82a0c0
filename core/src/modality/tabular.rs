//! Tabular pipelines: polars data, the MLP / logistic model, the schema handed to plugins.

use std::path::Path;

use tempered_plugin::{Column, Modality, TabularConstraints};

use super::{Parts, Prepare, Setup, Task, dataset, dense, sanitize};
use crate::Result;
use crate::data::tabular::{self, Rows, TabularDataConfig};
use crate::data::{Examples, Labelled};
use crate::evaluate::Sample;
use crate::evaluate::tabular::TabularJudge;
use crate::model::{Mlp, TabularModelConfig};
use crate::pipeline::{Pipeline, SpecOf};
use crate::plugin_host::Schema;

pub(super) struct Tabular {
    parts: Parts,
    schema: Schema,
}

impl Prepare for Tabular {
    type Data = TabularDataConfig;
    type Model = TabularModelConfig;

    fn prepare(
        pipeline: &Pipeline,
        spec: &SpecOf<TabularDataConfig, TabularModelConfig>,
        setup: &Setup,
    ) -> Result<Self> {
        let run = run_folder(setup.checkpoints)?;
        // A streamed table's rows live in unnamed files beside the run's own.
        let data = tabular::load_in(&spec.data, &pipeline.base_dir, pipeline.seed(), run)?;
        write_encoding(&data, run)?;
        let width = data.features.len();
        let dataset = dataset(data.n_classes, [&data.train, &data.validation, &data.test], |s| Labelled {
            x: match &s.x {
                Rows::Memory(x) => Examples::Dense { data: x.clone(), width },
                Rows::Disk(file) => Examples::Stored(file.clone()),
            },
            y: s.y.clone(),
        });
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
        let std: Vec<f32> = data.features.iter().map(|f| f.scale).collect();
        let model = Mlp::new(&spec.model, &mean, &std, data.n_classes, pipeline.seed(), setup.device)?;
        let parts = Parts {
            dataset,
            model: Box::new(model),
            judge: Box::new(TabularJudge {
                columns: data.features.iter().map(|f| f.column.clone()).collect(),
                constraints: data.constraints.clone(),
            }),
        };
        Ok(Tabular { parts, schema: schema(&data.features, &data.constraints) })
    }
}

impl Task for Tabular {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn modality(&self) -> Modality {
        Modality::Tabular
    }

    fn schema(&self) -> Option<&Schema> {
        Some(&self.schema)
    }

    fn positive_class(&self) -> Option<u32> {
        (self.parts.dataset.n_classes == 2).then_some(1)
    }

    /// `samples/<label>.csv`: one line per changed cell.
    fn save_samples(&self, dir: &Path, label: &str, samples: &[Sample]) -> Result<()> {
        let columns = self.schema.columns();
        let mut csv = String::from("example,class,p_class_before,p_class_after,column,before,after\n");
        for s in samples {
            let Some((a, b)) = dense(s) else { continue };
            for (j, (x, z)) in a.iter().zip(b).enumerate().filter(|(_, (x, z))| x != z) {
                let name = columns.get(j).map_or("?", |c| c.name.as_str());
                csv.push_str(&format!(
                    "{},{},{},{},{name},{x},{z}\n",
                    s.index, s.label, s.original_prob, s.adversarial_prob
                ));
            }
        }
        let path = dir.join(format!("{}.csv", sanitize(label)));
        crate::files::write(&path, csv.as_bytes())
    }

    /// A table per example: only the cells the attack changed.
    fn render_samples(&self, _label: &str, samples: &[Sample]) -> String {
        let columns = self.schema.columns();
        let mut s = String::from(
            "| example | class | p(class) before → after | changed cells (before → after) |\n|---|---|---|---|\n",
        );
        for sample in samples {
            let Some((a, b)) = dense(sample) else { continue };
            let cells: Vec<String> = a
                .iter()
                .zip(b)
                .enumerate()
                .filter(|(_, (x, z))| x != z)
                .map(|(j, (x, z))| {
                    format!("{}: {} → {}", columns.get(j).map_or("?", |c| c.name.as_str()), fmt(*x), fmt(*z))
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

    fn bench_budget(&self) -> Option<&'static str> {
        Some("epsilon")
    }
}

/// The columns as plugins see them: raw units, with the standardisation scale. A column
/// that follows from others is immutable to the attacker: it moves only with its terms.
pub fn schema(features: &[tabular::FeatureInfo], constraints: &TabularConstraints) -> Schema {
    let columns = features
        .iter()
        .enumerate()
        .map(|(j, f)| Column { mutable: f.mutable && !constraints.is_derived(j), ..f.column.clone() })
        .collect();
    Schema::new(columns, constraints)
}

/// The run folder, which holds `checkpoints/`; anything else (`tempered bench`'s scratch
/// folder) is taken as the folder itself.
fn run_folder(checkpoints: &Path) -> Result<&Path> {
    let dir = match checkpoints.parent() {
        Some(run) if checkpoints.file_name().is_some_and(|n| n == "checkpoints") => run,
        _ => checkpoints,
    };
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    Ok(dir)
}

/// `encoding.json` in the run folder: how the file's columns became the model's features, so
/// that new rows can be encoded the same way.
fn write_encoding(data: &tabular::TabularData, dir: &Path) -> Result<()> {
    let json = serde_json::to_vec_pretty(&data.encoding)
        .map_err(|e| crate::Error::external("cannot write encoding.json", e))?;
    crate::files::write(&dir.join("encoding.json"), &json)
}

fn fmt(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 { format!("{v:.0}") } else { format!("{v:.4}") }
}
