//! The dev server: turns each HTTP request into the request API Gateway (HTTP API,
//! payload 2.0) would hand the Lambda, with the authorizer's context, and runs the
//! same handler the Lambda runs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::http::{Method, header};
use serde_json::{Value, json};
use shared::authorizer::{Decision, decide};
use shared::store::KeyStore;
use shared::{ApiError, App, handlers};
use tokio::net::TcpListener;

pub mod events;

/// Bodies above this are refused by the server itself. The handlers' own limit
/// (16 KiB) is lower, so they answer 413 as they would behind API Gateway.
const MAX_SERVER_BODY_BYTES: usize = 1024 * 1024;

/// Which handler a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateDomain,
    ListDomains,
    GetDomain,
    GetDnsRecords,
    VerifyDomain,
    UpdateDomain,
    DeleteDomain,
    CreateDomainClaim,
    ListDomainClaims,
    GetDomainClaim,
    VerifyDomainClaim,
    DeleteDomainClaim,
}

impl Route {
    /// The API Gateway route key, as in template.yaml.
    pub fn key(self) -> &'static str {
        match self {
            Self::CreateDomain => "POST /domains",
            Self::ListDomains => "GET /domains",
            Self::GetDomain => "GET /domains/{domain}",
            Self::GetDnsRecords => "GET /domains/{domain}/dns-records",
            Self::VerifyDomain => "POST /domains/{domain}/verify",
            Self::UpdateDomain => "PATCH /domains/{domain}",
            Self::DeleteDomain => "DELETE /domains/{domain}",
            Self::CreateDomainClaim => "POST /domain-claims",
            Self::ListDomainClaims => "GET /domain-claims",
            Self::GetDomainClaim => "GET /domain-claims/{domain}",
            Self::VerifyDomainClaim => "POST /domain-claims/{domain}/verify",
            Self::DeleteDomainClaim => "DELETE /domain-claims/{domain}",
        }
    }
}

/// Matches a path to a route; the `{domain}` segment comes back percent-decoded.
pub fn route(method: &Method, path: &str) -> Result<(Route, Option<String>), ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let decode = |segment: &str| {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| ApiError::DomainNotFound)
    };
    let (candidates, domain): (&[(Method, Route)], Option<String>) = match segments.as_slice() {
        ["domains"] => (
            &[
                (Method::POST, Route::CreateDomain),
                (Method::GET, Route::ListDomains),
            ],
            None,
        ),
        ["domains", domain] if !domain.is_empty() => (
            &[
                (Method::GET, Route::GetDomain),
                (Method::PATCH, Route::UpdateDomain),
                (Method::DELETE, Route::DeleteDomain),
            ],
            Some(decode(domain)?),
        ),
        ["domains", domain, "dns-records"] if !domain.is_empty() => (
            &[(Method::GET, Route::GetDnsRecords)],
            Some(decode(domain)?),
        ),
        ["domains", domain, "verify"] if !domain.is_empty() => (
            &[(Method::POST, Route::VerifyDomain)],
            Some(decode(domain)?),
        ),
        ["domain-claims"] => (
            &[
                (Method::POST, Route::CreateDomainClaim),
                (Method::GET, Route::ListDomainClaims),
            ],
            None,
        ),
        ["domain-claims", domain] if !domain.is_empty() => (
            &[
                (Method::GET, Route::GetDomainClaim),
                (Method::DELETE, Route::DeleteDomainClaim),
            ],
            Some(decode(domain)?),
        ),
        ["domain-claims", domain, "verify"] if !domain.is_empty() => (
            &[(Method::POST, Route::VerifyDomainClaim)],
            Some(decode(domain)?),
        ),
        _ => return Err(ApiError::RouteNotFound),
    };
    candidates
        .iter()
        .find(|(m, _)| m == method)
        .map(|(_, route)| (*route, domain))
        .ok_or(ApiError::MethodNotAllowed)
}

/// The `Allow` header of a 405 for `path` (RFC 9110 15.5.6).
pub fn allow_header(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["domains"] => Some("GET, POST"),
        ["domains", d] if !d.is_empty() => Some("GET, PATCH, DELETE"),
        ["domains", d, "dns-records"] if !d.is_empty() => Some("GET"),
        ["domains", d, "verify"] if !d.is_empty() => Some("POST"),
        ["domain-claims"] => Some("GET, POST"),
        ["domain-claims", d] if !d.is_empty() => Some("GET, DELETE"),
        ["domain-claims", d, "verify"] if !d.is_empty() => Some("POST"),
        _ => None,
    }
}

/// API keys of the dev server: SHA-256 of the key -> organization id. Like the
/// authorizer's, kept and compared only as hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevKeys(HashMap<String, String>);

impl DevKeys {
    /// `key1=org_a,key2=org_b`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((key, org)) if !key.trim().is_empty() && !org.trim().is_empty() => {
                    keys.insert(shared::keys::hash_key(key.trim()), org.trim().to_string());
                }
                _ => return Err(format!("DEV_API_KEYS: {pair:?} is not key=organization_id")),
            }
        }
        if keys.is_empty() {
            return Err("DEV_API_KEYS names no key".into());
        }
        Ok(Self(keys))
    }

    /// Organization of `Authorization: Bearer <key>`: 401 without a bearer key,
    /// 403 for a key that is not known.
    pub fn authorize(&self, authorization: Option<&str>) -> Result<String, ApiError> {
        let key = authorization
            .and_then(shared::keys::bearer_key)
            .ok_or(ApiError::Unauthorized)?;
        self.0
            .get(&shared::keys::hash_key(key))
            .cloned()
            .ok_or(ApiError::Forbidden)
    }

    pub fn organizations(&self) -> Vec<&str> {
        let mut orgs: Vec<&str> = self.0.values().map(String::as_str).collect();
        orgs.sort_unstable();
        orgs.dedup();
        orgs
    }
}

pub struct DevServer {
    pub app: App,
    /// `DEV_API_KEYS`, checked first.
    pub dev_keys: Option<DevKeys>,
    /// With `--aws`: keys made by `domains-admin`, checked by the authorizer's code.
    pub key_store: Option<Arc<dyn KeyStore>>,
}

impl DevServer {
    /// The organization for an `Authorization` header, as API Gateway and the
    /// authorizer would decide it: 401 without a bearer key, 403 for a refused one.
    pub async fn authorize(&self, authorization: Option<&str>) -> Result<String, ApiError> {
        let dev = match &self.dev_keys {
            Some(keys) => keys.authorize(authorization),
            None => Err(ApiError::Unauthorized),
        };
        match (dev, &self.key_store) {
            (Ok(organization_id), _) => Ok(organization_id),
            (Err(dev_error), None) => Err(dev_error),
            (Err(_), Some(store)) => match decide(store.as_ref(), authorization).await {
                Ok(Decision::Allowed {
                    organization_id, ..
                }) => Ok(organization_id),
                Ok(Decision::MissingKey) => Err(ApiError::Unauthorized),
                Ok(Decision::Refused) => Err(ApiError::Forbidden),
                Err(error) => Err(ApiError::Unavailable(error.to_string())),
            },
        }
    }
}

/// Serves until the listener fails; each connection on its own task.
pub async fn serve(listener: TcpListener, server: Arc<DevServer>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(&server, request).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}

async fn handle(
    server: &Arc<DevServer>,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let response = match to_lambda_request(server, request).await {
        Ok((route, lambda_request)) => {
            // On its own task, so a panicking handler becomes a 500 (as the Lambda
            // runtime reports a failed invocation) instead of a dropped connection.
            let server = server.clone();
            tokio::spawn(async move { run(&server.app, route, lambda_request).await })
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(method = %method, path, status = 500, cause = "the handler panicked", "request failed");
                    ApiError::Internal("handler panicked".into()).to_response()
                })
        }
        Err(error) => {
            // Refused before any handler ran (API Gateway and the authorizer's
            // part): logged once here, the cause of a 5xx included (never to the
            // caller, never the key).
            let status = error.status().as_u16();
            if error.status().is_server_error() {
                tracing::error!(method = %method, path, status, code = error.code(), cause = %error, "request refused");
            } else {
                tracing::info!(method = %method, path, status, code = error.code(), "request refused");
            }
            let mut response = error.to_response();
            if let (ApiError::MethodNotAllowed, Some(allow)) = (&error, allow_header(&path)) {
                response.headers_mut().insert(
                    header::ALLOW,
                    lambda_http::http::HeaderValue::from_static(allow),
                );
            }
            response
        }
    };
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
}

async fn run(
    app: &App,
    route: Route,
    request: lambda_http::Request,
) -> lambda_http::Response<lambda_http::Body> {
    let result = match route {
        Route::CreateDomain => handlers::create_domain(app, request).await,
        Route::ListDomains => handlers::list_domains(app, request).await,
        Route::GetDomain => handlers::get_domain(app, request).await,
        Route::GetDnsRecords => handlers::get_dns_records(app, request).await,
        Route::VerifyDomain => handlers::verify_domain(app, request).await,
        Route::UpdateDomain => handlers::update_domain(app, request).await,
        Route::DeleteDomain => handlers::delete_domain(app, request).await,
        Route::CreateDomainClaim => handlers::create_domain_claim(app, request).await,
        Route::ListDomainClaims => handlers::list_domain_claims(app, request).await,
        Route::GetDomainClaim => handlers::get_domain_claim(app, request).await,
        Route::VerifyDomainClaim => handlers::verify_domain_claim(app, request).await,
        Route::DeleteDomainClaim => handlers::delete_domain_claim(app, request).await,
    };
    result.unwrap_or_else(|error| ApiError::Internal(error.to_string()).to_response())
}

async fn to_lambda_request(
    server: &DevServer,
    request: hyper::Request<Incoming>,
) -> Result<(Route, lambda_http::Request), ApiError> {
    let (parts, body) = request.into_parts();
    let (route, domain) = route(&parts.method, parts.uri.path())?;
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let organization_id = server.authorize(authorization).await?;
    let body = Limited::new(body, MAX_SERVER_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?
        .to_bytes();
    let event = api_gateway_event(&ApiGatewayRequest {
        route,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| *name != header::AUTHORIZATION)
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect(),
        domain: domain.as_deref(),
        organization_id: &organization_id,
        body: &body,
    });
    let request = lambda_http::request::from_str(&event.to_string())
        .map_err(|e| ApiError::Internal(format!("building the API Gateway event: {e}")))?;
    Ok((route, request))
}

/// What an API Gateway event is made of.
pub struct ApiGatewayRequest<'a> {
    pub route: Route,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub domain: Option<&'a str>,
    pub organization_id: &'a str,
    pub body: &'a [u8],
}

/// The HTTP API (payload 2.0) event API Gateway sends after the Lambda
/// authorizer allowed the request.
pub fn api_gateway_event(request: &ApiGatewayRequest<'_>) -> Value {
    let now = chrono::Utc::now();
    let mut headers = serde_json::Map::new();
    for (name, value) in &request.headers {
        // API Gateway joins repeated headers with commas.
        let joined = match headers.get(*name).and_then(Value::as_str) {
            Some(existing) => format!("{existing},{value}"),
            None => value.to_string(),
        };
        headers.insert(name.to_string(), Value::String(joined));
    }
    let query: serde_json::Map<String, Value> = request
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8()
                .ok()?;
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .ok()?;
            Some((key.into_owned(), Value::String(value.into_owned())))
        })
        .collect();
    let (body, is_base64) = match std::str::from_utf8(request.body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(request.body),
            true,
        ),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": request.route.key(),
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").cloned().unwrap_or(Value::String(String::new())),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": request.route.key(),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
            "authorizer": { "lambda": { "organization_id": request.organization_id } },
        },
        "isBase64Encoded": is_base64,
    });
    if !request.body.is_empty() {
        event["body"] = Value::String(body);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if let Some(domain) = request.domain {
        event["pathParameters"] = json!({ "domain": domain });
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_contract() {
        let cases = [
            (Method::POST, "/domains", Route::CreateDomain, None),
            (Method::GET, "/domains", Route::ListDomains, None),
            (
                Method::GET,
                "/domains/example.com",
                Route::GetDomain,
                Some("example.com"),
            ),
            (
                Method::DELETE,
                "/domains/example.com",
                Route::DeleteDomain,
                Some("example.com"),
            ),
            (
                Method::GET,
                "/domains/example.com/dns-records",
                Route::GetDnsRecords,
                Some("example.com"),
            ),
            (
                Method::POST,
                "/domains/example.com/verify",
                Route::VerifyDomain,
                Some("example.com"),
            ),
            (
                Method::PATCH,
                "/domains/example.com",
                Route::UpdateDomain,
                Some("example.com"),
            ),
            (
                Method::GET,
                "/domains/b%C3%BCcher.de",
                Route::GetDomain,
                Some("bücher.de"),
            ),
            (
                Method::POST,
                "/domain-claims",
                Route::CreateDomainClaim,
                None,
            ),
            (Method::GET, "/domain-claims", Route::ListDomainClaims, None),
            (
                Method::GET,
                "/domain-claims/example.com",
                Route::GetDomainClaim,
                Some("example.com"),
            ),
            (
                Method::DELETE,
                "/domain-claims/example.com",
                Route::DeleteDomainClaim,
                Some("example.com"),
            ),
            (
                Method::POST,
                "/domain-claims/example.com/verify",
                Route::VerifyDomainClaim,
                Some("example.com"),
            ),
        ];
        for (method, path, expected, domain) in cases {
            let (route, decoded) = route(&method, path).expect(path);
            assert_eq!(route, expected, "{path}");
            assert_eq!(decoded.as_deref(), domain, "{path}");
        }
        assert!(matches!(
            route(&Method::GET, "/nope"),
            Err(ApiError::RouteNotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/domains/a/b/c"),
            Err(ApiError::RouteNotFound)
        ));
        assert!(matches!(
            route(&Method::PUT, "/domains"),
            Err(ApiError::MethodNotAllowed)
        ));
        assert!(matches!(
            route(&Method::POST, "/domains/x.com"),
            Err(ApiError::MethodNotAllowed)
        ));
    }

    #[test]
    fn keys_map_to_organizations() {
        let keys = DevKeys::parse("k1=org_a, k2=org_b").expect("valid");
        assert_eq!(
            keys.authorize(Some("Bearer k1")).ok().as_deref(),
            Some("org_a")
        );
        assert_eq!(
            keys.authorize(Some("bearer k2")).ok().as_deref(),
            Some("org_b")
        );
        assert!(matches!(keys.authorize(None), Err(ApiError::Unauthorized)));
        assert!(matches!(
            keys.authorize(Some("Basic k1")),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            keys.authorize(Some("Bearer ")),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            keys.authorize(Some("Bearer k3")),
            Err(ApiError::Forbidden)
        ));
        assert!(DevKeys::parse("k1").is_err());
        assert!(DevKeys::parse("").is_err());
    }

    #[test]
    fn events_parse_as_api_gateway_requests_with_the_authorizer_context() {
        use lambda_http::RequestExt;
        let event = api_gateway_event(&ApiGatewayRequest {
            route: Route::GetDomain,
            method: "GET",
            path: "/domains/example.com",
            query: "a=1",
            headers: vec![("content-type", "application/json")],
            domain: Some("example.com"),
            organization_id: "org_a",
            body: b"",
        });
        let request = lambda_http::request::from_str(&event.to_string()).expect("valid event");
        assert_eq!(
            shared::request::organization_id(&request).ok().as_deref(),
            Some("org_a")
        );
        assert_eq!(
            request.path_parameters().first("domain"),
            Some("example.com")
        );
        assert_eq!(request.query_string_parameters().first("a"), Some("1"));
        assert_eq!(request.uri().path(), "/domains/example.com");
    }
}
