//! Scheduled re-verification of pending domains (EventBridge). This first version
//! re-checks the oldest pending domains each tick and fails those not verified
//! within the verification window.

use std::time::Duration;

use futures::StreamExt;
use lambda_runtime::Diagnostic;
use serde::Serialize;

use crate::app::App;
use crate::model::{Domain, DomainStatus, RecordPurpose, RecordStatus, Timestamp};
use crate::store::StoreError;

/// A domain not verified this long after creation becomes `failed`.
pub const VERIFICATION_WINDOW: Duration = Duration::from_secs(72 * 60 * 60);
/// Domains read per run.
pub const BATCH_SIZE: usize = 200;
/// Domains checked at the same time.
pub const CONCURRENCY: usize = 16;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub checked: usize,
    pub verified: usize,
    pub failed: usize,
    pub still_pending: usize,
    /// Deleted (or replaced) while being checked: left alone.
    pub gone: usize,
    pub errors: usize,
}

/// A failure of the whole run (the pending domains could not be read); one bad
/// domain never is.
#[derive(Debug, thiserror::Error)]
#[error("re-verification could not read pending domains: {0}")]
pub struct SchedulerError(#[from] StoreError);

impl From<SchedulerError> for Diagnostic {
    fn from(error: SchedulerError) -> Self {
        Diagnostic {
            error_type: "ReverifyPendingFailed".into(),
            error_message: error.to_string(),
        }
    }
}

enum Outcome {
    Verified,
    Failed,
    StillPending,
    Gone,
    Error,
}

/// One run: checks up to `BATCH_SIZE` pending domains and stores the results.
pub async fn reverify_pending(app: &App, now: Timestamp) -> Result<Summary, SchedulerError> {
    let pending = app.store.pending(BATCH_SIZE).await?;
    let outcomes: Vec<Outcome> = futures::stream::iter(pending)
        .map(|domain| reverify_one(app, domain, now))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut summary = Summary::default();
    for outcome in outcomes {
        summary.checked += 1;
        match outcome {
            Outcome::Verified => summary.verified += 1,
            Outcome::Failed => summary.failed += 1,
            Outcome::StillPending => summary.still_pending += 1,
            Outcome::Gone => summary.gone += 1,
            Outcome::Error => summary.errors += 1,
        }
    }
    tracing::info!(
        checked = summary.checked,
        verified = summary.verified,
        failed = summary.failed,
        still_pending = summary.still_pending,
        gone = summary.gone,
        errors = summary.errors,
        "reverify summary"
    );
    Ok(summary)
}

async fn reverify_one(app: &App, mut domain: Domain, now: Timestamp) -> Outcome {
    domain.records = app.dns.check(&domain.name, &domain.records).await;
    let outcome = apply_scheduled_check(&mut domain, now);
    match app.store.update(&domain).await {
        Ok(()) => outcome,
        Err(StoreError::DomainGone) => Outcome::Gone,
        Err(error) => {
            tracing::warn!(domain = %domain.name, %error, "could not store a scheduled check");
            Outcome::Error
        }
    }
}

fn apply_scheduled_check(domain: &mut Domain, now: Timestamp) -> Outcome {
    let has_dkim = domain
        .records
        .iter()
        .any(|r| r.record == RecordPurpose::Dkim);
    let all_verified = has_dkim
        && domain
            .records
            .iter()
            .all(|r| r.status == RecordStatus::Verified);
    domain.last_checked_at = Some(now);
    domain.updated_at = now;
    let age = now
        .as_datetime()
        .signed_duration_since(domain.created_at.as_datetime())
        .to_std()
        .unwrap_or_default();
    if all_verified {
        domain.verified = true;
        domain.status = DomainStatus::Verified;
        domain.verified_at.get_or_insert(now);
        Outcome::Verified
    } else if age >= VERIFICATION_WINDOW {
        domain.verified = false;
        domain.status = DomainStatus::Failed;
        Outcome::Failed
    } else {
        Outcome::StillPending
    }
}
