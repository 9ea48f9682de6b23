//! DNS verification: real lookups, all concurrent, with no answer cache, asked of the
//! zone's authoritative name servers where they can be found (else the configured
//! resolver), and judged by the contract's rules with a diagnosis of what is wrong.

mod budget;
mod dmarc;
mod judge;
mod lookups;
mod resolver;
mod servers;
pub mod spf;
mod zones;

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

pub use budget::MAX_QUESTIONS;
pub use judge::{Judgement, judge_dkim_target, judge_mx};
pub use resolver::{Answer, ResolverSetupError, normalize_host};
pub use zones::MAX_ZONE_CUTS;

use crate::domain_name::DomainName;
use crate::model::DnsRecord;
use crate::network::AllowedNetworks;
use budget::Budget;
use lookups::Lookups;
use resolver::{build_resolver, servers_config};
use zones::ZoneCache;

/// One whole check of a domain (name-server discovery, CNAME chains, SPF
/// includes, all of it): well inside the 15 s function timeout, so a hostile or
/// broken zone gets an answer, never a timed-out invocation.
pub const CHECK_BUDGET: Duration = Duration::from_secs(8);

/// What one check of a domain cost: for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckStats {
    /// From the first lookup to the verdicts.
    pub elapsed: Duration,
    /// Records whose lookup could not be completed (the status kept).
    pub incomplete: usize,
    /// DNS questions the check sent (at most `MAX_QUESTIONS`).
    pub questions: usize,
}

/// Checks a domain's records against DNS, as receivers and SES would judge them.
pub struct DnsChecker {
    /// The configured resolver (`DNS_NAMESERVERS` or the system's): trusted as
    /// configured.
    resolver: TokioResolver,
    /// Port of authoritative servers: 53, except in tests.
    authoritative_port: u16,
    /// Non-public networks whose name servers may be asked (none by default).
    allowed_networks: AllowedNetworks,
    zones: Mutex<ZoneCache>,
}

/// The record checker of an `App`: built at start-up by the functions that check
/// DNS, so a resolver that cannot be set up stops start-up; built on first use by
/// the rest, which never check DNS and should not pay for a resolver at cold start.
pub struct LazyDnsChecker {
    checker: OnceLock<DnsChecker>,
    settings: DnsSettings,
}

pub use crate::config::DnsSettings;

impl LazyDnsChecker {
    /// A checker built now.
    pub fn prepared(settings: DnsSettings) -> Result<Self, ResolverSetupError> {
        let checker = Self::build(&settings)?;
        Ok(Self {
            checker: OnceLock::from(checker),
            settings,
        })
    }

    /// A checker built when first asked to check.
    pub fn on_first_use(settings: DnsSettings) -> Self {
        Self {
            checker: OnceLock::new(),
            settings,
        }
    }

    fn build(settings: &DnsSettings) -> Result<DnsChecker, ResolverSetupError> {
        let checker = match &settings.nameservers {
            Some(servers) => DnsChecker::with_nameservers(servers),
            None => DnsChecker::system(),
        }?;
        Ok(checker.allowing(settings.allowed_networks.clone()))
    }

    /// `DnsChecker::check`; if the resolver cannot be set up, every record keeps
    /// its status and says why, as for a lookup that could not be completed.
    pub async fn check(&self, domain: &DomainName, records: &[DnsRecord]) -> Vec<DnsRecord> {
        self.check_measured(domain, records).await.0
    }

    /// `check`, and what it cost.
    pub async fn check_measured(
        &self,
        domain: &DomainName,
        records: &[DnsRecord],
    ) -> (Vec<DnsRecord>, CheckStats) {
        let started = std::time::Instant::now();
        match self.checker() {
            Ok(checker) => checker.check_measured(domain, records).await,
            Err(error) => {
                tracing::error!(%error, "no DNS resolver");
                let unchanged = unchanged(records, |record| not_completed(&record.fqdn, &error));
                let stats = CheckStats {
                    elapsed: started.elapsed(),
                    incomplete: records.len(),
                    questions: 0,
                };
                (unchanged, stats)
            }
        }
    }

    /// `DnsChecker::claim_proof`; if the resolver cannot be set up, a failed lookup.
    pub async fn claim_proof(
        &self,
        domain: &DomainName,
        fqdn: &str,
    ) -> (Answer<String>, Vec<String>) {
        match self.checker() {
            Ok(checker) => checker.claim_proof(domain, fqdn).await,
            Err(error) => (Answer::Failed(error.to_string()), Vec::new()),
        }
    }

    /// The checker, built now if it has not been yet (and kept once built).
    fn checker(&self) -> Result<&DnsChecker, ResolverSetupError> {
        match self.checker.get() {
            Some(checker) => Ok(checker),
            None => {
                let built = Self::build(&self.settings)?;
                Ok(self.checker.get_or_init(|| built))
            }
        }
    }
}

impl From<DnsChecker> for LazyDnsChecker {
    fn from(checker: DnsChecker) -> Self {
        Self {
            settings: DnsSettings {
                nameservers: None,
                allowed_networks: checker.allowed_networks.clone(),
            },
            checker: OnceLock::from(checker),
        }
    }
}

impl DnsChecker {
    /// Asks the system's resolvers (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, ResolverSetupError> {
        let builder = Resolver::builder_tokio().map_err(|e| ResolverSetupError(e.to_string()))?;
        Ok(Self::new(build_resolver(builder, true)?))
    }

    /// Asks only these servers (UDP and TCP) as the resolver.
    pub fn with_nameservers(servers: &[SocketAddr]) -> Result<Self, ResolverSetupError> {
        let builder =
            Resolver::builder_with_config(servers_config(servers), TokioRuntimeProvider::default());
        Ok(Self::new(build_resolver(builder, true)?))
    }

    fn new(resolver: TokioResolver) -> Self {
        Self {
            resolver,
            authoritative_port: 53,
            allowed_networks: AllowedNetworks::none(),
            zones: Mutex::new(ZoneCache::default()),
        }
    }

    /// Lets the checker ask name servers inside these non-public networks
    /// (`DNS_ALLOWED_PRIVATE_NETWORKS`); by default it asks only public addresses.
    pub fn allowing(mut self, networks: AllowedNetworks) -> Self {
        self.allowed_networks = networks;
        self
    }

    /// Authoritative servers listen on this port (tests run them on a free one).
    pub fn with_authoritative_port(mut self, port: u16) -> Self {
        self.authoritative_port = port;
        self
    }

    /// Checks every record concurrently and returns them with status, reason,
    /// observed values and any suggested value updated. A lookup that could not be
    /// completed leaves the record's previous status and says so.
    pub async fn check(&self, domain: &DomainName, records: &[DnsRecord]) -> Vec<DnsRecord> {
        self.check_measured(domain, records).await.0
    }

    /// `check`, and what it cost.
    pub async fn check_measured(
        &self,
        domain: &DomainName,
        records: &[DnsRecord],
    ) -> (Vec<DnsRecord>, CheckStats) {
        let started = std::time::Instant::now();
        let budget = Budget::per_check();
        let (mut checked, incomplete) = match tokio::time::timeout(
            CHECK_BUDGET,
            self.check_all(domain, records, &budget),
        )
        .await
        {
            Ok(checked) => checked,
            Err(_) => {
                let why = format!(
                    "The DNS lookups for {domain} took longer than {} seconds; the status is unchanged, try again later.",
                    CHECK_BUDGET.as_secs()
                );
                (unchanged(records, |_| why.clone()), records.len())
            }
        };
        // Whatever DNS answered, what is kept stays within the contract's bounds.
        checked.iter_mut().for_each(DnsRecord::bound);
        let stats = CheckStats {
            elapsed: started.elapsed(),
            incomplete,
            questions: budget.asked(),
        };
        (checked, stats)
    }

    /// The proof of a claim of `domain`: the TXT values at exactly `fqdn` (a name
    /// in `domain`'s zone), as `domain`'s own zone answers them: asked of its
    /// authoritative servers, found by following referrals from its registrable
    /// domain (the configured resolver stands in only where none can be found,
    /// never for servers that do not answer or that this service does not reach),
    /// within `CHECK_BUDGET` and `MAX_QUESTIONS`; with every alias met on the way
    /// (any alias means no proof).
    pub async fn claim_proof(
        &self,
        domain: &DomainName,
        fqdn: &str,
    ) -> (Answer<String>, Vec<String>) {
        let budget = Budget::per_check();
        let lookup = async {
            let lookups = Lookups::for_domain(self, domain, &budget).await;
            lookups.proof(fqdn).await
        };
        tokio::time::timeout(CHECK_BUDGET, lookup)
            .await
            .unwrap_or_else(|_| {
                let why = format!("no answer within {} seconds", CHECK_BUDGET.as_secs());
                (Answer::Failed(why), Vec::new())
            })
    }

    /// The records judged, and how many lookups could not be completed.
    async fn check_all(
        &self,
        domain: &DomainName,
        records: &[DnsRecord],
        budget: &Budget,
    ) -> (Vec<DnsRecord>, usize) {
        let lookups = Lookups::for_domain(self, domain, budget).await;
        let lookups = &lookups;
        let judged = join_all(records.iter().map(|record| async move {
            let mut updated = record.clone();
            match lookups.judge(domain, record).await {
                Ok(judgement) => {
                    updated.status = judgement.status;
                    updated.reason = judgement.reason;
                    updated.observed = judgement.observed;
                    updated.suggested_value = judgement.suggested_value;
                    (updated, false)
                }
                Err(lookup_error) => {
                    updated.reason = Some(not_completed(&record.fqdn, &lookup_error));
                    (updated, true)
                }
            }
        }))
        .await;
        let incomplete = judged.iter().filter(|(_, failed)| *failed).count();
        (
            judged.into_iter().map(|(record, _)| record).collect(),
            incomplete,
        )
    }
}

/// The records as they were (status kept), each with `why` as its reason.
fn unchanged(records: &[DnsRecord], why: impl Fn(&DnsRecord) -> String) -> Vec<DnsRecord> {
    records
        .iter()
        .map(|record| DnsRecord {
            reason: Some(why(record)),
            ..record.clone()
        })
        .collect()
}

/// The reason of a record whose lookup could not be completed.
fn not_completed(fqdn: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "The DNS lookup for {fqdn} could not be completed ({error}); the status is unchanged, try again later."
    )
}
