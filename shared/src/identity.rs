//! Email identities (SES Easy DKIM): the SESv2 adapter and a local stand-in.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::create_email_identity::CreateEmailIdentityError;
use aws_sdk_sesv2::operation::delete_email_identity::DeleteEmailIdentityError;
use aws_sdk_sesv2::operation::get_email_identity::GetEmailIdentityError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rand::Rng;

use crate::domain_name::DomainName;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("the identity already exists")]
    AlreadyExists,
    #[error("the identity does not exist")]
    NotFound,
    #[error("identity provider throttled: {0}")]
    Throttled(String),
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    #[error("identity provider error: {0}")]
    Other(String),
}

#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Creates the domain identity with Easy DKIM and returns its DKIM tokens
    /// (possibly none: SES may answer before it has made them).
    async fn create(&self, name: &DomainName) -> Result<Vec<String>, IdentityError>;

    /// The identity's current DKIM tokens.
    async fn dkim_tokens(&self, name: &DomainName) -> Result<Vec<String>, IdentityError>;

    /// Deletes the identity; one that does not exist counts as deleted.
    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError>;
}

pub struct SesIdentities {
    client: SesClient,
}

enum SesClient {
    Built(Client),
    /// Built on the first call: most functions call SES seldom or never, and
    /// building a client costs a cold start a fraction of a millisecond.
    OnFirstUse {
        sdk: Box<aws_config::SdkConfig>,
        client: OnceLock<Client>,
    },
}

impl SesIdentities {
    pub fn new(client: Client) -> Self {
        Self {
            client: SesClient::Built(client),
        }
    }

    /// SES identities whose client is built from `sdk` when first needed.
    pub fn on_first_use(sdk: aws_config::SdkConfig) -> Self {
        Self {
            client: SesClient::OnFirstUse {
                sdk: Box::new(sdk),
                client: OnceLock::new(),
            },
        }
    }

    fn client(&self) -> &Client {
        match &self.client {
            SesClient::Built(client) => client,
            SesClient::OnFirstUse { sdk, client } => client.get_or_init(|| Client::new(sdk)),
        }
    }
}

/// An SES answer the adapter treats specially.
#[derive(Clone, Copy)]
enum Known {
    AlreadyExists,
    NotFound,
    Throttled,
}

/// An operation's modeled errors, recognized by type: their metadata code is not
/// always set (errors built by hand or by mocks carry none).
trait KnownErrors {
    fn known(&self) -> Option<Known>;
}

impl KnownErrors for CreateEmailIdentityError {
    fn known(&self) -> Option<Known> {
        if self.is_already_exists_exception() {
            Some(Known::AlreadyExists)
        } else if self.is_too_many_requests_exception() {
            Some(Known::Throttled)
        } else {
            None
        }
    }
}

/// Get and delete share their modeled errors.
macro_rules! not_found_or_throttled {
    ($($error:ty),*) => {$(
        impl KnownErrors for $error {
            fn known(&self) -> Option<Known> {
                if self.is_not_found_exception() {
                    Some(Known::NotFound)
                } else if self.is_too_many_requests_exception() {
                    Some(Known::Throttled)
                } else {
                    None
                }
            }
        }
    )*};
}
not_found_or_throttled!(GetEmailIdentityError, DeleteEmailIdentityError);

/// Maps an SDK failure to what the caller can do about it.
fn classify<E>(operation: &str, error: SdkError<E, HttpResponse>) -> IdentityError
where
    E: KnownErrors + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = format!(
        "{operation}: {}",
        aws_sdk_sesv2::error::DisplayErrorContext(&error)
    );
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            IdentityError::Unavailable(detail)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match service.err().known() {
                Some(Known::AlreadyExists) => IdentityError::AlreadyExists,
                Some(Known::NotFound) => IdentityError::NotFound,
                Some(Known::Throttled) => IdentityError::Throttled(detail),
                None if status == 429 || service.err().code() == Some("Throttling") => {
                    IdentityError::Throttled(detail)
                }
                None if status >= 500 => IdentityError::Unavailable(detail),
                None => IdentityError::Other(detail),
            }
        }
        _ => IdentityError::Other(detail),
    }
}

#[async_trait]
impl IdentityProvider for SesIdentities {
    async fn create(&self, name: &DomainName) -> Result<Vec<String>, IdentityError> {
        let output = self
            .client()
            .create_email_identity()
            .email_identity(name.as_str())
            .send()
            .await
            .map_err(|e| classify("CreateEmailIdentity", e))?;
        Ok(output
            .dkim_attributes()
            .map(|dkim| dkim.tokens().to_vec())
            .unwrap_or_default())
    }

    async fn dkim_tokens(&self, name: &DomainName) -> Result<Vec<String>, IdentityError> {
        let output = self
            .client()
            .get_email_identity()
            .email_identity(name.as_str())
            .send()
            .await
            .map_err(|e| classify("GetEmailIdentity", e))?;
        Ok(output
            .dkim_attributes()
            .map(|dkim| dkim.tokens().to_vec())
            .unwrap_or_default())
    }

    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        match self
            .client()
            .delete_email_identity()
            .email_identity(name.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => match classify("DeleteEmailIdentity", error) {
                IdentityError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }
}

/// Identities kept in memory with SES-like tokens, for the dev server's embedded
/// default: no AWS needed. Behaves like SES (AlreadyExists, NotFound).
#[derive(Default)]
pub struct LocalIdentities {
    identities: Mutex<HashMap<DomainName, Vec<String>>>,
}

impl LocalIdentities {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<DomainName, Vec<String>>>, IdentityError> {
        self.identities
            .lock()
            .map_err(|_| IdentityError::Other("local identities lock poisoned".into()))
    }
}

/// 32 lowercase letters and digits, the shape of an SES Easy DKIM token.
pub fn random_dkim_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[async_trait]
impl IdentityProvider for LocalIdentities {
    async fn create(&self, name: &DomainName) -> Result<Vec<String>, IdentityError> {
        let mut identities = self.lock()?;
        if identities.contains_key(name) {
            return Err(IdentityError::AlreadyExists);
        }
        let tokens: Vec<String> = (0..3).map(|_| random_dkim_token()).collect();
        identities.insert(name.clone(), tokens.clone());
        Ok(tokens)
    }

    async fn dkim_tokens(&self, name: &DomainName) -> Result<Vec<String>, IdentityError> {
        self.lock()?
            .get(name)
            .cloned()
            .ok_or(IdentityError::NotFound)
    }

    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        self.lock()?.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tokens_look_like_ses_tokens() {
        let token = random_dkim_token();
        assert_eq!(token.len(), 32);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(token, random_dkim_token());
    }

    #[tokio::test]
    async fn local_identities_behave_like_ses() {
        let identities = LocalIdentities::new();
        let name = DomainName::parse("example.com").expect("valid");
        let tokens = identities.create(&name).await.expect("created");
        assert_eq!(tokens.len(), 3);
        assert_eq!(
            identities.create(&name).await,
            Err(IdentityError::AlreadyExists)
        );
        assert_eq!(identities.dkim_tokens(&name).await, Ok(tokens));
        identities.delete(&name).await.expect("deleted");
        identities
            .delete(&name)
            .await
            .expect("deleting again is fine");
        assert_eq!(
            identities.dkim_tokens(&name).await,
            Err(IdentityError::NotFound)
        );
    }
}
