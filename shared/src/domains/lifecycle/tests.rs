//! The state machine, transition by transition.

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
    domain.records = expected_records(&name, &["t1".into(), "t2".into(), "t3".into()], "us-east-2");
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
        assert_eq!(
            after_scheduled_check(&mut d, at(11)),
            ScheduledOutcome::StillPending
        );
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
        ScheduledOutcome::StillVerified
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
        ScheduledOutcome::Failed
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

/// A scheduled check that finds the domain drifting: a temporary failure that
/// stays verified (mail still flows while the owner fixes it).
fn drifts(d: &mut Domain, now: Timestamp) {
    assert_eq!(
        after_scheduled_check(d, now),
        ScheduledOutcome::TemporaryFailure
    );
    assert_eq!(
        (d.status, d.verified),
        (DomainStatus::TemporaryFailure, true)
    );
}

#[test]
fn ses_losing_the_records_is_a_temporary_failure() {
    for lost in [SesStatus::TemporaryFailure, SesStatus::Failed] {
        let mut d = domain(DomainStatus::Verified, RecordStatus::Verified);
        d.ses = ses(lost);
        drifts(&mut d, at(30));
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
            ScheduledOutcome::StillPending
        );
        let next = d.schedule.next_check_at.expect("scheduled");
        let gap = (next.as_datetime() - at(now).as_datetime()).num_minutes();
        gaps.push(gap);
        now += gap;
    }
    assert_eq!(gaps, [5, 15, 30, 60, 60, 60]);
    assert_eq!(
        after_scheduled_check(&mut d, at(WINDOW_MINUTES)),
        ScheduledOutcome::Failed
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
        assert_eq!(
            after_scheduled_check(&mut d, at(30)),
            ScheduledOutcome::Verified
        );
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
        ScheduledOutcome::StillVerified
    );
}

#[test]
fn drift_is_a_temporary_failure_that_stays_verified_then_fails_after_72_hours() {
    let mut d = domain(DomainStatus::Verified, RecordStatus::Pending);
    drifts(&mut d, at(100));
    assert_eq!(d.schedule.failing_since, Some(at(100)));
    assert_eq!(
        d.schedule.next_check_at,
        Some(at(100).plus(FAILING_RECHECK))
    );
    drifts(&mut d, at(160));
    assert_eq!(
        d.schedule.failing_since,
        Some(at(100)),
        "since the first miss"
    );
    assert_eq!(
        after_scheduled_check(&mut d, at(100 + WINDOW_MINUTES)),
        ScheduledOutcome::Failed
    );
    assert!(!d.verified);
}

#[test]
fn failed_stays_failed_and_unwatched() {
    for records in [RecordStatus::Pending, RecordStatus::Verified] {
        let mut d = domain(DomainStatus::Failed, records);
        assert_eq!(
            after_scheduled_check(&mut d, at(10)),
            ScheduledOutcome::Failed
        );
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
    drifts(&mut d, at(30));
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
