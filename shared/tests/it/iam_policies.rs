//! The IAM policies in template.yaml grant exactly the AWS actions each function's
//! code performs: every path of every handler (failures and repairs included) is
//! run against DynamoDB on moto, recording the actions its requests need (the
//! items of a transaction each by their own action), and SES calls through the
//! identity provider (each SesIdentities method is one SESv2 call; see ses_adapter).

use shared::store::DomainItems;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::common::*;
use async_trait::async_trait;
use lambda_http::http::StatusCode;
use serde_norway::Value as Yaml;
use shared::identity::{Identity, IdentityError, IdentityOwner, IdentityProvider, LocalIdentities};
use shared::model::{Domain, Timestamp};
use shared::store::{DomainStore, DynamoDbStore, StoreError, create_table};
use shared::verify::DnsChecker;
use shared::{App, DomainName};
use test_support::{
    RequestCounter, TestDnsServer, dynamodb_client, moto_endpoint, unique_table_name,
};

#[derive(Clone, Copy, PartialEq)]
enum SesBehaviour {
    Normal,
    /// CreateEmailIdentity fails with a 5xx (the identity may exist).
    CreateFails,
    /// CreateEmailIdentity says it exists already (a leftover).
    AlreadyExists,
    /// The domain is deleted while its identity is being created.
    DomainDeletedDuringCreate,
}

struct RecordingIdentities {
    inner: LocalIdentities,
    actions: Mutex<BTreeSet<String>>,
    behaviour: Mutex<SesBehaviour>,
    /// For `DomainDeletedDuringCreate`.
    store: DynamoDbStore,
}

impl RecordingIdentities {
    fn record(&self, action: &str) {
        self.actions
            .lock()
            .expect("lock")
            .insert(format!("ses:{action}"));
    }
    fn behaviour(&self) -> SesBehaviour {
        *self.behaviour.lock().expect("lock")
    }
}

#[async_trait]
impl IdentityProvider for RecordingIdentities {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        // CreateEmailIdentity with tags is authorized as both actions.
        self.record("CreateEmailIdentity");
        self.record("TagResource");
        match self.behaviour() {
            SesBehaviour::CreateFails => Err(IdentityError::Unavailable("500".into())),
            SesBehaviour::AlreadyExists => {
                let _ = self.inner.create(name, owner).await;
                Err(IdentityError::AlreadyExists)
            }
            SesBehaviour::DomainDeletedDuringCreate => {
                if let Some(domain) = self.store.get("org_123", name).await.expect("get") {
                    self.store.delete(&domain).await.expect("delete");
                }
                self.inner.create(name, owner).await
            }
            SesBehaviour::Normal => self.inner.create(name, owner).await,
        }
    }
    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.record("GetEmailIdentity");
        self.inner.get(name).await
    }
    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        self.record("DeleteEmailIdentity");
        self.inner.delete(name).await
    }
    async fn set_mail_from(
        &self,
        name: &DomainName,
        mail_from_domain: Option<&str>,
    ) -> Result<(), IdentityError> {
        self.record("PutEmailIdentityMailFromAttributes");
        self.inner.set_mail_from(name, mail_from_domain).await
    }
}

/// Full writes of one domain fail (through the one hookable store wrapper).
struct UpdatesFailFor(&'static str);

#[async_trait]
impl StoreHook for UpdatesFailFor {
    async fn before(&self, _: &dyn DomainStore, op: StoreOp, domain: Option<&Domain>) -> Hooked {
        match (op, domain) {
            (StoreOp::Update, Some(domain)) if domain.name.as_str() == self.0 => {
                Hooked::Fail(StoreError::TooLarge("injected".into()))
            }
            _ => Hooked::Proceed,
        }
    }
}

struct Recorder {
    app: App,
    store: Arc<DynamoDbStore>,
    dynamodb: RequestCounter,
    identities: Arc<RecordingIdentities>,
    _dns: TestDnsServer,
}

impl Recorder {
    async fn new() -> Self {
        let dynamodb = RequestCounter::new();
        let client = dynamodb_client(&moto_endpoint(), &dynamodb);
        let table = unique_table_name("iam");
        create_table(&client, &table).await.expect("create table");
        let store = Arc::new(DynamoDbStore::new(client.clone(), table.clone()));
        let identities = Arc::new(RecordingIdentities {
            inner: LocalIdentities::new(),
            actions: Mutex::new(BTreeSet::new()),
            behaviour: Mutex::new(SesBehaviour::Normal),
            store: DynamoDbStore::new(
                dynamodb_client(&moto_endpoint(), &RequestCounter::new()),
                table,
            ),
        });
        let dns = TestDnsServer::start(&[("example.com", "")]).await;
        let app = App::new(
            store.clone(),
            identities.clone(),
            DnsChecker::with_nameservers(&[dns.address()])
                .expect("resolver")
                .into(),
            "us-east-2",
        )
        .with_manual_check_interval(std::time::Duration::ZERO)
        // As deployed: SES calls take turns from the shared budget (high here,
        // so the recording does not wait).
        .with_ses_rate(1000);
        Self {
            app,
            store,
            dynamodb,
            identities,
            _dns: dns,
        }
    }

    fn ses(&self, behaviour: SesBehaviour) {
        *self.identities.behaviour.lock().expect("lock") = behaviour;
    }

    /// Starts recording one function's actions, from its start-up (every Lambda
    /// warms its DynamoDB connection up then).
    async fn start(&self) {
        self.dynamodb.reset();
        self.identities.actions.lock().expect("lock").clear();
        self.ses(SesBehaviour::Normal);
        self.store.warm_up().await;
    }

    fn recorded(&self) -> BTreeSet<String> {
        let mut actions = self.dynamodb.iam_actions();
        actions.extend(
            self.identities
                .actions
                .lock()
                .expect("lock")
                .iter()
                .cloned(),
        );
        actions
    }

    /// Stores a domain the way a create that failed half-way leaves it.
    async fn leftover(&self, name: &str, age_seconds: i64) {
        let created = Timestamp::from(chrono::Utc::now() - chrono::Duration::seconds(age_seconds));
        let domain = Domain::new("org_123", DomainName::parse(name).expect("valid"), created);
        self.store
            .insert(&domain, usize::MAX)
            .await
            .expect("insert");
    }

    /// Sets up outside any recording, then starts recording.
    async fn prepare(&self, setup: impl std::future::Future<Output = ()>) -> BTreeSet<String> {
        let before = self.recorded();
        setup.await;
        self.start().await;
        before
    }
}

/// Creates `name` with the MAIL FROM subdomain `send`, makes SES forget it (a
/// change that reached the table but not SES) and publishes all eight records:
/// the next check that reads SES tells it again.
async fn mail_from_not_in_ses(r: &Recorder, name: &str) {
    r.ses(SesBehaviour::Normal);
    let reply = create(name)
        .body(&serde_json::json!({ "name": name, "mail_from_subdomain": "send" }).to_string())
        .send(&r.app)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let parsed = DomainName::parse(name).expect("valid");
    r.identities
        .inner
        .set_mail_from(&parsed, None)
        .await
        .expect("forgotten");
    let tokens = crate::common::tokens_of(&reply.body);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let prefix = name.trim_end_matches(".example.com");
    r._dns
        .publish(
            0,
            &format!(
                "{}{}",
                test_support::dns::all_records_zone(prefix, &tokens),
                test_support::dns::mail_from_zone(prefix, "send")
            ),
        )
        .await;
}

async fn create_ok(app: &App, name: &str) {
    assert_eq!(
        create(name).send(app).await.status,
        StatusCode::CREATED,
        "{name}"
    );
}

/// Every path of every function, recorded.
async fn record_all() -> BTreeMap<&'static str, BTreeSet<String>> {
    let r = Recorder::new().await;
    let app = &r.app;
    let mut recorded = BTreeMap::new();

    // create-domain: success, SES failing (cleanup and release), a leftover
    // identity (adopted), a name taken (the leftover check), a leftover resumed.
    r.start().await;
    create_ok(app, "c1.example.com").await;
    r.ses(SesBehaviour::CreateFails);
    assert_eq!(
        create("c2.example.com").send(app).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    r.ses(SesBehaviour::AlreadyExists);
    create_ok(app, "c3.example.com").await;
    r.ses(SesBehaviour::Normal);
    assert_eq!(
        create("c1.example.com").send(app).await.status,
        StatusCode::CONFLICT
    );
    // An identity made outside the API (409, left alone), and one this deployment
    // made for another organization (re-created).
    let foreign = DomainName::parse("c5.example.com").expect("valid");
    r.identities
        .inner
        .insert(&foreign, None)
        .expect("foreign identity");
    assert_eq!(
        create("c5.example.com").send(app).await.status,
        StatusCode::CONFLICT
    );
    let orphan = DomainName::parse("c6.example.com").expect("valid");
    r.identities
        .inner
        .insert(&orphan, Some(app.identity_owner("org_gone")))
        .expect("orphan identity");
    create_ok(app, "c6.example.com").await;
    let mut create_actions = r.recorded();
    r.prepare(r.leftover("c4.example.com", 60)).await;
    create_ok(app, "c4.example.com").await;
    create_actions.extend(r.recorded());
    // With a MAIL FROM domain: SES is told.
    let reply = create("c7.example.com")
        .body(r#"{"name": "c7.example.com", "mail_from_subdomain": "send"}"#)
        .send(app)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    create_actions.extend(r.recorded());
    // Another organization's failed domain: its name is taken over.
    r.prepare(async {
        create_ok(app, "c8.example.com").await;
        let name = DomainName::parse("c8.example.com").expect("valid");
        let mut failed = r
            .store
            .get("org_123", &name)
            .await
            .expect("get")
            .expect("c8");
        failed.status = shared::model::DomainStatus::Failed;
        r.store.update(&mut failed).await.expect("failed");
    })
    .await;
    let reply = create("c8.example.com").org("org_b").send(app).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    create_actions.extend(r.recorded());
    recorded.insert("create-domain", create_actions);

    // Claims by org_b of names org_123 holds.
    r.prepare(async {
        create_ok(app, "k1.example.com").await;
        create_ok(app, "k2.example.com").await;
    })
    .await;
    for name in ["k1.example.com", "k2.example.com", "k1.example.com"] {
        let reply = Call::new(Endpoint::CreateClaim)
            .body(&serde_json::json!({ "name": name }).to_string())
            .org("org_b")
            .send(app)
            .await;
        assert!(reply.status.is_success(), "{reply:?}");
    }
    recorded.insert("create-domain-claim", r.recorded());
    r.start().await;
    let listed = Call::new(Endpoint::ListClaims).org("org_b").send(app).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(2), "{listed:?}");
    recorded.insert("list-domain-claims", r.recorded());
    r.start().await;
    let reply = Call::new(Endpoint::GetClaim)
        .domain("k1.example.com")
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    recorded.insert("get-domain-claim", r.recorded());
    // verify: not proven; proven (the transfer and a new identity); proven while
    // SES fails (the transfer only), then again (the identity made afterwards).
    r.start().await;
    let mut verify_claim_actions = BTreeSet::new();
    for (name, label) in [("k1.example.com", "k1"), ("k2.example.com", "k2")] {
        let pending = Call::new(Endpoint::VerifyClaim)
            .domain(name)
            .org("org_b")
            .send(app)
            .await;
        assert_eq!(pending.body["status"], "pending", "{pending:?}");
        let value = pending.body["record"]["value"]
            .as_str()
            .expect("value")
            .to_string();
        r._dns
            .publish(
                0,
                &format!("_domains-claim.{label} 300 IN TXT \"{value}\"\n"),
            )
            .await;
    }
    let done = Call::new(Endpoint::VerifyClaim)
        .domain("k1.example.com")
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(done.body["status"], "completed", "{done:?}");
    r.ses(SesBehaviour::CreateFails);
    let failed = Call::new(Endpoint::VerifyClaim)
        .domain("k2.example.com")
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{failed:?}");
    r.ses(SesBehaviour::Normal);
    let finished = Call::new(Endpoint::VerifyClaim)
        .domain("k2.example.com")
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(
        finished.body["domain"]["records"].as_array().map(Vec::len),
        Some(6),
        "{finished:?}"
    );
    verify_claim_actions.extend(r.recorded());
    recorded.insert("verify-domain-claim", verify_claim_actions);
    // A completed claim is read with the domain it made.
    r.start().await;
    let completed = Call::new(Endpoint::GetClaim)
        .domain("k2.example.com")
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(
        completed.body["domain"]["name"], "k2.example.com",
        "{completed:?}"
    );
    if let Some(pending_get) = recorded.get_mut("get-domain-claim") {
        pending_get.extend(r.recorded());
    }
    r.start().await;
    let reply = Call::new(Endpoint::DeleteClaim)
        .domain("k1.example.com")
        .org("org_b")
        .send(app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    recorded.insert("delete-domain-claim", r.recorded());

    r.start().await;
    assert_eq!(
        Call::new(Endpoint::List).send(app).await.status,
        StatusCode::OK
    );
    recorded.insert("list-domains", r.recorded());

    r.start().await;
    assert_eq!(
        Call::new(Endpoint::Get)
            .domain("c1.example.com")
            .send(app)
            .await
            .status,
        StatusCode::OK
    );
    recorded.insert("get-domain", r.recorded());

    // dns-records and verify: tokens stored; tokens missing and the identity gone
    // (recreated); the domain deleted while that happens (identity taken back).
    for (function, endpoint) in [
        ("get-dns-records", Endpoint::DnsRecords),
        ("verify-domain", Endpoint::Verify),
    ] {
        let mut actions = BTreeSet::new();
        r.start().await;
        assert_eq!(
            Call::new(endpoint)
                .domain("c1.example.com")
                .send(app)
                .await
                .status,
            StatusCode::OK
        );
        actions.extend(r.recorded());
        let repaired = format!("{function}-repair.example.com");
        r.prepare(r.leftover(&repaired, 60)).await;
        assert_eq!(
            Call::new(endpoint).domain(&repaired).send(app).await.status,
            StatusCode::OK
        );
        actions.extend(r.recorded());
        // Another organization's identity left under the name: re-created.
        let orphaned = format!("{function}-orphan.example.com");
        r.prepare(async {
            r.leftover(&orphaned, 60).await;
            r.identities
                .inner
                .insert(
                    &DomainName::parse(&orphaned).expect("valid"),
                    Some(app.identity_owner("org_gone")),
                )
                .expect("orphan");
        })
        .await;
        assert_eq!(
            Call::new(endpoint).domain(&orphaned).send(app).await.status,
            StatusCode::OK
        );
        actions.extend(r.recorded());
        let raced = format!("{function}-race.example.com");
        r.prepare(r.leftover(&raced, 60)).await;
        r.ses(SesBehaviour::DomainDeletedDuringCreate);
        let _ = Call::new(endpoint).domain(&raced).send(app).await;
        actions.extend(r.recorded());
        recorded.insert(function, actions);
    }
    // verify: SES told the MAIL FROM domain it does not hold.
    r.prepare(mail_from_not_in_ses(&r, "verify-told.example.com"))
        .await;
    let reply = Call::new(Endpoint::Verify)
        .domain("verify-told.example.com")
        .send(app)
        .await;
    assert_eq!(
        reply.body["ses"]["mail_from_status"], "SUCCESS",
        "{reply:?}"
    );
    if let Some(actions) = recorded.get_mut("verify-domain") {
        actions.extend(r.recorded());
    }

    // update-domain: set and removed on a domain with its identity; set on a
    // domain a create left half-done (nothing to tell SES yet).
    r.start().await;
    for body in [
        r#"{"mail_from_subdomain": "send"}"#,
        r#"{"mail_from_subdomain": null}"#,
    ] {
        let reply = Call::new(Endpoint::Update)
            .domain("c1.example.com")
            .body(body)
            .send(app)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let mut update_actions = r.recorded();
    r.prepare(r.leftover("u-half.example.com", 60)).await;
    let reply = Call::new(Endpoint::Update)
        .domain("u-half.example.com")
        .send(app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    update_actions.extend(r.recorded());
    recorded.insert("update-domain", update_actions);

    r.start().await;
    assert_eq!(
        Call::new(Endpoint::Delete)
            .domain("c1.example.com")
            .send(app)
            .await
            .status,
        StatusCode::OK
    );
    recorded.insert("delete-domain", r.recorded());

    r.start().await;
    let key = shared::keys::NewApiKey::generate("org_123", Timestamp::now());
    let _ = shared::authorizer::decide(r.store.as_ref(), Some(&format!("Bearer {}", key.secret)))
        .await
        .expect("decides");
    recorded.insert("authorizer", r.recorded());

    // reverify-pending: domains due and checked; one whose write fails is moved on
    // in the schedule by a small write of its own; one whose records are all in
    // DNS has SES's view read.
    let later = Timestamp::from(chrono::Utc::now() + chrono::Duration::minutes(10));
    let c4 = r
        .store
        .get(
            "org_123",
            &DomainName::parse("c4.example.com").expect("valid"),
        )
        .await
        .expect("get")
        .expect("c4 is there");
    let tokens: Vec<&str> = c4.dkim_tokens.iter().map(String::as_str).collect();
    r._dns
        .publish(0, &test_support::dns::all_records_zone("c4", &tokens))
        .await;
    mail_from_not_in_ses(&r, "s-told.example.com").await;
    r.start().await;
    let scheduler_app = App::new(
        Arc::new(HookedStore {
            inner: r.store.clone(),
            hook: UpdatesFailFor("c3.example.com"),
        }),
        r.identities.clone(),
        DnsChecker::with_nameservers(&[r._dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
    .with_ses_rate(1000);
    let summary = shared::scheduler::run(
        &scheduler_app,
        later,
        shared::scheduler::RunOptions::default(),
        &|| false,
    )
    .await
    .expect("run");
    assert!(summary.checked > 0 && summary.errors == 1, "{summary:?}");
    // With a fan-out, the tick also puts the other workers' tasks on its bus.
    let tasks_bus = unique_table_name("reverify-tasks");
    test_support::eventbridge_client(&moto_endpoint(), &RequestCounter::new())
        .create_event_bus()
        .name(&tasks_bus)
        .send()
        .await
        .expect("bus");
    let tasks = RequestCounter::new();
    let fanout = shared::fanout::Fanout::new(
        3,
        Box::new(shared::fanout::EventBridgeTasks::new(
            test_support::eventbridge_client(&moto_endpoint(), &tasks),
            tasks_bus,
        )),
    )
    .expect("fan-out");
    fanout.start_others().await.expect("tasks sent");
    let mut reverify = r.recorded();
    reverify.extend(tasks.iam_actions());
    recorded.insert("reverify-pending", reverify);

    // publish-events: a stream batch onto a bus (made outside the recording).
    let bus = unique_table_name("bus");
    test_support::eventbridge_client(&moto_endpoint(), &RequestCounter::new())
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("bus");
    let events = RequestCounter::new();
    let sink = shared::publishing::EventBridgeSink::new(
        test_support::eventbridge_client(&moto_endpoint(), &events),
        bus,
    );
    let batch = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/publish-events.json"
        ))
        .expect("fixture"),
    )
    .expect("a stream batch");
    let response = shared::publishing::publish_stream_batch(&sink, &batch).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    recorded.insert("publish-events", events.iam_actions());
    recorded
}

fn granted_by_template() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template");
    let template: Yaml = serde_norway::from_str(&text).expect("parses");
    let mut granted = BTreeMap::new();
    for (_, resource) in template["Resources"].as_mapping().expect("resources") {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("binary")
            .to_string();
        let actions: BTreeSet<String> = resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
            .flat_map(|s| s["Action"].as_sequence().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        granted.insert(binary, actions);
    }
    granted
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn policies_grant_exactly_the_actions_the_code_performs() {
    let performed = record_all().await;
    let granted = granted_by_template();
    assert_eq!(
        granted.keys().map(String::as_str).collect::<Vec<_>>(),
        performed.keys().copied().collect::<Vec<_>>(),
        "every function is recorded"
    );
    for (function, actions) in &performed {
        assert_eq!(
            &granted[*function], actions,
            "{function}: template grants (left) vs code performs (right)"
        );
    }
}

/// Every statement that lets a function create, delete or change SES identities
/// is conditioned on this deployment's tag: creating untagged identities, or
/// deleting or changing any identity this deployment did not make, is refused by
/// IAM itself.
#[test]
fn ses_writes_are_conditioned_on_the_deployment_tag() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template");
    let template: Yaml = serde_norway::from_str(&text).expect("parses");
    let mut checked = 0;
    for (_, resource) in template["Resources"].as_mapping().expect("resources") {
        for statement in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
        {
            let actions: Vec<&str> = statement["Action"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .collect();
            let key = if actions.contains(&"ses:DeleteEmailIdentity")
                || actions.contains(&"ses:PutEmailIdentityMailFromAttributes")
            {
                "aws:ResourceTag/domains-api:deployment"
            } else if actions.contains(&"ses:CreateEmailIdentity")
                || actions.contains(&"ses:TagResource")
            {
                "aws:RequestTag/domains-api:deployment"
            } else {
                continue;
            };
            let refers_to_table = match &statement["Condition"]["StringEquals"][key] {
                Yaml::Tagged(tagged) => tagged.tag == "Ref" && tagged.value == "DomainsTable",
                _ => false,
            };
            assert!(
                refers_to_table,
                "{actions:?} must be conditioned on {key} = !Ref DomainsTable: {statement:?}"
            );
            if actions.contains(&"ses:TagResource") || actions.contains(&"ses:UntagResource") {
                // Also on the tag the identity already has, where it has one: no
                // function can retag another deployment's identity.
                let existing = &statement["Condition"]["StringEqualsIfExists"]["aws:ResourceTag/domains-api:deployment"];
                assert!(
                    matches!(existing, Yaml::Tagged(tagged) if tagged.tag == "Ref" && tagged.value == "DomainsTable"),
                    "{actions:?} must also be conditioned on the identity's own deployment tag: {statement:?}"
                );
            }
            assert_eq!(
                shared::identity::DEPLOYMENT_TAG,
                key.rsplit('/').next().expect("tag key"),
                "the condition names the tag the code writes"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 17,
        "create-domain, get-dns-records, verify-domain, verify-domain-claim (3 each: \
         create, tag, delete), delete-domain; \
         MAIL FROM: create-domain, verify-domain, update-domain, reverify-pending"
    );
}
