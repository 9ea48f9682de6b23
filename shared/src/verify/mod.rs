//! DNS verification: real lookups, all concurrent, with no answer cache, asked of the
//! zone's authoritative name servers where they can be found (else the configured
//! resolver), and judged by the contract's rules with a diagnosis of what is wrong.

mod judge;
pub mod spf;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, join_all};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{Resolver, ResolverBuilder, TokioResolver};

pub use judge::{Judgement, judge_dkim_target, judge_dmarc, judge_mx, judge_spf};

use crate::domain_name::DomainName;
use crate::model::{DnsRecord, RecordPurpose};
use crate::records::SPF_INCLUDE;

/// One query's time on the wire (UDP, then TCP on truncation).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// A lookup's whole budget, whatever the resolver's retries: bounds a verify when
/// DNS is down.
const LOOKUP_DEADLINE: Duration = Duration::from_millis(2500);
/// One whole check of a domain (name-server discovery, CNAME chains, SPF
/// includes, all of it): well inside the 15 s function timeout, so a hostile or
/// broken zone gets an answer, never a timed-out invocation.
pub const CHECK_BUDGET: Duration = Duration::from_secs(8);
/// How long a zone's authoritative servers (never answers) are remembered.
const ZONE_SERVERS_TTL: Duration = Duration::from_secs(300);
const MAX_ZONE_CACHE_ENTRIES: usize = 50_000;
/// Name servers of a zone asked at most.
const MAX_AUTHORITATIVE_SERVERS: usize = 4;
/// CNAME hops followed.
const MAX_CNAME_HOPS: usize = 8;
/// TXT lookups spent counting an SPF record's DNS-lookup terms.
const MAX_SPF_QUERIES: usize = 20;

/// What one lookup gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Found(Vec<T>),
    /// NXDOMAIN or no records of the type.
    Empty,
    /// Timeout, SERVFAIL, refused, network error: nothing can be concluded.
    Failed(String),
}

impl<T> Answer<T> {
    fn map<U>(self, f: impl FnMut(T) -> Option<U>) -> Answer<U> {
        match self {
            Answer::Found(items) => {
                let items: Vec<U> = items.into_iter().filter_map(f).collect();
                if items.is_empty() {
                    Answer::Empty
                } else {
                    Answer::Found(items)
                }
            }
            Answer::Empty => Answer::Empty,
            Answer::Failed(e) => Answer::Failed(e),
        }
    }

    fn found(&self) -> &[T] {
        match self {
            Answer::Found(items) => items,
            _ => &[],
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverSetupError(String);

struct ZoneEntry {
    until: Instant,
    /// The authoritative servers if this name is a zone cut, `None` if it is not.
    servers: Option<Arc<TokioResolver>>,
}

pub struct DnsChecker {
    resolver: TokioResolver,
    /// Port of authoritative servers: 53, except in tests.
    authoritative_port: u16,
    zones: Mutex<HashMap<String, ZoneEntry>>,
}

fn finish(
    mut builder: ResolverBuilder<TokioRuntimeProvider>,
    recursion: bool,
) -> Result<TokioResolver, ResolverSetupError> {
    let options = builder.options_mut();
    options.timeout = QUERY_TIMEOUT;
    options.attempts = 1;
    options.recursion_desired = recursion;
    // No answer cache: a record published after a negative answer must be seen on
    // the next check, not after the negative TTL.
    options.cache_size = 0;
    builder
        .build()
        .map_err(|e| ResolverSetupError(e.to_string()))
}

fn servers_config(servers: &[SocketAddr]) -> ResolverConfig {
    ResolverConfig::from_name_servers(
        servers
            .iter()
            .map(|server| {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut connection| {
                        connection.port = server.port();
                        connection
                    })
                    .collect();
                NameServerConfig::new(server.ip(), true, connections)
            })
            .collect(),
    )
}

/// The record checker of an `App`: built at start-up by the functions that check
/// DNS, so a resolver that cannot be set up stops start-up; built on first use by
/// the rest, which never check DNS and should not pay for a resolver at cold start.
pub struct Dns {
    checker: OnceLock<DnsChecker>,
    /// `None`: the system's resolvers; else only these (`DNS_NAMESERVERS`).
    nameservers: Option<Vec<SocketAddr>>,
}

impl Dns {
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
        let checker = match self.checker.get() {
            Some(checker) => checker,
            None => match Self::build(self.nameservers.as_deref()) {
                Ok(built) => self.checker.get_or_init(|| built),
                Err(error) => {
                    tracing::error!(%error, "no DNS resolver");
                    return records
                        .iter()
                        .map(|record| DnsRecord {
                            reason: Some(format!(
                                "The DNS lookup for {} could not be completed ({error}); the status is unchanged, try again later.",
                                record.fqdn
                            )),
                            ..record.clone()
                        })
                        .collect();
                }
            },
        };
        checker.check(domain, records).await
    }
}

impl From<DnsChecker> for Dns {
    fn from(checker: DnsChecker) -> Self {
        Self {
            checker: OnceLock::from(checker),
            nameservers: None,
        }
    }
}

/// Lowercase, no trailing dot: how hosts are compared.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn describe(data: &RData) -> Option<String> {
    match data {
        RData::MX(mx) => Some(format!(
            "{} {}",
            mx.preference,
            normalize_host(&mx.exchange.to_ascii())
        )),
        // A TXT record may be split into several strings; they form one value.
        RData::TXT(txt) => Some(
            txt.txt_data
                .iter()
                .map(|part| String::from_utf8_lossy(part))
                .collect(),
        ),
        RData::CNAME(cname) => Some(normalize_host(&cname.0.to_ascii())),
        RData::A(a) => Some(a.0.to_string()),
        RData::AAAA(aaaa) => Some(aaaa.0.to_string()),
        _ => None,
    }
}

impl DnsChecker {
    /// Asks the system's resolvers (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, ResolverSetupError> {
        let builder = Resolver::builder_tokio().map_err(|e| ResolverSetupError(e.to_string()))?;
        Ok(Self::new(finish(builder, true)?))
    }

    /// Asks only these servers (UDP and TCP) as the resolver.
    pub fn with_nameservers(servers: &[SocketAddr]) -> Result<Self, ResolverSetupError> {
        let builder =
            Resolver::builder_with_config(servers_config(servers), TokioRuntimeProvider::default());
        Ok(Self::new(finish(builder, true)?))
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
        let mut checked = match tokio::time::timeout(CHECK_BUDGET, self.check_all(domain, records)).await {
            Ok(checked) => checked,
            Err(_) => records
                .iter()
                .map(|record| DnsRecord {
                    reason: Some(format!(
                        "The DNS lookups for {domain} took longer than {} seconds; the status is unchanged, try again later.",
                        CHECK_BUDGET.as_secs()
                    )),
                    ..record.clone()
                })
                .collect(),
        };
        // Whatever DNS answered, what is kept stays within the contract's bounds.
        checked.iter_mut().for_each(DnsRecord::bound);
        checked
    }

    async fn check_all(&self, domain: &DomainName, records: &[DnsRecord]) -> Vec<DnsRecord> {
        let authoritative = self.authoritative(domain).await;
        let lookups = Lookups {
            checker: self,
            authoritative: authoritative.as_deref(),
        };
        let lookups = &lookups;
        join_all(records.iter().map(|record| async move {
            let mut updated = record.clone();
            match lookups.judge(domain, record).await {
                Ok(judgement) => {
                    updated.status = judgement.status;
                    updated.reason = judgement.reason;
                    updated.observed = judgement.observed;
                    updated.suggested_value = judgement.suggested_value;
                }
                Err(lookup_error) => {
                    updated.reason = Some(format!(
                        "The DNS lookup for {} could not be completed ({lookup_error}); the status is unchanged, try again later.",
                        record.fqdn
                    ));
                }
            }
            updated
        }))
        .await
    }

    /// The deepest zone cut between `domain` and its registrable domain whose name
    /// servers can be found and reached, as a non-recursive resolver.
    async fn authoritative(&self, domain: &DomainName) -> Option<Arc<TokioResolver>> {
        let apex = domain.registrable_domain();
        let mut candidates = Vec::new();
        let mut name = domain.as_str();
        loop {
            candidates.push(name.to_string());
            if name == apex {
                break;
            }
            match name.split_once('.') {
                Some((_, parent)) => name = parent,
                None => break,
            }
        }
        let now = Instant::now();
        let known: Vec<Option<Option<Arc<TokioResolver>>>> = {
            let zones = self.zones.lock().ok();
            candidates
                .iter()
                .map(|c| {
                    zones
                        .as_ref()
                        .and_then(|z| z.get(c))
                        .filter(|entry| entry.until > now)
                        .map(|entry| entry.servers.clone())
                })
                .collect()
        };
        let resolved = join_all(candidates.iter().zip(known).map(
            |(candidate, known)| async move {
                match known {
                    Some(servers) => servers,
                    None => {
                        let servers = self.discover(candidate).await;
                        self.remember(candidate, servers.clone());
                        servers
                    }
                }
            },
        ))
        .await;
        resolved.into_iter().flatten().next()
    }

    fn remember(&self, zone: &str, servers: Option<Arc<TokioResolver>>) {
        if let Ok(mut zones) = self.zones.lock() {
            if zones.len() >= MAX_ZONE_CACHE_ENTRIES {
                let now = Instant::now();
                zones.retain(|_, entry| entry.until > now);
                if zones.len() >= MAX_ZONE_CACHE_ENTRIES {
                    zones.clear();
                }
            }
            zones.insert(
                zone.to_string(),
                ZoneEntry {
                    until: Instant::now() + ZONE_SERVERS_TTL,
                    servers,
                },
            );
        }
    }

    /// NS records of `zone` and their addresses, through the configured resolver.
    async fn discover(&self, zone: &str) -> Option<Arc<TokioResolver>> {
        let hosts = query(&self.resolver, zone, RecordType::NS)
            .await
            .map(|data| match data {
                RData::NS(ns) => Some(ns.0.to_ascii()),
                _ => None,
            });
        let hosts: Vec<String> = hosts
            .found()
            .iter()
            .take(MAX_AUTHORITATIVE_SERVERS)
            .cloned()
            .collect();
        if hosts.is_empty() {
            return None;
        }
        let addresses = join_all(hosts.iter().map(|host| async move {
            tokio::time::timeout(LOOKUP_DEADLINE, self.resolver.lookup_ip(host.as_str()))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|ips| ips.iter().collect::<Vec<IpAddr>>())
                .unwrap_or_default()
        }))
        .await;
        let servers: Vec<SocketAddr> = addresses
            .into_iter()
            .flatten()
            .take(MAX_AUTHORITATIVE_SERVERS)
            .map(|ip| SocketAddr::new(ip, self.authoritative_port))
            .collect();
        if servers.is_empty() {
            return None;
        }
        let builder = Resolver::builder_with_config(
            servers_config(&servers),
            TokioRuntimeProvider::default(),
        );
        finish(builder, false).ok().map(Arc::new)
    }
}

/// Raw records of one lookup, bounded by `LOOKUP_DEADLINE`.
async fn query(resolver: &TokioResolver, fqdn: &str, record_type: RecordType) -> Answer<RData> {
    let name = match Name::from_ascii(format!("{}.", fqdn.trim_end_matches('.'))) {
        Ok(name) => name,
        Err(e) => return Answer::Failed(format!("invalid name: {e}")),
    };
    match tokio::time::timeout(LOOKUP_DEADLINE, resolver.lookup(name, record_type)).await {
        Err(_) => Answer::Failed("timed out".into()),
        Ok(Ok(lookup)) => {
            let records: Vec<RData> = lookup
                .answers()
                .iter()
                .map(|r: &Record| r.data.clone())
                .collect();
            if records.is_empty() {
                Answer::Empty
            } else {
                Answer::Found(records)
            }
        }
        Ok(Err(e)) if e.is_no_records_found() => Answer::Empty,
        Ok(Err(e)) => Answer::Failed(e.to_string()),
    }
}

/// The lookups of one check: authoritative servers first, where known.
struct Lookups<'a> {
    checker: &'a DnsChecker,
    authoritative: Option<&'a TokioResolver>,
}

impl Lookups<'_> {
    /// Asks the authoritative servers, then (if they cannot answer, e.g. for a name
    /// outside their zone) the configured resolver.
    async fn ask(&self, fqdn: &str, record_type: RecordType) -> Answer<RData> {
        if let Some(authoritative) = self.authoritative {
            match query(authoritative, fqdn, record_type).await {
                Answer::Failed(_) => {}
                answer => return answer,
            }
        }
        query(&self.checker.resolver, fqdn, record_type).await
    }

    /// Values of `record_type` at `fqdn`. A CNAME at the name is followed (also when
    /// an authoritative server only returns the alias); the chain comes back too.
    async fn values(&self, fqdn: &str, record_type: RecordType) -> (Answer<String>, Vec<String>) {
        let mut chain = Vec::new();
        let mut name = fqdn.to_string();
        for _ in 0..MAX_CNAME_HOPS {
            let answer = if name == fqdn {
                self.ask(&name, record_type).await
            } else {
                query(&self.checker.resolver, &name, record_type).await
            };
            let data = match answer {
                Answer::Found(data) => data,
                other => return (other.map(|d| describe(&d)), chain),
            };
            // A server may answer with the whole chain (aliases in its zone).
            chain.extend(data.iter().filter_map(|d| match d {
                RData::CNAME(cname) => Some(normalize_host(&cname.0.to_ascii())),
                _ => None,
            }));
            let wanted: Vec<String> = data
                .iter()
                .filter(|d| d.record_type() == record_type)
                .filter_map(describe)
                .collect();
            if !wanted.is_empty() {
                return (Answer::Found(wanted), chain);
            }
            match chain.last() {
                Some(target) if *target != name => name = target.clone(),
                _ => return (Answer::Empty, chain),
            }
        }
        (Answer::Failed("CNAME chain too long".into()), chain)
    }

    /// The CNAME targets from `start`, following the chain (start included).
    async fn cname_chain(&self, start: &str) -> Vec<String> {
        let mut chain = vec![start.to_string()];
        while chain.len() < MAX_CNAME_HOPS {
            let Some(last) = chain.last() else { break };
            match query(&self.checker.resolver, last, RecordType::CNAME).await {
                Answer::Found(data) => match data.iter().find_map(|d| match d {
                    RData::CNAME(c) => Some(normalize_host(&c.0.to_ascii())),
                    _ => None,
                }) {
                    Some(next) if !chain.contains(&next) => chain.push(next),
                    _ => break,
                },
                _ => break,
            }
        }
        chain
    }

    /// What is published at `<fqdn>.<registrable domain>`: the mark of a DNS
    /// provider that appended the zone to a host entered fully qualified.
    async fn appended(
        &self,
        domain: &DomainName,
        fqdn: &str,
        record_type: RecordType,
    ) -> Option<(String, Vec<String>)> {
        let name = format!("{fqdn}.{}", domain.registrable_domain());
        let (answer, _) = self.values(&name, record_type).await;
        match answer {
            Answer::Found(values) => Some((name, values)),
            _ => None,
        }
    }

    /// DNS lookups an SPF record costs (RFC 7208 4.6.4), following includes and
    /// redirects within a query budget.
    fn spf_lookups<'b>(
        &'b self,
        record: String,
        budget: &'b AtomicUsize,
        depth: usize,
    ) -> BoxFuture<'b, usize> {
        Box::pin(async move {
            let mut total = 0;
            let mut nested = Vec::new();
            for term in spf::lookup_terms(&record) {
                total += 1;
                if let spf::LookupTerm::Nested(target) = term {
                    // SES's own record has no lookup terms: no need to fetch it.
                    if format!("include:{target}") != SPF_INCLUDE {
                        nested.push(target);
                    }
                }
            }
            if depth >= 10 {
                return total;
            }
            let counts = join_all(nested.into_iter().map(|target| async move {
                let spent = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                });
                if spent.is_err() {
                    return 0;
                }
                let (answer, _) = self.values(&target, RecordType::TXT).await;
                match answer.found().iter().find(|t| spf::is_spf(t)) {
                    Some(record) => self.spf_lookups(record.clone(), budget, depth + 1).await,
                    None => 0,
                }
            }))
            .await;
            total + counts.into_iter().sum::<usize>()
        })
    }

    async fn judge(&self, domain: &DomainName, record: &DnsRecord) -> Result<Judgement, String> {
        match record.record {
            RecordPurpose::Mx => {
                let (answer, _) = self.values(&record.fqdn, RecordType::MX).await;
                let appended = match answer {
                    Answer::Empty => self.appended(domain, &record.fqdn, RecordType::MX).await,
                    _ => None,
                };
                judge_mx(&record.value, answer, appended)
            }
            RecordPurpose::Spf => {
                let (answer, _) = self.values(&record.fqdn, RecordType::TXT).await;
                let appended = match &answer {
                    Answer::Empty => self.appended(domain, &record.fqdn, RecordType::TXT).await,
                    Answer::Found(texts) if !texts.iter().any(|t| spf::is_spf(t)) => {
                        self.appended(domain, &record.fqdn, RecordType::TXT).await
                    }
                    _ => None,
                };
                let single_with_ses = match &answer {
                    Answer::Found(texts) => {
                        let spf: Vec<&String> = texts.iter().filter(|t| spf::is_spf(t)).collect();
                        (spf.len() == 1 && spf::includes_ses(spf[0])).then(|| spf[0].clone())
                    }
                    _ => None,
                };
                let lookups = match single_with_ses {
                    Some(spf) => Some(
                        self.spf_lookups(spf, &AtomicUsize::new(MAX_SPF_QUERIES), 0)
                            .await,
                    ),
                    None => None,
                };
                judge_spf(answer, appended, lookups)
            }
            RecordPurpose::Dmarc => {
                let organizational = (!domain.is_registrable_domain())
                    .then(|| format!("_dmarc.{}", domain.registrable_domain()));
                let ((own, chain), inherited) =
                    futures::join!(self.values(&record.fqdn, RecordType::TXT), async {
                        match &organizational {
                            Some(name) => Some(self.values(name, RecordType::TXT).await.0),
                            None => None,
                        }
                    });
                let appended = match &own {
                    Answer::Empty => self.appended(domain, &record.fqdn, RecordType::TXT).await,
                    _ => None,
                };
                judge_dmarc(own, &chain, inherited, appended)
            }
            RecordPurpose::Dkim => {
                let answer = self
                    .ask(&record.fqdn, RecordType::CNAME)
                    .await
                    .map(|d| match d {
                        RData::CNAME(c) => Some(normalize_host(&c.0.to_ascii())),
                        _ => None,
                    });
                match answer {
                    Answer::Failed(e) => Err(e),
                    Answer::Found(targets) => {
                        let expected = normalize_host(&record.value);
                        let chain = if targets.contains(&expected) {
                            targets
                        } else {
                            self.cname_chain(&targets[0]).await
                        };
                        Ok(judge_dkim_target(&expected, &chain))
                    }
                    Answer::Empty => {
                        let (v4, v6, appended) = futures::join!(
                            self.ask(&record.fqdn, RecordType::A),
                            self.ask(&record.fqdn, RecordType::AAAA),
                            self.appended(domain, &record.fqdn, RecordType::CNAME),
                        );
                        let addresses: Vec<String> = v4
                            .found()
                            .iter()
                            .chain(v6.found())
                            .filter_map(describe)
                            .collect();
                        Ok(judge::judge_missing_dkim(
                            &record.value,
                            addresses,
                            appended,
                        ))
                    }
                }
            }
        }
    }
}
