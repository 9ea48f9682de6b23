//! The HTTP server: each request refused as API Gateway and the authorizer would,
//! or turned into the Lambda's request and run by the route's handler.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::http::header;
use shared::authorizer::{Decision, decide};
use shared::store::KeyStore;
use shared::{ApiError, App};
use tokio::net::TcpListener;

use crate::DevKeys;
use crate::gateway::{ApiGatewayRequest, api_gateway_event};
use crate::routes::{Route, allow_header, route, run};

/// Bodies above this are refused by the server itself. The handlers' own limit
/// (16 KiB) is lower, so they answer 413 as they would behind API Gateway.
const MAX_SERVER_BODY_BYTES: usize = 1024 * 1024;

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
            if let (ApiError::MethodNotAllowed, Some(allow)) = (&error, allow_header(&path))
                && let Ok(allow) = lambda_http::http::HeaderValue::from_str(&allow)
            {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            response
        }
    };
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
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
