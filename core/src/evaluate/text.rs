//! The host's judge for word-substitution attacks: `tempered_plugin::judge::text` (the
//! word count kept, then the declared `word_swaps`, `stop_words`, `no_antonyms` and
//! `min_similarity`, the last with the pipeline's sentence encoder, the one the plugin's
//! oracle answers with). The perturbation is the share of words changed.

use std::sync::Arc;

use tempered_plugin::judge::{self, WordLists};
use tempered_plugin::{Budget, Modality};

use super::{Judge, Measure};
use crate::data::Examples;
use crate::error::Invalid;
use crate::model::SentenceEncoder;

#[derive(Default)]
pub struct TextJudge {
    /// The word lists budgets name, each read once.
    lists: WordLists,
    /// The pipeline's sentence encoder, for `min_similarity`.
    encoder: Option<Arc<dyn SentenceEncoder>>,
}

impl TextJudge {
    pub fn new(encoder: Option<Arc<dyn SentenceEncoder>>) -> Self {
        Self { lists: WordLists::default(), encoder }
    }
}

impl Judge for TextJudge {
    fn unit(&self) -> &'static str {
        "% words"
    }

    fn verifies(&self, budget: &Budget) -> Result<(), Invalid> {
        judge::verifies(Modality::Text, budget, self.encoder.is_some()).map_err(Invalid::from)
    }

    fn measure(&self, original: &Examples, adversarial: &Examples, i: usize, budgets: &[Budget]) -> Measure {
        let (Examples::Text(a), Examples::Text(b)) = (original, adversarial) else {
            return Measure { violations: 1, notes: vec!["not a text".into()], ..Default::default() };
        };
        let similarity = |x: &str, z: &str| -> Result<f32, String> {
            let encoder = self.encoder.as_ref().ok_or("no sentence encoder")?;
            let s = encoder.similarity(&[x], &[z]).map_err(|e| e.to_string())?;
            s.first().copied().ok_or_else(|| "the encoder gave no similarity".to_owned())
        };
        let similarity: Option<judge::Similarity<'_>> = self.encoder.as_ref().map(|_| &similarity as _);
        judge::text(&a[i], &b[i], budgets, &self.lists, similarity)
    }
}
