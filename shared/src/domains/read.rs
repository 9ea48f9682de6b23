//! Reading an organization's domains: one, a page of them, and one's DNS records
//! (whose DKIM tokens a create left half-done is asked for first).

use super::setup::fill_dkim_tokens;
use super::{lifecycle, logged, store_error};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{Domain, TenantName};
use crate::store::DomainPage;

/// The organization's domain, or 404.
pub async fn find(app: &App, key: &TenantName) -> Result<Domain, ApiError> {
    app.store
        .get(&key.organization_id, &key.name)
        .await
        .map_err(|e| logged(store_error(e)))?
        .ok_or(ApiError::DomainNotFound)
}

/// `find`, but a domain being deleted is already gone: nothing is checked or set
/// up for it any more.
pub async fn find_live(app: &App, key: &TenantName) -> Result<Domain, ApiError> {
    let domain = find(app, key).await?;
    if lifecycle::being_deleted(&domain) {
        return Err(ApiError::DomainNotFound);
    }
    Ok(domain)
}

/// Up to `limit` of the organization's domains, by name, after `after`.
pub async fn list(
    app: &App,
    organization_id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<DomainPage, ApiError> {
    app.store
        .list_page(organization_id, after, limit)
        .await
        .map_err(|e| logged(store_error(e)))
}

/// The live domain with its DNS records complete: a domain stored without DKIM
/// tokens gets them first (`setup::fill_dkim_tokens`), or 503 `DkimUnavailable`.
pub async fn with_records(app: &App, key: &TenantName) -> Result<Domain, ApiError> {
    let mut domain = find_live(app, key).await?;
    if domain.dkim_tokens.is_empty() {
        fill_dkim_tokens(app, &mut domain)
            .await
            .map_err(|error| match error {
                ApiError::Throttled(_) => logged(error),
                other => {
                    tracing::warn!(domain = %domain.name, error = %other, "no DKIM tokens from SES");
                    ApiError::DkimUnavailable
                }
            })?;
    }
    Ok(domain)
}
