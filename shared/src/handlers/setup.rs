//! Creating a domain and getting its SES identity: the claim, the identity under
//! a setup mark (see `provisioning`), the tokens stored; and the same for a
//! domain a create left half-done, when `dns-records` or `verify` meets it.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::{WRITE_ATTEMPTS, identity_error, logged, store_error, transfer_error};
use crate::app::App;
use crate::domain_name::DomainName;
use crate::error::{ApiError, json_response};
use crate::identity::IdentityError;
use crate::model::{DnsRecord, Domain, Timestamp};
use crate::provisioning::{self, SetupError};
use crate::records::{expected_records, mail_from_records};
use crate::request::{create_body, organization_id};
use crate::store::StoreError;
use crate::transfer::{self, TransferError};

pub(super) fn setup_error(error: SetupError) -> ApiError {
    match error {
        SetupError::NotOurs => ApiError::DomainAlreadyExists,
        SetupError::Identity(error) => identity_error(error),
    }
}

pub(super) async fn create(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let (name, mail_from) = create_body(request)?;
    let now = Timestamp::now();
    let mut domain = Domain::new(&organization_id, name.clone(), now);
    domain.mail_from_subdomain = mail_from;
    domain.records = expected(app, &domain);

    // Claim the name (with a setup mark) first: an identity is only ever created
    // for a claimed name.
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
                domain = resume_setup(app, &organization_id, &name).await?;
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
            release_claim(app, &domain, &error).await;
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

    let mut response = json_response(StatusCode::CREATED, &domain);
    if let Ok(location) = HeaderValue::from_str(&format!("/domains/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
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
                && leftover.deleting_since.is_none()
                && !provisioning::setup_in_progress(&leftover, now) =>
        {
            leftover
        }
        _ => return Err(ApiError::DomainAlreadyExists),
    };
    tracing::info!(domain = %name, "resuming a create that failed half-way");
    leftover.setup_started_at = Some(now);
    match app.store.update(&mut leftover).await {
        Ok(()) => Ok(leftover),
        Err(StoreError::Conflict | StoreError::DomainGone) => Err(ApiError::DomainAlreadyExists),
        Err(error) => Err(logged(store_error(error))),
    }
}

/// Writes the DKIM tokens (and records) into the domain and clears its setup
/// mark. A domain written meanwhile is read again and the tokens applied to it; a
/// domain removed meanwhile is `DomainBusy` (never a 201 for a removed domain).
pub(super) async fn store_tokens(
    app: &App,
    domain: &mut Domain,
    tokens: Vec<String>,
) -> Result<(), ApiError> {
    for attempt in 1..=WRITE_ATTEMPTS {
        apply_tokens(app, domain, tokens.clone());
        domain.setup_started_at = None;
        match app.store.update(domain).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => {
                match app.store.get(&domain.organization_id, &domain.name).await {
                    Ok(Some(fresh)) if fresh.id == domain.id && fresh.deleting_since.is_none() => {
                        *domain = fresh;
                    }
                    Ok(_) => return Err(ApiError::DomainBusy),
                    Err(error) => return Err(logged(store_error(error))),
                }
            }
            Err(StoreError::DomainGone) => return Err(ApiError::DomainBusy),
            Err(error) => {
                // The domain and its identity both exist; a later dns-records,
                // verify or create of it reads the tokens from SES again.
                tracing::warn!(domain = %domain.name, %error, "could not store DKIM tokens");
                return Ok(());
            }
        }
    }
    Err(logged(ApiError::Unavailable(
        "the domain kept changing while its tokens were stored".into(),
    )))
}

/// After the identity could not be had: remove what SES may have made anyway (a
/// 5xx or timeout leaves that open; only an identity tagged for this
/// organization), then release the claim. If either step fails, the domain stays
/// as the record of the leftover: a later create, dns-records, verify or delete
/// of it finishes or cleans up the job.
async fn release_claim(app: &App, domain: &Domain, cause: &SetupError) {
    if matches!(cause, SetupError::Identity(IdentityError::Unavailable(_)))
        && let Err(error) =
            provisioning::remove_identity(app, &domain.name, &domain.organization_id).await
    {
        tracing::error!(domain = %domain.name, %error, "SES may hold an identity; keeping the domain to clean it up later");
        return;
    }
    let mut stored = domain.clone();
    // The claim goes with the domain; its count with it.
    for _ in 0..WRITE_ATTEMPTS {
        match app.store.delete(&stored).await {
            Ok(()) | Err(StoreError::DomainGone) => return,
            Err(StoreError::Conflict) => {
                match app.store.get(&domain.organization_id, &domain.name).await {
                    Ok(Some(fresh)) if fresh.id == domain.id => stored = fresh,
                    _ => return,
                }
            }
            Err(error) => {
                tracing::error!(domain = %domain.name, %error, "could not release the claim after SES failed; the domain is kept");
                return;
            }
        }
    }
}

/// Clears the setup mark of a domain whose identity could not be made by this
/// request (which is over): the next request may try at once, instead of
/// waiting out `SETUP_WINDOW`. A failure only means that wait.
pub(super) async fn clear_setup_mark(app: &App, domain: &mut Domain) {
    domain.setup_started_at = None;
    if let Err(error) = app.store.update(domain).await {
        tracing::warn!(domain = %domain.name, %error, "could not clear the setup mark");
    }
}

/// Gets the DKIM tokens of a domain stored without them (a create that failed
/// half-way): from this organization's identity if there is one, else by making
/// it, under a fresh setup mark as a create does. While another request holds the
/// mark, only reads.
pub(super) async fn fill_dkim_tokens(app: &App, domain: &mut Domain) -> Result<(), ApiError> {
    let now = Timestamp::now();
    if provisioning::setup_in_progress(domain, now) {
        let identity = app
            .identities
            .get(&domain.name)
            .await
            .map_err(identity_error)?;
        if !app.made_for(&identity, &domain.organization_id) || identity.tokens.is_empty() {
            return Err(ApiError::DomainBusy);
        }
        apply_tokens(app, domain, identity.tokens);
        return Ok(());
    }
    domain.setup_started_at = Some(now);
    match app.store.update(domain).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(ApiError::DomainBusy),
        Err(error) => return Err(logged(store_error(error))),
    }
    let tokens = provisioning::create_identity(app, domain)
        .await
        .map_err(|error| match error {
            // Someone else's identity has the name: no tokens to give.
            SetupError::NotOurs => ApiError::DkimUnavailable,
            SetupError::Identity(error) => identity_error(error),
        })?;
    if tokens.is_empty() {
        return Err(ApiError::DkimUnavailable);
    }
    store_tokens(app, domain, tokens).await
}

/// Gives the domain its DKIM tokens and the records they make, keeping what
/// earlier checks saw of records that are still expected.
fn apply_tokens(app: &App, domain: &mut Domain, tokens: Vec<String>) {
    domain.dkim_tokens = tokens;
    domain.records = merge_records(expected(app, domain), &domain.records);
}

/// The records the domain must publish now (all pending): the six, and the MAIL
/// FROM domain's two when one is set.
pub(super) fn expected(app: &App, domain: &Domain) -> Vec<DnsRecord> {
    let mut records = expected_records(&domain.name, &domain.dkim_tokens, &app.receiving_region);
    if let Some(label) = &domain.mail_from_subdomain {
        records.extend(mail_from_records(&domain.name, label, &app.sending_region));
    }
    records
}

/// Keeps what earlier checks saw of records that are still expected.
pub(super) fn merge_records(expected: Vec<DnsRecord>, previous: &[DnsRecord]) -> Vec<DnsRecord> {
    expected
        .into_iter()
        .map(|record| {
            previous
                .iter()
                .find(|p| {
                    p.record == record.record && p.fqdn == record.fqdn && p.value == record.value
                })
                .cloned()
                .unwrap_or(record)
        })
        .collect()
}
