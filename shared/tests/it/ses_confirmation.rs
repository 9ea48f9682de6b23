//! SES's own confirmation, end to end: the API on DynamoDB and SESv2 (moto, with
//! the project's SES extension, tests/moto-ses), verifying through the loopback DNS
//! hierarchy, where a test publishes the records with `knotc` as a user would at
//! their DNS provider. moto's SES looks through the same hierarchy and confirms a
//! record only after it has seen it for a while (MOTO_SES_CONFIRM_SECONDS), as SES
//! does. Needs MOTO_ENDPOINT (moto-ses started with MOTO_SES_DNS_TOP, the
//! hierarchy's top server) and the hierarchy's variables: ignored in a plain
//! `cargo test`, and failing without them when run (scripts/test runs them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use shared::App;
use shared::identity::SesIdentities;
use shared::store::{DynamoDbStore, create_table};
use test_support::{
    RequestCounter, dynamodb_client, moto_endpoint, sesv2_client, unique_table_name,
};

use crate::common::{Call, Endpoint, create, tokens_of};
use crate::dns_hierarchy::{hierarchy_checker, publish};

/// The hierarchy zone these tests publish in.
const ZONE: &str = "ses-confirms.com";
/// How long SES on moto may take (it confirms after 2 s of seeing the records).
const CONFIRM_WITHIN: Duration = Duration::from_secs(30);

struct SesWorld {
    app: App,
    ses: aws_sdk_sesv2::Client,
}

async fn ses_world() -> SesWorld {
    let endpoint = moto_endpoint();
    let dynamodb = dynamodb_client(&endpoint, &RequestCounter::new());
    let ses = sesv2_client(&endpoint, &RequestCounter::new());
    let table = unique_table_name("ses-confirms");
    create_table(&dynamodb, &table).await.expect("create table");
    let app = App::new(
        Arc::new(DynamoDbStore::new(dynamodb, table.clone())),
        Arc::new(SesIdentities::new(ses.clone())),
        hierarchy_checker().into(),
        "us-east-2",
    )
    .with_manual_check_interval(std::time::Duration::ZERO)
    .with_deployment(table);
    SesWorld { app, ses }
}

/// A fresh name in the zone: `<label>.ses-confirms.com`.
fn fresh_domain() -> (String, String) {
    let label = format!("t{}", uuid::Uuid::new_v4().simple());
    let domain = format!("{label}.{ZONE}");
    (label, domain)
}

/// Publishes the domain's records as the API lists them, at the hierarchy's
/// provider: those of the `which` purposes only.
fn publish_records(label: &str, domain: &Value, which: &[&str]) {
    for record in domain["records"].as_array().expect("records") {
        let purpose = record["record"].as_str().expect("record");
        if !which.contains(&purpose) {
            continue;
        }
        let fqdn = record["fqdn"].as_str().expect("fqdn");
        let owner = fqdn.strip_suffix(&format!(".{ZONE}")).expect("in the zone");
        assert!(owner.ends_with(label), "{owner}");
        let value = record["value"].as_str().expect("value");
        let data = match record["type"].as_str().expect("type") {
            "MX" => format!("{} {value}.", record["priority"]),
            "CNAME" => format!("{value}."),
            _ => format!("\"{value}\""),
        };
        let kind = record["type"].as_str().expect("type");
        publish("provider", ZONE, owner, &[kind, &data]);
    }
}

const SIX: [&str; 4] = ["MX", "SPF", "DMARC", "DKIM"];
const MAIL_FROM: [&str; 2] = ["MAIL_FROM_MX", "MAIL_FROM_SPF"];

async fn verify(world: &SesWorld, domain: &str) -> Value {
    let reply = Call::new(Endpoint::Verify)
        .domain(domain)
        .send(&world.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body
}

/// Verifies until the domain is verified (SES on moto confirms after seeing the
/// records for a while); every answer on the way is checked by `each`.
async fn verify_until_verified(world: &SesWorld, domain: &str, each: impl Fn(&Value)) -> Value {
    let started = Instant::now();
    loop {
        let body = verify(world, domain).await;
        each(&body);
        if body["verified"] == true {
            return body;
        }
        assert!(
            started.elapsed() < CONFIRM_WITHIN,
            "SES never confirmed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn all_records_verified(body: &Value) -> bool {
    body["records"]
        .as_array()
        .expect("records")
        .iter()
        .all(|r| r["status"] == "verified")
}

/// `PATCH /domains/{domain}` with `body`: the domain after it (200).
async fn update(world: &SesWorld, domain: &str, body: &str) -> Value {
    let reply = Call::new(Endpoint::Update)
        .domain(domain)
        .body(body)
        .send(&world.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body
}

/// What SES on moto holds as the identity's MAIL FROM domain, read with the SDK.
async fn ses_mail_from(world: &SesWorld, domain: &str) -> Option<String> {
    let identity = world
        .ses
        .get_email_identity()
        .email_identity(domain)
        .send()
        .await
        .expect("identity");
    identity
        .mail_from_attributes()
        .map(|a| a.mail_from_domain().to_string())
}

#[tokio::test]
#[ignore = "needs moto and the DNS hierarchy: scripts/test"]
async fn correct_dns_is_pending_until_ses_confirms_then_verified() {
    let world = ses_world().await;
    let (label, domain) = fresh_domain();
    let created = create(&domain).send(&world.app).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(tokens_of(&created.body).len(), 3, "SES issued tokens");
    publish_records(&label, &created.body, &SIX);

    let first = verify(&world, &domain).await;
    assert!(all_records_verified(&first), "{first}");
    assert_eq!(
        (&first["status"], &first["verified"]),
        (&json!("pending"), &json!(false)),
        "{first}"
    );
    assert_eq!(first["ses"]["dkim_status"], "PENDING", "{first}");
    assert!(
        first["reason"]
            .as_str()
            .is_some_and(|r| r.contains("SES is confirming")),
        "{first}"
    );

    let verified = verify_until_verified(&world, &domain, |body| {
        // Never verified on DNS alone.
        if body["ses"]["dkim_status"] != "SUCCESS" {
            assert_eq!(body["verified"], false, "{body}");
        }
    })
    .await;
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["reason"], Value::Null);
    assert_eq!(verified["ses"]["dkim_status"], "SUCCESS");
    assert_eq!(verified["ses"]["mail_from_status"], Value::Null);
}

#[tokio::test]
#[ignore = "needs moto and the DNS hierarchy: scripts/test"]
async fn a_mail_from_domain_is_verified_only_when_ses_confirms_both() {
    let world = ses_world().await;
    let (label, domain) = fresh_domain();
    let mail_from = format!("send.{domain}");

    // Created with a MAIL FROM subdomain: eight records, SES told.
    let created = create(&domain)
        .body(&json!({ "name": domain, "mail_from_subdomain": "send" }).to_string())
        .send(&world.app)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["mail_from_subdomain"], "send");
    let records = created.body["records"].as_array().expect("records");
    assert_eq!(records.len(), 8, "{}", created.body);
    let mx = records
        .iter()
        .find(|r| r["record"] == "MAIL_FROM_MX")
        .expect("MAIL_FROM_MX");
    assert_eq!(
        (&mx["fqdn"], &mx["value"], &mx["priority"]),
        (
            &json!(mail_from),
            &json!("feedback-smtp.us-east-2.amazonses.com"),
            &json!(10)
        )
    );
    assert_eq!(
        ses_mail_from(&world, &domain).await,
        Some(mail_from.clone())
    );

    // The six published and confirmed by SES; the MAIL FROM records not yet.
    publish_records(&label, &created.body, &SIX);
    let body = verify(&world, &domain).await;
    assert_eq!(body["status"], "pending", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("2 of 8 records")),
        "{body}"
    );

    // Removed: six records, SES cleared, and the domain verifies on DKIM alone.
    let removed = update(&world, &domain, r#"{"mail_from_subdomain": null}"#).await;
    assert_eq!(removed["records"].as_array().map(Vec::len), Some(6));
    assert_eq!(removed["mail_from_subdomain"], Value::Null);
    assert_eq!(ses_mail_from(&world, &domain).await, None);
    verify_until_verified(&world, &domain, |_| {}).await;

    // Set again: SES told, pending until its records are published and SES has
    // confirmed the MAIL FROM domain too (DKIM is confirmed already).
    let set = update(&world, &domain, r#"{"mail_from_subdomain": "send"}"#).await;
    assert_eq!(
        (&set["status"], &set["verified"]),
        (&json!("pending"), &json!(false))
    );
    assert_eq!(set["records"].as_array().map(Vec::len), Some(8));
    assert_eq!(
        ses_mail_from(&world, &domain).await,
        Some(mail_from.clone())
    );
    publish_records(&label, &set, &MAIL_FROM);
    let body = verify(&world, &domain).await;
    assert!(all_records_verified(&body), "{body}");
    assert_eq!(
        (
            &body["verified"],
            &body["ses"]["dkim_status"],
            &body["ses"]["mail_from_status"]
        ),
        (&json!(false), &json!("SUCCESS"), &json!("PENDING")),
        "{body}"
    );
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("MAIL FROM")),
        "{body}"
    );
    let verified = verify_until_verified(&world, &domain, |body| {
        if body["ses"]["mail_from_status"] != "SUCCESS" {
            assert_eq!(body["verified"], false, "{body}");
        }
    })
    .await;
    assert_eq!(
        (
            &verified["reason"],
            &verified["ses"]["dkim_status"],
            &verified["ses"]["mail_from_status"]
        ),
        (&Value::Null, &json!("SUCCESS"), &json!("SUCCESS"))
    );

    // Back to six: still verified, SES cleared.
    let removed = update(&world, &domain, r#"{"mail_from_subdomain": null}"#).await;
    assert_eq!(removed["records"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        (&removed["status"], &removed["verified"]),
        (&json!("verified"), &json!(true))
    );
    assert_eq!(ses_mail_from(&world, &domain).await, None);
}
