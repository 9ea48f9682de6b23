//! The two items a domain is stored as, and how a read puts them back together:
//! the domain item (what the API shows, written only when that changes) and the
//! schedule item (the version every write is conditioned on, the schedule, when
//! the domain was last checked, and the due-keys index's keys), small enough that
//! a scheduled check that changed nothing costs one write unit.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::schema::*;
use crate::model::{CheckSchedule, Domain, Timestamp};
use crate::store::StoreError;

type Item = HashMap<String, AttributeValue>;

#[derive(Serialize, Deserialize)]
pub(super) struct DomainItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    domain: Domain,
    #[serde(default)]
    dkim_tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setup_started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleting_since: Option<Timestamp>,
    /// Absent in items stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    was_verified: Option<bool>,
    /// The schedule and version that versions before the schedule item kept in
    /// the domain item. Read while no schedule item exists; the domain's next
    /// write moves them there (never written again).
    #[serde(flatten, default, skip_serializing)]
    legacy: Option<LegacySchedule>,
}

#[derive(Deserialize)]
struct LegacySchedule {
    #[serde(flatten)]
    schedule: CheckSchedule,
    version: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ScheduleItem {
    pk: String,
    sk: String,
    /// The domain's id: a schedule item never guards another domain of the name.
    id: String,
    /// The domain's version: bumped by every write of either item.
    version: u64,
    #[serde(flatten)]
    schedule: CheckSchedule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_checked_at: Option<Timestamp>,
    /// When SES was last asked (`ses.checked_at` of the domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ses_checked_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi_due_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi_due_sk: Option<String>,
}

impl DomainItem {
    pub(super) fn of(domain: &Domain) -> Self {
        Self {
            pk: organization_pk(&domain.organization_id),
            sk: domain_sk(&domain.name),
            domain: domain.clone(),
            dkim_tokens: domain.dkim_tokens.clone(),
            setup_started_at: domain.setup_started_at,
            deleting_since: domain.deleting_since,
            was_verified: domain.was_verified,
            legacy: None,
        }
    }
}

impl DomainItem {
    /// The domain the item holds, as the API shows it: its own schedule and
    /// version, if any, are the caller's to add.
    fn into_domain(self) -> (Domain, Option<LegacySchedule>) {
        let mut domain = self.domain;
        domain.dkim_tokens = self.dkim_tokens;
        domain.setup_started_at = self.setup_started_at;
        domain.deleting_since = self.deleting_since;
        domain.was_verified = self.was_verified;
        (domain, self.legacy)
    }
}

impl ScheduleItem {
    pub(super) fn of(domain: &Domain) -> Self {
        let due = domain.schedule.next_check_at;
        Self {
            pk: organization_pk(&domain.organization_id),
            sk: schedule_sk(&domain.name),
            id: domain.id.clone(),
            version: domain.version,
            schedule: domain.schedule.clone(),
            last_checked_at: domain.last_checked_at,
            ses_checked_at: domain.ses.as_ref().map(|ses| ses.checked_at),
            gsi_due_pk: due.map(|_| due_partition_key_of(&domain.name)),
            gsi_due_sk: due.map(|at| due_sort_key(at, &domain.name)),
        }
    }
}

/// A domain taken by another organization leaves a mark at its key: no domain.
pub(super) fn is_claimed_mark(item: &Item) -> bool {
    item.contains_key(CLAIMED_MARK)
}

/// Whether an item of the domain range (`DOMAIN#...`) is a schedule item.
pub(super) fn is_schedule_sk(sk: &str) -> bool {
    sk.ends_with(SCHEDULE_SUFFIX)
}

/// The domain name part of a domain or schedule item's sort key.
pub(super) fn name_of_sk(sk: &str) -> &str {
    let name = sk.strip_prefix(DOMAIN_SORT_PREFIX).unwrap_or(sk);
    name.strip_suffix(SCHEDULE_SUFFIX).unwrap_or(name)
}

/// The domain its two items hold: `None` for a claimed mark. A domain item
/// without a schedule item is one stored before schedule items existed, whose
/// own schedule and version count; a schedule item of another domain (or none,
/// for a domain item that has no schedule of its own) is an error.
pub(super) fn assemble(
    domain_item: Item,
    schedule_item: Option<Item>,
) -> Result<Option<Domain>, StoreError> {
    if is_claimed_mark(&domain_item) {
        return Ok(None);
    }
    let stored: DomainItem = serde_dynamo::from_item(domain_item)
        .map_err(|e| StoreError::Internal(format!("deserialize domain item: {e}")))?;
    let schedule: Option<ScheduleItem> = schedule_item
        .map(serde_dynamo::from_item)
        .transpose()
        .map_err(|e| StoreError::Internal(format!("deserialize schedule item: {e}")))?;
    let (mut domain, legacy) = stored.into_domain();
    match (schedule, legacy) {
        (Some(schedule), _) if schedule.id == domain.id => {
            domain.schedule = schedule.schedule;
            domain.version = schedule.version;
            domain.last_checked_at = schedule.last_checked_at.or(domain.last_checked_at);
            if let (Some(ses), Some(at)) = (&mut domain.ses, schedule.ses_checked_at) {
                ses.checked_at = at;
            }
        }
        (None, Some(legacy)) => {
            domain.schedule = legacy.schedule;
            domain.version = legacy.version;
        }
        _ => {
            return Err(StoreError::Internal(format!(
                "domain {} ({}) has no schedule item of its own",
                domain.name, domain.id
            )));
        }
    }
    Ok(Some(domain))
}

/// `assemble` for a listing or a scheduled run: a domain that cannot be read is
/// logged and left out (`None`), so one bad item never fails the rest.
pub(super) fn assemble_or_skip(domain_item: Item, schedule_item: Option<Item>) -> Option<Domain> {
    let sk = domain_item
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    match assemble(domain_item, schedule_item) {
        Ok(domain) => domain,
        Err(error) => {
            tracing::error!(%sk, %error, "unreadable domain left out");
            None
        }
    }
}

/// What an image of an item (a stream record's) holds, as the events see it:
/// `None` for items that are not domains (schedule items, name holders, claims,
/// counts, keys). A domain image is read without its schedule item: the events
/// need only what the API shows.
pub fn snapshot_of_item(
    item: serde_dynamo::Item,
) -> Result<Option<crate::events::Snapshot>, StoreError> {
    use crate::events::Snapshot;
    let is_domain = matches!(
        item.get("sk"),
        Some(serde_dynamo::AttributeValue::S(sk))
            if sk.starts_with(DOMAIN_SORT_PREFIX) && !is_schedule_sk(sk)
    );
    if !is_domain {
        return Ok(None);
    }
    if item.contains_key(CLAIMED_MARK) {
        return Ok(Some(Snapshot::Claimed));
    }
    serde_dynamo::from_item::<_, DomainItem>(item)
        .map(|stored| Some(Snapshot::Domain(Box::new(stored.into_domain().0))))
        .map_err(|e| StoreError::Internal(format!("deserialize domain image: {e}")))
}
