//! The claim endpoints: each request turned into a call of `domains::claims`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::created;
use crate::app::App;
use crate::claims::{ClaimView, DomainClaim};
use crate::domains::claims::{self, Opened};
use crate::error::{ApiError, json_response};
use crate::model::{Domain, TenantName};
use crate::request::{claim_body, organization_id, path_domain};

fn view(claim: &DomainClaim, domain: Option<&Domain>) -> Response<Body> {
    json_response(StatusCode::OK, &ClaimView { claim, domain })
}

/// The organization and the claimed name in the path (a name that cannot be a
/// domain has no claim: 404).
fn named(request: &Request) -> Result<TenantName, ApiError> {
    Ok(TenantName {
        organization_id: organization_id(request)?,
        name: path_domain(request).map_err(|_| ApiError::ClaimNotFound)?,
    })
}

pub(super) async fn create(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let name = claim_body(request)?;
    Ok(match claims::open(app, &organization_id, name).await? {
        Opened::New(claim) => created(
            &ClaimView {
                claim: &claim,
                domain: None,
            },
            &format!("/domain-claims/{}", claim.name),
        ),
        Opened::Existing(claim) => view(&claim, None),
    })
}

pub(super) async fn list(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let claims = claims::list(app, &organization_id).await?;
    let views: Vec<ClaimView> = claims
        .iter()
        .map(|claim| ClaimView {
            claim,
            domain: None,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &views))
}

pub(super) async fn get(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let (claim, domain) = claims::get(app, &named(request)?).await?;
    Ok(view(&claim, domain.as_ref()))
}

pub(super) async fn delete(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let claim = claims::delete(app, &named(request)?).await?;
    Ok(view(&claim, None))
}

pub(super) async fn verify(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let (claim, domain) = claims::verify(app, &named(request)?).await?;
    Ok(view(&claim, domain.as_ref()))
}
