//! A name passing from the organization that holds it to another: a create
//! taking a name whose holder's domain has `failed` without ever being verified
//! (`takeable_by_create`), and a claim whose proof was found. One rule for both:
//!
//! 1. The holder's domain must not be in the hands of a request that may still
//!    make or remove its SES identity (a fresh setup or delete mark): the name
//!    waits (`Busy`), so an identity is only ever made or removed by the name's
//!    holder of the moment (`provisioning`).
//! 2. One transaction (`DomainStore::transfer`) removes the holder's domain as
//!    *claimed* (its verify, scheduled check or delete then finds it gone: their
//!    writes are conditioned on its version), moves the name to a new domain of
//!    the taker with a setup mark, moves the counts and completes the claim.
//!    There is never a moment with two holders or none.
//! 3. The caller then makes the taker's identity as a create does: the old
//!    holder's identity, tagged for it, is deleted and made anew, so the new
//!    holder gets fresh DKIM keys. Should that fail, the new domain is a create
//!    left half-done, which its next `dns-records`, `verify`, create or claim
//!    verify finishes: the name stays the taker's, never freed half-moved.

use super::{Attempt, lifecycle, retrying};
use crate::app::App;
use crate::claims::{DomainClaim, NameHolder};
use crate::domain_name::DomainName;
use crate::model::{Domain, DomainStatus, Timestamp};
use crate::store::{StoreError, Transfer};

/// Reads and tries when the name keeps changing hands under us.
const TRANSFER_ATTEMPTS: usize = 5;

/// Why a name could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The holder's domain has not failed, or once was verified: only a claim
    /// can take it.
    #[error("the name is held")]
    Held,
    /// The caller holds the name already.
    #[error("the caller holds the name")]
    Mine,
    /// A request may still be making or removing the holder's identity.
    #[error("the holder's domain is being set up or deleted")]
    Busy,
    /// The claim ended meanwhile (superseded or completed): it is updated in place.
    #[error("the claim ended")]
    ClaimEnded,
    /// The claim was deleted or replaced meanwhile.
    #[error("the claim is gone")]
    ClaimGone,
    /// The taker holds its maximum number of domains.
    #[error("the domain limit is reached")]
    LimitReached,
    #[error(transparent)]
    /// The store failed.
    Store(#[from] StoreError),
}

/// Who holds a name, and their domain of it.
enum Holding {
    /// Nobody.
    Free,
    /// The caller.
    Mine,
    /// Another organization, with this domain.
    Other(Box<Domain>),
    /// The holder item and the domain disagree: a write is under way; read again.
    Changing,
}

async fn holding(
    app: &App,
    organization_id: &str,
    name: &DomainName,
) -> Result<(Option<NameHolder>, Holding), StoreError> {
    let Some(holder) = app.store.holder(name).await? else {
        return Ok((None, Holding::Free));
    };
    if holder.organization_id == organization_id {
        return Ok((Some(holder), Holding::Mine));
    }
    let holding = match app.store.get(&holder.organization_id, name).await? {
        Some(domain) if domain.id == holder.domain_id => Holding::Other(Box::new(domain)),
        _ => Holding::Changing,
    };
    Ok((Some(holder), holding))
}

/// Whether a name held by another organization can be had by a plain create: its
/// domain failed and never was verified. A name that once sent mail is had only
/// by proving control of its DNS (a claim), and so is one whose history is not
/// known (stored before it was kept).
pub fn takeable_by_create(domain: &Domain) -> bool {
    domain.status == DomainStatus::Failed && domain.was_verified == Some(false)
}

/// A create's `domain` (not stored: its insert found the name held) takes the
/// name if a create may take its holder's domain (`takeable_by_create`). `Mine`
/// if the caller holds it, `Held` otherwise.
pub async fn take_failed_name(app: &App, domain: &Domain) -> Result<(), TransferError> {
    retrying(TRANSFER_ATTEMPTS, changing_hands, (), |(), _| async move {
        let previous = match holding(app, &domain.organization_id, &domain.name).await? {
            (_, Holding::Mine) => return Err(TransferError::Mine),
            (_, Holding::Changing) => return Ok(Attempt::Again(())),
            (_, Holding::Free) => None,
            (_, Holding::Other(previous)) if takeable_by_create(&previous) => Some(*previous),
            (_, Holding::Other(_)) => return Err(TransferError::Held),
        };
        match pass(app, previous.as_ref(), domain, None).await {
            Err(error) if lost_race(&error) => Ok(Attempt::Again(())),
            other => other.map(Attempt::Done),
        }
    })
    .await
}

/// The name moved under a transfer (its holder or the holder's domain changed):
/// read again.
fn lost_race(error: &TransferError) -> bool {
    matches!(
        error,
        TransferError::Store(StoreError::Conflict | StoreError::DomainGone | StoreError::NameTaken)
    )
}

fn changing_hands() -> TransferError {
    StoreError::Unavailable("the name kept changing hands".into()).into()
}

/// Passes the name of a proven, pending `claim` to a new domain of its
/// organization, made here with its setup mark and `records`. On success the
/// claim is completed and the new domain returned; `ClaimEnded` if it was
/// superseded or completed meanwhile (`claim` then says which).
pub async fn complete_claim(
    app: &App,
    claim: &mut DomainClaim,
    records: impl Fn(&Domain) -> Vec<crate::model::DnsRecord>,
) -> Result<Domain, TransferError> {
    let records = &records;
    retrying(
        TRANSFER_ATTEMPTS,
        changing_hands,
        claim,
        |claim, _| async move {
            let (holder, holding) = holding(app, &claim.organization_id, &claim.name).await?;
            if claim.settle(holder.as_ref()) {
                return Err(TransferError::ClaimEnded);
            }
            let previous = match holding {
                Holding::Changing => return Ok(Attempt::Again(claim)),
                Holding::Mine => return Err(TransferError::Mine),
                Holding::Free => None,
                Holding::Other(previous) => Some(*previous),
            };
            let now = Timestamp::now();
            let mut next = Domain::new(&claim.organization_id, claim.name.clone(), now);
            next.records = records(&next);
            let mut completed = claim.clone();
            completed.complete(next.id.clone(), Some(now));
            match pass(app, previous.as_ref(), &next, Some(&completed)).await {
                Ok(()) => {
                    *claim = completed;
                    Ok(Attempt::Done(next))
                }
                Err(error) if lost_race(&error) => Ok(Attempt::Again(claim)),
                Err(error) => Err(error),
            }
        },
    )
    .await
}

/// One transfer of the name from `previous` (as read) to `next`.
async fn pass(
    app: &App,
    previous: Option<&Domain>,
    next: &Domain,
    claim: Option<&DomainClaim>,
) -> Result<(), TransferError> {
    let now = Timestamp::now();
    if previous.is_some_and(|domain| lifecycle::in_flight(domain, now)) {
        return Err(TransferError::Busy);
    }
    let transfer = Transfer {
        previous,
        next,
        claim,
        at: claim.and_then(|c| c.completed_at).unwrap_or(now),
    };
    match app
        .store
        .transfer(transfer, app.max_domains_per_organization)
        .await
    {
        Ok(()) => {
            if let Some(previous) = previous {
                tracing::info!(domain = %next.name, from = %previous.organization_id, to = %next.organization_id, by_claim = claim.is_some(), "name passed to another organization");
            }
            Ok(())
        }
        Err(StoreError::LimitReached) => Err(TransferError::LimitReached),
        Err(StoreError::ClaimGone) => Err(TransferError::ClaimGone),
        Err(error) => Err(error.into()),
    }
}
