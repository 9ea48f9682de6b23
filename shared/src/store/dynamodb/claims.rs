//! Domain claims, name holders and the transfer of a name on DynamoDB: the
//! claim items, the claims guard and the one transaction that passes a name on
//! (see `docs/table-design.md`).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::counts::CountMove;
use super::domain_items::{Guard, same_domain_item};
use super::schema::*;
use super::{
    DynamoDbStore, TransactionOutcome, build_error, classify, from_item, string_value, to_item,
};
use crate::claims::{DomainClaim, NameHolder};
use crate::domain_name::DomainName;
use crate::model::{Domain, Timestamp};
use crate::store::{ClaimSet, StoreError, Transfer, check_size};

#[derive(Serialize, Deserialize)]
struct ClaimItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    claim: DomainClaim,
    ttl: i64,
}

impl ClaimItem {
    fn from_claim(claim: &DomainClaim) -> Self {
        Self {
            pk: organization_pk(&claim.organization_id),
            sk: domain_claim_sk(&claim.name),
            claim: claim.clone(),
            ttl: claim.expires_at.as_datetime().timestamp(),
        }
    }
}

#[derive(Deserialize)]
struct HolderItem {
    organization_id: String,
    domain_id: String,
    #[serde(default)]
    claimed_at: Option<Timestamp>,
}

/// What is left at a domain's key when another organization takes the name:
/// readers see no domain there; its appearance is the `domain.claimed` change.
#[derive(Serialize)]
struct ClaimedMark<'a> {
    pk: String,
    sk: String,
    organization_id: &'a str,
    name: &'a DomainName,
    claimed_domain_id: &'a str,
    claimed_at: Timestamp,
    ttl: i64,
}

/// Kept a week, as a claim: long enough for any reader of the change.
const CLAIMED_MARK_DAYS: i64 = 7;

fn claim_from_item(item: HashMap<String, AttributeValue>) -> Result<DomainClaim, StoreError> {
    from_item::<ClaimItem>(item).map(|item| item.claim)
}

/// A condition on the stored claim: its expression, names and values.
type Condition = (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
);

/// "This same claim": its proof value is the one read (values are random, so a
/// replaced claim never matches).
fn same_claim(claim: &DomainClaim) -> Condition {
    (
        "#record.#value = :value".into(),
        HashMap::from([
            ("#record".into(), "record".into()),
            ("#value".into(), "value".into()),
        ]),
        HashMap::from([(":value".into(), string_value(claim.record.value.clone()))]),
    )
}

/// "This same claim, still pending".
fn same_pending_claim(claim: &DomainClaim) -> Condition {
    let (expression, mut names, mut values) = same_claim(claim);
    names.insert("#status".into(), "status".into());
    values.insert(":pending".into(), string_value("pending"));
    (
        format!("#status = :pending AND {expression}"),
        names,
        values,
    )
}

impl DynamoDbStore {
    pub(super) async fn read_holder(
        &self,
        name: &DomainName,
    ) -> Result<Option<NameHolder>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", string_value(holder_pk(name)))
            .key("sk", string_value(HOLDER_SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get name holder", e))?;
        Ok(output
            .item
            .map(from_item::<HolderItem>)
            .transpose()?
            .map(|item| NameHolder {
                organization_id: item.organization_id,
                domain_id: item.domain_id,
                claimed_at: item.claimed_at,
            }))
    }

    pub(super) async fn transfer_name(
        &self,
        transfer: Transfer<'_>,
        max_domains: usize,
    ) -> Result<(), StoreError> {
        let next = transfer.next;
        check_size(next)?;
        let mut items = Vec::new();
        // Positions, to say which condition failed.
        let mut previous_at = Vec::new();
        let name_at;
        if let Some(previous) = transfer.previous {
            previous_at.push(items.len());
            items.push(self.claimed_mark(previous, transfer.at)?);
            previous_at.push(items.len());
            items.push(self.delete_schedule(previous)?);
            name_at = items.len();
            items.push(self.pass_name(previous, next, transfer)?);
            items.push(self.count_move(&previous.organization_id, CountMove::Down)?);
        } else {
            name_at = items.len();
            items.push(self.new_holder(next, transfer)?);
        }
        let next_at = items.len();
        items.extend(self.put_domain(next, &Guard::New)?);
        let count_at = items.len();
        items.push(self.count_move(&next.organization_id, CountMove::Up { max: max_domains })?);
        let claim_at = items.len();
        if let Some(claim) = transfer.claim {
            items.push(put(self.pending_claim_put(claim)?)?);
        }
        // A create taking the name, like any create, needs every parent free of
        // other organizations; a proven claim does not.
        let parents_at = items.len();
        if transfer.claim.is_none() {
            items.extend(self.parents_free(next)?);
        }
        let failed = match self.transact("transfer name", items).await? {
            TransactionOutcome::Done => return Ok(()),
            TransactionOutcome::ConditionFailed(failed) => failed,
        };
        if let Some(previous) = transfer.previous
            && failed.iter().any(|at| previous_at.contains(at))
        {
            return Err(self.gone_or_conflict(previous, None).await?);
        }
        let held_parent = failed
            .iter()
            .filter_map(|at| at.checked_sub(parents_at))
            .min()
            .and_then(|nth| next.name.parents().into_iter().nth(nth));
        Err(if failed.contains(&name_at) || failed.contains(&next_at) {
            StoreError::NameTaken
        } else if let Some(parent) = held_parent {
            StoreError::ParentHeld(parent)
        } else if transfer.claim.is_some() && failed.contains(&claim_at) {
            StoreError::ClaimGone
        } else if failed.contains(&count_at) {
            StoreError::LimitReached
        } else {
            StoreError::Internal(format!("transfer name: conditions {failed:?} failed"))
        })
    }

    /// The previous holder's domain replaced by its claimed mark, if it is still
    /// the domain as read.
    fn claimed_mark(
        &self,
        previous: &Domain,
        at: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let mark = to_item(&ClaimedMark {
            pk: organization_pk(&previous.organization_id),
            sk: domain_sk(&previous.name),
            organization_id: &previous.organization_id,
            name: &previous.name,
            claimed_domain_id: &previous.id,
            claimed_at: at,
            ttl: at
                .plus(chrono::Duration::days(CLAIMED_MARK_DAYS))
                .as_datetime()
                .timestamp(),
        })?;
        let (condition, values) = same_domain_item(previous);
        put(Put::builder()
            .table_name(&self.table)
            .set_item(Some(mark))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values)))
    }

    /// The name's holder item moved from `previous` to `next`.
    fn pass_name(
        &self,
        previous: &Domain,
        next: &Domain,
        transfer: Transfer<'_>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", string_value(holder_pk(&next.name)))
            .key("sk", string_value(HOLDER_SORT_KEY))
            .condition_expression("domain_id = :previous")
            .expression_attribute_values(":previous", string_value(previous.id.clone()))
            .expression_attribute_values(":org", string_value(next.organization_id.clone()))
            .expression_attribute_values(":next", string_value(next.id.clone()));
        update = if transfer.claim.is_some() {
            update
                .update_expression(
                    "SET organization_id = :org, domain_id = :next, claimed_at = :at",
                )
                .expression_attribute_values(":at", string_value(transfer.at.to_string()))
        } else {
            update.update_expression(
                "SET organization_id = :org, domain_id = :next REMOVE claimed_at",
            )
        };
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_error)?)
            .build())
    }

    /// A holder item for a name nobody holds.
    fn new_holder(
        &self,
        next: &Domain,
        transfer: Transfer<'_>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = HashMap::from([
            ("pk".to_string(), string_value(holder_pk(&next.name))),
            ("sk".to_string(), string_value(HOLDER_SORT_KEY)),
            (
                "organization_id".to_string(),
                string_value(next.organization_id.clone()),
            ),
            ("domain_id".to_string(), string_value(next.id.clone())),
        ]);
        if transfer.claim.is_some() {
            item.insert(
                "claimed_at".to_string(),
                string_value(transfer.at.to_string()),
            );
        }
        put(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)"))
    }

    /// A put of `claim` conditioned on the stored one being the same pending claim.
    fn pending_claim_put(
        &self,
        claim: &DomainClaim,
    ) -> Result<aws_sdk_dynamodb::types::builders::PutBuilder, StoreError> {
        let (expression, names, values) = same_pending_claim(claim);
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&ClaimItem::from_claim(claim))?))
            .condition_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values)))
    }

    pub(super) async fn read_claims(&self, organization_id: &str) -> Result<ClaimSet, StoreError> {
        let pk = organization_pk(organization_id);
        let guard = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", string_value(pk.clone()))
            .key("sk", string_value(CLAIM_GUARD_SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get claims guard", e))?
            .item
            .and_then(|item| item.get("guard").and_then(|n| n.as_n().ok()).cloned())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", string_value(pk))
            .expression_attribute_values(":prefix", string_value(DOMAIN_CLAIM_PREFIX))
            .consistent_read(true);
        let claims = self
            .query_items("list claims", query, usize::MAX, |item| {
                claim_from_item(item).map(Some)
            })
            .await?;
        Ok(ClaimSet { claims, guard })
    }

    pub(super) async fn read_claim(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<DomainClaim>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(organization_id)))
            .key("sk", string_value(domain_claim_sk(name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get claim", e))?;
        output.item.map(claim_from_item).transpose()
    }

    pub(super) async fn write_new_claim(
        &self,
        claim: &DomainClaim,
        replacing: Option<&DomainClaim>,
        guard: u64,
    ) -> Result<(), StoreError> {
        let mut claim_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&ClaimItem::from_claim(claim))?));
        claim_put = match replacing {
            None => claim_put.condition_expression("attribute_not_exists(pk)"),
            Some(old) => {
                let (expression, names, values) = same_claim(old);
                claim_put
                    .condition_expression(expression)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
            }
        };
        let guard_update = Update::builder()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(&claim.organization_id)))
            .key("sk", string_value(CLAIM_GUARD_SORT_KEY))
            .update_expression("SET guard = :next")
            .condition_expression("attribute_not_exists(guard) OR guard = :read")
            .expression_attribute_values(":read", AttributeValue::N(guard.to_string()))
            .expression_attribute_values(":next", AttributeValue::N((guard + 1).to_string()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            put(claim_put)?,
            TransactWriteItem::builder().update(guard_update).build(),
        ];
        match self.transact("put claim", items).await? {
            TransactionOutcome::Done => Ok(()),
            TransactionOutcome::ConditionFailed(failed) if failed.contains(&0) => {
                Err(StoreError::ClaimGone)
            }
            TransactionOutcome::ConditionFailed(_) => Err(StoreError::Conflict),
        }
    }

    pub(super) async fn write_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        let (expression, names, values) = same_pending_claim(claim);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&ClaimItem::from_claim(claim))?))
            .condition_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                Err(StoreError::ClaimGone)
            }
            Err(error) => Err(classify("update claim", error)),
        }
    }

    pub(super) async fn remove_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        let (expression, names, values) = same_claim(claim);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", string_value(organization_pk(&claim.organization_id)))
            .key("sk", string_value(domain_claim_sk(&claim.name)))
            .condition_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                Err(StoreError::ClaimGone)
            }
            Err(error) => Err(classify("delete claim", error)),
        }
    }
}

fn put(
    builder: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .put(builder.build().map_err(build_error)?)
        .build())
}
