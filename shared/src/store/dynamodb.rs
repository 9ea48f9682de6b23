//! Single-table DynamoDB store.
//!
//! | item          | pk               | sk              | notes                                   |
//! |---------------|------------------|-----------------|-----------------------------------------|
//! | domain        | `ORG#<org id>`   | `DOMAIN#<name>` | the domain, its schedule; `gsi_due_*` while watched |
//! | name claim    | `NAME#<name>`    | `CLAIM`         | `organization_id`, `domain_id`          |
//! | domain count  | `ORG#<org id>`   | `COUNT`         | `domains`: how many the organization holds |
//! | key by hash   | `APIKEY#<sha256>`| `APIKEY`        | the key record (never the key)          |
//! | key by org    | `ORG#<org id>`   | `APIKEY#<key id>` | the key record, `key_hash`            |
//! | key by id     | `APIKEYID#<key id>` | `APIKEYID`   | `key_hash`, `organization_id`           |
//!
//! The claim makes a name belong to one organization at a time; it is written and
//! deleted together with the domain item and the count in one transaction (the
//! count's condition makes the per-organization limit exact under concurrency). The `due-checks` GSI
//! is sparse: only domains the scheduled job still watches (pending, verified,
//! temporarily failing; not failed) carry its keys, sharded over `DUE_SHARDS`
//! partitions and sorted by when their next check is due.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
    TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde::{Deserialize, Serialize};

use super::{DomainPage, DomainStore, KeyStore, StoreError, check_size};
use crate::domain_name::DomainName;
use crate::keys::ApiKeyRecord;
use crate::model::{CheckSchedule, Domain, Timestamp};

pub const DUE_INDEX: &str = "due-checks";
/// Partitions of the due-checks index: every scheduled write lands in it, and
/// one partition key takes at most 1,000 writes per second.
pub const DUE_SHARDS: u32 = 4;
const CLAIM_SORT_KEY: &str = "CLAIM";
const COUNT_SORT_KEY: &str = "COUNT";
/// A transaction that loses a race on the same items is cancelled with
/// TransactionConflict; retried a few times so the caller gets the real answer
/// (usually 409) instead of a 503.
const TRANSACTION_CONFLICT_RETRIES: u32 = 3;

pub struct DynamoDbStore {
    client: Client,
    table: String,
    /// Query page size; `None` lets DynamoDB fill 1 MB pages.
    page_size: Option<i32>,
}

#[derive(Serialize, Deserialize)]
struct DomainItem {
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

fn organization_pk(organization_id: &str) -> String {
    format!("ORG#{organization_id}")
}

fn domain_sk(name: &DomainName) -> String {
    format!("DOMAIN#{name}")
}

fn due_partition(shard: u32) -> String {
    format!("DUE#{shard}")
}

/// A stable spread of names over the shards (FNV-1a).
fn due_shard(name: &DomainName) -> u32 {
    let hash = name.as_str().bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % DUE_SHARDS
}

fn claim_pk(name: &DomainName) -> String {
    format!("NAME#{name}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

impl DomainItem {
    fn from_domain(domain: &Domain) -> Self {
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
            gsi_due_pk: due.map(|_| due_partition(due_shard(&domain.name))),
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

fn due_sort_key(at: Timestamp, name: &DomainName) -> String {
    format!("{at}#{name}")
}

fn to_item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Internal(format!("serialize item: {e}")))
}

fn domain_from_item(item: HashMap<String, AttributeValue>) -> Result<Domain, StoreError> {
    serde_dynamo::from_item::<_, DomainItem>(item)
        .map(DomainItem::into_domain)
        .map_err(|e| StoreError::Internal(format!("deserialize domain item: {e}")))
}

/// A listed domain item, or `None` for one that cannot be read: it is logged and
/// left out, so one bad item never fails a whole listing or scheduler run.
fn listed_domain(item: HashMap<String, AttributeValue>) -> Result<Option<Domain>, StoreError> {
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

/// DynamoDB's modeled errors, recognized by type: their metadata code is not
/// always set (errors built by hand or by mocks carry none).
trait Throttling {
    fn is_throttling(&self) -> bool;
}

macro_rules! throttling {
    ($($error:ty),*) => {$(
        impl Throttling for $error {
            fn is_throttling(&self) -> bool {
                self.is_provisioned_throughput_exceeded_exception()
                    || self.is_request_limit_exceeded()
                    || self.is_throttling_exception()
            }
        }
    )*};
}
throttling!(
    aws_sdk_dynamodb::operation::get_item::GetItemError,
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::query::QueryError,
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError
);

impl Throttling for aws_sdk_dynamodb::operation::create_table::CreateTableError {
    fn is_throttling(&self) -> bool {
        false
    }
}

/// Maps an SDK failure to what the caller can do about it.
fn classify<E>(operation: &str, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: Throttling + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = format!(
        "{operation}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&error)
    );
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(detail)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            if service.err().is_throttling() || status == 429 {
                StoreError::Throttled(detail)
            } else if service.err().code() == Some("ValidationException") && detail.contains("size")
            {
                // The item (or its index entry) is over DynamoDB's limits: this
                // domain's own problem, never the caller's 500.
                StoreError::TooLarge(detail)
            } else if status >= 500 {
                StoreError::Unavailable(detail)
            } else {
                StoreError::Internal(detail)
            }
        }
        _ => StoreError::Internal(detail),
    }
}

enum TransactionOutcome {
    Done,
    /// The positions of the items whose condition failed.
    ConditionFailed(Vec<usize>),
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_size: None,
        }
    }

    /// The DynamoDB client this store uses (for `create_table` on the same table).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One cheap read (of a key that never exists) during start-up, so the TLS
    /// handshake, credentials and endpoint resolution are paid before the first
    /// invocation instead of by it. A failure is logged, never fatal: the first
    /// real request will try again.
    pub async fn warm_up(&self) {
        let result = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("WARMUP"))
            .key("sk", s("WARMUP"))
            .send()
            .await;
        if let Err(error) = result {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&error), "warm-up read failed");
        }
    }

    /// Why a write conditioned on `domain`'s id and version failed: `Conflict` if
    /// the same domain is still stored (written since it was read), `DomainGone`
    /// otherwise. `stored_id` is the id the failed write reported, if it did; else
    /// the store is asked.
    async fn gone_or_conflict(
        &self,
        domain: &Domain,
        stored_id: Option<String>,
    ) -> Result<StoreError, StoreError> {
        let stored_id = match stored_id {
            Some(id) => Some(id),
            None => self
                .get(&domain.organization_id, &domain.name)
                .await?
                .map(|d| d.id),
        };
        Ok(match stored_id {
            Some(id) if id == domain.id => StoreError::Conflict,
            _ => StoreError::DomainGone,
        })
    }

    /// Smaller pages, so tests can see every page being followed.
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// Runs `query` page after page until it is exhausted or `limit` items are read:
    /// one request per page.
    async fn query_items<T>(
        &self,
        operation: &str,
        query: QueryFluentBuilder,
        limit: usize,
        convert: fn(HashMap<String, AttributeValue>) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut items = Vec::new();
        let mut start_key = query.get_exclusive_start_key().clone();
        while items.len() < limit {
            let remaining = i32::try_from(limit - items.len()).unwrap_or(i32::MAX);
            let page_size = self.page_size.map_or(remaining, |size| size.min(remaining));
            let output = query
                .clone()
                .set_limit((page_size < i32::MAX).then_some(page_size))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| classify(operation, e))?;
            for item in output.items.unwrap_or_default() {
                items.extend(convert(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    async fn transact(
        &self,
        operation: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<TransactionOutcome, StoreError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(TransactionOutcome::Done),
                Err(error) => error,
            };
            if let SdkError::ServiceError(service) = &error
                && let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                    service.err()
            {
                let codes: Vec<&str> = cancelled
                    .cancellation_reasons()
                    .iter()
                    .filter_map(|reason| reason.code())
                    .collect();
                let failed: Vec<usize> = cancelled
                    .cancellation_reasons()
                    .iter()
                    .enumerate()
                    .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
                    .map(|(position, _)| position)
                    .collect();
                if !failed.is_empty() {
                    return Ok(TransactionOutcome::ConditionFailed(failed));
                }
                if codes.contains(&"TransactionConflict") && attempt < TRANSACTION_CONFLICT_RETRIES
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    continue;
                }
                if codes
                    .iter()
                    .any(|c| *c == "ThrottlingError" || *c == "ProvisionedThroughputExceeded")
                {
                    return Err(StoreError::Throttled(format!("{operation}: {codes:?}")));
                }
                if codes.contains(&"TransactionConflict") {
                    return Err(StoreError::Unavailable(format!(
                        "{operation}: transaction conflict persisted"
                    )));
                }
            }
            return Err(classify(operation, error));
        }
    }
}

/// The `id` of the item a failed conditional write found, where the server
/// returned it (`ReturnValuesOnConditionCheckFailure::AllOld`).
fn id_of(item: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    item.and_then(|item| item.get("id"))
        .and_then(|id| id.as_s().ok())
        .cloned()
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("build request: {e}"))
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
        let put = |item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)
        };
        let count = Update::builder()
            .table_name(&self.table)
            .key("pk", s(organization_pk(&domain.organization_id)))
            .key("sk", s(COUNT_SORT_KEY))
            .update_expression("SET domains = if_not_exists(domains, :zero) + :one")
            .condition_expression("attribute_not_exists(domains) OR domains < :max")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(max_domains.to_string()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().put(put(claim_item)?).build(),
            TransactWriteItem::builder().put(put(domain_item)?).build(),
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
            .key("pk", s(organization_pk(organization_id)))
            .key("sk", s(COUNT_SORT_KEY))
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
            .key("pk", s(organization_pk(organization_id)))
            .key("sk", s(domain_sk(name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get domain", e))?;
        output.item.map(domain_from_item).transpose()
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
                ("pk".to_string(), s(pk.clone())),
                ("sk".to_string(), s(format!("DOMAIN#{after}"))),
            ])
        });
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s("DOMAIN#"))
            .consistent_read(true)
            .set_exclusive_start_key(start);
        let domains = self
            .query_items("list domains", query, limit, listed_domain)
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
            .expression_attribute_values(":id", s(domain.id.clone()))
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
            .key("pk", s(organization_pk(&domain.organization_id)))
            .key("sk", s(domain_sk(&domain.name)))
            .condition_expression("id = :id AND version = :version")
            .expression_attribute_values(":id", s(domain.id.clone()))
            .expression_attribute_values(":version", AttributeValue::N(domain.version.to_string()))
            .build()
            .map_err(build_error)?;
        let release_claim = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(claim_pk(&domain.name)))
            .key("sk", s(CLAIM_SORT_KEY))
            .condition_expression("domain_id = :id")
            .expression_attribute_values(":id", s(domain.id.clone()))
            .build()
            .map_err(build_error)?;
        // `if_not_exists(.., :one) - :one`: a count missing for any reason ends at 0.
        let uncount = Update::builder()
            .table_name(&self.table)
            .key("pk", s(organization_pk(&domain.organization_id)))
            .key("sk", s(COUNT_SORT_KEY))
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
            .key("pk", s(organization_pk(&domain.organization_id)))
            .key("sk", s(domain_sk(&domain.name)))
            .condition_expression("id = :id AND version = :version")
            .expression_attribute_values(":id", s(domain.id.clone()))
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
                .expression_attribute_values(":at", s(at.to_string()))
                .expression_attribute_values(":due_pk", s(due_partition(due_shard(&domain.name))))
                .expression_attribute_values(":due_sk", s(due_sort_key(at, &domain.name))),
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
                .expression_attribute_values(":pk", s(due_partition(shard)))
                .expression_attribute_values(":upto", s(upto.clone()));
            self.query_items("query due domains", query, limit, listed_domain)
        });
        let mut due: Vec<Domain> = Vec::new();
        for shard in futures::future::join_all(shards).await {
            due.extend(shard?);
        }
        due.sort_by(|a, b| {
            (a.schedule.next_check_at, &a.name).cmp(&(b.schedule.next_check_at, &b.name))
        });
        due.truncate(limit);
        Ok(due)
    }
}

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

fn key_hash_pk(key_hash: &str) -> String {
    format!("APIKEY#{key_hash}")
}

fn key_org_sk(key_id: &str) -> String {
    format!("APIKEY#{key_id}")
}

fn key_id_pk(key_id: &str) -> String {
    format!("APIKEYID#{key_id}")
}

fn from_item<T: serde::de::DeserializeOwned>(
    item: HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Internal(format!("deserialize item: {e}")))
}

#[async_trait]
impl KeyStore for DynamoDbStore {
    async fn put_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<(), StoreError> {
        let by_hash = to_item(&KeyItem {
            pk: key_hash_pk(key_hash),
            sk: "APIKEY".into(),
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
            sk: "APIKEYID".into(),
            key_hash: key_hash.into(),
            organization_id: record.organization_id.clone(),
        })?;
        let items = [by_hash, by_org, by_id]
            .into_iter()
            .map(|item| {
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map(|put| TransactWriteItem::builder().put(put).build())
                    .map_err(build_error)
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
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key_hash_pk(key_hash)))
            .key("sk", s("APIKEY"))
            .send()
            .await
            .map_err(|e| classify("find API key", e))?;
        output
            .item
            .map(|item| from_item::<KeyItem>(item).map(|k| k.record))
            .transpose()
    }

    async fn list_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(organization_pk(organization_id)))
            .expression_attribute_values(":prefix", s("APIKEY#"))
            .consistent_read(true);
        self.query_items("list API keys", query, usize::MAX, |item| {
            from_item::<KeyItem>(item).map(|k| Some(k.record))
        })
        .await
    }

    async fn revoke_key(&self, key_id: &str, now: Timestamp) -> Result<ApiKeyRecord, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key_id_pk(key_id)))
            .key("sk", s("APIKEYID"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("find API key id", e))?;
        let id_item: KeyIdItem = from_item(output.item.ok_or(StoreError::KeyNotFound)?)?;
        let revoked_at = s(now.to_string());
        let update = |pk: String, sk: String| {
            Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":now", revoked_at.clone())
                .build()
                .map(|update| TransactWriteItem::builder().update(update).build())
                .map_err(build_error)
        };
        let items = vec![
            update(key_hash_pk(&id_item.key_hash), "APIKEY".into())?,
            update(
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

/// Creates the table with its keys and the sparse due-checks GSI (on-demand billing).
/// `Ok(false)` if it already existed.
pub async fn create_table(client: &Client, table: &str) -> Result<bool, StoreError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let due_index = GlobalSecondaryIndex::builder()
        .index_name(DUE_INDEX)
        .key_schema(key("gsi_due_pk", KeyType::Hash)?)
        .key_schema(key("gsi_due_sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error)?;
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .attribute_definitions(attribute("gsi_due_pk")?)
        .attribute_definitions(attribute("gsi_due_sk")?)
        .global_secondary_indexes(due_index)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(service)) if service.err().is_resource_in_use_exception() => {
            Ok(false)
        }
        Err(error) => Err(classify("create table", error)),
    }
}
