//! The handlers, called with the API Gateway (HTTP API v2) events in `events/`
//! exactly as the Lambda runtime would hand them over.

use std::sync::Arc;

use crate::common::*;
use async_trait::async_trait;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use shared::identity::{Identity, IdentityError, IdentityOwner, IdentityProvider};
use shared::{App, DomainName, handlers};

#[tokio::test]
async fn the_whole_lifecycle_create_records_verify_list_get_delete() {
    let world = in_memory_world().await;
    let app = &world.app;

    let created = create("  Example.COM. ").send(app).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.headers["location"], "/domains/example.com");
    let domain = &created.body;
    assert_eq!(domain["name"], "example.com");
    assert_eq!(domain["organization_id"], "org_123");
    assert_eq!(domain["verified"], false);
    assert_eq!(domain["status"], "pending");
    assert_eq!(domain["last_checked_at"], Value::Null);
    assert_eq!(domain["verified_at"], Value::Null);
    assert!(
        is_timestamp(&domain["created_at"]) && is_timestamp(&domain["updated_at"]),
        "{domain}"
    );
    assert!(
        domain.get("dkim_tokens").is_none(),
        "tokens travel in the records only"
    );
    let records = domain["records"].as_array().expect("records");
    assert_eq!(records.len(), 6);
    let tokens = tokens_of(domain);
    assert_eq!(tokens.len(), 3);

    let dns_records = Call::new(Endpoint::DnsRecords).send(app).await;
    assert_eq!(dns_records.status, StatusCode::OK);
    assert_eq!(&dns_records.body, &domain["records"]);
    assert_eq!(dns_records.body[0]["priority"], 10);
    assert!(dns_records.body[1].get("priority").is_none());

    let unverified = Call::new(Endpoint::Verify).send(app).await;
    assert_eq!(unverified.status, StatusCode::OK);
    assert_eq!(unverified.body["verified"], false);
    assert_eq!(unverified.body["status"], "pending");
    assert!(is_timestamp(&unverified.body["last_checked_at"]));
    assert!(
        unverified.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("records are not correct in DNS")),
        "{}",
        unverified.body
    );
    assert_eq!(
        unverified.body["ses"],
        Value::Null,
        "SES is not asked before DNS is right"
    );

    world.dns.publish(0, &correct_zone(&tokens)).await;
    let verified = Call::new(Endpoint::Verify).send(app).await;
    assert_eq!(verified.status, StatusCode::OK);
    assert_eq!(verified.body["verified"], true, "{}", verified.body);
    assert_eq!(verified.body["status"], "verified");
    // The embedded default stands in for SES: confirmed once the CNAMEs resolve.
    assert_eq!(verified.body["ses"]["dkim_status"], "SUCCESS");
    assert_eq!(verified.body["reason"], Value::Null);
    assert!(is_timestamp(&verified.body["verified_at"]));
    assert!(
        verified.body["records"]
            .as_array()
            .expect("records")
            .iter()
            .all(|r| r["status"] == "verified")
    );

    let fetched = Call::new(Endpoint::Get).send(app).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(
        fetched.body, verified.body,
        "verify stored what it answered"
    );

    let listed = Call::new(Endpoint::List).send(app).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body, json!([verified.body]));

    let deleted = Call::new(Endpoint::Delete).send(app).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(
        deleted.body, verified.body,
        "delete answers the domain as it was"
    );
    Call::new(Endpoint::Get)
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    Call::new(Endpoint::Delete)
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    assert_eq!(Call::new(Endpoint::List).send(app).await.body, json!([]));
    let name = DomainName::parse("example.com").expect("valid");
    assert_eq!(
        world.identities.get(&name).await,
        Err(IdentityError::NotFound),
        "identity removed"
    );
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let world = in_memory_world().await;
    let app = &world.app;
    for name in [
        "",
        "com",
        "co.uk",
        "github.io",
        "not a domain",
        "-x.com",
        "1.2.3.4",
        "a..b.com",
    ] {
        create(name)
            .send(app)
            .await
            .assert_error(400, "Invalid domain name format");
    }
    for body in [
        r#"{"name": 42}"#,
        r#"{"name": null}"#,
        r#"{"domain": "example.com"}"#,
        "{}",
    ] {
        Call::new(Endpoint::Create)
            .body(body)
            .send(app)
            .await
            .assert_error(400, "Invalid domain name format");
    }
    for body in [
        "",
        "not json",
        "[\"example.com\"]",
        "\"example.com\"",
        "{\"name\": \"example.com\"",
    ] {
        let reply = Call::new(Endpoint::Create).body(body).send(app).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(reply.body["code"], "invalid_json", "{body:?}");
    }
    let padding = "x".repeat(16 * 1024);
    let huge = json!({ "name": "example.com", "padding": padding }).to_string();
    Call::new(Endpoint::Create)
        .body(&huge)
        .send(app)
        .await
        .assert_error(413, "Request body too large");
    assert_eq!(
        Call::new(Endpoint::List).send(app).await.body,
        json!([]),
        "nothing was created"
    );
}

#[tokio::test]
async fn a_name_is_taken_for_every_organization() {
    let world = in_memory_world().await;
    let app = &world.app;
    assert_eq!(
        create("example.com").send(app).await.status,
        StatusCode::CREATED
    );
    create("EXAMPLE.com.")
        .send(app)
        .await
        .assert_error(409, "Domain already exists");
    create("example.com")
        .org("org_other")
        .send(app)
        .await
        .assert_error(409, "Domain already exists");
}

#[tokio::test]
async fn without_an_organization_every_endpoint_is_unauthorized() {
    let world = in_memory_world().await;
    for endpoint in [
        Endpoint::Create,
        Endpoint::List,
        Endpoint::Get,
        Endpoint::DnsRecords,
        Endpoint::Verify,
        Endpoint::Delete,
    ] {
        Call::new(endpoint)
            .without_authorizer()
            .send(&world.app)
            .await
            .assert_error(401, "Unauthorized");
    }
}

#[tokio::test]
async fn path_names_are_normalized_and_invalid_ones_are_not_found() {
    let world = in_memory_world().await;
    let app = &world.app;
    assert_eq!(
        create("bücher.example.com").send(app).await.status,
        StatusCode::CREATED
    );
    for spelling in [
        "xn--bcher-kva.example.com",
        "BÜCHER.example.com.",
        " bücher.example.com",
    ] {
        let reply = Call::new(Endpoint::Get).domain(spelling).send(app).await;
        assert_eq!(reply.status, StatusCode::OK, "{spelling}");
        assert_eq!(reply.body["name"], "xn--bcher-kva.example.com");
    }
    for bad in ["com", "..", "not a name", "x".repeat(300).as_str()] {
        Call::new(Endpoint::Get)
            .domain(bad)
            .send(app)
            .await
            .assert_error(404, "Domain not found");
    }
}

#[tokio::test]
async fn dkim_tokens_ses_cannot_give_are_the_contract_400() {
    let mut world = in_memory_world().await;
    // A domain stored before SES gave tokens, and SES failing to answer now.
    let name = DomainName::parse("example.com").expect("valid");
    let domain = shared::Domain::new("org_123", name, shared::Timestamp::now());
    world
        .app
        .store
        .insert(&domain, usize::MAX)
        .await
        .expect("insert");
    world.app.identities = Arc::new(FailingIdentities(|| {
        IdentityError::Other("AccessDenied".into())
    }));
    Call::new(Endpoint::DnsRecords)
        .send(&world.app)
        .await
        .assert_error(400, "Failed to get DKIM attributes");
}

#[tokio::test]
async fn a_domain_whose_identity_is_missing_gets_it_back_on_dns_records() {
    let world = in_memory_world().await;
    // Left by a create that failed half-way (its setup mark gone stale): the
    // domain, no identity, no tokens.
    let name = DomainName::parse("example.com").expect("valid");
    let long_ago = shared::Timestamp::from(chrono::Utc::now() - chrono::Duration::seconds(31));
    let domain = shared::Domain::new("org_123", name.clone(), long_ago);
    world
        .app
        .store
        .insert(&domain, usize::MAX)
        .await
        .expect("insert");
    let records = Call::new(Endpoint::DnsRecords).send(&world.app).await;
    assert_eq!(records.status, StatusCode::OK, "{records:?}");
    assert_eq!(records.body.as_array().map(Vec::len), Some(6));
    let identity = world.identities.get(&name).await.expect("identity created");
    assert_eq!(identity.tokens.len(), 3);
    assert_eq!(
        identity.owner,
        Some(world.app.identity_owner("org_123")),
        "tagged for its organization"
    );
    let stored = world
        .app
        .store
        .get("org_123", &name)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.dkim_tokens.len(), 3, "tokens stored");
}

#[tokio::test]
async fn a_create_left_half_done_is_resumed_by_the_next_create_after_30_seconds() {
    let world = in_memory_world().await;
    let name = DomainName::parse("example.com").expect("valid");
    let long_ago = shared::Timestamp::from(chrono::Utc::now() - chrono::Duration::seconds(31));
    world
        .app
        .store
        .insert(
            &shared::Domain::new("org_123", name.clone(), long_ago),
            usize::MAX,
        )
        .await
        .expect("insert");
    let resumed = create("example.com").send(&world.app).await;
    assert_eq!(resumed.status, StatusCode::CREATED, "{resumed:?}");
    assert_eq!(resumed.body["records"].as_array().map(Vec::len), Some(6));
    // Another organization, or a recent leftover (a create still running), is a conflict.
    create("example.com")
        .org("org_other")
        .send(&world.app)
        .await
        .assert_error(409, "Domain already exists");
    let recent = DomainName::parse("recent.example.com").expect("valid");
    world
        .app
        .store
        .insert(
            &shared::Domain::new("org_123", recent, shared::Timestamp::now()),
            usize::MAX,
        )
        .await
        .expect("insert");
    create("recent.example.com")
        .send(&world.app)
        .await
        .assert_error(409, "Domain already exists");
}

/// SES that fails every call the way the given error says.
struct FailingIdentities(fn() -> IdentityError);

#[async_trait]
impl IdentityProvider for FailingIdentities {
    async fn create(
        &self,
        _: &DomainName,
        _: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        Err((self.0)())
    }
    async fn get(&self, _: &DomainName) -> Result<Identity, IdentityError> {
        Err((self.0)())
    }
    async fn delete(&self, _: &DomainName) -> Result<(), IdentityError> {
        Err((self.0)())
    }
    async fn set_mail_from(&self, _: &DomainName, _: Option<&str>) -> Result<(), IdentityError> {
        Err((self.0)())
    }
}

#[tokio::test]
async fn when_ses_fails_at_create_the_claim_is_released_and_the_caller_may_retry() {
    let mut world = in_memory_world().await;
    world.app.identities = Arc::new(FailingIdentities(|| {
        IdentityError::Throttled("SES secret detail".into())
    }));
    let reply = create("example.com").send(&world.app).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(!reply.body.to_string().contains("secret"), "{reply:?}");
    assert_eq!(
        Call::new(Endpoint::List).send(&world.app).await.body,
        json!([])
    );

    world.app.identities = Arc::new(FailingIdentities(|| {
        IdentityError::Other("AccessDenied arn:aws:iam::123".into())
    }));
    let reply = create("example.com").send(&world.app).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.body,
        json!({"message": "Internal server error", "code": "internal_error"})
    );

    world.app.identities = world.identities.clone();
    assert_eq!(
        create("example.com").send(&world.app).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_failed_identity_delete_keeps_the_domain_for_a_retry() {
    let mut world = in_memory_world().await;
    assert_eq!(
        create("example.com").send(&world.app).await.status,
        StatusCode::CREATED
    );
    world.app.identities = Arc::new(FailingIdentities(|| {
        IdentityError::Unavailable("timeout".into())
    }));
    let reply = Call::new(Endpoint::Delete).send(&world.app).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        Call::new(Endpoint::Get).send(&world.app).await.status,
        StatusCode::OK
    );
    world.app.identities = world.identities.clone();
    assert_eq!(
        Call::new(Endpoint::Delete).send(&world.app).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_leftover_ses_identity_of_the_same_organization_is_taken_back() {
    let world = in_memory_world().await;
    let name = DomainName::parse("example.com").expect("valid");
    let leftover = world
        .identities
        .create(&name, &world.app.identity_owner("org_123"))
        .await
        .expect("identity");
    let reply = create("example.com").send(&world.app).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(tokens_of(&reply.body), leftover);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn dynamodb_requests_per_endpoint() {
    let (mut world, counter) = dynamodb_world().await;
    // As deployed: every manual check takes its turn.
    world.app.manual_check_interval = shared::lifecycle::MANUAL_CHECK_INTERVAL;
    let app = &world.app;
    let expect = |endpoint: &str, reply: Reply, status: StatusCode, requests: &[(&str, usize)]| {
        assert_eq!(reply.status, status, "{endpoint}: {reply:?}");
        let expected: Vec<(String, usize)> = requests
            .iter()
            .map(|(op, n)| (op.to_string(), *n))
            .collect();
        assert_eq!(counter.snapshot(), expected, "{endpoint}");
        counter.reset();
    };
    expect(
        "create",
        create("example.com").send(app).await,
        StatusCode::CREATED,
        &[("TransactWriteItems", 2)],
    );
    expect(
        "create conflict (reads the holder and its domain: failed ones are taken over)",
        create("example.com").org("org_b").send(app).await,
        StatusCode::CONFLICT,
        &[("GetItem", 1), ("Query", 1), ("TransactWriteItems", 1)],
    );
    expect(
        "create claim (the holder, its domain, the claims and their guard)",
        Call::new(Endpoint::CreateClaim)
            .body(r#"{"name": "example.com"}"#)
            .org("org_b")
            .send(app)
            .await,
        StatusCode::CREATED,
        &[("GetItem", 2), ("Query", 2), ("TransactWriteItems", 1)],
    );
    expect(
        "list claims (and the holder of each pending one)",
        Call::new(Endpoint::ListClaims).org("org_b").send(app).await,
        StatusCode::OK,
        &[("GetItem", 2), ("Query", 1)],
    );
    expect(
        "get claim (and its name's holder)",
        Call::new(Endpoint::GetClaim).org("org_b").send(app).await,
        StatusCode::OK,
        &[("GetItem", 2)],
    );
    expect(
        "verify claim, not proven (its turn, then the check is stored)",
        Call::new(Endpoint::VerifyClaim)
            .org("org_b")
            .send(app)
            .await,
        StatusCode::OK,
        &[("GetItem", 2), ("PutItem", 1), ("UpdateItem", 1)],
    );
    expect(
        "delete claim",
        Call::new(Endpoint::DeleteClaim)
            .org("org_b")
            .send(app)
            .await,
        StatusCode::OK,
        &[("DeleteItem", 1), ("GetItem", 2)],
    );
    expect(
        "get",
        Call::new(Endpoint::Get).send(app).await,
        StatusCode::OK,
        &[("Query", 1)],
    );
    expect(
        "get missing",
        Call::new(Endpoint::Get).org("org_b").send(app).await,
        StatusCode::NOT_FOUND,
        &[("Query", 1)],
    );
    expect(
        "list",
        Call::new(Endpoint::List).send(app).await,
        StatusCode::OK,
        &[("Query", 1)],
    );
    expect(
        "dns-records",
        Call::new(Endpoint::DnsRecords).send(app).await,
        StatusCode::OK,
        &[("Query", 1)],
    );
    expect(
        "verify (its turn for a manual check, then the check)",
        Call::new(Endpoint::Verify).send(app).await,
        StatusCode::OK,
        &[("Query", 1), ("TransactWriteItems", 1), ("UpdateItem", 1)],
    );
    expect(
        "update (the MAIL FROM subdomain)",
        Call::new(Endpoint::Update).send(app).await,
        StatusCode::OK,
        &[("Query", 1), ("TransactWriteItems", 1)],
    );
    expect(
        "update to what is set already",
        Call::new(Endpoint::Update).send(app).await,
        StatusCode::OK,
        &[("Query", 1)],
    );
    expect(
        "delete (marks the domain, then removes it with its claim and count)",
        Call::new(Endpoint::Delete).send(app).await,
        StatusCode::OK,
        &[("Query", 1), ("TransactWriteItems", 2)],
    );
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn verify_racing_a_delete_does_not_bring_the_domain_back() {
    let (world, _) = dynamodb_world().await;
    let app = &world.app;
    assert_eq!(
        create("example.com").send(app).await.status,
        StatusCode::CREATED
    );
    let name = DomainName::parse("example.com").expect("valid");
    // The verify read the domain; then the delete lands before its write.
    let read_by_verify = app
        .store
        .get("org_123", &name)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        Call::new(Endpoint::Delete).send(app).await.status,
        StatusCode::OK
    );
    let mut checked = read_by_verify.clone();
    shared::lifecycle::after_manual_check(&mut checked, shared::Timestamp::now());
    assert!(matches!(
        app.store.update(&mut checked).await,
        Err(shared::store::StoreError::DomainGone)
    ));
    assert!(
        app.store
            .get("org_123", &name)
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn dns_records_as_a_bind_snippet_verify_once_pasted_into_the_zone() {
    let world = in_memory_world().await;
    let app = &world.app;
    assert_eq!(
        create("mail.example.com").send(app).await.status,
        StatusCode::CREATED
    );
    let (status, headers, zone) = Call::new(Endpoint::DnsRecords)
        .domain("mail.example.com")
        .query("format", "bind")
        .send_text(app)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/dns; charset=utf-8");
    assert_eq!(
        zone.lines().filter(|l| !l.starts_with(';')).count(),
        6,
        "{zone}"
    );

    // Paste it into the zone as a user would, then verify.
    world.dns.publish(0, &zone).await;
    let verified = Call::new(Endpoint::Verify)
        .domain("mail.example.com")
        .send(app)
        .await;
    assert_eq!(verified.body["verified"], true, "{}", verified.body);

    let json = Call::new(Endpoint::DnsRecords)
        .domain("mail.example.com")
        .query("format", "json")
        .send(app)
        .await;
    assert_eq!(json.status, StatusCode::OK);
    Call::new(Endpoint::DnsRecords)
        .domain("mail.example.com")
        .query("format", "yaml")
        .send(app)
        .await
        .assert_error(
            400,
            "Unsupported format: use format=json (the default) or format=bind",
        );
}

async fn list_everything(app: &App, org: &str, limit: Option<usize>) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = Call::new(Endpoint::List)
            .org(org)
            .queries(&query)
            .send(app)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let page = reply.body.as_array().expect("array");
        assert!(
            page.len() <= limit.unwrap_or(handlers::MAX_PAGE),
            "a page holds at most its limit"
        );
        pages += 1;
        names.extend(
            page.iter()
                .map(|d| d["name"].as_str().expect("name").to_string()),
        );
        match reply.headers.get("x-next-cursor") {
            Some(next) => {
                let next = next.to_str().expect("ascii").to_string();
                let link = reply.headers["link"].to_str().expect("ascii");
                assert!(
                    link.contains(&format!("cursor={next}")) && link.ends_with("rel=\"next\""),
                    "{link}"
                );
                cursor = Some(next);
            }
            None => return (names, pages),
        }
    }
}

#[tokio::test]
async fn an_organization_with_10000_domains_lists_completely_page_by_page() {
    let world = in_memory_world().await;
    let mut expected = Vec::new();
    for i in 0..10_000 {
        let name = DomainName::parse(&format!("d{i:05}.example.com")).expect("valid");
        let mut domain = shared::Domain::new("org_big", name.clone(), shared::Timestamp::now());
        domain.records = shared::records::expected_records(
            &name,
            &["t1".into(), "t2".into(), "t3".into()],
            "us-east-2",
        );
        world
            .app
            .store
            .insert(&domain, usize::MAX)
            .await
            .expect("insert");
        expected.push(name.to_string());
    }
    world
        .app
        .store
        .insert(
            &shared::Domain::new(
                "org_other",
                DomainName::parse("zzz.example.org").expect("valid"),
                shared::Timestamp::now(),
            ),
            usize::MAX,
        )
        .await
        .expect("insert");

    let (names, pages) = list_everything(&world.app, "org_big", None).await;
    assert_eq!(
        names, expected,
        "default pages of 1000, in name order, nothing lost or repeated"
    );
    assert_eq!(
        pages, 10,
        "10 full pages; the last has no cursor (no empty page after it)"
    );
    let (names, pages) = list_everything(&world.app, "org_big", Some(333)).await;
    assert_eq!((names.len(), pages), (10_000, 31));
}

#[tokio::test]
async fn bad_paging_parameters_are_400() {
    let world = in_memory_world().await;
    for limit in ["0", "1001", "-1", "ten", "1.5", ""] {
        Call::new(Endpoint::List)
            .query("limit", limit)
            .send(&world.app)
            .await
            .assert_error(400, "Invalid limit: use a whole number from 1 to 1000");
    }
    // Not base64url, padded, an impossible length, too long.
    let too_long = "A".repeat(handlers::MAX_CURSOR + 1);
    for cursor in ["%%%", "Y29t=", "Y", "  ", too_long.as_str()] {
        Call::new(Endpoint::List)
            .query("cursor", cursor)
            .send(&world.app)
            .await
            .assert_error(
                400,
                "Invalid cursor: use the value of the last page's X-Next-Cursor header",
            );
    }
}

/// Any base64url text is a cursor (what openapi.yaml says one is): the page
/// starts after what it decodes to, whether or not a domain has that name.
#[tokio::test]
async fn any_base64url_cursor_starts_a_page_after_its_text() {
    use base64::Engine;
    let world = in_memory_world().await;
    for name in ["a.example.com", "m.example.com", "z.example.com"] {
        assert_eq!(
            create(name).send(&world.app).await.status,
            StatusCode::CREATED
        );
    }
    let names = |reply: Reply| -> Vec<String> {
        reply
            .body
            .as_array()
            .expect("array")
            .iter()
            .map(|d| d["name"].as_str().expect("name").to_string())
            .collect()
    };
    let encode = |text: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    for (after, expected) in [
        (&b"b"[..], vec!["m.example.com", "z.example.com"]),
        (b"m.example.com", vec!["z.example.com"]),
        (b"zz", vec![]),
        (&[0xff, 0xfe][..], vec![]),
    ] {
        let reply = Call::new(Endpoint::List)
            .query("cursor", &encode(after))
            .send(&world.app)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{after:?}");
        assert_eq!(names(reply), expected, "{after:?}");
    }
    // Trailing bits need not be zero: "Yq" and "Yr" both decode to "b".
    let reply = Call::new(Endpoint::List)
        .query("cursor", "Yr")
        .send(&world.app)
        .await;
    assert_eq!(names(reply), ["m.example.com", "z.example.com"]);
}

/// Found by schemathesis: `?cursor=` (a URL template with nothing filled in).
#[tokio::test]
async fn an_empty_cursor_is_the_first_page() {
    let world = in_memory_world().await;
    assert_eq!(
        create("example.com").send(&world.app).await.status,
        StatusCode::CREATED
    );
    let reply = Call::new(Endpoint::List)
        .query("cursor", "")
        .send(&world.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn paging_on_dynamodb_reads_one_page_per_request() {
    let (world, counter) = dynamodb_world().await;
    for i in 0..25 {
        let name = DomainName::parse(&format!("d{i:02}.example.com")).expect("valid");
        world
            .app
            .store
            .insert(
                &shared::Domain::new("org_pages", name, shared::Timestamp::now()),
                usize::MAX,
            )
            .await
            .expect("insert");
    }
    counter.reset();
    let (names, pages) = list_everything(&world.app, "org_pages", Some(10)).await;
    assert_eq!((names.len(), pages), (25, 3));
    assert_eq!(counter.snapshot(), [("Query".to_string(), 3)]);
}

#[tokio::test]
async fn ses_out_of_identities_is_a_503_that_says_so_and_releases_the_claim() {
    let mut world = in_memory_world().await;
    world.app.identities = Arc::new(FailingIdentities(|| {
        IdentityError::LimitExceeded("LimitExceededException".into())
    }));
    let reply = create("example.com").send(&world.app).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.body["code"], "identity_limit_reached");
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit")),
        "{reply:?}"
    );
    assert_eq!(
        Call::new(Endpoint::List).send(&world.app).await.body,
        json!([])
    );
    assert_eq!(
        world
            .app
            .store
            .domain_count("org_123")
            .await
            .expect("count"),
        0
    );
}

#[tokio::test]
async fn a_delete_waits_for_a_setup_still_under_way() {
    let world = in_memory_world().await;
    // A create that has claimed the name and is making its identity right now.
    let name = DomainName::parse("example.com").expect("valid");
    let domain = shared::Domain::new("org_123", name.clone(), shared::Timestamp::now());
    world
        .app
        .store
        .insert(&domain, usize::MAX)
        .await
        .expect("insert");
    let reply = Call::new(Endpoint::Delete).send(&world.app).await;
    reply.assert_error(
        409,
        "Domain is being set up or removed by another request; retry in a few seconds",
    );
    assert_eq!(reply.body["code"], "domain_busy");
    assert!(
        world
            .app
            .store
            .get("org_123", &name)
            .await
            .expect("get")
            .is_some_and(|d| d.deleting_since.is_none()),
        "nothing was changed"
    );
}

/// Deletes the domain from the store while SES makes its identity, as a delete
/// whose wait ran out would.
struct DeletingWhileCreating {
    inner: shared::identity::LocalIdentities,
    store: Arc<dyn shared::store::DomainStore>,
}

#[async_trait]
impl IdentityProvider for DeletingWhileCreating {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        if let Some(domain) = self.store.get("org_123", name).await.expect("get") {
            self.store.delete(&domain).await.expect("delete");
        }
        self.inner.create(name, owner).await
    }
    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.inner.get(name).await
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

#[tokio::test]
async fn a_create_never_answers_201_for_a_domain_removed_meanwhile() {
    let mut world = in_memory_world().await;
    world.app.identities = Arc::new(DeletingWhileCreating {
        inner: shared::identity::LocalIdentities::new(),
        store: world.app.store.clone(),
    });
    let reply = create("example.com").send(&world.app).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{reply:?}");
    assert_eq!(reply.body["code"], "domain_busy");
    assert_eq!(
        Call::new(Endpoint::List).send(&world.app).await.body,
        json!([])
    );
}

/// Every bad name keeps the contract's message and code, and says why in `detail`.
#[tokio::test]
async fn a_refused_name_says_why_in_detail() {
    let world = in_memory_world().await;
    for (body, why) in [
        (
            r#"{"name": "co.uk"}"#,
            "co.uk is a public suffix: register a name under it",
        ),
        (r#"{"name": "https://example.com/"}"#, "looks like a URL"),
        (
            r#"{"name": "ops@example.com"}"#,
            "looks like an e-mail address",
        ),
        (r#"{"name": "localhost"}"#, "has one label"),
        (r#"{"name": "192.0.2.1"}"#, "is an IP address"),
        (r#"{"name": "-bad-.com"}"#, "letters, digits or hyphens"),
        (r#"{"name": 42}"#, "`name` must be a string"),
        (
            r#"{"domain": "example.com"}"#,
            "no `name` field (it has `domain`)",
        ),
        (r#"{}"#, "the body has no `name` field"),
    ] {
        let reply = Call::new(Endpoint::Create)
            .body(body)
            .send(&world.app)
            .await;
        reply.assert_error(400, "Invalid domain name format");
        assert_eq!(reply.body["code"], "invalid_domain_name");
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(why), "{body}: {detail}");
    }
    for (body, why) in [
        ("not json", "not valid JSON"),
        (r#"["example.com"]"#, "must be a JSON object"),
    ] {
        let reply = Call::new(Endpoint::Create)
            .body(body)
            .send(&world.app)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body["code"], "invalid_json");
        assert!(
            reply.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(why)),
            "{body}: {reply:?}"
        );
    }
    // Faults say nothing more than their message.
    let reply = Call::new(Endpoint::Get)
        .domain("nothing.example.com")
        .send(&world.app)
        .await;
    assert!(reply.body.get("detail").is_none(), "{reply:?}");
}

/// On moto, whose SES (tests/moto-ses) keeps DKIM `PENDING` as SES does until it
/// has confirmed: every record right in DNS is still `pending`, saying SES is
/// confirming, with SES's own status shown.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn correct_in_dns_but_not_confirmed_by_ses_is_pending_and_says_so() {
    let world = moto_world().await;
    let app = &world.app;
    let created = create("confirm.example.com").send(app).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let tokens = tokens_of(&created.body);
    world
        ._dns
        .publish(
            0,
            &test_support::dns::all_records_zone(
                "confirm",
                &tokens.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        )
        .await;
    let checked = Call::new(Endpoint::Verify)
        .domain("confirm.example.com")
        .send(app)
        .await;
    assert_eq!(checked.status, StatusCode::OK);
    let body = &checked.body;
    assert!(
        body["records"]
            .as_array()
            .expect("records")
            .iter()
            .all(|r| r["status"] == "verified"),
        "{body}"
    );
    assert_eq!(
        (&body["status"], &body["verified"]),
        (&Value::from("pending"), &Value::from(false))
    );
    assert_eq!(body["ses"]["dkim_status"], "PENDING", "{body}");
    assert!(is_timestamp(&body["ses"]["checked_at"]));
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("SES is confirming")),
        "{body}"
    );
}

/// The two MAIL FROM records at `send.example.com`, as a zone-file snippet.
const MAIL_FROM_ZONE: &str = "send 300 IN MX 10 feedback-smtp.us-east-2.amazonses.com.\n\
                              send 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n";

#[tokio::test]
async fn a_mail_from_domain_on_the_embedded_default_adds_two_records_and_reaches_verified() {
    let world = in_memory_world().await;
    let app = &world.app;
    let name = DomainName::parse("example.com").expect("valid");
    let created = create("example.com")
        .body(r#"{"name": "example.com", "mail_from_subdomain": "Send"}"#)
        .send(app)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["mail_from_subdomain"], "send", "normalized");
    let records = created.body["records"].as_array().expect("records");
    assert_eq!(records.len(), 8);
    let extra: Vec<(&Value, &Value, &Value, &Value)> = records[6..]
        .iter()
        .map(|r| (&r["record"], &r["type"], &r["name"], &r["value"]))
        .collect();
    assert_eq!(
        extra,
        [
            (
                &json!("MAIL_FROM_MX"),
                &json!("MX"),
                &json!("send"),
                &json!("feedback-smtp.us-east-2.amazonses.com")
            ),
            (
                &json!("MAIL_FROM_SPF"),
                &json!("TXT"),
                &json!("send"),
                &json!("v=spf1 include:amazonses.com ~all")
            ),
        ]
    );
    assert_eq!(
        world
            .identities
            .get(&name)
            .await
            .expect("identity")
            .mail_from_domain
            .as_deref(),
        Some("send.example.com"),
        "SES is told"
    );
    let (status, _, zone) = Call::new(Endpoint::DnsRecords)
        .query("format", "bind")
        .send_text(app)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        zone.contains(
            "send.example.com.\t3600\tIN\tMX\t10 feedback-smtp.us-east-2.amazonses.com.\n"
        ) && zone
            .contains("send.example.com.\t3600\tIN\tTXT\t\"v=spf1 include:amazonses.com ~all\"\n"),
        "{zone}"
    );

    // The six alone do not verify it; the eight do (the stand-in confirms both).
    world
        .dns
        .publish(0, &correct_zone(&tokens_of(&created.body)))
        .await;
    let six = Call::new(Endpoint::Verify).send(app).await;
    assert_eq!(six.body["status"], "pending", "{}", six.body);
    let mail_from_mx = &six.body["records"][6];
    assert_eq!(mail_from_mx["status"], "pending", "{mail_from_mx}");
    world.dns.publish(0, MAIL_FROM_ZONE).await;
    let eight = Call::new(Endpoint::Verify).send(app).await;
    assert_eq!(
        (&eight.body["status"], &eight.body["reason"]),
        (&json!("verified"), &Value::Null),
        "{}",
        eight.body
    );
    assert_eq!(eight.body["ses"]["mail_from_status"], "SUCCESS");

    // Removed: six records, SES cleared, still verified.
    let removed = Call::new(Endpoint::Update)
        .body(r#"{"mail_from_subdomain": null}"#)
        .send(app)
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{removed:?}");
    assert_eq!(removed.body["records"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        (
            &removed.body["status"],
            &removed.body["ses"]["mail_from_status"]
        ),
        (&json!("verified"), &Value::Null)
    );
    assert_eq!(
        world
            .identities
            .get(&name)
            .await
            .expect("identity")
            .mail_from_domain,
        None
    );
    assert_eq!(
        Call::new(Endpoint::Get).send(app).await.body,
        removed.body,
        "stored as answered"
    );
}

#[tokio::test]
async fn a_mail_from_change_a_caller_gets_wrong_is_a_clear_400_and_changes_nothing() {
    let world = in_memory_world().await;
    let app = &world.app;
    let created = create("example.com").send(app).await;
    assert_eq!(created.status, StatusCode::CREATED);
    for (body, detail) in [
        (r#"{"mail_from_subdomain": "a.b"}"#, "more than one label"),
        (r#"{"mail_from_subdomain": "-x"}"#, "not a DNS label"),
        (r#"{"mail_from_subdomain": ""}"#, "empty"),
        (r#"{"mail_from_subdomain": 7}"#, "must be a string"),
        (
            r#"{"mail_from": "send"}"#,
            "has no `mail_from_subdomain` field (it has `mail_from`)",
        ),
    ] {
        let reply = Call::new(Endpoint::Update).body(body).send(app).await;
        reply.assert_error(400, "Invalid MAIL FROM subdomain");
        assert_eq!(reply.body["code"], "invalid_mail_from_subdomain");
        assert!(
            reply.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(detail)),
            "{body}: {reply:?}"
        );
    }
    for body in ["not json", "[]"] {
        Call::new(Endpoint::Update)
            .body(body)
            .send(app)
            .await
            .assert_error(400, "Invalid JSON body: expected a JSON object");
    }
    let refused_create = create("other.example.com")
        .body(r#"{"name": "other.example.com", "mail_from_subdomain": "x_y"}"#)
        .send(app)
        .await;
    refused_create.assert_error(400, "Invalid MAIL FROM subdomain");
    assert_eq!(
        Call::new(Endpoint::Get).send(app).await.body,
        created.body,
        "nothing changed"
    );
    assert_eq!(
        Call::new(Endpoint::List).send(app).await.body,
        json!([created.body]),
        "the refused create claimed nothing"
    );

    // Another organization's domain, or none: not found, and untouched.
    Call::new(Endpoint::Update)
        .org("org_other")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    Call::new(Endpoint::Update)
        .domain("missing.example.com")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    assert_eq!(Call::new(Endpoint::Get).send(app).await.body, created.body);
    let name = DomainName::parse("example.com").expect("valid");
    assert_eq!(
        world
            .identities
            .get(&name)
            .await
            .expect("identity")
            .mail_from_domain,
        None,
        "SES untouched"
    );
}

#[tokio::test]
async fn when_ses_refuses_a_mail_from_change_the_domain_keeps_what_it_had() {
    let mut world = in_memory_world().await;
    let created = create("example.com").send(&world.app).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let identities = world.identities.clone();
    world.app.identities = Arc::new(ThrottledMailFrom(identities));
    let reply = Call::new(Endpoint::Update).send(&world.app).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(
        Call::new(Endpoint::Get).send(&world.app).await.body,
        created.body,
        "the domain is as it was"
    );
}

/// The local identities, but SES throttles every MAIL FROM change.
struct ThrottledMailFrom(Arc<shared::identity::LocalIdentities>);

#[async_trait]
impl IdentityProvider for ThrottledMailFrom {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        self.0.create(name, owner).await
    }
    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.0.get(name).await
    }
    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        self.0.delete(name).await
    }
    async fn set_mail_from(&self, _: &DomainName, _: Option<&str>) -> Result<(), IdentityError> {
        Err(IdentityError::Throttled("SES says slow down".into()))
    }
}

#[tokio::test]
async fn a_verify_emits_its_outcome_records_and_dns_cost_as_emf() {
    let mut world = in_memory_world().await;
    let (metrics, captured) = shared::metrics::Metrics::in_memory("DomainsApi/test");
    world.app = world.app.with_metrics(metrics);
    let created = create("example.com").send(&world.app).await;
    assert_eq!(created.status, StatusCode::CREATED);
    Call::new(Endpoint::Verify).send(&world.app).await;
    world
        .dns
        .publish(0, &correct_zone(&tokens_of(&created.body)))
        .await;
    Call::new(Endpoint::Verify).send(&world.app).await;

    let lines = captured.lines();
    assert_eq!(lines.len(), 4, "two lines per verify: {lines:?}");
    for line in &lines {
        // Every metric a directive names is a top-level member, as EMF requires.
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "DomainsApi/test");
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().expect("name");
            assert!(
                line[name].is_number() || line[name].is_array(),
                "{name} in {line}"
            );
        }
        for dimension in directive["Dimensions"][0].as_array().expect("dimensions") {
            assert!(
                line[dimension.as_str().expect("name")].is_string(),
                "{line}"
            );
        }
    }
    let outcomes: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("Verifications").is_some())
        .map(|l| &l["Outcome"])
        .collect();
    assert_eq!(outcomes, [&json!("pending"), &json!("verified")]);
    let records: Vec<(f64, f64)> = lines
        .iter()
        .filter(|l| l.get("RecordsVerified").is_some())
        .map(|l| {
            assert!(l["DnsCheckMillis"].as_f64().is_some_and(|ms| ms >= 0.0));
            assert_eq!(l["DnsLookupsIncomplete"], 0.0);
            (
                l["RecordsVerified"].as_f64().unwrap_or(-1.0),
                l["RecordsPending"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(records, [(0.0, 6.0), (6.0, 0.0)]);
}

/// Changes the MAIL FROM label of `example.com` to `bounce`, as a `PATCH` would,
/// just before the first full write it sees (a verify's), once.
struct PatchLandsFirst(std::sync::atomic::AtomicBool);

#[async_trait]
impl StoreHook for PatchLandsFirst {
    async fn before(
        &self,
        inner: &dyn shared::store::DomainStore,
        op: StoreOp,
        _: Option<&shared::Domain>,
    ) -> Hooked {
        if op == StoreOp::Update && !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let name = DomainName::parse("example.com").expect("valid");
            let mut fresh = inner
                .get("org_123", &name)
                .await
                .expect("get")
                .expect("the domain");
            let label = shared::mail_from::MailFromLabel::parse("bounce", &name).expect("valid");
            fresh.records.truncate(6);
            fresh.records.extend(shared::records::mail_from_records(
                &name,
                &label,
                "us-east-2",
            ));
            fresh.mail_from_subdomain = Some(label);
            shared::lifecycle::after_mail_from_change(&mut fresh, shared::Timestamp::now());
            inner.update(&mut fresh).await.expect("the PATCH's write");
        }
        Hooked::Proceed
    }
}

/// A verify checks the records of `send`; a PATCH to `bounce` lands before its
/// write. The verify's result is applied to the domain as it now is: what it saw
/// of `send` says nothing about `bounce`, whose records nobody has checked, so the
/// domain must not be verified.
#[tokio::test]
async fn a_verify_never_verifies_a_mail_from_domain_changed_while_it_checked() {
    let store = Arc::new(shared::store::InMemoryStore::new());
    let mut world = world_with(store.clone()).await;
    let created = create("example.com")
        .body(r#"{"name": "example.com", "mail_from_subdomain": "send"}"#)
        .send(&world.app)
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    world
        .dns
        .publish(0, &correct_zone(&tokens_of(&created.body)))
        .await;
    world.dns.publish(0, MAIL_FROM_ZONE).await;
    world.app.store = Arc::new(HookedStore {
        inner: store,
        hook: PatchLandsFirst(std::sync::atomic::AtomicBool::new(false)),
    });

    let reply = Call::new(Endpoint::Verify).send(&world.app).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let body = &reply.body;
    assert_eq!(body["mail_from_subdomain"], "bounce", "{body}");
    assert_eq!(
        (&body["status"], &body["verified"]),
        (&json!("pending"), &json!(false)),
        "{body}"
    );
    let bounce: Vec<&Value> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["fqdn"] == "bounce.example.com")
        .collect();
    assert_eq!(bounce.len(), 2, "{body}");
    assert!(
        bounce.iter().all(|r| r["status"] == "pending"),
        "nobody checked them: {body}"
    );
    assert_ne!(body["ses"]["mail_from_status"], "SUCCESS", "{body}");
}
