//! The clients a handler needs, built once per process.

use std::sync::Arc;

use aws_sdk_dynamodb::config::ProvideCredentials;

use crate::config::{Config, ConfigError};
use crate::identity::{IdentityProvider, SesIdentities};
use crate::store::{DomainStore, DynamoDbStore};
use crate::verify::{DnsChecker, ResolverSetupError};

pub struct App {
    pub store: Arc<dyn DomainStore>,
    pub identities: Arc<dyn IdentityProvider>,
    pub dns: Arc<DnsChecker>,
    /// SES receiving region for the inbound MX host.
    pub receiving_region: String,
}

/// Why a process could not start. Its Debug form is its message, so a `main`
/// that returns it prints a readable line.
#[derive(thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Resolver(#[from] ResolverSetupError),
}

impl std::fmt::Debug for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl App {
    /// The deployed wiring: DynamoDB, SESv2 and DNS, configured from the environment
    /// and the standard AWS configuration chain.
    /// Warmed up: see `DynamoDbStore::warm_up`.
    pub async fn from_env() -> Result<Self, StartupError> {
        let (app, store) = Self::on_aws(&Config::from_env()?).await?;
        store.warm_up().await;
        Ok(app)
    }

    /// The app on DynamoDB, SESv2 and DNS, and its DynamoDB store (which also holds
    /// the API keys).
    pub async fn on_aws(config: &Config) -> Result<(Self, Arc<DynamoDbStore>), StartupError> {
        let sdk = load_sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let ses = aws_sdk_sesv2::Client::new(&sdk);
        let store = Arc::new(DynamoDbStore::new(dynamodb, config.table_name.clone()));
        let app = Self {
            store: store.clone(),
            identities: Arc::new(SesIdentities::new(ses)),
            dns: Arc::new(dns_checker(config.dns_nameservers.as_deref())?),
            receiving_region: config.receiving_region.clone(),
        };
        Ok((app, store))
    }
}

/// The system resolver, or only the given servers.
pub fn dns_checker(
    nameservers: Option<&[std::net::SocketAddr]>,
) -> Result<DnsChecker, ResolverSetupError> {
    match nameservers {
        Some(servers) => DnsChecker::with_nameservers(servers),
        None => DnsChecker::system(),
    }
}

/// The key store alone (the authorizer needs nothing else): DynamoDB, `TABLE_NAME`.
pub async fn key_store_from_env() -> Result<DynamoDbStore, StartupError> {
    let config = Config::from_env()?;
    let sdk = load_sdk_config().await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name);
    store.warm_up().await;
    Ok(store)
}

/// The HTTPS client of every AWS SDK client: rustls with ring, which makes much
/// smaller binaries than the SDK's default (aws-lc).
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The AWS configuration (standard chain, our HTTPS client), with credentials
/// resolved now (at start-up) rather than by the first request.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await;
    if let Some(credentials) = sdk.credentials_provider()
        && let Err(error) = credentials.provide_credentials().await
    {
        tracing::warn!(%error, "AWS credentials could not be resolved at start-up");
    }
    sdk
}
