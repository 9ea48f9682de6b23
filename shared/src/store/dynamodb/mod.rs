//! Single-table DynamoDB store. The items, their keys and the `due-keys` index
//! are described once, in `docs/table-design.md`; every key is written by
//! `schema.rs`. The holder item makes a name belong to one organization at a time:
//! it is written and deleted with the domain item and the count in one transaction.

mod api_keys;
mod claims;
mod counts;
mod domain_items;
mod domains;
mod items;
mod limits;
mod requests;
mod schema;

pub use items::snapshot_of_item;
pub use schema::{DUE_INDEX, TTL_ATTRIBUTE, create_table};

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde::Serialize;

use requests::{Condition, Conditioned, Read, TransactItem, condition_checked};

use super::sdk_failure::{SdkFailure, sdk_failure};
use super::{DomainItems, StoreError};
use crate::model::Domain;

/// A transaction that loses a race on the same items is cancelled with
/// TransactionConflict; retried a few times so the caller gets the real answer
/// (usually 409) instead of a 503.
const TRANSACTION_CONFLICT_RETRIES: u32 = 3;

type Item = HashMap<String, AttributeValue>;

/// Domains and API keys in one DynamoDB table.
pub struct DynamoDbStore {
    client: Client,
    table: String,
    /// Query page size; `None` lets DynamoDB fill 1 MB pages.
    page_size: Option<i32>,
}

fn string_value(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Internal(format!("serialize item: {e}")))
}

/// DynamoDB's modeled errors, recognized by type: their metadata code is not
/// always set (errors built by hand or by mocks carry none).
trait Modeled: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {
    fn is_throttling(&self) -> bool;

    /// A conditional write's condition failed (a write of one item).
    fn is_condition_failed(&self) -> bool {
        false
    }
}

macro_rules! modeled {
    ($($error:ty $(: $condition_failed:ident)?;)*) => {$(
        impl Modeled for $error {
            fn is_throttling(&self) -> bool {
                self.is_provisioned_throughput_exceeded_exception()
                    || self.is_request_limit_exceeded()
                    || self.is_throttling_exception()
            }
            $(
                fn is_condition_failed(&self) -> bool {
                    self.$condition_failed()
                }
            )?
        }
    )*};
}

modeled! {
    aws_sdk_dynamodb::operation::get_item::GetItemError;
    aws_sdk_dynamodb::operation::query::QueryError;
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    aws_sdk_dynamodb::operation::put_item::PutItemError: is_conditional_check_failed_exception;
    aws_sdk_dynamodb::operation::update_item::UpdateItemError: is_conditional_check_failed_exception;
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError: is_conditional_check_failed_exception;
}

impl Modeled for aws_sdk_dynamodb::operation::create_table::CreateTableError {
    fn is_throttling(&self) -> bool {
        false
    }
}

/// Maps an SDK failure to what the caller can do about it.
fn classify<E: Modeled>(operation: &str, error: SdkError<E, HttpResponse>) -> StoreError {
    let (detail, failure) = sdk_failure(operation, &error);
    match failure {
        SdkFailure::NoAnswer => StoreError::Unavailable(detail),
        SdkFailure::Service(error, status) if error.is_throttling() || status == 429 => {
            StoreError::Throttled(detail)
        }
        // The item (or its index entry) is over DynamoDB's limits: this
        // domain's own problem, never the caller's 500.
        SdkFailure::Service(error, _)
            if error.code() == Some("ValidationException") && detail.contains("size") =>
        {
            StoreError::TooLarge(detail)
        }
        SdkFailure::Service(_, status) if status >= 500 => StoreError::Unavailable(detail),
        SdkFailure::Service(..) | SdkFailure::Other => StoreError::Internal(detail),
    }
}

enum TransactionOutcome {
    Done,
    /// The positions of the items whose condition failed.
    ConditionFailed(Vec<usize>),
}

impl DynamoDbStore {
    /// The store on `table`, through `client`.
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
        let key = schema::WARM_UP_KEY;
        if let Err(error) = self
            .get_item("warm-up read", key, key, Read::Eventual)
            .await
        {
            tracing::warn!(%error, "warm-up read failed");
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
        convert: fn(Item) -> Result<Option<T>, StoreError>,
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
fn id_of(item: Option<&Item>) -> Option<String> {
    item.and_then(|item| item.get("id"))
        .and_then(|id| id.as_s().ok())
        .cloned()
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("build request: {e}"))
}

fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Internal(format!("deserialize item: {e}")))
}
