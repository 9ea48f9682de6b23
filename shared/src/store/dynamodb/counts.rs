//! The per-organization domain count, one rule for every write that moves it: up
//! by one only below the organization's limit; down by one, a missing count
//! ending at 0; read, never below 0. These moves keep a right count right; they
//! do not mend a wrong one (a count stored below 0 by an older transfer would
//! let its organization hold that many domains above the limit).

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

use super::schema::{COUNT_SORT_KEY, organization_pk};
use super::{DynamoDbStore, Read, TransactItem};
use crate::store::StoreError;

/// How a write moves an organization's domain count.
pub(super) enum CountMove {
    /// One more domain, refused at `max`.
    Up {
        /// The organization's limit.
        max: usize,
    },
    /// One domain fewer.
    Down,
}

impl DynamoDbStore {
    /// The transaction item that moves the organization's count.
    pub(super) fn count_move(
        &self,
        organization_id: &str,
        movement: CountMove,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .transact_update(organization_pk(organization_id), COUNT_SORT_KEY)
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        let update = match movement {
            CountMove::Up { max } => update
                .update_expression("SET domains = if_not_exists(domains, :zero) + :one")
                .condition_expression("attribute_not_exists(domains) OR domains < :max")
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":max", AttributeValue::N(max.to_string())),
            CountMove::Down => {
                update.update_expression("SET domains = if_not_exists(domains, :one) - :one")
            }
        };
        update.transact_item()
    }

    /// The organization's count as stored (0 when missing or below 0).
    pub(super) async fn read_count(&self, organization_id: &str) -> Result<usize, StoreError> {
        let item = self
            .get_item(
                "get domain count",
                organization_pk(organization_id),
                COUNT_SORT_KEY,
                Read::Consistent,
            )
            .await?;
        Ok(item
            .and_then(|item| item.get("domains").and_then(|n| n.as_n().ok()).cloned())
            .and_then(|n| n.parse::<i64>().ok())
            .map_or(0, |n| usize::try_from(n).unwrap_or(0)))
    }
}
