//! The store's side of names passing on and of claims, on both stores: one
//! transfer moves name, domains, counts and claim at once or not at all, and the
//! claims guard keeps concurrent claim writes apart.

use shared::claims::{ClaimStatus, DomainClaim};
use shared::model::Timestamp;
use shared::store::{DueSlice, StoreError, Transfer};

use crate::store_suite::{Backend, domain, dynamodb, in_memory, name, store_suite};

async fn a_transfer_moves_everything_at_once_or_nothing(backend: &Backend) {
    let store = &backend.store;
    let held = domain("org_a", "held.example.com");
    store.insert(&held, 10).await.expect("insert");
    let own = domain("org_b", "own.example.com");
    store.insert(&own, 10).await.expect("insert");
    let claim = DomainClaim::new("org_b", held.name.clone(), Timestamp::now());
    store.put_claim(&claim, None, 0).await.expect("claim");
    let next = domain("org_b", "held.example.com");
    let at = Timestamp::now();
    let mut completed = claim.clone();
    completed.complete(next.id.clone(), Some(at));
    let transfer = |previous, claim| Transfer {
        previous,
        next: &next,
        claim,
        at,
    };

    // Every refused transfer leaves everything as it was.
    let mut stale = held.clone();
    stale.version += 1;
    let mut other_claim = completed.clone();
    other_claim.record.value = "domains-claim=someone-else".into();
    let refusals = [
        (transfer(Some(&stale), Some(&completed)), 10, "stale"),
        (transfer(Some(&held), Some(&other_claim)), 10, "other claim"),
        (transfer(Some(&held), Some(&completed)), 1, "at the limit"),
        (transfer(None, Some(&completed)), 10, "held name as free"),
    ];
    for (refused, max, what) in refusals {
        let error = store.transfer(refused, max).await.expect_err(what);
        match what {
            "stale" => assert!(matches!(error, StoreError::Conflict), "{what}: {error:?}"),
            "other claim" => assert!(matches!(error, StoreError::ClaimGone), "{what}: {error:?}"),
            "at the limit" => assert!(
                matches!(error, StoreError::LimitReached),
                "{what}: {error:?}"
            ),
            _ => assert!(matches!(error, StoreError::NameTaken), "{what}: {error:?}"),
        }
        let holder = store
            .holder(&held.name)
            .await
            .expect("holder")
            .expect("held");
        assert_eq!(
            (holder.organization_id.as_str(), holder.domain_id.as_str()),
            ("org_a", held.id.as_str()),
            "{what}"
        );
        assert_eq!(
            store.get("org_a", &held.name).await.expect("get"),
            Some(held.clone()),
            "{what}"
        );
        assert_eq!(
            store.get("org_b", &held.name).await.expect("get"),
            None,
            "{what}"
        );
        assert_eq!(store.domain_count("org_a").await.expect("count"), 1);
        assert_eq!(store.domain_count("org_b").await.expect("count"), 1);
        let stored = store
            .get_claim("org_b", &held.name)
            .await
            .expect("claim")
            .expect("kept");
        assert_eq!(stored.status, ClaimStatus::Pending, "{what}");
    }

    store
        .transfer(transfer(Some(&held), Some(&completed)), 10)
        .await
        .expect("transfer");
    let holder = store
        .holder(&held.name)
        .await
        .expect("holder")
        .expect("held");
    assert_eq!(holder.organization_id, "org_b");
    assert_eq!(holder.domain_id, next.id);
    assert_eq!(holder.claimed_at, Some(at));
    assert_eq!(
        store.get("org_b", &held.name).await.expect("get"),
        Some(next.clone())
    );
    // The old domain is nowhere to be read or written.
    assert_eq!(store.get("org_a", &held.name).await.expect("get"), None);
    assert!(store.list("org_a").await.expect("list").is_empty());
    let far = Timestamp::now().plus(chrono::Duration::days(400));
    assert!(
        store
            .due(far, 100, DueSlice::ALL)
            .await
            .expect("due")
            .iter()
            .all(|d| d.id != held.id),
        "the old domain left the schedule"
    );
    let mut late = held.clone();
    assert!(matches!(
        store.update(&mut late).await,
        Err(StoreError::DomainGone)
    ));
    assert!(matches!(
        store.delete(&held).await,
        Err(StoreError::DomainGone)
    ));
    assert!(matches!(
        store.reschedule(&held, Some(far)).await,
        Err(StoreError::DomainGone)
    ));
    assert_eq!(store.domain_count("org_a").await.expect("count"), 0);
    assert_eq!(store.domain_count("org_b").await.expect("count"), 2);
    let stored = store
        .get_claim("org_b", &held.name)
        .await
        .expect("claim")
        .expect("kept");
    assert_eq!(stored.status, ClaimStatus::Completed);
    assert_eq!(stored.domain_id.as_deref(), Some(next.id.as_str()));
    // The old holder cannot create it, but can take it back the same way, and its
    // old key takes the new domain.
    let again = domain("org_a", "held.example.com");
    assert!(matches!(
        store.insert(&again, 10).await,
        Err(StoreError::NameTaken)
    ));
    store
        .transfer(
            Transfer {
                previous: Some(&next),
                next: &again,
                claim: None,
                at: Timestamp::now(),
            },
            10,
        )
        .await
        .expect("transfer back");
    assert_eq!(
        store.get("org_a", &held.name).await.expect("get"),
        Some(again.clone())
    );
    let holder = store
        .holder(&held.name)
        .await
        .expect("holder")
        .expect("held");
    assert_eq!(
        (holder.organization_id.as_str(), holder.claimed_at),
        ("org_a", None)
    );
    assert_eq!(store.list("org_b").await.expect("list"), vec![own]);
    assert_eq!(store.domain_count("org_b").await.expect("count"), 1);
}

async fn a_free_name_passes_only_while_free(backend: &Backend) {
    let store = &backend.store;
    let next = domain("org_b", "free.example.com");
    let free = |next| Transfer {
        previous: None,
        next,
        claim: None,
        at: Timestamp::now(),
    };
    store.transfer(free(&next), 10).await.expect("free name");
    assert_eq!(
        store
            .holder(&next.name)
            .await
            .expect("holder")
            .map(|h| h.domain_id),
        Some(next.id.clone())
    );
    let rival = domain("org_c", "free.example.com");
    assert!(matches!(
        store.transfer(free(&rival), 10).await,
        Err(StoreError::NameTaken)
    ));
    assert!(matches!(
        store.insert(&rival, 10).await,
        Err(StoreError::NameTaken)
    ));
    assert_eq!(store.get("org_c", &next.name).await.expect("get"), None);
}

async fn claim_writes_are_guarded_and_conditioned(backend: &Backend) {
    let store = &backend.store;
    let now = Timestamp::now();
    let first = DomainClaim::new("org_b", name("one.example.com"), now);
    let second = DomainClaim::new("org_b", name("two.example.com"), now);
    let set = store.claims("org_b").await.expect("claims");
    assert_eq!((set.claims.len(), set.guard), (0, 0));
    store
        .put_claim(&first, None, set.guard)
        .await
        .expect("first");
    // Written from the same read: the guard moved, so it is refused.
    assert!(matches!(
        store.put_claim(&second, None, set.guard).await,
        Err(StoreError::Conflict)
    ));
    let set = store.claims("org_b").await.expect("claims");
    assert_eq!(set.claims, vec![first.clone()]);
    store
        .put_claim(&second, None, set.guard)
        .await
        .expect("second");
    // A claim is replaced only as read.
    let replacement = DomainClaim::new("org_b", name("one.example.com"), now);
    let set = store.claims("org_b").await.expect("claims");
    assert!(matches!(
        store.put_claim(&replacement, None, set.guard).await,
        Err(StoreError::ClaimGone)
    ));
    assert!(matches!(
        store
            .put_claim(&replacement, Some(&second), set.guard)
            .await,
        Err(StoreError::ClaimGone)
    ));
    store
        .put_claim(&replacement, Some(&first), set.guard)
        .await
        .expect("replace");
    // Other organizations see none of it.
    assert!(
        store
            .claims("org_c")
            .await
            .expect("claims")
            .claims
            .is_empty()
    );
    assert_eq!(
        store.get_claim("org_c", &first.name).await.expect("get"),
        None
    );

    // Checks are stored only on the same pending claim.
    let mut checked = replacement.clone();
    checked.last_checked_at = Some(Timestamp::now());
    assert!(matches!(
        store.update_claim(&first).await,
        Err(StoreError::ClaimGone)
    ));
    store.update_claim(&checked).await.expect("check stored");
    let mut ended = checked.clone();
    ended.status = ClaimStatus::Superseded;
    store.update_claim(&ended).await.expect("ended");
    assert!(matches!(
        store.update_claim(&checked).await,
        Err(StoreError::ClaimGone)
    ));
    assert_eq!(
        store.get_claim("org_b", &first.name).await.expect("get"),
        Some(ended.clone())
    );
    // Deletes too.
    assert!(matches!(
        store.delete_claim(&first).await,
        Err(StoreError::ClaimGone)
    ));
    store.delete_claim(&ended).await.expect("delete");
    assert!(matches!(
        store.delete_claim(&ended).await,
        Err(StoreError::ClaimGone)
    ));
    let set = store.claims("org_b").await.expect("claims");
    assert_eq!(set.claims, vec![second]);
}

store_suite!(
    a_transfer_moves_everything_at_once_or_nothing,
    a_free_name_passes_only_while_free,
    claim_writes_are_guarded_and_conditioned,
);
