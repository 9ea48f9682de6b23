//! Scheduled re-verification (EventBridge): domains whose next check is due are
//! read from the sparse due-checks index, checked with bounded concurrency and
//! written back conditioned on the version they were read at.
//!
//! - pending: checked 1, 5, 15, 30 and 60 minutes apart, then hourly; not verified
//!   72 hours after creation or the last manual verify: `failed` (leaves the index);
//! - verified: re-checked daily; records gone: `temporary_failure` (still verified),
//!   checked hourly; fixed: `verified` again; unfixed for 72 hours: `failed`.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Duration as Span;
use futures::StreamExt;
use lambda_runtime::Diagnostic;
use serde::Serialize;

use crate::app::App;
use crate::model::{Domain, DomainStatus, RecordPurpose, RecordStatus, Timestamp};
use crate::store::StoreError;

/// Not verified this long after the window started (creation or manual verify),
/// or failing this long after drifting: `failed`.
pub const VERIFICATION_WINDOW: Duration = Duration::from_secs(72 * 60 * 60);
/// Minutes to the next check after the 1st, 2nd, ... scheduled check of a pending
/// domain (the first comes a minute after creation); hourly after the last.
pub const BACKOFF_MINUTES: [i64; 4] = [5, 15, 30, 60];
pub const VERIFIED_RECHECK: Span = Span::hours(24);
pub const FAILING_RECHECK: Span = Span::hours(1);

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Domains read from the index at a time.
    pub batch_size: usize,
    /// Domains checked at the same time.
    pub concurrency: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        // Pages of 100: a run holds a page of full domain items, not thousands.
        Self {
            batch_size: 100,
            concurrency: 64,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Domains checked and written back.
    pub checked: usize,
    /// Newly verified, or fixed after a temporary failure.
    pub verified: usize,
    pub still_verified: usize,
    pub still_pending: usize,
    /// Verified domains whose records went missing.
    pub temporary_failures: usize,
    /// Out of time: `failed`.
    pub failed: usize,
    /// Written by someone else (a manual verify) since read: left as they are.
    pub superseded: usize,
    /// Deleted while being checked: left deleted.
    pub gone: usize,
    pub errors: usize,
    /// Read but not started before the deadline: the next run takes them.
    pub left_for_later: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("re-verification could not read due domains: {0}")]
    Read(#[from] StoreError),
    #[error("re-verification could not write any of the {0} domains it checked")]
    NoWrites(usize),
}

impl From<SchedulerError> for Diagnostic {
    fn from(error: SchedulerError) -> Self {
        Diagnostic {
            error_type: "ReverifyPendingFailed".into(),
            error_message: error.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    StillVerified,
    StillPending,
    TemporaryFailure,
    Failed,
    Superseded,
    Gone,
    Error,
    LeftForLater,
}

fn all_verified(domain: &Domain) -> bool {
    domain
        .records
        .iter()
        .any(|r| r.record == RecordPurpose::Dkim)
        && domain
            .records
            .iter()
            .all(|r| r.status == RecordStatus::Verified)
}

/// Moves a domain on after a scheduled check of its records (already in
/// `domain.records`).
pub fn after_scheduled_check(domain: &mut Domain, now: Timestamp) -> Outcome {
    domain.last_checked_at = Some(now);
    domain.updated_at = now;
    let verified_now = all_verified(domain);
    let schedule = &mut domain.schedule;
    let mark_failed = |domain: &mut Domain| {
        domain.status = DomainStatus::Failed;
        domain.verified = false;
        domain.verified_at = None;
        domain.schedule.next_check_at = None;
        Outcome::Failed
    };
    match (domain.status, verified_now) {
        (DomainStatus::Failed, _) => {
            // Not watched: only a manual verify brings it back.
            schedule.next_check_at = None;
            Outcome::Failed
        }
        (DomainStatus::Verified, true) => {
            schedule.next_check_at = Some(now.plus(VERIFIED_RECHECK));
            Outcome::StillVerified
        }
        (DomainStatus::Pending | DomainStatus::TemporaryFailure, true) => {
            domain.status = DomainStatus::Verified;
            domain.verified = true;
            domain.verified_at.get_or_insert(now);
            schedule.failing_since = None;
            schedule.next_check_at = Some(now.plus(VERIFIED_RECHECK));
            Outcome::Verified
        }
        (DomainStatus::Pending, false) => {
            schedule.checks_in_window += 1;
            if now.since(schedule.window_started_at) >= VERIFICATION_WINDOW {
                return mark_failed(domain);
            }
            let step = usize::try_from(schedule.checks_in_window).unwrap_or(usize::MAX);
            let minutes = BACKOFF_MINUTES[step.saturating_sub(1).min(BACKOFF_MINUTES.len() - 1)];
            schedule.next_check_at = Some(now.plus(Span::minutes(minutes)));
            Outcome::StillPending
        }
        (DomainStatus::Verified | DomainStatus::TemporaryFailure, false) => {
            let since = *schedule.failing_since.get_or_insert(now);
            if now.since(since) >= VERIFICATION_WINDOW {
                return mark_failed(domain);
            }
            // Still verified: mail keeps flowing while the owner fixes DNS.
            domain.status = DomainStatus::TemporaryFailure;
            schedule.next_check_at = Some(now.plus(FAILING_RECHECK));
            Outcome::TemporaryFailure
        }
    }
}

/// One run at `now`. `should_stop` is asked before each domain is started (the
/// Lambda passes its deadline); what is not started is left for the next run.
pub async fn run(
    app: &App,
    now: Timestamp,
    options: RunOptions,
    should_stop: &(dyn Fn() -> bool + Sync),
) -> Result<Summary, SchedulerError> {
    let mut summary = Summary::default();
    let mut seen = HashSet::new();
    loop {
        let due = app.store.due(now, options.batch_size).await?;
        let page_was_full = due.len() >= options.batch_size;
        // A domain whose write failed is due again; it is not retried in this run.
        let fresh: Vec<Domain> = due
            .into_iter()
            .filter(|d| seen.insert(d.id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let outcomes: Vec<Outcome> = futures::stream::iter(fresh)
            .map(|domain| async move {
                if should_stop() {
                    Outcome::LeftForLater
                } else {
                    reverify_one(app, domain, now).await
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let stopped = outcomes.contains(&Outcome::LeftForLater);
        for outcome in outcomes {
            tally(&mut summary, outcome);
        }
        if stopped || !page_was_full {
            break;
        }
    }
    tracing::info!(
        checked = summary.checked,
        verified = summary.verified,
        still_verified = summary.still_verified,
        still_pending = summary.still_pending,
        temporary_failures = summary.temporary_failures,
        failed = summary.failed,
        superseded = summary.superseded,
        gone = summary.gone,
        errors = summary.errors,
        left_for_later = summary.left_for_later,
        "reverify summary"
    );
    let attempted = summary.checked + summary.errors;
    if attempted > 0 && summary.errors == attempted {
        return Err(SchedulerError::NoWrites(attempted));
    }
    Ok(summary)
}

fn tally(summary: &mut Summary, outcome: Outcome) {
    let counter = match outcome {
        Outcome::Verified => &mut summary.verified,
        Outcome::StillVerified => &mut summary.still_verified,
        Outcome::StillPending => &mut summary.still_pending,
        Outcome::TemporaryFailure => &mut summary.temporary_failures,
        Outcome::Failed => &mut summary.failed,
        Outcome::Superseded => &mut summary.superseded,
        Outcome::Gone => &mut summary.gone,
        Outcome::Error => &mut summary.errors,
        Outcome::LeftForLater => &mut summary.left_for_later,
    };
    *counter += 1;
    if matches!(
        outcome,
        Outcome::Verified
            | Outcome::StillVerified
            | Outcome::StillPending
            | Outcome::TemporaryFailure
            | Outcome::Failed
    ) {
        summary.checked += 1;
    }
}

async fn reverify_one(app: &App, domain: Domain, now: Timestamp) -> Outcome {
    let as_read = domain.clone();
    let mut checked = domain;
    checked.records = app.dns.check(&checked.name, &checked.records).await;
    let outcome = after_scheduled_check(&mut checked, now);
    match app.store.update(&mut checked).await {
        Ok(()) => outcome,
        Err(StoreError::DomainGone) => Outcome::Gone,
        Err(StoreError::Conflict) => Outcome::Superseded,
        Err(error) => {
            // The domain still moves on in the schedule (a small write of its next
            // check alone), so it cannot head every run and starve the others.
            tracing::warn!(domain = %checked.name, %error, "could not store a scheduled check");
            let next = checked
                .schedule
                .next_check_at
                .or(Some(now.plus(FAILING_RECHECK)));
            if let Err(error) = app.store.reschedule(&as_read, next).await {
                tracing::error!(domain = %checked.name, %error, "could not move a failed check on");
            }
            Outcome::Error
        }
    }
}
