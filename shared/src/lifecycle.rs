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
pub enum Outcome {
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
pub fn after_scheduled_check(domain: &mut Domain, now: Timestamp) -> Outcome {
    domain.last_checked_at = Some(now);
    domain.reason = waiting_for(domain);
    let verified_now = ready(domain);
    match (domain.status, verified_now) {
        (DomainStatus::Failed, _) => {
            // Not watched: only a manual verify brings it back.
            domain.schedule.next_check_at = None;
            Outcome::Failed
        }
        (DomainStatus::Verified, true) => {
            domain.schedule.next_check_at = Some(now.plus(VERIFIED_RECHECK));
            Outcome::StillVerified
        }
        (DomainStatus::Pending | DomainStatus::TemporaryFailure, true) => {
            mark_verified(domain, now);
            Outcome::Verified
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
            Outcome::StillPending
        }
        (DomainStatus::Verified | DomainStatus::TemporaryFailure, false) => {
            let since = *domain.schedule.failing_since.get_or_insert(now);
            if now.since(since) >= VERIFICATION_WINDOW {
                return mark_failed(domain);
            }
            // Still verified: mail keeps flowing while the owner fixes DNS.
            domain.status = DomainStatus::TemporaryFailure;
            domain.schedule.next_check_at = Some(now.plus(FAILING_RECHECK));
            Outcome::TemporaryFailure
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

/// A domain is checked by hand at most once in this long: a tenant cannot make
/// the service ask DNS and SES for one domain faster (the scheduler has its own
/// pace).
pub const MANUAL_CHECK_INTERVAL: Duration = Duration::from_secs(10);

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
    if domain.deleting_since.is_some() {
        let renewal = Span::from_std(DELETE_MARK_RENEWAL).unwrap_or(Span::seconds(15));
        domain.deleting_since = Some(Timestamp::from(now.as_datetime() - renewal));
    }
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

fn mark_failed(domain: &mut Domain) -> Outcome {
    domain.status = DomainStatus::Failed;
    domain.verified = false;
    domain.verified_at = None;
    domain.schedule.next_check_at = None;
    Outcome::Failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain_name::DomainName;
    use crate::model::SesView;
    use crate::records::expected_records;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH).plus(Span::minutes(minutes))
    }

    fn ses(dkim_status: SesStatus) -> Option<SesView> {
        Some(SesView {
            dkim_status,
            mail_from_status: None,
            checked_at: at(0),
        })
    }

    /// A domain created at minute 0, its records all `status`, SES confirmed.
    fn domain(status: DomainStatus, records: RecordStatus) -> Domain {
        let name = DomainName::parse("example.com").expect("valid");
        let mut domain = Domain::new("org", name.clone(), at(0));
        domain.records =
            expected_records(&name, &["t1".into(), "t2".into(), "t3".into()], "us-east-2");
        domain.records.iter_mut().for_each(|r| r.status = records);
        domain.status = status;
        domain.verified = matches!(
            status,
            DomainStatus::Verified | DomainStatus::TemporaryFailure
        );
        domain.ses = ses(SesStatus::Success);
        domain
    }

    #[test]
    fn correct_in_dns_is_not_verified_until_ses_confirms() {
        for unconfirmed in [None, ses(SesStatus::Pending), ses(SesStatus::NotStarted)] {
            let mut d = domain(DomainStatus::Pending, RecordStatus::Verified);
            d.ses = unconfirmed.clone();
            assert!(needs_ses(&d, false), "{unconfirmed:?}");
            after_manual_check(&mut d, at(10));
            assert_eq!((d.status, d.verified), (DomainStatus::Pending, false));
            assert!(
                d.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("SES is confirming")),
                "{d:?}"
            );
            assert_eq!(after_scheduled_check(&mut d, at(11)), Outcome::StillPending);
            assert!(
                d.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("SES is confirming")),
                "{d:?}"
            );
        }
        let mut d = domain(DomainStatus::Pending, RecordStatus::Verified);
        assert!(!needs_ses(&d, false));
        assert!(needs_ses(&d, true), "the daily re-check asks again");
        after_manual_check(&mut d, at(10));
        assert_eq!((d.status, d.reason), (DomainStatus::Verified, None));
    }

    #[test]
    fn a_domain_verified_before_ses_was_read_is_not_demoted_by_a_failed_read() {
        // Stored by a version that did not read SES; this check's read failed.
        let mut d = domain(DomainStatus::Verified, RecordStatus::Verified);
        d.ses = None;
        assert!(needs_ses(&d, false), "SES is still asked");
        assert_eq!(
            after_scheduled_check(&mut d, at(30)),
            Outcome::StillVerified
        );
        assert_eq!(
            (d.status, d.verified, d.reason.clone()),
            (DomainStatus::Verified, true, None)
        );
        after_manual_check(&mut d, at(40));
        assert_eq!((d.status, d.verified), (DomainStatus::Verified, true));
        // A pending domain never read is not verified for it.
        let mut pending = domain(DomainStatus::Pending, RecordStatus::Verified);
        pending.ses = None;
        pending.verified = false;
        after_manual_check(&mut pending, at(40));
        assert_eq!(
            (pending.status, pending.verified),
            (DomainStatus::Pending, false)
        );
    }

    #[test]
    fn a_domain_once_verified_is_remembered_as_such_after_it_fails() {
        let mut d = domain(DomainStatus::Pending, RecordStatus::Verified);
        assert_eq!(d.was_verified, Some(false), "new domains never were");
        after_manual_check(&mut d, at(10));
        assert_eq!(
            (d.status, d.was_verified),
            (DomainStatus::Verified, Some(true))
        );
        // Its records went missing and stayed so for 72 hours.
        d.records
            .iter_mut()
            .for_each(|r| r.status = RecordStatus::Pending);
        after_scheduled_check(&mut d, at(20));
        assert_eq!(
            after_scheduled_check(&mut d, at(20 + 72 * 60)),
            Outcome::Failed
        );
        assert_eq!((d.status, d.verified_at), (DomainStatus::Failed, None));
        assert_eq!(d.was_verified, Some(true));
    }

    #[test]
    fn a_delete_goes_on_only_under_its_own_fresh_mark() {
        let mut d = domain(DomainStatus::Verified, RecordStatus::Verified);
        assert_eq!(
            delete_turn(&d, None, at(0)),
            DeleteTurn::Mark,
            "no mark yet"
        );
        mark_deleting(&mut d, at(0));
        assert_eq!(d.schedule.next_check_at, None, "not watched any more");
        let soon = at(0).plus(Span::seconds(10));
        assert_eq!(delete_turn(&d, Some(at(0)), soon), DeleteTurn::Mine);
        assert_eq!(delete_turn(&d, None, soon), DeleteTurn::Another);
        let later = at(0).plus(Span::seconds(15));
        assert_eq!(
            delete_turn(&d, None, later),
            DeleteTurn::Mark,
            "taken over by the delete that resumes it"
        );
        // Handed back after a failed step: the retry takes it over at once.
        hand_back_delete_mark(&mut d, soon);
        assert_eq!(delete_turn(&d, None, soon), DeleteTurn::Mark);
        assert!(d.deleting_since.is_some(), "still marked: gone to readers");
    }

    #[test]
    fn ses_losing_the_records_is_a_temporary_failure() {
        for lost in [SesStatus::TemporaryFailure, SesStatus::Failed] {
            let mut d = domain(DomainStatus::Verified, RecordStatus::Verified);
            d.ses = ses(lost);
            assert_eq!(
                after_scheduled_check(&mut d, at(30)),
                Outcome::TemporaryFailure
            );
            assert_eq!(
                (d.status, d.verified),
                (DomainStatus::TemporaryFailure, true)
            );
            assert!(
                d.reason.as_deref().is_some_and(|r| r.contains("SES")),
                "{d:?}"
            );
        }
    }

    #[test]
    fn records_not_in_dns_come_before_ses_in_the_reason() {
        let mut d = domain(DomainStatus::Pending, RecordStatus::Pending);
        assert!(!needs_ses(&d, true), "SES is not asked before DNS is right");
        after_manual_check(&mut d, at(10));
        assert!(
            d.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("6 of 6 records")),
            "{d:?}"
        );
    }

    const WINDOW_MINUTES: i64 = 72 * 60;

    #[test]
    fn manual_verify_all_verified_is_verified_and_rechecked_daily() {
        let mut d = domain(DomainStatus::Pending, RecordStatus::Verified);
        after_manual_check(&mut d, at(10));
        assert_eq!(
            (d.status, d.verified, d.verified_at),
            (DomainStatus::Verified, true, Some(at(10)))
        );
        assert_eq!(
            d.schedule.next_check_at,
            Some(at(10).plus(VERIFIED_RECHECK))
        );
        assert_eq!(d.last_checked_at, Some(at(10)));
    }

    #[test]
    fn manual_verify_not_all_verified_is_pending_with_a_fresh_window() {
        for before in [
            DomainStatus::Verified,
            DomainStatus::Failed,
            DomainStatus::TemporaryFailure,
        ] {
            let mut d = domain(before, RecordStatus::Pending);
            d.schedule.checks_in_window = 7;
            after_manual_check(&mut d, at(5000));
            assert_eq!(
                (d.status, d.verified, d.verified_at),
                (DomainStatus::Pending, false, None),
                "{before:?}"
            );
            assert_eq!(d.schedule.window_started_at, at(5000));
            assert_eq!(d.schedule.checks_in_window, 0);
            assert_eq!(d.schedule.next_check_at, Some(at(5001)));
        }
    }

    #[test]
    fn no_dkim_records_is_never_all_verified() {
        let mut d = domain(DomainStatus::Pending, RecordStatus::Verified);
        d.records.retain(|r| r.record != RecordPurpose::Dkim);
        assert!(!all_records_verified(&d.records));
    }

    #[test]
    fn pending_backs_off_then_fails_after_the_window() {
        let mut d = domain(DomainStatus::Pending, RecordStatus::Pending);
        let mut gaps = Vec::new();
        let mut now = 1;
        for _ in 0..6 {
            assert_eq!(
                after_scheduled_check(&mut d, at(now)),
                Outcome::StillPending
            );
            let next = d.schedule.next_check_at.expect("scheduled");
            let gap = (next.as_datetime() - at(now).as_datetime()).num_minutes();
            gaps.push(gap);
            now += gap;
        }
        assert_eq!(gaps, [5, 15, 30, 60, 60, 60]);
        assert_eq!(
            after_scheduled_check(&mut d, at(WINDOW_MINUTES)),
            Outcome::Failed
        );
        assert_eq!(
            (d.status, d.verified, d.schedule.next_check_at),
            (DomainStatus::Failed, false, None)
        );
    }

    #[test]
    fn pending_or_failing_that_verifies_is_verified() {
        for before in [DomainStatus::Pending, DomainStatus::TemporaryFailure] {
            let mut d = domain(before, RecordStatus::Verified);
            d.schedule.failing_since = Some(at(1));
            assert_eq!(after_scheduled_check(&mut d, at(30)), Outcome::Verified);
            assert_eq!((d.status, d.verified), (DomainStatus::Verified, true));
            assert_eq!(d.schedule.failing_since, None);
            assert_eq!(
                d.schedule.next_check_at,
                Some(at(30).plus(VERIFIED_RECHECK))
            );
        }
        let mut d = domain(DomainStatus::Verified, RecordStatus::Verified);
        assert_eq!(
            after_scheduled_check(&mut d, at(30)),
            Outcome::StillVerified
        );
    }

    #[test]
    fn drift_is_a_temporary_failure_that_stays_verified_then_fails_after_72_hours() {
        let mut d = domain(DomainStatus::Verified, RecordStatus::Pending);
        assert_eq!(
            after_scheduled_check(&mut d, at(100)),
            Outcome::TemporaryFailure
        );
        assert_eq!(
            (d.status, d.verified),
            (DomainStatus::TemporaryFailure, true)
        );
        assert_eq!(d.schedule.failing_since, Some(at(100)));
        assert_eq!(
            d.schedule.next_check_at,
            Some(at(100).plus(FAILING_RECHECK))
        );
        assert_eq!(
            after_scheduled_check(&mut d, at(160)),
            Outcome::TemporaryFailure
        );
        assert_eq!(
            d.schedule.failing_since,
            Some(at(100)),
            "since the first miss"
        );
        assert_eq!(
            after_scheduled_check(&mut d, at(100 + WINDOW_MINUTES)),
            Outcome::Failed
        );
        assert!(!d.verified);
    }

    #[test]
    fn failed_stays_failed_and_unwatched() {
        for records in [RecordStatus::Pending, RecordStatus::Verified] {
            let mut d = domain(DomainStatus::Failed, records);
            assert_eq!(after_scheduled_check(&mut d, at(10)), Outcome::Failed);
            assert_eq!(
                (d.status, d.schedule.next_check_at),
                (DomainStatus::Failed, None)
            );
        }
    }

    #[test]
    fn a_failed_write_still_moves_the_domain_on() {
        let mut d = domain(DomainStatus::Pending, RecordStatus::Pending);
        after_scheduled_check(&mut d, at(1));
        assert_eq!(next_check_after_failed_write(&d, at(1)), Some(at(6)));
        d.schedule.next_check_at = None;
        assert_eq!(
            next_check_after_failed_write(&d, at(1)),
            Some(at(1).plus(FAILING_RECHECK))
        );
    }

    /// `d` with a MAIL FROM subdomain and its two records, all `records`.
    fn with_mail_from(mut d: Domain, records: RecordStatus) -> Domain {
        let label = crate::mail_from::MailFromLabel::parse("send", &d.name).expect("valid");
        let mut extra = crate::records::mail_from_records(&d.name, &label, "us-east-2");
        extra.iter_mut().for_each(|r| r.status = records);
        d.records.extend(extra);
        d.mail_from_subdomain = Some(label);
        d
    }

    #[test]
    fn a_mail_from_domain_must_be_confirmed_by_ses_too() {
        let mut d = with_mail_from(
            domain(DomainStatus::Pending, RecordStatus::Verified),
            RecordStatus::Verified,
        );
        for (mail_from, says) in [
            (None, "confirming the custom MAIL FROM"),
            (Some(SesStatus::Pending), "confirming the custom MAIL FROM"),
            (Some(SesStatus::Failed), "MAIL FROM domain's MX (FAILED)"),
        ] {
            if let Some(ses) = &mut d.ses {
                ses.mail_from_status = mail_from;
            }
            assert!(needs_ses(&d, false));
            after_manual_check(&mut d, at(10));
            assert_eq!((d.status, d.verified), (DomainStatus::Pending, false));
            assert!(
                d.reason.as_deref().is_some_and(|r| r.contains(says)),
                "{mail_from:?}: {:?}",
                d.reason
            );
        }
        if let Some(ses) = &mut d.ses {
            ses.mail_from_status = Some(SesStatus::Success);
        }
        after_manual_check(&mut d, at(20));
        assert_eq!((d.status, d.reason.clone()), (DomainStatus::Verified, None));

        // SES losing sight of the MAIL FROM MX is drift, as for DKIM.
        if let Some(ses) = &mut d.ses {
            ses.mail_from_status = Some(SesStatus::TemporaryFailure);
        }
        assert_eq!(
            after_scheduled_check(&mut d, at(30)),
            Outcome::TemporaryFailure
        );
        assert!(d.verified, "mail still flows while the owner fixes it");
    }

    #[test]
    fn setting_a_mail_from_domain_waits_for_its_records_and_removing_it_does_not() {
        let mut d = domain(DomainStatus::Verified, RecordStatus::Verified);
        d.verified_at = Some(at(5));
        let verified = d.clone();
        let mut d = with_mail_from(d, RecordStatus::Pending);
        after_mail_from_change(&mut d, at(60));
        assert_eq!((d.status, d.verified), (DomainStatus::Pending, false));
        assert_eq!(d.schedule, CheckSchedule::starting(at(60)));
        assert!(
            d.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("2 of 8 records")),
            "{:?}",
            d.reason
        );

        // Removed again before it was published: verified (DNS and DKIM still
        // confirmed), from now.
        d.records.truncate(6);
        d.mail_from_subdomain = None;
        after_mail_from_change(&mut d, at(70));
        assert_eq!(
            (d.status, d.verified, d.reason.clone()),
            (DomainStatus::Verified, true, None)
        );
        assert_eq!(d.verified_at, Some(at(70)));

        // A change starts SES's MAIL FROM confirmation over, even where the new
        // records are already published.
        let mut d = with_mail_from(verified.clone(), RecordStatus::Verified);
        if let Some(ses) = &mut d.ses {
            ses.mail_from_status = Some(SesStatus::Success);
        }
        after_mail_from_change(&mut d, at(80));
        assert_eq!(
            d.status,
            DomainStatus::Pending,
            "SES starts over on a change"
        );
        // Removed from a verified domain: nothing moves but the records.
        let mut d = verified;
        let schedule = d.schedule.clone();
        after_mail_from_change(&mut d, at(90));
        assert_eq!(
            (d.status, d.verified_at, d.schedule),
            (DomainStatus::Verified, Some(at(5)), schedule)
        );
    }

    #[test]
    fn a_check_that_changed_nothing_a_caller_sees_writes_the_schedule_alone() {
        let stored = domain(DomainStatus::Verified, RecordStatus::Verified);
        // The daily drift check: same records, SES asked again, moved on a day.
        let mut checked = stored.clone();
        if let Some(ses) = &mut checked.ses {
            ses.checked_at = at(60);
        }
        after_scheduled_check(&mut checked, at(60));
        assert_eq!(
            check_write(&stored, &mut checked, at(60)),
            CheckWrite::ScheduleOnly
        );
        assert_eq!(checked.updated_at, stored.updated_at, "nothing changed");
        assert_eq!(checked.last_checked_at, Some(at(60)));

        // A name's records answered in another order are the same records.
        let mut stored = stored;
        stored.records[1].observed = vec!["v=spf1 a".into(), "v=spf1 b".into()];
        let mut checked = stored.clone();
        checked.records[1].observed.reverse();
        after_scheduled_check(&mut checked, at(60));
        assert_eq!(
            check_write(&stored, &mut checked, at(60)),
            CheckWrite::ScheduleOnly
        );

        // Anything a caller sees: a new observed value, a reason, SES's status.
        let changes: [fn(&mut Domain); 3] = [
            |d| d.records[0].observed.push("10 other.example".into()),
            |d| d.records[2].reason = Some("gone".into()),
            |d| {
                if let Some(ses) = &mut d.ses {
                    ses.dkim_status = SesStatus::TemporaryFailure;
                }
            },
        ];
        for change in changes {
            let mut checked = stored.clone();
            change(&mut checked);
            after_scheduled_check(&mut checked, at(60));
            assert_eq!(
                check_write(&stored, &mut checked, at(60)),
                CheckWrite::Domain
            );
            assert_eq!(checked.updated_at, at(60), "the change is dated");
        }
    }
}
