//! `deepwordbug` driven through the plugin's C entry points against a bag-of-words model
//! with a vocabulary (an unknown word weighs nothing, as the word-CNN reads it as `[UNK]`).
//! Every run goes through `testing::run`, which fails on anything the engine would count
//! as a violation, the declared character-edit budget included. Where a test checks that a
//! limit holds, it also runs without the limit and sees the attack go past it.

use serde_json::{Value, json};
use tempered_plugin::judge::{char_edits, char_edits_within};
use tempered_plugin::testing::{TestBatch, TestModel, TestOutcome, run};
use tempered_plugin::{Budget, Input, Perturbed};
use tempered_text::DeepWordBug;

mod common;
use common::binary_probs;

/// p(class 1) = σ(bias + Σ weight(word)) over a vocabulary listed most frequent first. With
/// `normalise`, a word outside the vocabulary is first replaced by the first listed word
/// within one character edit (a spelling-normalising defence in front of the model).
struct Vocab {
    words: Vec<(&'static str, f32)>,
    normalise: bool,
}

impl Vocab {
    fn new(words: &[(&'static str, f32)]) -> Self {
        Self { words: words.to_vec(), normalise: false }
    }

    fn weight(&self, w: &str) -> Option<f32> {
        self.words.iter().find(|(v, _)| *v == w).map(|(_, x)| *x)
    }

    fn logit(&self, text: &str) -> f32 {
        let word = |w: &str| match self.weight(w) {
            Some(x) => x,
            None if self.normalise => {
                self.words.iter().find(|(v, _)| char_edits_within(v, w, 1).is_some()).map_or(0.0, |(_, x)| *x)
            }
            None => 0.0,
        };
        -0.5 + text.split_whitespace().map(word).sum::<f32>()
    }

    fn label(&self, text: &str) -> u32 {
        u32::from(self.logit(text) > 0.0)
    }
}

impl TestModel for Vocab {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        binary_probs(input, |t| self.logit(t))
    }
    fn loss_grad(&self, input: Input<'_>, _labels: &[u32]) -> (Vec<f32>, Vec<f32>) {
        panic!("deepwordbug only queries ({input:?})")
    }
}

fn model() -> Vocab {
    Vocab::new(&[("good", 3.0), ("film", 0.1), ("god", 0.0), ("goad", 0.0), ("dull", -0.5)])
}

fn attack(params: Value, texts: &[&str], model: &Vocab) -> TestOutcome {
    let b = TestBatch::text(texts.iter().map(|t| t.to_string()).collect(), vec![1; texts.len()]);
    run::<DeepWordBug>(&params.to_string(), &b, model).unwrap_or_else(|e| panic!("{e}"))
}

fn texts(out: &TestOutcome) -> &[String] {
    let Perturbed::Text(t) = &out.perturbed else { panic!("text expected") };
    t
}

/// `(position, before, after)` of each edited word; the word count is kept.
fn edits(before: &str, after: &str) -> Vec<(usize, String, String)> {
    let (b, a): (Vec<&str>, Vec<&str>) =
        (before.split_whitespace().collect(), after.split_whitespace().collect());
    assert_eq!(a.len(), b.len(), "{before:?} → {after:?} changed the word count");
    (0..b.len()).filter(|&i| a[i] != b[i]).map(|i| (i, b[i].to_owned(), a[i].to_owned())).collect()
}

#[test]
fn one_typo_in_the_most_important_word_flips_the_label() {
    let m = model();
    let out = attack(json!({"max_change_ratio": 0.34}), &["a good film"], &m);
    let t = &texts(&out)[0];
    let e = edits("a good film", t);
    assert_eq!(e.len(), 1, "{t}");
    assert_eq!((e[0].0, e[0].1.as_str()), (1, "good"), "the word whose deletion costs most: {t}");
    assert_eq!(char_edits("good", &e[0].2), 1);
    assert_eq!(m.label(t), 0);
    // The clean text, 3 deletion probes, then the 4 edits of "good": it flips there.
    assert!(out.queries[0] <= 8, "{:?}", out.queries);
    assert_eq!(
        out.threat.budgets,
        [Budget::CharEdits { max_per_word: 1, max_ratio: 0.34 }, Budget::Queries { max: 2000 }]
    );
    // 0.2 of three words rounds down to no edit at all.
    let out = attack(json!({}), &["a good film"], &m);
    assert_eq!(texts(&out), ["a good film"]);
    assert_eq!(out.queries, [1], "a text with no room to edit costs its clean query only");
}

#[test]
fn stop_words_are_never_edited() {
    let dir = std::env::temp_dir().join(format!("tempered-dwb-stop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stop = dir.join("stop.txt");
    std::fs::write(&stop, "a\nGood\n").unwrap();
    let m = model();
    let p = json!({"max_change_ratio": 1.0, "stopwords": stop.display().to_string()});
    let out = attack(p, &["a good film"], &m);
    let t = &texts(&out)[0];
    assert!(edits("a good film", t).iter().all(|(_, w, _)| w == "film"), "{t}");
    assert_eq!(m.label(t), 1, "without `good` nothing flips it");
    assert!(out.threat.budgets.iter().any(|b| matches!(b, Budget::StopWords { .. })));
    let out = attack(json!({"max_change_ratio": 1.0}), &["a good film"], &m);
    assert!(edits("a good film", &texts(&out)[0]).iter().any(|(_, w, _)| w == "good"), "no stop list");
}

#[test]
fn at_most_max_change_ratio_of_the_words_are_edited_and_k_edits_each() {
    // Each "good" is worth 1.0 over a bias of -0.5 and five "dull"s: three typos flip it.
    let m = Vocab::new(&[("good", 1.0), ("dull", -0.1)]);
    let text = "good good good good good dull dull dull dull dull";
    let out = attack(json!({}), &[text], &m);
    let t = &texts(&out)[0];
    assert!(edits(text, t).len() <= 2, "ratio 0.2 of 10 words: {t}");
    assert_eq!(m.label(t), 1);
    let out = attack(json!({"max_change_ratio": 1.0}), &[text], &m);
    let t = &texts(&out)[0];
    assert!(edits(text, t).len() > 2, "{t}");
    assert_eq!(m.label(t), 0);
    // Two edits per word: declared, made, and within what the host allows.
    let out = attack(json!({"max_change_ratio": 1.0, "max_edits_per_word": 2}), &[text], &m);
    assert_eq!(out.threat.budgets[0], Budget::CharEdits { max_per_word: 2, max_ratio: 1.0 });
    let e = edits(text, &texts(&out)[0]);
    assert!(e.iter().all(|(_, a, b)| char_edits(a, b) <= 2), "{e:?}");
    assert!(e.iter().any(|(_, a, b)| char_edits(a, b) == 2), "two edits are made: {e:?}");
}

#[test]
fn never_more_queries_than_its_budget_or_the_hosts_cap() {
    let m = Vocab::new(&[("good", 1.0), ("dull", -0.1)]);
    let text = "good good good good good dull dull dull dull dull";
    let out = attack(json!({"max_change_ratio": 1.0, "query_budget": 6}), &[text, text], &m);
    assert!(out.queries.iter().all(|&q| q <= 6), "{:?}", out.queries);
    let mut b = TestBatch::text(vec![text.to_owned()], vec![1]);
    b.query_budget = Some(4);
    let out = run::<DeepWordBug>(&json!({"max_change_ratio": 1.0}).to_string(), &b, &m).unwrap();
    assert!(out.queries[0] <= 4, "the host's lower cap binds: {:?}", out.queries);
}

#[test]
fn the_same_seed_makes_the_same_typos() {
    let m = Vocab::new(&[("good", 1.0), ("dull", -0.1)]);
    let text = "good good good good good dull dull dull dull dull";
    let p = json!({"max_change_ratio": 1.0, "candidates": 3});
    let runs: Vec<Vec<String>> = (0..2).map(|_| texts(&attack(p.clone(), &[text], &m)).to_vec()).collect();
    assert_eq!(runs[0], runs[1]);
}

/// What the spelling defence does to the attack: typos crafted on the plain model are
/// undone by the normaliser (every misspelling of "good" is one edit from "good", listed
/// first), and the attack run against the normalised model instead has to find a typo that
/// lands on another real word ("god", "goad"), which it does given enough draws.
#[test]
fn against_a_normaliser_only_typos_that_make_another_word_get_through() {
    let plain = model();
    let defended = Vocab { normalise: true, ..model() };
    let p = json!({"max_change_ratio": 0.34});
    let crafted = attack(p, &["a good film"], &plain);
    let t = &texts(&crafted)[0];
    assert_eq!(plain.label(t), 0, "{t}");
    assert_eq!(defended.label(t), 1, "transferred, the typo is undone: {t}");

    let adaptive = attack(json!({"max_change_ratio": 0.34, "candidates": 10}), &["a good film"], &defended);
    let t = &texts(&adaptive)[0];
    assert_eq!(defended.label(t), 0, "{t}");
    let e = edits("a good film", t);
    assert!(defended.weight(&e[0].2).is_some(), "the typo is a word the model knows: {t}");
}

#[test]
fn bad_params_are_refused() {
    let err = |p: Value| {
        let b = TestBatch::text(vec!["a good film".into()], vec![1]);
        run::<DeepWordBug>(&p.to_string(), &b, &model()).unwrap_err().0
    };
    assert!(err(json!({"max_edits_per_word": 0})).contains("max_edits_per_word must be at least 1"));
    assert!(err(json!({"max_change_ratio": 1.5})).contains("max_change_ratio must be in [0, 1]"));
    assert!(err(json!({"candidates": 0})).contains("candidates must be at least 1"));
    assert!(err(json!({"synonyms": "wn.tsv"})).contains("unknown field `synonyms`"));
    assert!(err(json!({"stopwords": "/nonexistent/stop.txt"})).contains("/nonexistent/stop.txt"));
}
