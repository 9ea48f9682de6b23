//! Domain items, name holder items and the per-organization count: `DomainStore` on
//! DynamoDB. A domain is two items (`items.rs`); every write of the domain item
//! writes the schedule item with it in one transaction, and a scheduled check
//! that changed nothing a caller sees writes the schedule item alone.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use serde::Serialize;

use super::counts::CountMove;
use super::items::{ScheduleItem, assemble, is_schedule_sk, name_of_sk};
use super::schema::*;
use super::{
    Condition, Conditioned, DynamoDbStore, Item, TransactItem, TransactionOutcome,
    condition_checked, id_of, string_value, to_item,
};
use crate::claims::{DomainClaim, NameHolder};
use crate::domain_name::DomainName;
use crate::model::{Domain, Timestamp};
use crate::store::{
    ClaimItems, ClaimSet, DomainItems, DomainPage, DueSlice, HolderItems, LimitItems, SesSlot,
    StoreError, Transfer, Turn, check_size,
};

#[derive(Serialize)]
struct HolderItem<'a> {
    pk: String,
    sk: &'static str,
    organization_id: &'a str,
    domain_id: &'a str,
}

use super::domain_items::*;

/// An entry of the keys-only due index: the domain item's key and where it
/// sorts. Entries are schedule items' (or, until their next write, domain items
/// stored before schedule items existed).
struct DueEntry {
    domain_key: (String, String),
    due_sort_key: String,
}

fn due_entry(item: Item) -> Result<Option<DueEntry>, StoreError> {
    let (Some(pk), Some(sk), Some(due_sort_key)) = (
        text_of(&item, "pk"),
        text_of(&item, "sk"),
        text_of(&item, "gsi_due_sk"),
    ) else {
        tracing::error!(?item, "due index entry without its keys left out");
        return Ok(None);
    };
    let domain_sk = sk.strip_suffix(SCHEDULE_SUFFIX).unwrap_or(&sk).to_string();
    Ok(Some(DueEntry {
        domain_key: (pk, domain_sk),
        due_sort_key,
    }))
}

fn raw(item: Item) -> Result<Option<Item>, StoreError> {
    Ok(Some(item))
}

impl DynamoDbStore {
    /// Why a write conditioned on the schedule item failed, from the item the
    /// failure returned: `None` when there was none (gone, or a domain stored
    /// before schedule items).
    fn schedule_write_failed(read: &Domain, old: Option<&Item>) -> Option<StoreError> {
        let old = old?;
        Some(if id_of(Some(old)).as_deref() == Some(read.id.as_str()) {
            StoreError::Conflict
        } else {
            StoreError::DomainGone
        })
    }
}

#[async_trait]
impl DomainItems for DynamoDbStore {
    async fn insert(&self, domain: &Domain, max_domains: usize) -> Result<(), StoreError> {
        check_size(domain)?;
        let holder_item = to_item(&HolderItem {
            pk: holder_pk(&domain.name),
            sk: HOLDER_SORT_KEY,
            organization_id: &domain.organization_id,
            domain_id: &domain.id,
        })?;
        let holder = self
            .transact_put(holder_item)
            .condition_expression("attribute_not_exists(pk)")
            .transact_item()?;
        let count = self.count_move(&domain.organization_id, CountMove::Up { max: max_domains })?;
        // Where the organization lost the name to a claim, its mark gives way.
        let [domain_put, schedule_put] = self.put_domain(domain, &Guard::New)?;
        let mut items = vec![holder, domain_put, schedule_put, count];
        const PARENTS_AT: usize = 4;
        items.extend(self.parents_free(domain)?);
        match self.transact("insert domain", items).await? {
            TransactionOutcome::Done => Ok(()),
            // A taken name is the most specific answer, then a held parent.
            TransactionOutcome::ConditionFailed(failed) => {
                Err(if failed.iter().any(|at| *at < 3) {
                    StoreError::NameTaken
                } else if let Some(parent) = failed
                    .iter()
                    .filter_map(|at| at.checked_sub(PARENTS_AT))
                    .min()
                    .and_then(|nth| domain.name.parents().into_iter().nth(nth))
                {
                    StoreError::ParentHeld(parent)
                } else {
                    StoreError::LimitReached
                })
            }
        }
    }

    async fn domain_count(&self, organization_id: &str) -> Result<usize, StoreError> {
        self.read_count(organization_id).await
    }

    async fn get(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<Domain>, StoreError> {
        match self
            .domain_items(organization_pk(organization_id), &domain_sk(name))
            .await?
        {
            Some((item, schedule)) => assemble(item, schedule),
            None => Ok(None),
        }
    }

    async fn list_page(
        &self,
        organization_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DomainPage, StoreError> {
        let pk = organization_pk(organization_id);
        // After `after`'s schedule item too ("~" sorts after "SCHEDULE" and
        // before any longer name).
        let start = after.map(|after| {
            key_of(
                pk.clone(),
                format!("{DOMAIN_SORT_PREFIX}{after}{SCHEDULE_SUFFIX}~"),
            )
        });
        let query = self
            .query_prefix(pk, DOMAIN_SORT_PREFIX)
            .set_exclusive_start_key(start);
        // Two items a domain, and one more domain than asked for (whether a next
        // page follows) plus one whose schedule item may be cut off.
        let wanted = limit.saturating_add(2).saturating_mul(2);
        let mut items = self.query_items("list domains", query, wanted, raw).await?;
        if items.len() < wanted {
            return Ok(DomainPage::of(domains_of_items(items), limit));
        }
        // More follow. A domain item at the very end goes to the next page, with
        // its schedule item.
        if items
            .last()
            .and_then(|item| text_of(item, "sk"))
            .is_some_and(|sk| !is_schedule_sk(&sk))
        {
            items.pop();
        }
        let covered = items
            .last()
            .and_then(|item| text_of(item, "sk"))
            .and_then(|sk| DomainName::from_stored(name_of_sk(&sk)).ok());
        let mut domains = domains_of_items(items);
        let next = if domains.len() > limit {
            domains.truncate(limit);
            domains.last().map(|domain| domain.name.clone())
        } else {
            // Claimed marks took the room: a short page, going on after them.
            covered
        };
        Ok(DomainPage { domains, next })
    }

    async fn update(&self, domain: &mut Domain) -> Result<(), StoreError> {
        check_size(domain)?;
        let mut next = domain.clone();
        next.version = domain.version + 1;
        let items = self.put_domain(&next, &Guard::Read(domain))?.to_vec();
        match self.transact("update domain", items).await? {
            TransactionOutcome::Done => {
                *domain = next;
                Ok(())
            }
            TransactionOutcome::ConditionFailed(_) => {
                Err(self.gone_or_conflict(domain, None).await?)
            }
        }
    }

    async fn update_schedule(&self, domain: &mut Domain) -> Result<(), StoreError> {
        let mut next = domain.clone();
        next.version = domain.version + 1;
        let result = self
            .put_item(to_item(&ScheduleItem::of(&next))?)
            .conditioned(Condition::new(
                "id = :id AND version = :version",
                read_values(domain),
            ))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match condition_checked("update schedule", result)? {
            Ok(_) => {
                domain.version = next.version;
                Ok(())
            }
            Err(failed) => {
                let old = match &failed {
                    PutItemError::ConditionalCheckFailedException(e) => e.item(),
                    _ => None,
                };
                match Self::schedule_write_failed(domain, old) {
                    Some(error) => Err(error),
                    // No schedule item: stored before schedule items existed (its
                    // full write moves it to the two items), or gone (which the
                    // full write finds and says).
                    None => {
                        let mut stored = self
                            .get(&domain.organization_id, &domain.name)
                            .await?
                            .filter(|stored| stored.id == domain.id)
                            .ok_or(StoreError::DomainGone)?;
                        if stored.version != domain.version {
                            return Err(StoreError::Conflict);
                        }
                        crate::store::take_schedule(&mut stored, domain);
                        self.update(&mut stored).await?;
                        domain.version = stored.version;
                        Ok(())
                    }
                }
            }
        }
    }

    async fn delete(&self, domain: &Domain) -> Result<(), StoreError> {
        let delete_domain = self
            .transact_delete(
                organization_pk(&domain.organization_id),
                domain_sk(&domain.name),
            )
            .conditioned(same_domain_item(domain));
        let release_name = self
            .transact_delete(holder_pk(&domain.name), HOLDER_SORT_KEY)
            .condition_expression("domain_id = :id")
            .expression_attribute_values(":id", string_value(domain.id.clone()));
        let items = vec![
            delete_domain.transact_item()?,
            self.delete_schedule(domain)?,
            release_name.transact_item()?,
            self.count_move(&domain.organization_id, CountMove::Down)?,
        ];
        match self.transact("delete domain", items).await? {
            TransactionOutcome::Done => Ok(()),
            TransactionOutcome::ConditionFailed(_) => {
                Err(self.gone_or_conflict(domain, None).await?)
            }
        }
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
        slice: DueSlice,
    ) -> Result<Vec<Domain>, StoreError> {
        // Sort keys are "<next check>#<name>"; "~" sorts after every name character.
        let upto = format!("{now}#~");
        let partitions = slice.partitions().map(|partition| {
            let query = self
                .query()
                .index_name(DUE_INDEX)
                .key_condition_expression("gsi_due_pk = :pk AND gsi_due_sk <= :upto")
                .expression_attribute_values(":pk", string_value(due_partition(partition)))
                .expression_attribute_values(":upto", string_value(upto.clone()));
            self.query_items("query due domains", query, limit, due_entry)
        });
        let mut entries: Vec<DueEntry> = Vec::new();
        for partition in futures::future::join_all(partitions).await {
            entries.extend(partition?);
        }
        entries.sort_by(|a, b| a.due_sort_key.cmp(&b.due_sort_key));
        entries.truncate(limit);
        // The index holds keys only (its entries stay small, so moving one costs
        // little); the domains are read by key, as they are now.
        let keys = entries.into_iter().map(|entry| entry.domain_key).collect();
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
}

#[async_trait]
impl HolderItems for DynamoDbStore {
    async fn holder(&self, name: &DomainName) -> Result<Option<NameHolder>, StoreError> {
        self.read_holder(name).await
    }

    async fn transfer(&self, transfer: Transfer<'_>, max_domains: usize) -> Result<(), StoreError> {
        self.transfer_name(transfer, max_domains).await
    }
}

#[async_trait]
impl LimitItems for DynamoDbStore {
    async fn take_turn(
        &self,
        turn: Turn<'_>,
        now: Timestamp,
        interval: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.write_turn(turn, now, interval).await
    }

    async fn take_ses_call(&self, per_second: u32) -> Result<SesSlot, StoreError> {
        self.take_ses_budget(per_second).await
    }
}

#[async_trait]
impl ClaimItems for DynamoDbStore {
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
