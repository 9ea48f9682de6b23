//! Reading what a handler needs from an API Gateway (HTTP API, payload 2.0) request.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::Value;

use crate::domain_name::DomainName;
use crate::error::ApiError;
use crate::mail_from::MailFromLabel;
use crate::model::TenantName;

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

/// The caller's organization and the `{domain}` of the path.
pub fn tenant_name(request: &Request) -> Result<TenantName, ApiError> {
    Ok(TenantName {
        organization_id: organization_id(request)?,
        name: path_domain(request)?,
    })
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

/// The body as a JSON object (at most `MAX_BODY_BYTES`).
fn body_object(
    request: &Request,
    example: &'static str,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidJson("the body is not valid JSON"))?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::InvalidJson(example)),
    }
}

/// "(it has `a`, `b`)" for a body without the expected field.
fn fields_it_has(fields: &serde_json::Map<String, Value>) -> String {
    let others: Vec<String> = fields
        .keys()
        .take(5)
        .map(|k| format!("`{}`", k.chars().take(40).collect::<String>()))
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!(" (it has {})", others.join(", "))
    }
}

/// A create body `{"name": "example.com", "mail_from_subdomain": "send"}` (the
/// second field optional, null as absent).
pub fn create_body(request: &Request) -> Result<(DomainName, Option<MailFromLabel>), ApiError> {
    let fields = body_object(
        request,
        "the body must be a JSON object like {\"name\": \"example.com\"}",
    )?;
    let name = name_field(&fields)?;
    let label = mail_from_field(fields.get("mail_from_subdomain"), &name)?;
    Ok((name, label))
}

/// A claim body `{"name": "example.com"}`.
pub fn claim_body(request: &Request) -> Result<DomainName, ApiError> {
    let fields = body_object(
        request,
        "the body must be a JSON object like {\"name\": \"example.com\"}",
    )?;
    name_field(&fields)
}

/// The body's `name`, parsed.
fn name_field(fields: &serde_json::Map<String, Value>) -> Result<DomainName, ApiError> {
    let name = match fields.get("name") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(ApiError::InvalidDomainName(
                "`name` must be a string, e.g. \"example.com\"".into(),
            ));
        }
        None => {
            return Err(ApiError::InvalidDomainName(format!(
                "the body has no `name` field{}",
                fields_it_has(fields)
            )));
        }
    };
    DomainName::parse(name).map_err(|invalid| ApiError::InvalidDomainName(invalid.why().into()))
}

/// An update body `{"mail_from_subdomain": "send" | null}` for `domain`.
pub fn mail_from_body(
    request: &Request,
    domain: &DomainName,
) -> Result<Option<MailFromLabel>, ApiError> {
    let fields = body_object(
        request,
        "the body must be a JSON object like {\"mail_from_subdomain\": \"send\"}",
    )?;
    match fields.get("mail_from_subdomain") {
        None => Err(ApiError::InvalidMailFrom(format!(
            "the body has no `mail_from_subdomain` field{}: send {{\"mail_from_subdomain\": \"send\"}} to set one, or null to remove it",
            fields_it_has(&fields)
        ))),
        value => mail_from_field(value, domain),
    }
}

fn mail_from_field(
    value: Option<&Value>,
    domain: &DomainName,
) -> Result<Option<MailFromLabel>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(label)) => MailFromLabel::parse(label, domain)
            .map(Some)
            .map_err(|invalid| ApiError::InvalidMailFrom(invalid.why().into())),
        Some(_) => Err(ApiError::InvalidMailFrom(
            "`mail_from_subdomain` must be a string such as \"send\", or null".into(),
        )),
    }
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
