//! The word lists shipped in `data/` load, quickly enough, with sane sizes and contents.

use std::time::Instant;

use tempered_plugin::testing::{TestBatch, TestModel, run};
use tempered_plugin::{Input, Perturbed};
use tempered_text::{Lexicon, LexiconFiles, Pwws};

mod common;
use common::{binary_probs, data_path};

fn files() -> LexiconFiles {
    LexiconFiles {
        synonyms: data_path("wordnet-synonyms/wordnet-synonyms.tsv"),
        ppdb_synonyms: Some(data_path("counterfit-constraints/ppdb_synonyms.txt")),
        antonyms: vec![
            data_path("counterfit-constraints/ppdb_antonyms.txt"),
            data_path("counterfit-constraints/wordnet_antonyms.txt"),
        ],
        stopwords: Some(data_path("stopwords/english.txt")),
        max_candidates: None,
        inflections: true,
        base_forms: false,
        exceptions: None,
        lemmas: None,
    }
}

#[test]
fn the_shipped_lists_load_with_sane_contents() {
    let start = Instant::now();
    let lex = Lexicon::load(&files()).unwrap();
    let took = start.elapsed();
    // 40,424 WordNet headwords have a synonym; PPDB adds words of its own.
    let n = lex.n_words_with_candidates();
    assert!((40_424..60_000).contains(&n), "{n} words with candidates");
    assert_eq!(lex.n_stopwords(), 179);
    assert!(lex.is_stopword("the") && lex.is_stopword("not") && !lex.is_stopword("good"));

    let good = lex.candidates("good");
    assert!(good.iter().any(|c| c == "estimable") && good.iter().any(|c| c == "decent"), "{good:?}");
    for antonym in ["bad", "evil", "ill", "worse"] {
        assert!(!good.iter().any(|c| c == antonym), "{antonym} among {good:?}");
    }
    assert!(lex.candidates("movie").iter().any(|c| c == "film"));
    assert!(lex.candidates("terrible").iter().any(|c| c == "awful"));
    assert!(lex.candidates("films").iter().any(|c| c == "movies"));
    assert!(lex.candidates("the").is_empty());
    // A debug build reads the ~3 MB of lists in well under a second on a 2-core machine.
    assert!(took.as_secs_f32() < 5.0, "loading took {took:?}");

    let wordnet_only =
        Lexicon::load(&LexiconFiles { ppdb_synonyms: None, max_candidates: Some(5), ..files() }).unwrap();
    assert_eq!(wordnet_only.candidates("good").len(), 5);
    assert!(wordnet_only.n_words_with_candidates() < n);
}

/// Positive words push towards class 1, negative ones towards 0.
struct Sentiment;

impl Sentiment {
    fn logit(text: &str) -> f32 {
        text.split_whitespace()
            .map(|w| match w {
                "good" | "great" | "funny" | "moving" => 1.5,
                "dull" | "boring" | "tedious" => -2.0,
                _ => 0.0,
            })
            .sum()
    }
}

impl TestModel for Sentiment {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        binary_probs(input, Self::logit)
    }
    fn loss_grad(&self, _: Input<'_>, _: &[u32]) -> (Vec<f32>, Vec<f32>) {
        unimplemented!()
    }
}

#[test]
fn pwws_with_the_shipped_lists_flips_an_mr_style_review() {
    let f = files();
    let params = serde_json::json!({
        "synonyms": f.synonyms,
        "antonyms": f.antonyms,
        "stopwords": f.stopwords,
    });
    let text = "a good , funny and moving film , only occasionally dull .";
    let batch = TestBatch::text(vec![text.into()], vec![1]);
    let out = run::<Pwws>(&params.to_string(), &batch, &Sentiment).unwrap();
    let Perturbed::Text(t) = &out.perturbed else { panic!() };
    assert!(Sentiment::logit(&t[0]) < 0.0, "{t:?}");
    let changed = text.split(' ').zip(t[0].split(' ')).filter(|(a, b)| a != b).count();
    assert!((1..=2).contains(&changed), "{t:?}");
    assert!(out.queries[0] < 100, "{:?}", out.queries);
}
