//! API keys: `KeyStore` on DynamoDB (three items per key, see the table in
//! `dynamodb`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::schema::*;
use super::{
    DynamoDbStore, Read, TransactItem, TransactionOutcome, from_item, string_value, to_item,
};
use crate::keys::ApiKeyRecord;
use crate::model::Timestamp;
use crate::store::{KeyStore, StoreError};

#[derive(Serialize, Deserialize)]
struct KeyItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: ApiKeyRecord,
    key_hash: String,
}

#[derive(Serialize, Deserialize)]
struct KeyIdItem {
    pk: String,
    sk: String,
    key_hash: String,
    organization_id: String,
}

#[async_trait]
impl KeyStore for DynamoDbStore {
    async fn put_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<(), StoreError> {
        let by_hash = to_item(&KeyItem {
            pk: key_hash_pk(key_hash),
            sk: API_KEY_SORT_KEY.into(),
            record: record.clone(),
            key_hash: key_hash.into(),
        })?;
        let by_org = to_item(&KeyItem {
            pk: organization_pk(&record.organization_id),
            sk: key_org_sk(&record.key_id),
            record: record.clone(),
            key_hash: key_hash.into(),
        })?;
        let by_id = to_item(&KeyIdItem {
            pk: key_id_pk(&record.key_id),
            sk: API_KEY_ID_SORT_KEY.into(),
            key_hash: key_hash.into(),
            organization_id: record.organization_id.clone(),
        })?;
        let items = [by_hash, by_org, by_id]
            .into_iter()
            .map(|item| {
                self.transact_put(item)
                    .condition_expression("attribute_not_exists(pk)")
                    .transact_item()
            })
            .collect::<Result<Vec<_>, _>>()?;
        match self.transact("put API key", items).await? {
            TransactionOutcome::Done => Ok(()),
            TransactionOutcome::ConditionFailed(_) => Err(StoreError::Internal(
                "API key id or hash already stored".into(),
            )),
        }
    }

    async fn find_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.get_item(
            "find API key",
            key_hash_pk(key_hash),
            API_KEY_SORT_KEY,
            Read::Eventual,
        )
        .await?
        .map(|item| from_item::<KeyItem>(item).map(|k| k.record))
        .transpose()
    }

    async fn list_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let query = self.query_prefix(organization_pk(organization_id), API_KEY_PREFIX);
        self.query_items("list API keys", query, usize::MAX, |item| {
            from_item::<KeyItem>(item).map(|k| Some(k.record))
        })
        .await
    }

    async fn revoke_key(&self, key_id: &str, now: Timestamp) -> Result<ApiKeyRecord, StoreError> {
        let id_item = self
            .get_item(
                "find API key id",
                key_id_pk(key_id),
                API_KEY_ID_SORT_KEY,
                Read::Consistent,
            )
            .await?
            .ok_or(StoreError::KeyNotFound)?;
        let id_item: KeyIdItem = from_item(id_item)?;
        let revoked_at = string_value(now.to_string());
        let revoke = |pk: String, sk: String| {
            self.transact_update(pk, sk)
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":now", revoked_at.clone())
                .transact_item()
        };
        let items = vec![
            revoke(key_hash_pk(&id_item.key_hash), API_KEY_SORT_KEY.into())?,
            revoke(
                organization_pk(&id_item.organization_id),
                key_org_sk(key_id),
            )?,
        ];
        if let TransactionOutcome::ConditionFailed(_) =
            self.transact("revoke API key", items).await?
        {
            return Err(StoreError::KeyNotFound);
        }
        self.find_key(&id_item.key_hash)
            .await?
            .ok_or(StoreError::KeyNotFound)
    }
}
