//! Email identities (SES Easy DKIM): who an identity belongs to, the provider
//! trait, and its two implementations: SESv2 (`ses`) and a local stand-in (`local`).

mod local;
mod measured;
mod ses;

pub use local::{LocalIdentities, random_dkim_token};
pub use measured::MeasuredIdentities;
pub use ses::SesIdentities;

use async_trait::async_trait;

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

    /// Whether these tags name `organization_id` in `deployment`. Identities made
    /// before every organization id was hashed carry the id itself where it fit
    /// the tag alphabet; that form is still recognized, except for an id that
    /// looks like a hash (which could only collide with another's).
    pub fn is_for(&self, deployment: &str, organization_id: &str) -> bool {
        self.deployment == deployment
            && (self.organization == organization_tag_value(organization_id)
                || (self.organization == organization_id
                    && !organization_id.starts_with(HASHED_PREFIX)))
    }

    /// The tags to create an identity with.
    pub fn tags(&self) -> [(&'static str, &str); 2] {
        [
            (DEPLOYMENT_TAG, self.deployment.as_str()),
            (ORGANIZATION_TAG, self.organization.as_str()),
        ]
    }
}

/// What an organization tag value starts with.
const HASHED_PREFIX: &str = "sha256:";

/// Every organization id is tagged by its SHA-256, the same way: it fits the tag
/// alphabet whatever the id holds, and no id can be chosen to equal another's
/// tag (as one spelled `sha256:<hex>` could when ids that fit were tagged as
/// they are).
pub fn organization_tag_value(organization_id: &str) -> String {
    use sha2::Digest;
    format!(
        "{HASHED_PREFIX}{}",
        hex::encode(sha2::Sha256::digest(organization_id.as_bytes()))
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_through_tags() {
        let owner = IdentityOwner::new("domains-prod", "org_123");
        assert_eq!(IdentityOwner::from_tags(owner.tags()), Some(owner));
        assert_eq!(IdentityOwner::from_tags([(DEPLOYMENT_TAG, "t")]), None);
        assert_eq!(IdentityOwner::from_tags([("team", "mail")]), None);
    }

    #[test]
    fn every_organization_id_is_hashed_the_same_way() {
        for id in ["org_1@acme.example", "org#1,\u{e9}", &"x".repeat(300)] {
            let hashed = organization_tag_value(id);
            assert!(
                hashed.starts_with("sha256:") && hashed.len() == 7 + 64,
                "{hashed}"
            );
        }
        assert_ne!(organization_tag_value("a#1"), organization_tag_value("a#2"));
        // An id spelled as another's tag is tagged differently from it.
        let victim = organization_tag_value("org_victim");
        assert_ne!(organization_tag_value(&victim), victim);
    }

    #[test]
    fn owners_are_recognized_by_the_hash_and_by_the_older_plain_tag() {
        let owner = IdentityOwner::new("domains-prod", "org_123");
        assert!(owner.is_for("domains-prod", "org_123"));
        assert!(!owner.is_for("domains-prod", "org_124"));
        assert!(!owner.is_for("domains-dev", "org_123"));
        // Made before every id was hashed.
        let older = IdentityOwner {
            deployment: "domains-prod".into(),
            organization: "org_123".into(),
        };
        assert!(older.is_for("domains-prod", "org_123"));
        // An organization whose id is another's hash never passes for it.
        let victims = IdentityOwner::new("domains-prod", "org_victim");
        assert!(!victims.is_for("domains-prod", &organization_tag_value("org_victim")));
    }
}
