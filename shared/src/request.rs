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
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidJson("the body is not valid JSON"))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::InvalidJson(
            "the body must be a JSON object like {\"name\": \"example.com\"}",
        ));
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(ApiError::InvalidDomainName(
                "`name` must be a string, e.g. \"example.com\"".into(),
            ));
        }
        None => {
            let others: Vec<&str> = fields.keys().map(String::as_str).take(5).collect();
            let why = if others.is_empty() {
                "the body has no `name` field".to_string()
            } else {
                format!(
                    "the body has no `name` field (it has {})",
                    others
                        .iter()
                        .map(|k| format!("`{}`", k.chars().take(40).collect::<String>()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(ApiError::InvalidDomainName(why));
        }
    };
    DomainName::parse(name).map_err(|invalid| ApiError::InvalidDomainName(invalid.why().into()))
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
