mod keys;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    ClaimItems, ClaimSet, DomainItems, DomainPage, DueSlice, HolderItems, LimitItems, SesSlot,
    StoreError, Transfer, Turn, check_size,
};
use crate::claims::{ClaimStatus, DomainClaim, NameHolder};
use crate::domain_name::DomainName;
use crate::events::{Change, Snapshot};
use crate::keys::ApiKeyRecord;
use crate::model::{Domain, Timestamp};
use tokio::sync::mpsc::UnboundedSender;

/// In-memory store with the DynamoDB store's semantics (claims, conditions).
pub struct InMemoryStore {
    state: Mutex<State>,
    /// The SES budget's clock: one process, so its own (tokio's, which tests
    /// may pause) rather than the wall clock every Lambda shares on DynamoDB.
    started: tokio::time::Instant,
    /// Where each domain change goes, in order (the table's stream, in memory).
    changes: Option<UnboundedSender<Change>>,
}

#[derive(Default)]
struct State {
    /// (organization, name) -> domain; BTreeMap so listing is ordered by name.
    domains: BTreeMap<(String, DomainName), Domain>,
    /// name -> who holds it.
    holders: HashMap<DomainName, NameHolder>,
    /// (organization, name) -> its claim of the name.
    domain_claims: BTreeMap<(String, DomainName), DomainClaim>,
    /// organization -> version of its claims guard.
    claim_guards: HashMap<String, u64>,
    /// organization -> domains it holds.
    counts: HashMap<String, usize>,
    /// key hash -> key.
    keys: HashMap<String, ApiKeyRecord>,
    /// The SES budget's current second (since the store began) and its calls.
    ses_calls: (u64, u32),
    /// (organization, what) -> when its turn was last taken.
    turns: HashMap<(String, String), Timestamp>,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            started: tokio::time::Instant::now(),
            changes: None,
        }
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store, reporting every change of a domain item to `changes` in the
    /// order they are made (the dev server publishes events from them).
    pub fn with_changes(changes: UnboundedSender<Change>) -> Self {
        Self {
            changes: Some(changes),
            ..Self::default()
        }
    }

    /// Reports a change; called under the lock, so changes arrive in order. A
    /// listener that went away loses nothing the store holds.
    fn changed(&self, before: Option<&Domain>, after: Option<Snapshot>) {
        if let Some(changes) = &self.changes {
            let _ = changes.send(Change {
                before: before.map(|d| Snapshot::Domain(Box::new(d.clone()))),
                after,
                at: Timestamp::now(),
            });
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        // A poisoned lock means a panic mid-write elsewhere; refuse rather than
        // serve state that may be half-written.
        self.state
            .lock()
            .map_err(|_| StoreError::Internal("in-memory store lock poisoned".into()))
    }
}

/// The count rule, as on DynamoDB (`dynamodb/counts.rs`): the organization's
/// count now, if one more domain fits below `max`.
fn room_for_one(state: &State, organization_id: &str, max: usize) -> Result<usize, StoreError> {
    let held = state.counts.get(organization_id).copied().unwrap_or(0);
    if held >= max {
        return Err(StoreError::LimitReached);
    }
    Ok(held)
}

/// One domain fewer, never below 0.
fn count_down(state: &mut State, organization_id: &str) {
    if let Some(count) = state.counts.get_mut(organization_id) {
        *count = count.saturating_sub(1);
    }
}

fn key(organization_id: &str, name: &DomainName) -> (String, DomainName) {
    (organization_id.to_string(), name.clone())
}

/// The stored domain a write conditioned on `domain`'s id and version may
/// change: `DomainGone` if it was deleted (or replaced), `Conflict` if it was
/// written since it was read.
fn as_read<'a>(state: &'a mut State, domain: &Domain) -> Result<&'a mut Domain, StoreError> {
    match state
        .domains
        .get_mut(&key(&domain.organization_id, &domain.name))
    {
        Some(stored) if stored.id != domain.id => Err(StoreError::DomainGone),
        Some(stored) if stored.version != domain.version => Err(StoreError::Conflict),
        Some(stored) => Ok(stored),
        None => Err(StoreError::DomainGone),
    }
}

#[async_trait]
impl DomainItems for InMemoryStore {
    async fn insert(&self, domain: &Domain, max_domains: usize) -> Result<(), StoreError> {
        check_size(domain)?;
        let mut state = self.lock()?;
        if state.holders.contains_key(&domain.name) {
            return Err(StoreError::NameTaken);
        }
        parents_free(&state, domain)?;
        let held = room_for_one(&state, &domain.organization_id, max_domains)?;
        state
            .counts
            .insert(domain.organization_id.clone(), held + 1);
        state.holders.insert(
            domain.name.clone(),
            NameHolder {
                organization_id: domain.organization_id.clone(),
                domain_id: domain.id.clone(),
                claimed_at: None,
            },
        );
        state
            .domains
            .insert(key(&domain.organization_id, &domain.name), domain.clone());
        self.changed(None, Some(Snapshot::Domain(Box::new(domain.clone()))));
        Ok(())
    }

    async fn get(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<Domain>, StoreError> {
        Ok(self
            .lock()?
            .domains
            .get(&key(organization_id, name))
            .cloned())
    }

    async fn list_page(
        &self,
        organization_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DomainPage, StoreError> {
        let domains: Vec<Domain> = self
            .lock()?
            .domains
            .iter()
            .filter(|((org, name), _)| {
                org == organization_id && after.is_none_or(|a| name.as_str() > a)
            })
            .take(limit.saturating_add(1))
            .map(|(_, domain)| domain.clone())
            .collect();
        Ok(DomainPage::of(domains, limit))
    }

    async fn domain_count(&self, organization_id: &str) -> Result<usize, StoreError> {
        Ok(self
            .lock()?
            .counts
            .get(organization_id)
            .copied()
            .unwrap_or(0))
    }

    async fn update(&self, domain: &mut Domain) -> Result<(), StoreError> {
        check_size(domain)?;
        let mut state = self.lock()?;
        let stored = as_read(&mut state, domain)?;
        let before = stored.clone();
        domain.version += 1;
        *stored = domain.clone();
        self.changed(
            Some(&before),
            Some(Snapshot::Domain(Box::new(domain.clone()))),
        );
        Ok(())
    }

    async fn delete(&self, domain: &Domain) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let before = as_read(&mut state, domain)?.clone();
        state
            .domains
            .remove(&key(&domain.organization_id, &domain.name));
        self.changed(Some(&before), None);
        state.holders.remove(&domain.name);
        count_down(&mut state, &domain.organization_id);
        Ok(())
    }

    async fn update_schedule(&self, domain: &mut Domain) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let stored = as_read(&mut state, domain)?;
        // As on DynamoDB, where only the schedule item is written: what a caller
        // sees stays as stored, and the table's stream sees no domain change.
        stored.version += 1;
        super::take_schedule(stored, domain);
        domain.version = stored.version;
        Ok(())
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
        slice: DueSlice,
    ) -> Result<Vec<Domain>, StoreError> {
        let mut due: Vec<Domain> = self
            .lock()?
            .domains
            .values()
            .filter(|d| d.schedule.next_check_at.is_some_and(|at| at <= now))
            .filter(|d| slice.holds(&d.name))
            .cloned()
            .collect();
        due.sort_by(|a, b| {
            (a.schedule.next_check_at, &a.name).cmp(&(b.schedule.next_check_at, &b.name))
        });
        due.truncate(limit);
        Ok(due)
    }
}

#[async_trait]
impl HolderItems for InMemoryStore {
    async fn holder(&self, name: &DomainName) -> Result<Option<NameHolder>, StoreError> {
        Ok(self.lock()?.holders.get(name).cloned())
    }

    async fn transfer(&self, transfer: Transfer<'_>, max_domains: usize) -> Result<(), StoreError> {
        let next = transfer.next;
        check_size(next)?;
        let mut state = self.lock()?;
        let holder_id = state.holders.get(&next.name).map(|h| h.domain_id.clone());
        match transfer.previous {
            Some(previous) => {
                as_read(&mut state, previous)?;
                if holder_id.as_deref() != Some(previous.id.as_str()) {
                    return Err(StoreError::NameTaken);
                }
            }
            None if holder_id.is_some() => return Err(StoreError::NameTaken),
            None => {}
        }
        if state
            .domains
            .contains_key(&key(&next.organization_id, &next.name))
        {
            return Err(StoreError::NameTaken);
        }
        if transfer.claim.is_none() {
            parents_free(&state, next)?;
        }
        let held = room_for_one(&state, &next.organization_id, max_domains)?;
        if let Some(claim) = transfer.claim {
            still_pending(&state, claim)?;
        }
        if let Some(previous) = transfer.previous {
            if let Some(taken) = state
                .domains
                .remove(&key(&previous.organization_id, &previous.name))
            {
                self.changed(Some(&taken), Some(Snapshot::Claimed));
            }
            count_down(&mut state, &previous.organization_id);
        }
        state.counts.insert(next.organization_id.clone(), held + 1);
        state.holders.insert(
            next.name.clone(),
            NameHolder {
                organization_id: next.organization_id.clone(),
                domain_id: next.id.clone(),
                claimed_at: transfer.claim.map(|_| transfer.at),
            },
        );
        state
            .domains
            .insert(key(&next.organization_id, &next.name), next.clone());
        self.changed(None, Some(Snapshot::Domain(Box::new(next.clone()))));
        if let Some(claim) = transfer.claim {
            state
                .domain_claims
                .insert(key(&claim.organization_id, &claim.name), claim.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl LimitItems for InMemoryStore {
    async fn take_turn(
        &self,
        turn: Turn<'_>,
        now: Timestamp,
        interval: std::time::Duration,
    ) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let key = (turn.organization_id().to_string(), turn.key());
        if let Some(at) = state.turns.get(&key)
            && now.since(*at) < interval
        {
            return Err(StoreError::TooSoon(*at));
        }
        state.turns.insert(key, now);
        Ok(())
    }

    async fn take_ses_call(&self, per_second: u32) -> Result<SesSlot, StoreError> {
        let elapsed = self.started.elapsed();
        let second = elapsed.as_secs();
        let mut state = self.lock()?;
        if state.ses_calls.0 != second {
            state.ses_calls = (second, 0);
        }
        if state.ses_calls.1 >= per_second {
            let next = std::time::Duration::from_secs(second + 1);
            return Ok(SesSlot::Full(next.saturating_sub(elapsed)));
        }
        state.ses_calls.1 += 1;
        Ok(SesSlot::Taken)
    }
}

#[async_trait]
impl ClaimItems for InMemoryStore {
    async fn claims(&self, organization_id: &str) -> Result<ClaimSet, StoreError> {
        let state = self.lock()?;
        Ok(ClaimSet {
            claims: state
                .domain_claims
                .iter()
                .filter(|((org, _), _)| org == organization_id)
                .map(|(_, claim)| claim.clone())
                .collect(),
            guard: state
                .claim_guards
                .get(organization_id)
                .copied()
                .unwrap_or(0),
        })
    }

    async fn get_claim(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<DomainClaim>, StoreError> {
        Ok(self
            .lock()?
            .domain_claims
            .get(&key(organization_id, name))
            .cloned())
    }

    async fn put_claim(
        &self,
        claim: &DomainClaim,
        replacing: Option<&DomainClaim>,
        guard: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let stored = state
            .domain_claims
            .get(&key(&claim.organization_id, &claim.name));
        if stored.map(|c| &c.record.value) != replacing.map(|c| &c.record.value) {
            return Err(StoreError::ClaimGone);
        }
        let current = state
            .claim_guards
            .entry(claim.organization_id.clone())
            .or_insert(0);
        if *current != guard {
            return Err(StoreError::Conflict);
        }
        *current += 1;
        state
            .domain_claims
            .insert(key(&claim.organization_id, &claim.name), claim.clone());
        Ok(())
    }

    async fn update_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        still_pending(&state, claim)?;
        state
            .domain_claims
            .insert(key(&claim.organization_id, &claim.name), claim.clone());
        Ok(())
    }

    async fn delete_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let claim_key = key(&claim.organization_id, &claim.name);
        match state.domain_claims.get(&claim_key) {
            Some(stored) if stored.record.value == claim.record.value => {
                state.domain_claims.remove(&claim_key);
                Ok(())
            }
            _ => Err(StoreError::ClaimGone),
        }
    }
}

/// `ParentHeld` if another organization holds a parent of the domain's name.
fn parents_free(state: &State, domain: &Domain) -> Result<(), StoreError> {
    match domain.name.parents().into_iter().find(|parent| {
        state
            .holders
            .get(parent)
            .is_some_and(|holder| holder.organization_id != domain.organization_id)
    }) {
        Some(parent) => Err(StoreError::ParentHeld(parent)),
        None => Ok(()),
    }
}

/// `ClaimGone` unless the stored claim is this one (same proof value) and pending.
fn still_pending(state: &State, claim: &DomainClaim) -> Result<(), StoreError> {
    match state
        .domain_claims
        .get(&key(&claim.organization_id, &claim.name))
    {
        Some(stored)
            if stored.record.value == claim.record.value
                && stored.status == ClaimStatus::Pending =>
        {
            Ok(())
        }
        _ => Err(StoreError::ClaimGone),
    }
}
