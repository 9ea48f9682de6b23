//! Domain claims, name holders and the transfer of a name on DynamoDB: the
//! claim items, the claims guard and the one transaction that passes a name on
//! (see `docs/table-design.md`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::counts::CountMove;
use super::domain_items::{Guard, same_domain_item};
use super::schema::*;
use super::{
    Condition, Conditioned, DynamoDbStore, Item, Read, TransactItem, TransactionOutcome,
    condition_checked, from_item, string_value, to_item,
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

fn claim_from_item(item: Item) -> Result<DomainClaim, StoreError> {
    from_item::<ClaimItem>(item).map(|item| item.claim)
}

/// "This same claim": its proof value is the one read (values are random, so a
/// replaced claim never matches).
fn same_claim(claim: &DomainClaim) -> Condition {
    Condition::new(
        "#record.#value = :value",
        HashMap::from([(":value".into(), string_value(claim.record.value.clone()))]),
    )
    .with_names([("#record", "record"), ("#value", "value")])
}

/// "This same claim, still pending".
fn same_pending_claim(claim: &DomainClaim) -> Condition {
    let mut condition = same_claim(claim).with_names([("#status", "status")]);
    condition.expression = format!("#status = :pending AND {}", condition.expression);
    condition
        .values
        .insert(":pending".into(), string_value("pending"));
    condition
}

impl DynamoDbStore {
    pub(super) async fn read_holder(
        &self,
        name: &DomainName,
    ) -> Result<Option<NameHolder>, StoreError> {
        let item = self
            .get_item(
                "get name holder",
                holder_pk(name),
                HOLDER_SORT_KEY,
                Read::Consistent,
            )
            .await?;
        Ok(item
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
            items.push(self.pending_claim_put(claim)?.transact_item()?);
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
        self.transact_put(mark)
            .conditioned(same_domain_item(previous))
            .transact_item()
    }

    /// The name's holder item moved from `previous` to `next`.
    fn pass_name(
        &self,
        previous: &Domain,
        next: &Domain,
        transfer: Transfer<'_>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .transact_update(holder_pk(&next.name), HOLDER_SORT_KEY)
            .condition_expression("domain_id = :previous")
            .expression_attribute_values(":previous", string_value(previous.id.clone()))
            .expression_attribute_values(":org", string_value(next.organization_id.clone()))
            .expression_attribute_values(":next", string_value(next.id.clone()));
        let update = if transfer.claim.is_some() {
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
        update.transact_item()
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
        self.transact_put(item)
            .condition_expression("attribute_not_exists(pk)")
            .transact_item()
    }

    /// A put of `claim` conditioned on the stored one being the same pending claim.
    fn pending_claim_put(&self, claim: &DomainClaim) -> Result<PutBuilder, StoreError> {
        Ok(self
            .transact_put(to_item(&ClaimItem::from_claim(claim))?)
            .conditioned(same_pending_claim(claim)))
    }

    pub(super) async fn read_claims(&self, organization_id: &str) -> Result<ClaimSet, StoreError> {
        let pk = organization_pk(organization_id);
        let guard = self
            .get_item(
                "get claims guard",
                pk.clone(),
                CLAIM_GUARD_SORT_KEY,
                Read::Consistent,
            )
            .await?
            .and_then(|item| item.get("guard").and_then(|n| n.as_n().ok()).cloned())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let query = self.query_prefix(pk, DOMAIN_CLAIM_PREFIX);
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
        self.get_item(
            "get claim",
            organization_pk(organization_id),
            domain_claim_sk(name),
            Read::Consistent,
        )
        .await?
        .map(claim_from_item)
        .transpose()
    }

    pub(super) async fn write_new_claim(
        &self,
        claim: &DomainClaim,
        replacing: Option<&DomainClaim>,
        guard: u64,
    ) -> Result<(), StoreError> {
        let claim_put = self.transact_put(to_item(&ClaimItem::from_claim(claim))?);
        let claim_put = match replacing {
            None => claim_put.condition_expression("attribute_not_exists(pk)"),
            Some(old) => claim_put.conditioned(same_claim(old)),
        };
        let guard_update = self
            .transact_update(
                organization_pk(&claim.organization_id),
                CLAIM_GUARD_SORT_KEY,
            )
            .update_expression("SET guard = :next")
            .condition_expression("attribute_not_exists(guard) OR guard = :read")
            .expression_attribute_values(":read", AttributeValue::N(guard.to_string()))
            .expression_attribute_values(":next", AttributeValue::N((guard + 1).to_string()));
        let items = vec![claim_put.transact_item()?, guard_update.transact_item()?];
        match self.transact("put claim", items).await? {
            TransactionOutcome::Done => Ok(()),
            TransactionOutcome::ConditionFailed(failed) if failed.contains(&0) => {
                Err(StoreError::ClaimGone)
            }
            TransactionOutcome::ConditionFailed(_) => Err(StoreError::Conflict),
        }
    }

    pub(super) async fn write_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        let result = self
            .put_item(to_item(&ClaimItem::from_claim(claim))?)
            .conditioned(same_pending_claim(claim))
            .send()
            .await;
        claim_gone_if_failed(condition_checked("update claim", result)?)
    }

    pub(super) async fn remove_claim(&self, claim: &DomainClaim) -> Result<(), StoreError> {
        let result = self
            .delete_item(
                organization_pk(&claim.organization_id),
                domain_claim_sk(&claim.name),
            )
            .conditioned(same_claim(claim))
            .send()
            .await;
        claim_gone_if_failed(condition_checked("delete claim", result)?)
    }
}

/// A write conditioned on the claim as read: `ClaimGone` if it failed.
fn claim_gone_if_failed<T, E>(written: Result<T, E>) -> Result<(), StoreError> {
    written.map(drop).map_err(|_| StoreError::ClaimGone)
}
