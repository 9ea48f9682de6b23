//! Every file in `events/` (what `sam local invoke -e` and `cargo lambda invoke`
//! take) runs through the handler of the function it is for, so none goes stale.

use std::collections::BTreeSet;
use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use shared::authorizer::authorize;
use shared::identity::LocalIdentities;
use shared::keys::{ApiKeyRecord, hash_key};
use shared::lambda_events::ApiGatewayV2CustomAuthorizerV2Request;
use shared::store::{InMemoryStore, KeyStore};
use shared::verify::DnsChecker;
use shared::{App, Timestamp, handlers};
use test_support::TestDnsServer;

/// The key in `authorizer-valid-key.json`.
const EXAMPLE_KEY: &str = "dk_Ex4mpleKeyF0rSamLocalInvokeOnly000000000";

fn events_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(events_dir().join(file)).expect("event file")
}

async fn http(app: &App, file: &str) -> (StatusCode, Value) {
    let request = lambda_http::request::from_str(&read(file)).expect("valid API Gateway event");
    let response = match file {
        "create-domain.json" => handlers::create_domain(app, request).await,
        "list-domains.json" => handlers::list_domains(app, request).await,
        "get-domain.json" => handlers::get_domain(app, request).await,
        "get-dns-records.json" => handlers::get_dns_records(app, request).await,
        "verify-domain.json" => handlers::verify_domain(app, request).await,
        "update-domain.json" => handlers::update_domain(app, request).await,
        "delete-domain.json" => handlers::delete_domain(app, request).await,
        "create-domain-claim.json" => handlers::create_domain_claim(app, request).await,
        "list-domain-claims.json" => handlers::list_domain_claims(app, request).await,
        "get-domain-claim.json" => handlers::get_domain_claim(app, request).await,
        "verify-domain-claim.json" => handlers::verify_domain_claim(app, request).await,
        "delete-domain-claim.json" => handlers::delete_domain_claim(app, request).await,
        other => panic!("no handler for {other}"),
    }
    .expect("handlers always answer");
    let body = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
    (response.status(), body)
}

/// The events put, by type.
#[derive(Default)]
struct Published(std::sync::Mutex<Vec<&'static str>>);

#[async_trait::async_trait]
impl shared::publishing::EventSink for Published {
    async fn put(&self, events: &[shared::events::DomainEvent]) -> Vec<Option<String>> {
        let mut put = self.0.lock().expect("lock");
        put.extend(events.iter().map(|e| e.detail_type));
        vec![None; events.len()]
    }
}

async fn authorizer(keys: &dyn KeyStore, file: &str) -> Value {
    let event: ApiGatewayV2CustomAuthorizerV2Request =
        serde_json::from_str(&read(file)).expect("valid authorizer event");
    let response = authorize(keys, &event).await.expect("authorizer answers");
    serde_json::to_value(response).expect("serializes")
}

#[tokio::test]
async fn every_event_file_runs_through_its_handler() {
    // Run in an order that makes each succeed: create before the rest, delete last.
    let plan = [
        "authorizer-valid-key.json",
        "authorizer-unknown-key.json",
        "authorizer-no-header.json",
        "create-domain.json",
        "list-domains.json",
        "get-domain.json",
        "get-dns-records.json",
        "verify-domain.json",
        "update-domain.json",
        // org_456 claims example.com, which org_123 holds.
        "create-domain-claim.json",
        "list-domain-claims.json",
        "get-domain-claim.json",
        "verify-domain-claim.json",
        "delete-domain-claim.json",
        "reverify-pending.json",
        "reverify-worker.json",
        "publish-events.json",
        "delete-domain.json",
    ];
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .expect("events dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    let planned: BTreeSet<String> = plan.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, planned, "every events/ file must be run here");

    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let store = Arc::new(InMemoryStore::new());
    let example_key = ApiKeyRecord {
        key_id: "key_example".into(),
        organization_id: "org_123".into(),
        hint: "dk_Ex4m…".into(),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    store
        .put_key(&example_key, &hash_key(EXAMPLE_KEY))
        .await
        .expect("put key");
    let app = App::new(
        store.clone(),
        Arc::new(LocalIdentities::new()),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );

    for file in plan {
        match file {
            "authorizer-valid-key.json" => {
                let answer = authorizer(store.as_ref(), file).await;
                assert_eq!(answer["isAuthorized"], true, "{answer}");
                assert_eq!(answer["context"]["organization_id"], "org_123");
            }
            "authorizer-unknown-key.json" | "authorizer-no-header.json" => {
                let answer = authorizer(store.as_ref(), file).await;
                assert_eq!(answer["isAuthorized"], false, "{file}: {answer}");
            }
            "reverify-pending.json" => {
                let payload: Value = serde_json::from_str(&read(file)).expect("JSON");
                let summary = handlers::reverify_pending(
                    &app,
                    None,
                    LambdaEvent::new(payload, Context::default()),
                )
                .await
                .expect("scheduled run");
                // The domain was just verified and then given a MAIL FROM domain:
                // its next check is a minute away, so a run now has nothing due.
                assert_eq!(summary, shared::scheduler::Summary::default());
            }
            "reverify-worker.json" => {
                let payload: Value = serde_json::from_str(&read(file)).expect("JSON");
                assert_eq!(
                    shared::fanout::invocation_of(&payload),
                    Ok(shared::fanout::Invocation::Worker(
                        shared::store::DueSlice::new(1, 4).expect("slice")
                    ))
                );
                let summary = handlers::reverify_pending(
                    &app,
                    None,
                    LambdaEvent::new(payload, Context::default()),
                )
                .await
                .expect("a worker's run");
                assert_eq!(summary, shared::scheduler::Summary::default());
            }
            "publish-events.json" => {
                let batch = serde_json::from_str(&read(file)).expect("a stream batch");
                let sink = Published::default();
                let response =
                    handlers::publish_events(&sink, LambdaEvent::new(batch, Context::default()))
                        .await
                        .expect("answers");
                assert!(response.batch_item_failures.is_empty());
                assert_eq!(
                    *sink.0.lock().expect("lock"),
                    ["domain.created", "domain.verified", "domain.deleted"]
                );
            }
            "create-domain.json" => {
                let (status, body) = http(&app, file).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                assert_eq!(body["organization_id"], "org_123");
            }
            "create-domain-claim.json" => {
                let (status, body) = http(&app, file).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                assert_eq!(body["status"], "pending");
                assert_eq!(body["record"]["name"], "_domains-claim.example.com");
            }
            "verify-domain-claim.json" => {
                // The proof is not published: still pending, saying what to publish.
                let (status, body) = http(&app, file).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["status"], "pending");
                assert!(
                    body["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("_domains-claim.example.com")),
                    "{body}"
                );
            }
            "update-domain.json" => {
                let (status, body) = http(&app, file).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["mail_from_subdomain"], "send");
                assert_eq!(body["records"].as_array().map(Vec::len), Some(8));
            }
            _ => {
                let (status, body) = http(&app, file).await;
                assert_eq!(status, StatusCode::OK, "{file}: {body}");
            }
        }
    }
}
