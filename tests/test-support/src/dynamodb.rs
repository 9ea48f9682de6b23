//! DynamoDB against the DynamoDB-API test server (moto_server), which the README
//! test command starts and names in `MOTO_ENDPOINT`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The test server's URL. Tests that need it fail (never skip) without it.
pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => panic!(
            "MOTO_ENDPOINT is not set: these tests need a DynamoDB-API server. \
             Run `scripts/test`, which installs and starts moto_server."
        ),
    }
}

/// An access key id that selects a fresh AWS account on the test server
/// (tests/moto-ses serves `MOTOACCT<12 digits>` in account `<12 digits>`): SES
/// identities are per account, so each test that makes them gets an SES of its own.
pub fn fresh_account() -> String {
    let digits = uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000;
    format!("MOTOACCT{digits:012}")
}

pub fn unique_table_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Counts the requests a client sends, by operation name (retries included).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    /// IAM actions the requests need (`dynamodb:PutItem` for a Put in a
    /// transaction, and so on).
    actions: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, operation: &str) -> usize {
        self.counts
            .lock()
            .expect("counter lock")
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.lock().expect("counter lock").values().sum()
    }

    /// All counts, sorted, for assertion messages.
    pub fn snapshot(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = self
            .counts
            .lock()
            .expect("counter lock")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        counts.sort();
        counts
    }

    pub fn reset(&self) {
        self.counts.lock().expect("counter lock").clear();
        self.actions.lock().expect("counter lock").clear();
    }

    /// The IAM actions the requests so far needed.
    pub fn iam_actions(&self) -> std::collections::BTreeSet<String> {
        self.actions.lock().expect("counter lock").clone()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (operation, service) = cfg
            .load::<Metadata>()
            .map(|m| (m.name().to_string(), m.service().to_ascii_lowercase()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let prefix = if service.contains("dynamo") {
            "dynamodb"
        } else if service.contains("eventbridge") {
            "events"
        } else {
            "ses"
        };
        let mut actions = self.actions.lock().expect("counter lock");
        if operation == "TransactWriteItems" {
            // IAM authorizes each item of a transaction by its own action.
            let body = context.request().body().bytes().unwrap_or_default();
            let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            for item in parsed["TransactItems"].as_array().into_iter().flatten() {
                for (kind, action) in [
                    ("Put", "PutItem"),
                    ("Delete", "DeleteItem"),
                    ("Update", "UpdateItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                ] {
                    if item.get(kind).is_some() {
                        actions.insert(format!("dynamodb:{action}"));
                    }
                }
            }
        } else {
            actions.insert(format!("{prefix}:{operation}"));
        }
        drop(actions);
        *self
            .counts
            .lock()
            .expect("counter lock")
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}

/// The HTTP client the service uses (rustls with ring), for the test clients.
/// The HTTPS client of the test SDK clients (rustls, ring), as the service's.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// A DynamoDB client for the test server, counting its requests.
pub fn dynamodb_client(endpoint: &str, counter: &RequestCounter) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-2"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(http_client())
        .interceptor(counter.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An SESv2 client for the test server (moto), counting its requests.
pub fn sesv2_client(endpoint: &str, counter: &RequestCounter) -> aws_sdk_sesv2::Client {
    sesv2_client_in(&fresh_account(), endpoint, counter)
}

/// An SESv2 client of the test server's account that `access_key` selects
/// (`fresh_account`).
pub fn sesv2_client_in(
    access_key: &str,
    endpoint: &str,
    counter: &RequestCounter,
) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("us-east-2"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            access_key, "test", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .http_client(http_client())
        .interceptor(counter.clone())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

/// An EventBridge client for the test server (moto), counting its requests.
pub fn eventbridge_client(endpoint: &str, counter: &RequestCounter) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-2"))
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .http_client(http_client())
        .interceptor(counter.clone())
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}
