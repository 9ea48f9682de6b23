//! The domain's state machine, in one place: how the result of a DNS check moves
//! `status`, `verified`, `verified_at`, `last_checked_at` and the check schedule.
//! The manual verify (`after_manual_check`) and the scheduled job
//! (`after_scheduled_check`) both go through it; every write of the result is
//! then conditioned on `Domain::version` by the store.
//!
//! "Ready" below means every record is correct in DNS *and* SES has confirmed the
//! DKIM records (`ses.dkim_status` is `SUCCESS`): only then is mail signed and sent.
//! `domain.reason` says in one sentence what a domain that is not ready waits for.
//!
//! | status before | ready? | manual verify | scheduled check |
//! |---|---|---|---|
//! | any | yes | `verified`, daily re-check, window restarted | `verified` (kept or reached), daily re-check (SES asked again) |
//! | any | no | `pending`, window restarted, first check in a minute | see below |
//! | `pending` | no | | `pending`, back-off 5, 15, 30, 60 min then hourly; `failed` 72 h after the window started |
//! | `verified`, `temporary_failure` | no | | `temporary_failure` (still `verified: true`), hourly; `failed` 72 h after it started failing |
//! | `failed` | no | | stays `failed`, not watched any more (only a manual verify brings it back) |

use std::time::Duration;

use chrono::Duration as Span;

use crate::model::{
    CheckSchedule, DnsRecord, Domain, DomainStatus, RecordPurpose, RecordStatus, SesStatus,
    Timestamp,
};

/// Not verified this long after the window started (creation or manual verify),
/// or failing this long after drifting: `failed`.
pub const VERIFICATION_WINDOW: Duration = Duration::from_secs(72 * 60 * 60);
/// Minutes to the next check after the 1st, 2nd, ... scheduled check of a pending
/// domain (the first comes a minute after creation); hourly after the last.
pub const BACKOFF_MINUTES: [i64; 4] = [5, 15, 30, 60];
/// How often a verified domain is checked for drift.
pub const VERIFIED_RECHECK: Span = Span::hours(24);
/// How often a drifting (temporarily failing) domain is checked.
pub const FAILING_RECHECK: Span = Span::hours(1);

/// What a scheduled check did to a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledOutcome {
    /// Newly verified, or fixed after a temporary failure.
    Verified,
    /// Verified, and still all correct.
    StillVerified,
    /// Pending, and not all correct yet.
    StillPending,
    /// A verified domain whose records went missing.
    TemporaryFailure,
    /// Out of time.
    Failed,
    /// Written by someone else (a manual verify) since read: left as it is.
    Superseded,
    /// Deleted while being checked: left deleted.
    Gone,
    /// The check's result could not be stored.
    Error,
    /// Not started before the run's deadline.
    LeftForLater,
}

/// Whether every record, the DKIM ones among them, was seen correct.
pub fn all_records_verified(records: &[DnsRecord]) -> bool {
    records.iter().any(|r| r.record == RecordPurpose::Dkim)
        && records.iter().all(|r| r.status == RecordStatus::Verified)
}

/// Whether SES has confirmed the domain's DKIM records and, where one is set, its
/// custom MAIL FROM domain.
pub fn ses_confirmed(domain: &Domain) -> bool {
    domain.ses.as_ref().is_some_and(|ses| {
        ses.dkim_status == SesStatus::Success
            && (domain.mail_from_subdomain.is_none()
                || ses.mail_from_status == Some(SesStatus::Success))
    })
}

/// Whether SES should be asked after this DNS check: every record is correct in
/// DNS and SES has not confirmed yet, or (`recheck_confirmed`, the scheduled
/// job's daily check of a verified domain) to see that it still does.
pub fn needs_ses(domain: &Domain, recheck_confirmed: bool) -> bool {
    all_records_verified(&domain.records) && (recheck_confirmed || !ses_confirmed(domain))
}

/// Every record correct in DNS and confirmed by SES: mail is signed and sent.
///
/// A domain verified before SES's view was ever read (stored by an older version,
/// when DNS alone decided) keeps its state until a read succeeds: not knowing is
/// not SES saying no, and a throttled or rate-limited read must not demote a
/// domain that sends today. Once read, `ses` is never empty again.
pub fn ready(domain: &Domain) -> bool {
    let ses_allows = match &domain.ses {
        Some(_) => ses_confirmed(domain),
        None => domain.verified,
    };
    all_records_verified(&domain.records) && ses_allows
}

/// What a domain that is not ready waits for, in one sentence.
pub fn waiting_for(domain: &Domain) -> Option<String> {
    if ready(domain) {
        return None;
    }
    if !all_records_verified(&domain.records) {
        let wrong = domain
            .records
            .iter()
            .filter(|r| r.status != RecordStatus::Verified)
            .count();
        return Some(
            if domain
                .records
                .iter()
                .any(|r| r.record == RecordPurpose::Dkim)
            {
                format!(
                    "{wrong} of {} records are not correct in DNS yet; each record's reason says what is missing.",
                    domain.records.len()
                )
            } else {
                "SES has not issued the DKIM records yet; fetch the DNS records again shortly."
                    .into()
            },
        );
    }
    let dkim = domain.ses.as_ref().map(|ses| ses.dkim_status);
    let mail_from = domain.ses.as_ref().and_then(|ses| ses.mail_from_status);
    Some(match (dkim, mail_from) {
        (Some(SesStatus::Failed), _) => "Every record is correct in DNS, but SES gave up confirming the DKIM records (FAILED); check the three CNAMEs and verify again to restart.".into(),
        (Some(SesStatus::TemporaryFailure), _) => "SES can no longer see the DKIM records it had confirmed (TEMPORARY_FAILURE); check that the three CNAMEs are still published.".into(),
        (Some(SesStatus::Success), Some(SesStatus::Failed)) => "Every record is correct in DNS, but SES could not confirm the MAIL FROM domain's MX (FAILED); check the MAIL_FROM_MX record and verify again. Meanwhile SES sends with its own MAIL FROM domain.".into(),
        (Some(SesStatus::Success), Some(SesStatus::TemporaryFailure)) => "SES can no longer see the MAIL FROM domain's MX it had confirmed (TEMPORARY_FAILURE); check that the MAIL_FROM_MX record is still published. Meanwhile SES sends with its own MAIL FROM domain.".into(),
        (Some(SesStatus::Success), _) => "Every record is correct in DNS; SES is confirming the custom MAIL FROM domain itself (usually within minutes, at most 72 hours).".into(),
        _ => "Every record is correct in DNS; SES is confirming the DKIM records itself (usually within minutes, at most 72 hours), and mail is signed and sent once it has.".into(),
    })
}

/// A manual verify: sets the domain's state from its checked records (already in
/// `domain.records`) and SES's view (`domain.ses`), and restarts the verification
/// window. Not ready leaves the domain pending, checked again by the scheduled job
/// a minute later.
pub fn after_manual_check(domain: &mut Domain, now: Timestamp) {
    domain.last_checked_at = Some(now);
    domain.updated_at = now;
    domain.reason = waiting_for(domain);
    if ready(domain) {
        domain.schedule = CheckSchedule::starting(now);
        mark_verified(domain, now);
    } else {
        restart_pending(domain, now);
    }
}

/// A scheduled check: moves the domain on from its checked records (already in
/// `domain.records`), by the table in the module's documentation.
///
/// `updated_at` is left alone: `check_write` moves it when the check changed
/// something a caller sees.
pub fn after_scheduled_check(domain: &mut Domain, now: Timestamp) -> ScheduledOutcome {
    domain.last_checked_at = Some(now);
    domain.reason = waiting_for(domain);
    let verified_now = ready(domain);
    match (domain.status, verified_now) {
        (DomainStatus::Failed, _) => {
            // Not watched: only a manual verify brings it back.
            domain.schedule.next_check_at = None;
            ScheduledOutcome::Failed
        }
        (DomainStatus::Verified, true) => {
            domain.schedule.next_check_at = Some(now.plus(VERIFIED_RECHECK));
            ScheduledOutcome::StillVerified
        }
        (DomainStatus::Pending | DomainStatus::TemporaryFailure, true) => {
            mark_verified(domain, now);
            ScheduledOutcome::Verified
        }
        (DomainStatus::Pending, false) => {
            let schedule = &mut domain.schedule;
            schedule.checks_in_window += 1;
            if now.since(schedule.window_started_at) >= VERIFICATION_WINDOW {
                return mark_failed(domain);
            }
            let step = usize::try_from(schedule.checks_in_window).unwrap_or(usize::MAX);
            let minutes = BACKOFF_MINUTES[step.saturating_sub(1).min(BACKOFF_MINUTES.len() - 1)];
            schedule.next_check_at = Some(now.plus(Span::minutes(minutes)));
            ScheduledOutcome::StillPending
        }
        (DomainStatus::Verified | DomainStatus::TemporaryFailure, false) => {
            let since = *domain.schedule.failing_since.get_or_insert(now);
            if now.since(since) >= VERIFICATION_WINDOW {
                return mark_failed(domain);
            }
            // Still verified: mail keeps flowing while the owner fixes DNS.
            domain.status = DomainStatus::TemporaryFailure;
            domain.schedule.next_check_at = Some(now.plus(FAILING_RECHECK));
            ScheduledOutcome::TemporaryFailure
        }
    }
}

/// What a scheduled check has to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckWrite {
    /// Nothing a caller sees changed: the schedule alone, with when the domain
    /// was checked (and SES asked).
    ScheduleOnly,
    /// The domain changed (`updated_at` moved to the check): all of it.
    Domain,
}

/// Compares a domain after its scheduled check (`after_scheduled_check` done)
/// with the domain as stored. Only the schedule, `last_checked_at` and
/// `ses.checked_at` may differ for a `ScheduleOnly` write; observed values count
/// as a set (DNS servers rotate the order of a name's records). Otherwise the
/// domain changed and `updated_at` becomes `now`.
pub fn check_write(stored: &Domain, checked: &mut Domain, now: Timestamp) -> CheckWrite {
    let mut as_stored = checked.clone();
    as_stored.schedule = stored.schedule.clone();
    as_stored.last_checked_at = stored.last_checked_at;
    as_stored.updated_at = stored.updated_at;
    as_stored.version = stored.version;
    if let (Some(checked_ses), Some(stored_ses)) = (&mut as_stored.ses, &stored.ses) {
        checked_ses.checked_at = stored_ses.checked_at;
    }
    let mut stored = stored.clone();
    for domain in [&mut as_stored, &mut stored] {
        for record in &mut domain.records {
            record.observed.sort();
        }
    }
    if as_stored == stored {
        CheckWrite::ScheduleOnly
    } else {
        checked.updated_at = now;
        CheckWrite::Domain
    }
}

/// A MAIL FROM subdomain set, changed or removed (`domain.mail_from_subdomain` and
/// `domain.records` already say so; records kept from before keep what was seen of
/// them). SES's MAIL FROM status starts over. A domain still ready (a removal, or
/// a change of a domain that was not verified) is verified; otherwise it is
/// `pending` with its window restarted, as after a manual verify: the caller has
/// just asked for records to be published, and mail is not as asked until they are
/// (SES keeps sending meanwhile, with its own MAIL FROM domain).
pub fn after_mail_from_change(domain: &mut Domain, now: Timestamp) {
    domain.updated_at = now;
    if let Some(ses) = &mut domain.ses {
        ses.mail_from_status = None;
    }
    domain.reason = waiting_for(domain);
    if !ready(domain) {
        restart_pending(domain, now);
    } else if domain.status != DomainStatus::Verified {
        mark_verified(domain, now);
    }
}

/// A domain is checked by hand at most once in this long (`App` holds the
/// interval in force).
pub use crate::config::MANUAL_CHECK_INTERVAL;

/// Seconds until a manual check may begin again, `interval` after one that
/// began at `at` (at least 1, as `Retry-After` says it).
pub fn manual_check_retry_after(at: Timestamp, now: Timestamp, interval: Duration) -> u64 {
    interval
        .saturating_sub(now.since(at))
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64
}

/// A delete mark is its writer's for this long: only the request that wrote it
/// removes the identity meanwhile (SES has no conditional delete: two requests
/// between reading an identity's tags and deleting it could otherwise remove an
/// identity made for the name in between), and no claim or failed-name create
/// takes the name. An older mark, left by a delete that stopped half-way, is
/// taken over by the delete that resumes it with a versioned write.
pub const DELETE_MARK_RENEWAL: Duration = Duration::from_secs(15);

/// Who may go on with a domain's delete, as a request that wrote the mark
/// `mine` (if any) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteTurn {
    /// This request's own mark: it removes the identity and the domain.
    Mine,
    /// No mark, or one too old to hold the name: this request writes its own.
    Mark,
    /// Another request's fresh mark: that request is deleting it.
    Another,
}

/// Whose turn a delete is (see `DeleteTurn`).
pub fn delete_turn(domain: &Domain, mine: Option<Timestamp>, now: Timestamp) -> DeleteTurn {
    match domain.deleting_since {
        Some(since) if Some(since) == mine => DeleteTurn::Mine,
        Some(since) if now.since(since) < DELETE_MARK_RENEWAL => DeleteTurn::Another,
        _ => DeleteTurn::Mark,
    }
}

/// A delete that failed after writing its mark leaves it for the next delete to
/// take over at once (the domain stays marked: gone for every reader but the
/// next delete), instead of holding it for `DELETE_MARK_RENEWAL`.
pub fn hand_back_delete_mark(domain: &mut Domain, now: Timestamp) {
    if being_deleted(domain) {
        let renewal = Span::from_std(DELETE_MARK_RENEWAL).unwrap_or(Span::seconds(15));
        domain.deleting_since = Some(Timestamp::from(now.as_datetime() - renewal));
    }
}

/// Whether a delete of the domain has begun: from then on it is gone for every
/// reader, and nothing is checked or set up for it any more.
pub fn being_deleted(domain: &Domain) -> bool {
    domain.deleting_since.is_some()
}

/// How long a setup mark holds a domain. Longer than every function's timeout
/// (template.yaml), so a setup still under way is never overtaken by a delete.
pub const SETUP_WINDOW: Duration = Duration::from_secs(30);

/// Whether another request may still be creating the domain's identity.
pub fn setup_in_progress(domain: &Domain, now: Timestamp) -> bool {
    domain
        .setup_started_at
        .is_some_and(|started| now.since(started) < SETUP_WINDOW)
}

/// A request begins making the domain's identity: the setup mark, which holds
/// the domain for `SETUP_WINDOW` (no delete, no passing on meanwhile).
pub fn begin_setup(domain: &mut Domain, now: Timestamp) {
    domain.setup_started_at = Some(now);
}

/// The identity is made (its tokens stored with this write), or this request
/// gave up making it: the next request need not wait out the window.
pub fn end_setup(domain: &mut Domain) {
    domain.setup_started_at = None;
}

/// Whether a request may still be making or removing the domain's identity (a
/// fresh setup or delete mark): the name cannot pass to another organization.
pub fn in_flight(domain: &Domain, now: Timestamp) -> bool {
    setup_in_progress(domain, now)
        || domain
            .deleting_since
            .is_some_and(|since| now.since(since) < SETUP_WINDOW)
}

/// Whether a delete may mark the domain now: not while a create may still be
/// making its identity (a mark already there is a delete's to resume).
pub fn may_mark_deleting(domain: &Domain, now: Timestamp) -> bool {
    being_deleted(domain) || !setup_in_progress(domain, now)
}

/// The first step of a delete (or its renewal): marked, and no longer watched.
pub fn mark_deleting(domain: &mut Domain, now: Timestamp) {
    domain.deleting_since = Some(now);
    domain.schedule.next_check_at = None;
}

/// Where a domain whose result could not be stored is checked next: where the
/// check would have put it, else in an hour (never left due, heading every run).
pub fn next_check_after_failed_write(checked: &Domain, now: Timestamp) -> Option<Timestamp> {
    checked
        .schedule
        .next_check_at
        .or(Some(now.plus(FAILING_RECHECK)))
}

/// Verified (newly, or again after a temporary failure): checked daily from now.
fn mark_verified(domain: &mut Domain, now: Timestamp) {
    domain.status = DomainStatus::Verified;
    domain.verified = true;
    domain.was_verified = Some(true);
    domain.verified_at.get_or_insert(now);
    domain.schedule.failing_since = None;
    domain.schedule.next_check_at = Some(now.plus(VERIFIED_RECHECK));
}

/// Pending in a verification window that starts now, first checked a minute later.
fn restart_pending(domain: &mut Domain, now: Timestamp) {
    domain.schedule = CheckSchedule::starting(now);
    domain.verified = false;
    domain.status = DomainStatus::Pending;
    domain.verified_at = None;
}

fn mark_failed(domain: &mut Domain) -> ScheduledOutcome {
    domain.status = DomainStatus::Failed;
    domain.verified = false;
    domain.verified_at = None;
    domain.schedule.next_check_at = None;
    ScheduledOutcome::Failed
}

#[cfg(test)]
mod tests;
