//! The API-key authorizer's decisions.

use async_trait::async_trait;
use shared::Timestamp;
use shared::authorizer::{Decision, decide};
use shared::keys::{ApiKeyRecord, NewApiKey, hash_key};
use shared::store::{InMemoryStore, KeyStore, StoreError};

async fn store_with_key(org: &str) -> (InMemoryStore, NewApiKey) {
    let store = InMemoryStore::new();
    let key = NewApiKey::generate(org, Timestamp::now());
    store
        .put_key(&key.record, &hash_key(&key.secret))
        .await
        .expect("put key");
    (store, key)
}

#[tokio::test]
async fn an_active_key_maps_to_its_organization() {
    let (store, key) = store_with_key("org_a").await;
    let decision = decide(&store, Some(&format!("Bearer {}", key.secret)))
        .await
        .expect("decides");
    assert_eq!(
        decision,
        Decision::Allowed {
            organization_id: "org_a".into(),
            key_id: key.record.key_id.clone()
        }
    );
    let lowercase_scheme = decide(&store, Some(&format!("bearer {}", key.secret)))
        .await
        .expect("decides");
    assert!(matches!(lowercase_scheme, Decision::Allowed { .. }));
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_keys_are_refused() {
    let (store, key) = store_with_key("org_a").await;
    assert_eq!(
        decide(&store, None).await.expect("decides"),
        Decision::MissingKey
    );
    assert_eq!(
        decide(&store, Some("Basic abc")).await.expect("decides"),
        Decision::MissingKey
    );
    assert_eq!(
        decide(&store, Some("Bearer ")).await.expect("decides"),
        Decision::MissingKey
    );
    assert_eq!(
        decide(&store, Some("Bearer not-a-key"))
            .await
            .expect("decides"),
        Decision::Refused
    );
    let unknown = NewApiKey::generate("org_a", Timestamp::now());
    assert_eq!(
        decide(&store, Some(&format!("Bearer {}", unknown.secret)))
            .await
            .expect("decides"),
        Decision::Refused
    );
    // The hash itself is not a key.
    assert_eq!(
        decide(&store, Some(&format!("Bearer {}", hash_key(&key.secret))))
            .await
            .expect("decides"),
        Decision::Refused
    );

    store
        .revoke_key(&key.record.key_id, Timestamp::now())
        .await
        .expect("revoke");
    assert_eq!(
        decide(&store, Some(&format!("Bearer {}", key.secret)))
            .await
            .expect("decides"),
        Decision::Refused
    );
}

struct BrokenKeyStore;

#[async_trait]
impl KeyStore for BrokenKeyStore {
    async fn put_key(&self, _: &ApiKeyRecord, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn find_key(&self, _: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn list_keys(&self, _: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn revoke_key(&self, _: &str, _: Timestamp) -> Result<ApiKeyRecord, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn a_key_store_failure_is_an_error_not_a_refusal() {
    let key = NewApiKey::generate("org_a", Timestamp::now());
    let result = decide(&BrokenKeyStore, Some(&format!("Bearer {}", key.secret))).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}
