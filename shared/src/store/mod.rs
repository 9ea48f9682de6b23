//! Domain storage keyed by organization and domain name. One trait, two
//! implementations with the same semantics: DynamoDB for deployments and an
//! in-memory map for the dev server and fast tests.

mod dynamodb;
mod memory;
pub(crate) mod sdk_failure;

pub use dynamodb::{DUE_INDEX, DynamoDbStore, TTL_ATTRIBUTE, create_table, snapshot_of_item};
pub use memory::InMemoryStore;

use async_trait::async_trait;

use crate::claims::{DomainClaim, NameHolder};
use crate::domain_name::DomainName;
use crate::keys::ApiKeyRecord;
use crate::model::{Domain, Timestamp};

/// Partitions of the due work: every scheduled write lands in one (one DynamoDB
/// partition key takes at most 1,000 writes a second), and a fan-out gives each
/// worker a share of them, so it is also the most workers a sweep can use.
pub const DUE_PARTITIONS: u32 = 16;

/// A stable spread of names over the due partitions (FNV-1a).
pub fn due_partition_of(name: &DomainName) -> u32 {
    let hash = name.as_str().bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % DUE_PARTITIONS
}

/// The share of the due work one scheduled run takes: the partitions `p` with
/// `p % workers == worker`. Every partition belongs to exactly one worker, so
/// workers never check the same domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSlice {
    worker: u32,
    workers: u32,
}

impl DueSlice {
    /// Everything: one run with no fan-out.
    pub const ALL: DueSlice = DueSlice {
        worker: 0,
        workers: 1,
    };

    /// Worker `worker` of `workers` (1 to `DUE_PARTITIONS` workers).
    pub fn new(worker: u32, workers: u32) -> Result<Self, String> {
        if workers == 0 || workers > DUE_PARTITIONS {
            return Err(format!(
                "workers must be 1 to {DUE_PARTITIONS} (the due partitions), not {workers}"
            ));
        }
        if worker >= workers {
            return Err(format!(
                "worker {worker} of {workers}: must be below {workers}"
            ));
        }
        Ok(Self { worker, workers })
    }

    /// Which worker this is.
    pub fn worker(self) -> u32 {
        self.worker
    }

    /// How many workers share the due work.
    pub fn workers(self) -> u32 {
        self.workers
    }

    /// The due partitions this worker reads.
    pub fn partitions(self) -> impl Iterator<Item = u32> {
        (0..DUE_PARTITIONS).filter(move |p| p % self.workers == self.worker)
    }

    /// Whether this worker checks the domain with this name.
    pub fn holds(self, name: &DomainName) -> bool {
        due_partition_of(name) % self.workers == self.worker
    }
}

/// Page size used by `DomainStore::list`.
const LIST_ALL_PAGE: usize = 1000;

/// One page of a listing. `next`: the name to continue after, when more may follow.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainPage {
    /// The page's domains, by name.
    pub domains: Vec<Domain>,
    /// Where the next page starts, when more domains follow.
    pub next: Option<DomainName>,
}

impl DomainPage {
    /// A page of `limit` from up to `limit + 1` domains read: only when one more
    /// was there does a next page follow (a full last page has no cursor).
    pub fn of(mut domains: Vec<Domain>, limit: usize) -> Self {
        let more = domains.len() > limit;
        domains.truncate(limit);
        let next = more
            .then(|| domains.last().map(|d| d.name.clone()))
            .flatten();
        Self { domains, next }
    }
}

/// An organization's claims, and the version of its claims guard: a new claim
/// is written only if no other was since they were read (so the limit holds
/// under concurrency).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimSet {
    /// Every stored claim of the organization (expired ones too), by name.
    pub claims: Vec<DomainClaim>,
    /// The guard's version as read.
    pub guard: u64,
}

/// A name passing to a new holder, written at once by `DomainStore::transfer`.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    /// The holder's domain as read (`None`: nobody holds the name).
    pub previous: Option<&'a Domain>,
    /// The new holder's domain, with its setup mark.
    pub next: &'a Domain,
    /// The claim that proved control, already completed (`None`: a create taking
    /// a name whose holder's domain failed).
    pub claim: Option<&'a DomainClaim>,
    /// When the name passes.
    pub at: Timestamp,
}

/// Work a tenant can ask for that is bounded in time (`DomainStore::take_turn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Turn<'a> {
    /// An organization's check of one name: a domain's verify or a claim's.
    Check {
        /// The organization asking.
        organization_id: &'a str,
        /// The name checked.
        name: &'a DomainName,
    },
    /// An organization's SES read from a verify: one share of the deployment's
    /// SES budget, so no organization can spend it all.
    SesRead {
        /// The organization asking.
        organization_id: &'a str,
    },
}

impl Turn<'_> {
    /// The organization the turn is counted for.
    pub fn organization_id(&self) -> &str {
        match self {
            Turn::Check {
                organization_id, ..
            }
            | Turn::SesRead { organization_id } => organization_id,
        }
    }

    /// What the turn is for, within its organization.
    pub fn key(&self) -> String {
        match self {
            Turn::Check { name, .. } => format!("CHECK#{name}"),
            Turn::SesRead { .. } => "SESREAD".to_string(),
        }
    }
}

/// What `DomainStore::take_ses_call` gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SesSlot {
    /// A call may be made now.
    Taken,
    /// This second's calls are all taken; the next second starts in this long.
    Full(std::time::Duration),
}

#[derive(Debug, thiserror::Error)]
/// What a store operation can fail with.
pub enum StoreError {
    /// The name is claimed by a domain of this or another organization.
    #[error("the domain name is already claimed")]
    NameTaken,
    /// A parent of the name (up to its registrable domain) is held by another
    /// organization: the name is had only by a claim.
    #[error("the parent domain {0} is held by another organization")]
    ParentHeld(DomainName),
    /// The domain this write was conditioned on is gone (or was replaced).
    #[error("the domain no longer exists")]
    DomainGone,
    /// The domain was written by someone else since it was read.
    #[error("the domain changed since it was read")]
    Conflict,
    /// A manual check began less than its interval ago, at this time.
    #[error("the domain was checked at {0}")]
    TooSoon(Timestamp),
    /// The claim this write was conditioned on is gone, replaced or no longer pending.
    #[error("the claim no longer exists or is no longer pending")]
    ClaimGone,
    /// The organization already holds its maximum number of domains.
    #[error("the organization's domain limit is reached")]
    LimitReached,
    /// The domain would not fit the bound on a stored domain.
    #[error("the domain is too large to store: {0}")]
    TooLarge(String),
    #[error("no such API key")]
    /// No API key with that id.
    KeyNotFound,
    #[error("store throttled: {0}")]
    /// The store throttled the call; retry shortly.
    Throttled(String),
    #[error("store unavailable: {0}")]
    /// The store failed or timed out; the call may or may not have taken effect.
    Unavailable(String),
    #[error("store error: {0}")]
    /// Anything else (a request the store refused).
    Internal(String),
}

/// The store a process holds: every kind of item, each behind its own narrow
/// trait, so a use case names the items it touches by what it imports
/// (`DomainItems`, `HolderItems`, `ClaimItems`, `LimitItems`). Both stores
/// implement the four; anything that does is a `DomainStore`.
pub trait DomainStore: DomainItems + HolderItems + ClaimItems + LimitItems {}

impl<T: DomainItems + HolderItems + ClaimItems + LimitItems + ?Sized> DomainStore for T {}

#[async_trait]
/// Domains (and their schedule) keyed by organization and name.
pub trait DomainItems: Send + Sync {
    /// Holds `domain.name` for its organization, writes the domain and counts it,
    /// atomically. `NameTaken` if any organization holds the name, `ParentHeld` if
    /// another organization holds one of its parents (`DomainName::parents`),
    /// `LimitReached` if the organization already holds `max_domains`.
    async fn insert(&self, domain: &Domain, max_domains: usize) -> Result<(), StoreError>;

    /// How many domains the organization holds (its counter).
    async fn domain_count(&self, organization_id: &str) -> Result<usize, StoreError>;

    /// The organization's domain with this name.
    async fn get(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<Domain>, StoreError>;

    /// Up to `limit` of the organization's domains, ordered by name, after `after`
    /// (any text: a page starts after it in name order, whether or not a domain
    /// has that name).
    async fn list_page(
        &self,
        organization_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DomainPage, StoreError>;

    /// Every domain of the organization, ordered by name (page after page).
    async fn list(&self, organization_id: &str) -> Result<Vec<Domain>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .list_page(
                    organization_id,
                    after.as_ref().map(DomainName::as_str),
                    LIST_ALL_PAGE,
                )
                .await?;
            all.extend(page.domains);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Replaces the stored domain with the same organization, name, id and
    /// `version`, and bumps the version (in `domain` too). `DomainGone` if
    /// it was deleted (or deleted and created again) meanwhile: an update never
    /// brings a domain back. `Conflict` if it was written since it was read. A
    /// failed update leaves `domain` as it was (its version as read).
    async fn update(&self, domain: &mut Domain) -> Result<(), StoreError>;

    /// Stores a scheduled check that changed nothing a caller sees: only the
    /// domain's schedule, `last_checked_at` and `ses.checked_at` are written (a
    /// small item, not the domain), conditioned and versioned like `update`. Any
    /// other field of `domain` is not stored.
    async fn update_schedule(&self, domain: &mut Domain) -> Result<(), StoreError>;

    /// Moves only the domain's next check (a small write, for a domain whose full
    /// write failed), conditioned and versioned like `update`.
    async fn reschedule(
        &self,
        domain: &Domain,
        next_check_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut moved = domain.clone();
        moved.schedule.next_check_at = next_check_at;
        self.update_schedule(&mut moved).await
    }

    /// Deletes the domain with this id and `version`, releases its name
    /// and uncounts it, atomically. `DomainGone` if it is no longer there, `Conflict` if it
    /// was written since it was read.
    async fn delete(&self, domain: &Domain) -> Result<(), StoreError>;

    /// Up to `limit` domains of `slice` whose scheduled check is due at `now`, most
    /// overdue first, across all organizations (read by the scheduled
    /// re-verification).
    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
        slice: DueSlice,
    ) -> Result<Vec<Domain>, StoreError>;
}

#[async_trait]
/// Who holds each name, and a name passing from one organization to another.
pub trait HolderItems: Send + Sync {
    /// Who holds the name, if anyone.
    async fn holder(&self, name: &DomainName) -> Result<Option<NameHolder>, StoreError>;

    /// The nearest parent of `name` (`DomainName::parents`) that an organization
    /// other than `organization_id` holds, and its holder.
    async fn parent_held_by_another(
        &self,
        name: &DomainName,
        organization_id: &str,
    ) -> Result<Option<(DomainName, NameHolder)>, StoreError> {
        let parents = name.parents();
        let holders =
            futures::future::join_all(parents.iter().map(|parent| self.holder(parent))).await;
        for (parent, holder) in parents.into_iter().zip(holders) {
            if let Some(holder) = holder?
                && holder.organization_id != organization_id
            {
                return Ok(Some((parent, holder)));
            }
        }
        Ok(None)
    }

    /// Passes the name to `transfer.next`'s organization, atomically: the previous
    /// holder's domain (same id and version as read, `Conflict` or `DomainGone`
    /// otherwise) is removed as *claimed* and uncounted, the name's holder item
    /// names the new domain (only if it still named the previous one, else
    /// `NameTaken`), the new domain is written and counted (`LimitReached` at
    /// `max_domains`), and the claim, if any, is stored completed (only if it
    /// is still the same pending claim, else `ClaimGone`). Without a claim (a
    /// create taking the name), no parent may be held by another organization
    /// (`ParentHeld`), as for `insert`; a proven claim takes the name whoever
    /// holds its parents.
    async fn transfer(&self, transfer: Transfer<'_>, max_domains: usize) -> Result<(), StoreError>;
}

#[async_trait]
/// The turns that bound how often a tenant's requests reach DNS and SES.
pub trait LimitItems: Send + Sync {
    /// Takes `turn` at `now`: only if the last one was taken at least
    /// `interval` before (`TooSoon` with when it was taken otherwise). Of
    /// requests taking one turn at once, exactly one gets it. A turn outlives
    /// the domain or claim it was taken for: deleting and making it again does
    /// not give a new one.
    async fn take_turn(
        &self,
        turn: Turn<'_>,
        now: Timestamp,
        interval: std::time::Duration,
    ) -> Result<(), StoreError>;

    /// Takes one call from the SES budget every process of the deployment shares:
    /// at most `per_second` are taken in any second. `Full` says how long until
    /// the next second starts.
    async fn take_ses_call(&self, per_second: u32) -> Result<SesSlot, StoreError>;
}

#[async_trait]
/// Domain claims, per organization.
pub trait ClaimItems: Send + Sync {
    /// The organization's claims (expired ones included) and its claims guard.
    async fn claims(&self, organization_id: &str) -> Result<ClaimSet, StoreError>;

    /// The organization's claim of the name (expired or not).
    async fn get_claim(
        &self,
        organization_id: &str,
        name: &DomainName,
    ) -> Result<Option<DomainClaim>, StoreError>;

    /// Writes a new claim in place of `replacing` (the claim of that name as
    /// read, or none), if the organization's claims guard is still `guard`:
    /// `Conflict` if another claim was written since, `ClaimGone` if `replacing`
    /// changed.
    async fn put_claim(
        &self,
        claim: &DomainClaim,
        replacing: Option<&DomainClaim>,
        guard: u64,
    ) -> Result<(), StoreError>;

    /// Stores a pending claim's check (or its end), if it is still the same
    /// pending claim: `ClaimGone` otherwise.
    async fn update_claim(&self, claim: &DomainClaim) -> Result<(), StoreError>;

    /// Deletes the claim, if it is still the same one: `ClaimGone` otherwise.
    async fn delete_claim(&self, claim: &DomainClaim) -> Result<(), StoreError>;
}

/// What `DomainStore::update_schedule` stores of `checked` into `stored`: the
/// schedule and when the domain was last checked (and SES last asked), nothing a
/// caller sees besides.
pub(crate) fn take_schedule(stored: &mut Domain, checked: &Domain) {
    stored.schedule = checked.schedule.clone();
    stored.last_checked_at = checked.last_checked_at;
    if let (Some(stored_ses), Some(checked_ses)) = (&mut stored.ses, &checked.ses) {
        stored_ses.checked_at = checked_ses.checked_at;
    }
}

/// A stored domain object stays under this size (JSON), whatever DNS returned:
/// far below DynamoDB's 400 KB item limit, and small enough to list 1,000 at once.
pub const MAX_DOMAIN_BYTES: usize = 32 * 1024;

/// Refuses a write of a domain over `MAX_DOMAIN_BYTES`, before it is sent.
pub fn check_size(domain: &Domain) -> Result<(), StoreError> {
    let size = serde_json::to_vec(domain)
        .map(|json| json.len())
        .map_err(|e| StoreError::Internal(format!("serialize domain: {e}")))?;
    if size >= MAX_DOMAIN_BYTES {
        return Err(StoreError::TooLarge(format!(
            "{} is {size} bytes as JSON (at most {MAX_DOMAIN_BYTES})",
            domain.name
        )));
    }
    Ok(())
}

/// API keys, stored by the hash of the key.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key's record under its hash (and by organization and id).
    async fn put_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<(), StoreError>;

    /// The key with this hash, revoked or not.
    async fn find_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// The organization's keys, ordered by key id.
    async fn list_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Marks the key revoked (once: revoking again keeps the first time).
    /// `KeyNotFound` if there is no such key.
    async fn revoke_key(&self, key_id: &str, now: Timestamp) -> Result<ApiKeyRecord, StoreError>;
}
