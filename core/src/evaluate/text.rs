//! The host's judge for word-substitution attacks: the share of words changed, and the
//! constraints checked here rather than trusted to the plugin.
//!
//! Words are whitespace tokens, compared position by position; comparisons ignore case.
//! Always: a swap replaces a word by one word, so the word count must not change. Declared
//! budgets: `word_swaps` (at most ⌊words × ratio⌋ changed), `stop_words` and `no_antonyms`
//! (read from the files the attack names, once each), `min_similarity` (the pipeline's
//! sentence encoder, the one the plugin's oracle answers with). A list that cannot be read
//! breaks its budget on every example, with the reason in the note: nothing was checked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tempered_plugin::Budget;

use super::{Judge, Measure};
use crate::data::Examples;
use crate::model::SentenceEncoder;

/// The stop words and antonym pairs of one params set.
#[derive(Debug, Default)]
struct Lists {
    stopwords: HashSet<String>,
    antonyms: HashSet<(String, String)>,
    error: Option<String>,
}

#[derive(Default)]
pub struct TextJudge {
    /// By the files' paths: each set read once.
    cache: Mutex<HashMap<String, Arc<Lists>>>,
    /// The pipeline's sentence encoder, for `min_similarity`.
    encoder: Option<Arc<dyn SentenceEncoder>>,
}

fn read_lists(stopwords: &[String], antonyms: &[String]) -> Lists {
    let mut lists = Lists::default();
    let read = |p: &str, what: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read the {what} file {p} to check the attack: {e}"))
    };
    for p in stopwords {
        match read(p, "stop-word") {
            Ok(text) => lists
                .stopwords
                .extend(text.lines().map(|l| l.trim().to_lowercase()).filter(|l| !l.is_empty())),
            Err(e) => lists.error = Some(e),
        }
    }
    for p in antonyms {
        match read(p, "antonym") {
            Ok(text) => {
                for line in text.lines() {
                    let mut it = line.split_whitespace();
                    if let (Some(a), Some(b)) = (it.next(), it.next()) {
                        let (a, b) = (a.to_lowercase(), b.to_lowercase());
                        lists.antonyms.insert((b.clone(), a.clone()));
                        lists.antonyms.insert((a, b));
                    }
                }
            }
            Err(e) => lists.error = Some(e),
        }
    }
    lists
}

impl TextJudge {
    pub fn new(encoder: Option<Arc<dyn SentenceEncoder>>) -> Self {
        Self { cache: Mutex::default(), encoder }
    }

    fn lists(&self, stop: &[String], ant: &[String]) -> Arc<Lists> {
        let key = format!("{stop:?}|{ant:?}");
        let mut cache = self.cache.lock().expect("judge cache");
        cache.entry(key).or_insert_with(|| Arc::new(read_lists(stop, ant))).clone()
    }
}

impl Judge for TextJudge {
    fn unit(&self) -> &'static str {
        "% words"
    }

    fn verifies(&self, budget: &Budget) -> Result<(), String> {
        match budget {
            Budget::WordSwaps { .. } | Budget::StopWords { .. } | Budget::NoAntonyms { .. } => Ok(()),
            Budget::MinSimilarity { .. } if self.encoder.is_none() => {
                Err("the pipeline names no sentence encoder ([model] encoder) to check it with".into())
            }
            Budget::MinSimilarity { .. } => Ok(()),
            b => Err(format!("`{b}` is not a budget of texts")),
        }
    }

    fn measure(&self, original: &Examples, adversarial: &Examples, i: usize, budgets: &[Budget]) -> Measure {
        let (Examples::Text(a), Examples::Text(b)) = (original, adversarial) else {
            return Measure { violations: 1, notes: vec!["not a text".into()], ..Default::default() };
        };
        let (x, z): (Vec<&str>, Vec<&str>) =
            (a[i].split_whitespace().collect(), b[i].split_whitespace().collect());
        let mut m = Measure::default();
        if x.len() != z.len() {
            m.fail(format!("the word count changed from {} to {}", x.len(), z.len()));
        }
        let swaps: Vec<(&str, &str)> =
            x.iter().zip(&z).filter(|(w, v)| w != v).map(|(w, v)| (*w, *v)).collect();
        let changed = swaps.len();
        for (k, budget) in budgets.iter().enumerate() {
            match budget {
                Budget::WordSwaps { max_ratio } => {
                    let allowed = (x.len() as f64 * max_ratio + 1e-9).floor() as usize;
                    if changed > allowed {
                        m.fail_budget(
                            k,
                            format!(
                                "{changed} of {} words changed; a ratio of {max_ratio} allows {allowed}",
                                x.len()
                            ),
                        );
                    }
                }
                Budget::StopWords { files } => {
                    let lists = self.lists(files, &[]);
                    if let Some(e) = &lists.error {
                        m.fail_budget(k, e.clone());
                    } else if let Some((w, v)) =
                        swaps.iter().find(|(w, _)| lists.stopwords.contains(&w.to_lowercase()))
                    {
                        m.fail_budget(k, format!("stop word `{w}` was swapped for `{v}`"));
                    }
                }
                Budget::NoAntonyms { files } => {
                    let lists = self.lists(&[], files);
                    if let Some(e) = &lists.error {
                        m.fail_budget(k, e.clone());
                    } else if let Some((w, v)) = swaps
                        .iter()
                        .find(|(w, v)| lists.antonyms.contains(&(w.to_lowercase(), v.to_lowercase())))
                    {
                        m.fail_budget(k, format!("`{w}` was swapped for its antonym `{v}`"));
                    }
                }
                Budget::MinSimilarity { floor } => {
                    let Some(encoder) = &self.encoder else { continue };
                    if changed == 0 {
                        continue;
                    }
                    match encoder.similarity(&[a[i].as_str()], &[b[i].as_str()]) {
                        // The encoder runs in f32; the plugin saw the same numbers through the oracle.
                        Ok(sim) if f64::from(sim[0]) + 1e-6 >= *floor => {}
                        Ok(sim) => {
                            m.fail_budget(k, format!("sentence similarity {:.4} is below {floor}", sim[0]))
                        }
                        Err(e) => {
                            m.fail_budget(k, format!("could not compute the similarity to check it: {e}"))
                        }
                    }
                }
                _ => {}
            }
        }
        m.perturbation = if x.is_empty() { 0.0 } else { 100.0 * changed as f64 / x.len() as f64 };
        m.extra = vec![("words_changed", changed as f64)];
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Vec<Budget> {
        let d = std::env::temp_dir().join(format!("tempered-text-judge-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stop.txt"), "the\nnot\n").unwrap();
        std::fs::write(d.join("ant.txt"), "good bad \n").unwrap();
        let path = |f: &str| d.join(f).to_string_lossy().into_owned();
        vec![
            Budget::StopWords { files: vec![path("stop.txt")] },
            Budget::NoAntonyms { files: vec![path("ant.txt")] },
            Budget::WordSwaps { max_ratio: 0.25 },
        ]
    }

    fn measure(j: &TextJudge, budgets: &[Budget], a: &str, b: &str) -> Measure {
        j.measure(&Examples::Text(vec![a.into()]), &Examples::Text(vec![b.into()]), 0, budgets)
    }

    #[test]
    fn a_clean_swap_is_measured_in_percent_of_words() {
        let (j, b) = (TextJudge::default(), budgets());
        let m = measure(&j, &b, "the film is good", "the movie is good");
        assert_eq!((m.violations, m.perturbation), (0, 25.0));
        assert_eq!(m.extra, [("words_changed", 1.0)]);
        assert_eq!(measure(&j, &b, "the film", "the film").perturbation, 0.0);
    }

    #[test]
    fn stop_words_antonyms_and_the_ratio_break_their_budgets() {
        let (j, b) = (TextJudge::default(), budgets());
        let m = measure(&j, &b, "the film is good", "a film is good");
        assert_eq!((m.violations, m.broken.as_slice()), (1, &[0][..]), "{:?}", m.notes);
        assert!(m.notes[0].contains("stop word `the`"));
        let m = measure(&j, &b, "the film is Good", "the film is BAD");
        assert_eq!(m.broken, [1], "{:?}", m.notes);
        assert!(m.notes[0].contains("antonym"), "{:?}", m.notes);
        let m = measure(&j, &b, "the film is good", "the movie was good");
        assert_eq!(m.broken, [2], "{:?}", m.notes);
        assert!(m.notes[0].contains("a ratio of 0.25 allows 1"), "{:?}", m.notes);
    }

    #[test]
    fn the_word_count_is_always_checked_and_budgets_never_guessed() {
        let j = TextJudge::default();
        let m = measure(&j, &[], "the film is good", "the film is very good");
        assert_eq!(m.violations, 1);
        assert!(m.notes[0].contains("word count changed from 4 to 5"), "{:?}", m.notes);
        assert!(m.broken.is_empty());
        assert_eq!(measure(&j, &[], "the film is good", "a movie was bad").violations, 0);
    }

    #[test]
    fn an_unreadable_list_breaks_its_budget_naming_it() {
        let b = [Budget::StopWords { files: vec!["/nonexistent/stop.txt".into()] }];
        let m = measure(&TextJudge::default(), &b, "a film", "a film");
        assert_eq!(m.broken, [0]);
        assert!(m.notes[0].contains("/nonexistent/stop.txt"), "{:?}", m.notes);
    }

    struct Overlap;

    impl SentenceEncoder for Overlap {
        /// The share of positions with the same word: enough to test the floor.
        fn similarity(&self, a: &[&str], b: &[&str]) -> crate::Result<Vec<f32>> {
            Ok(a.iter()
                .zip(b)
                .map(|(x, y)| {
                    let (x, y): (Vec<_>, Vec<_>) = (x.split(' ').collect(), y.split(' ').collect());
                    x.iter().zip(&y).filter(|(u, v)| u == v).count() as f32 / x.len() as f32
                })
                .collect())
        }
    }

    #[test]
    fn the_similarity_floor_is_checked_with_the_pipelines_encoder() {
        let floor = [Budget::MinSimilarity { floor: 0.7 }];
        assert!(TextJudge::default().verifies(&floor[0]).is_err(), "no encoder: not verified");
        let j = TextJudge::new(Some(Arc::new(Overlap)));
        assert!(j.verifies(&floor[0]).is_ok());
        assert_eq!(measure(&j, &floor, "the film is good", "the movie is good").violations, 0);
        let m = measure(&j, &floor, "the film is good", "a movie is good");
        assert_eq!(m.broken, [0]);
        assert!(m.notes[0].contains("sentence similarity 0.5000 is below 0.7"), "{:?}", m.notes);
    }
}
