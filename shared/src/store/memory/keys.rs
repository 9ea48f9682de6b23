//! API keys in the in-memory store (the dev server's), by their hash.

use async_trait::async_trait;

use super::InMemoryStore;
use crate::keys::ApiKeyRecord;
use crate::model::Timestamp;
use crate::store::{KeyStore, StoreError};

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
