//! The scheduled re-verification with a controlled clock (each run is given its
//! `now`; nothing sleeps), against a real DNS server on 127.0.0.1.

use shared::store::DomainItems;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::Duration as Span;
use shared::confirmation::MAX_RATE_WAIT;
use shared::identity::{Identity, IdentityError, IdentityOwner, IdentityProvider, LocalIdentities};
use shared::model::{CheckSchedule, Domain, DomainStatus, Timestamp};
use shared::records::expected_records;
use shared::scheduler::{RunOptions, SchedulerError, Summary, run};
use shared::store::{DomainStore, InMemoryStore, StoreError};

use crate::common::{Hooked, HookedStore, StoreHook, StoreOp};
use shared::verify::DnsChecker;
use shared::{App, DomainName};
use test_support::TestDnsServer;

const TOKENS: [&str; 3] = ["tok1", "tok2", "tok3"];

fn all_records(prefix: &str) -> String {
    test_support::dns::all_records_zone(prefix, &TOKENS)
}

/// What a store does to a write, to stage races deterministically.
#[derive(Clone, Copy, PartialEq)]
enum Interference {
    None,
    /// The domain is deleted between the job's read and its write.
    DeleteBeforeWrite,
    /// A manual verify writes between the job's read and its write.
    ManualWriteBeforeWrite,
    /// Writes of this domain fail.
    FailWrites,
}

/// Races and failures staged through the one hookable store wrapper.
struct Staging {
    victim: std::sync::Mutex<Option<(String, Interference)>>,
    fail_reads: bool,
    /// The writes of a check's result, in order (a full write or the schedule's).
    writes: std::sync::Mutex<Vec<StoreOp>>,
}

impl Staging {
    fn set_victim(&self, name: &str, interference: Interference) {
        *self.victim.lock().expect("victim") = Some((name.to_string(), interference));
    }

    fn writes(&self) -> Vec<StoreOp> {
        self.writes.lock().expect("writes").clone()
    }
}

type StagedStore = HookedStore<Staging>;

#[async_trait]
impl StoreHook for Staging {
    async fn before(
        &self,
        inner: &dyn DomainStore,
        op: StoreOp,
        domain: Option<&Domain>,
    ) -> Hooked {
        if op == StoreOp::Due && self.fail_reads {
            return Hooked::Fail(StoreError::Unavailable("injected".into()));
        }
        let (StoreOp::Update | StoreOp::UpdateSchedule, Some(domain)) = (op, domain) else {
            return Hooked::Proceed;
        };
        self.writes.lock().expect("writes").push(op);
        // The victim: one name, or every domain of one organization.
        let victim = self.victim.lock().expect("victim").clone();
        let interference = match &victim {
            Some((victim, interference))
                if *victim == domain.name.as_str() || *victim == domain.organization_id =>
            {
                *interference
            }
            _ => Interference::None,
        };
        match interference {
            Interference::None => {}
            Interference::DeleteBeforeWrite => {
                inner.delete(domain).await.expect("staged delete");
            }
            Interference::ManualWriteBeforeWrite => {
                let mut manual = inner
                    .get(&domain.organization_id, &domain.name)
                    .await
                    .expect("get")
                    .expect("exists");
                manual.last_checked_at = Some(Timestamp::now());
                manual.schedule = CheckSchedule::starting(Timestamp::now());
                inner
                    .update(&mut manual)
                    .await
                    .expect("staged manual write");
            }
            // The full write fails; the small write of its next check does not.
            Interference::FailWrites if op == StoreOp::Update => {
                return Hooked::Fail(StoreError::Unavailable("injected".into()));
            }
            Interference::FailWrites => {}
        }
        Hooked::Proceed
    }
}

fn staged(victim: Option<(&str, Interference)>, fail_reads: bool) -> Arc<StagedStore> {
    staged_on(Arc::new(InMemoryStore::new()), victim, fail_reads)
}

fn staged_on(
    inner: Arc<dyn DomainStore>,
    victim: Option<(&str, Interference)>,
    fail_reads: bool,
) -> Arc<StagedStore> {
    Arc::new(HookedStore {
        inner,
        hook: Staging {
            victim: std::sync::Mutex::new(victim.map(|(name, i)| (name.to_string(), i))),
            fail_reads,
            writes: std::sync::Mutex::new(Vec::new()),
        },
    })
}

struct World {
    app: App,
    identities: Arc<LocalIdentities>,
    store: Arc<StagedStore>,
    dns: TestDnsServer,
    start: Timestamp,
}

async fn world(zone_records: &str, victim: Option<(&str, Interference)>) -> World {
    world_on(zone_records, staged(victim, false)).await
}

async fn world_on(zone_records: &str, store: Arc<StagedStore>) -> World {
    let dns = TestDnsServer::start(&[("example.com", zone_records)]).await;
    let identities = Arc::new(LocalIdentities::new());
    let app = App::new(
        store.clone(),
        identities.clone(),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );
    World {
        app,
        identities,
        store,
        dns,
        start: Timestamp::now(),
    }
}

impl World {
    async fn add(&self, name: &str) -> Domain {
        self.add_for("org_a", name, self.start).await
    }

    async fn add_for(&self, org: &str, name: &str, created: Timestamp) -> Domain {
        let name = DomainName::parse(name).expect("valid");
        let mut domain = Domain::new(org, name.clone(), created);
        domain.dkim_tokens = TOKENS.iter().map(|t| t.to_string()).collect();
        domain.records = expected_records(&name, &domain.dkim_tokens, "us-east-2");
        // Its identity, as create makes it (the local stand-in's SES view is its CNAMEs).
        self.identities
            .insert(&name, Some(self.app.identity_owner(org)))
            .expect("identity");
        self.store
            .inner
            .insert(&domain, usize::MAX)
            .await
            .expect("insert");
        domain
    }

    fn at(&self, minutes: i64) -> Timestamp {
        self.start.plus(Span::minutes(minutes))
    }

    async fn run_at(&self, minutes: i64) -> Summary {
        run(&self.app, self.at(minutes), RunOptions::default(), &|| {
            false
        })
        .await
        .expect("run")
    }

    async fn stored(&self, name: &str) -> Option<Domain> {
        self.store
            .inner
            .get("org_a", &DomainName::parse(name).expect("valid"))
            .await
            .expect("get")
    }
}

fn minutes_between(later: Option<Timestamp>, earlier: Timestamp) -> i64 {
    later
        .map(|t| (t.as_datetime() - earlier.as_datetime()).num_minutes())
        .unwrap_or(-1)
}

#[tokio::test]
async fn pending_domains_back_off_1_5_15_30_60_then_hourly() {
    let w = world("", None).await;
    w.add("example.com").await;
    assert_eq!(
        w.run_at(0).await.checked,
        0,
        "the first check is a minute after creation"
    );

    let mut now = 1;
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let summary = w.run_at(now).await;
        assert_eq!(summary.still_pending, 1, "{summary:?}");
        let domain = w.stored("example.com").await.expect("stored");
        assert_eq!(domain.status, DomainStatus::Pending);
        assert_eq!(domain.last_checked_at, Some(w.at(now)));
        let gap = minutes_between(domain.schedule.next_check_at, w.at(now));
        assert_eq!(
            w.run_at(now + gap - 1).await.checked,
            0,
            "not due before its time"
        );
        gaps.push(gap);
        now += gap;
    }
    assert_eq!(gaps, [5, 15, 30, 60, 60, 60]);
}

#[tokio::test]
async fn a_domain_verified_by_dns_is_verified_without_anyone_calling_verify() {
    let w = world(&all_records(""), None).await;
    w.add("example.com").await;
    let summary = w.run_at(1).await;
    assert_eq!(summary.verified, 1, "{summary:?}");
    let domain = w.stored("example.com").await.expect("stored");
    assert!(domain.verified);
    assert_eq!(domain.status, DomainStatus::Verified);
    assert_eq!(domain.verified_at, Some(w.at(1)));
    assert_eq!(
        minutes_between(domain.schedule.next_check_at, w.at(1)),
        24 * 60,
        "verified: daily"
    );
}

#[tokio::test]
async fn unverified_72_hours_after_the_window_started_is_failed_and_unwatched() {
    let w = world("", None).await;
    w.add("example.com").await;
    let end = 72 * 60;
    assert_eq!(w.run_at(1).await.still_pending, 1);
    // Overdue (its next check was 5 minutes later), still inside the window.
    let summary = w.run_at(end - 1).await;
    assert_eq!(summary.still_pending, 1, "{summary:?}");
    // Next check 15 minutes later: past the window.
    let summary = w.run_at(end + 14).await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    let domain = w.stored("example.com").await.expect("stored");
    assert_eq!(
        (domain.status, domain.verified),
        (DomainStatus::Failed, false)
    );
    assert_eq!(domain.schedule.next_check_at, None, "left the index");
    assert_eq!(w.run_at(end + 10_000).await, Summary::default());

    // A manual verify restarts the window and brings it back.
    let mut manual = domain.clone();
    manual.records = w.app.dns.check(&manual.name, &manual.records).await;
    shared::lifecycle::after_manual_check(&mut manual, w.at(end + 60));
    w.store
        .inner
        .update(&mut manual)
        .await
        .expect("manual verify");
    assert_eq!(manual.status, DomainStatus::Pending);
    assert_eq!(w.run_at(end + 61).await.still_pending, 1);
    assert_eq!(
        w.run_at(end + 60 + 72 * 60 - 1).await.still_pending,
        1,
        "a new 72-hour window"
    );
}

#[tokio::test]
async fn drift_is_a_temporary_failure_that_recovers_or_fails_after_72_hours() {
    let w = world(&all_records(""), None).await;
    w.add("example.com").await;
    assert_eq!(w.run_at(1).await.verified, 1);

    // The SPF record disappears.
    let without_spf: String = all_records("")
        .lines()
        .filter(|l| !l.contains("spf1"))
        .map(|l| format!("{l}\n"))
        .collect();
    w.dns.replace(0, &without_spf).await;
    let day = 24 * 60 + 1;
    let summary = w.run_at(day).await;
    assert_eq!(summary.temporary_failures, 1, "{summary:?}");
    let domain = w.stored("example.com").await.expect("stored");
    assert_eq!(
        (domain.status, domain.verified),
        (DomainStatus::TemporaryFailure, true)
    );
    assert_eq!(
        minutes_between(domain.schedule.next_check_at, w.at(day)),
        60,
        "failing: hourly"
    );

    // Fixed: verified again.
    w.dns.replace(0, &all_records("")).await;
    assert_eq!(w.run_at(day + 60).await.verified, 1);
    let domain = w.stored("example.com").await.expect("stored");
    assert_eq!(
        (domain.status, domain.verified),
        (DomainStatus::Verified, true)
    );
    assert_eq!(domain.schedule.failing_since, None);

    // Gone again and never fixed: failed 72 hours after it went missing.
    w.dns.replace(0, &without_spf).await;
    let second_drift = day + 60 + 24 * 60;
    assert_eq!(w.run_at(second_drift).await.temporary_failures, 1);
    assert_eq!(
        w.run_at(second_drift + 72 * 60 - 1)
            .await
            .temporary_failures,
        1
    );
    // The next hourly check is past the 72 hours.
    assert_eq!(w.run_at(second_drift + 72 * 60 + 59).await.failed, 1);
    let domain = w.stored("example.com").await.expect("stored");
    assert_eq!(
        (domain.status, domain.verified),
        (DomainStatus::Failed, false)
    );
    assert_eq!(domain.schedule.next_check_at, None);
}

#[tokio::test]
async fn a_delete_racing_a_check_is_not_undone() {
    let w = world(
        "",
        Some(("doomed.example.com", Interference::DeleteBeforeWrite)),
    )
    .await;
    w.add("doomed.example.com").await;
    w.add("fine.example.com").await;
    let summary = w.run_at(1).await;
    assert_eq!((summary.gone, summary.still_pending), (1, 1), "{summary:?}");
    assert!(
        w.stored("doomed.example.com").await.is_none(),
        "not resurrected"
    );
}

#[tokio::test]
async fn a_newer_manual_check_is_never_overwritten() {
    let w = world(
        "",
        Some(("example.com", Interference::ManualWriteBeforeWrite)),
    )
    .await;
    w.add("example.com").await;
    let summary = w.run_at(1).await;
    assert_eq!(summary.superseded, 1, "{summary:?}");
    let domain = w.stored("example.com").await.expect("stored");
    assert_eq!(
        domain.schedule.checks_in_window, 0,
        "the manual verify's state stands"
    );
    assert_ne!(domain.last_checked_at, Some(w.at(1)));
}

#[tokio::test]
async fn one_bad_domain_never_stops_the_batch() {
    let w = world("", Some(("bad.example.com", Interference::FailWrites))).await;
    for name in ["a.example.com", "bad.example.com", "c.example.com"] {
        w.add(name).await;
    }
    let summary = w.run_at(1).await;
    assert_eq!(
        (summary.errors, summary.still_pending, summary.checked),
        (1, 2, 2),
        "{summary:?}"
    );
}

/// 500 domains of one organization whose writes all fail (as DynamoDB refusing
/// them would), due before 100 healthy domains of others: one run still checks
/// every healthy domain, and the failing ones move on in the schedule instead of
/// heading every run.
#[tokio::test]
async fn no_organization_can_stall_the_scheduled_job() {
    let w = world("", Some(("org_poison", Interference::FailWrites))).await;
    let earlier = w.at(-10);
    for i in 0..500 {
        w.add_for("org_poison", &format!("p{i}.example.com"), earlier)
            .await;
    }
    for i in 0..100 {
        w.add_for(&format!("org_{i}"), &format!("h{i}.example.com"), w.start)
            .await;
    }
    let summary = w.run_at(1).await;
    assert_eq!(
        summary.still_pending, 100,
        "every healthy domain: {summary:?}"
    );
    assert_eq!(summary.errors, 500, "{summary:?}");
    let poisoned = w
        .store
        .inner
        .get(
            "org_poison",
            &DomainName::parse("p0.example.com").expect("valid"),
        )
        .await
        .expect("get")
        .expect("found");
    assert!(
        poisoned.schedule.next_check_at > Some(w.at(1)),
        "a failed domain is moved on: {:?}",
        poisoned.schedule.next_check_at
    );
    let next = w.run_at(2).await;
    assert_eq!((next.errors, next.checked), (0, 0), "{next:?}");
}

#[tokio::test]
async fn the_run_stops_at_the_deadline_and_the_next_takes_the_rest() {
    let w = world("", None).await;
    for i in 0..5 {
        w.add(&format!("d{i}.example.com")).await;
    }
    let started = AtomicUsize::new(0);
    // The deadline comes after two domains were started.
    let should_stop = || started.fetch_add(1, Ordering::SeqCst) >= 2;
    let options = RunOptions {
        batch_size: 10,
        concurrency: 1,
        ..RunOptions::default()
    };
    let first = run(&w.app, w.at(1), options, &should_stop)
        .await
        .expect("run");
    assert_eq!((first.checked, first.left_for_later), (2, 3), "{first:?}");
    let second = w.run_at(1).await;
    assert_eq!(second.checked, 3, "{second:?}");
}

#[tokio::test]
async fn more_domains_than_a_batch_are_all_checked() {
    let mut w = world("", None).await;
    for i in 0..7 {
        w.add(&format!("d{i}.example.com")).await;
    }
    let options = RunOptions {
        batch_size: 3,
        concurrency: 2,
        ..RunOptions::default()
    };
    let (metrics, captured) = shared::metrics::Metrics::in_memory("DomainsApi/test");
    w.app.metrics = metrics;
    let summary = run(&w.app, w.at(1), options, &|| false).await.expect("run");
    assert_eq!(summary.checked, 7, "{summary:?}");
    // One EMF line per run: its summary and each check's DNS time.
    let lines = captured.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["Operation"], "reverify");
    assert_eq!(line["Checked"], 7.0);
    assert_eq!(line["StillPending"], 7.0);
    assert_eq!(line["LeftForLater"], 0.0);
    assert_eq!(line["DnsCheckMillis"].as_array().map(Vec::len), Some(7));
    assert!(line["RunMillis"].as_f64().is_some());
}

#[tokio::test]
async fn systemic_failures_are_errors() {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let store = staged(None, true);
    let app = App::new(
        store,
        Arc::new(LocalIdentities::new()),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );
    let result = run(&app, Timestamp::now(), RunOptions::default(), &|| false).await;
    assert!(matches!(result, Err(SchedulerError::Read(_))), "{result:?}");

    let w = world("", Some(("only.example.com", Interference::FailWrites))).await;
    w.add("only.example.com").await;
    let result = run(&w.app, w.at(1), RunOptions::default(), &|| false).await;
    assert!(
        matches!(result, Err(SchedulerError::NoWrites(1))),
        "{result:?}"
    );
}

/// SES that records when each identity read was made and answers PENDING.
struct Recording(std::sync::Mutex<Vec<tokio::time::Instant>>);

#[async_trait::async_trait]
impl IdentityProvider for Recording {
    async fn create(
        &self,
        _: &DomainName,
        _: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        Err(IdentityError::Other("not in this test".into()))
    }
    async fn get(&self, _: &DomainName) -> Result<Identity, IdentityError> {
        self.0
            .lock()
            .expect("lock")
            .push(tokio::time::Instant::now());
        Ok(Identity {
            tokens: vec![],
            owner: None,
            dkim_status: Some(shared::model::SesStatus::Pending),
            mail_from_domain: None,
            mail_from_status: None,
        })
    }
    async fn delete(&self, _: &DomainName) -> Result<(), IdentityError> {
        Ok(())
    }
    async fn set_mail_from(&self, _: &DomainName, _: Option<&str>) -> Result<(), IdentityError> {
        Ok(())
    }
}

/// When each SES read was made, in order.
fn read_times(calls: &Recording) -> Vec<tokio::time::Instant> {
    calls.0.lock().expect("lock").clone()
}

/// No more than `rate` of `times` (sorted) within any second.
fn assert_at_most_per_second(times: &[tokio::time::Instant], rate: usize) {
    for (i, first) in times.iter().enumerate() {
        let in_a_second = times[i..]
            .iter()
            .take_while(|t| **t < *first + std::time::Duration::from_secs(1))
            .count();
        assert!(in_a_second <= rate, "{in_a_second} reads within a second");
    }
}

/// SES reads as the scheduled job makes them (one limiter shared by every check of
/// a run), on a paused clock: 100 domains all correct in DNS and waiting for SES,
/// at SES_MAX_RPS=5, never more than 5 reads in any second. What cannot get a turn
/// within `MAX_RATE_WAIT` is left as it was, for its next check.
#[tokio::test(start_paused = true)]
async fn ses_is_read_at_most_at_its_rate_and_the_rest_waits_for_the_next_check() {
    use shared::confirmation::{RateLimiter, read_ses_view};
    use shared::model::RecordStatus;
    use std::sync::Mutex;

    let calls = Arc::new(Recording(Mutex::new(Vec::new())));
    let app = App::new(
        Arc::new(shared::store::InMemoryStore::new()),
        calls.clone(),
        DnsChecker::with_nameservers(&["127.0.0.1:9".parse().expect("address")])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
    .with_ses_rate(5);
    let limiter = RateLimiter::per_second(app.ses_max_rps.expect("set"));
    let now = Timestamp::now();
    let mut domains: Vec<Domain> = (0..100)
        .map(|i| {
            let name = DomainName::parse(&format!("d{i}.example.com")).expect("valid");
            let mut domain = Domain::new("org_a", name.clone(), now);
            domain.records =
                expected_records(&name, &["t1".into(), "t2".into(), "t3".into()], "us-east-2");
            domain
                .records
                .iter_mut()
                .for_each(|r| r.status = RecordStatus::Verified);
            domain
        })
        .collect();
    futures::future::join_all(
        domains
            .iter_mut()
            .map(|d| read_ses_view(&app, d, now, false, Some(&limiter))),
    )
    .await;

    let times = read_times(&calls);
    let read = domains.iter().filter(|d| d.ses.is_some()).count();
    assert_eq!(read, times.len());
    // 5 a second for as long as a check may wait (10 s), and the first at once.
    assert_eq!(
        read,
        5 * MAX_RATE_WAIT.as_secs() as usize + 1,
        "{read} reads"
    );
    assert_at_most_per_second(&times, 5);
    assert!(
        domains
            .iter()
            .filter(|d| d.ses.is_none())
            .all(|d| d.status == DomainStatus::Pending)
    );
}

/// The same through a whole scheduled run (`scheduler::run`): 100 domains due,
/// their records all published on a DNS server, SES pending, SES_MAX_RPS=5, on a
/// paused clock. The run's checks share one limiter: never more than 5 reads in
/// any second, and every domain is still moved on in the schedule.
#[tokio::test(start_paused = true)]
async fn a_scheduled_run_reads_ses_at_most_at_its_rate() {
    let zone: String = (0..100)
        .map(|i| test_support::dns::all_records_zone(&format!("d{i}"), &["t1", "t2", "t3"]))
        .collect();
    let dns = TestDnsServer::start(&[("example.com", zone.as_str())]).await;
    let calls = Arc::new(Recording(std::sync::Mutex::new(Vec::new())));
    let store = Arc::new(InMemoryStore::new());
    let created = Timestamp::now();
    for i in 0..100 {
        let name = DomainName::parse(&format!("d{i}.example.com")).expect("valid");
        let mut domain = Domain::new("org_a", name.clone(), created);
        domain.dkim_tokens = vec!["t1".into(), "t2".into(), "t3".into()];
        domain.records = expected_records(&name, &domain.dkim_tokens, "us-east-2");
        domain.setup_started_at = None;
        store.insert(&domain, usize::MAX).await.expect("insert");
    }
    let app = App::new(
        store.clone(),
        calls.clone(),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .with_authoritative_port(dns.address().port())
            .into(),
        "us-east-2",
    )
    .with_ses_rate(5);

    let later = created.plus(Span::minutes(2));
    let summary = run(&app, later, RunOptions::default(), &|| false)
        .await
        .expect("run");
    assert_eq!(summary.checked, 100, "{summary:?}");
    let times = read_times(&calls);
    // 5 a second for as long as a check may wait for its turn, and the first at once.
    assert_eq!(times.len(), 5 * MAX_RATE_WAIT.as_secs() as usize + 1);
    assert_at_most_per_second(&times, 5);
    let stored = store.list("org_a").await.expect("list");
    assert!(
        stored
            .iter()
            .all(|d| d.status == DomainStatus::Pending && d.schedule.next_check_at > Some(later)),
        "every domain moved on"
    );
    assert_eq!(
        stored.iter().filter(|d| d.ses.is_some()).count(),
        times.len(),
        "each read is stored"
    );
}

/// A DynamoDB store on moto, its table, client and request counter.
async fn moto_store() -> (
    Arc<shared::store::DynamoDbStore>,
    aws_sdk_dynamodb::Client,
    String,
    test_support::RequestCounter,
) {
    let counter = test_support::RequestCounter::new();
    let client = test_support::dynamodb_client(&test_support::moto_endpoint(), &counter);
    let table = test_support::unique_table_name("scheduler");
    shared::store::create_table(&client, &table)
        .await
        .expect("table");
    let store = shared::store::DynamoDbStore::new(client.clone(), table.clone());
    (Arc::new(store), client, table, counter)
}

/// A check that finds what the last one found writes the schedule alone; it
/// still loses to a delete (never resurrected) and to a manual verify (never
/// overwritten) that land between its read and its write, on both stores.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_unchanged_check_loses_to_a_delete_or_a_manual_verify() {
    for on_dynamodb in [false, true] {
        for interference in [
            Interference::DeleteBeforeWrite,
            Interference::ManualWriteBeforeWrite,
        ] {
            let inner: Arc<dyn DomainStore> = if on_dynamodb {
                moto_store().await.0
            } else {
                Arc::new(InMemoryStore::new())
            };
            let w = world_on("", staged_on(inner, None, false)).await;
            w.add("example.com").await;
            let first = w.run_at(1).await;
            assert_eq!(first.still_pending, 1, "{first:?}");
            w.store.hook.set_victim("example.com", interference);
            let second = w.run_at(10).await;
            let case = format!("dynamodb {on_dynamodb}, {second:?}");
            assert_eq!(
                w.store.hook.writes(),
                [StoreOp::Update, StoreOp::UpdateSchedule],
                "the first check changed the records, the second nothing: {case}"
            );
            match interference {
                Interference::DeleteBeforeWrite => {
                    assert_eq!(second.gone, 1, "{case}");
                    assert!(w.stored("example.com").await.is_none(), "{case}");
                }
                _ => {
                    assert_eq!(second.superseded, 1, "{case}");
                    let domain = w.stored("example.com").await.expect("stored");
                    assert_eq!(domain.schedule.checks_in_window, 0, "{case}");
                    assert_ne!(domain.last_checked_at, Some(w.at(10)), "{case}");
                }
            }
        }
    }
}

/// On DynamoDB, a scheduled check that changed nothing a caller sees writes one
/// small item: the domain item stays byte for byte as it was, and the API still
/// shows when the domain was last checked.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_unchanged_check_writes_the_schedule_item_alone_on_dynamodb() {
    let (store, client, table, counter) = moto_store().await;
    let w = world_on("", staged_on(store, None, false)).await;
    w.add("example.com").await;
    assert_eq!(w.run_at(1).await.still_pending, 1);
    let item = |sk: &'static str| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            client
                .get_item()
                .table_name(table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S("ORG#org_a".into()),
                )
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
                .send()
                .await
                .expect("get item")
                .item
                .expect("item")
        }
    };
    let domain_item = item("DOMAIN#example.com").await;
    let before = w.stored("example.com").await.expect("stored");
    counter.reset();

    let summary = w.run_at(10).await;
    assert_eq!(summary.still_pending, 1, "{summary:?}");
    let requests = counter.snapshot();
    let writes: Vec<&(String, usize)> = requests
        .iter()
        .filter(|(op, _)| !matches!(op.as_str(), "Query" | "BatchGetItem" | "GetItem"))
        .collect();
    assert_eq!(
        writes,
        [&("PutItem".to_string(), 1)],
        "one write, of one item: {requests:?}"
    );
    assert_eq!(
        item("DOMAIN#example.com").await,
        domain_item,
        "the domain item is untouched"
    );
    let schedule = item("DOMAIN#example.com#SCHEDULE").await;
    let size: usize = schedule
        .iter()
        .map(|(k, v)| k.len() + format!("{v:?}").len())
        .sum();
    assert!(
        size < 1024,
        "the schedule item stays well under 1 KB: {schedule:?}"
    );

    let after = w.stored("example.com").await.expect("stored");
    assert_eq!(
        after.last_checked_at,
        Some(w.at(10)),
        "served from the schedule item"
    );
    assert_eq!(
        after.updated_at, before.updated_at,
        "nothing a caller sees changed"
    );
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.schedule.checks_in_window, 2);
    assert_eq!(after.records, before.records);
}
