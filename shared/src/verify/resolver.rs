//! Resolvers and single lookups: how a resolver is built (no answer cache, one
//! attempt per query, a deadline per lookup), what one lookup answered, and how
//! record data is written down.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{ResolverBuilder, TokioResolver};

/// One query's time on the wire (UDP, then TCP on truncation).
pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// A lookup's whole budget, whatever the resolver's retries: bounds a verify when
/// DNS is down.
pub(super) const LOOKUP_DEADLINE: Duration = Duration::from_millis(2500);

/// What one lookup gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    /// Records of the asked type were there.
    Found(Vec<T>),
    /// NXDOMAIN or no records of the type.
    Empty,
    /// Timeout, SERVFAIL, refused, network error: nothing can be concluded.
    Failed(String),
}

impl<T> Answer<T> {
    pub(super) fn map<U>(self, f: impl FnMut(T) -> Option<U>) -> Answer<U> {
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

    pub(super) fn found(&self) -> &[T] {
        match self {
            Answer::Found(items) => items,
            _ => &[],
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
/// The resolver could not be set up.
pub struct ResolverSetupError(pub(super) String);

pub(super) fn build_resolver(
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

pub(super) fn servers_config(servers: &[SocketAddr]) -> ResolverConfig {
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

/// Lowercase, no trailing dot: how hosts are compared.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn describe(data: &RData) -> Option<String> {
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

/// A zone cut below the asked server's zone: the child zone's name servers, with
/// the addresses the referral carried (glue), if any.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Referral {
    /// The child zone.
    pub(super) zone: String,
    /// Its name servers and their glue addresses.
    pub(super) servers: Vec<(String, Vec<IpAddr>)>,
}

/// A zone's authoritative servers, each as a non-recursive resolver of its own.
pub(super) struct ZoneServers {
    each: Vec<TokioResolver>,
    /// Where the next lookup starts, so no one server (a lame one first in the NS
    /// set, say) is always asked first.
    next: AtomicUsize,
}

impl ZoneServers {
    pub(super) fn new(each: Vec<TokioResolver>) -> Self {
        Self {
            each,
            next: AtomicUsize::new(0),
        }
    }

    /// Asks one server; if it cannot answer (refused, failed, timed out), the
    /// others at once, the first to answer or refer winning. Only when none can
    /// answer is the lookup failed.
    pub(super) async fn ask(&self, fqdn: &str, record_type: RecordType) -> Reply {
        let count = self.each.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count.max(1);
        let mut order = (0..count).map(|i| &self.each[(start + i) % count]);
        let Some(first) = order.next() else {
            return Reply::Answer(Answer::Failed("no name servers".into()));
        };
        let mut failure = match query_authoritative(first, fqdn, record_type).await {
            Reply::Answer(Answer::Failed(error)) => error,
            reply => return reply,
        };
        let mut others: FuturesUnordered<_> = order
            .map(|server| query_authoritative(server, fqdn, record_type))
            .collect();
        while let Some(reply) = others.next().await {
            match reply {
                Reply::Answer(Answer::Failed(error)) => failure = error,
                reply => return reply,
            }
        }
        Reply::Answer(Answer::Failed(failure))
    }
}

/// What an authoritative server said: an answer, or "ask these servers".
pub(super) enum Reply {
    Answer(Answer<RData>),
    Referral(Referral),
}

async fn lookup(
    resolver: &TokioResolver,
    fqdn: &str,
    record_type: RecordType,
) -> Result<Result<Lookup, NetError>, String> {
    let name = Name::from_ascii(format!("{}.", fqdn.trim_end_matches('.')))
        .map_err(|e| format!("invalid name: {e}"))?;
    tokio::time::timeout(LOOKUP_DEADLINE, resolver.lookup(name, record_type))
        .await
        .map_err(|_| "timed out".to_string())
}

fn answer_of(result: Result<Result<Lookup, NetError>, String>) -> Answer<RData> {
    match result {
        Err(e) => Answer::Failed(e),
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

/// Raw records of one lookup, bounded by `LOOKUP_DEADLINE`.
pub(super) async fn query(
    resolver: &TokioResolver,
    fqdn: &str,
    record_type: RecordType,
) -> Answer<RData> {
    answer_of(lookup(resolver, fqdn, record_type).await)
}

/// As `query`, of a non-recursive resolver for a zone's servers: a referral (no
/// answer, no SOA, NS records in the authority section) comes back as such,
/// never as "nothing there".
pub(super) async fn query_authoritative(
    resolver: &TokioResolver,
    fqdn: &str,
    record_type: RecordType,
) -> Reply {
    let result = lookup(resolver, fqdn, record_type).await;
    if let Ok(Err(NetError::Dns(DnsError::NoRecordsFound(no_records)))) = &result
        && let Some(referral) = referral_of(no_records)
    {
        return Reply::Referral(referral);
    }
    Reply::Answer(answer_of(result))
}

fn referral_of(no_records: &NoRecords) -> Option<Referral> {
    if no_records.soa.is_some() {
        return None;
    }
    let ns = no_records.ns.as_ref()?;
    let zone = ns
        .first()
        .map(|data| normalize_host(&data.ns.name.to_ascii()))?;
    let servers = ns
        .iter()
        .filter_map(|data| match &data.ns.data {
            RData::NS(host) => Some((
                normalize_host(&host.0.to_ascii()),
                data.glue
                    .iter()
                    .filter_map(|glue| match &glue.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        _ => None,
                    })
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    Some(Referral { zone, servers })
}
