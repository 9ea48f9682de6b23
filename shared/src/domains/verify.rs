//! A manual verify: the caller's turn taken, the records looked up, SES's view
//! read, and the result moved through `lifecycle::after_manual_check` and stored.

use super::confirmation::read_ses_view;
use super::read::find_live;
use super::setup::{fill_dkim_tokens, merge_records};
use super::{Attempt, WRITE_ATTEMPTS, lifecycle, logged, retrying, store_error};
use crate::app::App;
use crate::domain_name::DomainName;
use crate::error::ApiError;
use crate::metrics::MetricSet;
use crate::model::{DnsRecord, Domain, RecordStatus, TenantName, Timestamp};
use crate::store::{StoreError, Turn};
use crate::verify::CheckStats;

/// Checks the organization's domain now and stores the result.
pub async fn verify(app: &App, key: &TenantName) -> Result<Domain, ApiError> {
    let mut domain = find_live(app, key).await?;
    take_check_turn(app, &key.organization_id, &key.name, domain.last_checked_at).await?;
    if domain.dkim_tokens.is_empty()
        && let Err(error) = fill_dkim_tokens(app, &mut domain).await
    {
        // Verify still checks the records it has; the domain cannot be verified
        // without DKIM records, which the answer shows.
        tracing::warn!(domain = %domain.name, error = %error, "verifying without DKIM tokens");
    }

    let (checked, stats) = app.dns.check_measured(&domain.name, &domain.records).await;
    let now = Timestamp::now();
    // SES's view, read once (when DNS is all correct and SES has not confirmed).
    domain.records = checked.clone();
    read_ses_view(app, &mut domain, now, false, None).await;
    let ses = domain.ses.clone();
    let checked_for = domain.mail_from_subdomain.clone();
    let exhausted = || {
        logged(ApiError::Unavailable(
            "verify kept losing write races".into(),
        ))
    };
    let (ses, checked_for) = (&ses, &checked_for);
    let state = (domain, checked);
    retrying(WRITE_ATTEMPTS, exhausted, state, |(mut domain, mut checked), attempt| async move {
        // After a lost race the domain may ask for other records (a MAIL FROM
        // change landed): this check speaks only for the records it looked up,
        // and SES's MAIL FROM status only for the label it was read for.
        domain.records = merge_records(domain.records.clone(), &checked);
        domain.ses = ses.clone().map(|mut view| {
            if domain.mail_from_subdomain != *checked_for {
                view.mail_from_status = None;
            }
            view
        });
        lifecycle::after_manual_check(&mut domain, now);
        match app.store.update(&mut domain).await {
            Ok(()) => {
                for set in metrics(&domain, stats) {
                    app.metrics.emit(set);
                }
                Ok(Attempt::Done(domain))
            }
            // This check is the newest: apply it to what is stored now.
            Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => {
                let fresh = find_live(app, key).await?;
                Ok(Attempt::Again((fresh, checked)))
            }
            // Refused for its size: what DNS returned is the zone's doing, not a
            // server fault; the verdicts are kept without what was observed.
            Err(StoreError::TooLarge(detail)) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(domain = %domain.name, %detail, "storing the check without observed values");
                checked.iter_mut().for_each(DnsRecord::drop_observations);
                Ok(Attempt::Again((domain, checked)))
            }
            Err(error) => Err(logged(store_error(error))),
        }
    })
    .await
}

/// Takes the organization's turn to check `name` now (at most one every
/// `App::manual_check_interval`, a turn that outlives the domain or claim), or
/// 429 saying when to retry and when the result a read shows now was stored
/// (`last_checked_at`).
pub(crate) async fn take_check_turn(
    app: &App,
    organization_id: &str,
    name: &DomainName,
    last_checked_at: Option<Timestamp>,
) -> Result<(), ApiError> {
    // No interval, no turn (tests that check one name again at once).
    if app.manual_check_interval.is_zero() {
        return Ok(());
    }
    let now = Timestamp::now();
    let turn = Turn::Check {
        organization_id,
        name,
    };
    match app
        .store
        .take_turn(turn, now, app.manual_check_interval)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::TooSoon(at)) => Err(ApiError::TooManyChecks {
            retry_after: lifecycle::manual_check_retry_after(at, now, app.manual_check_interval),
            last_checked_at,
        }),
        Err(error) => Err(logged(store_error(error))),
    }
}

/// A manual verify: its outcome (the domain's status after it), its records by
/// status, and what its DNS lookups cost.
fn metrics(domain: &Domain, stats: CheckStats) -> [MetricSet; 2] {
    let with = |status| domain.records.iter().filter(|r| r.status == status).count();
    [
        MetricSet::for_operation("verify")
            .dimension("Outcome", domain.status.as_str())
            .count("Verifications", 1),
        MetricSet::for_operation("verify")
            .count("RecordsVerified", with(RecordStatus::Verified))
            .count("RecordsPending", with(RecordStatus::Pending))
            .count("RecordsFailed", with(RecordStatus::Failed))
            .count("DnsLookupsIncomplete", stats.incomplete)
            .count("DnsQuestions", stats.questions)
            .millis("DnsCheckMillis", stats.elapsed),
    ]
}
