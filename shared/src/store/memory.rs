use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{DomainPage, DomainStore, KeyStore, StoreError, check_size};
use crate::domain_name::DomainName;
use crate::keys::ApiKeyRecord;
use crate::model::{Domain, Timestamp};

/// In-memory store with the DynamoDB store's semantics (claims, conditions).
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (organization, name) -> domain; BTreeMap so listing is ordered by name.
    domains: BTreeMap<(String, DomainName), Domain>,
    /// name -> organization holding it.
    claims: HashMap<DomainName, String>,
    /// organization -> domains it holds.
    counts: HashMap<String, usize>,
    /// key hash -> key.
    keys: HashMap<String, ApiKeyRecord>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        // A poisoned lock means a panic mid-write elsewhere; refuse rather than
        // serve state that may be half-written.
        self.state
            .lock()
            .map_err(|_| StoreError::Internal("in-memory store lock poisoned".into()))
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
impl DomainStore for InMemoryStore {
    async fn insert(&self, domain: &Domain, max_domains: usize) -> Result<(), StoreError> {
        check_size(domain)?;
        let mut state = self.lock()?;
        if state.claims.contains_key(&domain.name) {
            return Err(StoreError::NameTaken);
        }
        let held = state
            .counts
            .get(&domain.organization_id)
            .copied()
            .unwrap_or(0);
        if held >= max_domains {
            return Err(StoreError::LimitReached);
        }
        state
            .counts
            .insert(domain.organization_id.clone(), held + 1);
        state
            .claims
            .insert(domain.name.clone(), domain.organization_id.clone());
        state
            .domains
            .insert(key(&domain.organization_id, &domain.name), domain.clone());
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
        domain.version += 1;
        *stored = domain.clone();
        Ok(())
    }

    async fn delete(&self, domain: &Domain) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        as_read(&mut state, domain)?;
        state
            .domains
            .remove(&key(&domain.organization_id, &domain.name));
        state.claims.remove(&domain.name);
        if let Some(count) = state.counts.get_mut(&domain.organization_id) {
            *count = count.saturating_sub(1);
        }
        Ok(())
    }

    async fn reschedule(
        &self,
        domain: &Domain,
        next_check_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let stored = as_read(&mut state, domain)?;
        stored.version += 1;
        stored.schedule.next_check_at = next_check_at;
        Ok(())
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Domain>, StoreError> {
        let mut due: Vec<Domain> = self
            .lock()?
            .domains
            .values()
            .filter(|d| d.schedule.next_check_at.is_some_and(|at| at <= now))
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
impl KeyStore for InMemoryStore {
    async fn put_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<(), StoreError> {
        self.lock()?
            .keys
            .insert(key_hash.to_string(), record.clone());
        Ok(())
    }

    async fn find_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.lock()?.keys.get(key_hash).cloned())
    }

    async fn list_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut keys: Vec<ApiKeyRecord> = self
            .lock()?
            .keys
            .values()
            .filter(|k| k.organization_id == organization_id)
            .cloned()
            .collect();
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(keys)
    }

    async fn revoke_key(&self, key_id: &str, now: Timestamp) -> Result<ApiKeyRecord, StoreError> {
        let mut state = self.lock()?;
        let record = state
            .keys
            .values_mut()
            .find(|k| k.key_id == key_id)
            .ok_or(StoreError::KeyNotFound)?;
        record.revoked_at.get_or_insert(now);
        Ok(record.clone())
    }
}
