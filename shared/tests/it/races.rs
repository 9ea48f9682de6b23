//! Concurrency against the real DynamoDB-API server (moto) and SESv2 on moto as
//! SES answers (tests/moto-ses): only
//! one create of a name wins, a verify never brings back a deleted domain, and
//! concurrent verifies leave one consistent domain.

use crate::common::*;
use futures::future::join_all;
use lambda_http::http::StatusCode;
use test_support::unique_table_name;

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
#[ignore = "needs moto: scripts/test"]
async fn fifty_concurrent_creates_of_one_name_in_one_organization() {
    fifty_concurrent_creates(&["org_a"]).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn fifty_concurrent_creates_of_one_name_by_two_organizations() {
    fifty_concurrent_creates(&["org_a", "org_b"]).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
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
#[ignore = "needs moto: scripts/test"]
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

/// Two deletes by the holder, a create of the same name by another organization,
/// a verify by the holder and a scheduled run, all at once, many rounds; on odd
/// rounds the holder's domain is a create left half-done (no identity, setup mark
/// gone stale), so its verify makes the identity while the others run. Whatever
/// the interleaving, nobody ends up with an identity another organization holds:
/// the name's identity is the holder's, tagged for it, with the tokens it stored;
/// and nothing holds an identity for a name nobody holds.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn deletes_creates_verifies_and_checks_never_remove_another_organizations_identity() {
    const ROUNDS: usize = 60;
    let world = moto_world().await;
    let app = &world.app;
    let (mut taken_over, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let name = format!("contested{round}.example.com");
        let parsed = shared::DomainName::parse(&name).expect("valid");
        if round % 2 == 0 {
            assert_eq!(
                create(&name).org("org_a").send(app).await.status,
                StatusCode::CREATED
            );
        } else {
            let long_ago =
                shared::Timestamp::from(chrono::Utc::now() - chrono::Duration::seconds(31));
            let mut leftover = shared::Domain::new("org_a", parsed.clone(), long_ago);
            leftover.records = shared::records::expected_records(&parsed, &[], "us-east-2");
            app.store
                .insert(&leftover, usize::MAX)
                .await
                .expect("leftover");
        }
        let pause = |ms: u64| tokio::time::sleep(std::time::Duration::from_millis(ms));
        let later = shared::Timestamp::from(chrono::Utc::now() + chrono::Duration::minutes(10));
        let (delete_1, delete_2, taken, verified, _) = futures::join!(
            Call::new(Endpoint::Delete)
                .org("org_a")
                .domain(&name)
                .send(app),
            async {
                pause((round % 4) as u64).await;
                Call::new(Endpoint::Delete)
                    .org("org_a")
                    .domain(&name)
                    .send(app)
                    .await
            },
            async {
                pause((round % 10) as u64 * 25).await;
                create(&name).org("org_b").send(app).await
            },
            Call::new(Endpoint::Verify)
                .org("org_a")
                .domain(&name)
                .send(app),
            shared::scheduler::run(
                app,
                later,
                shared::scheduler::RunOptions::default(),
                &|| false
            ),
        );
        for reply in [&delete_1, &delete_2] {
            assert!(
                matches!(reply.status.as_u16(), 200 | 404 | 409),
                "round {round}: {reply:?}"
            );
        }
        assert!(
            matches!(verified.status.as_u16(), 200 | 404),
            "round {round}: {verified:?}"
        );
        assert!(
            matches!(taken.status.as_u16(), 201 | 409),
            "round {round}: {taken:?}"
        );

        let held_by_a = app.store.get("org_a", &parsed).await.expect("get");
        let held_by_b = app.store.get("org_b", &parsed).await.expect("get");
        let identity = world.identity(&name).await;
        match (&held_by_a, &held_by_b) {
            (Some(_), Some(_)) => panic!("round {round}: two holders"),
            (None, None) => assert_eq!(identity, None, "round {round}: an identity nobody holds"),
            (Some(domain), None) | (None, Some(domain)) => {
                let identity = identity.unwrap_or_else(|| {
                    panic!(
                        "round {round}: {} holds the name without its identity",
                        domain.organization_id
                    )
                });
                assert_eq!(
                    identity.tags,
                    world.tags_for(&domain.organization_id),
                    "round {round}: the identity is its holder's"
                );
                if !domain.dkim_tokens.is_empty() {
                    assert_eq!(identity.tokens, domain.dkim_tokens, "round {round}");
                }
            }
        }
        if taken.status == StatusCode::CREATED {
            taken_over += 1;
            assert!(
                held_by_b.is_some(),
                "round {round}: 201 for a domain that is gone"
            );
            assert_eq!(tokens_of(&taken.body), identity_tokens(&world, &name).await);
        } else {
            refused += 1;
        }
        // Whoever holds it can always finish: the holder's delete leaves nothing.
        for org in ["org_a", "org_b"] {
            let _ = Call::new(Endpoint::Delete)
                .org(org)
                .domain(&name)
                .send(app)
                .await;
        }
        if held_by_a.is_some() {
            // A setup mark still fresh makes the delete wait; age it as time would.
            if let Some(mut domain) = app.store.get("org_a", &parsed).await.expect("get") {
                domain.setup_started_at = None;
                app.store.update(&mut domain).await.expect("age");
                let reply = Call::new(Endpoint::Delete)
                    .org("org_a")
                    .domain(&name)
                    .send(app)
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "round {round}: {reply:?}");
            }
        }
        assert_eq!(world.count_items(&name).await, (0, 0), "round {round}");
        assert_eq!(
            world.identity(&name).await,
            None,
            "round {round}: cleaned up"
        );
    }
    println!(
        "contested names: {ROUNDS} rounds, taken over by org_b in {taken_over}, refused in {refused}"
    );
}

async fn identity_tokens(world: &MotoWorld, name: &str) -> Vec<String> {
    world
        .identity(name)
        .await
        .map(|i| i.tokens)
        .unwrap_or_default()
}
