//! Reading what a handler needs from an API Gateway (HTTP API, payload 2.0) request.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::Value;

use crate::domain_name::DomainName;
use crate::error::ApiError;

/// Bodies above this are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The organization the API-key authorizer put in the request context
/// (`requestContext.authorizer.lambda.organization_id`). Never taken from the
/// body, path or query.
pub fn organization_id(request: &Request) -> Result<String, ApiError> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return Err(ApiError::Unauthorized);
    };
    context
        .authorizer
        .as_ref()
        .and_then(|authorizer| authorizer.fields.get("organization_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())
        .map(str::to_string)
        .ok_or(ApiError::Unauthorized)
}

/// The `{domain}` path parameter. A name that is not valid cannot exist, so it is
/// simply not found.
pub fn path_domain(request: &Request) -> Result<DomainName, ApiError> {
    request
        .path_parameters_ref()
        .and_then(|params| params.first("domain"))
        .and_then(|raw| DomainName::for_lookup(raw).ok())
        .ok_or(ApiError::DomainNotFound)
}

/// The `name` of a create body `{"name": "example.com"}`.
pub fn body_domain(request: &Request) -> Result<DomainName, ApiError> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::InvalidJson)?;
    let Value::Object(fields) = value else {
        return Err(ApiError::InvalidJson);
    };
    fields
        .get("name")
        .and_then(Value::as_str)
        .and_then(|name| DomainName::parse(name).ok())
        .ok_or(ApiError::InvalidDomainName)
}

/// API Gateway's request id, or the Lambda invocation's.
pub fn request_id(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    }
    .or_else(|| {
        request
            .lambda_context_ref()
            .map(|context| context.request_id.clone())
    })
    .unwrap_or_default()
}
