//! Names held by another organization, the ways the promise "no tenant can take
//! what another holds" broke, each as an attack that must fail:
//!
//! - a name under another organization's domain is not had by a plain create
//!   (`parent_domain_held`), only by a claim, which leaves the parent alone;
//! - a failed name that once was verified is not had by a plain create;
//! - a takeover that fails half-way (SES throttled) keeps the name for the taker
//!   to finish, never frees it with the old holder's data half-moved;
//! - a delete resuming an old mark, or racing another delete, never removes an
//!   identity another organization made since.
//!
//! On the embedded default and on moto (DynamoDB, SESv2 as SES answers).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lambda_http::http::StatusCode;
use serde_json::json;
use shared::identity::{Identity, IdentityError, IdentityOwner, IdentityProvider, LocalIdentities};
use shared::model::{Domain, DomainStatus, Timestamp};
use shared::store::{DomainStore, InMemoryStore};
use shared::verify::DnsChecker;
use shared::{App, DomainName};
use test_support::{TestDnsServer, unique_table_name};
use tokio::sync::Notify;

use crate::common::*;

fn claim(name: &str) -> Call {
    Call::new(Endpoint::CreateClaim).body(&json!({ "name": name }).to_string())
}

fn verify_claim(name: &str) -> Call {
    Call::new(Endpoint::VerifyClaim).domain(name)
}

/// A fresh label under example.com (the test zone).
fn fresh_label() -> String {
    format!(
        "held-{}",
        unique_table_name("n").rsplit('-').next().unwrap_or("x")
    )
}

/// Creates a claim of `name` for `org` and publishes its proof in the test zone.
async fn claim_and_prove(app: &App, dns: &TestDnsServer, org: &str, name: &str) {
    let made = claim(name).org(org).send(app).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let value = made.body["record"]["value"].as_str().expect("value");
    let owner = name
        .strip_suffix(".example.com")
        .expect("under example.com");
    dns.publish(
        0,
        &format!("_domains-claim.{owner} 300 IN TXT \"{value}\"\n"),
    )
    .await;
}

async fn holder_of(app: &App, name: &str) -> Option<String> {
    app.store
        .holder(&DomainName::parse(name).expect("name"))
        .await
        .expect("holder")
        .map(|holder| holder.organization_id)
}

async fn identity_owner_of(app: &App, name: &str) -> Option<String> {
    match app
        .identities
        .get(&DomainName::parse(name).expect("name"))
        .await
    {
        Ok(identity) => identity.owner.map(|owner| owner.organization),
        Err(IdentityError::NotFound) => None,
        Err(error) => panic!("identity read: {error}"),
    }
}

fn org_tag(org: &str) -> Option<String> {
    Some(shared::identity::organization_tag_value(org))
}

async fn parent_held_flow(app: &App, dns: &TestDnsServer) {
    let parent = format!("{}.example.com", fresh_label());
    let created = create(&parent).org("org_a").send(app).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let parent_id = created.body["id"].clone();

    // Another organization's create under it: 409, saying to claim it.
    let child = format!("x.{parent}");
    let refused = create(&child).org("org_b").send(app).await;
    refused.assert_error(
        409,
        "A parent domain of this name is held by another organization; claim the name to take it",
    );
    assert_eq!(refused.body["code"], "parent_domain_held");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&parent) && d.contains("POST /domain-claims")),
        "{refused:?}"
    );
    assert_eq!(holder_of(app, &child).await, None);
    assert_eq!(
        identity_owner_of(app, &child).await,
        None,
        "no identity made"
    );
    assert_eq!(app.store.domain_count("org_b").await.expect("count"), 0);
    // Deeper still, and whatever the parent's status.
    create(&format!("deep.{child}"))
        .org("org_b")
        .send(app)
        .await
        .assert_error(
            409,
            "A parent domain of this name is held by another organization; claim the name to take it",
        );

    // The holder's own subdomains stay a plain create; a claim of one is 404.
    let own = format!("own.{parent}");
    assert_eq!(
        create(&own).org("org_a").send(app).await.status,
        StatusCode::CREATED
    );
    claim(&format!("mine.{parent}"))
        .org("org_a")
        .send(app)
        .await
        .assert_error(404, "Domain not found");
    // Nobody holds anything above an unrelated free name: just create it.
    claim(&format!("{}.example.com", fresh_label()))
        .org("org_b")
        .send(app)
        .await
        .assert_error(404, "Domain not found");

    // A claim proven in DNS gives the name, and the parent stays its holder's.
    claim_and_prove(app, dns, "org_b", &child).await;
    let done = verify_claim(&child).org("org_b").send(app).await;
    assert_eq!(done.body["status"], "completed", "{done:?}");
    assert_eq!(done.body["domain"]["organization_id"], "org_b");
    assert_eq!(holder_of(app, &child).await.as_deref(), Some("org_b"));
    assert_eq!(identity_owner_of(app, &child).await, org_tag("org_b"));
    let parent_now = Call::new(Endpoint::Get)
        .domain(&parent)
        .org("org_a")
        .send(app)
        .await;
    assert_eq!(parent_now.status, StatusCode::OK);
    assert_eq!(
        parent_now.body["id"], parent_id,
        "the parent's domain is untouched"
    );
    assert_eq!(identity_owner_of(app, &parent).await, org_tag("org_a"));
    assert_eq!(app.store.domain_count("org_a").await.expect("count"), 2);

    // Holding a nearer parent does not make a create under another's parent plain.
    create(&format!("y.{child}"))
        .org("org_b")
        .send(app)
        .await
        .assert_error(
            409,
            "A parent domain of this name is held by another organization; claim the name to take it",
        );
}

#[tokio::test]
async fn a_name_under_another_organizations_domain_is_had_only_by_a_claim_on_the_embedded_default()
{
    let world = in_memory_world().await;
    parent_held_flow(&world.app, &world.dns).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_name_under_another_organizations_domain_is_had_only_by_a_claim_on_moto() {
    let world = moto_world().await;
    parent_held_flow(&world.app, &world._dns).await;
}

/// The parent is created between a create's checks and its write: the create,
/// whose parents are checked in its own transaction, still refuses.
struct ParentArrives {
    child: DomainName,
    parent: Mutex<Option<Domain>>,
}

#[async_trait]
impl StoreHook for ParentArrives {
    async fn before(
        &self,
        inner: &dyn DomainStore,
        op: StoreOp,
        domain: Option<&Domain>,
    ) -> Hooked {
        if op == StoreOp::Insert && domain.is_some_and(|d| d.name == self.child) {
            let parent = self.parent.lock().expect("lock").take();
            if let Some(parent) = parent {
                inner
                    .insert(&parent, 1000)
                    .await
                    .expect("the parent is created first");
            }
        }
        Hooked::Proceed
    }
}

async fn parent_arrives_during_a_create(store: Arc<dyn DomainStore>) {
    let parent = DomainName::parse(&format!("{}.example.com", fresh_label())).expect("name");
    let child = DomainName::parse(&format!("x.{parent}")).expect("name");
    let world = world_with(Arc::new(HookedStore {
        inner: store,
        hook: ParentArrives {
            child: child.clone(),
            parent: Mutex::new(Some(Domain::new("org_a", parent.clone(), Timestamp::now()))),
        },
    }))
    .await;
    let refused = create(child.as_str()).org("org_b").send(&world.app).await;
    assert_eq!(refused.body["code"], "parent_domain_held", "{refused:?}");
    assert_eq!(holder_of(&world.app, child.as_str()).await, None);
    assert_eq!(
        holder_of(&world.app, parent.as_str()).await.as_deref(),
        Some("org_a")
    );
}

#[tokio::test]
async fn a_parent_created_meanwhile_still_refuses_the_create_on_the_embedded_default() {
    parent_arrives_during_a_create(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_parent_created_meanwhile_still_refuses_the_create_on_moto() {
    let (world, _) = dynamodb_world().await;
    parent_arrives_during_a_create(world.app.store.clone()).await;
}

/// Stores the organization's domain as `failed`, once verified or never.
async fn fail(app: &App, org: &str, name: &str, was_verified: Option<bool>) {
    let mut domain = app
        .store
        .get(org, &DomainName::parse(name).expect("name"))
        .await
        .expect("get")
        .expect("domain");
    domain.status = DomainStatus::Failed;
    domain.verified = false;
    domain.verified_at = None;
    domain.schedule.next_check_at = None;
    domain.was_verified = was_verified;
    app.store.update(&mut domain).await.expect("update");
}

async fn failed_names_flow(app: &App) {
    // Once verified, then failed (its records drifted for 72 hours), or failed
    // with a history that predates the record of it: a claim is needed.
    for was_verified in [Some(true), None] {
        let name = format!("{}.example.com", fresh_label());
        assert_eq!(
            create(&name).org("org_a").send(app).await.status,
            StatusCode::CREATED
        );
        fail(app, "org_a", &name, was_verified).await;
        create(&name)
            .org("org_b")
            .send(app)
            .await
            .assert_error(409, "Domain already exists");
        assert_eq!(holder_of(app, &name).await.as_deref(), Some("org_a"));
        assert_eq!(identity_owner_of(app, &name).await, org_tag("org_a"));
        assert_eq!(
            claim(&name).org("org_b").send(app).await.status,
            StatusCode::CREATED,
            "{was_verified:?}: a claim is the way"
        );
    }
    // Never verified: a create takes it.
    let name = format!("{}.example.com", fresh_label());
    create(&name).org("org_a").send(app).await;
    fail(app, "org_a", &name, Some(false)).await;
    assert_eq!(
        create(&name).org("org_b").send(app).await.status,
        StatusCode::CREATED
    );
    assert_eq!(holder_of(app, &name).await.as_deref(), Some("org_b"));
}

#[tokio::test]
async fn a_failed_name_that_once_sent_mail_needs_a_claim_on_the_embedded_default() {
    failed_names_flow(&in_memory_world().await.app).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_failed_name_that_once_sent_mail_needs_a_claim_on_moto() {
    failed_names_flow(&moto_world().await.app).await;
}

/// Local identities whose `create` fails (throttled) while armed, and whose
/// first `delete` of a name may be held until released.
#[derive(Default)]
struct Staged {
    inner: LocalIdentities,
    throttle_creates: Mutex<bool>,
    hold_delete_of: Mutex<Option<DomainName>>,
    delete_reached: Notify,
    delete_released: Notify,
}

#[async_trait]
impl IdentityProvider for Staged {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        if *self.throttle_creates.lock().expect("lock") {
            return Err(IdentityError::Throttled("staged".into()));
        }
        self.inner.create(name, owner).await
    }
    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.inner.get(name).await
    }
    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        let hold = {
            let mut held = self.hold_delete_of.lock().expect("lock");
            if held.as_ref() == Some(name) {
                held.take()
            } else {
                None
            }
        };
        if hold.is_some() {
            self.delete_reached.notify_one();
            self.delete_released.notified().await;
        }
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

/// The app of `world` with staged identities (the world's DNS server).
fn staged_app(store: Arc<dyn DomainStore>, dns: &TestDnsServer, staged: Arc<Staged>) -> App {
    App::new(
        store,
        staged,
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
    .with_manual_check_interval(std::time::Duration::ZERO)
}

async fn takeover_fails_half_way(store: Arc<dyn DomainStore>) {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let staged = Arc::new(Staged::default());
    let app = staged_app(store, &dns, staged.clone());

    // A create taking a failed name, with SES throttled: the name stays the
    // taker's, and the create, retried, finishes it.
    let name = format!("{}.example.com", fresh_label());
    create(&name).org("org_a").send(&app).await;
    fail(&app, "org_a", &name, Some(false)).await;
    *staged.throttle_creates.lock().expect("lock") = true;
    let throttled = create(&name).org("org_b").send(&app).await;
    assert_eq!(
        throttled.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{throttled:?}"
    );
    assert_eq!(
        holder_of(&app, &name).await.as_deref(),
        Some("org_b"),
        "not released"
    );
    create(&name)
        .org("org_c")
        .send(&app)
        .await
        .assert_error(409, "Domain already exists");
    *staged.throttle_creates.lock().expect("lock") = false;
    let finished = create(&name).org("org_b").send(&app).await;
    assert_eq!(finished.status, StatusCode::CREATED, "{finished:?}");
    assert_eq!(tokens_of(&finished.body).len(), 3);
    assert_eq!(identity_owner_of(&app, &name).await, org_tag("org_b"));
    assert_eq!(app.store.domain_count("org_a").await.expect("count"), 0);

    // A claim's takeover, the same: the claim is done, and its next verify
    // makes the identity.
    let name = format!("{}.example.com", fresh_label());
    create(&name).org("org_a").send(&app).await;
    claim_and_prove(&app, &dns, "org_b", &name).await;
    *staged.throttle_creates.lock().expect("lock") = true;
    let throttled = verify_claim(&name).org("org_b").send(&app).await;
    assert_eq!(
        throttled.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{throttled:?}"
    );
    assert_eq!(holder_of(&app, &name).await.as_deref(), Some("org_b"));
    *staged.throttle_creates.lock().expect("lock") = false;
    let finished = verify_claim(&name).org("org_b").send(&app).await;
    assert_eq!(finished.body["status"], "completed", "{finished:?}");
    assert_eq!(tokens_of(&finished.body["domain"]).len(), 3, "{finished:?}");
    assert_eq!(identity_owner_of(&app, &name).await, org_tag("org_b"));
}

#[tokio::test]
async fn a_takeover_that_fails_half_way_is_finished_not_freed_on_the_embedded_default() {
    takeover_fails_half_way(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_takeover_that_fails_half_way_is_finished_not_freed_on_moto() {
    let (world, _) = dynamodb_world().await;
    takeover_fails_half_way(world.app.store.clone()).await;
}

/// A's delete stopped after its mark (a crash, a timeout) long ago. A delete
/// resuming it has read the identity's tags (A's) and is about to delete it when
/// B's proven claim runs: B must never end up holding the name without its
/// identity. The resuming delete renews its mark first, so the claim waits.
async fn resumed_delete_races_a_claim(store: Arc<dyn DomainStore>) {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let staged = Arc::new(Staged::default());
    let app = Arc::new(staged_app(store, &dns, staged.clone()));
    let name = format!("{}.example.com", fresh_label());
    assert_eq!(
        create(&name).org("org_a").send(&app).await.status,
        StatusCode::CREATED
    );
    let mut marked = app
        .store
        .get("org_a", &DomainName::parse(&name).expect("name"))
        .await
        .expect("get")
        .expect("domain");
    marked.deleting_since = Some(Timestamp::from(
        chrono::Utc::now() - chrono::Duration::seconds(60),
    ));
    app.store.update(&mut marked).await.expect("an old mark");
    claim_and_prove(&app, &dns, "org_b", &name).await;

    *staged.hold_delete_of.lock().expect("lock") = DomainName::parse(&name).ok();
    let delete = tokio::spawn({
        let app = app.clone();
        let name = name.clone();
        async move {
            Call::new(Endpoint::Delete)
                .domain(&name)
                .org("org_a")
                .send(&app)
                .await
        }
    });
    staged.delete_reached.notified().await;
    let during = verify_claim(&name).org("org_b").send(&app).await;
    staged.delete_released.notify_one();
    let deleted = delete.await.expect("the delete ends");
    assert_eq!(deleted.status, StatusCode::OK, "{deleted:?}");
    assert_eq!(
        during.status,
        StatusCode::CONFLICT,
        "the claim waits for the delete: {during:?}"
    );
    let after = verify_claim(&name).org("org_b").send(&app).await;
    assert_eq!(after.body["status"], "completed", "{after:?}");

    // Whoever holds the name has its identity, tagged for it.
    assert_eq!(holder_of(&app, &name).await.as_deref(), Some("org_b"));
    assert_eq!(identity_owner_of(&app, &name).await, org_tag("org_b"));
}

#[tokio::test]
async fn a_resumed_delete_never_removes_an_identity_made_since_on_the_embedded_default() {
    resumed_delete_races_a_claim(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_resumed_delete_never_removes_an_identity_made_since_on_moto() {
    let (world, _) = dynamodb_world().await;
    resumed_delete_races_a_claim(world.app.store.clone()).await;
}

/// Two deletes of one domain at once. The first has read the identity's tags
/// (A's) and is about to delete it; if the second finished the job meanwhile and
/// B created the name, the first would delete B's new identity (SES has no
/// conditional delete). Only the request that wrote the delete mark removes the
/// identity: the second waits for it, and B's create meets a held name.
async fn concurrent_deletes_race_a_create(store: Arc<dyn DomainStore>) {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let staged = Arc::new(Staged::default());
    let app = Arc::new(staged_app(store, &dns, staged.clone()));
    let name = format!("{}.example.com", fresh_label());
    assert_eq!(
        create(&name).org("org_a").send(&app).await.status,
        StatusCode::CREATED
    );
    *staged.hold_delete_of.lock().expect("lock") = DomainName::parse(&name).ok();
    let delete = |app: Arc<App>, name: String| async move {
        Call::new(Endpoint::Delete)
            .domain(&name)
            .org("org_a")
            .send(&app)
            .await
    };
    let first = tokio::spawn(delete(app.clone(), name.clone()));
    staged.delete_reached.notified().await;
    let second = delete(app.clone(), name.clone()).await;
    let meanwhile = create(&name).org("org_b").send(&app).await;
    staged.delete_released.notify_one();
    let first = first.await.expect("the first delete ends");
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(
        second.status,
        StatusCode::CONFLICT,
        "it waited for the first: {second:?}"
    );
    assert_eq!(second.body["code"], "domain_busy");
    meanwhile.assert_error(409, "Domain already exists");

    let created = create(&name).org("org_b").send(&app).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(holder_of(&app, &name).await.as_deref(), Some("org_b"));
    assert_eq!(identity_owner_of(&app, &name).await, org_tag("org_b"));
}

#[tokio::test]
async fn a_delete_never_removes_an_identity_made_after_another_delete_on_the_embedded_default() {
    concurrent_deletes_race_a_create(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_delete_never_removes_an_identity_made_after_another_delete_on_moto() {
    let (world, _) = dynamodb_world().await;
    concurrent_deletes_race_a_create(world.app.store.clone()).await;
}
