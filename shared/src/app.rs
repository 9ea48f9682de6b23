//! The clients a handler needs, built once per process.

use std::sync::Arc;

use aws_sdk_dynamodb::config::ProvideCredentials;

use crate::config::{Config, ConfigError, EventBusSettings, ProcessSettings, TlsRoots};
use crate::identity::{IdentityProvider, MeasuredIdentities, SesIdentities};
use crate::metrics::Metrics;
use crate::store::{DomainStore, DynamoDbStore};
use crate::verify::{LazyDnsChecker, ResolverSetupError};

/// The clients and settings every handler needs, built once per process.
pub struct App {
    /// Domains (and, on DynamoDB, API keys).
    pub store: Arc<dyn DomainStore>,
    /// SES email identities (or the local stand-in).
    pub identities: Arc<dyn IdentityProvider>,
    /// The DNS checker verify and the scheduler use.
    pub dns: LazyDnsChecker,
    /// SES receiving region for the inbound MX host.
    pub receiving_region: String,
    /// The region SES sends from (the SES client's): the MAIL FROM domain's MX
    /// points to its feedback endpoint.
    pub sending_region: String,
    /// Names this deployment in the tags of the SES identities it creates (the
    /// table name), so it never touches identities it did not make.
    pub deployment: String,
    /// Domains one organization may hold at once.
    pub max_domains_per_organization: usize,
    /// SES identity reads per second a scheduled run makes at most (`None`: no
    /// limit, for the local stand-in; deployments read `SES_MAX_RPS`, default 1).
    pub ses_max_rps: Option<u32>,
    /// Where metrics go (off unless `METRICS_NAMESPACE` is set).
    pub metrics: Metrics,
    /// A domain (or claim) is checked by hand at most once in this long:
    /// `config::MANUAL_CHECK_INTERVAL` everywhere but in tests that verify the
    /// same domain again at once.
    pub manual_check_interval: std::time::Duration,
}

/// Why a process could not start. Its Debug form is its message, so a `main`
/// that returns it prints a readable line.
#[derive(thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    /// A setting is missing or malformed.
    Config(#[from] ConfigError),
    #[error("{0}")]
    /// The DNS resolver could not be set up.
    Resolver(#[from] ResolverSetupError),
}

impl std::fmt::Debug for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The clients a function calls on its main path, which start-up builds (the
/// DynamoDB store always); any other is built if and when a request needs it.
#[derive(Debug, Clone, Copy)]
pub struct StartupClients {
    /// Build the SES client at start-up.
    pub ses: bool,
    /// Build the DNS resolver at start-up.
    pub dns: bool,
}

impl StartupClients {
    /// Everything at start-up (the dev server, tests).
    pub const ALL: StartupClients = StartupClients {
        ses: true,
        dns: true,
    };
}

impl App {
    /// An app on these clients, named `deployment` "local", sending from the
    /// receiving region and with the default domain limit until set otherwise.
    pub fn new(
        store: Arc<dyn DomainStore>,
        identities: Arc<dyn IdentityProvider>,
        dns: LazyDnsChecker,
        receiving_region: impl Into<String>,
    ) -> Self {
        let receiving_region = receiving_region.into();
        Self {
            store,
            identities,
            dns,
            sending_region: receiving_region.clone(),
            receiving_region,
            deployment: "local".into(),
            max_domains_per_organization: crate::config::DEFAULT_MAX_DOMAINS_PER_ORGANIZATION,
            ses_max_rps: None,
            metrics: Metrics::off(),
            manual_check_interval: crate::config::MANUAL_CHECK_INTERVAL,
        }
    }

    /// Sets how often a domain may be checked by hand (tests that check the same
    /// domain again at once set zero).
    pub fn with_manual_check_interval(mut self, interval: std::time::Duration) -> Self {
        self.manual_check_interval = interval;
        self
    }

    /// Sends metrics to `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets how many SES identity reads per second a scheduled run makes at most.
    pub fn with_ses_rate(mut self, ses_max_rps: u32) -> Self {
        self.ses_max_rps = Some(ses_max_rps.max(1));
        self
    }

    /// Sets the region SES sends from (by default the receiving region).
    pub fn with_sending_region(mut self, sending_region: impl Into<String>) -> Self {
        self.sending_region = sending_region.into();
        self
    }

    /// Names the deployment in the tags of the identities it creates.
    pub fn with_deployment(mut self, deployment: impl Into<String>) -> Self {
        self.deployment = deployment.into();
        self
    }

    /// Sets how many domains one organization may hold.
    pub fn with_domain_limit(mut self, max_domains_per_organization: usize) -> Self {
        self.max_domains_per_organization = max_domains_per_organization;
        self
    }

    /// The owner tags of identities this deployment makes for `organization_id`
    /// (whose an identity is: `domains::provisioning::made_for`).
    pub fn identity_owner(&self, organization_id: &str) -> crate::identity::IdentityOwner {
        crate::identity::IdentityOwner::new(&self.deployment, organization_id)
    }

    /// The deployed wiring: DynamoDB, SESv2 and DNS, configured from the environment
    /// and the standard AWS configuration chain. Warmed up: see
    /// `DynamoDbStore::warm_up` and `Config::warm_up`.
    pub async fn from_env(uses: StartupClients) -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let metrics = started_metrics();
        let (app, store) = Self::on_aws(&config, uses).await?;
        // SES calls are measured where they are made: below every handler.
        let identities: Arc<dyn IdentityProvider> = Arc::new(MeasuredIdentities::new(
            app.identities.clone(),
            metrics.clone(),
        ));
        let app = Self {
            identities,
            ..app.with_metrics(metrics)
        };
        if config.warm_up {
            store.warm_up().await;
        }
        Ok(app)
    }

    /// The app on DynamoDB, SESv2 and DNS, and its DynamoDB store (which also holds
    /// the API keys).
    pub async fn on_aws(
        config: &Config,
        uses: StartupClients,
    ) -> Result<(Self, Arc<DynamoDbStore>), StartupError> {
        let sdk = load_sdk_config(config.tls_roots).await;
        // The SES client sends from the SDK's region.
        let sending_region = sdk.region().map(|region| region.to_string());
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let store = Arc::new(DynamoDbStore::new(dynamodb, config.table_name.clone()));
        let identities = if uses.ses {
            SesIdentities::new(aws_sdk_sesv2::Client::new(&sdk))
        } else {
            SesIdentities::on_first_use(sdk)
        };
        let dns = if uses.dns {
            LazyDnsChecker::prepared(config.dns.clone())?
        } else {
            LazyDnsChecker::on_first_use(config.dns.clone())
        };
        let app = Self::new(
            store.clone(),
            Arc::new(identities),
            dns,
            config.receiving_region.clone(),
        )
        .with_deployment(config.table_name.clone())
        .with_domain_limit(config.max_domains_per_organization)
        .with_ses_rate(config.ses_max_rps);
        let app = match sending_region {
            Some(region) => app.with_sending_region(region),
            None => app,
        };
        Ok((app, store))
    }
}

/// The key store alone (the authorizer needs nothing else): DynamoDB, `TABLE_NAME`.
pub async fn key_store_from_env() -> Result<DynamoDbStore, StartupError> {
    let config = Config::from_env()?;
    started_metrics();
    let sdk = load_sdk_config(config.tls_roots).await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name);
    if config.warm_up {
        store.warm_up().await;
    }
    Ok(store)
}

/// The event publisher's one client: EventBridge, on the bus `EVENT_BUS_NAME`.
pub async fn event_sink_from_env() -> Result<crate::publishing::EventBridgeSink, StartupError> {
    let settings = EventBusSettings::from_env()?;
    started_metrics();
    let sdk = load_sdk_config(settings.tls_roots).await;
    Ok(crate::publishing::EventBridgeSink::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        settings.bus_name,
    ))
}

/// The process's metrics (`METRICS_NAMESPACE`), its cold start counted.
fn started_metrics() -> Metrics {
    let process = ProcessSettings::from_env();
    let metrics = Metrics::for_namespace(process.metrics_namespace.as_deref());
    metrics.cold_start(&process.function_name);
    metrics
}

/// The roots of Amazon Trust Services, which sign the certificates of AWS's own
/// endpoints (DynamoDB, SES, STS among them).
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("../certs/amazon-trust-services.pem");

/// The HTTPS client of every AWS SDK client: rustls with ring, which makes much
/// smaller binaries than the SDK's default (aws-lc).
pub fn https_client(roots: TlsRoots) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let trust_store = match roots {
        TlsRoots::AmazonTrustServices => tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes()),
        TlsRoots::System => tls::TrustStore::default(),
    };
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        // build() cannot fail (it only stores the trust store); the default
        // context would trust the system's roots.
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust_store)
                .build()
                .unwrap_or_default(),
        )
        .build_https()
}

/// How long one attempt of an AWS SDK call may take before it is abandoned (and
/// retried): far above DynamoDB's and SES's milliseconds, far below any budget.
pub const SDK_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);
/// How long an AWS SDK call may take in all, retries included. A stalled DynamoDB
/// or SES is then the API's 503 with `Retry-After` well inside every function's
/// timeout, never a Lambda timeout (docs/operations.md has the table of budgets).
pub const SDK_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The deadlines of every AWS SDK call the functions make.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(SDK_ATTEMPT_TIMEOUT)
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .build()
}

/// The AWS configuration (standard chains, our HTTPS client, `sdk_timeouts`), with
/// credentials resolved now (at start-up) rather than by the first request.
pub async fn load_sdk_config(roots: TlsRoots) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client(roots))
        .timeout_config(sdk_timeouts());
    let chain = ProcessSettings::from_env();
    if let Some(region) = chain.region {
        loader = loader.region(aws_config::Region::new(region));
    }
    if chain.environment_credentials {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    let sdk = loader.load().await;
    if let Some(credentials) = sdk.credentials_provider()
        && let Err(error) = credentials.provide_credentials().await
    {
        tracing::warn!(%error, "AWS credentials could not be resolved at start-up");
    }
    sdk
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    /// SHA-256 fingerprints as published at https://www.amazontrust.com/repository/.
    const PUBLISHED: [(&str, &str); 5] = [
        (
            "Amazon Root CA 1",
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
        ),
        (
            "Amazon Root CA 2",
            "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
        ),
        (
            "Amazon Root CA 3",
            "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
        ),
        (
            "Amazon Root CA 4",
            "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
        ),
        (
            "Starfield Services Root Certificate Authority - G2",
            "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
        ),
    ];

    fn certificates(pem: &str) -> Vec<Vec<u8>> {
        pem.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let body: String = block
                    .split("-----END CERTIFICATE-----")
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .expect("base64 certificate")
            })
            .collect()
    }

    #[test]
    fn the_compiled_in_roots_are_amazons_published_five() {
        let fingerprints: Vec<String> = certificates(AMAZON_TRUST_SERVICES_ROOTS)
            .iter()
            .map(|der| hex::encode(Sha256::digest(der)))
            .collect();
        let published: Vec<String> = PUBLISHED.iter().map(|(_, f)| f.to_string()).collect();
        assert_eq!(fingerprints, published);
        for (name, _) in PUBLISHED {
            assert!(AMAZON_TRUST_SERVICES_ROOTS.contains(&format!("CN = {name}")));
        }
    }
}
