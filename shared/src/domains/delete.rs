//! A delete, step by step; each step leaves something a repeated delete finishes:
//! 1. a versioned write marks the domain as being deleted (the name stays held,
//!    so nobody can create it meanwhile; the scheduled job drops it). The mark is
//!    this request's (`lifecycle::delete_turn`): while it is fresh, no other
//!    request removes the identity (another delete waits for this one, then finds
//!    the domain gone) and the name cannot pass to another organization, whose new
//!    identity could otherwise be removed in its place; a mark left by a delete
//!    that stopped half-way is taken over;
//! 2. the identity goes, if it is this organization's (`provisioning`);
//! 3. domain, name item and count go in one transaction, conditioned on the
//!    version the mark was written at.
//!
//! A request deletes the domain it first found: if its name was taken and made
//! anew meanwhile, that newer domain is not this request's to delete (404).

use std::time::Duration;

use super::read::find;
use super::{Attempt, identity_error, lifecycle, logged, provisioning, retrying, store_error};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{Domain, TenantName, Timestamp};
use crate::store::StoreError;

/// A delete races every writer that read the domain before its mark; it tries
/// longer (with a short pause) than other writes before answering 503.
const DELETE_ATTEMPTS: usize = 8;

/// Deletes the organization's domain; returns it as it was found.
pub async fn delete(app: &App, key: &TenantName) -> Result<Domain, ApiError> {
    // Which domain this request deletes (the first it found), its own mark, and
    // a mark it tried to write without an answer (`Conflict` can be a timed-out
    // write that landed, retried into a failed condition).
    let state: (Option<String>, Option<Timestamp>, Option<Timestamp>) = (None, None, None);
    // Out of attempts: another request's delete is still under way.
    retrying(
        DELETE_ATTEMPTS,
        || ApiError::DomainBusy,
        state,
        |(mut deleting, mut my_mark, tried), attempt| async move {
            if attempt > 1 {
                // Verifies and scheduled checks that read the domain before the mark
                // may still land, and another delete may be finishing: give them a
                // moment rather than failing the caller.
                tokio::time::sleep(Duration::from_millis(10 * (attempt as u64 - 1))).await;
            }
            let mut domain = find(app, key).await?;
            if deleting.get_or_insert_with(|| domain.id.clone()) != &domain.id {
                return Err(ApiError::DomainNotFound);
            }
            let as_it_was = domain.clone();
            let now = Timestamp::now();
            // A mark found at the very millisecond this request tried to write
            // its own is that write, answered or not.
            match lifecycle::delete_turn(&domain, my_mark.or(tried), now) {
                lifecycle::DeleteTurn::Mine => my_mark = domain.deleting_since,
                lifecycle::DeleteTurn::Another => {
                    return Ok(Attempt::Again((deleting, my_mark, tried)));
                }
                lifecycle::DeleteTurn::Mark => {
                    if !lifecycle::may_mark_deleting(&domain, now) {
                        return Err(ApiError::DomainBusy);
                    }
                    lifecycle::mark_deleting(&mut domain, now);
                    match app.store.update(&mut domain).await {
                        Ok(()) => my_mark = Some(now),
                        Err(StoreError::Conflict) => {
                            return Ok(Attempt::Again((deleting, my_mark, Some(now))));
                        }
                        Err(error) => return Err(logged(store_error(error))),
                    }
                }
            }
            if let Err(error) =
                provisioning::remove_identity(app, &domain.name, &domain.organization_id).await
            {
                hand_back_mark(app, &mut domain).await;
                return Err(logged(identity_error(error)));
            }
            match app.store.delete(&domain).await {
                Ok(()) => Ok(Attempt::Done(as_it_was)),
                Err(StoreError::Conflict) => Ok(Attempt::Again((deleting, my_mark, tried))),
                // `DomainGone`: a concurrent delete finished the same job (then the
                // hand-back finds nothing to write).
                Err(error) => {
                    hand_back_mark(app, &mut domain).await;
                    Err(logged(store_error(error)))
                }
            }
        },
    )
    .await
}

/// After a failed step, lets the caller's retry take the mark over at once
/// (`lifecycle::hand_back_delete_mark`); if that write fails too, the retry
/// waits for the mark to age.
async fn hand_back_mark(app: &App, domain: &mut Domain) {
    lifecycle::hand_back_delete_mark(domain, Timestamp::now());
    if let Err(error) = app.store.update(domain).await {
        tracing::warn!(domain = %domain.name, %error, "could not hand the delete mark back");
    }
}
