//! The API-key authorizer: `Authorization: Bearer <key>` to an organization.
//! Used by the authorizer Lambda and by the dev server's `--aws` mode alike.

use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use serde_json::json;

use crate::keys::{bearer_key, hash_key, is_well_formed};
use crate::store::{KeyStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
/// What the authorizer decides about a request's key.
pub enum Decision {
    /// An active key: the request acts for its organization.
    Allowed {
        /// The organization the key acts for.
        organization_id: String,
        /// Which key (for the log; never the key itself).
        key_id: String,
    },
    /// No `Authorization: Bearer <key>` at all (401).
    MissingKey,
    /// A key that is malformed, unknown or revoked (403).
    Refused,
}

/// Decides on an `Authorization` header value. Only the key's hash is looked up;
/// a malformed key is refused without a lookup.
pub async fn decide(
    keys: &dyn KeyStore,
    authorization: Option<&str>,
) -> Result<Decision, StoreError> {
    let Some(key) = authorization.and_then(bearer_key) else {
        return Ok(Decision::MissingKey);
    };
    if !is_well_formed(key) {
        return Ok(Decision::Refused);
    }
    Ok(match keys.find_key(&hash_key(key)).await? {
        Some(record) if record.is_active() => Decision::Allowed {
            organization_id: record.organization_id,
            key_id: record.key_id,
        },
        _ => Decision::Refused,
    })
}

/// The key store failed: the invocation fails and API Gateway answers 500.
#[derive(Debug, thiserror::Error)]
#[error("the API-key authorizer could not read keys: {0}")]
pub struct AuthorizerError(#[from] StoreError);

impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    fn from(error: AuthorizerError) -> Self {
        Self {
            error_type: "AuthorizerStoreError".into(),
            error_message: error.to_string(),
        }
    }
}

/// The HTTP API (payload 2.0, simple responses) authorizer. A store failure is an
/// error (API Gateway answers 500) rather than a wrong "forbidden".
pub async fn authorize(
    keys: &dyn KeyStore,
    event: &ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, AuthorizerError> {
    let authorization = event
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            event
                .identity_source
                .as_ref()
                .and_then(|sources| sources.first())
                .map(String::as_str)
        });
    let decision = decide(keys, authorization).await?;
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    match decision {
        Decision::Allowed {
            organization_id,
            key_id,
        } => {
            tracing::info!(%organization_id, %key_id, route = event.route_key.as_deref().unwrap_or(""), "key allowed");
            response.is_authorized = true;
            response.context = json!({ "organization_id": organization_id, "key_id": key_id });
        }
        refused => {
            tracing::info!(decision = ?refused, route = event.route_key.as_deref().unwrap_or(""), "key refused");
            response.is_authorized = false;
            response.context = json!({});
        }
    }
    Ok(response)
}
