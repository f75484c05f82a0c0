//! TEST-ONLY: `TEMPERED_FAILPOINT=<phase>:<epoch>:<where>` aborts the process at one point of
//! training, the way SIGKILL would (`std::process::abort`: no destructor runs, nothing is
//! flushed), so that the resume tests can stop a run between any two steps and check that
//! `--resume` still ends with the uninterrupted run's numbers. Not a user feature: nothing
//! is saved when it fires.
//!
//! `<where>` is a batch number (1-based: right after that batch's optimiser step), `tmp`
//! (the commit ending the epoch written under its temporary name, not renamed yet),
//! `renamed` (the commit in place, older ones not removed yet) or `end` (the commit done).
//! The last epoch of a phase ends in the phase's final commit, so its `tmp`, `renamed` and
//! `end` are points of that one.
//!
//! The engine's phases made of units (`attacks-before`, `attacks-after`, `tradeoff-p<i>`:
//! one attack run or sweep point each, see `engine/artifact.rs`) have one point per unit:
//! `<phase>:<n>:end` fires after the n-th unit, its result written (or reused).

use crate::{Error, Result};

pub(super) const VAR: &str = "TEMPERED_FAILPOINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Point {
    Batch(usize),
    Tmp,
    Renamed,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Abort,
    /// Unit tests: return an error instead, which no code path catches before `fit` returns.
    #[cfg(test)]
    Fail,
}

#[derive(Debug, Clone)]
pub(super) struct FailPoint {
    pub epoch: usize,
    pub point: Point,
    pub action: Action,
}

impl FailPoint {
    /// The fail point set for `phase` in the environment, if any. A value that does not
    /// parse is an error: a kill test must not pass because nothing was killed.
    pub fn from_env(phase: &str) -> Result<Option<Self>> {
        let Ok(spec) = std::env::var(VAR) else { return Ok(None) };
        let bad =
            || Error::invalid(format!("{VAR}={spec}: expected <phase>:<epoch>:<batch|tmp|renamed|end>"));
        let mut parts = spec.rsplitn(3, ':');
        let (Some(point), Some(epoch), Some(at_phase)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let epoch: usize = epoch.parse().map_err(|_| bad())?;
        let point = match point {
            "tmp" => Point::Tmp,
            "renamed" => Point::Renamed,
            "end" => Point::End,
            n => Point::Batch(n.parse().map_err(|_| bad())?),
        };
        Ok((at_phase == phase).then_some(Self { epoch, point, action: Action::Abort }))
    }
}

/// Fires `fail` when it is set for `epoch` and `point`.
pub(super) fn reached(fail: Option<&FailPoint>, phase: &str, epoch: usize, point: Point) -> Result<()> {
    let Some(f) = fail else { return Ok(()) };
    if f.epoch != epoch || f.point != point {
        return Ok(());
    }
    match f.action {
        Action::Abort => {
            eprintln!("{VAR}: {phase} epoch {epoch}, {point:?}: aborting");
            std::process::abort()
        }
        #[cfg(test)]
        Action::Fail => Err(Error::msg(format!("{VAR}: {phase} epoch {epoch}, {point:?}"))),
    }
}

/// Fires the fail point `<phase>:<n>:end` of an engine phase made of units, after its n-th.
pub fn unit_done(phase: &str, n: usize) -> Result<()> {
    let fail = FailPoint::from_env(phase)?;
    reached(fail.as_ref(), phase, n, Point::End)
}
