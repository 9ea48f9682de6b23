//! `PATCH /domains/{domain}`: setting, changing or removing the custom MAIL FROM
//! domain. SES is told first and the table follows; should the second step fail,
//! the next check that reads SES's view tells SES again what the table says
//! (`confirmation::read_ses_view`), so the two never stay apart.

use super::read::find_live;
use super::setup::{expected, merge_records};
use super::{
    Attempt, WRITE_ATTEMPTS, identity_error, lifecycle, logged, provisioning, retrying, store_error,
};
use crate::app::App;
use crate::error::ApiError;
use crate::identity::IdentityError;
use crate::mail_from::MailFromLabel;
use crate::model::{Domain, TenantName, Timestamp};
use crate::store::StoreError;

/// Sets (`Some`) or removes (`None`) the MAIL FROM label of `domain`, the
/// caller's live domain as just read.
pub async fn update(
    app: &App,
    domain: Domain,
    label: Option<MailFromLabel>,
) -> Result<Domain, ApiError> {
    if domain.mail_from_subdomain == label {
        return Ok(domain);
    }
    if lifecycle::setup_in_progress(&domain, Timestamp::now()) {
        return Err(ApiError::DomainBusy);
    }
    tell_ses(app, &domain, label.as_ref()).await?;
    let key = &TenantName {
        organization_id: domain.organization_id.clone(),
        name: domain.name.clone(),
    };
    let label = &label;
    let exhausted = || {
        logged(ApiError::Unavailable(
            "the MAIL FROM change kept losing write races".into(),
        ))
    };
    retrying(
        WRITE_ATTEMPTS,
        exhausted,
        domain,
        |mut domain, attempt| async move {
            apply(app, &mut domain, label.clone(), Timestamp::now());
            match app.store.update(&mut domain).await {
                Ok(()) => Ok(Attempt::Done(domain)),
                Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => {
                    Ok(Attempt::Again(find_live(app, key).await?))
                }
                Err(StoreError::DomainGone) => Err(ApiError::DomainNotFound),
                Err(error) => Err(logged(store_error(error))),
            }
        },
    )
    .await
}

/// Sets or clears the MAIL FROM domain of the domain's identity
/// (`provisioning::set_mail_from`: only this organization's). A domain whose
/// identity is not made yet (a create that failed half-way) has nothing to tell:
/// the check after its setup does.
async fn tell_ses(
    app: &App,
    domain: &Domain,
    label: Option<&MailFromLabel>,
) -> Result<(), ApiError> {
    if domain.dkim_tokens.is_empty() {
        return Ok(());
    }
    let identity = match app.identities.get(&domain.name).await {
        Ok(identity) => identity,
        Err(IdentityError::NotFound) => return Ok(()),
        Err(error) => return Err(logged(identity_error(error))),
    };
    let mail_from_domain = label.map(|label| label.domain_under(&domain.name));
    provisioning::set_mail_from(app, domain, &identity, mail_from_domain.as_deref())
        .await
        .map_err(|error| logged(identity_error(error)))
}

/// The label, the records it makes (keeping what was seen of those that stay) and
/// the state that follows, by the lifecycle's rule.
fn apply(app: &App, domain: &mut Domain, label: Option<MailFromLabel>, now: Timestamp) {
    domain.mail_from_subdomain = label;
    domain.records = merge_records(expected(app, domain), &domain.records);
    lifecycle::after_mail_from_change(domain, now);
}
