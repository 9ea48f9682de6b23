//! One hookable store wrapper for the tests that stage faults and races: a hook
//! sees each operation before it runs and may fail it, fail it after it took
//! effect, or act on the store first.

use std::sync::Arc;

use shared::store::{ClaimItems, DomainItems, DomainStore, HolderItems, LimitItems};

/// The store operations a `StoreHook` sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreOp {
    Insert,
    Get,
    Update,
    UpdateSchedule,
    Delete,
    Due,
    Transfer,
    TakeTurn,
}

/// What happens to an operation a hook was asked about.
pub enum Hooked {
    /// Done as usual.
    Proceed,
    /// Not done; this error instead.
    Fail(shared::store::StoreError),
    /// Done, then this error reported (a 5xx or timeout after the fact).
    FailAfter(shared::store::StoreError),
}

/// Decides each operation of a `HookedStore` before it runs; it may also act on
/// the store first (stage a race). `domain` is the domain written, or `None`.
#[async_trait::async_trait]
pub trait StoreHook: Send + Sync {
    async fn before(
        &self,
        inner: &dyn DomainStore,
        op: StoreOp,
        domain: Option<&shared::Domain>,
    ) -> Hooked;
}

/// A store whose operations a hook can fail, delay or interleave with others:
/// the one wrapper the fault, race and scheduler tests stage things with.
pub struct HookedStore<H> {
    /// The store the operations go to.
    pub inner: Arc<dyn DomainStore>,
    /// What decides each operation.
    pub hook: H,
}

macro_rules! hooked {
    ($self:ident, $op:expr, $domain:expr, $call:expr) => {
        match $self.hook.before($self.inner.as_ref(), $op, $domain).await {
            Hooked::Proceed => $call.await,
            Hooked::Fail(error) => Err(error),
            Hooked::FailAfter(error) => {
                let _ = $call.await;
                Err(error)
            }
        }
    };
}

#[async_trait::async_trait]
impl<H: StoreHook> DomainItems for HookedStore<H> {
    async fn insert(
        &self,
        domain: &shared::Domain,
        max_domains: usize,
    ) -> Result<(), shared::store::StoreError> {
        hooked!(
            self,
            StoreOp::Insert,
            Some(domain),
            self.inner.insert(domain, max_domains)
        )
    }

    async fn domain_count(&self, org: &str) -> Result<usize, shared::store::StoreError> {
        self.inner.domain_count(org).await
    }

    async fn get(
        &self,
        org: &str,
        name: &shared::DomainName,
    ) -> Result<Option<shared::Domain>, shared::store::StoreError> {
        hooked!(self, StoreOp::Get, None, self.inner.get(org, name))
    }

    async fn list_page(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<shared::store::DomainPage, shared::store::StoreError> {
        self.inner.list_page(org, after, limit).await
    }

    async fn update(&self, domain: &mut shared::Domain) -> Result<(), shared::store::StoreError> {
        let seen = domain.clone();
        hooked!(
            self,
            StoreOp::Update,
            Some(&seen),
            self.inner.update(domain)
        )
    }

    async fn update_schedule(
        &self,
        domain: &mut shared::Domain,
    ) -> Result<(), shared::store::StoreError> {
        let seen = domain.clone();
        hooked!(
            self,
            StoreOp::UpdateSchedule,
            Some(&seen),
            self.inner.update_schedule(domain)
        )
    }

    async fn delete(&self, domain: &shared::Domain) -> Result<(), shared::store::StoreError> {
        hooked!(
            self,
            StoreOp::Delete,
            Some(domain),
            self.inner.delete(domain)
        )
    }

    async fn due(
        &self,
        now: shared::Timestamp,
        limit: usize,
        slice: shared::store::DueSlice,
    ) -> Result<Vec<shared::Domain>, shared::store::StoreError> {
        hooked!(self, StoreOp::Due, None, self.inner.due(now, limit, slice))
    }
}

#[async_trait::async_trait]
impl<H: StoreHook> HolderItems for HookedStore<H> {
    async fn holder(
        &self,
        name: &shared::DomainName,
    ) -> Result<Option<shared::claims::NameHolder>, shared::store::StoreError> {
        self.inner.holder(name).await
    }

    async fn transfer(
        &self,
        transfer: shared::store::Transfer<'_>,
        max_domains: usize,
    ) -> Result<(), shared::store::StoreError> {
        hooked!(
            self,
            StoreOp::Transfer,
            Some(transfer.next),
            self.inner.transfer(transfer, max_domains)
        )
    }
}

#[async_trait::async_trait]
impl<H: StoreHook> LimitItems for HookedStore<H> {
    async fn take_turn(
        &self,
        turn: shared::store::Turn<'_>,
        now: shared::Timestamp,
        interval: std::time::Duration,
    ) -> Result<(), shared::store::StoreError> {
        hooked!(
            self,
            StoreOp::TakeTurn,
            None,
            self.inner.take_turn(turn, now, interval)
        )
    }

    async fn take_ses_call(
        &self,
        per_second: u32,
    ) -> Result<shared::store::SesSlot, shared::store::StoreError> {
        self.inner.take_ses_call(per_second).await
    }
}

#[async_trait::async_trait]
impl<H: StoreHook> ClaimItems for HookedStore<H> {
    async fn claims(
        &self,
        org: &str,
    ) -> Result<shared::store::ClaimSet, shared::store::StoreError> {
        self.inner.claims(org).await
    }

    async fn get_claim(
        &self,
        org: &str,
        name: &shared::DomainName,
    ) -> Result<Option<shared::claims::DomainClaim>, shared::store::StoreError> {
        self.inner.get_claim(org, name).await
    }

    async fn put_claim(
        &self,
        claim: &shared::claims::DomainClaim,
        replacing: Option<&shared::claims::DomainClaim>,
        guard: u64,
    ) -> Result<(), shared::store::StoreError> {
        self.inner.put_claim(claim, replacing, guard).await
    }

    async fn update_claim(
        &self,
        claim: &shared::claims::DomainClaim,
    ) -> Result<(), shared::store::StoreError> {
        self.inner.update_claim(claim).await
    }

    async fn delete_claim(
        &self,
        claim: &shared::claims::DomainClaim,
    ) -> Result<(), shared::store::StoreError> {
        self.inner.delete_claim(claim).await
    }
}

#[async_trait::async_trait]
impl<T: StoreHook> StoreHook for Arc<T> {
    async fn before(
        &self,
        inner: &dyn DomainStore,
        op: StoreOp,
        domain: Option<&shared::Domain>,
    ) -> Hooked {
        self.as_ref().before(inner, op, domain).await
    }
}
