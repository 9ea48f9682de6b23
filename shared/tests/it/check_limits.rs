//! How often a tenant can make the service work for one name: a domain's (or a
//! claim's) manual check at most once in 10 seconds (429 `too_many_checks`), and
//! SES identity calls from every function of a deployment within one budget
//! (`SES_MAX_RPS`), so one tenant's verifies cannot spend the account's SES rate
//! that everyone's checks need.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use lambda_http::http::StatusCode;
use serde_json::json;
use shared::identity::{Identity, IdentityError, IdentityOwner, IdentityProvider, LocalIdentities};
use shared::store::{DomainStore, InMemoryStore};
use shared::verify::DnsChecker;
use shared::{App, DomainName};
use test_support::{TestDnsServer, dns::all_records_zone};

use crate::common::*;

/// The app of `store` with the contract's interval (not the tests' zero).
fn limited_app(store: Arc<dyn DomainStore>, dns: &TestDnsServer) -> App {
    App::new(
        store,
        Arc::new(LocalIdentities::new()),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
}

async fn a_second_verify_within_10_seconds(store: Arc<dyn DomainStore>) {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let app = limited_app(store, &dns);
    create("example.com").send(&app).await;
    create("other.example.com").send(&app).await;
    let verify = |name: &str| Call::new(Endpoint::Verify).domain(name);

    let first = verify("example.com").send(&app).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let again = verify("example.com").send(&app).await;
    again.assert_error(
        429,
        "This was checked less than 10 seconds ago; retry after the time in Retry-After",
    );
    assert_eq!(again.body["code"], "too_many_checks");
    let retry_after: u64 = again.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(
        again.body["last_checked_at"], first.body["last_checked_at"],
        "the last result's time: GET shows that result"
    );
    // Another domain is its own.
    assert_eq!(
        verify("other.example.com").send(&app).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_second_verify_within_10_seconds_is_429_on_the_embedded_default() {
    a_second_verify_within_10_seconds(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_second_verify_within_10_seconds_is_429_on_moto() {
    let (world, _) = dynamodb_world().await;
    a_second_verify_within_10_seconds(world.app.store.clone()).await;
}

/// Eight verifies of one domain at once: the turn is a conditional write, so
/// exactly one checks and the others are told when to come back.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn of_verifies_racing_exactly_one_checks_on_moto() {
    let (world, _) = dynamodb_world().await;
    let app = limited_app(world.app.store.clone(), &world.dns);
    create("example.com").send(&app).await;
    let replies =
        join_all((0..8).map(|_| Call::new(Endpoint::Verify).domain("example.com").send(&app)))
            .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
}

/// Once the interval has passed, the next verify checks again.
#[tokio::test]
async fn a_verify_after_the_interval_checks_again() {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let app = limited_app(Arc::new(InMemoryStore::new()), &dns)
        .with_manual_check_interval(Duration::from_millis(300));
    create("example.com").send(&app).await;
    let verify = || Call::new(Endpoint::Verify).domain("example.com").send(&app);
    assert_eq!(verify().await.status, StatusCode::OK);
    assert_eq!(verify().await.status, StatusCode::TOO_MANY_REQUESTS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = verify().await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never allowed again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The turn belongs to the organization and the name, not to the domain:
/// deleting the domain and creating it again gives no new one.
#[tokio::test]
async fn deleting_and_creating_a_domain_again_gives_no_new_turn() {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let app = limited_app(Arc::new(InMemoryStore::new()), &dns);
    create("example.com").send(&app).await;
    let verify = || Call::new(Endpoint::Verify).domain("example.com").send(&app);
    assert_eq!(verify().await.status, StatusCode::OK);
    for _ in 0..3 {
        let deleted = Call::new(Endpoint::Delete)
            .domain("example.com")
            .send(&app)
            .await;
        assert_eq!(deleted.status, StatusCode::OK, "{deleted:?}");
        create("example.com").send(&app).await;
        assert_eq!(verify().await.status, StatusCode::TOO_MANY_REQUESTS);
    }
}

/// A claim's verify is limited the same way.
#[tokio::test]
async fn a_second_claim_verify_within_10_seconds_is_429() {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let app = limited_app(Arc::new(InMemoryStore::new()), &dns);
    create("claimed.example.com").org("org_a").send(&app).await;
    let made = Call::new(Endpoint::CreateClaim)
        .body(&json!({ "name": "claimed.example.com" }).to_string())
        .org("org_b")
        .send(&app)
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    let verify = || {
        Call::new(Endpoint::VerifyClaim)
            .domain("claimed.example.com")
            .org("org_b")
            .send(&app)
    };
    let first = verify().await;
    assert_eq!(first.body["status"], "pending", "{first:?}");
    let again = verify().await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{again:?}");
    assert_eq!(again.body["last_checked_at"], first.body["last_checked_at"]);
    // Deleting the claim and making it again gives no new turn.
    let deleted = Call::new(Endpoint::DeleteClaim)
        .domain("claimed.example.com")
        .org("org_b")
        .send(&app)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{deleted:?}");
    let remade = Call::new(Endpoint::CreateClaim)
        .body(&json!({ "name": "claimed.example.com" }).to_string())
        .org("org_b")
        .send(&app)
        .await;
    assert_eq!(remade.status, StatusCode::CREATED, "{remade:?}");
    assert_eq!(verify().await.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Claim verifies racing: exactly one checks DNS, the others are told when to
/// come back (the turn is taken before the lookup, with a conditional write).
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn of_claim_verifies_racing_exactly_one_checks_on_moto() {
    let (world, _) = dynamodb_world().await;
    let app = limited_app(world.app.store.clone(), &world.dns);
    create("raced.example.com").org("org_a").send(&app).await;
    let made = Call::new(Endpoint::CreateClaim)
        .body(&json!({ "name": "raced.example.com" }).to_string())
        .org("org_b")
        .send(&app)
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    let replies = join_all((0..6).map(|_| {
        Call::new(Endpoint::VerifyClaim)
            .domain("raced.example.com")
            .org("org_b")
            .send(&app)
    }))
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
}

/// Local identities that note each SES read, and
/// stand for SES still confirming (so every check of a correct domain asks).
#[derive(Default)]
struct TimedReads {
    inner: LocalIdentities,
    reads: Mutex<Vec<tokio::time::Instant>>,
}

#[async_trait]
impl IdentityProvider for TimedReads {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        self.inner.create(name, owner).await
    }
    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.reads
            .lock()
            .expect("lock")
            .push(tokio::time::Instant::now());
        let mut identity = self.inner.get(name).await?;
        identity.dkim_status = Some(shared::model::SesStatus::Pending);
        Ok(identity)
    }
    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        self.inner.delete(name).await
    }
    async fn set_mail_from(
        &self,
        name: &DomainName,
        mail_from_domain: Option<&str>,
    ) -> Result<(), IdentityError> {
        self.inner.set_mail_from(name, mail_from_domain).await
    }
}

/// Two functions of one deployment on one table (two verify-domain processes,
/// say), SES_MAX_RPS=1: twelve manual verifies of twelve correct domains at once.
/// Across both, one SES call takes its turn in any second (the budget's items
/// say so, and each read had one), and every verify still answers 200 (a domain
/// that got no turn keeps waiting for SES, as it says).
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn manual_verifies_of_every_process_share_one_ses_budget_on_moto() {
    let client = test_support::dynamodb_client(&test_support::moto_endpoint(), &Default::default());
    let table = test_support::unique_table_name("ses-budget");
    shared::store::create_table(&client, &table)
        .await
        .expect("table");
    let store: Arc<dyn DomainStore> = Arc::new(shared::store::DynamoDbStore::new(
        client.clone(),
        table.clone(),
    ));
    let world = world_with(store).await;
    let names: Vec<String> = (0..12).map(|i| format!("d{i}.example.com")).collect();
    let reads = Arc::new(TimedReads::default());
    let process = || {
        App::new(
            world.app.store.clone(),
            reads.clone(),
            DnsChecker::with_nameservers(&[world.dns.address()])
                .expect("resolver")
                .into(),
            "us-east-2",
        )
        .with_ses_rate(1)
    };
    let (first, second) = (process(), process());
    // One organization each: an organization's own share (one SES read in 10 s)
    // is not what this measures.
    let org = |i: usize| format!("org_{i}");
    let mut zone = String::new();
    for (i, name) in names.iter().enumerate() {
        let made = create(name).org(&org(i)).send(&first).await;
        assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
        let tokens = tokens_of(&made.body);
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let label = name.strip_suffix(".example.com").expect("label");
        zone.push_str(&all_records_zone(label, &tokens));
    }
    world.dns.publish(0, &zone).await;
    reads.reads.lock().expect("lock").clear();

    let replies = join_all(names.iter().enumerate().map(|(i, name)| {
        let app = if i % 2 == 0 { &first } else { &second };
        Call::new(Endpoint::Verify)
            .domain(name)
            .org(&org(i))
            .send(app)
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert!(
            reply.body["records"]
                .as_array()
                .expect("records")
                .iter()
                .all(|r| r["status"] == "verified"),
            "{reply:?}"
        );
        assert_eq!(
            reply.body["status"], "pending",
            "SES is confirming: {reply:?}"
        );
    }
    let reads = reads.reads.lock().expect("lock").clone();
    assert!(!reads.is_empty(), "some verify got a turn");
    assert!(
        reads.len() < names.len(),
        "{} reads for {} verifies",
        reads.len(),
        names.len()
    );
    // The budget's items: one a second, each counting the turns taken in it.
    let budget = client
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S("SESBUDGET".into()),
        )
        .send()
        .await
        .expect("the budget's items");
    let turns: Vec<u64> = budget
        .items()
        .iter()
        .map(|item| {
            item["calls"]
                .as_n()
                .expect("a count")
                .parse()
                .expect("a number")
        })
        .collect();
    assert!(
        turns.iter().all(|n| *n <= 1),
        "at most one turn in any second: {turns:?}"
    );
    assert_eq!(
        turns.iter().sum::<u64>() as usize,
        reads.len(),
        "every read took a turn"
    );
    let read = replies.iter().filter(|r| !r.body["ses"].is_null()).count();
    assert_eq!(read, reads.len(), "each read is stored, the rest wait");
}

/// One organization verifying thirty domains that wait for SES, as fast as it
/// can, while another verifies one: the other's verify still reads SES. A
/// caller's verifies read SES for one organization once in 10 seconds, so no
/// tenant spends the deployment's budget on its own.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn one_tenants_verifies_cannot_spend_anothers_ses_reads_on_moto() {
    let (world, _) = dynamodb_world().await;
    let reads = Arc::new(TimedReads::default());
    let app = App::new(
        world.app.store.clone(),
        reads.clone(),
        DnsChecker::with_nameservers(&[world.dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
    .with_ses_rate(1);
    let mut zone = String::new();
    let make = |name: &str, org: &str| {
        let name = name.to_string();
        let org = org.to_string();
        let app = &app;
        async move {
            let made = create(&name).org(&org).send(app).await;
            assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
            let tokens = tokens_of(&made.body);
            let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
            all_records_zone(name.strip_suffix(".example.com").expect("label"), &tokens)
        }
    };
    let hogs: Vec<String> = (0..30).map(|i| format!("hog{i}.example.com")).collect();
    for name in &hogs {
        zone.push_str(&make(name, "org_hog").await);
    }
    zone.push_str(&make("quiet.example.com", "org_quiet").await);
    world.dns.publish(0, &zone).await;

    let (hogged, quiet) = futures::join!(
        join_all(hogs.iter().map(|name| {
            Call::new(Endpoint::Verify)
                .domain(name)
                .org("org_hog")
                .send(&app)
        })),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Call::new(Endpoint::Verify)
                .domain("quiet.example.com")
                .org("org_quiet")
                .send(&app)
                .await
        }
    );
    assert!(hogged.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(quiet.status, StatusCode::OK, "{quiet:?}");
    assert!(
        !quiet.body["ses"].is_null(),
        "the quiet organization's verify read SES: {quiet:?}"
    );
    let hog_reads = hogged.iter().filter(|r| !r.body["ses"].is_null()).count();
    assert_eq!(hog_reads, 1, "one read for the organization in 10 s");
}
