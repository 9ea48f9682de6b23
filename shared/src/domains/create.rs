//! Creating a domain: the name held (with a setup mark) first, then its SES
//! identity, then its DKIM tokens stored. A create of a name left half-done by an
//! earlier create of the same organization finishes it; a name another
//! organization's failed domain holds may be taken over (`transfer`).

use super::provisioning::{self, SetupError};
use super::setup::{clear_setup_mark, expected, store_tokens};
use super::transfer::{self, TransferError};
use super::{
    Attempt, WRITE_ATTEMPTS, lifecycle, logged, retrying, setup_error, store_error, transfer_error,
};
use crate::app::App;
use crate::domain_name::DomainName;
use crate::error::ApiError;
use crate::identity::IdentityError;
use crate::mail_from::MailFromLabel;
use crate::model::{Domain, Timestamp};
use crate::store::StoreError;

/// Creates `name` for the organization, with its MAIL FROM label if given.
pub async fn create(
    app: &App,
    organization_id: &str,
    name: DomainName,
    mail_from: Option<MailFromLabel>,
) -> Result<Domain, ApiError> {
    let now = Timestamp::now();
    let mut domain = Domain::new(organization_id, name.clone(), now);
    domain.mail_from_subdomain = mail_from;
    domain.records = expected(app, &domain);

    // Hold the name (with a setup mark) first: an identity is only ever created
    // for a name held.
    let mut taken_over = false;
    match app
        .store
        .insert(&domain, app.max_domains_per_organization)
        .await
    {
        Ok(()) => {}
        // Held: by this organization (a create left half-done?), or by another
        // whose domain may have failed (then it is taken over).
        Err(StoreError::NameTaken) => match transfer::take_failed_name(app, &domain).await {
            Ok(()) => taken_over = true,
            Err(TransferError::Mine) => {
                domain = resume_setup(app, organization_id, &name).await?;
            }
            Err(error) => return Err(logged(transfer_error(error))),
        },
        Err(error) => return Err(logged(store_error(error))),
    }

    let tokens = match provisioning::create_identity(app, &domain).await {
        Ok(tokens) => tokens,
        // A name taken over stays the caller's: the previous holder's domain is
        // gone already, and releasing the name would leave it to whoever comes
        // next with the old identity half-replaced. The create, retried, finishes
        // it (`resume_setup`). Only a name SES will not give (NotOurs) is released.
        Err(error) if taken_over && error != SetupError::NotOurs => {
            clear_setup_mark(app, &mut domain).await;
            return Err(logged(setup_error(error)));
        }
        Err(error) => {
            release_name(app, &domain, &error).await;
            return Err(logged(setup_error(error)));
        }
    };
    store_tokens(app, &mut domain, tokens).await?;
    if let Some(label) = &domain.mail_from_subdomain {
        // A failure here is mended by the first check that reads SES's view
        // (`confirmation::read_ses_view`), before SES's status could matter.
        if let Err(error) = app
            .identities
            .set_mail_from(&name, Some(&label.domain_under(&name)))
            .await
        {
            tracing::warn!(domain = %name, %error, "could not tell SES the MAIL FROM domain yet");
        }
    }
    Ok(domain)
}

/// A create of a name the organization already holds: taken over if it is a
/// create that failed half-way (no DKIM tokens, setup mark gone stale), by taking
/// a fresh setup mark; otherwise the name exists.
async fn resume_setup(
    app: &App,
    organization_id: &str,
    name: &DomainName,
) -> Result<Domain, ApiError> {
    let now = Timestamp::now();
    let mut leftover = match app.store.get(organization_id, name).await {
        Ok(Some(leftover))
            if leftover.dkim_tokens.is_empty()
                && !lifecycle::being_deleted(&leftover)
                && !lifecycle::setup_in_progress(&leftover, now) =>
        {
            leftover
        }
        _ => return Err(ApiError::DomainAlreadyExists),
    };
    tracing::info!(domain = %name, "resuming a create that failed half-way");
    lifecycle::begin_setup(&mut leftover, now);
    match app.store.update(&mut leftover).await {
        Ok(()) => Ok(leftover),
        Err(StoreError::Conflict | StoreError::DomainGone) => Err(ApiError::DomainAlreadyExists),
        Err(error) => Err(logged(store_error(error))),
    }
}

/// After the identity could not be had: remove what SES may have made anyway (a
/// 5xx or timeout leaves that open; only an identity tagged for this
/// organization), then let the name go (the domain, its name item and its count,
/// in one delete). If either step fails, the domain stays as the record of the
/// leftover: a later create, dns-records, verify or delete of it finishes or
/// cleans up the job.
async fn release_name(app: &App, domain: &Domain, cause: &SetupError) {
    if matches!(cause, SetupError::Identity(IdentityError::Unavailable(_)))
        && let Err(error) =
            provisioning::remove_identity(app, &domain.name, &domain.organization_id).await
    {
        tracing::error!(domain = %domain.name, %error, "SES may hold an identity; keeping the domain to clean it up later");
        return;
    }
    let stored = domain.clone();
    let released: Result<(), ()> = retrying(WRITE_ATTEMPTS, || (), stored, |stored, _| async move {
        match app.store.delete(&stored).await {
            Ok(()) | Err(StoreError::DomainGone) => Ok(Attempt::Done(())),
            Err(StoreError::Conflict) => {
                match app.store.get(&domain.organization_id, &domain.name).await {
                    Ok(Some(fresh)) if fresh.id == domain.id => Ok(Attempt::Again(fresh)),
                    _ => Ok(Attempt::Done(())),
                }
            }
            Err(error) => {
                tracing::error!(domain = %domain.name, %error, "could not let the name go after SES failed; the domain is kept");
                Ok(Attempt::Done(()))
            }
        }
    })
    .await;
    // Out of attempts: the domain stays, as after any failed step.
    let _ = released;
}
