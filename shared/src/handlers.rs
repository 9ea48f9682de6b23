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
use crate::lifecycle;
use crate::model::{DnsRecord, Domain, Timestamp};
use crate::provisioning::{self, SetupError};
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
        StoreError::LimitReached => ApiError::DomainLimitReached,
        StoreError::TooLarge(detail) => ApiError::Internal(detail),
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
        IdentityError::LimitExceeded(detail) => ApiError::IdentityLimit(detail),
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

/// `find`, but a domain being deleted is already gone: nothing is checked or set
/// up for it any more.
async fn find_live(app: &App, request: &Request) -> Result<Domain, ApiError> {
    let domain = find(app, request).await?;
    if domain.deleting_since.is_some() {
        return Err(ApiError::DomainNotFound);
    }
    Ok(domain)
}

fn setup_error(error: SetupError) -> ApiError {
    match error {
        SetupError::NotOurs => ApiError::DomainAlreadyExists,
        SetupError::Identity(error) => identity_error(error),
    }
}

async fn create(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let name = body_domain(request)?;
    let now = Timestamp::now();
    let mut domain = Domain::new(&organization_id, name.clone(), now);
    domain.records = expected_records(&name, &[], &app.receiving_region);

    // Claim the name (with a setup mark) first: an identity is only ever created
    // for a claimed name.
    match app
        .store
        .insert(&domain, app.max_domains_per_organization)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NameTaken) => domain = resume_setup(app, &organization_id, &name).await?,
        Err(error) => return Err(logged(store_error(error))),
    }

    let tokens = match provisioning::create_identity(app, &domain).await {
        Ok(tokens) => tokens,
        Err(error) => {
            release_claim(app, &domain, &error).await;
            return Err(logged(setup_error(error)));
        }
    };
    store_tokens(app, &mut domain, tokens).await?;

    let mut response = json_response(StatusCode::CREATED, &domain);
    if let Ok(location) = HeaderValue::from_str(&format!("/domains/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A create of a name the organization already holds: taken over if it is a
/// create that failed half-way (no DKIM tokens, setup mark gone stale), by taking
/// a fresh setup mark; otherwise the name exists.
async fn resume_setup(
    app: &App,
    organization_id: &str,
    name: &DomainName,
) -> Result<Domain, ApiError> {
    let now = Timestamp::now();
    let mut leftover = match app.store.get(organization_id, name).await {
        Ok(Some(leftover))
            if leftover.dkim_tokens.is_empty()
                && leftover.deleting_since.is_none()
                && !provisioning::setup_in_progress(&leftover, now) =>
        {
            leftover
        }
        _ => return Err(ApiError::DomainAlreadyExists),
    };
    tracing::info!(domain = %name, "resuming a create that failed half-way");
    leftover.setup_started_at = Some(now);
    match app.store.update(&mut leftover).await {
        Ok(()) => Ok(leftover),
        Err(StoreError::Conflict | StoreError::DomainGone) => Err(ApiError::DomainAlreadyExists),
        Err(error) => Err(logged(store_error(error))),
    }
}

/// Writes the DKIM tokens (and records) into the domain and clears its setup
/// mark. A domain written meanwhile is read again and the tokens applied to it; a
/// domain removed meanwhile is `DomainBusy` (never a 201 for a removed domain).
async fn store_tokens(app: &App, domain: &mut Domain, tokens: Vec<String>) -> Result<(), ApiError> {
    for attempt in 1..=WRITE_ATTEMPTS {
        domain.dkim_tokens = tokens.clone();
        domain.records = merge_records(
            expected_records(&domain.name, &domain.dkim_tokens, &app.receiving_region),
            &domain.records,
        );
        domain.setup_started_at = None;
        match app.store.update(domain).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => {
                match app.store.get(&domain.organization_id, &domain.name).await {
                    Ok(Some(fresh)) if fresh.id == domain.id && fresh.deleting_since.is_none() => {
                        *domain = fresh;
                    }
                    Ok(_) => return Err(ApiError::DomainBusy),
                    Err(error) => return Err(logged(store_error(error))),
                }
            }
            Err(StoreError::DomainGone) => return Err(ApiError::DomainBusy),
            Err(error) => {
                // The domain and its identity both exist; a later dns-records,
                // verify or create of it reads the tokens from SES again.
                tracing::warn!(domain = %domain.name, %error, "could not store DKIM tokens");
                return Ok(());
            }
        }
    }
    Err(logged(ApiError::Unavailable(
        "the domain kept changing while its tokens were stored".into(),
    )))
}

/// After the identity could not be had: remove what SES may have made anyway (a
/// 5xx or timeout leaves that open; only an identity tagged for this
/// organization), then release the claim. If either step fails, the domain stays
/// as the record of the leftover: a later create, dns-records, verify or delete
/// of it finishes or cleans up the job.
async fn release_claim(app: &App, domain: &Domain, cause: &SetupError) {
    if matches!(cause, SetupError::Identity(IdentityError::Unavailable(_)))
        && let Err(error) =
            provisioning::remove_identity(app, &domain.name, &domain.organization_id).await
    {
        tracing::error!(domain = %domain.name, %error, "SES may hold an identity; keeping the domain to clean it up later");
        return;
    }
    let mut stored = domain.clone();
    // The claim goes with the domain; its count with it.
    for _ in 0..WRITE_ATTEMPTS {
        match app.store.delete(&stored).await {
            Ok(()) | Err(StoreError::DomainGone) => return,
            Err(StoreError::Conflict) => {
                match app.store.get(&domain.organization_id, &domain.name).await {
                    Ok(Some(fresh)) if fresh.id == domain.id => stored = fresh,
                    _ => return,
                }
            }
            Err(error) => {
                tracing::error!(domain = %domain.name, %error, "could not release the claim after SES failed; the domain is kept");
                return;
            }
        }
    }
}

/// Most domains in one list response (and the default): about 2 MB of JSON,
/// well inside Lambda's 6 MB response limit.
pub const MAX_PAGE: usize = 1000;

/// `?limit=` and `?cursor=` of `GET /domains`.
fn page_request(request: &Request) -> Result<(usize, Option<String>), ApiError> {
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

/// Cursors are opaque to callers: the last name of a page, base64url-encoded
/// without padding. Any base64url text of at most `MAX_CURSOR` characters is a
/// cursor (the page starts after the text it decodes to, in name order), so that
/// what the OpenAPI file says is a cursor is one.
pub const MAX_CURSOR: usize = 340;

fn cursor_engine() -> base64::engine::GeneralPurpose {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    )
}

fn encode_cursor(name: &DomainName) -> String {
    use base64::Engine;
    cursor_engine().encode(name.as_str())
}

fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    if cursor.len() > MAX_CURSOR {
        return None;
    }
    let bytes = cursor_engine().decode(cursor).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

async fn list(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let (limit, after) = page_request(request)?;
    let page = app
        .store
        .list_page(&organization_id, after.as_deref(), limit)
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
    let mut domain = find_live(app, request).await?;
    if domain.dkim_tokens.is_empty() {
        fill_dkim_tokens(app, &mut domain)
            .await
            .map_err(|error| match error {
                ApiError::Throttled(_) => logged(error),
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

/// Gets the DKIM tokens of a domain stored without them (a create that failed
/// half-way): from this organization's identity if there is one, else by making
/// it, under a fresh setup mark as a create does. While another request holds the
/// mark, only reads.
async fn fill_dkim_tokens(app: &App, domain: &mut Domain) -> Result<(), ApiError> {
    let now = Timestamp::now();
    if provisioning::setup_in_progress(domain, now) {
        let identity = app
            .identities
            .get(&domain.name)
            .await
            .map_err(identity_error)?;
        if identity.owner != Some(app.identity_owner(&domain.organization_id))
            || identity.tokens.is_empty()
        {
            return Err(ApiError::DomainBusy);
        }
        domain.dkim_tokens = identity.tokens;
        domain.records = merge_records(
            expected_records(&domain.name, &domain.dkim_tokens, &app.receiving_region),
            &domain.records,
        );
        return Ok(());
    }
    domain.setup_started_at = Some(now);
    match app.store.update(domain).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(ApiError::DomainBusy),
        Err(error) => return Err(logged(store_error(error))),
    }
    let tokens = provisioning::create_identity(app, domain)
        .await
        .map_err(|error| match error {
            // Someone else's identity has the name: no tokens to give.
            SetupError::NotOurs => ApiError::DkimUnavailable,
            SetupError::Identity(error) => identity_error(error),
        })?;
    if tokens.is_empty() {
        return Err(ApiError::DkimUnavailable);
    }
    store_tokens(app, domain, tokens).await
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

/// Writes that lose a race (to the scheduled job, another request) are retried
/// this many times on a fresh read.
const WRITE_ATTEMPTS: usize = 3;

async fn verify(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let mut domain = find_live(app, request).await?;
    if domain.dkim_tokens.is_empty()
        && let Err(error) = fill_dkim_tokens(app, &mut domain).await
    {
        // Verify still checks the records it has; the domain cannot be verified
        // without DKIM records, which the answer shows.
        tracing::warn!(domain = %domain.name, error = %error, "verifying without DKIM tokens");
    }

    let checked = app.dns.check(&domain.name, &domain.records).await;
    let now = Timestamp::now();
    let mut checked = checked;
    for attempt in 1..=WRITE_ATTEMPTS {
        domain.records = checked.clone();
        lifecycle::after_manual_check(&mut domain, now);
        match app.store.update(&mut domain).await {
            Ok(()) => return Ok(json_response(StatusCode::OK, &domain)),
            // This check is the newest: apply it to what is stored now.
            Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => {
                domain = find_live(app, request).await?;
            }
            // Refused for its size: what DNS returned is the zone's doing, not a
            // server fault; the verdicts are kept without what was observed.
            Err(StoreError::TooLarge(detail)) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(domain = %domain.name, %detail, "storing the check without observed values");
                checked.iter_mut().for_each(DnsRecord::drop_observations);
            }
            Err(error) => return Err(logged(store_error(error))),
        }
    }
    Err(logged(ApiError::Unavailable(
        "verify kept losing write races".into(),
    )))
}

/// A delete, step by step; each step leaves something a repeated delete finishes:
/// 1. a versioned write marks the domain as being deleted (the name stays
///    claimed, so nobody can create it meanwhile; the scheduled job drops it);
/// 2. the identity goes, if it is this organization's;
/// 3. domain, claim and count go in one transaction.
async fn delete(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        let mut domain = find(app, request).await?;
        let as_it_was = domain.clone();
        if domain.deleting_since.is_none() {
            let now = Timestamp::now();
            if provisioning::setup_in_progress(&domain, now) {
                return Err(ApiError::DomainBusy);
            }
            domain.deleting_since = Some(now);
            domain.schedule.next_check_at = None;
            match app.store.update(&mut domain).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(logged(store_error(error))),
            }
        }
        provisioning::remove_identity(app, &domain.name, &domain.organization_id)
            .await
            .map_err(|e| logged(identity_error(e)))?;
        match app.store.delete(&domain).await {
            Ok(()) => return Ok(json_response(StatusCode::OK, &as_it_was)),
            Err(StoreError::Conflict) => continue,
            // A concurrent delete finished the same job.
            Err(error) => return Err(logged(store_error(error))),
        }
    }
    Err(logged(ApiError::Unavailable(
        "delete kept losing write races".into(),
    )))
}

/// Scheduled (EventBridge) re-verification. The event's content is not used: any
/// schedule tick (or a manual invoke) runs one pass, until the deadline.
pub async fn reverify_pending(
    app: &App,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<crate::scheduler::Summary, crate::scheduler::SchedulerError> {
    crate::scheduler::run_before_deadline(app, event.context.deadline).await
}
