//! Identities in SES (v2): the adapter, its error mapping and SES's statuses.

use std::sync::OnceLock;

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::create_email_identity::CreateEmailIdentityError;
use aws_sdk_sesv2::operation::delete_email_identity::DeleteEmailIdentityError;
use aws_sdk_sesv2::operation::get_email_identity::GetEmailIdentityError;
use aws_sdk_sesv2::operation::put_email_identity_mail_from_attributes::PutEmailIdentityMailFromAttributesError;
use aws_sdk_sesv2::types::{BehaviorOnMxFailure, DkimStatus, MailFromDomainStatus};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::{Identity, IdentityError, IdentityOwner, IdentityProvider};
use crate::domain_name::DomainName;
use crate::model::SesStatus;
use crate::store::sdk_failure::{SdkFailure, sdk_failure};

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
    let (detail, failure) = sdk_failure(operation, &error);
    match failure {
        SdkFailure::NoAnswer => IdentityError::Unavailable(detail),
        SdkFailure::Service(error, status) => match error.known() {
            Some(Known::AlreadyExists) => IdentityError::AlreadyExists,
            Some(Known::NotFound) => IdentityError::NotFound,
            Some(Known::Throttled) => IdentityError::Throttled(detail),
            Some(Known::LimitExceeded) => IdentityError::LimitExceeded(detail),
            None if status == 429 || error.code() == Some("Throttling") => {
                IdentityError::Throttled(detail)
            }
            None if status >= 500 => IdentityError::Unavailable(detail),
            None => IdentityError::Other(detail),
        },
        SdkFailure::Other => IdentityError::Other(detail),
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
