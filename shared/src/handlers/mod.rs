//! One handler per endpoint. Each takes the process's `App` and the request API
//! Gateway sent, and always answers: errors become JSON responses here, and every
//! request is logged once.

mod claims;
mod mail_from;
mod paging;
mod setup;

pub use paging::{MAX_CURSOR, MAX_PAGE};

use std::future::Future;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::app::App;
use crate::confirmation::read_ses_view;
use crate::error::{ApiError, json_response};
use crate::identity::IdentityError;
use crate::lifecycle;
use crate::model::{DnsRecord, Domain, Timestamp};
use crate::provisioning;
use crate::records::zone_file;
use crate::request::{organization_id, path_domain, request_id};
use crate::store::StoreError;
use crate::transfer::TransferError;

/// What every handler returns: always a response (errors are JSON responses too).
pub type HandlerResult = Result<Response<Body>, lambda_http::Error>;

/// `POST /domains`
pub async fn create_domain(app: &App, request: Request) -> HandlerResult {
    respond("create_domain", &request, setup::create(app, &request)).await
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

/// `PATCH /domains/{domain}`: sets or removes the custom MAIL FROM subdomain.
pub async fn update_domain(app: &App, request: Request) -> HandlerResult {
    respond("update_domain", &request, mail_from::update(app, &request)).await
}

/// `POST /domain-claims`
pub async fn create_domain_claim(app: &App, request: Request) -> HandlerResult {
    respond(
        "create_domain_claim",
        &request,
        claims::create(app, &request),
    )
    .await
}

/// `GET /domain-claims`
pub async fn list_domain_claims(app: &App, request: Request) -> HandlerResult {
    respond("list_domain_claims", &request, claims::list(app, &request)).await
}

/// `GET /domain-claims/{domain}`
pub async fn get_domain_claim(app: &App, request: Request) -> HandlerResult {
    respond("get_domain_claim", &request, claims::get(app, &request)).await
}

/// `POST /domain-claims/{domain}/verify`
pub async fn verify_domain_claim(app: &App, request: Request) -> HandlerResult {
    respond(
        "verify_domain_claim",
        &request,
        claims::verify(app, &request),
    )
    .await
}

/// `DELETE /domain-claims/{domain}`
pub async fn delete_domain_claim(app: &App, request: Request) -> HandlerResult {
    respond(
        "delete_domain_claim",
        &request,
        claims::delete(app, &request),
    )
    .await
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
        StoreError::ParentHeld(parent) => ApiError::parent_domain_held(parent.as_str()),
        StoreError::LimitReached => ApiError::DomainLimitReached,
        StoreError::TooLarge(detail) => ApiError::Internal(detail),
        StoreError::DomainGone => ApiError::DomainNotFound,
        StoreError::ClaimGone => ApiError::ClaimNotFound,
        StoreError::Conflict => ApiError::Unavailable("the domain kept changing".into()),
        StoreError::TooSoon(at) => ApiError::TooManyChecks {
            retry_after: lifecycle::manual_check_retry_after(
                at,
                Timestamp::now(),
                lifecycle::MANUAL_CHECK_INTERVAL,
            ),
            last_checked_at: None,
        },
        StoreError::KeyNotFound => ApiError::Internal("API key vanished".into()),
        StoreError::Throttled(detail) => ApiError::Throttled(detail),
        StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
        StoreError::Internal(detail) => ApiError::Internal(detail),
    }
}

fn transfer_error(error: TransferError) -> ApiError {
    match error {
        TransferError::Held | TransferError::Mine => ApiError::DomainAlreadyExists,
        TransferError::Busy => ApiError::DomainBusy,
        TransferError::ClaimGone => ApiError::ClaimNotFound,
        TransferError::LimitReached => ApiError::DomainLimitReached,
        TransferError::ClaimEnded => ApiError::Internal("the claim ended unhandled".into()),
        TransferError::Store(error) => store_error(error),
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

async fn list(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let organization_id = organization_id(request)?;
    let (limit, after) = paging::page_request(request)?;
    let page = app
        .store
        .list_page(&organization_id, after.as_deref(), limit)
        .await
        .map_err(|e| logged(store_error(e)))?;
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
        setup::fill_dkim_tokens(app, &mut domain)
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

/// Writes that lose a race (to the scheduled job, another request) are retried
/// this many times on a fresh read.
const WRITE_ATTEMPTS: usize = 3;
/// A delete races every writer that read the domain before its mark; it tries
/// longer (with a short pause) before answering 503.
const DELETE_ATTEMPTS: usize = 8;

async fn verify(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let mut domain = begin_manual_check(app, request).await?;
    if domain.dkim_tokens.is_empty()
        && let Err(error) = setup::fill_dkim_tokens(app, &mut domain).await
    {
        // Verify still checks the records it has; the domain cannot be verified
        // without DKIM records, which the answer shows.
        tracing::warn!(domain = %domain.name, error = %error, "verifying without DKIM tokens");
    }

    let (mut checked, stats) = app.dns.check_measured(&domain.name, &domain.records).await;
    let now = Timestamp::now();
    // SES's view, read once (when DNS is all correct and SES has not confirmed).
    domain.records = checked.clone();
    read_ses_view(app, &mut domain, now, false, None).await;
    let ses = domain.ses.clone();
    let checked_for = domain.mail_from_subdomain.clone();
    for attempt in 1..=WRITE_ATTEMPTS {
        // After a lost race the domain may ask for other records (a MAIL FROM
        // change landed): this check speaks only for the records it looked up,
        // and SES's MAIL FROM status only for the label it was read for.
        domain.records = setup::merge_records(domain.records.clone(), &checked);
        domain.ses = ses.clone().map(|mut view| {
            if domain.mail_from_subdomain != checked_for {
                view.mail_from_status = None;
            }
            view
        });
        lifecycle::after_manual_check(&mut domain, now);
        match app.store.update(&mut domain).await {
            Ok(()) => {
                for set in crate::metrics::verification(&domain, stats) {
                    app.metrics.emit(set);
                }
                return Ok(json_response(StatusCode::OK, &domain));
            }
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

/// The caller's live domain, its turn for a check taken (at most one every
/// `App::manual_check_interval`, a turn that outlives the domain), or 429 with
/// when to retry.
async fn begin_manual_check(app: &App, request: &Request) -> Result<Domain, ApiError> {
    let domain = find_live(app, request).await?;
    take_check_turn(
        app,
        &domain.organization_id,
        &domain.name,
        domain.last_checked_at,
    )
    .await?;
    Ok(domain)
}

/// Takes the organization's turn to check `name` now, or 429 saying when to
/// retry and when the result a read shows now was stored (`last_checked_at`).
pub(super) async fn take_check_turn(
    app: &App,
    organization_id: &str,
    name: &crate::domain_name::DomainName,
    last_checked_at: Option<Timestamp>,
) -> Result<(), ApiError> {
    // No interval, no turn (tests that check one name again at once).
    if app.manual_check_interval.is_zero() {
        return Ok(());
    }
    let now = Timestamp::now();
    let turn = crate::store::Turn::Check {
        organization_id,
        name,
    };
    match app
        .store
        .take_turn(turn, now, app.manual_check_interval)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::TooSoon(at)) => Err(ApiError::TooManyChecks {
            retry_after: lifecycle::manual_check_retry_after(at, now, app.manual_check_interval),
            last_checked_at,
        }),
        Err(error) => Err(logged(store_error(error))),
    }
}

/// A delete, step by step; each step leaves something a repeated delete finishes:
/// 1. a versioned write marks the domain as being deleted (the name stays
///    claimed, so nobody can create it meanwhile; the scheduled job drops it).
///    The mark is this request's (`lifecycle::delete_turn`): while it is fresh,
///    no other request removes the identity (another delete waits for this one,
///    then finds the domain gone) and the name cannot pass to another
///    organization, whose new identity could otherwise be removed in its place;
///    a mark left by a delete that stopped half-way is taken over;
/// 2. the identity goes, if it is this organization's;
/// 3. domain, claim and count go in one transaction, conditioned on the version
///    the mark was written at.
///
/// A request deletes the domain it first found: if its name was taken and made
/// anew meanwhile, that newer domain is not this request's to delete (404).
async fn delete(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let mut deleting: Option<String> = None;
    let mut my_mark: Option<Timestamp> = None;
    for attempt in 0..DELETE_ATTEMPTS {
        if attempt > 0 {
            // Verifies and scheduled checks that read the domain before the mark
            // may still land, and another delete may be finishing: give them a
            // moment rather than failing the caller.
            tokio::time::sleep(std::time::Duration::from_millis(10 * attempt as u64)).await;
        }
        let mut domain = find(app, request).await?;
        if deleting.get_or_insert_with(|| domain.id.clone()) != &domain.id {
            return Err(ApiError::DomainNotFound);
        }
        let as_it_was = domain.clone();
        let now = Timestamp::now();
        match lifecycle::delete_turn(&domain, my_mark, now) {
            lifecycle::DeleteTurn::Mine => {}
            lifecycle::DeleteTurn::Another => continue,
            lifecycle::DeleteTurn::Mark => {
                if domain.deleting_since.is_none() && provisioning::setup_in_progress(&domain, now)
                {
                    return Err(ApiError::DomainBusy);
                }
                lifecycle::mark_deleting(&mut domain, now);
                match app.store.update(&mut domain).await {
                    Ok(()) => my_mark = Some(now),
                    Err(StoreError::Conflict) => continue,
                    Err(error) => return Err(logged(store_error(error))),
                }
            }
        }
        if let Err(error) =
            provisioning::remove_identity(app, &domain.name, &domain.organization_id).await
        {
            hand_back_delete_mark(app, &mut domain).await;
            return Err(logged(identity_error(error)));
        }
        match app.store.delete(&domain).await {
            Ok(()) => return Ok(json_response(StatusCode::OK, &as_it_was)),
            Err(StoreError::Conflict) => continue,
            // `DomainGone`: a concurrent delete finished the same job (then the
            // hand-back finds nothing to write).
            Err(error) => {
                hand_back_delete_mark(app, &mut domain).await;
                return Err(logged(store_error(error)));
            }
        }
    }
    // Another request's delete is still under way.
    Err(ApiError::DomainBusy)
}

/// After a failed step, lets the caller's retry take the mark over at once
/// (`lifecycle::hand_back_delete_mark`); if that write fails too, the retry
/// waits for the mark to age.
async fn hand_back_delete_mark(app: &App, domain: &mut Domain) {
    lifecycle::hand_back_delete_mark(domain, Timestamp::now());
    if let Err(error) = app.store.update(domain).await {
        tracing::warn!(domain = %domain.name, %error, "could not hand the delete mark back");
    }
}

/// The table's stream (a batch of records): each domain change published as its
/// event; the record to retry from, if one could not be.
pub async fn publish_events(
    sink: &dyn crate::events::EventSink,
    event: lambda_runtime::LambdaEvent<aws_lambda_events::event::dynamodb::Event>,
) -> Result<aws_lambda_events::event::streams::DynamoDbEventResponse, std::convert::Infallible> {
    Ok(crate::events::publish_stream_batch(sink, &event.payload).await)
}

/// Scheduled (EventBridge) re-verification, until the deadline. The schedule's
/// tick (or any other event, such as a manual invoke) sweeps everything, or with
/// a fan-out starts the other workers and sweeps worker 0's share; a worker's
/// task sweeps its share (`fanout`).
pub async fn reverify_pending(
    app: &App,
    fanout: Option<&crate::fanout::Fanout>,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<crate::scheduler::Summary, crate::scheduler::SchedulerError> {
    use crate::fanout::Invocation;
    use crate::scheduler::{SchedulerError, run_before_deadline};
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
