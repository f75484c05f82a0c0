//! Adversarial fine-tuning: the hardening attack as the trainer's [`Adversary`], and the
//! phase that fine-tunes the clean model with it.

use tempered_plugin::Budget;

use crate::data::Examples;
use crate::evaluate::{self, Judge};
use crate::modality::{self, Recorder, Task};
use crate::model::Classifier;
use crate::pipeline::{EarlyStopping, Pipeline, Strategy};
use crate::plugin_host::{AttackHandle, BatchContext};
use crate::report::HardeningStats;
use crate::train::{self, Adversary, Checkpoints, Fit, TrainState};
use crate::{Error, Result};

use super::RunDir;
use super::attacks::{Loaded, harden_params, to_json};

/// What hardening leaves: the trainer's log and, when an attack was handed examples, what
/// it did to them.
pub(super) struct Hardened {
    pub log: TrainState,
    pub stats: Option<HardeningStats>,
}

/// Fine-tunes `task`'s model as `[harden]` says, resuming from the `hardened` checkpoints.
pub(super) fn harden(
    pipeline: &Pipeline,
    task: &dyn Task,
    attacks: &[Loaded],
    dir: &RunDir,
    balance: &train::Balance,
) -> Result<Hardened> {
    harden_phase(pipeline, task, attacks, dir, balance, "hardened")
}

/// [`harden`] into the checkpoints of `phase` (a `[tradeoff]` point has its own); only
/// the `hardened` phase keeps the examples it trained on.
pub(super) fn harden_phase(
    pipeline: &Pipeline,
    task: &dyn Task,
    attacks: &[Loaded],
    dir: &RunDir,
    balance: &train::Balance,
    phase: &str,
) -> Result<Hardened> {
    let harden = pipeline.spec.harden();
    let tc = pipeline.spec.train();
    let seed = pipeline.seed();
    let harden_seed = seed ^ 0x4A12_D3E7;
    let strategy = harden.strategy;
    let mut adversaries: Vec<PluginAdversary<'_>> = Vec::new();
    if strategy != Strategy::Clean {
        for id in &harden.attack {
            let source = attacks
                .iter()
                .find(|a| &a.config.id == id)
                .ok_or_else(|| Error::invalid(format!("harden.attack `{id}` could not be loaded")))?;
            let params = harden_params(pipeline, &source.config).ok_or_else(|| {
                Error::invalid(format!("harden.attack `{id}` cannot train with strategy {strategy:?}"))
            })?;
            let plugin = source.handle.plugin.clone();
            let handle = plugin.create(&source.config.attack, &params, &pipeline.base_dir)?;
            // Fast FGSM training is watched with the attack as the pipeline evaluates it
            // (its own steps), for catastrophic overfitting.
            let probe = if strategy == Strategy::Fgsm && harden.guard {
                Some(plugin.create(
                    &source.config.attack,
                    &to_json(&source.config.params),
                    &pipeline.base_dir,
                )?)
            } else {
                None
            };
            adversaries.push(PluginAdversary {
                probe,
                budgets: handle.threat().map(|t| t.budgets.clone()).unwrap_or_default(),
                judge: task.parts().judge.as_ref(),
                handle,
                ctx: modality::context(task, seed, None),
                classes: source.config.classes.clone(),
                record: None,
                stats: HardeningStats::default(),
            });
        }
    }
    let record = if adversaries.is_empty() || phase != "hardened" {
        None
    } else {
        task.recorder(&dir.path, harden_seed)?
    };
    // One attack keeps its own adversary (and its numbers); several share each batch.
    let mut adversary: Option<Box<dyn Counting + '_>> = match adversaries.len() {
        0 => None,
        1 => {
            let mut one = adversaries.pop().expect("one");
            one.record = record;
            Some(Box::new(one))
        }
        _ => Some(Box::new(Mixed { parts: adversaries, record })),
    };
    let fit = Fit {
        epochs: harden.epochs,
        batch_size: tc.batch_size,
        lr: harden.lr,
        weight_decay: tc.weight_decay,
        patience: harden.patience,
        adversarial_weight: harden.adversarial_weight,
        share: harden.share,
        clean_epochs: harden.clean_epochs,
        validation_attack_examples: 2048,
        trades_beta: (harden.strategy == Strategy::Trades).then_some(harden.beta),
        stop_on_robust_accuracy: harden.early_stopping == EarlyStopping::RobustAccuracy,
        weight_average: harden.weight_average,
    };
    let ckpt = Checkpoints { dir: dir.checkpoints(), phase: phase.to_owned() };
    let adv = adversary.as_deref_mut().map(|a| a as &mut dyn Adversary);
    let (model, data) = (task.parts().model.as_ref(), &task.parts().dataset);
    // The clean model's class balance holds while it is fine-tuned: without it, hardening
    // would drift back towards "never fraud".
    let log = train::fit_balanced(model, data, &fit, balance, adv, harden_seed, &ckpt)?;
    // None when nothing was handed to the attack (a clean strategy).
    // Zero examples handed over is a finding too (a `classes` filter that matches nothing).
    let stats = adversary.map(|a| a.stats());
    Ok(Hardened { log, stats })
}

/// Trains on a plugin attack's examples. Only examples of the attack's `classes` are
/// attacked: hardening against a threat model (frauds posing as genuine) must not also
/// teach the model to resist attacks nobody makes (genuine rows posing as fraud), which
/// would move its boundary in the attacker's favour.
struct PluginAdversary<'a> {
    handle: AttackHandle,
    /// The stronger attack that watches FGSM training (see `Adversary::probe`).
    probe: Option<AttackHandle>,
    /// Judges every example the attack makes, as in evaluation, against `budgets`.
    judge: &'a dyn Judge,
    budgets: Vec<Budget>,
    ctx: BatchContext<'a>,
    classes: Option<Vec<u32>>,
    /// Keeps the generated examples in the run folder, where the modality wants them.
    record: Option<Box<dyn Recorder>>,
    stats: HardeningStats,
}

/// How many examples of `a` differ from the same example of `b`.
fn changed(a: &Examples, b: &Examples) -> usize {
    match (a, b) {
        (Examples::Dense { data: x, width }, Examples::Dense { data: y, .. }) => {
            x.chunks(*width).zip(y.chunks(*width)).filter(|(u, v)| u != v).count()
        }
        (Examples::Text(x), Examples::Text(y)) => x.iter().zip(y).filter(|(u, v)| u != v).count(),
        _ => a.len().max(b.len()),
    }
}

impl PluginAdversary<'_> {
    /// The attack's examples for `x`, each judged: one that breaks a rule or a declared
    /// budget is replaced by its original.
    fn attack(
        &mut self,
        model: &dyn Classifier,
        x: &Examples,
        y: &[u32],
        ctx: BatchContext<'_>,
    ) -> Result<Examples> {
        let result = self.handle.perturb(model, x, y, ctx)?;
        let mut tallies = evaluate::tallies(self.judge, &self.budgets);
        let mut refused = Vec::new();
        for i in 0..y.len() {
            let q = result.queries[i];
            let m =
                evaluate::judge_example(self.judge, x, &result.examples, i, q, &self.budgets, &mut tallies);
            if m.violations > 0 {
                tracing::warn!("hardening example refused: {}", m.notes.join("; "));
                refused.push(i);
            }
        }
        self.stats.violations += refused.len();
        let mut out = result.examples;
        if !refused.is_empty() {
            out.replace(&refused, &x.select(&refused)?)?;
        }
        Ok(out)
    }
}

impl Adversary for PluginAdversary<'_> {
    fn attacks_class(&self, label: u32) -> bool {
        self.classes.as_ref().is_none_or(|c| c.contains(&label))
    }

    fn escalate(&mut self) -> bool {
        match self.probe.take() {
            Some(probe) => {
                // Its examples are judged by what it declares (more queries, say), not by
                // what the attack it replaces did.
                self.budgets = probe.threat().map(|t| t.budgets.clone()).unwrap_or_default();
                self.handle = probe;
                true
            }
            None => false,
        }
    }

    fn generate(&mut self, model: &dyn Classifier, x: &Examples, y: &[u32], seed: u64) -> Result<Examples> {
        let ctx = BatchContext { seed, ..self.ctx };
        let out = match self.classes.clone() {
            None => {
                self.stats.examples += x.len();
                self.attack(model, x, y, ctx)?
            }
            Some(classes) => {
                let idx: Vec<usize> = (0..y.len()).filter(|&i| classes.contains(&y[i])).collect();
                self.stats.examples += idx.len();
                let mut out = x.clone();
                if !idx.is_empty() {
                    let part_y: Vec<u32> = idx.iter().map(|&i| y[i]).collect();
                    let adv = self.attack(model, &x.select(&idx)?, &part_y, ctx)?;
                    out.replace(&idx, &adv)?;
                }
                out
            }
        };
        self.stats.changed += changed(x, &out);
        if let Some(r) = &mut self.record {
            r.record(seed, x, y, &out)?;
        }
        Ok(out)
    }

    // The counters travel with the trainer's commits, so a resumed run reports the same.
    fn state(&self) -> serde_json::Value {
        serde_json::to_value(self.stats).expect("counters serialize")
    }

    fn probe(
        &mut self,
        model: &dyn Classifier,
        x: &Examples,
        y: &[u32],
        seed: u64,
    ) -> Option<Result<Examples>> {
        let probe = self.probe.as_mut()?;
        let ctx = BatchContext { seed, ..self.ctx };
        // The probe attacks what the hardening attack attacks: only rows of its `classes`.
        let idx: Vec<usize> =
            (0..y.len()).filter(|&i| self.classes.as_ref().is_none_or(|c| c.contains(&y[i]))).collect();
        if idx.is_empty() {
            return Some(Ok(x.clone()));
        }
        let part_y: Vec<u32> = idx.iter().map(|&i| y[i]).collect();
        let mut probed = || -> Result<Examples> {
            let r = probe.perturb(model, &x.select(&idx)?, &part_y, ctx)?;
            let mut out = x.clone();
            out.replace(&idx, &r.examples)?;
            Ok(out)
        };
        Some(probed())
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.stats = serde_json::from_value(state.clone())
            .map_err(|e| Error::external("the hardening counters of the checkpoint", e))?;
        Ok(())
    }
}

/// Several threat models at once: each batch's rows are dealt round-robin to the attacks,
/// starting at a place the batch seed picks, so every attack sees every kind of batch and a
/// resumed run deals the same way.
struct Mixed<'a> {
    parts: Vec<PluginAdversary<'a>>,
    record: Option<Box<dyn Recorder>>,
}

impl Adversary for Mixed<'_> {
    fn attacks_class(&self, label: u32) -> bool {
        self.parts.iter().any(|p| p.attacks_class(label))
    }

    fn escalate(&mut self) -> bool {
        self.parts.iter_mut().fold(false, |any, p| p.escalate() | any)
    }

    fn generate(&mut self, model: &dyn Classifier, x: &Examples, y: &[u32], seed: u64) -> Result<Examples> {
        let k = self.parts.len();
        let start = (seed % k as u64) as usize;
        let mut out = x.clone();
        for (a, part) in self.parts.iter_mut().enumerate() {
            let idx: Vec<usize> = (0..y.len()).filter(|&i| (i + start) % k == a).collect();
            if idx.is_empty() {
                continue;
            }
            let part_y: Vec<u32> = idx.iter().map(|&i| y[i]).collect();
            let adv =
                part.generate(model, &x.select(&idx)?, &part_y, crate::evaluate::mix(seed, a as u64))?;
            out.replace(&idx, &adv)?;
        }
        if let Some(r) = &mut self.record {
            r.record(seed, x, y, &out)?;
        }
        Ok(out)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::Value::Array(self.parts.iter().map(|p| p.state()).collect())
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let states = state.as_array().filter(|s| s.len() == self.parts.len()).ok_or_else(|| {
            Error::invalid("the hardening counters of the checkpoint are not one per attack")
        })?;
        for (p, s) in self.parts.iter_mut().zip(states) {
            p.restore(s)?;
        }
        Ok(())
    }
}

/// A trainer adversary that also counts what it did to the examples it was handed.
trait Counting: Adversary {
    fn stats(&self) -> HardeningStats;
}

impl Counting for PluginAdversary<'_> {
    fn stats(&self) -> HardeningStats {
        self.stats
    }
}

impl Counting for Mixed<'_> {
    /// Summed over the attacks.
    fn stats(&self) -> HardeningStats {
        self.parts.iter().map(|p| p.stats).fold(HardeningStats::default(), |a, b| HardeningStats {
            examples: a.examples + b.examples,
            changed: a.changed + b.changed,
            violations: a.violations + b.violations,
        })
    }
}
