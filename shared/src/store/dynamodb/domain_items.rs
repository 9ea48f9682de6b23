//! How a domain's two items (`items.rs`) are keyed, conditioned, written and
//! read: the pieces every write and read of `domains.rs` is made of.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use futures::StreamExt;

use super::items::{DomainItem, ScheduleItem, assemble_or_skip, is_schedule_sk, name_of_sk};
use super::schema::*;
use super::{
    Condition, Conditioned, DynamoDbStore, Item, TransactItem, classify, string_value, to_item,
};
use crate::model::Domain;
use crate::store::StoreError;

/// Domain reads a due page makes at once.
const GET_MANY_CONCURRENCY: usize = 16;

/// What a write of a domain's two items is conditioned on.
pub(super) enum Guard<'a> {
    /// A new domain: no domain at its key (a claimed mark gives way).
    New,
    /// The domain as read: same id and version. A domain item stored before
    /// schedule items existed carries its version itself and has no schedule
    /// item; the conditions hold for both kinds, so such a domain's next write
    /// moves it to the two items.
    Read(&'a Domain),
}

pub(super) fn read_values(read: &Domain) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":id".to_string(), string_value(read.id.clone())),
        (
            ":version".to_string(),
            AttributeValue::N(read.version.to_string()),
        ),
    ])
}

/// The domain item as read: its id, and its version if it still keeps one.
pub(super) fn same_domain_item(read: &Domain) -> Condition {
    Condition::new(
        "id = :id AND (attribute_not_exists(version) OR version = :version)",
        read_values(read),
    )
}

/// The schedule item as read (absent for a domain stored before schedule items).
pub(super) fn same_schedule_item(read: &Domain) -> Condition {
    Condition::new(
        "(id = :id AND version = :version) OR attribute_not_exists(pk)",
        read_values(read),
    )
}

pub(super) fn key_of(pk: String, sk: String) -> Item {
    HashMap::from([
        ("pk".to_string(), string_value(pk)),
        ("sk".to_string(), string_value(sk)),
    ])
}

pub(super) fn text_of(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// Domains from the items of a run of the domain range, in sort-key order (each
/// domain item followed by its schedule item). A domain that cannot be read is
/// logged and left out, so one bad item never fails a listing or a run.
pub(super) fn domains_of_items(items: Vec<Item>) -> Vec<Domain> {
    let mut domains = Vec::new();
    let mut items = items.into_iter().peekable();
    while let Some(item) = items.next() {
        let sk = text_of(&item, "sk").unwrap_or_default();
        if is_schedule_sk(&sk) {
            // A schedule item whose domain item is on an earlier page or gone.
            continue;
        }
        let schedule = items.next_if(|next| {
            text_of(next, "sk").is_some_and(|next_sk| {
                is_schedule_sk(&next_sk) && name_of_sk(&next_sk) == name_of_sk(&sk)
            })
        });
        domains.extend(assemble_or_skip(item, schedule));
    }
    domains
}

impl DynamoDbStore {
    /// One condition check per parent of `domain`'s name: none is held by
    /// another organization (nearest parent first).
    pub(super) fn parents_free(
        &self,
        domain: &Domain,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        domain
            .name
            .parents()
            .iter()
            .map(|parent| {
                self.transact_check(holder_pk(parent), HOLDER_SORT_KEY)
                    .condition_expression("attribute_not_exists(pk) OR organization_id = :org")
                    .expression_attribute_values(
                        ":org",
                        string_value(domain.organization_id.clone()),
                    )
                    .transact_item()
            })
            .collect()
    }

    /// The domain's two items, written from `next` (its version already bumped)
    /// on `guard`.
    pub(super) fn put_domain(
        &self,
        next: &Domain,
        guard: &Guard<'_>,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let domain_put = self.transact_put(to_item(&DomainItem::of(next))?);
        let schedule_put = self.transact_put(to_item(&ScheduleItem::of(next))?);
        let (domain_put, schedule_put) = match guard {
            Guard::New => (
                domain_put.condition_expression(format!(
                    "attribute_not_exists(pk) OR attribute_exists({CLAIMED_MARK})"
                )),
                schedule_put,
            ),
            Guard::Read(read) => (
                domain_put.conditioned(same_domain_item(read)),
                schedule_put.conditioned(same_schedule_item(read)),
            ),
        };
        Ok([domain_put.transact_item()?, schedule_put.transact_item()?])
    }

    /// The delete of the domain's schedule item, if it is still the one read.
    pub(super) fn delete_schedule(&self, read: &Domain) -> Result<TransactWriteItem, StoreError> {
        self.transact_delete(
            organization_pk(&read.organization_id),
            schedule_sk(&read.name),
        )
        .conditioned(same_schedule_item(read))
        .transact_item()
    }

    /// The domains at these domain-item keys, each with its schedule item
    /// (strongly consistent; gone ones and claimed marks left out). One `Query` a
    /// domain reads both items for 1 read unit (they are one 4 KB unit together);
    /// `BatchGetItem` would bill each item's own 4 KB, twice that.
    pub(super) async fn get_many(
        &self,
        domain_keys: Vec<(String, String)>,
    ) -> Result<Vec<Domain>, StoreError> {
        let reads = futures::stream::iter(domain_keys)
            .map(|(pk, sk)| async move { self.read_domain(pk, &sk).await })
            .buffered(GET_MANY_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut domains = Vec::with_capacity(reads.len());
        for read in reads {
            domains.extend(read?);
        }
        Ok(domains)
    }

    /// The domain whose domain item is at (`pk`, `sk`), with its schedule item:
    /// `None` if there is none (or a claimed mark); an unreadable one is logged and
    /// left out, so one bad item never fails a run.
    pub(super) async fn read_domain(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<Domain>, StoreError> {
        Ok(self
            .domain_items(pk, sk)
            .await?
            .and_then(|(item, schedule)| assemble_or_skip(item, schedule)))
    }

    /// The domain item at (`pk`, `sk`) and its schedule item, which sorts right
    /// after it: one strongly consistent `Query`.
    pub(super) async fn domain_items(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<(Item, Option<Item>)>, StoreError> {
        let output = self
            .query()
            .key_condition_expression("pk = :pk AND sk BETWEEN :domain AND :schedule")
            .expression_attribute_values(":pk", string_value(pk))
            .expression_attribute_values(":domain", string_value(sk))
            .expression_attribute_values(
                ":schedule",
                string_value(format!("{sk}{SCHEDULE_SUFFIX}")),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get domain", e))?;
        let mut domain_item = None;
        let mut schedule_item = None;
        for item in output.items.unwrap_or_default() {
            match text_of(&item, "sk") {
                Some(item_sk) if is_schedule_sk(&item_sk) => schedule_item = Some(item),
                _ => domain_item = Some(item),
            }
        }
        Ok(domain_item.map(|item| (item, schedule_item)))
    }
}
