//! Calling the handlers with the API Gateway events in `events/`, as the Lambda
//! runtime hands them over, on either store.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::Request;
use lambda_http::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use shared::identity::{LocalIdentities, SesIdentities};
use shared::store::{DomainStore, DynamoDbStore, InMemoryStore, create_table};
use shared::verify::DnsChecker;
use shared::{App, handlers};
pub use test_support::{Hooked, HookedStore, StoreHook, StoreOp};
use test_support::{
    RequestCounter, TestDnsServer, dynamodb_client, moto_endpoint, sesv2_client, unique_table_name,
};

#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    Create,
    List,
    Get,
    DnsRecords,
    Verify,
    Update,
    Delete,
    CreateClaim,
    ListClaims,
    GetClaim,
    VerifyClaim,
    DeleteClaim,
}

impl Endpoint {
    pub fn event_file(self) -> &'static str {
        match self {
            Self::Create => "create-domain.json",
            Self::List => "list-domains.json",
            Self::Get => "get-domain.json",
            Self::DnsRecords => "get-dns-records.json",
            Self::Verify => "verify-domain.json",
            Self::Update => "update-domain.json",
            Self::Delete => "delete-domain.json",
            Self::CreateClaim => "create-domain-claim.json",
            Self::ListClaims => "list-domain-claims.json",
            Self::GetClaim => "get-domain-claim.json",
            Self::VerifyClaim => "verify-domain-claim.json",
            Self::DeleteClaim => "delete-domain-claim.json",
        }
    }
}

/// An `events/` fixture, adjusted, then parsed by lambda_http as the runtime does.
pub struct Call {
    pub endpoint: Endpoint,
    pub event: Value,
}

impl Call {
    pub fn new(endpoint: Endpoint) -> Self {
        let path = format!(
            "{}/../events/{}",
            env!("CARGO_MANIFEST_DIR"),
            endpoint.event_file()
        );
        let text = std::fs::read_to_string(&path).expect("event file");
        Self {
            endpoint,
            event: serde_json::from_str(&text).expect("event JSON"),
        }
    }

    pub fn org(mut self, org: &str) -> Self {
        self.event["requestContext"]["authorizer"]["lambda"]["organization_id"] = json!(org);
        self
    }

    pub fn without_authorizer(mut self) -> Self {
        if let Some(context) = self.event["requestContext"].as_object_mut() {
            context.remove("authorizer");
        }
        self
    }

    /// The `{domain}` path parameter (as API Gateway passes it: decoded, unnormalized).
    pub fn domain(mut self, domain: &str) -> Self {
        let suffix = match self.endpoint {
            Endpoint::DnsRecords => "/dns-records",
            Endpoint::Verify | Endpoint::VerifyClaim => "/verify",
            _ => "",
        };
        let collection = match self.endpoint {
            Endpoint::GetClaim | Endpoint::VerifyClaim | Endpoint::DeleteClaim => "domain-claims",
            _ => "domains",
        };
        self.event["pathParameters"]["domain"] = json!(domain);
        self.event["rawPath"] = json!(format!("/{collection}/{domain}{suffix}"));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.event["body"] = json!(body);
        self
    }

    pub fn query(self, key: &str, value: &str) -> Self {
        self.queries(&[(key, value)])
    }

    /// Query parameters, as API Gateway passes them (raw and parsed).
    pub fn queries(mut self, params: &[(&str, &str)]) -> Self {
        // API Gateway passes the raw query string percent-encoded.
        let encode = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let raw: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        for (key, value) in params {
            self.event["queryStringParameters"][*key] = json!(value);
        }
        self.event["rawQueryString"] = json!(raw.join("&"));
        self
    }

    /// Sends and returns the raw text body (for non-JSON answers).
    pub async fn send_text(self, app: &App) -> (StatusCode, HeaderMap, String) {
        let request = self.request();
        let response = handlers::get_dns_records(app, request)
            .await
            .expect("handlers always answer");
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        (response.status(), response.headers().clone(), text)
    }

    pub fn request(&self) -> Request {
        lambda_http::request::from_str(&self.event.to_string()).expect("valid API Gateway event")
    }

    pub async fn send(self, app: &App) -> Reply {
        let request = self.request();
        let response = match self.endpoint {
            Endpoint::Create => handlers::create_domain(app, request).await,
            Endpoint::List => handlers::list_domains(app, request).await,
            Endpoint::Get => handlers::get_domain(app, request).await,
            Endpoint::DnsRecords => handlers::get_dns_records(app, request).await,
            Endpoint::Verify => handlers::verify_domain(app, request).await,
            Endpoint::Update => handlers::update_domain(app, request).await,
            Endpoint::Delete => handlers::delete_domain(app, request).await,
            Endpoint::CreateClaim => handlers::create_domain_claim(app, request).await,
            Endpoint::ListClaims => handlers::list_domain_claims(app, request).await,
            Endpoint::GetClaim => handlers::get_domain_claim(app, request).await,
            Endpoint::VerifyClaim => handlers::verify_domain_claim(app, request).await,
            Endpoint::DeleteClaim => handlers::delete_domain_claim(app, request).await,
        }
        .expect("handlers always answer");
        let status = response.status();
        let headers = response.headers().clone();
        let body: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
        Reply {
            status,
            headers,
            body,
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.body["message"], message, "{self:?}");
        assert!(
            self.body["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{self:?}"
        );
        assert_eq!(self.headers["content-type"], "application/json");
    }
}

pub fn create(name: &str) -> Call {
    Call::new(Endpoint::Create).body(&json!({ "name": name }).to_string())
}

/// Every zone record a domain needs, for `example.com` with the given tokens.
pub fn correct_zone(tokens: &[String]) -> String {
    let mut zone = String::from(
        "@ 300 IN MX 10 inbound-smtp.us-east-2.amazonaws.com.\n\
         @ 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n\
         _dmarc 300 IN TXT \"v=DMARC1; p=reject;\"\n",
    );
    for token in tokens {
        zone.push_str(&format!(
            "{token}._domainkey 300 IN CNAME {token}.dkim.amazonses.com.\n"
        ));
    }
    zone
}

pub struct World {
    pub app: App,
    pub dns: TestDnsServer,
    pub identities: Arc<LocalIdentities>,
}

pub async fn in_memory_world() -> World {
    world_with(Arc::new(InMemoryStore::new())).await
}

pub async fn world_with(store: Arc<dyn DomainStore>) -> World {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let identities = Arc::new(LocalIdentities::new());
    let app = App::new(
        store,
        identities.clone(),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
    .with_manual_check_interval(std::time::Duration::ZERO);
    World {
        app,
        dns,
        identities,
    }
}

pub async fn dynamodb_world() -> (World, RequestCounter) {
    let counter = RequestCounter::new();
    let client = dynamodb_client(&moto_endpoint(), &counter);
    let table = unique_table_name("handlers");
    create_table(&client, &table).await.expect("create table");
    counter.reset();
    (
        world_with(Arc::new(DynamoDbStore::new(client, table))).await,
        counter,
    )
}

pub use test_support::tokens_of;

pub fn is_timestamp(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 24 && s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
    })
}

/// The app on DynamoDB and SESv2, both on the test server (moto, with SESv2 as SES
/// answers: tests/moto-ses); the deployment is named by its own table.
pub struct MotoWorld {
    pub app: App,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub ses_calls: RequestCounter,
    pub table: String,
    pub _dns: TestDnsServer,
}

pub async fn moto_world() -> MotoWorld {
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
    )
    .with_manual_check_interval(std::time::Duration::ZERO)
    .with_deployment(table.clone());
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
    pub async fn items(&self) -> Vec<HashMap<String, AttributeValue>> {
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

    pub async fn count_items(&self, name: &str) -> (usize, usize) {
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
        // A domain is two items; a claimed mark (no domain) has no schedule item.
        let live = items
            .iter()
            .filter(|i| {
                key(i, "sk") == format!("DOMAIN#{name}") && !i.contains_key("claimed_domain_id")
            })
            .count();
        let schedules = items
            .iter()
            .filter(|i| key(i, "sk") == format!("DOMAIN#{name}#SCHEDULE"))
            .count();
        assert_eq!(
            schedules, live,
            "{name}: one schedule item for each domain item, none left behind"
        );
        let claims = items
            .iter()
            .filter(|i| key(i, "pk") == format!("NAME#{name}"))
            .count();
        (domains, claims)
    }

    pub async fn identities(&self) -> Vec<String> {
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

/// An SES identity as the test server holds it: its tokens and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenIdentity {
    pub tokens: Vec<String>,
    pub tags: Vec<(String, String)>,
}

impl MotoWorld {
    /// The name's identity, read with the SDK (not through the API).
    pub async fn identity(&self, name: &str) -> Option<SeenIdentity> {
        let output = self
            .ses
            .get_email_identity()
            .email_identity(name)
            .send()
            .await
            .ok()?;
        let mut tags: Vec<(String, String)> = output
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        Some(SeenIdentity {
            tokens: output
                .dkim_attributes()
                .map(|d| d.tokens().to_vec())
                .unwrap_or_default(),
            tags,
        })
    }

    /// Makes an identity as someone other than the API would, with these tags.
    pub async fn make_identity(&self, name: &str, tags: &[(&str, &str)]) -> SeenIdentity {
        let tags = tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_sesv2::types::Tag::builder()
                    .key(*k)
                    .value(*v)
                    .build()
                    .expect("tag")
            })
            .collect();
        self.ses
            .create_email_identity()
            .email_identity(name)
            .set_tags(Some(tags))
            .send()
            .await
            .expect("identity made outside the API");
        self.identity(name).await.expect("just made")
    }

    /// The tags the API writes for `organization_id` in this deployment.
    pub fn tags_for(&self, organization_id: &str) -> Vec<(String, String)> {
        let owner = self.app.identity_owner(organization_id);
        let mut tags: Vec<(String, String)> = owner
            .tags()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tags.sort();
        tags
    }
}

/// The SDK configuration of every mocked AWS client: no network (aws-smithy-mocks'
/// HTTP client), no retries (each rule sees exactly the requests the code makes),
/// fixed region and credentials. `rules` answer the requests, in `mode`.
pub fn mocked_sdk(
    rules: &[&aws_smithy_mocks::Rule],
    mode: aws_smithy_mocks::RuleMode,
) -> (
    aws_config::SdkConfig,
    aws_smithy_mocks::MockResponseInterceptor,
) {
    use aws_config::{BehaviorVersion, Region};
    let interceptor = rules.iter().fold(
        aws_smithy_mocks::MockResponseInterceptor::new().rule_mode(mode),
        |interceptor, rule| interceptor.with_rule(rule),
    );
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-2"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"),
        ))
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .build();
    (sdk, interceptor)
}
