//! Two small conditional writes that bound how often work is done: a domain's
//! turn for a manual check (on its schedule item, versioned like every write of
//! the domain) and the SES budget every process of the deployment shares (one
//! item per second, expiring).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::items::ScheduleItem;
use super::schema::*;
use super::{DynamoDbStore, classify, from_item, id_of, string_value};
use crate::model::{Domain, Timestamp};
use crate::store::{SesSlot, StoreError};

/// Partition key of the SES budget's items (one a second, sort key the second).
const SES_BUDGET_PK: &str = "SESBUDGET";
/// How long a second's item is kept after it (TTL removes it).
const SES_BUDGET_KEPT: Duration = Duration::from_secs(120);

impl DynamoDbStore {
    /// `DomainStore::begin_manual_check`: one `UpdateItem` of the schedule item.
    pub(super) async fn take_manual_check(
        &self,
        domain: &mut Domain,
        now: Timestamp,
        interval: Duration,
    ) -> Result<(), StoreError> {
        if let Some(at) = domain.manual_check_at
            && now.since(at) < interval
        {
            return Err(StoreError::TooSoon(at));
        }
        let cutoff = Timestamp::from(
            now.as_datetime() - chrono::Duration::from_std(interval).unwrap_or_default(),
        );
        let next_version = domain.version + 1;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(&domain.organization_id)))
            .key("sk", string_value(schedule_sk(&domain.name)))
            .update_expression("SET manual_check_at = :now, version = :next")
            .condition_expression(
                "id = :id AND version = :version AND (attribute_not_exists(manual_check_at) OR manual_check_at <= :cutoff)",
            )
            .expression_attribute_values(":now", string_value(now.to_string()))
            .expression_attribute_values(":next", AttributeValue::N(next_version.to_string()))
            .expression_attribute_values(":id", string_value(domain.id.clone()))
            .expression_attribute_values(
                ":version",
                AttributeValue::N(domain.version.to_string()),
            )
            .expression_attribute_values(":cutoff", string_value(cutoff.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => {
                domain.manual_check_at = Some(now);
                domain.version = next_version;
                return Ok(());
            }
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                match service.err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item().cloned(),
                    _ => None,
                }
            }
            Err(error) => return Err(classify("begin manual check", error)),
        };
        match old {
            // No schedule item: a domain stored before schedule items existed (its
            // next full write moves it to two items) or one that is gone, which
            // the full write says.
            None => {
                let mut next = domain.clone();
                next.manual_check_at = Some(now);
                crate::store::DomainStore::update(self, &mut next).await?;
                *domain = next;
                Ok(())
            }
            Some(old) if id_of(Some(&old)).as_deref() != Some(domain.id.as_str()) => {
                Err(StoreError::DomainGone)
            }
            Some(old) => {
                let schedule: ScheduleItem = from_item(old)?;
                if schedule.version != domain.version {
                    return Err(StoreError::Conflict);
                }
                Err(StoreError::TooSoon(schedule.manual_check_at.unwrap_or(now)))
            }
        }
    }

    /// `DomainStore::take_ses_call`: one `UpdateItem` adding a call to this
    /// second's item, refused once it holds `per_second`.
    pub(super) async fn take_ses_budget(&self, per_second: u32) -> Result<SesSlot, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let second = now.as_secs();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", string_value(SES_BUDGET_PK))
            .key("sk", string_value(second.to_string()))
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
        match result {
            Ok(_) => Ok(SesSlot::Taken),
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                let next = Duration::from_secs(second + 1);
                Ok(SesSlot::Full(next.saturating_sub(now)))
            }
            Err(error) => Err(classify("take an SES call", error)),
        }
    }
}
