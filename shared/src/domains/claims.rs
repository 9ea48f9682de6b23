//! Domain claims: opening one, reading them, proving one (then the name passes
//! to the caller: `transfer`) and deleting one. What a claim's status means is
//! the claim model's (`crate::claims`).

use futures::future::join_all;

use super::setup::{self, clear_setup_mark, store_tokens};
use super::transfer::{self, TransferError};
use super::verify::take_check_turn;
use super::{
    Attempt, WRITE_ATTEMPTS, lifecycle, logged, provisioning, retrying, setup_error, store_error,
    transfer_error,
};
use crate::app::App;
use crate::claims::{ClaimStatus, DomainClaim, open_claim_limit_reached};
use crate::domain_name::DomainName;
use crate::error::ApiError;
use crate::model::{Domain, TenantName, Timestamp};
use crate::store::StoreError;

/// What opening a claim did.
pub enum Opened {
    /// A new claim.
    New(DomainClaim),
    /// The caller's open claim of the name, given back (the same TXT record).
    Existing(DomainClaim),
}

/// The claims as a reader sees them now: lapsed ones left out, pending ones
/// settled against who holds each name.
async fn live(app: &App, claims: Vec<DomainClaim>) -> Result<Vec<DomainClaim>, ApiError> {
    let now = Timestamp::now();
    let settled = join_all(
        claims
            .into_iter()
            .filter(|claim| !claim.is_expired(now))
            .map(|mut claim| async move {
                if claim.is_open() {
                    let holder = app.store.holder(&claim.name).await?;
                    claim.settle(holder.as_ref());
                }
                Ok::<_, StoreError>(claim)
            }),
    )
    .await;
    settled
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| logged(store_error(e)))
}

/// Opens a claim of `name` for the organization.
pub async fn open(app: &App, organization_id: &str, name: DomainName) -> Result<Opened, ApiError> {
    // Only a name another organization holds (with a domain a create cannot
    // take), or one under a parent another organization holds, needs a claim:
    // anything else is had with a create.
    let holder = app
        .store
        .holder(&name)
        .await
        .map_err(|e| logged(store_error(e)))?;
    if holder
        .as_ref()
        .is_some_and(|holder| holder.organization_id == organization_id)
    {
        return Err(ApiError::DomainAlreadyExists);
    }
    let under_held_parent = app
        .store
        .parent_held_by_another(&name, organization_id)
        .await
        .map_err(|e| logged(store_error(e)))?
        .is_some();
    if !under_held_parent {
        let Some(holder) = holder else {
            return Err(ApiError::DomainNotFound);
        };
        let held = app
            .store
            .get(&holder.organization_id, &name)
            .await
            .map_err(|e| logged(store_error(e)))?;
        if held.is_some_and(|domain| transfer::takeable_by_create(&domain)) {
            return Err(ApiError::DomainNotFound);
        }
    }

    let exhausted = || {
        logged(ApiError::Unavailable(
            "claims kept changing while one was made".into(),
        ))
    };
    let name = &name;
    retrying(WRITE_ATTEMPTS, exhausted, (), |(), _| async move {
        let set = app
            .store
            .claims(organization_id)
            .await
            .map_err(|e| logged(store_error(e)))?;
        let stored = set.claims.iter().find(|c| c.name == *name).cloned();
        let current = live(app, set.claims).await?;
        // Asking again for an open claim gives it back: the same TXT record.
        if let Some(open) = current.iter().find(|c| c.name == *name && c.is_open()) {
            return Ok(Attempt::Done(Opened::Existing(open.clone())));
        }
        if open_claim_limit_reached(&current) {
            return Err(ApiError::ClaimLimitReached);
        }
        let claim = DomainClaim::new(organization_id, name.clone(), Timestamp::now());
        match app
            .store
            .put_claim(&claim, stored.as_ref(), set.guard)
            .await
        {
            Ok(()) => Ok(Attempt::Done(Opened::New(claim))),
            // Another claim of this organization was written meanwhile: count again.
            Err(StoreError::Conflict | StoreError::ClaimGone) => Ok(Attempt::Again(())),
            Err(error) => Err(logged(store_error(error))),
        }
    })
    .await
}

/// The organization's live claims.
pub async fn list(app: &App, organization_id: &str) -> Result<Vec<DomainClaim>, ApiError> {
    let set = app
        .store
        .claims(organization_id)
        .await
        .map_err(|e| logged(store_error(e)))?;
    live(app, set.claims).await
}

/// The caller's live claim of `name`, settled, or 404; and its status as stored
/// (so an end worked out on reading is stored once, not on every verify).
async fn find(app: &App, key: &TenantName) -> Result<(DomainClaim, ClaimStatus), ApiError> {
    let claim = app
        .store
        .get_claim(&key.organization_id, &key.name)
        .await
        .map_err(|e| logged(store_error(e)))?
        .ok_or(ApiError::ClaimNotFound)?;
    let stored = claim.status;
    let claim = live(app, vec![claim])
        .await?
        .pop()
        .ok_or(ApiError::ClaimNotFound)?;
    Ok((claim, stored))
}

/// The domain a completed claim made, while its organization holds it.
async fn claimed_domain(app: &App, claim: &DomainClaim) -> Result<Option<Domain>, ApiError> {
    let Some(domain_id) = &claim.domain_id else {
        return Ok(None);
    };
    let domain = app
        .store
        .get(&claim.organization_id, &claim.name)
        .await
        .map_err(|e| logged(store_error(e)))?;
    Ok(domain.filter(|d| d.id == *domain_id && !lifecycle::being_deleted(d)))
}

/// The caller's claim of `name`, with the domain it made while the caller holds it.
pub async fn get(app: &App, key: &TenantName) -> Result<(DomainClaim, Option<Domain>), ApiError> {
    let (claim, _) = find(app, key).await?;
    let domain = claimed_domain(app, &claim).await?;
    Ok((claim, domain))
}

/// Deletes the caller's claim of `name`; returns it as it was.
pub async fn delete(app: &App, key: &TenantName) -> Result<DomainClaim, ApiError> {
    let (claim, _) = find(app, key).await?;
    app.store
        .delete_claim(&claim)
        .await
        .map_err(|e| logged(store_error(e)))?;
    Ok(claim)
}

/// Looks the proof up; once found, the name passes to the caller (`transfer`)
/// and its identity is made as a create makes it.
pub async fn verify(
    app: &App,
    key: &TenantName,
) -> Result<(DomainClaim, Option<Domain>), ApiError> {
    let (mut claim, stored) = find(app, key).await?;
    if claim.status == ClaimStatus::Pending {
        let now = Timestamp::now();
        // As a domain's: one check of the name every interval, a turn that
        // outlives the claim (deleting and making it again gives no new one).
        take_check_turn(
            app,
            &claim.organization_id,
            &claim.name,
            claim.last_checked_at,
        )
        .await?;
        let (answer, aliases) = app.dns.claim_proof(&claim.name, &claim.record.name).await;
        if !claim.record_check(&answer, &aliases, now) {
            store_check(app, &claim).await?;
            return Ok((claim, None));
        }
        let records = |domain: &Domain| setup::expected(app, domain);
        match transfer::complete_claim(app, &mut claim, records).await {
            Ok(mut domain) => {
                let tokens = match provisioning::create_identity(app, &domain).await {
                    Ok(tokens) => tokens,
                    Err(error) => {
                        // The name is the caller's now; its identity is made by the
                        // next verify of this claim (or dns-records), at once.
                        clear_setup_mark(app, &mut domain).await;
                        return Err(logged(setup_error(error)));
                    }
                };
                store_tokens(app, &mut domain, tokens).await?;
                return Ok((claim, Some(domain)));
            }
            // Superseded, or completed another way, meanwhile: said below.
            Err(TransferError::ClaimEnded) => {}
            Err(error) => return Err(logged(transfer_error(error))),
        }
    }
    // Ended since it was stored pending: stored, so later reads need not work it out.
    if stored == ClaimStatus::Pending {
        store_check(app, &claim).await?;
    }
    let mut domain = claimed_domain(app, &claim).await?;
    if let Some(domain) = domain.as_mut().filter(|d| d.dkim_tokens.is_empty()) {
        // The transfer happened but the identity was not made: finish it.
        setup::fill_dkim_tokens(app, domain).await?;
    }
    Ok((claim, domain))
}

/// Stores a pending claim's check or its end; a claim deleted meanwhile is 404.
async fn store_check(app: &App, claim: &DomainClaim) -> Result<(), ApiError> {
    match app.store.update_claim(claim).await {
        // Already stored as ended by another request: nothing to add.
        Ok(()) => Ok(()),
        Err(StoreError::ClaimGone) if claim.status != ClaimStatus::Pending => Ok(()),
        Err(error) => Err(logged(store_error(error))),
    }
}
