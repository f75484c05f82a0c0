//! TextFooler (Jin et al., AAAI 2020), with synonym tables in place of counter-fitted
//! embedding neighbours.
//!
//! Word importance is measured by deleting the word: the drop in true-class probability,
//! plus, when the deletion alone changes the prediction to ȳ, the rise of ȳ (the paper's
//! rule). Words are then visited in descending importance; for each, all its candidates
//! (top `max_candidates` of WordNet ∪ PPDB) go to the model in one call. A candidate that
//! flips the label ends the search (the most similar one if several flip and the host has
//! an encoder, else the one with the lowest true-class probability); otherwise the one
//! that lowers the true-class probability most is kept, if it lowers it at all.
//!
//! Queries: 1 for the clean text, one deletion probe per swappable word (stop words and
//! words without candidates are never probed; the probes of the whole batch share one
//! oracle call), then the candidates of each visited word. Candidates under
//! `min_similarity` are dropped before they are sent.

use tempered_plugin::{Attack, Batch, Oracle, Perturbed, Result, TextBatch, ThreatModel};

use crate::constraints::{Constraints, attack_params};
use crate::search::{Example, Search, deletion_importance, greedy, order_by};

pub(crate) fn default_max_candidates() -> usize {
    30
}

attack_params! {
    /// Parameters of [`TextFooler`]; see the crate docs for a pipeline example.
    pub struct TextFoolerParams {
        /// PPDB synonym pairs (`ppdb_synonyms.txt`), added to the WordNet candidates.
        /// Default: none (WordNet only).
        #[serde(default)]
        pub ppdb_synonyms: Option<tempered_plugin::PipelinePath>,
        /// Candidates tried per word, K in the paper: PPDB ones first, then WordNet ones.
        /// Default 30.
        #[serde(default = "default_max_candidates")]
        pub max_candidates: usize,
    }
}

/// TextFooler: greedy synonym swaps in order of deletion importance.
#[derive(Debug)]
pub struct TextFooler {
    c: Constraints,
}

impl Attack for TextFooler {
    type Params = TextFoolerParams;
    const NAME: &'static str = "textfooler";
    const DESCRIPTION: &'static str =
        "TextFooler (Jin et al. 2020): greedy WordNet/PPDB synonym swaps in order of deletion importance";

    fn new(p: TextFoolerParams) -> Result<Self> {
        Ok(Self { c: p.constraints(p.ppdb_synonyms.clone(), Some(p.max_candidates))? })
    }

    fn threat_model(&self) -> ThreatModel {
        self.c.threat_model()
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.text()?;
        by_importance(Self::NAME, &self.c, batch, oracle, |s, ex, order| Ok(greedy(s, ex, order)?.text()))
    }
}

/// The batch attacked by `search` on each attackable example, given the example's slots in
/// descending deletion importance: TextFooler's word order, which the beam search shares.
pub(crate) fn by_importance(
    attack: &str,
    c: &Constraints,
    batch: &TextBatch<'_>,
    oracle: &Oracle<'_>,
    mut search: impl FnMut(&mut Search<'_, '_, '_>, &Example<'_>, &[usize]) -> Result<String>,
) -> Result<Perturbed> {
    let mut s = Search::new(attack, c, batch, oracle)?;
    let examples = s.prepare(batch)?;
    let orders = importance_orders(&mut s, &examples)?;
    s.attack_each(&examples, orders, |s, ex, order| search(s, ex, &order)).map(Perturbed::Text)
}

/// Each example's slots in descending deletion importance (one batched probe call).
fn importance_orders(s: &mut Search<'_, '_, '_>, examples: &[Example<'_>]) -> Result<Vec<Vec<usize>>> {
    let probes = s.probe(examples, |ex, slot| ex.tokens.without(slot.pos))?;
    Ok(examples
        .iter()
        .zip(probes)
        .map(|(ex, probe)| {
            let scores: Vec<Option<f32>> =
                probe.iter().map(|p| p.as_ref().map(|p| deletion_importance(&ex.p0, p, ex.y))).collect();
            order_by(&scores)
        })
        .collect())
}
