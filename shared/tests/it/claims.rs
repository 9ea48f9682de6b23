//! Names held by another organization: a failed domain's name is taken by a
//! create, a live one by a claim proven in DNS. Each flow runs on the embedded
//! default (in-memory store, local identities) and on moto (DynamoDB, and SESv2
//! as SES answers: tests/moto-ses).

use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use shared::identity::IdentityError;
use shared::model::DomainStatus;
use shared::{App, DomainName};
use test_support::{TestDnsServer, unique_table_name};

use crate::common::*;

fn claim(name: &str) -> Call {
    Call::new(Endpoint::CreateClaim).body(&json!({ "name": name }).to_string())
}

fn on_claim(endpoint: Endpoint, name: &str) -> Call {
    Call::new(endpoint).domain(name)
}

/// A fresh name under the test zone, and its label there.
fn fresh_name() -> (String, String) {
    let label = format!(
        "claim-{}",
        unique_table_name("n").rsplit('-').next().unwrap_or("x")
    );
    (format!("{label}.example.com"), label)
}

/// Publishes the claim's TXT record in the test zone.
async fn publish_proof(dns: &TestDnsServer, label: &str, value: &str) {
    dns.publish(
        0,
        &format!("_domains-claim.{label} 300 IN TXT \"{value}\"\n"),
    )
    .await;
}

/// The owner organization and tokens of the name's identity, if there is one.
async fn identity_of(app: &App, name: &str) -> Option<(String, Vec<String>)> {
    let name = DomainName::parse(name).expect("name");
    match app.identities.get(&name).await {
        Ok(identity) => Some((
            identity.owner.map(|o| o.organization).unwrap_or_default(),
            identity.tokens,
        )),
        Err(IdentityError::NotFound) => None,
        Err(error) => panic!("identity read: {error}"),
    }
}

/// The organization tag value of `org` (as written on identities).
fn org_tag(org: &str) -> String {
    shared::identity::organization_tag_value(org)
}

async fn claim_flow(app: &App, dns: &TestDnsServer) {
    let (name, label) = fresh_name();
    let created = create(&name).org("org_a").send(app).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let a_tokens = tokens_of(&created.body);
    assert_eq!(a_tokens.len(), 3);

    // B cannot create it, but can claim it.
    create(&name)
        .org("org_b")
        .send(app)
        .await
        .assert_error(409, "Domain already exists");
    let made = claim(&name).org("org_b").send(app).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    assert_eq!(made.headers["location"], format!("/domain-claims/{name}"));
    assert_eq!(made.body["status"], "pending");
    assert_eq!(made.body["name"], name);
    assert_eq!(made.body["record"]["type"], "TXT");
    assert_eq!(
        made.body["record"]["name"],
        format!("_domains-claim.{name}")
    );
    let value = made.body["record"]["value"]
        .as_str()
        .expect("value")
        .to_string();
    assert!(value.starts_with("domains-claim="));
    assert!(is_timestamp(&made.body["created_at"]) && is_timestamp(&made.body["expires_at"]));
    // Asking again gives the same claim back.
    let again = claim(&name).org("org_b").send(app).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["record"]["value"], value.as_str());

    // A sees none of it.
    let a_claims = Call::new(Endpoint::ListClaims).org("org_a").send(app).await;
    assert_eq!(a_claims.body, json!([]));
    for endpoint in [
        Endpoint::GetClaim,
        Endpoint::VerifyClaim,
        Endpoint::DeleteClaim,
    ] {
        on_claim(endpoint, &name)
            .org("org_a")
            .send(app)
            .await
            .assert_error(404, "Claim not found");
    }

    // Not published yet: pending, saying what to publish.
    let pending = on_claim(Endpoint::VerifyClaim, &name)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(pending.status, StatusCode::OK, "{pending:?}");
    assert_eq!(pending.body["status"], "pending");
    assert!(
        pending.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&value)),
        "{pending:?}"
    );
    assert!(is_timestamp(&pending.body["last_checked_at"]));
    assert_eq!(
        identity_of(app, &name).await.map(|i| i.0),
        Some(org_tag("org_a"))
    );

    publish_proof(dns, &label, &value).await;
    let done = on_claim(Endpoint::VerifyClaim, &name)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(done.body["status"], "completed", "{done:?}");
    assert_eq!(done.body["reason"], Value::Null);
    let domain = &done.body["domain"];
    assert_eq!(domain["organization_id"], "org_b");
    assert_eq!(domain["name"], name.as_str());
    assert_eq!(domain["status"], "pending");
    assert_eq!(domain["verified"], false);
    let b_tokens = tokens_of(domain);
    assert_eq!(b_tokens.len(), 3, "{domain}");
    assert!(
        b_tokens.iter().all(|t| !a_tokens.contains(t)),
        "fresh DKIM tokens: {a_tokens:?} / {b_tokens:?}"
    );

    // The name is B's alone.
    let b_get = Call::new(Endpoint::Get)
        .domain(&name)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(b_get.status, StatusCode::OK);
    assert_eq!(b_get.body["id"], domain["id"]);
    Call::new(Endpoint::Get)
        .domain(&name)
        .org("org_a")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    let a_list = Call::new(Endpoint::List).org("org_a").send(app).await;
    assert_eq!(a_list.body, json!([]));
    assert_eq!(app.store.domain_count("org_a").await.expect("count"), 0);
    assert_eq!(app.store.domain_count("org_b").await.expect("count"), 1);
    assert_eq!(
        identity_of(app, &name).await,
        Some((org_tag("org_b"), b_tokens.clone())),
        "SES holds B's identity only"
    );
    // A can no longer act on it; B can.
    Call::new(Endpoint::Verify)
        .domain(&name)
        .org("org_a")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    Call::new(Endpoint::Delete)
        .domain(&name)
        .org("org_a")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    assert_eq!(
        identity_of(app, &name).await.map(|i| i.0),
        Some(org_tag("org_b"))
    );

    // The claim says what it made; verifying again changes nothing.
    let read = on_claim(Endpoint::GetClaim, &name)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(read.body["status"], "completed");
    assert_eq!(read.body["domain"]["id"], domain["id"]);
    let listed = Call::new(Endpoint::ListClaims).org("org_b").send(app).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body[0]["status"], "completed");
    let repeat = on_claim(Endpoint::VerifyClaim, &name)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(repeat.body["status"], "completed");
    assert_eq!(repeat.body["domain"]["id"], domain["id"]);
    assert_eq!(
        identity_of(app, &name).await,
        Some((org_tag("org_b"), b_tokens))
    );

    // B now holds it: a claim by B is 409, and A may claim it back.
    claim(&name)
        .org("org_b")
        .send(app)
        .await
        .assert_error(409, "Domain already exists");
    assert_eq!(
        claim(&name).org("org_a").send(app).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_claim_proven_in_dns_takes_a_held_name_on_the_embedded_default() {
    let world = in_memory_world().await;
    claim_flow(&world.app, &world.dns).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_claim_proven_in_dns_takes_a_held_name_on_moto() {
    let world = moto_world().await;
    claim_flow(&world.app, &world._dns).await;
}

/// Marks the organization's domain `failed`, as the scheduled job would after 72 hours.
async fn fail_domain(app: &App, org: &str, name: &str) {
    let name = DomainName::parse(name).expect("name");
    let mut domain = app
        .store
        .get(org, &name)
        .await
        .expect("get")
        .expect("domain");
    domain.status = DomainStatus::Failed;
    domain.schedule.next_check_at = None;
    app.store.update(&mut domain).await.expect("update");
}

async fn failed_name_flow(app: &App) {
    let (name, _) = fresh_name();
    let a = create(&name).org("org_a").send(app).await;
    assert_eq!(a.status, StatusCode::CREATED);
    // Alive (pending): not takeable by a create, and claimable.
    create(&name)
        .org("org_b")
        .send(app)
        .await
        .assert_error(409, "Domain already exists");
    fail_domain(app, "org_a", &name).await;
    // Failed: a claim is not needed (404, as for a free name) ...
    claim(&name)
        .org("org_b")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    // ... the create takes it.
    let b = create(&name).org("org_b").send(app).await;
    assert_eq!(b.status, StatusCode::CREATED, "{b:?}");
    assert_eq!(b.body["organization_id"], "org_b");
    assert_ne!(b.body["id"], a.body["id"]);
    let b_tokens = tokens_of(&b.body);
    assert_eq!(b_tokens.len(), 3);
    assert!(b_tokens.iter().all(|t| !tokens_of(&a.body).contains(t)));
    Call::new(Endpoint::Get)
        .domain(&name)
        .org("org_a")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    assert_eq!(app.store.domain_count("org_a").await.expect("count"), 0);
    assert_eq!(app.store.domain_count("org_b").await.expect("count"), 1);
    assert_eq!(
        identity_of(app, &name).await,
        Some((org_tag("org_b"), b_tokens))
    );
    // A's list is empty, and A can create the name again only once B's fails too.
    assert_eq!(
        Call::new(Endpoint::List).org("org_a").send(app).await.body,
        json!([])
    );
    create(&name)
        .org("org_a")
        .send(app)
        .await
        .assert_error(409, "Domain already exists");
    fail_domain(app, "org_b", &name).await;
    let back = create(&name).org("org_a").send(app).await;
    assert_eq!(back.status, StatusCode::CREATED, "{back:?}");
    assert_eq!(
        identity_of(app, &name).await.map(|i| i.0),
        Some(org_tag("org_a"))
    );
}

#[tokio::test]
async fn a_failed_domains_name_is_created_by_another_organization_on_the_embedded_default() {
    failed_name_flow(&in_memory_world().await.app).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_failed_domains_name_is_created_by_another_organization_on_moto() {
    failed_name_flow(&moto_world().await.app).await;
}

async fn claim_rules(app: &App, dns: &TestDnsServer) {
    // Nobody holds it: just create it.
    let (free, _) = fresh_name();
    claim(&free)
        .org("org_b")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    // Bad names and bodies: 400 with why.
    for body in ["{}", r#"{"name": "co.uk"}"#, r#"{"name": 5}"#] {
        let reply = Call::new(Endpoint::CreateClaim)
            .body(body)
            .org("org_b")
            .send(app)
            .await;
        reply.assert_error(400, "Invalid domain name format");
        assert!(reply.body["detail"].is_string(), "{reply:?}");
    }
    let not_json = Call::new(Endpoint::CreateClaim)
        .body("nope")
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    on_claim(Endpoint::GetClaim, "not a name")
        .org("org_b")
        .send(app)
        .await
        .assert_error(404, "Claim not found");

    // Ten open claims, and no eleventh.
    let mut names = Vec::new();
    for _ in 0..11 {
        let (name, label) = fresh_name();
        assert_eq!(
            create(&name).org("org_a").send(app).await.status,
            StatusCode::CREATED
        );
        names.push((name, label));
    }
    for (name, _) in &names[..10] {
        assert_eq!(
            claim(name).org("org_b").send(app).await.status,
            StatusCode::CREATED
        );
    }
    claim(&names[10].0)
        .org("org_b")
        .send(app)
        .await
        .assert_error(403, "Claim limit reached");
    // Another organization's limit is its own.
    assert_eq!(
        claim(&names[10].0).org("org_c").send(app).await.status,
        StatusCode::CREATED
    );
    // A deleted claim frees its place, and is gone.
    let deleted = on_claim(Endpoint::DeleteClaim, &names[0].0)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["status"], "pending");
    on_claim(Endpoint::GetClaim, &names[0].0)
        .org("org_b")
        .send(app)
        .await
        .assert_error(404, "Claim not found");
    on_claim(Endpoint::DeleteClaim, &names[0].0)
        .org("org_b")
        .send(app)
        .await
        .assert_error(404, "Claim not found");
    assert_eq!(
        claim(&names[10].0).org("org_b").send(app).await.status,
        StatusCode::CREATED
    );
    claim(&names[0].0)
        .org("org_b")
        .send(app)
        .await
        .assert_error(403, "Claim limit reached");

    // Two claimants of one name: the first to prove wins, the other is superseded,
    // and a superseded claim no longer counts against the limit.
    let (contested, label) = &names[1];
    let c = on_claim(Endpoint::GetClaim, contested)
        .org("org_c")
        .send(app)
        .await;
    assert_eq!(c.status, StatusCode::NOT_FOUND);
    let c = claim(contested).org("org_c").send(app).await;
    assert_eq!(c.status, StatusCode::CREATED);
    let b = on_claim(Endpoint::GetClaim, contested)
        .org("org_b")
        .send(app)
        .await;
    publish_proof(
        dns,
        label,
        b.body["record"]["value"].as_str().expect("value"),
    )
    .await;
    publish_proof(
        dns,
        label,
        c.body["record"]["value"].as_str().expect("value"),
    )
    .await;
    let c_won = on_claim(Endpoint::VerifyClaim, contested)
        .org("org_c")
        .send(app)
        .await;
    assert_eq!(c_won.body["status"], "completed", "{c_won:?}");
    let b_read = on_claim(Endpoint::GetClaim, contested)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(b_read.body["status"], "superseded", "{b_read:?}");
    let b_lost = on_claim(Endpoint::VerifyClaim, contested)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(b_lost.status, StatusCode::OK);
    assert_eq!(b_lost.body["status"], "superseded", "{b_lost:?}");
    assert!(
        b_lost.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("first"))
    );
    assert!(b_lost.body.get("domain").is_none());
    assert_eq!(
        identity_of(app, contested).await.map(|i| i.0),
        Some(org_tag("org_c"))
    );
    Call::new(Endpoint::Get)
        .domain(contested)
        .org("org_b")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    // Its place is free: a new claim by B of the contested name (against C, with
    // a new value) fits, and then the limit is reached again.
    let renewed = claim(contested).org("org_b").send(app).await;
    assert_eq!(renewed.status, StatusCode::CREATED, "{renewed:?}");
    assert_eq!(renewed.body["status"], "pending");
    assert_ne!(renewed.body["record"]["value"], b.body["record"]["value"]);
    claim(&names[0].0)
        .org("org_b")
        .send(app)
        .await
        .assert_error(403, "Claim limit reached");
}

#[tokio::test]
async fn claims_are_bounded_private_and_the_first_proof_wins_on_the_embedded_default() {
    let world = in_memory_world().await;
    claim_rules(&world.app, &world.dns).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn claims_are_bounded_private_and_the_first_proof_wins_on_moto() {
    let world = moto_world().await;
    claim_rules(&world.app, &world._dns).await;
}

/// Fails the first transfer, before or after it took effect.
struct FailFirstTransfer {
    after: bool,
    fired: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl StoreHook for FailFirstTransfer {
    async fn before(
        &self,
        _: &dyn shared::store::DomainStore,
        op: StoreOp,
        _: Option<&shared::Domain>,
    ) -> Hooked {
        if op != StoreOp::Transfer || self.fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Hooked::Proceed;
        }
        let error = shared::store::StoreError::Unavailable("injected: timeout".into());
        if self.after {
            Hooked::FailAfter(error)
        } else {
            Hooked::Fail(error)
        }
    }
}

/// A transfer that fails is a 503 that loses nothing: before it took effect, the
/// holder keeps the name and the claim stays pending; after, the name is the
/// claimant's and a later verify of the claim makes its identity (once the setup
/// mark of the failed request has run out, as for any create that failed).
#[tokio::test]
async fn a_failed_transfer_is_finished_by_the_next_verify() {
    for after in [false, true] {
        let base = in_memory_world().await;
        let store: std::sync::Arc<dyn shared::store::DomainStore> =
            std::sync::Arc::new(HookedStore {
                inner: base.app.store.clone(),
                hook: FailFirstTransfer {
                    after,
                    fired: Default::default(),
                },
            });
        let app = App::new(
            store.clone(),
            base.identities.clone(),
            shared::verify::DnsChecker::with_nameservers(&[base.dns.address()])
                .expect("resolver")
                .into(),
            "us-east-2",
        )
        .with_manual_check_interval(std::time::Duration::ZERO);
        let (name, label) = fresh_name();
        assert_eq!(
            create(&name).org("org_a").send(&app).await.status,
            StatusCode::CREATED
        );
        let made = claim(&name).org("org_b").send(&app).await;
        publish_proof(
            &base.dns,
            &label,
            made.body["record"]["value"].as_str().expect("value"),
        )
        .await;

        let failed = on_claim(Endpoint::VerifyClaim, &name)
            .org("org_b")
            .send(&app)
            .await;
        assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{failed:?}");
        assert_eq!(failed.headers["retry-after"], "1");
        let parsed = DomainName::parse(&name).expect("name");
        let holder = app
            .store
            .holder(&parsed)
            .await
            .expect("holder")
            .expect("held");
        let claim_now = on_claim(Endpoint::GetClaim, &name)
            .org("org_b")
            .send(&app)
            .await;
        if after {
            assert_eq!(holder.organization_id, "org_b");
            assert_eq!(claim_now.body["status"], "completed");
            // The failed request's setup mark holds the name's identity for
            // SETUP_WINDOW: a verify meanwhile says so, and changes nothing.
            let busy = on_claim(Endpoint::VerifyClaim, &name)
                .org("org_b")
                .send(&app)
                .await;
            busy.assert_error(
                409,
                "Domain is being set up or removed by another request; retry in a few seconds",
            );
            assert_eq!(
                identity_of(&app, &name).await.map(|i| i.0),
                Some(org_tag("org_a"))
            );
            let mut domain = app
                .store
                .get("org_b", &parsed)
                .await
                .expect("get")
                .expect("b's");
            domain.setup_started_at = Some(shared::Timestamp::from(
                chrono::Utc::now() - chrono::Duration::seconds(31),
            ));
            app.store.update(&mut domain).await.expect("mark runs out");
        } else {
            assert_eq!(holder.organization_id, "org_a");
            assert_eq!(claim_now.body["status"], "pending");
        }
        let done = on_claim(Endpoint::VerifyClaim, &name)
            .org("org_b")
            .send(&app)
            .await;
        assert_eq!(done.body["status"], "completed", "after={after}: {done:?}");
        let tokens = tokens_of(&done.body["domain"]);
        assert_eq!(tokens.len(), 3);
        assert_eq!(
            identity_of(&app, &name).await,
            Some((org_tag("org_b"), tokens))
        );
        assert_eq!(app.store.domain_count("org_a").await.expect("count"), 0);
        assert_eq!(app.store.domain_count("org_b").await.expect("count"), 1);
    }
}

/// Only a TXT record at `_domains-claim.<name>` itself proves control. Reached
/// through a CNAME (as through a zone's wildcard CNAME to a hosting provider, whose
/// target someone else may control), the right value proves nothing.
#[tokio::test]
async fn a_proof_reached_through_a_cname_does_not_take_the_name() {
    let world = in_memory_world().await;
    let app = &world.app;
    let (name, label) = fresh_name();
    assert_eq!(
        create(&name).org("org_a").send(app).await.status,
        StatusCode::CREATED
    );
    let made = claim(&name).org("org_b").send(app).await;
    let value = made.body["record"]["value"]
        .as_str()
        .expect("value")
        .to_string();
    world
        .dns
        .publish(
            0,
            &format!(
                "_domains-claim.{label} 300 IN CNAME elsewhere-{label}.example.com.\n\
                 elsewhere-{label} 300 IN TXT \"{value}\"\n"
            ),
        )
        .await;
    let refused = on_claim(Endpoint::VerifyClaim, &name)
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{refused:?}");
    assert_eq!(refused.body["status"], "pending", "{refused:?}");
    assert!(
        refused.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("CNAME to elsewhere-")),
        "{refused:?}"
    );
    assert_eq!(refused.body["observed"], json!([value]));
    assert_eq!(
        identity_of(app, &name).await.map(|i| i.0),
        Some(org_tag("org_a"))
    );
    assert_eq!(
        app.store
            .holder(&DomainName::parse(&name).expect("name"))
            .await
            .expect("holder")
            .map(|h| h.organization_id),
        Some("org_a".to_string())
    );
}
