//! How many DNS questions one check may send. A tenant's zone decides how many a
//! check would ask (long names, chains of delegations, CNAMEs, SPF includes), so
//! every question, to the configured resolver or an authoritative server, is
//! counted; past the limit a lookup fails with a reason and the record keeps its
//! status.

use std::sync::atomic::{AtomicUsize, Ordering};

/// DNS questions one check (of a domain, or of a claim's proof) asks at most.
pub const MAX_QUESTIONS: usize = 64;

/// The questions left to one check.
#[derive(Debug)]
pub(super) struct Budget {
    asked: AtomicUsize,
    max: usize,
}

impl Budget {
    /// `MAX_QUESTIONS`.
    pub(super) fn per_check() -> Self {
        Self::of(MAX_QUESTIONS)
    }

    pub(super) fn of(max: usize) -> Self {
        Self {
            asked: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes one question, or says why none is left.
    pub(super) fn take(&self) -> Result<(), String> {
        self.take_many(1)
    }

    /// Takes `count` questions at once, or none and says why.
    pub(super) fn take_many(&self, count: usize) -> Result<(), String> {
        let before = self.asked.fetch_add(count, Ordering::Relaxed);
        if before + count > self.max {
            return Err(format!(
                "the check reached its limit of {} DNS questions",
                self.max
            ));
        }
        Ok(())
    }

    /// Questions sent so far (refused ones not counted).
    pub(super) fn asked(&self) -> usize {
        self.asked.load(Ordering::Relaxed).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_past_the_limit_are_refused_with_a_reason() {
        let budget = Budget::of(3);
        assert!(budget.take().is_ok());
        assert!(budget.take_many(2).is_ok());
        let refused = budget.take().expect_err("spent");
        assert!(refused.contains("limit of 3 DNS questions"), "{refused}");
        assert_eq!(budget.asked(), 3);
    }
}
