//! Domain items, name claims and the per-organization count: `DomainStore` on
//! DynamoDB.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::schema::*;
use super::{
    DynamoDbStore, TransactionOutcome, build_error, classify, id_of, string_value, to_item,
};
use crate::claims::{DomainClaim, NameHolder};
use crate::domain_name::DomainName;
use crate::model::{CheckSchedule, Domain, Timestamp};
use crate::store::{ClaimSet, DomainPage, DomainStore, StoreError, Transfer, check_size};

#[derive(Serialize, Deserialize)]
pub(super) struct DomainItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    domain: Domain,
    #[serde(default)]
    dkim_tokens: Vec<String>,
    #[serde(flatten)]
    schedule: CheckSchedule,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setup_started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleting_since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi_due_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi_due_sk: Option<String>,
}

#[derive(Serialize)]
struct ClaimItem<'a> {
    pk: String,
    sk: &'static str,
    organization_id: &'a str,
    domain_id: &'a str,
}

impl DomainItem {
    pub(super) fn from_domain(domain: &Domain) -> Self {
        let due = domain.schedule.next_check_at;
        Self {
            pk: organization_pk(&domain.organization_id),
            sk: domain_sk(&domain.name),
            domain: domain.clone(),
            dkim_tokens: domain.dkim_tokens.clone(),
            schedule: domain.schedule.clone(),
            version: domain.version,
            setup_started_at: domain.setup_started_at,
            deleting_since: domain.deleting_since,
            gsi_due_pk: due.map(|_| due_partition_of(&domain.name)),
            gsi_due_sk: due.map(|at| due_sort_key(at, &domain.name)),
        }
    }

    fn into_domain(self) -> Domain {
        let mut domain = self.domain;
        domain.dkim_tokens = self.dkim_tokens;
        domain.schedule = self.schedule;
        domain.version = self.version;
        domain.setup_started_at = self.setup_started_at;
        domain.deleting_since = self.deleting_since;
        domain
    }
}

/// A domain taken by another organization leaves a mark at its key: no domain.
fn is_claimed_mark(item: &HashMap<String, AttributeValue>) -> bool {
    item.contains_key(CLAIMED_MARK)
}

/// The domain an item holds; `None` for a claimed mark.
fn stored_domain(item: HashMap<String, AttributeValue>) -> Result<Option<Domain>, StoreError> {
    if is_claimed_mark(&item) {
        return Ok(None);
    }
    domain_from_item(item).map(Some)
}

fn domain_from_item(item: HashMap<String, AttributeValue>) -> Result<Domain, StoreError> {
    serde_dynamo::from_item::<_, DomainItem>(item)
        .map(DomainItem::into_domain)
        .map_err(|e| StoreError::Internal(format!("deserialize domain item: {e}")))
}

/// What an image of an item (a stream record's) holds, as the events see it:
/// `None` for items that are not domains (name holders, claims, counts, keys).
pub fn snapshot_of_item(
    item: serde_dynamo::Item,
) -> Result<Option<crate::events::Snapshot>, StoreError> {
    use crate::events::Snapshot;
    let is_domain = matches!(
        item.get("sk"),
        Some(serde_dynamo::AttributeValue::S(sk)) if sk.starts_with(DOMAIN_SORT_PREFIX)
    );
    if !is_domain {
        return Ok(None);
    }
    if item.contains_key(CLAIMED_MARK) {
        return Ok(Some(Snapshot::Claimed));
    }
    serde_dynamo::from_item::<_, DomainItem>(item)
        .map(|item| Some(Snapshot::Domain(Box::new(item.into_domain()))))
        .map_err(|e| StoreError::Internal(format!("deserialize domain image: {e}")))
}

/// A listed domain item, or `None` for one that cannot be read: it is logged and
/// left out, so one bad item never fails a whole listing or scheduler run.
fn listed_domain(item: HashMap<String, AttributeValue>) -> Result<Option<Domain>, StoreError> {
    if is_claimed_mark(&item) {
        return Ok(None);
    }
    let key = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let (pk, sk) = (key("pk"), key("sk"));
    match domain_from_item(item) {
        Ok(domain) => Ok(Some(domain)),
        Err(error) => {
            tracing::error!(?pk, ?sk, %error, "unreadable domain item left out");
            Ok(None)
        }
    }
}

/// An entry of the keys-only due index: the domain's key and where it sorts.
struct DueEntry {
    key: HashMap<String, AttributeValue>,
    due_sort_key: String,
}

fn due_entry(item: HashMap<String, AttributeValue>) -> Result<Option<DueEntry>, StoreError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let (Some(pk), Some(sk), Some(due_sort_key)) = (text("pk"), text("sk"), text("gsi_due_sk"))
    else {
        tracing::error!(?item, "due index entry without its keys left out");
        return Ok(None);
    };
    Ok(Some(DueEntry {
        key: HashMap::from([
            ("pk".to_string(), string_value(pk)),
            ("sk".to_string(), string_value(sk)),
        ]),
        due_sort_key,
    }))
}

/// Keys per BatchGetItem (DynamoDB's most), and rounds for the keys it leaves
/// unprocessed before the read counts as throttled.
const BATCH_GET_KEYS: usize = 100;
const BATCH_GET_ROUNDS: u32 = 5;

impl DynamoDbStore {
    /// The domains at these keys (strongly consistent; gone ones and claimed
    /// marks left out), in batches.
    async fn get_many(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<Domain>, StoreError> {
        let mut domains = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_KEYS) {
            let mut pending = chunk.to_vec();
            for round in 0..=BATCH_GET_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                if round == BATCH_GET_ROUNDS {
                    return Err(StoreError::Throttled(
                        "batch get due domains: keys left unprocessed".into(),
                    ));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << round)).await;
                }
                let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| classify("batch get due domains", e))?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    domains.extend(listed_domain(item)?);
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(domains)
    }
}

#[async_trait]
impl DomainStore for DynamoDbStore {
    async fn insert(&self, domain: &Domain, max_domains: usize) -> Result<(), StoreError> {
        check_size(domain)?;
        let domain_item = to_item(&DomainItem::from_domain(domain))?;
        let claim_item = to_item(&ClaimItem {
            pk: claim_pk(&domain.name),
            sk: CLAIM_SORT_KEY,
            organization_id: &domain.organization_id,
            domain_id: &domain.id,
        })?;
        let put = |item, condition: String| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .build()
                .map_err(build_error)
        };
        let count = Update::builder()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(&domain.organization_id)))
            .key("sk", string_value(COUNT_SORT_KEY))
            .update_expression("SET domains = if_not_exists(domains, :zero) + :one")
            .condition_expression("attribute_not_exists(domains) OR domains < :max")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(max_domains.to_string()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder()
                .put(put(claim_item, "attribute_not_exists(pk)".into())?)
                .build(),
            // Where the organization lost the name to a claim, its mark gives way.
            TransactWriteItem::builder()
                .put(put(
                    domain_item,
                    format!("attribute_not_exists(pk) OR attribute_exists({CLAIMED_MARK})"),
                )?)
                .build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.transact("insert domain", items).await? {
            TransactionOutcome::Done => Ok(()),
            // A taken name is the more specific answer when both fail.
            TransactionOutcome::ConditionFailed(failed) if failed == [2] => {
                Err(StoreError::LimitReached)
            }
            TransactionOutcome::ConditionFailed(_) => Err(StoreError::NameTaken),
        }
    }

    async fn domain_count(&self, organization_id: &str) -> Result<usize, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(organization_id)))
            .key("sk", string_value(COUNT_SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get domain count", e))?;
        Ok(output
            .item
            .and_then(|item| item.get("domains").and_then(|n| n.as_n().ok()).cloned())
            .and_then(|n| n.parse::<i64>().ok())
            .map_or(0, |n| usize::try_from(n).unwrap_or(0)))
    }

    async fn get(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<Domain>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(organization_id)))
            .key("sk", string_value(domain_sk(name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get domain", e))?;
        Ok(output.item.map(stored_domain).transpose()?.flatten())
    }

    async fn list_page(
        &self,
        organization_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DomainPage, StoreError> {
        let pk = organization_pk(organization_id);
        let start = after.map(|after| {
            HashMap::from([
                ("pk".to_string(), string_value(pk.clone())),
                (
                    "sk".to_string(),
                    string_value(format!("{DOMAIN_SORT_PREFIX}{after}")),
                ),
            ])
        });
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", string_value(pk))
            .expression_attribute_values(":prefix", string_value(DOMAIN_SORT_PREFIX))
            .consistent_read(true)
            .set_exclusive_start_key(start);
        let domains = self
            .query_items(
                "list domains",
                query,
                limit.saturating_add(1),
                listed_domain,
            )
            .await?;
        Ok(DomainPage::of(domains, limit))
    }

    async fn update(&self, domain: &mut Domain) -> Result<(), StoreError> {
        check_size(domain)?;
        let read_version = domain.version;
        let mut next = domain.clone();
        next.version = read_version + 1;
        let item = to_item(&DomainItem::from_domain(&next))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("id = :id AND version = :version")
            .expression_attribute_values(":id", string_value(domain.id.clone()))
            .expression_attribute_values(":version", AttributeValue::N(read_version.to_string()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            Ok(_) => {
                *domain = next;
                Ok(())
            }
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                // Gone, or written since it was read? The failed write says, where
                // the server returns the old item; otherwise ask.
                let old_id = match service.err() {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) => id_of(e.item()),
                    _ => None,
                };
                Err(self.gone_or_conflict(domain, old_id).await?)
            }
            Err(error) => Err(classify("update domain", error)),
        }
    }

    async fn delete(&self, domain: &Domain) -> Result<(), StoreError> {
        let delete_domain = Delete::builder()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(&domain.organization_id)))
            .key("sk", string_value(domain_sk(&domain.name)))
            .condition_expression("id = :id AND version = :version")
            .expression_attribute_values(":id", string_value(domain.id.clone()))
            .expression_attribute_values(":version", AttributeValue::N(domain.version.to_string()))
            .build()
            .map_err(build_error)?;
        let release_claim = Delete::builder()
            .table_name(&self.table)
            .key("pk", string_value(claim_pk(&domain.name)))
            .key("sk", string_value(CLAIM_SORT_KEY))
            .condition_expression("domain_id = :id")
            .expression_attribute_values(":id", string_value(domain.id.clone()))
            .build()
            .map_err(build_error)?;
        // `if_not_exists(.., :one) - :one`: a count missing for any reason ends at 0.
        let uncount = Update::builder()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(&domain.organization_id)))
            .key("sk", string_value(COUNT_SORT_KEY))
            .update_expression("SET domains = if_not_exists(domains, :one) - :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete_domain).build(),
            TransactWriteItem::builder().delete(release_claim).build(),
            TransactWriteItem::builder().update(uncount).build(),
        ];
        match self.transact("delete domain", items).await? {
            TransactionOutcome::Done => Ok(()),
            TransactionOutcome::ConditionFailed(_) => {
                Err(self.gone_or_conflict(domain, None).await?)
            }
        }
    }

    async fn reschedule(
        &self,
        domain: &Domain,
        next_check_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(&domain.organization_id)))
            .key("sk", string_value(domain_sk(&domain.name)))
            .condition_expression("id = :id AND version = :version")
            .expression_attribute_values(":id", string_value(domain.id.clone()))
            .expression_attribute_values(":version", AttributeValue::N(domain.version.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        update = match next_check_at {
            Some(at) => update
                .update_expression(
                    "SET next_check_at = :at, gsi_due_pk = :due_pk, gsi_due_sk = :due_sk, version = version + :one",
                )
                .expression_attribute_values(":at", string_value(at.to_string()))
                .expression_attribute_values(":due_pk", string_value(due_partition_of(&domain.name)))
                .expression_attribute_values(":due_sk", string_value(due_sort_key(at, &domain.name))),
            None => update.update_expression(
                "SET version = version + :one REMOVE next_check_at, gsi_due_pk, gsi_due_sk",
            ),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                let old_id = match service.err() {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e) => id_of(e.item()),
                    _ => None,
                };
                Err(self.gone_or_conflict(domain, old_id).await?)
            }
            Err(error) => Err(classify("reschedule domain", error)),
        }
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Domain>, StoreError> {
        // Sort keys are "<next check>#<name>"; "~" sorts after every name character.
        let upto = format!("{now}#~");
        let shards = (0..DUE_SHARDS).map(|shard| {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("gsi_due_pk = :pk AND gsi_due_sk <= :upto")
                .expression_attribute_values(":pk", string_value(due_partition(shard)))
                .expression_attribute_values(":upto", string_value(upto.clone()));
            self.query_items("query due domains", query, limit, due_entry)
        });
        let mut entries: Vec<DueEntry> = Vec::new();
        for shard in futures::future::join_all(shards).await {
            entries.extend(shard?);
        }
        entries.sort_by(|a, b| a.due_sort_key.cmp(&b.due_sort_key));
        entries.truncate(limit);
        // The index holds keys only (its entries stay small, so moving one costs
        // little); the domains are read by key, as they are now.
        let keys = entries.into_iter().map(|entry| entry.key).collect();
        let mut due: Vec<Domain> = self
            .get_many(keys)
            .await?
            .into_iter()
            .filter(|domain| domain.schedule.next_check_at.is_some_and(|at| at <= now))
            .collect();
        due.sort_by(|a, b| {
            (a.schedule.next_check_at, &a.name).cmp(&(b.schedule.next_check_at, &b.name))
        });
        Ok(due)
    }

    async fn holder(&self, name: &DomainName) -> Result<Option<NameHolder>, StoreError> {
        self.read_holder(name).await
    }

    async fn transfer(&self, transfer: Transfer<'_>, max_domains: usize) -> Result<(), StoreError> {
        self.transfer_name(transfer, max_domains).await
    }

    async fn claims(&self, organization_id: &str) -> Result<ClaimSet, StoreError> {
        self.read_claims(organization_id).await
    }

    async fn get_claim(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<DomainClaim>, StoreError> {
        self.read_claim(organization_id, name).await
    }

    async fn put_claim(
        &self,
        claim: &DomainClaim,
        replacing: Option<&DomainClaim>,
        guard: u64,
    ) -> Result<(), StoreError> {
        self.write_new_claim(claim, replacing, guard).await
    }

    async fn update_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        self.write_claim(claim).await
    }

    async fn delete_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        self.remove_claim(claim).await
    }
}
