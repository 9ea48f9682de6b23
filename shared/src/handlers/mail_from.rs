//! `PATCH /domains/{domain}`: setting, changing or removing the custom MAIL FROM
//! domain. SES is told first and the table follows; should the second step fail,
//! the next check that reads SES's view tells SES again what the table says
//! (`confirmation::read_ses_view`), so the two never stay apart.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::setup::{expected, merge_records};
use super::{WRITE_ATTEMPTS, find_live, identity_error, logged, store_error};
use crate::app::App;
use crate::error::{ApiError, json_response};
use crate::identity::IdentityError;
use crate::lifecycle;
use crate::mail_from::MailFromLabel;
use crate::model::{Domain, Timestamp};
use crate::provisioning;
use crate::request::mail_from_body;
use crate::store::StoreError;

pub(super) async fn update(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let mut domain = find_live(app, request).await?;
    let label = mail_from_body(request, &domain.name)?;
    if domain.mail_from_subdomain == label {
        return Ok(json_response(StatusCode::OK, &domain));
    }
    if provisioning::setup_in_progress(&domain, Timestamp::now()) {
        return Err(ApiError::DomainBusy);
    }
    tell_ses(app, &domain, label.as_ref()).await?;
    for attempt in 1..=WRITE_ATTEMPTS {
        apply(app, &mut domain, label.clone(), Timestamp::now());
        match app.store.update(&mut domain).await {
            Ok(()) => return Ok(json_response(StatusCode::OK, &domain)),
            Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => {
                domain = find_live(app, request).await?;
            }
            Err(StoreError::DomainGone) => return Err(ApiError::DomainNotFound),
            Err(error) => return Err(logged(store_error(error))),
        }
    }
    Err(logged(ApiError::Unavailable(
        "the MAIL FROM change kept losing write races".into(),
    )))
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
