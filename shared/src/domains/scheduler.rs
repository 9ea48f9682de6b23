//! Scheduled re-verification (EventBridge): domains whose next check is due are
//! read from the sparse due-keys index a page at a time, checked with bounded
//! concurrency, moved on by `lifecycle::after_scheduled_check` and written back
//! conditioned on the version they were read at.

use std::collections::HashSet;

use futures::StreamExt;
use lambda_runtime::Diagnostic;
use serde::Serialize;

use std::time::Duration;

use super::confirmation::{RateLimiter, read_ses_view};
pub use super::lifecycle::ScheduledOutcome;
use super::lifecycle::{
    CheckWrite, after_scheduled_check, check_write, next_check_after_failed_write,
};
use crate::app::App;
use crate::metrics::MetricSet;
use crate::model::{Domain, DomainStatus, Timestamp};
use crate::store::{DueSlice, StoreError};
use crate::verify::CheckStats;

#[derive(Debug, Clone, Copy)]
/// How a run reads and checks.
pub struct RunOptions {
    /// Domains read from the index at a time.
    pub batch_size: usize,
    /// Domains checked at the same time.
    pub concurrency: usize,
    /// The share of the due work this run takes (all of it without a fan-out).
    pub slice: DueSlice,
}

impl Default for RunOptions {
    fn default() -> Self {
        // Pages of 100: a run holds a page of full domain items, not thousands.
        Self {
            batch_size: 100,
            concurrency: 64,
            slice: DueSlice::ALL,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
/// What one run did (logged, and the scheduled Lambda's result).
pub struct Summary {
    /// Domains checked and written back.
    pub checked: usize,
    /// Newly verified, or fixed after a temporary failure.
    pub verified: usize,
    /// Verified domains still all correct.
    pub still_verified: usize,
    /// Pending domains not all correct yet.
    pub still_pending: usize,
    /// Verified domains whose records went missing.
    pub temporary_failures: usize,
    /// Out of time: `failed`.
    pub failed: usize,
    /// Written by someone else (a manual verify) since read: left as they are.
    pub superseded: usize,
    /// Deleted while being checked: left deleted.
    pub gone: usize,
    /// Checks whose result could not be stored (moved on all the same).
    pub errors: usize,
    /// Read but not started before the deadline: the next run takes them.
    pub left_for_later: usize,
}

#[derive(Debug, thiserror::Error)]
/// Why a run failed as a whole.
pub enum SchedulerError {
    #[error("re-verification could not read due domains: {0}")]
    /// The due domains could not be read.
    Read(#[from] StoreError),
    #[error("re-verification could not write any of the {0} domains it checked")]
    /// Not one of the checked domains could be written.
    NoWrites(usize),
    #[error("re-verification could not start its other workers: {0}")]
    /// A fanned-out tick could not send every other worker's task (its own
    /// share was swept; the others wait for the next tick).
    FanOut(String),
    #[error("re-verification was given a task it cannot do: {0}")]
    /// The invocation's worker task names no valid share.
    BadTask(String),
}

impl From<SchedulerError> for Diagnostic {
    fn from(error: SchedulerError) -> Self {
        Diagnostic {
            error_type: "ReverifyPendingFailed".into(),
            error_message: error.to_string(),
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
    let started = std::time::Instant::now();
    let mut summary = Summary::default();
    let mut checks = Vec::new();
    let mut seen = HashSet::new();
    let limiter = app.ses_max_rps.map(RateLimiter::per_second);
    let limiter = limiter.as_ref();
    loop {
        let due = app
            .store
            .due(now, options.batch_size, options.slice)
            .await?;
        let page_was_full = due.len() >= options.batch_size;
        // A domain whose write failed is due again; it is not retried in this run.
        let fresh: Vec<Domain> = due
            .into_iter()
            .filter(|d| seen.insert(d.id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let outcomes: Vec<(ScheduledOutcome, Option<CheckStats>)> = futures::stream::iter(fresh)
            .map(|domain| async move {
                if should_stop() {
                    (ScheduledOutcome::LeftForLater, None)
                } else {
                    let (outcome, stats) = reverify_one(app, domain, now, limiter).await;
                    (outcome, Some(stats))
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let stopped = outcomes
            .iter()
            .any(|(outcome, _)| *outcome == ScheduledOutcome::LeftForLater);
        for (outcome, stats) in outcomes {
            tally(&mut summary, outcome);
            checks.extend(stats);
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
    app.metrics
        .emit(run_metrics(&summary, &checks, started.elapsed()));
    let attempted = summary.checked + summary.errors;
    if attempted > 0 && summary.errors == attempted {
        return Err(SchedulerError::NoWrites(attempted));
    }
    Ok(summary)
}

/// A scheduled run: its summary, and what its DNS checks cost.
fn run_metrics(summary: &Summary, checks: &[CheckStats], elapsed: Duration) -> MetricSet {
    let durations: Vec<Duration> = checks.iter().map(|c| c.elapsed).collect();
    MetricSet::for_operation("reverify")
        .count("Checked", summary.checked)
        .count("Verified", summary.verified)
        .count("StillVerified", summary.still_verified)
        .count("StillPending", summary.still_pending)
        .count("TemporaryFailures", summary.temporary_failures)
        .count("Failed", summary.failed)
        .count("Superseded", summary.superseded)
        .count("Gone", summary.gone)
        .count("Errors", summary.errors)
        .count("LeftForLater", summary.left_for_later)
        .count(
            "DnsLookupsIncomplete",
            checks.iter().map(|c| c.incomplete).sum(),
        )
        .count("DnsQuestions", checks.iter().map(|c| c.questions).sum())
        .millis_each("DnsCheckMillis", &durations)
        .millis("RunMillis", elapsed)
}

fn tally(summary: &mut Summary, outcome: ScheduledOutcome) {
    let counter = match outcome {
        ScheduledOutcome::Verified => &mut summary.verified,
        ScheduledOutcome::StillVerified => &mut summary.still_verified,
        ScheduledOutcome::StillPending => &mut summary.still_pending,
        ScheduledOutcome::TemporaryFailure => &mut summary.temporary_failures,
        ScheduledOutcome::Failed => &mut summary.failed,
        ScheduledOutcome::Superseded => &mut summary.superseded,
        ScheduledOutcome::Gone => &mut summary.gone,
        ScheduledOutcome::Error => &mut summary.errors,
        ScheduledOutcome::LeftForLater => &mut summary.left_for_later,
    };
    *counter += 1;
    if matches!(
        outcome,
        ScheduledOutcome::Verified
            | ScheduledOutcome::StillVerified
            | ScheduledOutcome::StillPending
            | ScheduledOutcome::TemporaryFailure
            | ScheduledOutcome::Failed
    ) {
        summary.checked += 1;
    }
}

async fn reverify_one(
    app: &App,
    stored: Domain,
    now: Timestamp,
    limiter: Option<&RateLimiter>,
) -> (ScheduledOutcome, CheckStats) {
    let mut checked = stored.clone();
    let (records, stats) = app
        .dns
        .check_measured(&checked.name, &checked.records)
        .await;
    checked.records = records;
    // A verified domain is asked daily whether SES still confirms it.
    let recheck_confirmed = checked.status == DomainStatus::Verified;
    read_ses_view(app, &mut checked, now, recheck_confirmed, limiter).await;
    let outcome = after_scheduled_check(&mut checked, now);
    let written = match check_write(&stored, &mut checked, now) {
        CheckWrite::ScheduleOnly => app.store.update_schedule(&mut checked).await,
        CheckWrite::Domain => app.store.update(&mut checked).await,
    };
    let outcome = match written {
        Ok(()) => outcome,
        Err(StoreError::DomainGone) => ScheduledOutcome::Gone,
        Err(StoreError::Conflict) => ScheduledOutcome::Superseded,
        Err(error) => {
            // The domain still moves on in the schedule (a small write of its next
            // check alone), so it cannot head every run and starve the others.
            tracing::warn!(domain = %checked.name, %error, "could not store a scheduled check");
            // The small write is conditioned on the domain as read.
            let next = next_check_after_failed_write(&checked, now);
            if let Err(error) = app.store.reschedule(&stored, next).await {
                tracing::error!(domain = %checked.name, %error, "could not move a failed check on");
            }
            ScheduledOutcome::Error
        }
    };
    (outcome, stats)
}

/// Time kept back from the invocation deadline: a domain check can take a few
/// seconds when DNS is slow, and the run must answer before the Lambda timeout.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// One run of `slice` now that starts no domain within `DEADLINE_MARGIN` of
/// `deadline_ms` (Unix milliseconds, as the Lambda context gives it; 0 for no
/// deadline, e.g. invoked outside Lambda).
pub async fn run_before_deadline(
    app: &App,
    deadline_ms: u64,
    slice: DueSlice,
) -> Result<Summary, SchedulerError> {
    let should_stop = move || {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        deadline_ms > 0 && now_ms + DEADLINE_MARGIN.as_millis() as u64 >= deadline_ms
    };
    let options = RunOptions {
        slice,
        ..RunOptions::default()
    };
    run(app, Timestamp::now(), options, &should_stop).await
}
