//! A domain's SES identity, made, changed and removed so that no organization can take,
//! see or remove an identity it does not hold:
//!
//! - Every identity is created tagged with its organization and this deployment
//!   (`IdentityOwner`), and only by a request that holds the name's holder item and a
//!   fresh setup mark (`Domain::setup_started_at`); a delete waits for the mark to
//!   clear or go stale (`SETUP_WINDOW`, longer than any function's timeout), so the
//!   name cannot change hands while an identity for it is being made.
//! - An identity that already exists is taken back only when this deployment made
//!   it for this organization; one made for another organization (whose items were
//!   lost) is re-created, so its DKIM keys are never handed on; anything else
//!   (made outside this API) is never changed or deleted.
//! - Removal reads the tags first and deletes only this organization's identity.

use super::{Attempt, retrying};
use crate::app::App;
use crate::domain_name::DomainName;
use crate::identity::{Identity, IdentityError};
use crate::model::Domain;

/// Whether this deployment made `identity` for `organization_id`, as its tags
/// say: the one test of whose an identity is.
pub fn made_for(app: &App, identity: &Identity, organization_id: &str) -> bool {
    identity
        .owner
        .as_ref()
        .is_some_and(|owner| owner.is_for(&app.deployment, organization_id))
}

/// The DKIM tokens of the name's identity, if this deployment made it for the
/// domain's organization and SES has given it tokens.
pub async fn own_tokens(app: &App, domain: &Domain) -> Result<Option<Vec<String>>, IdentityError> {
    let identity = app.identities.get(&domain.name).await?;
    let ours = made_for(app, &identity, &domain.organization_id);
    Ok(Some(identity.tokens).filter(|tokens| ours && !tokens.is_empty()))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
/// Why a domain's identity could not be had.
pub enum SetupError {
    /// SES holds an identity for the name that this deployment did not make for
    /// this organization or another: the name cannot be had here.
    #[error("SES holds an identity for this name that this API did not create")]
    NotOurs,
    #[error(transparent)]
    /// SES failed.
    Identity(#[from] IdentityError),
}

/// Attempts at creating an identity that keeps being created or removed by others.
const CREATE_ATTEMPTS: usize = 3;

/// Creates the identity for `domain` (whose claim and setup mark the caller holds)
/// and returns its DKIM tokens; an identity already there is handled as the module
/// says.
pub async fn create_identity(app: &App, domain: &Domain) -> Result<Vec<String>, SetupError> {
    let owner = &app.identity_owner(&domain.organization_id);
    let name = &domain.name;
    let exhausted = || {
        IdentityError::Unavailable("the identity kept changing while being created".into()).into()
    };
    retrying(CREATE_ATTEMPTS, exhausted, (), |(), _| async move {
        match app.identities.create(name, owner).await {
            Ok(tokens) => return Ok(Attempt::Done(tokens)),
            Err(IdentityError::AlreadyExists) => {}
            Err(error) => return Err(error.into()),
        }
        let existing = match app.identities.get(name).await {
            // Removed since: create again.
            Err(IdentityError::NotFound) => return Ok(Attempt::Again(())),
            other => other?,
        };
        match existing.owner {
            Some(_) if made_for(app, &existing, &domain.organization_id) => {
                tracing::info!(domain = %name, "taking back this organization's identity");
                Ok(Attempt::Done(existing.tokens))
            }
            Some(found) if found.deployment == app.deployment => {
                // Made by this deployment for another organization that no longer
                // holds the name (we hold its name item): its keys must not be
                // handed on, so it is made anew.
                tracing::warn!(domain = %name, "re-creating an identity left by another organization");
                app.identities.delete(name).await?;
                Ok(Attempt::Again(()))
            }
            _ => {
                tracing::warn!(domain = %name, "SES holds an identity this API did not create; leaving it alone");
                Err(SetupError::NotOurs)
            }
        }
    })
    .await
}

/// Sets (or clears with `None`) the MAIL FROM domain of `identity`, the name's
/// identity as just read, if this deployment made it for the domain's
/// organization: another's is never changed (and that is no error).
pub async fn set_mail_from(
    app: &App,
    domain: &Domain,
    identity: &Identity,
    mail_from_domain: Option<&str>,
) -> Result<(), IdentityError> {
    if !made_for(app, identity, &domain.organization_id) {
        tracing::warn!(domain = %domain.name, "the identity is not this organization's; its MAIL FROM domain is left alone");
        return Ok(());
    }
    app.identities
        .set_mail_from(&domain.name, mail_from_domain)
        .await
}

/// What `remove_identity` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// It was this organization's, and is gone.
    Deleted,
    /// There was none.
    Absent,
    /// Someone else's (untagged, or another organization's or deployment's): left alone.
    LeftAlone,
}

/// Deletes the name's identity if this deployment made it for `organization_id`.
pub async fn remove_identity(
    app: &App,
    name: &DomainName,
    organization_id: &str,
) -> Result<Removal, IdentityError> {
    let existing = match app.identities.get(name).await {
        Err(IdentityError::NotFound) => return Ok(Removal::Absent),
        other => other?,
    };
    if !made_for(app, &existing, organization_id) {
        tracing::warn!(domain = %name, "the identity is not this organization's; leaving it alone");
        return Ok(Removal::LeftAlone);
    }
    app.identities.delete(name).await?;
    Ok(Removal::Deleted)
}
