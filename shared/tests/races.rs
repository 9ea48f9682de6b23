//! Concurrency against the real DynamoDB-API server (moto) and SESv2 on moto as
//! SES answers (tests/moto-ses): only
//! one create of a name wins, a verify never brings back a deleted domain, and
//! concurrent verifies leave one consistent domain.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use futures::future::join_all;
use lambda_http::http::StatusCode;
use shared::App;
use shared::identity::SesIdentities;
use shared::store::{DynamoDbStore, create_table};
use shared::verify::DnsChecker;
use test_support::{
    RequestCounter, TestDnsServer, dynamodb_client, moto_endpoint, sesv2_client, unique_table_name,
};

struct MotoWorld {
    app: App,
    dynamodb: aws_sdk_dynamodb::Client,
    ses: aws_sdk_sesv2::Client,
    ses_calls: RequestCounter,
    table: String,
    _dns: TestDnsServer,
}

async fn moto_world() -> MotoWorld {
    let endpoint = moto_endpoint();
    let dynamodb = dynamodb_client(&endpoint, &RequestCounter::new());
    let ses_calls = RequestCounter::new();
    let ses = sesv2_client(&endpoint, &ses_calls);
    let table = unique_table_name("races");
    create_table(&dynamodb, &table).await.expect("create table");
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let app = App::new(
        Arc::new(DynamoDbStore::new(dynamodb.clone(), table.clone())),
        Arc::new(SesIdentities::new(ses.clone())),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );
    MotoWorld {
        app,
        dynamodb,
        ses,
        ses_calls,
        table,
        _dns: dns,
    }
}

impl MotoWorld {
    /// Every item of the table (a test may scan; the service never does).
    async fn items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return items,
            }
        }
    }

    async fn count_items(&self, name: &str) -> (usize, usize) {
        let items = self.items().await;
        let key = |item: &HashMap<String, AttributeValue>, k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let domains = items
            .iter()
            .filter(|i| key(i, "sk") == format!("DOMAIN#{name}"))
            .count();
        let claims = items
            .iter()
            .filter(|i| key(i, "pk") == format!("NAME#{name}"))
            .count();
        (domains, claims)
    }

    async fn identities(&self) -> Vec<String> {
        self.ses
            .list_email_identities()
            .send()
            .await
            .expect("list identities")
            .email_identities()
            .iter()
            .filter_map(|i| i.identity_name().map(str::to_string))
            .collect()
    }
}

async fn fifty_concurrent_creates(orgs: &[&str]) {
    let world = moto_world().await;
    let name = format!(
        "race-{}.example.com",
        unique_table_name("n").rsplit('-').next().unwrap_or("x")
    );
    let replies = join_all((0..50).map(|i| {
        let org = orgs[i % orgs.len()];
        let app = &world.app;
        let name = name.clone();
        async move { create(&name).org(org).send(app).await }
    }))
    .await;
    let created: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "exactly one create wins: {:?}",
        replies
            .iter()
            .map(|r| (r.status, r.body.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        reply.assert_error(409, "Domain already exists");
    }
    assert_eq!(
        world.count_items(&name).await,
        (1, 1),
        "one domain item, one claim item"
    );
    assert_eq!(
        world.ses_calls.get("CreateEmailIdentity"),
        1,
        "only the winner created an identity"
    );
    assert_eq!(
        world
            .identities()
            .await
            .iter()
            .filter(|i| **i == name)
            .count(),
        1
    );
}

#[tokio::test]
async fn fifty_concurrent_creates_of_one_name_in_one_organization() {
    fifty_concurrent_creates(&["org_a"]).await;
}

#[tokio::test]
async fn fifty_concurrent_creates_of_one_name_by_two_organizations() {
    fifty_concurrent_creates(&["org_a", "org_b"]).await;
}

#[tokio::test]
async fn a_verify_racing_a_delete_never_brings_the_domain_back() {
    let world = moto_world().await;
    let app = &world.app;
    for round in 0..40 {
        let name = format!("r{round}.example.com");
        assert_eq!(create(&name).send(app).await.status, StatusCode::CREATED);
        let (verified, deleted) = futures::join!(
            Call::new(Endpoint::Verify).domain(&name).send(app),
            Call::new(Endpoint::Delete).domain(&name).send(app),
        );
        assert_eq!(deleted.status, StatusCode::OK, "round {round}: {deleted:?}");
        assert!(
            matches!(verified.status.as_u16(), 200 | 404),
            "round {round}: verify answered {verified:?}"
        );
        Call::new(Endpoint::Get)
            .domain(&name)
            .send(app)
            .await
            .assert_error(404, "Domain not found");
        assert_eq!(
            world.count_items(&name).await,
            (0, 0),
            "round {round}: nothing left"
        );
        assert!(
            !world.identities().await.contains(&name),
            "round {round}: identity deleted"
        );
    }
}

#[tokio::test]
async fn concurrent_verifies_leave_one_consistent_domain() {
    let world = moto_world().await;
    let app = &world.app;
    assert_eq!(
        create("example.com").send(app).await.status,
        StatusCode::CREATED
    );
    let replies = join_all((0..10).map(|_| Call::new(Endpoint::Verify).send(app))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        // Losing three write races in a row is a retryable 503, never a lost write.
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
        assert_eq!(reply.headers["retry-after"], "1");
    }
    assert!(ok >= 1, "at least one verify wrote");
    let stored = Call::new(Endpoint::Get).send(app).await;
    assert_eq!(stored.status, StatusCode::OK);
    let records = stored.body["records"].as_array().expect("records");
    assert_eq!(
        records.len(),
        6,
        "MX, SPF, DMARC and the three DKIM CNAMEs (tokens from tests/moto-ses)"
    );
    assert!(
        records.iter().all(|r| r["reason"].is_string()),
        "every record carries the check's result"
    );
    assert!(stored.body["last_checked_at"].is_string());
    assert_eq!(world.count_items("example.com").await, (1, 1));
}
