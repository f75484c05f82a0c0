//! Text pipelines: CSV/TSV sentences, the word-CNN (or BERT), the word-swap judge,
//! adversarial pairs with the swapped words marked, the examples attack-in-the-loop
//! trained on, and the TextAttack-style summary.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempered_plugin::Modality;
use tempered_plugin::words::{word_count, words};

use super::{Parts, Prepare, Setup, Task, dataset, sanitize};
use crate::data::text::{self, TextDataConfig};
use crate::data::{Examples, Labelled};
use crate::evaluate::text::TextJudge;
use crate::evaluate::{self, Sample};
use crate::model::synonym_encoding::SynonymEncoding;
use crate::model::text::{TextModelConfig, TextModelKind};
use crate::model::word_cnn::{PAD, UNK, Vocab, WordCnn};
use crate::model::{Classifier, SentenceEncoder, bert};
use crate::pipeline::{Pipeline, SpecOf};
use crate::report::metrics::SynonymEncodingStats;
use crate::report::{Metrics, Phase, Section};
use crate::{Error, Result};

/// The word-CNN's vocabulary, saved with the run so `--resume` rebuilds the same model.
pub const VOCAB_FILE: &str = "tokenizer.json";

/// Fewer words than this and a model can only learn the class frequencies.
const MIN_VOCABULARY: usize = 20;

pub(super) struct Text {
    parts: Parts,
    encoder: Option<Arc<dyn SentenceEncoder>>,
    /// `[model] synonym_encoding`'s clusters, for the report.
    encoding: Option<SynonymEncodingStats>,
}

impl Prepare for Text {
    type Data = TextDataConfig;
    type Model = TextModelConfig;

    fn prepare(
        pipeline: &Pipeline,
        spec: &SpecOf<TextDataConfig, TextModelConfig>,
        setup: &Setup,
    ) -> Result<Self> {
        let (device, checkpoints) = (setup.device, setup.checkpoints);
        let seed = pipeline.seed();
        let data = text::load(&spec.data, &pipeline.base_dir, seed)?;
        let n_classes = data.classes.len();
        let splits = [&data.train, &data.validation, &data.test];
        let dataset =
            dataset(n_classes, splits, |s| Labelled { x: Examples::Text(s.texts.clone()), y: s.y.clone() });
        tracing::info!(
            "{}: {} classes ({}); train {}, validation {}, test {}",
            data.path.display(),
            n_classes,
            data.classes.join(", "),
            dataset.train.len(),
            dataset.validation.len(),
            dataset.test.len()
        );
        let mut encoding_stats = None;
        let model: Box<dyn Classifier> = match spec.model.kind {
            TextModelKind::WordCnn => {
                let encoding = match &spec.model.synonym_encoding {
                    Some(cfg) => {
                        Some(SynonymEncoding::build(cfg, &pipeline.base_dir, &data.train.texts).map_err(
                            |e| pipeline.config_error(&["model", "synonym_encoding"], &e.into_message()),
                        )?)
                    }
                    None => None,
                };
                let path = checkpoints.join(VOCAB_FILE);
                let mut vocab = if path.exists() {
                    Vocab::load(&path)?
                } else {
                    let v = match &encoding {
                        Some(e) => Vocab::build(
                            data.train.texts.iter().map(|t| e.encode_text(t)),
                            spec.model.min_count,
                        )?,
                        None => Vocab::build(data.train.texts.iter(), spec.model.min_count)?,
                    };
                    v.save(&path)?;
                    v
                };
                if let Some(e) = &encoding {
                    let aliases = e.aliases().into_iter().filter(|(w, r)| vocab.alias(w, r)).count();
                    let clusters = e.representatives().filter(|r| !matches!(vocab.id(r), PAD | UNK)).count();
                    tracing::info!(
                        "synonym encoding: {clusters} clusters in the vocabulary; {aliases} more words read as \
                         their representative"
                    );
                    encoding_stats =
                        Some(SynonymEncodingStats { clusters, aliases, vocabulary: vocab.len() });
                }
                let words = vocab.len();
                // Two of the entries are [PAD] and [UNK].
                if words < MIN_VOCABULARY + 2 {
                    return Err(pipeline.config_error(
                        &["model", "min_count"],
                        &format!(
                            "[model] min_count = {} leaves {} word(s) in the vocabulary of the {} training \
                             sentences; a model needs at least {MIN_VOCABULARY} to learn from its input: lower \
                             min_count",
                            spec.model.min_count,
                            words.saturating_sub(2),
                            dataset.train.len()
                        ),
                    ));
                }
                let m = WordCnn::new(&spec.model, vocab, n_classes, seed, device)?;
                tracing::info!(
                    "word-CNN: {words} words in the vocabulary, {} parameters",
                    crate::model::n_params(&m)
                );
                Box::new(m)
            }
            TextModelKind::Bert => {
                let cfg = spec.model.bert.as_ref().ok_or_else(|| {
                    pipeline
                        .config_error(&["model", "kind"], "model kind \"bert\" needs a [model.bert] table")
                })?;
                bert::load_classifier(cfg, &pipeline.base_dir, n_classes, seed, device)?
            }
        };
        let encoder = match &spec.model.encoder {
            Some(dir) => Some(Arc::from(bert::load_encoder(&pipeline.resolve(dir), device)?)),
            None => None,
        };
        Ok(Text {
            parts: Parts { dataset, model, judge: Box::new(TextJudge::new(encoder.clone())) },
            encoder,
            encoding: encoding_stats,
        })
    }
}

impl Task for Text {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn modality(&self) -> Modality {
        Modality::Text
    }

    fn encoder(&self) -> Option<&dyn SentenceEncoder> {
        self.encoder.as_deref()
    }

    fn save_samples(&self, dir: &Path, label: &str, samples: &[Sample]) -> Result<()> {
        save_samples(dir, label, samples)
    }

    fn render_samples(&self, _label: &str, samples: &[Sample]) -> String {
        render_samples(samples)
    }

    fn report_sections(&self, pipeline: &Pipeline, metrics: &mut Metrics, split: &Labelled) -> Vec<Section> {
        let mut out = vec![summary(pipeline, metrics, split)];
        if let Some(e) = self.encoding {
            metrics.synonym_encoding = Some(e);
            out.push(Section::new(
                "Synonym encoding",
                format!(
                    "The word-CNN reads the words of each synonym cluster as one word (`[model] \
                     synonym_encoding`): {} clusters have their representative in its vocabulary of {} \
                     words, and {} more words read as their cluster's representative. A swap inside a \
                     cluster changes nothing the model sees; the attacks above queried the model with \
                     the encoding inside.\n",
                    e.clusters,
                    e.vocabulary - 2,
                    e.aliases
                ),
            ));
        }
        out
    }

    fn recorder(&self, run_dir: &Path, base_seed: u64) -> Result<Option<Box<dyn super::Recorder>>> {
        Ok(Some(Box::new(Recorder::new(run_dir, base_seed)?)))
    }
}

fn texts(e: &Examples) -> &[String] {
    match e {
        Examples::Text(t) => t,
        Examples::Dense { .. } | Examples::Stored(_) => &[],
    }
}

/// Each sample with its original and adversarial text; samples without both are skipped.
fn text_pairs(samples: &[Sample]) -> impl Iterator<Item = (&Sample, &str, &str)> {
    samples.iter().filter_map(|s| {
        Some((s, texts(&s.original).first()?.as_str(), texts(&s.adversarial).first()?.as_str()))
    })
}

/// One line of a TSV file: tabs and line breaks inside a text become spaces.
fn tsv_field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// `samples/<label>.tsv`: the original and adversarial text of each kept example.
fn save_samples(dir: &Path, label: &str, samples: &[Sample]) -> Result<()> {
    let mut out = String::from(
        "example\tclass\tp_class_before\tp_class_after\tpredicted_after\twords_changed\toriginal\tadversarial\n",
    );
    for (s, a, b) in text_pairs(samples) {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            s.index,
            s.label,
            s.original_prob,
            s.adversarial_prob,
            s.adversarial_pred,
            words_changed(a, b),
            tsv_field(a),
            tsv_field(b)
        );
    }
    let path = dir.join(format!("{}.tsv", sanitize(label)));
    crate::files::write(&path, out.as_bytes())
}

fn words_changed(a: &str, b: &str) -> usize {
    words(a).zip(words(b)).filter(|(x, y)| x != y).count()
}

/// Markdown-safe text: no table breaks, no accidental emphasis.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '|' | '*' | '_' | '~' | '`' | '\\' | '[' | ']' | '<' | '>') {
            out.push('\\');
        }
        out.push(if c == '\n' { ' ' } else { c });
    }
    out
}

/// The adversarial text with each swap shown as `~~old~~ **new**`.
pub fn mark_swaps(original: &str, adversarial: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (words(original).collect(), words(adversarial).collect());
    if a.len() != b.len() {
        return format!("~~{}~~ **{}**", md(&clip(original)), md(&clip(adversarial)));
    }
    let shown = a.len().min(MAX_SHOWN_WORDS);
    let mut out = a[..shown]
        .iter()
        .zip(&b)
        .map(
            |(x, y)| if x == y { md(&clip(x)) } else { format!("~~{}~~ **{}**", md(&clip(x)), md(&clip(y))) },
        )
        .collect::<Vec<_>>()
        .join(" ");
    if shown < a.len() {
        let later = a[shown..].iter().zip(&b[shown..]).filter(|(x, y)| x != y).count();
        out.push_str(&format!(" … ({} more words, {later} of them swapped)", a.len() - shown));
    }
    out
}

/// A report echoes an example, not a megabyte of it.
const MAX_SHOWN_WORDS: usize = 120;
const MAX_SHOWN_CHARS: usize = 600;

fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]).into(),
        None => s.into(),
    }
}

fn render_samples(samples: &[Sample]) -> String {
    let mut s = String::from(
        "| example | class | p(class) before → after | adversarial text (~~original~~ **swap**) |\n|---|---|---|---|\n",
    );
    for (sample, a, b) in text_pairs(samples) {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} → {:.3} | {} |",
            sample.index,
            sample.label,
            sample.original_prob,
            sample.adversarial_prob,
            mark_swaps(a, b)
        );
    }
    s
}

/// Writes the examples attack-in-the-loop generates to `<run>/adversarial-training/`:
/// `epoch-N.tsv` for the training batches of epoch N, `epoch-N-validation.tsv` for the
/// validation examples attacked to score it.
///
/// The epoch is read from the batch seed the trainer hands the adversary,
/// `base ^ (epoch << 32) ^ batch` (`train::fit`); the validation call's seed has no epoch
/// bits and belongs to the epoch just trained.
struct Recorder {
    dir: PathBuf,
    base: u64,
    epoch: u64,
    started: HashSet<PathBuf>,
}

impl Recorder {
    fn new(run_dir: &Path, base_seed: u64) -> Result<Self> {
        let dir = run_dir.join("adversarial-training");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Self { dir, base: base_seed, epoch: 0, started: HashSet::new() })
    }
}

impl super::Recorder for Recorder {
    fn record(&mut self, seed: u64, original: &Examples, y: &[u32], adversarial: &Examples) -> Result<()> {
        let epoch = (seed ^ self.base) >> 32;
        let name = if epoch == 0 {
            format!("epoch-{}-validation.tsv", self.epoch)
        } else {
            self.epoch = epoch;
            format!("epoch-{epoch}.tsv")
        };
        let path = self.dir.join(name);
        // The first write of a run replaces what a crashed run may have left.
        let fresh = self.started.insert(path.clone());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(!fresh)
            .truncate(fresh)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut out = String::new();
        if fresh {
            out.push_str("class\twords_changed\toriginal\tadversarial\n");
        }
        for ((a, b), c) in texts(original).iter().zip(texts(adversarial)).zip(y) {
            let _ = writeln!(out, "{c}\t{}\t{}\t{}", words_changed(a, b), tsv_field(a), tsv_field(b));
        }
        file.write_all(out.as_bytes()).map_err(|e| Error::io(&path, e))
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.1}%", x * 100.0) } else { "–".into() }
}

/// Adds `words_per_input` (over the examples each attack ran on) to every attack's
/// `extra`, and renders TextAttack's attack summary, before and after hardening.
fn summary(pipeline: &Pipeline, metrics: &mut Metrics, split: &Labelled) -> Section {
    let Examples::Text(all) = &split.x else { return Section::new("Attack summary", "") };
    let limit = pipeline.spec.evaluate().examples;
    for a in metrics.attacks.iter_mut() {
        let classes = pipeline.spec.attacks().iter().find(|c| c.id == a.id).and_then(|c| c.classes.clone());
        let idx = evaluate::select(split, classes.as_deref(), limit);
        let words: usize = idx.iter().map(|&i| word_count(&all[i])).sum();
        a.extra.insert("words_per_input".into(), words as f64 / idx.len().max(1) as f64);
    }
    let mut runs: Vec<&crate::report::AttackMetrics> = metrics.attacks.iter().collect();
    let ids = metrics.attack_ids();
    runs.sort_by_key(|a| (ids.iter().position(|id| *id == a.id), a.phase == Phase::After));
    let mut s = String::from("| |");
    for a in &runs {
        let _ = write!(s, " `{}` ({}) |", a.id, a.phase);
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(runs.len()));
    s.push('\n');
    let row = |s: &mut String, name: &str, f: &dyn Fn(&crate::report::AttackMetrics) -> String| {
        let _ = write!(s, "| {name} |");
        for a in &runs {
            let _ = write!(s, " {} |", f(a));
        }
        s.push('\n');
    };
    row(&mut s, "Number of successful attacks", &|a| a.successes.to_string());
    row(&mut s, "Number of failed attacks", &|a| (a.attacked - a.successes).to_string());
    row(&mut s, "Number of skipped attacks", &|a| (a.examples - a.attacked).to_string());
    row(&mut s, "Original accuracy", &|a| pct(a.attacked as f64 / a.examples.max(1) as f64));
    row(&mut s, "Accuracy under attack", &|a| pct(a.robust_accuracy));
    row(&mut s, "Attack success rate", &|a| pct(a.success_rate));
    row(&mut s, "Average perturbed word %", &|a| {
        if a.mean_perturbation.is_finite() { format!("{:.2}%", a.mean_perturbation) } else { "–".into() }
    });
    row(&mut s, "Average num. words per input", &|a| {
        a.extra.get("words_per_input").map_or("–".into(), |v| format!("{v:.2}"))
    });
    row(&mut s, "Avg num queries", &|a| format!("{:.2}", a.mean_queries));
    row(&mut s, "Max queries (host-counted)", &|a| {
        a.extra.get("max_queries").map_or("–".into(), |v| format!("{v:.0}"))
    });
    row(&mut s, "Examples attacked per second", &|a| {
        if a.seconds > 0.0 { format!("{:.1}", a.attacked as f64 / a.seconds) } else { "–".into() }
    });
    s.push_str(
        "\nAs TextAttack reports it: skipped examples were misclassified before the attack; the success rate \
         and queries are over the attacked ones, the perturbed-word share over the successful ones.\n",
    );
    Section::new("Attack summary (TextAttack style)", s)
}

#[cfg(test)]
mod tests {
    use super::super::Recorder as _;
    use super::*;

    #[test]
    fn swaps_are_struck_through_and_bold() {
        assert_eq!(mark_swaps("a good film", "a decent film"), "a ~~good~~ **decent** film");
        assert_eq!(mark_swaps("it's *fun*", "it's *fun*"), "it's \\*fun\\*");
        assert_eq!(mark_swaps("a b", "a b c"), "~~a b~~ **a b c**");
    }

    #[test]
    fn a_huge_example_is_echoed_in_part() {
        let long: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
        let mut swapped = long.clone();
        (swapped[3], swapped[4000]) = ("x".into(), "y".into());
        let shown = mark_swaps(&long.join(" "), &swapped.join(" "));
        assert!(shown.len() < 2000, "{} bytes", shown.len());
        assert!(shown.contains("~~w3~~ **x**") && shown.ends_with("(4880 more words, 1 of them swapped)"));
        let word = "a".repeat(1_000_000);
        assert!(mark_swaps(&word, &word).chars().count() <= MAX_SHOWN_CHARS + 1);
    }

    #[test]
    fn the_recorder_files_examples_by_epoch() {
        let dir = std::env::temp_dir().join(format!("tempered-recorder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let base = 0x1234_5678_9abc;
        let mut r = Recorder::new(&dir, base).unwrap();
        let x = Examples::Text(vec!["a good film".into()]);
        let z = Examples::Text(vec!["a decent film".into()]);
        r.record(base ^ (2 << 32) ^ 3, &x, &[1], &z).unwrap();
        r.record(base ^ (2 << 32) ^ 4, &x, &[1], &x).unwrap();
        r.record(base ^ 0xA11CE, &x, &[0], &z).unwrap();
        let e2 = std::fs::read_to_string(dir.join("adversarial-training/epoch-2.tsv")).unwrap();
        assert_eq!(
            e2,
            "class\twords_changed\toriginal\tadversarial\n1\t1\ta good film\ta decent film\n1\t0\ta good film\ta good film\n"
        );
        assert!(dir.join("adversarial-training/epoch-2-validation.tsv").is_file());
    }
}
