//! The three attacks driven through the plugin's C entry points against a bag-of-words
//! model, with small word lists written to a temporary folder. Where a test checks that a
//! constraint holds, it also runs without the constraint and checks that the attack then
//! does what the constraint forbids, so the test can fail.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use tempered_plugin::testing::{TestBatch, TestModel, TestOutcome, run};
use tempered_plugin::{Input, Perturbed, PluginError};
use tempered_text::{Beam, Pwws, TextFooler};

mod common;
use common::binary_probs;

type Runner = fn(&str, &TestBatch, &dyn TestModel) -> Result<TestOutcome, PluginError>;

const ATTACKS: [(&str, Runner); 3] =
    [("pwws", run::<Pwws>), ("textfooler", run::<TextFooler>), ("beam", run::<Beam>)];

/// p(class 1) = sigmoid(bias + Σ weight(word)); unknown words weigh 0. Its encoder, when
/// it has one, rates a sentence containing a "jarring" word 0.5 and anything else 1.
struct Bow {
    weights: HashMap<&'static str, f32>,
    bias: f32,
    encoder: bool,
    jarring: Vec<&'static str>,
    /// Extra weight of two words next to each other: the one way a word's best swap can
    /// depend on the others.
    pairs: Vec<(&'static str, &'static str, f32)>,
}

impl Bow {
    fn new(weights: &[(&'static str, f32)]) -> Self {
        Self {
            weights: weights.iter().copied().collect(),
            bias: -0.5,
            encoder: false,
            jarring: Vec::new(),
            pairs: Vec::new(),
        }
    }

    fn logit(&self, text: &str) -> f32 {
        let words: Vec<&str> = text.split_whitespace().collect();
        let pairs: f32 = words
            .windows(2)
            .flat_map(|w| self.pairs.iter().filter(move |p| (p.0, p.1) == (w[0], w[1])))
            .map(|p| p.2)
            .sum();
        self.bias + pairs + words.iter().map(|w| self.weights.get(w).copied().unwrap_or(0.0)).sum::<f32>()
    }

    fn label(&self, text: &str) -> u32 {
        u32::from(self.logit(text) > 0.0)
    }
}

impl TestModel for Bow {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        binary_probs(input, |t| self.logit(t))
    }
    fn loss_grad(&self, input: Input<'_>, _labels: &[u32]) -> (Vec<f32>, Vec<f32>) {
        panic!("the text attacks must not depend on loss_grad ({input:?})")
    }
    fn similarity(&self, _a: &str, b: &str) -> Option<f32> {
        self.encoder.then(|| if b.split_whitespace().any(|w| self.jarring.contains(&w)) { 0.5 } else { 1.0 })
    }
}

/// The default model: "good" is positive, and of its synonyms "fine" barely, "bad" very
/// negative (a bogus WordNet entry, vetoed by the antonym list).
fn model() -> Bow {
    Bow::new(&[
        ("good", 2.0),
        ("decent", 1.5),
        ("fine", 0.2),
        ("bad", -3.0),
        ("awful", -3.0),
        ("very", 2.5),
        ("nice", 1.0),
        ("pleasant", 0.9),
        ("lovely", 0.8),
        ("film", 0.1),
        ("movie", 0.3),
        ("dull", -1.1),
    ])
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tempered-text-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |f: &str, body: &str| std::fs::write(dir.join(f), body).unwrap();
        write(
            "syn.tsv",
            "good\tadj\tdecent\tfine\tbad\nfine\tadj\tawful\nfilm\tnoun\tmovie\nvery\tadv\treally\n\
             nice\tadj\tpleasant\n",
        );
        write("ppdb.txt", "nice lovely\n");
        write("antonyms.txt", "good bad \n");
        write("stop.txt", "a\nthe\nvery\nis\n");
        Self { dir }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    /// Params for `attack` with every list, overridden by `extra` (a `null` removes a key).
    fn params(&self, attack: &str, extra: Value) -> String {
        let mut p = json!({
            "synonyms": self.path("syn.tsv"),
            "antonyms": [self.path("antonyms.txt")],
            "stopwords": self.path("stop.txt"),
        });
        if attack != "pwws" {
            p["ppdb_synonyms"] = json!(self.path("ppdb.txt"));
        }
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p.to_string()
    }
}

fn batch(texts: &[&str], labels: &[u32]) -> TestBatch {
    TestBatch::text(texts.iter().map(|t| t.to_string()).collect(), labels.to_vec())
}

fn texts(out: &TestOutcome) -> &[String] {
    let Perturbed::Text(t) = &out.perturbed else { panic!("text expected") };
    t
}

/// Positions where `after` differs from `before`; same word count asserted.
fn changed(before: &str, after: &str) -> Vec<usize> {
    let (b, a): (Vec<&str>, Vec<&str>) =
        (before.split_whitespace().collect(), after.split_whitespace().collect());
    assert_eq!(a.len(), b.len(), "{before:?} → {after:?} changed the word count");
    (0..b.len()).filter(|&i| a[i] != b[i]).collect()
}

#[test]
fn a_single_synonym_swap_flips_the_label() {
    let f = Files::new("single");
    let m = model();
    let b = batch(&["a good film"], &[1]);
    for (name, attack) in ATTACKS {
        // 0.2 of three words rounds down to no change at all.
        let out = attack(&f.params(name, json!({})), &b, &m).unwrap();
        assert_eq!(texts(&out), ["a good film"], "{name}");
        let out = attack(&f.params(name, json!({"max_change_ratio": 0.34})), &b, &m).unwrap();
        assert_eq!(texts(&out), ["a fine film"], "{name}");
        assert_eq!(m.label(&texts(&out)[0]), 0, "{name}");
        // Clean + 2 probes + at most the 3 candidates of "good" and 1 of "film".
        assert!(out.queries[0] <= 7, "{name}: {:?}", out.queries);
    }
}

#[test]
fn stop_words_are_never_swapped() {
    let f = Files::new("stop");
    let m = model();
    // Flipping needs "very" → "really" as well as "good" → "fine".
    let b = batch(&["very good"], &[1]);
    for (name, attack) in ATTACKS {
        let out = attack(&f.params(name, json!({"max_change_ratio": 1.0})), &b, &m).unwrap();
        assert_eq!(texts(&out)[0].split(' ').next(), Some("very"), "{name}");
        assert_eq!(m.label(&texts(&out)[0]), 1, "{name}");
        let out =
            attack(&f.params(name, json!({"max_change_ratio": 1.0, "stopwords": null})), &b, &m).unwrap();
        assert_eq!(texts(&out), ["really fine"], "{name}: without a stop list, it is swapped");
    }
}

#[test]
fn no_swap_introduces_an_antonym_of_the_replaced_word() {
    let f = Files::new("antonym");
    let m = model();
    let b = batch(&["a good film", "good nice film"], &[1, 1]);
    for (name, attack) in ATTACKS {
        let out = attack(&f.params(name, json!({"max_change_ratio": 1.0})), &b, &m).unwrap();
        for t in texts(&out) {
            assert!(!t.split(' ').any(|w| w == "bad"), "{name}: {t}");
        }
        // Without the list, "bad" is the strongest swap and gets made.
        let out = attack(&f.params(name, json!({"max_change_ratio": 1.0, "antonyms": []})), &b, &m).unwrap();
        assert_eq!(texts(&out)[0], "a bad film", "{name}");
    }
}

#[test]
fn no_word_is_changed_twice() {
    let f = Files::new("twice");
    // good → fine helps a little; only fine → awful would flip: a second change.
    let m = Bow::new(&[("good", 3.0), ("fine", 2.0), ("decent", 2.5), ("awful", -5.0)]);
    let b = batch(&["good film", "good good"], &[1, 1]);
    for (name, attack) in ATTACKS {
        let out = attack(&f.params(name, json!({"max_change_ratio": 1.0})), &b, &m).unwrap();
        for (before, after) in ["good film", "good good"].iter().zip(texts(&out)) {
            for (w0, w1) in before.split(' ').zip(after.split(' ')) {
                let allowed: &[&str] = match w0 {
                    "good" => &["good", "decent", "fine"],
                    "film" => &["film", "movie"],
                    _ => unreachable!(),
                };
                assert!(allowed.contains(&w1), "{name}: {before:?} → {after:?}");
            }
            assert_eq!(m.label(after), 1, "{name}");
        }
    }
}

#[test]
fn at_most_max_change_ratio_of_the_words_change() {
    let f = Files::new("ratio");
    let m = model();
    // Logit 4.0; each good → fine lowers it by 1.8: three swaps (30 %) flip the label.
    let text = "good good good good good dull dull dull dull dull";
    let b = batch(&[text], &[1]);
    for (name, attack) in ATTACKS {
        let out = attack(&f.params(name, json!({})), &b, &m).unwrap();
        let n = changed(text, &texts(&out)[0]).len();
        assert!(n <= 2, "{name}: {n} of 10 words changed with ratio 0.2");
        assert_eq!(m.label(&texts(&out)[0]), 1, "{name}");
        let out = attack(&f.params(name, json!({"max_change_ratio": 1.0})), &b, &m).unwrap();
        assert!(changed(text, &texts(&out)[0]).len() > 2, "{name}: a ratio of 1 allows more");
        assert_eq!(m.label(&texts(&out)[0]), 0, "{name}");
    }
}

#[test]
fn never_more_queries_per_example_than_the_budget() {
    let f = Files::new("budget");
    let m = model();
    let text = "good good good good good dull dull dull dull dull";
    let b = batch(&[text, "a good film", text], &[1, 1, 1]);
    for (name, attack) in ATTACKS {
        for budget in [1u64, 4, 7] {
            let out =
                attack(&f.params(name, json!({"max_change_ratio": 1.0, "query_budget": budget})), &b, &m)
                    .unwrap();
            assert!(out.queries.iter().all(|&q| q <= budget), "{name}, budget {budget}: {:?}", out.queries);
            assert_eq!(texts(&out).len(), 3);
        }
        let out = attack(&f.params(name, json!({"max_change_ratio": 1.0})), &b, &m).unwrap();
        assert!(out.queries[0] > 7, "{name}: the budgets above did bind: {:?}", out.queries);
    }
}

#[test]
fn min_similarity_is_enforced_and_needs_an_encoder() {
    let f = Files::new("similarity");
    let mut m = model();
    m.encoder = true;
    m.jarring = vec!["fine"];
    let b = batch(&["a good film", "good nice film"], &[1, 1]);
    for (name, attack) in ATTACKS {
        let out =
            attack(&f.params(name, json!({"min_similarity": 0.9, "max_change_ratio": 1.0})), &b, &m).unwrap();
        for (before, after) in ["a good film", "good nice film"].iter().zip(texts(&out)) {
            assert!(m.similarity(before, after).unwrap() >= 0.9, "{name}: {after}");
        }
        assert_eq!(m.label(&texts(&out)[0]), 1, "{name}: the only flip is under the floor");
        let out =
            attack(&f.params(name, json!({"min_similarity": 0.4, "max_change_ratio": 1.0})), &b, &m).unwrap();
        assert_eq!(texts(&out)[0], "a fine film", "{name}: 0.5 passes a floor of 0.4");

        let e = attack(&f.params(name, json!({"min_similarity": 0.9})), &b, &model()).unwrap_err();
        assert!(e.0.contains(&format!("`{name}`")), "{name}: {e}");
        assert!(e.0.contains("min_similarity") && e.0.contains("encoder"), "{name}: {e}");
    }
}

#[test]
fn among_several_flips_the_most_similar_wins_when_there_is_an_encoder() {
    let f = Files::new("pick");
    let mut m = model();
    let b = batch(&["a good film"], &[1]);
    for (name, attack) in ATTACKS {
        m.encoder = false;
        let out = attack(&f.params(name, json!({"antonyms": [], "max_change_ratio": 0.34})), &b, &m).unwrap();
        assert_eq!(texts(&out), ["a bad film"], "{name}: lowest true-class probability");
        m.encoder = true;
        m.jarring = vec!["bad"];
        let out = attack(&f.params(name, json!({"antonyms": [], "max_change_ratio": 0.34})), &b, &m).unwrap();
        assert_eq!(texts(&out), ["a fine film"], "{name}: most similar");
    }
}

#[test]
fn same_input_and_seed_give_the_same_output() {
    let f = Files::new("repeat");
    let m = model();
    let mut b = batch(
        &["a good film", "good nice film nice good", "the film is nice", "good good good good good film"],
        &[1, 1, 1, 1],
    );
    b.seed = 42;
    for (name, attack) in ATTACKS {
        let p = f.params(name, json!({"max_change_ratio": 0.5}));
        let (x, y) = (attack(&p, &b, &m).unwrap(), attack(&p, &b, &m).unwrap());
        assert_eq!(x.perturbed, y.perturbed, "{name}");
        assert_eq!(x.queries, y.queries, "{name}");
    }
}

#[test]
fn misclassified_or_unswappable_examples_cost_one_query_and_come_back_unchanged() {
    let f = Files::new("skip");
    let m = model();
    // Wrong label; only stop words and unknown words; a flippable one, weirdly spaced.
    let b = batch(&["a good film", "the plot is", "a  good\tfilm"], &[0, 1, 1]);
    for (name, attack) in ATTACKS {
        let out = attack(&f.params(name, json!({"max_change_ratio": 1.0})), &b, &m).unwrap();
        assert_eq!(texts(&out)[..2], ["a good film", "the plot is"], "{name}");
        assert_eq!(texts(&out)[2], "a  fine\tfilm", "{name}: separators kept");
        assert_eq!(out.queries[..2], [1, 1], "{name}");
    }
}

#[test]
fn an_empty_batch_gives_an_empty_answer() {
    let f = Files::new("empty");
    for (name, attack) in ATTACKS {
        let out = attack(&f.params(name, json!({})), &batch(&[], &[]), &model()).unwrap();
        assert!(texts(&out).is_empty(), "{name}");
    }
}

#[test]
fn lazy_pwws_needs_fewer_queries_than_evaluating_every_word_first() {
    let f = Files::new("lazy");
    let m = model();
    // Logit 5.1: three of the four good → fine swaps flip it; the rest need not be scored.
    let text = "good good good good nice nice dull dull dull dull";
    let b = batch(&[text], &[1]);
    let lazy = run::<Pwws>(&f.params("pwws", json!({"max_change_ratio": 1.0})), &b, &m).unwrap();
    let full =
        run::<Pwws>(&f.params("pwws", json!({"max_change_ratio": 1.0, "lazy": false})), &b, &m).unwrap();
    assert_eq!(m.label(&texts(&lazy)[0]), 0);
    assert_eq!(m.label(&texts(&full)[0]), 0);
    assert!(lazy.queries[0] < full.queries[0], "lazy {:?}, full {:?}", lazy.queries, full.queries);
}

#[test]
fn pwws_rescores_a_words_synonyms_in_context_when_the_fixed_swaps_fail() {
    let f = Files::new("in-context");
    std::fs::write(f.dir.join("syn2.tsv"), "good\tadj\tdecent\tfine\nfilm\tnoun\tmovie\tpicture\n").unwrap();
    let mut m = Bow::new(&[("good", 2.0), ("decent", 1.5), ("fine", 0.2), ("film", 0.5), ("movie", -0.3)]);
    // On the clean text "fine" and "movie" are each word's best swap, but together they
    // read as praise: only "fine picture" flips it.
    m.pairs.push(("fine", "movie", 1.0));
    let b = batch(&["good film"], &[1]);
    let params = |in_context: bool| {
        f.params(
            "pwws",
            json!({"synonyms": f.path("syn2.tsv"), "max_change_ratio": 1.0, "in_context": in_context}),
        )
    };
    let replayed = run::<Pwws>(&params(true), &b, &m).unwrap();
    assert_eq!(texts(&replayed)[0], "fine picture");
    let fixed = run::<Pwws>(&params(false), &b, &m).unwrap();
    assert_eq!(m.label(&texts(&fixed)[0]), 1, "{:?}", texts(&fixed));
}

#[test]
fn file_errors_name_the_file_and_line() {
    let f = Files::new("errors");
    std::fs::write(f.dir.join("bad.tsv"), "good\tadj\tfine\nfilm\tnoun\n").unwrap();
    std::fs::write(f.dir.join("bad-pairs.txt"), "good bad\n\ngood\n").unwrap();
    let b = batch(&["a good film"], &[1]);
    for (name, attack) in ATTACKS {
        let missing = f.path("nope.tsv");
        let e = attack(&f.params(name, json!({"synonyms": missing})), &b, &model()).unwrap_err();
        assert!(e.0.contains(&missing), "{name}: {e}");
        let e = attack(&f.params(name, json!({"stopwords": f.path("nope.txt")})), &b, &model()).unwrap_err();
        assert!(e.0.contains(&f.path("nope.txt")), "{name}: {e}");
        let e = attack(&f.params(name, json!({"synonyms": f.path("bad.tsv")})), &b, &model()).unwrap_err();
        assert!(e.0.contains(&format!("{}:2:", f.path("bad.tsv"))), "{name}: {e}");
        let e = attack(&f.params(name, json!({"antonyms": [f.path("bad-pairs.txt")]})), &b, &model())
            .unwrap_err();
        assert!(e.0.contains(&format!("{}:3:", f.path("bad-pairs.txt"))), "{name}: {e}");
    }
    let e = run::<TextFooler>(
        &f.params("textfooler", json!({"ppdb_synonyms": f.path("bad-pairs.txt")})),
        &b,
        &model(),
    )
    .unwrap_err();
    assert!(e.0.contains(&format!("{}:3:", f.path("bad-pairs.txt"))), "{e}");
}

#[test]
fn params_are_checked() {
    let f = Files::new("params");
    let b = batch(&["a good film"], &[1]);
    let m = model();
    let e = run::<Pwws>(&f.params("pwws", json!({"beam_width": 2})), &b, &m).unwrap_err();
    assert!(e.0.contains("beam_width"), "{e}");
    let e = run::<Pwws>(&f.params("pwws", json!({"ppdb_synonyms": f.path("ppdb.txt")})), &b, &m).unwrap_err();
    assert!(e.0.contains("ppdb_synonyms"), "{e}");
    let e = run::<Pwws>(&f.params("pwws", json!({"synonyms": null})), &b, &m).unwrap_err();
    assert!(e.0.contains("synonyms"), "{e}");
    let e = run::<Beam>(&f.params("beam", json!({"beam_width": 0})), &b, &m).unwrap_err();
    assert!(e.0.contains("beam_width"), "{e}");
    let e = run::<TextFooler>(&f.params("textfooler", json!({"max_change_ratio": 1.5})), &b, &m).unwrap_err();
    assert!(e.0.contains("max_change_ratio"), "{e}");
    let e = run::<TextFooler>(&f.params("textfooler", json!({"query_budget": 0})), &b, &m).unwrap_err();
    assert!(e.0.contains("query_budget"), "{e}");
    let e = run::<Pwws>(&f.params("pwws", json!({"unk_token": "two words"})), &b, &m).unwrap_err();
    assert!(e.0.contains("unk_token"), "{e}");
}

#[test]
fn the_plugin_declares_its_four_attacks() {
    let decl = unsafe { &*tempered_text::tempered_plugin_v1() };
    assert_eq!(unsafe { decl.name.to_string_lossy() }, "text");
    assert_eq!(decl.modality, tempered_plugin::Modality::Text as u32);
    let attacks = unsafe { std::slice::from_raw_parts(decl.attacks, decl.n_attacks) };
    let names: Vec<String> = attacks.iter().map(|a| unsafe { a.name.to_string_lossy() }).collect();
    assert_eq!(names, ["pwws", "textfooler", "beam", "deepwordbug"]);
}

#[test]
fn a_batch_of_another_modality_is_refused() {
    let f = Files::new("modality");
    let b = TestBatch::dense(tempered_plugin::Modality::Tabular, vec![0.0; 4], 2, vec![0, 1]);
    for (name, attack) in ATTACKS {
        let e = attack(&f.params(name, json!({})), &b, &model()).unwrap_err();
        assert!(e.0.contains("tabular"), "{name}: {e}");
    }
}
