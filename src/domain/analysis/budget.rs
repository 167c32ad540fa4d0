//! How long an analysis may run, checked by the engine itself.
//!
//! Analyses run on threads that cannot be interrupted from outside, so the engine stops on
//! its own: it calls [`Budget::check`] between rules, every [`CHECK_EVERY`] steps of its
//! long loops and between the workflows of a location. A check fails when the budget's
//! clock passed its limit (the document is too complex) or when the caller went away and
//! raised the cancel flag; either way the analysis returns [`AnalysisAbandoned`] instead of
//! a report, and the thread is free for the next one.
//!
//! The clock is given from outside (the service measures the analysis thread's own CPU time,
//! so an analysis that waits for CPU behind request handling is not called too complex), which
//! keeps this module pure and lets tests use a clock that advances on each reading.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Steps (or edges, or workflows) handled between two checks in a loop: a check reads a clock,
/// which costs about as much as judging a few steps.
pub const CHECK_EVERY: usize = 64;

/// Why an analysis stopped before its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisAbandoned {
    /// The document needs more time than the budget allows.
    #[error("the document is too complex to analyze within {} ms", budget.as_millis())]
    TooComplex { budget: Duration },
    /// The caller stopped waiting (its request deadline passed).
    #[error("the analysis was cancelled: nobody waits for it any more")]
    Cancelled,
}

/// A time limit on one analysis, with an optional cancel flag.
pub struct Budget<'a> {
    limit: Duration,
    spent: Box<dyn Fn() -> Duration + 'a>,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Budget<'a> {
    /// `spent` says how much of the budget is used so far (it starts at zero when the
    /// budget is made: read a clock once outside and subtract).
    pub fn new(limit: Duration, spent: impl Fn() -> Duration + 'a) -> Self {
        Self {
            limit,
            spent: Box::new(spent),
            cancel: None,
        }
    }

    /// A budget on the wall clock, from now (the command line, tests).
    pub fn wall_clock(limit: Duration) -> Budget<'static> {
        let start = Instant::now();
        Budget::new(limit, move || start.elapsed())
    }

    /// The analysis also stops as soon as `flag` is set.
    pub fn cancelled_by(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// `Err` once the caller cancelled or the limit has passed.
    pub fn check(&self) -> Result<(), AnalysisAbandoned> {
        if self.cancel.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(AnalysisAbandoned::Cancelled);
        }
        if (self.spent)() > self.limit {
            return Err(AnalysisAbandoned::TooComplex { budget: self.limit });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Budget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit)
            .field("cancellable", &self.cancel.is_some())
            .finish()
    }
}

/// Where the engine may stop: a [`Budget`], or nowhere ([`Unlimited`]). The engine is generic
/// over it so the unlimited entry points return their report without an error case.
pub(crate) trait Checkpoint {
    type Stop;
    fn check(&self) -> Result<(), Self::Stop>;
    /// A check every [`CHECK_EVERY`] items of a loop (`i` counts from 0).
    fn check_every(&self, i: usize) -> Result<(), Self::Stop> {
        if i.is_multiple_of(CHECK_EVERY) {
            self.check()
        } else {
            Ok(())
        }
    }
}

/// No limit: what the plain `analyze_*` functions use.
pub(crate) struct Unlimited;

impl Checkpoint for Unlimited {
    type Stop = Infallible;
    #[inline]
    fn check(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl Checkpoint for Budget<'_> {
    type Stop = AnalysisAbandoned;
    fn check(&self) -> Result<(), AnalysisAbandoned> {
        Budget::check(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock that advances by `step` on every reading: the number of checks, not the
    /// machine's speed, decides when a budget runs out.
    pub(crate) fn ticking(step: Duration) -> impl Fn() -> Duration {
        let now = Cell::new(Duration::ZERO);
        move || {
            now.set(now.get() + step);
            now.get()
        }
    }

    #[test]
    fn a_budget_runs_out_after_its_limit_and_stays_out() {
        let budget = Budget::new(Duration::from_millis(3), ticking(Duration::from_millis(1)));

        let results: Vec<_> = (0..5).map(|_| budget.check()).collect();

        assert_eq!(&results[..3], &[Ok(()), Ok(()), Ok(())]);
        let too_complex = AnalysisAbandoned::TooComplex {
            budget: Duration::from_millis(3),
        };
        assert_eq!(&results[3..], &[Err(too_complex), Err(too_complex)]);
    }

    #[test]
    fn cancelling_wins_over_the_clock() {
        let flag = AtomicBool::new(false);
        let budget = Budget::new(Duration::from_secs(60), || Duration::ZERO).cancelled_by(&flag);
        assert_eq!(budget.check(), Ok(()));

        flag.store(true, Ordering::Relaxed);

        assert_eq!(budget.check(), Err(AnalysisAbandoned::Cancelled));
    }

    #[test]
    fn check_every_reads_the_clock_once_per_stride() {
        let readings = Cell::new(0usize);
        let budget = Budget::new(Duration::from_secs(60), || {
            readings.set(readings.get() + 1);
            Duration::ZERO
        });

        for i in 0..CHECK_EVERY * 3 {
            budget.check_every(i).expect("within the budget");
        }

        assert_eq!(readings.get(), 3);
    }

    #[test]
    fn the_message_names_the_budget() {
        let error = AnalysisAbandoned::TooComplex {
            budget: Duration::from_millis(2000),
        };
        assert_eq!(
            error.to_string(),
            "the document is too complex to analyze within 2000 ms"
        );
    }
}
