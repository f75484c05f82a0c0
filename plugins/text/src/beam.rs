//! Beam search over synonym swaps: TextFooler's candidates, constraints and word order,
//! but `beam_width` partial perturbations are kept instead of one.
//!
//! Words are visited in descending deletion importance. At each word, every beam that
//! still has room for a change is extended with each candidate of that word, all in one
//! oracle call; the new sentences compete with the beams that skip the word, and the
//! `beam_width` with the lowest true-class probability survive. The first extension that
//! flips the label ends the search (chosen among several as TextFooler chooses).
//!
//! This costs up to `beam_width` times TextFooler's queries per word; in return a swap
//! that only pays off together with a later one is not lost to greediness.

use std::collections::HashSet;

use tempered_plugin::{Attack, Batch, Oracle, Perturbed, PluginError, Result, ThreatModel};

use crate::constraints::{Constraints, attack_params};
use crate::search::{Example, Scored, Search, expand, flipped};
use crate::textfooler::{by_importance, default_max_candidates};
use crate::tokens::Sub;

fn default_beam_width() -> usize {
    4
}

attack_params! {
    /// Parameters of [`Beam`]; see the crate docs for a pipeline example.
    pub struct BeamParams {
        /// PPDB synonym pairs, added to the WordNet candidates. Default: none.
        #[serde(default)]
        pub ppdb_synonyms: Option<tempered_plugin::PipelinePath>,
        /// Candidates tried per word: PPDB ones first, then WordNet ones. Default 30.
        #[serde(default = "default_max_candidates")]
        pub max_candidates: usize,
        /// Partial perturbations kept after each word. Default 4.
        #[serde(default = "default_beam_width")]
        pub beam_width: usize,
    }
}

/// Beam search over importance-ordered synonym swaps.
#[derive(Debug)]
pub struct Beam {
    c: Constraints,
    width: usize,
}

impl Attack for Beam {
    type Params = BeamParams;
    const NAME: &'static str = "beam";
    const DESCRIPTION: &'static str =
        "beam search over WordNet/PPDB synonym swaps, words in order of deletion importance";

    fn new(p: BeamParams) -> Result<Self> {
        if p.beam_width == 0 {
            return Err(PluginError("beam_width must be at least 1".into()));
        }
        let c = p.constraints(p.ppdb_synonyms.clone(), Some(p.max_candidates))?;
        Ok(Self { c, width: p.beam_width })
    }

    fn threat_model(&self) -> ThreatModel {
        self.c.threat_model()
    }

    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.text()?;
        by_importance(Self::NAME, &self.c, batch, oracle, |s, ex, order| self.search(s, ex, order))
    }
}

impl Beam {
    fn search(&self, s: &mut Search<'_, '_, '_>, ex: &Example<'_>, order: &[usize]) -> Result<String> {
        let y = ex.y;
        let clean = Scored { subs: Vec::new(), text: ex.text.to_owned(), probs: ex.p0.clone(), sim: None };
        let mut beams = vec![clean];
        for &k in order {
            if s.q.left(ex.id) == 0 {
                break;
            }
            let mut seen: HashSet<String> = beams.iter().map(|b| b.text.clone()).collect();
            let candidates: Vec<(Vec<Sub>, String)> = beams
                .iter()
                .filter(|b| b.subs.len() < ex.max_changes)
                .flat_map(|b| expand(&ex.tokens, &b.subs, &ex.slots[k]))
                .filter(|(_, text)| seen.insert(text.clone()))
                .collect();
            if candidates.is_empty() {
                if beams.iter().all(|b| b.subs.len() >= ex.max_changes) {
                    break;
                }
                continue;
            }
            let scored = s.score(ex, candidates)?;
            let (flips, rest): (Vec<Scored>, Vec<Scored>) =
                scored.into_iter().partition(|c| flipped(&c.probs, y));
            if !flips.is_empty() {
                return Ok(s.pick_flip(ex, flips)?.text);
            }
            // Stable: on equal probability the older beam (fewer changes) stays ahead.
            beams.extend(rest);
            beams.sort_by(|a, b| a.probs[y].total_cmp(&b.probs[y]));
            beams.truncate(self.width);
        }
        Ok(beams.swap_remove(0).text)
    }
}
