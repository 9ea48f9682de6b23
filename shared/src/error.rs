//! One error type for every endpoint, mapped to a status, a code and a fixed
//! message in one place. Details of server faults go to the log, never to the caller.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// Seconds a throttled caller is told to wait.
pub const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, thiserror::Error)]
/// Every error an endpoint answers; one `match` maps each to its status, message and code.
pub enum ApiError {
    /// With why, in the caller's terms (the response's `detail`).
    #[error("invalid domain name: {0}")]
    InvalidDomainName(String),
    /// With why (the response's `detail`).
    #[error("invalid JSON body: {0}")]
    InvalidJson(&'static str),
    /// With why, in the caller's terms (the response's `detail`).
    #[error("invalid MAIL FROM subdomain: {0}")]
    InvalidMailFrom(String),
    #[error("unsupported format")]
    /// `?format=` is neither `json` nor `bind`.
    InvalidFormat,
    #[error("invalid limit")]
    /// `?limit=` is not 1-1000.
    InvalidLimit,
    #[error("invalid cursor")]
    /// `?cursor=` is not a cursor.
    InvalidCursor,
    #[error("DKIM attributes unavailable")]
    /// SES could not give the DKIM tokens (the contract's 400).
    DkimUnavailable,
    #[error("no organization in the request")]
    /// No key (401).
    Unauthorized,
    #[error("key refused")]
    /// An unknown or revoked key (403).
    Forbidden,
    #[error("domain not found")]
    /// No such domain, or another organization's (never says which).
    DomainNotFound,
    #[error("claim not found")]
    /// No such claim, or another organization's (never says which).
    ClaimNotFound,
    #[error("no such route")]
    /// No such route (dev server).
    RouteNotFound,
    #[error("method not allowed")]
    /// A route without this method (dev server).
    MethodNotAllowed,
    #[error("domain already exists")]
    /// The name is held, or SES holds an identity for it that this API did not make.
    DomainAlreadyExists,
    /// A parent of the name is held by another organization: only a claim takes
    /// it. With the `detail` said to the caller.
    #[error("parent domain held by another organization: {0}")]
    ParentDomainHeld(String),
    #[error("body too large")]
    /// The body is over 16 KiB.
    PayloadTooLarge,
    #[error("domain limit reached")]
    /// The organization holds its maximum number of domains.
    DomainLimitReached,
    /// The organization has its maximum number of open claims.
    #[error("claim limit reached")]
    ClaimLimitReached,
    /// Another request is setting the domain up or removing it.
    #[error("domain busy")]
    DomainBusy,
    /// SES refuses more identities for the account.
    #[error("identity limit reached: {0}")]
    IdentityLimit(String),
    /// The domain (or claim) was checked less than the interval ago.
    #[error("too many checks")]
    TooManyChecks {
        /// Seconds until the next check may begin (`Retry-After`).
        retry_after: u64,
        /// When the last check's result was stored (what a read shows now).
        last_checked_at: Option<crate::model::Timestamp>,
    },
    /// A dependency is throttling us; the caller may retry shortly.
    #[error("throttled by a dependency: {0}")]
    Throttled(String),
    /// A dependency failed or timed out; the caller may retry.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    /// A fault of the service; the detail goes only to the log.
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    code: &'a str,
    /// Why, in the caller's terms, where there is more to say than the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    /// `too_many_checks`: when the last check's result was stored (absent when
    /// there is none yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_checked_at: Option<crate::model::Timestamp>,
}

impl ApiError {
    /// A name cannot be created because another organization holds `parent`.
    pub fn parent_domain_held(parent: &str) -> Self {
        Self::ParentDomainHeld(format!(
            "{parent} is held by another organization, and in one SES account a subdomain's identity takes that subdomain's mail from its parent's; claim this name (POST /domain-claims) and publish the TXT record the claim gives, to prove you control its DNS"
        ))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidDomainName(_)
            | Self::InvalidJson(_)
            | Self::InvalidMailFrom(_)
            | Self::InvalidFormat
            | Self::InvalidLimit
            | Self::InvalidCursor
            | Self::DkimUnavailable => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::DomainNotFound | Self::ClaimNotFound | Self::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::DomainAlreadyExists | Self::DomainBusy | Self::ParentDomainHeld(_) => {
                StatusCode::CONFLICT
            }
            Self::DomainLimitReached | Self::ClaimLimitReached => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyChecks { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Throttled(_) | Self::Unavailable(_) | Self::IdentityLimit(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The caller-facing (message, code). Messages are fixed by the contract.
    pub fn message_and_code(&self) -> (&'static str, &'static str) {
        match self {
            Self::InvalidDomainName(_) => ("Invalid domain name format", "invalid_domain_name"),
            Self::InvalidJson(_) => ("Invalid JSON body: expected a JSON object", "invalid_json"),
            Self::InvalidMailFrom(_) => {
                ("Invalid MAIL FROM subdomain", "invalid_mail_from_subdomain")
            }
            Self::InvalidFormat => (
                "Unsupported format: use format=json (the default) or format=bind",
                "invalid_format",
            ),
            Self::InvalidLimit => (
                "Invalid limit: use a whole number from 1 to 1000",
                "invalid_limit",
            ),
            Self::InvalidCursor => (
                "Invalid cursor: use the value of the last page's X-Next-Cursor header",
                "invalid_cursor",
            ),
            Self::DkimUnavailable => ("Failed to get DKIM attributes", "dkim_unavailable"),
            Self::Unauthorized => ("Unauthorized", "unauthorized"),
            Self::Forbidden => ("Forbidden", "forbidden"),
            Self::DomainNotFound => ("Domain not found", "domain_not_found"),
            Self::ClaimNotFound => ("Claim not found", "claim_not_found"),
            Self::RouteNotFound => ("Route not found", "route_not_found"),
            Self::MethodNotAllowed => ("Method not allowed", "method_not_allowed"),
            Self::DomainAlreadyExists => ("Domain already exists", "domain_already_exists"),
            Self::ParentDomainHeld(_) => (
                "A parent domain of this name is held by another organization; claim the name to take it",
                "parent_domain_held",
            ),
            Self::PayloadTooLarge => ("Request body too large", "payload_too_large"),
            Self::DomainLimitReached => ("Domain limit reached", "domain_limit_reached"),
            Self::ClaimLimitReached => ("Claim limit reached", "claim_limit_reached"),
            Self::DomainBusy => (
                "Domain is being set up or removed by another request; retry in a few seconds",
                "domain_busy",
            ),
            Self::IdentityLimit(_) => (
                "The email service's limit of domains for this deployment is reached; contact the operator",
                "identity_limit_reached",
            ),
            Self::TooManyChecks { .. } => (
                "This was checked less than 10 seconds ago; retry after the time in Retry-After",
                "too_many_checks",
            ),
            Self::Throttled(_) => (
                "The service is busy; retry after the time in Retry-After",
                "throttled",
            ),
            Self::Unavailable(_) => (
                "A service this API depends on is unavailable; retry later",
                "service_unavailable",
            ),
            Self::Internal(_) => ("Internal server error", "internal_error"),
        }
    }

    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        self.message_and_code().1
    }

    /// Why, for the caller: only for errors the caller can fix, never for faults
    /// (their details stay in the log).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::InvalidDomainName(why) => Some(why),
            Self::InvalidJson(why) => Some(why),
            Self::InvalidMailFrom(why) => Some(why),
            Self::ParentDomainHeld(detail) => Some(detail),
            _ => None,
        }
    }

    /// The JSON error response (with `Retry-After` when the caller may retry).
    pub fn to_response(&self) -> Response<Body> {
        let (message, code) = self.message_and_code();
        let mut response = json_response(
            self.status(),
            &ErrorBody {
                message,
                code,
                detail: self.detail(),
                last_checked_at: match self {
                    Self::TooManyChecks {
                        last_checked_at, ..
                    } => *last_checked_at,
                    _ => None,
                },
            },
        );
        let retry_after = match self {
            Self::Throttled(_) | Self::Unavailable(_) => Some(u64::from(RETRY_AFTER_SECONDS)),
            Self::TooManyChecks { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON response. Serializing our own types cannot fail; if it ever did, the
/// caller gets a plain 500 rather than a panic.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"message":"Internal server error","code":"internal_error"}"#.to_string(),
        ),
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).expect("JSON body")
    }

    #[test]
    fn contract_messages_are_exact() {
        let cases = [
            (
                ApiError::InvalidDomainName("why".into()),
                400,
                "Invalid domain name format",
            ),
            (
                ApiError::DkimUnavailable,
                400,
                "Failed to get DKIM attributes",
            ),
            (ApiError::Unauthorized, 401, "Unauthorized"),
            (ApiError::Forbidden, 403, "Forbidden"),
            (ApiError::DomainNotFound, 404, "Domain not found"),
            (ApiError::DomainAlreadyExists, 409, "Domain already exists"),
            (ApiError::PayloadTooLarge, 413, "Request body too large"),
            (ApiError::DomainLimitReached, 403, "Domain limit reached"),
            (ApiError::ClaimNotFound, 404, "Claim not found"),
            (ApiError::ClaimLimitReached, 403, "Claim limit reached"),
        ];
        for (error, status, message) in cases {
            let response = error.to_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(body(&response)["message"], message);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        }
    }

    #[test]
    fn server_faults_never_leak_details() {
        let secret = "arn:aws:dynamodb:us-east-2:123:table/Secret ValidationException";
        for error in [
            ApiError::Internal(secret.into()),
            ApiError::Unavailable(secret.into()),
            ApiError::Throttled(secret.into()),
            ApiError::IdentityLimit(secret.into()),
        ] {
            let response = error.to_response();
            let text = String::from_utf8_lossy(response.body().as_ref()).to_string();
            assert!(!text.contains("Secret"), "{text}");
            assert!(response.status().is_server_error());
        }
    }

    #[test]
    fn too_many_checks_says_when_to_retry_and_when_the_last_result_was_stored() {
        let at = crate::model::Timestamp::now();
        let response = ApiError::TooManyChecks {
            retry_after: 7,
            last_checked_at: Some(at),
        }
        .to_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let body = body(&response);
        assert_eq!(body["code"], "too_many_checks");
        assert_eq!(body["last_checked_at"], at.to_string());
    }

    #[test]
    fn throttling_says_when_to_retry() {
        let response = ApiError::Throttled("ses".into()).to_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
