//! The host's judge for word-substitution attacks: the share of words changed, and the
//! constraints checked here rather than trusted to the plugin.
//!
//! Words are whitespace tokens, compared position by position. Read from the attack's
//! params (the files the plugin got, by the same convention):
//! - `stopwords`: a file, one word per line; a changed word that is one is a violation.
//! - `antonyms`: files of `word antonym` pairs (symmetric); a swap to an antonym of the
//!   replaced word is a violation.
//! - `max_change_ratio` (default 0.2, the text plugin's): changing more than
//!   ⌊words × ratio⌋ words is a violation.
//!
//! A changed word count is always a violation (a swap replaces a word by one word).
//! Comparisons ignore case. A list that cannot be read counts as a violation on every
//! example, with the reason in the note: the result could not be checked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::{Judge, Measure};
use crate::data::Examples;

/// The stop words and antonym pairs of one params set.
#[derive(Debug, Default)]
struct Lists {
    stopwords: HashSet<String>,
    antonyms: HashSet<(String, String)>,
    error: Option<String>,
}

#[derive(Default)]
pub struct TextJudge {
    /// By the params' file paths: read once per attack configuration.
    cache: Mutex<HashMap<String, Arc<Lists>>>,
}

fn paths(params: &serde_json::Value, key: &str) -> Vec<String> {
    match params.get(key) {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
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
    fn lists(&self, params: &serde_json::Value) -> Arc<Lists> {
        let (stop, ant) = (paths(params, "stopwords"), paths(params, "antonyms"));
        let key = format!("{stop:?}|{ant:?}");
        let mut cache = self.cache.lock().expect("judge cache");
        cache.entry(key).or_insert_with(|| Arc::new(read_lists(&stop, &ant))).clone()
    }
}

impl Judge for TextJudge {
    fn unit(&self) -> &'static str {
        "% words"
    }

    fn measure(
        &self,
        original: &Examples,
        adversarial: &Examples,
        i: usize,
        params: &serde_json::Value,
    ) -> Measure {
        let (Examples::Text(a), Examples::Text(b)) = (original, adversarial) else {
            return Measure { violations: 1, notes: vec!["not a text".into()], ..Default::default() };
        };
        let lists = self.lists(params);
        let (x, z): (Vec<&str>, Vec<&str>) =
            (a[i].split_whitespace().collect(), b[i].split_whitespace().collect());
        let mut m = Measure::default();
        let mut fail = |note: String| {
            m.violations += 1;
            m.notes.push(note);
        };
        if let Some(e) = &lists.error {
            fail(e.clone());
        }
        if x.len() != z.len() {
            fail(format!("the word count changed from {} to {}", x.len(), z.len()));
        }
        let mut changed = 0usize;
        for (w, v) in x.iter().zip(&z).filter(|(w, v)| w != v) {
            changed += 1;
            let (wl, vl) = (w.to_lowercase(), v.to_lowercase());
            if lists.stopwords.contains(&wl) {
                fail(format!("stop word `{w}` was swapped for `{v}`"));
            }
            if lists.antonyms.contains(&(wl, vl)) {
                fail(format!("`{w}` was swapped for its antonym `{v}`"));
            }
        }
        let ratio = params.get("max_change_ratio").and_then(|v| v.as_f64()).unwrap_or(0.2);
        let allowed = (x.len() as f64 * ratio + 1e-9).floor() as usize;
        if changed > allowed {
            fail(format!(
                "{changed} of {} words changed; max_change_ratio {ratio} allows {allowed}",
                x.len()
            ));
        }
        m.perturbation = if x.is_empty() { 0.0 } else { 100.0 * changed as f64 / x.len() as f64 };
        m.extra = vec![("words_changed", changed as f64)];
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge_with_lists() -> (TextJudge, serde_json::Value) {
        let d = std::env::temp_dir().join(format!("tempered-text-judge-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stop.txt"), "the\nnot\n").unwrap();
        std::fs::write(d.join("ant.txt"), "good bad \n").unwrap();
        let params = serde_json::json!({
            "stopwords": d.join("stop.txt"),
            "antonyms": [d.join("ant.txt")],
            "max_change_ratio": 0.25,
        });
        (TextJudge::default(), params)
    }

    fn measure(j: &TextJudge, params: &serde_json::Value, a: &str, b: &str) -> Measure {
        j.measure(&Examples::Text(vec![a.into()]), &Examples::Text(vec![b.into()]), 0, params)
    }

    #[test]
    fn a_clean_swap_is_measured_in_percent_of_words() {
        let (j, p) = judge_with_lists();
        let m = measure(&j, &p, "the film is good", "the movie is good");
        assert_eq!((m.violations, m.perturbation), (0, 25.0));
        assert_eq!(m.extra, [("words_changed", 1.0)]);
        assert_eq!(measure(&j, &p, "the film", "the film").perturbation, 0.0);
    }

    #[test]
    fn stop_words_antonyms_ratio_and_word_count_are_violations() {
        let (j, p) = judge_with_lists();
        let m = measure(&j, &p, "the film is good", "a film is good");
        assert_eq!(m.violations, 1, "{:?}", m.notes);
        assert!(m.notes[0].contains("stop word `the`"));
        let m = measure(&j, &p, "the film is Good", "the film is BAD");
        assert!(m.notes.iter().any(|n| n.contains("antonym")), "{:?}", m.notes);
        let m = measure(&j, &p, "the film is good", "the movie was good");
        assert!(m.notes.iter().any(|n| n.contains("max_change_ratio 0.25 allows 1")), "{:?}", m.notes);
        let m = measure(&j, &p, "the film is good", "the film is very good");
        assert!(m.notes.iter().any(|n| n.contains("word count changed from 4 to 5")), "{:?}", m.notes);
    }

    #[test]
    fn an_unreadable_list_is_a_violation_naming_it() {
        let p = serde_json::json!({"stopwords": "/nonexistent/stop.txt"});
        let m = measure(&TextJudge::default(), &p, "a film", "a film");
        assert_eq!(m.violations, 1);
        assert!(m.notes[0].contains("/nonexistent/stop.txt"), "{:?}", m.notes);
    }
}
