//! One handler per endpoint. Each takes the process's `App` and the request API
//! Gateway sent, and always answers: errors become JSON responses here, and every
//! request is logged once.

use std::future::Future;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::app::App;
use crate::domain_name::DomainName;
use crate::error::{ApiError, json_response};
use crate::identity::IdentityError;
use crate::model::{
    CheckSchedule, DnsRecord, Domain, DomainStatus, RecordPurpose, RecordStatus, Timestamp,
};
use crate::records::{expected_records, zone_file};
use crate::request::{body_domain, organization_id, path_domain, request_id};
use crate::store::StoreError;

pub type HandlerResult = Result<Response<Body>, lambda_http::Error>;

/// `POST /domains`
pub async fn create_domain(app: &App, request: Request) -> HandlerResult {
    respond("create_domain", &request, create(app, &request)).await
}

/// `GET /domains`
pub async fn list_domains(app: &App, request: Request) -> HandlerResult {
    respond("list_domains", &request, list(app, &request)).await
}

/// `GET /domains/{domain}`
pub async fn get_domain(app: &App, request: Request) -> HandlerResult {
    respond("get_domain", &request, get(app, &request)).await
}

/// `GET /domains/{domain}/dns-records`
pub async fn get_dns_records(app: &App, request: Request) -> HandlerResult {
    respond("get_dns_records", &request, dns_records(app, &request)).await
}

/// `POST /domains/{domain}/verify`
pub async fn verify_domain(app: &App, request: Request) -> HandlerResult {
    respond("verify_domain", &request, verify(app, &request)).await
}

/// `DELETE /domains/{domain}`
pub async fn delete_domain(app: &App, request: Request) -> HandlerResult {
    respond("delete_domain", &request, delete(app, &request)).await
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

fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NameTaken => ApiError::DomainAlreadyExists,
        StoreError::DomainGone => ApiError::DomainNotFound,
        StoreError::Conflict => ApiError::Unavailable("the domain kept changing".into()),
        StoreError::KeyNotFound => ApiError::Internal("API key vanished".into()),
        StoreError::Throttled(detail) => ApiError::Throttled(detail),
        StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
        StoreError::Internal(detail) => ApiError::Internal(detail),
    }
}

fn identity_error(error: IdentityError) -> ApiError {
    match error {
        IdentityError::Throttled(detail) => ApiError::Throttled(detail),
        IdentityError::Unavailable(detail) => ApiError::Unavailable(detail),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Logs the internal detail of a server fault where it happens; the caller only
/// ever sees the generic message.
fn logged(error: ApiError) -> ApiError {
    if error.status().is_server_error() {
        tracing::error!(code = error.code(), detail = %error, "dependency failure");
    }
    error
}

/// The caller's domain named in the path, or 404.
async fn find(app: &App, request: &Request) -> Result<Domain, ApiError> {
    let organization_id = organization_id(request)?;
    let name = path_domain(request)?;
    let domain = app
        .store
        .get(&organization_id, &name)
        .await
        .map_err(|e| logged(store_error(e)))?
        .ok_or(ApiError::DomainNotFound)?;
    Ok(domain)
}

/// A domain left without its DKIM tokens by a create that failed half-way is taken
/// over by the next create of the same name by the same organization after this
/// long (a create in progress takes well under a second).
pub const CREATE_RESUME_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

async fn create(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let name = body_domain(request)?;
    let now = Timestamp::now();
    let mut domain = Domain::new(&organization_id, name.clone(), now);
    domain.records = expected_records(&name, &[], &app.receiving_region);

    // Claim the name first: an identity is only ever created for a claimed name.
    match app.store.insert(&domain).await {
        Ok(()) => {}
        Err(StoreError::NameTaken) => {
            domain = match app.store.get(&organization_id, &name).await {
                Ok(Some(leftover))
                    if leftover.dkim_tokens.is_empty()
                        && now.since(leftover.created_at) >= CREATE_RESUME_AFTER =>
                {
                    tracing::info!(domain = %name, "resuming a create that failed half-way");
                    leftover
                }
                _ => return Err(ApiError::DomainAlreadyExists),
            };
        }
        Err(error) => return Err(logged(store_error(error))),
    }

    let tokens = match create_identity(app, &name).await {
        Ok(tokens) => tokens,
        Err(error) => {
            undo_claim(app, &domain, &error).await;
            return Err(logged(identity_error(error)));
        }
    };

    domain.dkim_tokens = tokens;
    domain.records = expected_records(&name, &domain.dkim_tokens, &app.receiving_region);
    if let Err(error) = app.store.update(&mut domain).await {
        // The domain and its identity both exist; the tokens are read from SES
        // again by dns-records and verify.
        tracing::warn!(domain = %name, error = %error, "could not store DKIM tokens");
    }

    let mut response = json_response(StatusCode::CREATED, &domain);
    if let Ok(location) = HeaderValue::from_str(&format!("/domains/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// After SES failed to create the identity: remove what SES may have made anyway
/// (a 5xx or timeout leaves that open), then release the claim. If either step
/// fails, the domain stays as the record of the leftover: dns-records, verify,
/// delete or a later create of it finish or clean up the job.
async fn undo_claim(app: &App, domain: &Domain, cause: &IdentityError) {
    if matches!(cause, IdentityError::Unavailable(_))
        && let Err(error) = app.identities.delete(&domain.name).await
    {
        tracing::error!(domain = %domain.name, %error, "SES may hold an identity; keeping the domain to clean it up later");
        return;
    }
    if let Err(error) = app.store.delete(domain).await {
        tracing::error!(domain = %domain.name, %error, "could not release the claim after SES failed; the domain is kept");
    }
}

/// Creates the SES identity. An identity that already exists for a name we have
/// just claimed is a leftover (e.g. of a delete that failed half-way): adopt it.
async fn create_identity(app: &App, name: &DomainName) -> Result<Vec<String>, IdentityError> {
    match app.identities.create(name).await {
        Err(IdentityError::AlreadyExists) => {
            tracing::info!(domain = %name, "adopting an existing SES identity");
            app.identities.dkim_tokens(name).await
        }
        other => other,
    }
}

/// Most domains in one list response (and the default): about 2 MB of JSON,
/// well inside Lambda's 6 MB response limit.
pub const MAX_PAGE: usize = 1000;

/// `?limit=` and `?cursor=` of `GET /domains`.
fn page_request(request: &Request) -> Result<(usize, Option<DomainName>), ApiError> {
    let query = request.query_string_parameters_ref();
    let limit = match query.and_then(|q| q.first("limit")) {
        None => MAX_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or(ApiError::InvalidLimit)?,
    };
    let after = match query.and_then(|q| q.first("cursor")) {
        // An empty cursor (a URL template with nothing filled in) is no cursor.
        None | Some("") => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or(ApiError::InvalidCursor)?),
    };
    Ok((limit, after))
}

/// Cursors are opaque to callers: the last name of a page, base64url-encoded.
fn encode_cursor(name: &DomainName) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name.as_str())
}

fn decode_cursor(cursor: &str) -> Option<DomainName> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    DomainName::parse(std::str::from_utf8(&bytes).ok()?).ok()
}

async fn list(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let (limit, after) = page_request(request)?;
    let page = app
        .store
        .list_page(&organization_id, after.as_ref(), limit)
        .await
        .map_err(|e| logged(store_error(e)))?;
    let mut response = json_response(StatusCode::OK, &page.domains);
    if let Some(next) = page.next {
        let cursor = encode_cursor(&next);
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

async fn get(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let domain = find(app, request).await?;
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
    let mut domain = find(app, request).await?;
    if domain.dkim_tokens.is_empty() {
        fill_dkim_tokens(app, &mut domain)
            .await
            .map_err(|error| match error {
                IdentityError::Throttled(detail) => logged(ApiError::Throttled(detail)),
                other => {
                    tracing::warn!(domain = %domain.name, error = %other, "no DKIM tokens from SES");
                    ApiError::DkimUnavailable
                }
            })?;
    }
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

/// Reads the DKIM tokens from SES for a domain stored without them, adds the
/// DKIM records and stores the domain (best effort: the tokens are in the answer
/// either way).
async fn fill_dkim_tokens(app: &App, domain: &mut Domain) -> Result<(), IdentityError> {
    let mut created = false;
    let tokens = match app.identities.dkim_tokens(&domain.name).await {
        // A create that failed half-way left the domain without its identity.
        Err(IdentityError::NotFound) => {
            tracing::info!(domain = %domain.name, "creating the missing SES identity");
            created = true;
            create_identity(app, &domain.name).await?
        }
        other => other?,
    };
    if !tokens.is_empty() {
        domain.dkim_tokens = tokens;
        domain.records = merge_records(
            expected_records(&domain.name, &domain.dkim_tokens, &app.receiving_region),
            &domain.records,
        );
    }
    // A new identity must belong to a domain that still exists: the conditioned
    // write says so (and makes a delete that read the domain before start over).
    if created || !domain.dkim_tokens.is_empty() {
        match app.store.update(domain).await {
            Ok(()) => {}
            Err(StoreError::DomainGone) if created => {
                if let Err(error) = app.identities.delete(&domain.name).await {
                    tracing::error!(domain = %domain.name, %error, "an identity made for a domain deleted meanwhile could not be removed");
                }
                return Err(IdentityError::NotFound);
            }
            Err(error) => {
                tracing::warn!(domain = %domain.name, error = %error, "could not store DKIM tokens");
            }
        }
    }
    if domain.dkim_tokens.is_empty() {
        return Err(IdentityError::Other("SES returned no DKIM tokens".into()));
    }
    Ok(())
}

/// Keeps what earlier checks saw of records that are still expected.
fn merge_records(expected: Vec<DnsRecord>, previous: &[DnsRecord]) -> Vec<DnsRecord> {
    expected
        .into_iter()
        .map(|record| {
            previous
                .iter()
                .find(|p| {
                    p.record == record.record && p.fqdn == record.fqdn && p.value == record.value
                })
                .cloned()
                .unwrap_or(record)
        })
        .collect()
}

/// Writes of a verify that lose a race (to the scheduled job) are retried this
/// many times on a fresh read.
const VERIFY_WRITE_ATTEMPTS: usize = 3;

async fn verify(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let mut domain = find(app, request).await?;
    if domain.dkim_tokens.is_empty()
        && let Err(error) = fill_dkim_tokens(app, &mut domain).await
    {
        // Verify still checks the records it has; the domain cannot be verified
        // without DKIM records, which the answer shows.
        tracing::warn!(domain = %domain.name, error = %error, "verifying without DKIM tokens");
    }

    let checked = app.dns.check(&domain.name, &domain.records).await;
    let now = Timestamp::now();
    for attempt in 1..=VERIFY_WRITE_ATTEMPTS {
        domain.records = checked.clone();
        apply_check(&mut domain, now);
        match app.store.update(&mut domain).await {
            Ok(()) => return Ok(json_response(StatusCode::OK, &domain)),
            // This check is the newest: apply it to what is stored now.
            Err(StoreError::Conflict) if attempt < VERIFY_WRITE_ATTEMPTS => {
                domain = find(app, request).await?;
            }
            Err(error) => return Err(logged(store_error(error))),
        }
    }
    Err(logged(ApiError::Unavailable(
        "verify kept losing write races".into(),
    )))
}

/// Sets the domain's state from its checked records. A manual verify restarts the
/// verification window: not all verified leaves the domain pending, checked again
/// by the scheduled job a minute later.
pub fn apply_check(domain: &mut Domain, now: Timestamp) {
    let has_dkim = domain
        .records
        .iter()
        .any(|r| r.record == RecordPurpose::Dkim);
    let all_verified = has_dkim
        && domain
            .records
            .iter()
            .all(|r| r.status == RecordStatus::Verified);
    domain.last_checked_at = Some(now);
    domain.updated_at = now;
    domain.schedule = CheckSchedule::starting(now, domain.schedule.version);
    if all_verified {
        domain.verified = true;
        domain.status = DomainStatus::Verified;
        domain.verified_at.get_or_insert(now);
        domain.schedule.next_check_at = Some(now.plus(crate::scheduler::VERIFIED_RECHECK));
    } else {
        domain.verified = false;
        domain.status = DomainStatus::Pending;
        domain.verified_at = None;
    }
}

/// Deletes that find the domain written since they read it start over this many
/// times.
const DELETE_ATTEMPTS: usize = 3;

async fn delete(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    for _ in 0..DELETE_ATTEMPTS {
        let domain = find(app, request).await?;
        // Identity first: if the store delete then fails, the domain is still listed
        // and the delete can simply be retried (a missing identity counts as deleted).
        app.identities
            .delete(&domain.name)
            .await
            .map_err(|e| logged(identity_error(e)))?;
        // Conditioned on the version read: a verify that recreated the identity
        // meanwhile changed the domain, and the delete starts over.
        match app.store.delete(&domain).await {
            Ok(()) => return Ok(json_response(StatusCode::OK, &domain)),
            Err(StoreError::Conflict) => continue,
            Err(error) => return Err(logged(store_error(error))),
        }
    }
    Err(logged(ApiError::Unavailable(
        "delete kept losing write races".into(),
    )))
}

/// Time kept back from the invocation deadline: a domain check can take a few
/// seconds when DNS is slow, and the run must answer before the Lambda timeout.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Scheduled (EventBridge) re-verification. The event's content is not used: any
/// schedule tick (or a manual invoke) runs one pass, until the deadline.
pub async fn reverify_pending(
    app: &App,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<crate::scheduler::Summary, crate::scheduler::SchedulerError> {
    // 0 (no deadline) when invoked outside Lambda, e.g. in tests.
    let deadline_ms = event.context.deadline;
    let should_stop = move || {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        deadline_ms > 0 && now_ms + DEADLINE_MARGIN.as_millis() as u64 >= deadline_ms
    };
    crate::scheduler::run(
        app,
        Timestamp::now(),
        crate::scheduler::RunOptions::default(),
        &should_stop,
    )
    .await
}
