//! Email identities (SES Easy DKIM): the SESv2 adapter and a local stand-in.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::create_email_identity::CreateEmailIdentityError;
use aws_sdk_sesv2::operation::delete_email_identity::DeleteEmailIdentityError;
use aws_sdk_sesv2::operation::get_email_identity::GetEmailIdentityError;
use aws_sdk_sesv2::operation::put_email_identity_mail_from_attributes::PutEmailIdentityMailFromAttributesError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rand::Rng;

use aws_sdk_sesv2::types::{BehaviorOnMxFailure, DkimStatus, MailFromDomainStatus};

use crate::domain_name::DomainName;
use crate::model::SesStatus;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
/// What an identity operation can fail with.
pub enum IdentityError {
    #[error("the identity already exists")]
    /// An identity for the name exists already.
    AlreadyExists,
    #[error("the identity does not exist")]
    /// No identity for the name.
    NotFound,
    /// The account's identity quota is used up.
    #[error("identity limit reached: {0}")]
    LimitExceeded(String),
    #[error("identity provider throttled: {0}")]
    /// SES throttled the call; retry shortly.
    Throttled(String),
    #[error("identity provider unavailable: {0}")]
    /// SES failed or timed out; the call may or may not have taken effect.
    Unavailable(String),
    #[error("identity provider error: {0}")]
    /// Anything else (e.g. access denied).
    Other(String),
}

/// Tag keys every identity this API creates carries: which deployment (the table
/// name) and which organization it was made for.
pub const DEPLOYMENT_TAG: &str = "domains-api:deployment";
/// Tag key naming the organization an identity was made for.
pub const ORGANIZATION_TAG: &str = "domains-api:organization";

/// Whom an identity was made for, as its tags say.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentityOwner {
    /// The deployment's table name.
    pub deployment: String,
    /// The organization id as a tag value (`organization_tag_value`).
    pub organization: String,
}

impl IdentityOwner {
    /// The owner tags of an identity made by `deployment` for `organization_id`.
    pub fn new(deployment: &str, organization_id: &str) -> Self {
        Self {
            deployment: deployment.to_string(),
            organization: organization_tag_value(organization_id),
        }
    }

    /// The owner named by an identity's tags, if both tags are there.
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let (mut deployment, mut organization) = (None, None);
        for (key, value) in tags {
            match key {
                DEPLOYMENT_TAG => deployment = Some(value.to_string()),
                ORGANIZATION_TAG => organization = Some(value.to_string()),
                _ => {}
            }
        }
        Some(Self {
            deployment: deployment?,
            organization: organization?,
        })
    }

    /// The tags to create an identity with.
    pub fn tags(&self) -> [(&'static str, &str); 2] {
        [
            (DEPLOYMENT_TAG, self.deployment.as_str()),
            (ORGANIZATION_TAG, self.organization.as_str()),
        ]
    }
}

/// AWS tag values allow letters, digits, spaces and `_ . : / = + - @`, up to 256
/// characters; an organization id outside that is tagged by its SHA-256.
pub fn organization_tag_value(organization_id: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c);
    if !organization_id.is_empty()
        && organization_id.len() <= 200
        && organization_id.chars().all(allowed)
    {
        organization_id.to_string()
    } else {
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(organization_id.as_bytes()))
        )
    }
}

/// An identity as SES holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Easy DKIM tokens (possibly none: SES may answer before it has made them).
    pub tokens: Vec<String>,
    /// `None`: not tagged by this API (made by someone else).
    pub owner: Option<IdentityOwner>,
    /// SES's DKIM status; `None` from the local stand-in, which has no SES of its
    /// own: the domain's CNAMEs, as the project's DNS checker sees them, decide.
    pub dkim_status: Option<SesStatus>,
    /// The custom MAIL FROM domain SES holds for the identity, if any.
    pub mail_from_domain: Option<String>,
    /// SES's status of that MAIL FROM domain (`None` from the local stand-in, as
    /// for `dkim_status`, or when none is set).
    pub mail_from_status: Option<SesStatus>,
}

#[async_trait]
/// Email identities (SES Easy DKIM): made, read and removed by name.
pub trait IdentityProvider: Send + Sync {
    /// Creates the domain identity with Easy DKIM, tagged with its owner, and
    /// returns its DKIM tokens (possibly none).
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError>;

    /// The identity's DKIM tokens and owner tags.
    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError>;

    /// Deletes the identity; one that does not exist counts as deleted. Callers
    /// check the owner first (`get`): this deletes whatever is there.
    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError>;

    /// Sets the identity's custom MAIL FROM domain (SES falls back to its own
    /// while the domain's MX is missing), or removes it with `None`. Callers check
    /// the owner first, as for `delete`.
    async fn set_mail_from(
        &self,
        name: &DomainName,
        mail_from_domain: Option<&str>,
    ) -> Result<(), IdentityError>;
}

/// Identities in SES (v2).
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
    /// SES identities through `client`, built already.
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
    LimitExceeded,
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
        } else if self.is_limit_exceeded_exception() {
            Some(Known::LimitExceeded)
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
not_found_or_throttled!(
    GetEmailIdentityError,
    DeleteEmailIdentityError,
    PutEmailIdentityMailFromAttributesError
);

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
                Some(Known::LimitExceeded) => IdentityError::LimitExceeded(detail),
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
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        let tags = owner
            .tags()
            .into_iter()
            .map(|(key, value)| {
                aws_sdk_sesv2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|e| IdentityError::Other(format!("tag: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client()
            .create_email_identity()
            .email_identity(name.as_str())
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify("CreateEmailIdentity", e))?;
        Ok(output
            .dkim_attributes()
            .map(|dkim| dkim.tokens().to_vec())
            .unwrap_or_default())
    }

    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        let output = self
            .client()
            .get_email_identity()
            .email_identity(name.as_str())
            .send()
            .await
            .map_err(|e| classify("GetEmailIdentity", e))?;
        // SES may answer MailFromAttributes with an empty domain when none is set.
        let mail_from = output
            .mail_from_attributes()
            .filter(|attributes| !attributes.mail_from_domain().is_empty());
        Ok(Identity {
            tokens: output
                .dkim_attributes()
                .map(|dkim| dkim.tokens().to_vec())
                .unwrap_or_default(),
            owner: IdentityOwner::from_tags(
                output.tags().iter().map(|tag| (tag.key(), tag.value())),
            ),
            dkim_status: Some(
                output
                    .dkim_attributes()
                    .and_then(|dkim| dkim.status())
                    .map_or(SesStatus::NotStarted, ses_status),
            ),
            mail_from_domain: mail_from.map(|attributes| attributes.mail_from_domain().to_string()),
            mail_from_status: mail_from
                .map(|attributes| mail_from_status(attributes.mail_from_domain_status())),
        })
    }

    async fn set_mail_from(
        &self,
        name: &DomainName,
        mail_from_domain: Option<&str>,
    ) -> Result<(), IdentityError> {
        self.client()
            .put_email_identity_mail_from_attributes()
            .email_identity(name.as_str())
            .set_mail_from_domain(mail_from_domain.map(str::to_string))
            .behavior_on_mx_failure(BehaviorOnMxFailure::UseDefaultValue)
            .send()
            .await
            .map_err(|e| classify("PutEmailIdentityMailFromAttributes", e))?;
        Ok(())
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

/// Identities kept in memory with SES-like tokens and tags, for the dev server's
/// embedded default: no AWS needed. Behaves like SES (AlreadyExists, NotFound).
#[derive(Default)]
pub struct LocalIdentities {
    identities: Mutex<HashMap<DomainName, Identity>>,
}

impl LocalIdentities {
    /// No identities yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<DomainName, Identity>>, IdentityError> {
        self.identities
            .lock()
            .map_err(|_| IdentityError::Other("local identities lock poisoned".into()))
    }

    /// Adds an identity as someone else would (e.g. the platform's own sending
    /// domain, made outside this API): `owner: None` means untagged.
    pub fn insert(
        &self,
        name: &DomainName,
        owner: Option<IdentityOwner>,
    ) -> Result<Vec<String>, IdentityError> {
        let tokens: Vec<String> = (0..3).map(|_| random_dkim_token()).collect();
        let mut identities = self.lock()?;
        if identities.contains_key(name) {
            return Err(IdentityError::AlreadyExists);
        }
        identities.insert(
            name.clone(),
            Identity {
                tokens: tokens.clone(),
                owner,
                dkim_status: None,
                mail_from_domain: None,
                mail_from_status: None,
            },
        );
        Ok(tokens)
    }
}

fn mail_from_status(status: &MailFromDomainStatus) -> SesStatus {
    match status {
        MailFromDomainStatus::Success => SesStatus::Success,
        MailFromDomainStatus::Failed => SesStatus::Failed,
        MailFromDomainStatus::TemporaryFailure => SesStatus::TemporaryFailure,
        // PENDING, and anything newer than this SDK: not confirmed.
        _ => SesStatus::Pending,
    }
}

fn ses_status(status: &DkimStatus) -> SesStatus {
    match status {
        DkimStatus::Success => SesStatus::Success,
        DkimStatus::Failed => SesStatus::Failed,
        DkimStatus::TemporaryFailure => SesStatus::TemporaryFailure,
        DkimStatus::NotStarted => SesStatus::NotStarted,
        // PENDING, and anything newer than this SDK: not confirmed.
        _ => SesStatus::Pending,
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
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        self.insert(name, Some(owner.clone()))
    }

    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.lock()?
            .get(name)
            .cloned()
            .ok_or(IdentityError::NotFound)
    }

    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        self.lock()?.remove(name);
        Ok(())
    }

    async fn set_mail_from(
        &self,
        name: &DomainName,
        mail_from_domain: Option<&str>,
    ) -> Result<(), IdentityError> {
        let mut identities = self.lock()?;
        let identity = identities.get_mut(name).ok_or(IdentityError::NotFound)?;
        identity.mail_from_domain = mail_from_domain.map(str::to_string);
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
        let owner = IdentityOwner::new("table", "org_1");
        let tokens = identities.create(&name, &owner).await.expect("created");
        assert_eq!(tokens.len(), 3);
        assert_eq!(
            identities.create(&name, &owner).await,
            Err(IdentityError::AlreadyExists)
        );
        assert_eq!(
            identities.get(&name).await,
            Ok(Identity {
                tokens: tokens.clone(),
                owner: Some(owner.clone()),
                dkim_status: None,
                mail_from_domain: None,
                mail_from_status: None,
            })
        );
        identities
            .set_mail_from(&name, Some("send.example.com"))
            .await
            .expect("set");
        let identity = identities.get(&name).await.expect("there");
        assert_eq!(
            identity.mail_from_domain.as_deref(),
            Some("send.example.com")
        );
        identities
            .set_mail_from(&name, None)
            .await
            .expect("cleared");
        assert_eq!(
            identities.get(&name).await.expect("there").mail_from_domain,
            None
        );
        identities.delete(&name).await.expect("deleted");
        identities
            .delete(&name)
            .await
            .expect("deleting again is fine");
        assert_eq!(identities.get(&name).await, Err(IdentityError::NotFound));
    }

    #[test]
    fn owners_round_trip_through_tags() {
        let owner = IdentityOwner::new("domains-prod", "org_123");
        assert_eq!(IdentityOwner::from_tags(owner.tags()), Some(owner));
        assert_eq!(IdentityOwner::from_tags([(DEPLOYMENT_TAG, "t")]), None);
        assert_eq!(IdentityOwner::from_tags([("team", "mail")]), None);
    }

    #[test]
    fn organization_ids_outside_the_tag_alphabet_are_hashed() {
        assert_eq!(
            organization_tag_value("org_1@acme.example"),
            "org_1@acme.example"
        );
        let hashed = organization_tag_value("org#1,\u{e9}");
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 7 + 64,
            "{hashed}"
        );
        assert_ne!(organization_tag_value("a#1"), organization_tag_value("a#2"));
        assert!(organization_tag_value(&"x".repeat(300)).starts_with("sha256:"));
    }
}
