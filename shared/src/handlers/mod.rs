//! One handler per endpoint. Each takes the process's `App` and the request API
//! Gateway sent, turns it into a call of a use case (`domains`) and its result
//! into the response, and always answers: errors become JSON responses here, and
//! every request is logged once.

mod claims;
mod paging;

pub use paging::{MAX_CURSOR, MAX_PAGE};

use std::future::Future;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::app::App;
use crate::domains;
use crate::error::{ApiError, json_response};
use crate::records::zone_file;
use crate::request::{create_body, mail_from_body, organization_id, request_id, tenant_name};

/// What every handler returns: always a response (errors are JSON responses too).
pub type HandlerResult = Result<Response<Body>, lambda_http::Error>;

/// Defines each endpoint's handler: it runs its work through `respond`, which
/// logs the request under the handler's name.
macro_rules! endpoints {
    ($($(#[$doc:meta])* $handler:ident => $work:path;)*) => {$(
        $(#[$doc])*
        pub async fn $handler(app: &App, request: Request) -> HandlerResult {
            respond(stringify!($handler), &request, $work(app, &request)).await
        }
    )*};
}

endpoints! {
    /// `POST /domains`
    create_domain => create;
    /// `GET /domains`
    list_domains => list;
    /// `GET /domains/{domain}`
    get_domain => get;
    /// `GET /domains/{domain}/dns-records`
    get_dns_records => dns_records;
    /// `POST /domains/{domain}/verify`
    verify_domain => verify;
    /// `PATCH /domains/{domain}`: sets or removes the custom MAIL FROM subdomain.
    update_domain => update;
    /// `DELETE /domains/{domain}`
    delete_domain => delete;
    /// `POST /domain-claims`
    create_domain_claim => claims::create;
    /// `GET /domain-claims`
    list_domain_claims => claims::list;
    /// `GET /domain-claims/{domain}`
    get_domain_claim => claims::get;
    /// `POST /domain-claims/{domain}/verify`
    verify_domain_claim => claims::verify;
    /// `DELETE /domain-claims/{domain}`
    delete_domain_claim => claims::delete;
}

/// Runs an endpoint, turns its error into the contract's JSON error and logs the
/// request once (never its headers, so never its key).
async fn respond(
    operation: &'static str,
    request: &Request,
    work: impl Future<Output = Result<Response<Body>, ApiError>>,
) -> HandlerResult {
    let started = Instant::now();
    let response = work.await.unwrap_or_else(|error| error.to_response());
    let status = response.status().as_u16();
    let request_id = request_id(request);
    let organization_id = organization_id(request).unwrap_or_default();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if response.status().is_server_error() {
        tracing::error!(operation, request_id, organization_id, method = %request.method(), path = request.uri().path(), status, elapsed_ms, "request failed");
    } else {
        tracing::info!(operation, request_id, organization_id, method = %request.method(), path = request.uri().path(), status, elapsed_ms, "request");
    }
    Ok(response)
}

async fn list(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let (limit, after) = paging::page_request(request)?;
    let page = domains::read::list(app, &organization_id, after.as_deref(), limit).await?;
    let mut response = json_response(StatusCode::OK, &page.domains);
    if let Some(next) = page.next {
        let cursor = paging::encode_cursor(&next);
        let link = format!("</domains?limit={limit}&cursor={cursor}>; rel=\"next\"");
        if let (Ok(cursor), Ok(link)) =
            (HeaderValue::from_str(&cursor), HeaderValue::from_str(&link))
        {
            response.headers_mut().insert("x-next-cursor", cursor);
            response.headers_mut().insert(header::LINK, link);
        }
    }
    Ok(response)
}

async fn create(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let (name, mail_from) = create_body(request)?;
    let domain = domains::create::create(app, &organization_id, name, mail_from).await?;
    Ok(created(&domain, &format!("/domains/{}", domain.name)))
}

async fn get(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let domain = domains::read::find(app, &tenant_name(request)?).await?;
    Ok(json_response(StatusCode::OK, &domain))
}

/// How `GET .../dns-records` answers, from `?format=`.
enum RecordsFormat {
    Json,
    Bind,
}

fn records_format(request: &Request) -> Result<RecordsFormat, ApiError> {
    let format = request
        .query_string_parameters_ref()
        .and_then(|query| query.first("format").map(str::to_ascii_lowercase));
    match format.as_deref() {
        None | Some("json") => Ok(RecordsFormat::Json),
        Some("bind") => Ok(RecordsFormat::Bind),
        Some(_) => Err(ApiError::InvalidFormat),
    }
}

async fn dns_records(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let format = records_format(request)?;
    let domain = domains::read::with_records(app, &tenant_name(request)?).await?;
    Ok(match format {
        RecordsFormat::Json => json_response(StatusCode::OK, &domain.records),
        RecordsFormat::Bind => {
            let mut response = Response::new(Body::Text(zone_file(&domain.name, &domain.records)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/dns; charset=utf-8"),
            );
            response
        }
    })
}

async fn verify(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let domain = domains::verify::verify(app, &tenant_name(request)?).await?;
    Ok(json_response(StatusCode::OK, &domain))
}

async fn update(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    // The domain first: a missing domain is 404 whatever the body says.
    let domain = domains::read::find_live(app, &tenant_name(request)?).await?;
    let label = mail_from_body(request, &domain.name)?;
    let domain = domains::mail_from::update(app, domain, label).await?;
    Ok(json_response(StatusCode::OK, &domain))
}

async fn delete(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let domain = domains::delete::delete(app, &tenant_name(request)?).await?;
    Ok(json_response(StatusCode::OK, &domain))
}

/// 201 with the new resource and where it lives.
fn created<T: serde::Serialize + ?Sized>(body: &T, location: &str) -> Response<Body> {
    let mut response = json_response(StatusCode::CREATED, body);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The table's stream (a batch of records): each domain change published as its
/// event; the record to retry from, if one could not be.
pub async fn publish_events(
    sink: &dyn crate::publishing::EventSink,
    event: lambda_runtime::LambdaEvent<aws_lambda_events::event::dynamodb::Event>,
) -> Result<aws_lambda_events::event::streams::DynamoDbEventResponse, std::convert::Infallible> {
    Ok(crate::publishing::publish_stream_batch(sink, &event.payload).await)
}

/// Scheduled (EventBridge) re-verification, until the deadline. The schedule's
/// tick (or any other event, such as a manual invoke) sweeps everything, or with
/// a fan-out starts the other workers and sweeps worker 0's share; a worker's
/// task sweeps its share (`fanout`).
pub async fn reverify_pending(
    app: &App,
    fanout: Option<&crate::fanout::Fanout>,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<domains::scheduler::Summary, domains::scheduler::SchedulerError> {
    use crate::domains::scheduler::{SchedulerError, run_before_deadline};
    use crate::fanout::Invocation;
    let deadline = event.context.deadline;
    match crate::fanout::invocation_of(&event.payload).map_err(SchedulerError::BadTask)? {
        Invocation::Worker(slice) => run_before_deadline(app, deadline, slice).await,
        Invocation::Tick => match fanout {
            None => run_before_deadline(app, deadline, crate::store::DueSlice::ALL).await,
            Some(fanout) => {
                // The others start first: they sweep while this one does.
                let started = fanout.start_others().await;
                let summary = run_before_deadline(app, deadline, fanout.own_slice()).await?;
                started.map_err(SchedulerError::FanOut)?;
                Ok(summary)
            }
        },
    }
}
