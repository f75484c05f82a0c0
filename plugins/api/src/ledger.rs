//! Oracle queries, counted per example the one way the engine and the test harness both
//! count them: one per row, against the example the row names, all or nothing against the
//! cap.

/// Why a call was not counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A row names an example the batch does not have.
    BadId(String),
    /// An example would go past its budget; nothing was counted
    /// ([`STATUS_QUERY_BUDGET`](crate::abi::STATUS_QUERY_BUDGET)).
    Budget(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::BadId(m) | Refused::Budget(m) => f.write_str(m),
        }
    }
}

/// Queries per example of one `perturb` call, and the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    counts: Vec<u64>,
    budget: Option<u64>,
}

impl Ledger {
    pub fn new(examples: usize, budget: Option<u64>) -> Self {
        Self { counts: vec![0; examples], budget }
    }

    /// Counts one query for each of `rows` rows, row `i` standing for example `ids[i]`
    /// (`ids` empty: row `i` is example `i`). A call that would take any example past the
    /// budget is refused whole and counts nothing, so the attack can ask again with the
    /// examples that have queries left.
    pub fn charge(&mut self, rows: usize, ids: &[u32]) -> Result<(), Refused> {
        let n = self.counts.len();
        let mut want = vec![0u64; n];
        for i in 0..rows {
            let id = ids.get(i).map_or(i, |&id| id as usize);
            *want.get_mut(id).ok_or_else(|| {
                Refused::BadId(format!("row {i} names example {id}, but the batch has {n}"))
            })? += 1;
        }
        if let Some(b) = self.budget
            && let Some(id) = (0..n).find(|&id| want[id] > 0 && self.counts[id] + want[id] > b)
        {
            return Err(Refused::Budget(format!(
                "example {id} has {} of its {b} queries left and the call asks {}",
                b.saturating_sub(self.counts[id]),
                want[id]
            )));
        }
        for (c, w) in self.counts.iter_mut().zip(want) {
            *c += w;
        }
        Ok(())
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn into_counts(self) -> Vec<u64> {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_against_their_examples_and_the_cap_refuses_a_call_whole() {
        let mut l = Ledger::new(2, Some(3));
        l.charge(2, &[]).unwrap();
        l.charge(2, &[1, 1]).unwrap();
        assert_eq!(l.counts(), [1, 3]);
        let e = l.charge(2, &[0, 1]).unwrap_err();
        assert_eq!(e, Refused::Budget("example 1 has 0 of its 3 queries left and the call asks 1".into()));
        assert_eq!(l.counts(), [1, 3], "nothing counted");
        assert_eq!(
            l.charge(1, &[5]).unwrap_err(),
            Refused::BadId("row 0 names example 5, but the batch has 2".into())
        );
        l.charge(2, &[0, 0]).unwrap();
        assert_eq!(l.into_counts(), [3, 3]);
    }
}
