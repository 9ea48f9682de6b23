//! Deadlines: a DynamoDB or SES that accepts connections and never answers is the
//! API's 503 with `Retry-After`, well inside the function's timeout, never a Lambda
//! timeout (which API Gateway would answer with its own bare 5xx). On a paused
//! clock: the SDK's own timers decide, at the deadlines the functions use.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use serde_norway::Value as Yaml;
use shared::App;
use shared::app::{SDK_OPERATION_TIMEOUT, sdk_timeouts};
use shared::identity::{LocalIdentities, SesIdentities};
use shared::store::{DynamoDbStore, InMemoryStore};
use shared::verify::DnsChecker;
use test_support::StalledServer;
use tokio::time::Instant;

use crate::common::{Call, Endpoint, create};

/// The API functions' timeout (template.yaml's `Globals`), in seconds.
fn function_timeout() -> std::time::Duration {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template");
    let template: Yaml = serde_norway::from_str(&text).expect("parses");
    let seconds = template["Globals"]["Function"]["Timeout"]
        .as_u64()
        .expect("a global timeout");
    std::time::Duration::from_secs(seconds)
}

fn app(
    store: Arc<dyn shared::store::DomainStore>,
    identities: Arc<dyn shared::identity::IdentityProvider>,
) -> App {
    App::new(
        store,
        identities,
        // DNS is not asked in these tests.
        DnsChecker::with_nameservers(&["127.0.0.1:9".parse().expect("address")])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
}

fn stalled_dynamodb(server: &StalledServer) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-2"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(server.url())
        .http_client(test_support::dynamodb::http_client())
        .timeout_config(sdk_timeouts())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

fn stalled_ses(server: &StalledServer) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("us-east-2"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(server.url())
        .http_client(test_support::dynamodb::http_client())
        .timeout_config(sdk_timeouts())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

#[tokio::test(start_paused = true)]
async fn a_stalled_dynamodb_is_a_503_within_the_deadline() {
    let server = StalledServer::start().await;
    let app = app(
        Arc::new(DynamoDbStore::new(
            stalled_dynamodb(&server),
            "domains".to_string(),
        )),
        Arc::new(LocalIdentities::new()),
    );
    for call in [
        Call::new(Endpoint::Get),
        Call::new(Endpoint::List),
        create("example.com"),
    ] {
        let started = Instant::now();
        let reply = call.send(&app).await;
        let took = started.elapsed();
        reply.assert_error(
            503,
            "A service this API depends on is unavailable; retry later",
        );
        assert_eq!(reply.headers["retry-after"], "1");
        assert!(
            took <= SDK_OPERATION_TIMEOUT + std::time::Duration::from_millis(100),
            "answered after {took:?}"
        );
        assert!(took < function_timeout());
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_ses_is_a_503_within_the_function_timeout() {
    let server = StalledServer::start().await;
    let app = app(
        Arc::new(InMemoryStore::new()),
        Arc::new(SesIdentities::new(stalled_ses(&server))),
    );
    let started = Instant::now();
    let reply = create("example.com").send(&app).await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.headers["retry-after"], "1");
    // CreateEmailIdentity times out, then reading what SES may have made anyway
    // (to clean it up) does too: two deadlines, inside the function's timeout.
    assert!(
        took <= 2 * SDK_OPERATION_TIMEOUT + std::time::Duration::from_millis(100),
        "answered after {took:?}"
    );
    assert!(took < function_timeout(), "answered after {took:?}");
}
