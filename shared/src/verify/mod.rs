//! DNS verification: real lookups, all concurrent, with no answer cache, asked of the
//! zone's authoritative name servers where they can be found (else the configured
//! resolver), and judged by the contract's rules with a diagnosis of what is wrong.

mod dmarc;
mod judge;
mod lookups;
mod resolver;
pub mod spf;
mod zones;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

pub use judge::{Judgement, judge_dkim_target, judge_mx};
pub use resolver::{Answer, ResolverSetupError, normalize_host};

use crate::domain_name::DomainName;
use crate::model::DnsRecord;
use lookups::Lookups;
use resolver::{build_resolver, servers_config};
use zones::ZoneEntry;

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
}

/// Checks a domain's records against DNS, as receivers and SES would judge them.
pub struct DnsChecker {
    resolver: TokioResolver,
    /// Port of authoritative servers: 53, except in tests.
    authoritative_port: u16,
    zones: Mutex<HashMap<String, ZoneEntry>>,
}

/// The record checker of an `App`: built at start-up by the functions that check
/// DNS, so a resolver that cannot be set up stops start-up; built on first use by
/// the rest, which never check DNS and should not pay for a resolver at cold start.
pub struct LazyDnsChecker {
    checker: OnceLock<DnsChecker>,
    /// `None`: the system's resolvers; else only these (`DNS_NAMESERVERS`).
    nameservers: Option<Vec<SocketAddr>>,
}

impl LazyDnsChecker {
    /// A checker built now from the system's resolvers or the given ones.
    pub fn prepared(nameservers: Option<Vec<SocketAddr>>) -> Result<Self, ResolverSetupError> {
        let checker = Self::build(nameservers.as_deref())?;
        Ok(Self {
            checker: OnceLock::from(checker),
            nameservers,
        })
    }

    /// A checker built when first asked to check.
    pub fn on_first_use(nameservers: Option<Vec<SocketAddr>>) -> Self {
        Self {
            checker: OnceLock::new(),
            nameservers,
        }
    }

    fn build(nameservers: Option<&[SocketAddr]>) -> Result<DnsChecker, ResolverSetupError> {
        match nameservers {
            Some(servers) => DnsChecker::with_nameservers(servers),
            None => DnsChecker::system(),
        }
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
        let checker = match self.checker.get() {
            Some(checker) => checker,
            None => match Self::build(self.nameservers.as_deref()) {
                Ok(built) => self.checker.get_or_init(|| built),
                Err(error) => {
                    tracing::error!(%error, "no DNS resolver");
                    let unchanged = records
                        .iter()
                        .map(|record| DnsRecord {
                            reason: Some(format!(
                                "The DNS lookup for {} could not be completed ({error}); the status is unchanged, try again later.",
                                record.fqdn
                            )),
                            ..record.clone()
                        })
                        .collect();
                    let stats = CheckStats {
                        elapsed: started.elapsed(),
                        incomplete: records.len(),
                    };
                    return (unchanged, stats);
                }
            },
        };
        checker.check_measured(domain, records).await
    }
}

impl LazyDnsChecker {
    /// `DnsChecker::txt_values`; if the resolver cannot be set up, a failed lookup.
    pub async fn txt_values(
        &self,
        domain: &DomainName,
        fqdn: &str,
    ) -> (Answer<String>, Vec<String>) {
        match self.checker.get() {
            Some(checker) => checker.txt_values(domain, fqdn).await,
            None => match Self::build(self.nameservers.as_deref()) {
                Ok(built) => {
                    self.checker
                        .get_or_init(|| built)
                        .txt_values(domain, fqdn)
                        .await
                }
                Err(error) => (Answer::Failed(error.to_string()), Vec::new()),
            },
        }
    }
}

impl From<DnsChecker> for LazyDnsChecker {
    fn from(checker: DnsChecker) -> Self {
        Self {
            checker: OnceLock::from(checker),
            nameservers: None,
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
            zones: Mutex::new(HashMap::new()),
        }
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
        let (mut checked, incomplete) = match tokio::time::timeout(CHECK_BUDGET, self.check_all(domain, records)).await {
            Ok(checked) => checked,
            Err(_) => (
                records
                    .iter()
                    .map(|record| DnsRecord {
                        reason: Some(format!(
                            "The DNS lookups for {domain} took longer than {} seconds; the status is unchanged, try again later.",
                            CHECK_BUDGET.as_secs()
                        )),
                        ..record.clone()
                    })
                    .collect(),
                records.len(),
            ),
        };
        // Whatever DNS answered, what is kept stays within the contract's bounds.
        checked.iter_mut().for_each(DnsRecord::bound);
        let stats = CheckStats {
            elapsed: started.elapsed(),
            incomplete,
        };
        (checked, stats)
    }

    /// The TXT values at `fqdn`, a name in `domain`'s zone, asked as a record
    /// check asks (the zone's authoritative servers, no cache, within
    /// `CHECK_BUDGET`): what a claim's proof is looked up with. With them, the
    /// CNAME chain followed from `fqdn` (empty when the TXT records are at the
    /// name itself).
    pub async fn txt_values(
        &self,
        domain: &DomainName,
        fqdn: &str,
    ) -> (Answer<String>, Vec<String>) {
        let lookup = async {
            let lookups = Lookups {
                checker: self,
                authoritative: self.authoritative(domain).await,
            };
            lookups
                .values(fqdn, hickory_resolver::proto::rr::RecordType::TXT)
                .await
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
    ) -> (Vec<DnsRecord>, usize) {
        let authoritative = self.authoritative(domain).await;
        let lookups = Lookups {
            checker: self,
            authoritative,
        };
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
                    updated.reason = Some(format!(
                        "The DNS lookup for {} could not be completed ({lookup_error}); the status is unchanged, try again later.",
                        record.fqdn
                    ));
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
