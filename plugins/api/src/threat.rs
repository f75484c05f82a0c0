//! The threat model as data: what an attack promises about every example it returns.
//!
//! An attack declares its budgets through [`Attack::threat_model`](crate::Attack::threat_model);
//! the engine checks every declared budget on every example it gets back, in evaluation and
//! in hardening, and counts an example that breaks one as a violation, never as a success.
//! A budget the attack does not declare is reported as "not verified by the host": the
//! engine never guesses budgets from parameter names.
//!
//! Besides these, the host always enforces the modality's own rules, declared or not:
//! tabular rows keep immutable columns, bounds, integers, binaries and one-hot groups;
//! waveforms stay finite and within [-1, 1]; a text keeps its number of words.

use serde::{Deserialize, Serialize};

/// Everything an attack promises. Empty: the attack declares nothing the host can check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThreatModel {
    pub budgets: Vec<Budget>,
}

impl ThreatModel {
    pub fn new(budgets: impl IntoIterator<Item = Budget>) -> Self {
        Self { budgets: budgets.into_iter().collect() }
    }

    /// Adds `budget` (builder style).
    pub fn with(mut self, budget: Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Adds `budget` when it is `Some`.
    pub fn with_opt(self, budget: Option<Budget>) -> Self {
        match budget {
            Some(b) => self.with(b),
            None => self,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }

    /// Refuses a budget that no example could be checked against (NaN, a negative size, a
    /// budget of a modality the attack does not perturb).
    pub fn validate(&self, modality: crate::Modality) -> Result<(), String> {
        for b in &self.budgets {
            b.validate(modality)?;
        }
        Ok(())
    }
}

/// One promise. Sizes are inclusive upper bounds (floors for `snr_floor` and
/// `min_similarity`); the host allows only float round-off beyond them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Budget {
    /// Tabular: no continuous or integer column moves by more than `epsilon` standard
    /// deviations ([`Column::scale`](crate::Column::scale) raw units each).
    LinfStd { epsilon: f64 },
    /// Tabular: the change over continuous and integer columns, each divided by its
    /// `scale`, has an L2 norm of at most `epsilon`.
    L2Std { epsilon: f64 },
    /// Tabular: the attacker's cost `Σ_j cost_j · |Δ_j|` (raw units, every column) is at
    /// most `budget`.
    Cost { budget: f64 },
    /// Audio: no sample moves by more than `epsilon` (amplitude, full scale 1).
    Linf { epsilon: f64 },
    /// Audio: `10·log10(Σ x² / Σ (x_adv − x)²)` over the whole row is at least `db`.
    SnrFloor { db: f64 },
    /// Audio: the example is the original moved earlier or later by a whole number of
    /// samples, at most `max_seconds` worth, with silence filling the gap.
    TimeShift { max_seconds: f64 },
    /// Text: words are swapped one for one (whitespace tokens, position by position), at
    /// most `⌊words · max_ratio⌋` of them.
    WordSwaps { max_ratio: f64 },
    /// Text: character-level edits (DeepWordBug-style typos), word by word: at most
    /// `⌊words · max_ratio⌋` words differ, position by position, and each differs from its
    /// original by at most `max_per_word` edits (an insertion, a deletion, a substitution or
    /// a swap of two adjacent characters each: the optimal-string-alignment distance, over
    /// Unicode scalar values, see [`judge::char_edits`](crate::judge::char_edits)).
    CharEdits { max_per_word: u32, max_ratio: f64 },
    /// Text: no word listed in these files (one word per line, any case) is swapped.
    StopWords { files: Vec<String> },
    /// Text: no word is swapped for its antonym, as listed in these files (`word antonym`
    /// per line, either order).
    NoAntonyms { files: Vec<String> },
    /// Text: every swapped word is one the synonym table offers for the original word (case
    /// aside), by the rules of [`lexicon`](crate::lexicon) and the attack's own files.
    Synonyms(SynonymSource),
    /// Text: the cosine similarity of the pipeline's sentence embeddings of the original
    /// and the adversarial text is at least `floor`.
    MinSimilarity { floor: f64 },
    /// Any modality: at most `max` oracle rows are spent on each example.
    Queries { max: u64 },
}

impl Budget {
    /// The modality this budget applies to; `None` for all.
    pub fn modality(&self) -> Option<crate::Modality> {
        use crate::Modality::*;
        match self {
            Budget::LinfStd { .. } | Budget::L2Std { .. } | Budget::Cost { .. } => Some(Tabular),
            Budget::Linf { .. } | Budget::SnrFloor { .. } | Budget::TimeShift { .. } => Some(Audio),
            Budget::WordSwaps { .. }
            | Budget::CharEdits { .. }
            | Budget::Synonyms(_)
            | Budget::StopWords { .. }
            | Budget::NoAntonyms { .. }
            | Budget::MinSimilarity { .. } => Some(Text),
            Budget::Queries { .. } => None,
        }
    }

    fn validate(&self, modality: crate::Modality) -> Result<(), String> {
        if let Some(m) = self.modality()
            && m != modality
        {
            return Err(format!("the budget `{self}` is for {m} examples, and this is a {modality} attack"));
        }
        let size = match self {
            Budget::LinfStd { epsilon } | Budget::L2Std { epsilon } | Budget::Linf { epsilon } => *epsilon,
            Budget::Cost { budget } => *budget,
            Budget::TimeShift { max_seconds } => *max_seconds,
            Budget::WordSwaps { max_ratio } | Budget::CharEdits { max_ratio, .. } => {
                if !(0.0..=1.0).contains(max_ratio) {
                    return Err(format!("the budget `{self}` needs max_ratio in [0, 1]"));
                }
                *max_ratio
            }
            Budget::SnrFloor { db } => {
                if db.is_nan() {
                    return Err(format!("the budget `{self}` has no value"));
                }
                return Ok(());
            }
            Budget::MinSimilarity { floor } => {
                if !(-1.0..=1.0).contains(floor) {
                    return Err(format!("the budget `{self}` needs a floor in [-1, 1]"));
                }
                return Ok(());
            }
            Budget::StopWords { files } | Budget::NoAntonyms { files } => {
                if files.is_empty() {
                    return Err(format!("the budget `{self}` names no file"));
                }
                return Ok(());
            }
            Budget::Synonyms(source) => {
                if source.table.is_empty() {
                    return Err(format!("the budget `{self}` names no synonym table"));
                }
                return Ok(());
            }
            Budget::Queries { .. } => return Ok(()),
        };
        if !(size.is_finite() && size >= 0.0) {
            return Err(format!("the budget `{self}` must be a finite size of 0 or more"));
        }
        Ok(())
    }
}

/// Where a text attack's synonyms come from: the files and switches of its
/// [`LexiconFiles`](crate::lexicon::LexiconFiles) (paths as the attack read them), so the
/// host rebuilds the very candidate lists the attack drew from. Stop words and the cut to
/// `max_candidates` are left out: stop words are a budget of their own, and a cut list
/// only narrows what the table offers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SynonymSource {
    /// `word<TAB>pos<TAB>syn…` lines (WordNet).
    pub table: String,
    /// `word synonym` pairs, taken as symmetric (PPDB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppdb: Option<String>,
    /// `word antonym` pairs that veto a candidate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub antonyms: Vec<String>,
    /// A word the table lacks is looked up by its base form and the candidates re-inflected.
    #[serde(default)]
    pub inflections: bool,
    /// WordNet's base forms of the word and their synonyms are offered too.
    #[serde(default)]
    pub base_forms: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exceptions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lemmas: Option<String>,
}

impl SynonymSource {
    /// The source `files` describe.
    pub fn of(files: &crate::lexicon::LexiconFiles) -> Self {
        let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
        Self {
            table: s(&files.synonyms),
            ppdb: files.ppdb_synonyms.as_deref().map(s),
            antonyms: files.antonyms.iter().map(|p| s(p)).collect(),
            inflections: files.inflections,
            base_forms: files.base_forms,
            exceptions: files.exceptions.as_deref().map(s),
            lemmas: files.lemmas.as_deref().map(s),
        }
    }

    /// The files to load the whole table from (no stop words, no cut).
    pub fn files(&self) -> crate::lexicon::LexiconFiles {
        crate::lexicon::LexiconFiles {
            synonyms: self.table.clone().into(),
            ppdb_synonyms: self.ppdb.clone().map(Into::into),
            antonyms: self.antonyms.iter().map(Into::into).collect(),
            stopwords: None,
            max_candidates: None,
            inflections: self.inflections,
            base_forms: self.base_forms,
            exceptions: self.exceptions.clone().map(Into::into),
            lemmas: self.lemmas.clone().map(Into::into),
        }
    }
}

/// `v` as the user most likely wrote it: a value that came from an `f32` parameter (0.1f32
/// is 0.10000000149011612 in f64) is shown as that `f32`.
fn num(v: f64) -> String {
    let single = v as f32;
    if f64::from(single) == v { format!("{single}") } else { format!("{v}") }
}

/// How reports name a budget: `L∞ ≤ 0.5 std`, `SNR ≥ 30 dB`, `≤ 2000 queries`.
impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |files: &[String]| {
            files
                .iter()
                .map(|p| p.rsplit(['/', '\\']).next().unwrap_or(p).to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Budget::LinfStd { epsilon } => write!(f, "L∞ ≤ {} std", num(*epsilon)),
            Budget::L2Std { epsilon } => write!(f, "L2 ≤ {} std", num(*epsilon)),
            Budget::Cost { budget } => write!(f, "cost ≤ {}", num(*budget)),
            Budget::Linf { epsilon } => write!(f, "L∞ ≤ {}", num(*epsilon)),
            Budget::SnrFloor { db } => write!(f, "SNR ≥ {} dB", num(*db)),
            Budget::TimeShift { max_seconds } => write!(f, "time shift ≤ {} s", num(*max_seconds)),
            Budget::WordSwaps { max_ratio } => {
                write!(f, "one-for-one swaps of ≤ {} % of words", num((max_ratio * 1e6).round() / 1e4))
            }
            Budget::CharEdits { max_per_word, max_ratio } => write!(
                f,
                "≤ {max_per_word} character edit{} in each of ≤ {} % of words",
                if *max_per_word == 1 { "" } else { "s" },
                num((max_ratio * 1e6).round() / 1e4)
            ),
            Budget::Synonyms(s) => {
                let mut files = vec![s.table.clone()];
                files.extend(s.ppdb.iter().cloned());
                write!(f, "swaps from the synonym table ({})", names(&files))
            }
            Budget::StopWords { files } => write!(f, "no stop word swapped ({})", names(files)),
            Budget::NoAntonyms { files } => write!(f, "no antonym swaps ({})", names(files)),
            Budget::MinSimilarity { floor } => write!(f, "sentence similarity ≥ {}", num(*floor)),
            Budget::Queries { max } => write!(f, "≤ {max} queries"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Modality;

    #[test]
    fn budgets_cross_the_abi_as_tagged_json() {
        let t = ThreatModel::new([Budget::LinfStd { epsilon: 0.5 }, Budget::Queries { max: 10 }]);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"budgets":[{"kind":"linf_std","epsilon":0.5},{"kind":"queries","max":10}]}"#);
        assert_eq!(serde_json::from_str::<ThreatModel>(&json).unwrap(), t);
        let synonyms = ThreatModel::new([Budget::Synonyms(SynonymSource {
            table: "wn.tsv".into(),
            inflections: true,
            ..Default::default()
        })]);
        let json = serde_json::to_string(&synonyms).unwrap();
        assert_eq!(
            json,
            r#"{"budgets":[{"kind":"synonyms","table":"wn.tsv","inflections":true,"base_forms":false}]}"#
        );
        assert_eq!(serde_json::from_str::<ThreatModel>(&json).unwrap(), synonyms);
        let chars = ThreatModel::new([Budget::CharEdits { max_per_word: 1, max_ratio: 0.25 }]);
        let json = serde_json::to_string(&chars).unwrap();
        assert_eq!(json, r#"{"budgets":[{"kind":"char_edits","max_per_word":1,"max_ratio":0.25}]}"#);
        assert_eq!(serde_json::from_str::<ThreatModel>(&json).unwrap(), chars);
        // What a host that predates a budget does with it: refuses the whole threat model,
        // naming the kind, so the attack fails at creation instead of running unchecked.
        let newer = r#"{"budgets":[{"kind":"char_bigrams","max":3}]}"#;
        let e = serde_json::from_str::<ThreatModel>(newer).unwrap_err().to_string();
        assert!(e.contains("unknown variant `char_bigrams`"), "{e}");
        let unknown = r#"{"budgets":[{"kind":"linf_std","epsilon":0.5,"units":"raw"}]}"#;
        assert!(serde_json::from_str::<ThreatModel>(unknown).is_err(), "a field the host cannot check");
    }

    #[test]
    fn a_budget_that_cannot_be_checked_is_refused() {
        let ok = |b: Budget, m| ThreatModel::new([b]).validate(m);
        assert!(ok(Budget::LinfStd { epsilon: 0.5 }, Modality::Tabular).is_ok());
        assert!(ok(Budget::LinfStd { epsilon: f64::NAN }, Modality::Tabular).is_err());
        assert!(ok(Budget::Cost { budget: -1.0 }, Modality::Tabular).is_err());
        let e = ok(Budget::SnrFloor { db: 30.0 }, Modality::Tabular).unwrap_err();
        assert_eq!(e, "the budget `SNR ≥ 30 dB` is for audio examples, and this is a tabular attack");
        assert!(ok(Budget::WordSwaps { max_ratio: 1.5 }, Modality::Text).is_err());
        assert!(ok(Budget::StopWords { files: vec![] }, Modality::Text).is_err());
        assert!(ok(Budget::CharEdits { max_per_word: 1, max_ratio: 0.2 }, Modality::Text).is_ok());
        assert!(ok(Budget::CharEdits { max_per_word: 1, max_ratio: f64::NAN }, Modality::Text).is_err());
        let e = ok(Budget::CharEdits { max_per_word: 2, max_ratio: 0.2 }, Modality::Tabular).unwrap_err();
        assert_eq!(
            e,
            "the budget `≤ 2 character edits in each of ≤ 20 % of words` is for text examples, and this is \
             a tabular attack"
        );
        assert!(ok(Budget::Queries { max: 0 }, Modality::Audio).is_ok());
    }

    #[test]
    fn reports_name_budgets_briefly() {
        assert_eq!(
            Budget::StopWords { files: vec!["data/stopwords/english.txt".into()] }.to_string(),
            "no stop word swapped (english.txt)"
        );
        assert_eq!(Budget::WordSwaps { max_ratio: 0.2 }.to_string(), "one-for-one swaps of ≤ 20 % of words");
        assert_eq!(
            Budget::CharEdits { max_per_word: 1, max_ratio: 0.3 }.to_string(),
            "≤ 1 character edit in each of ≤ 30 % of words"
        );
        assert_eq!(Budget::LinfStd { epsilon: f64::from(0.1f32) }.to_string(), "L∞ ≤ 0.1 std");
        assert_eq!(
            Budget::MinSimilarity { floor: f64::from(0.8f32) }.to_string(),
            "sentence similarity ≥ 0.8"
        );
    }
}
