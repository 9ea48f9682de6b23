//! Getting a domain its SES identity and DKIM tokens: the identity under a setup
//! mark (see `provisioning`), the tokens stored; and the same for a domain a
//! create left half-done, when `dns-records` or `verify` meets it.

use super::provisioning::{self, SetupError};
use super::{Attempt, WRITE_ATTEMPTS, identity_error, lifecycle, logged, retrying, store_error};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{DnsRecord, Domain, Timestamp};
use crate::records::{expected_records, mail_from_records};
use crate::store::StoreError;

/// Writes the DKIM tokens (and records) into the domain and clears its setup
/// mark. A domain written meanwhile is read again and the tokens applied to it; a
/// domain removed meanwhile is `DomainBusy` (never a 201 for a removed domain).
pub(crate) async fn store_tokens(
    app: &App,
    domain: &mut Domain,
    tokens: Vec<String>,
) -> Result<(), ApiError> {
    let exhausted = || {
        logged(ApiError::Unavailable(
            "the domain kept changing while its tokens were stored".into(),
        ))
    };
    let tokens = &tokens;
    retrying(
        WRITE_ATTEMPTS,
        exhausted,
        domain,
        |domain, attempt| async move {
            apply_tokens(app, domain, tokens.clone());
            lifecycle::end_setup(domain);
            match app.store.update(domain).await {
                Ok(()) => Ok(Attempt::Done(())),
                Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => {
                    match app.store.get(&domain.organization_id, &domain.name).await {
                        Ok(Some(fresh))
                            if fresh.id == domain.id && !lifecycle::being_deleted(&fresh) =>
                        {
                            *domain = fresh;
                            Ok(Attempt::Again(domain))
                        }
                        Ok(_) => Err(ApiError::DomainBusy),
                        Err(error) => Err(logged(store_error(error))),
                    }
                }
                Err(StoreError::DomainGone) => Err(ApiError::DomainBusy),
                Err(error) => {
                    // The domain and its identity both exist; a later dns-records,
                    // verify or create of it reads the tokens from SES again.
                    tracing::warn!(domain = %domain.name, %error, "could not store DKIM tokens");
                    Ok(Attempt::Done(()))
                }
            }
        },
    )
    .await
}

/// Clears the setup mark of a domain whose identity could not be made by this
/// request (which is over): the next request may try at once, instead of
/// waiting out `SETUP_WINDOW`. A failure only means that wait.
pub(crate) async fn clear_setup_mark(app: &App, domain: &mut Domain) {
    lifecycle::end_setup(domain);
    if let Err(error) = app.store.update(domain).await {
        tracing::warn!(domain = %domain.name, %error, "could not clear the setup mark");
    }
}

/// Gets the DKIM tokens of a domain stored without them (a create that failed
/// half-way): from this organization's identity if there is one, else by making
/// it, under a fresh setup mark as a create does. While another request holds the
/// mark, only reads.
pub(crate) async fn fill_dkim_tokens(app: &App, domain: &mut Domain) -> Result<(), ApiError> {
    let now = Timestamp::now();
    if lifecycle::setup_in_progress(domain, now) {
        let tokens = provisioning::own_tokens(app, domain)
            .await
            .map_err(identity_error)?
            .ok_or(ApiError::DomainBusy)?;
        apply_tokens(app, domain, tokens);
        return Ok(());
    }
    lifecycle::begin_setup(domain, now);
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
pub(crate) fn expected(app: &App, domain: &Domain) -> Vec<DnsRecord> {
    let mut records = expected_records(&domain.name, &domain.dkim_tokens, &app.receiving_region);
    if let Some(label) = &domain.mail_from_subdomain {
        records.extend(mail_from_records(&domain.name, label, &app.sending_region));
    }
    records
}

/// Keeps what earlier checks saw of records that are still expected.
pub(crate) fn merge_records(expected: Vec<DnsRecord>, previous: &[DnsRecord]) -> Vec<DnsRecord> {
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
