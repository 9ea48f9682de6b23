//! Small conditional writes that bound how often work is done: a turn (an
//! organization's check of one name, or its share of SES reads; one item each,
//! expiring) and the SES budget every process of the deployment shares (one
//! item per second, expiring).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::schema::*;
use super::{DynamoDbStore, condition_checked, from_item, string_value};
use crate::model::Timestamp;
use crate::store::{SesSlot, StoreError, Turn};

/// Partition key of the SES budget's items (one a second, sort key the second).
const SES_BUDGET_PK: &str = "SESBUDGET";
/// How long a second's item is kept after it (TTL removes it).
const SES_BUDGET_KEPT: Duration = Duration::from_secs(120);
/// A turn's item as a refused write returns it.
#[derive(serde::Deserialize)]
struct TakenTurn {
    taken_at: Timestamp,
}

/// Sort-key prefix of an organization's turns.
const TURN_PREFIX: &str = "TURN#";
/// Seconds a turn's item is kept after its interval (TTL removes it).
const TURN_KEPT_SECONDS: i64 = 60;

impl DynamoDbStore {
    /// `DomainStore::take_turn`: one `UpdateItem` of the turn's small item in
    /// its organization's partition (`TURN#<what>`), expiring after the interval.
    pub(super) async fn write_turn(
        &self,
        turn: Turn<'_>,
        now: Timestamp,
        interval: Duration,
    ) -> Result<(), StoreError> {
        let span = chrono::Duration::from_std(interval).unwrap_or_default();
        let cutoff = Timestamp::from(now.as_datetime() - span);
        let expires = (now.as_datetime() + span).timestamp() + TURN_KEPT_SECONDS;
        let result = self
            .update_item(
                organization_pk(turn.organization_id()),
                format!("{TURN_PREFIX}{}", turn.key()),
            )
            .update_expression("SET taken_at = :now, #ttl = :ttl")
            .condition_expression("attribute_not_exists(taken_at) OR taken_at <= :cutoff")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", string_value(now.to_string()))
            .expression_attribute_values(":cutoff", string_value(cutoff.to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N(expires.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        condition_checked("take a turn", result)?
            .map(drop)
            .map_err(|failed| {
                let taken_at = match failed {
                    UpdateItemError::ConditionalCheckFailedException(e) => e
                        .item
                        .and_then(|item| from_item::<TakenTurn>(item).ok())
                        .map(|turn| turn.taken_at),
                    _ => None,
                };
                StoreError::TooSoon(taken_at.unwrap_or(now))
            })
    }

    /// `DomainStore::take_ses_call`: one `UpdateItem` adding a call to this
    /// second's item, refused once it holds `per_second`.
    pub(super) async fn take_ses_budget(&self, per_second: u32) -> Result<SesSlot, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let second = now.as_secs();
        let result = self
            .update_item(SES_BUDGET_PK, second.to_string())
            .update_expression("ADD calls :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(calls) OR calls < :max")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(per_second.to_string()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((second + SES_BUDGET_KEPT.as_secs()).to_string()),
            )
            .send()
            .await;
        Ok(match condition_checked("take an SES call", result)? {
            Ok(_) => SesSlot::Taken,
            Err(_) => SesSlot::Full(Duration::from_secs(second + 1).saturating_sub(now)),
        })
    }
}
