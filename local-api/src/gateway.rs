//! The request API Gateway (HTTP API, payload 2.0) hands a Lambda, with the
//! authorizer's context.

use base64::Engine;
use serde_json::{Value, json};

use crate::Route;

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
