//! The configured resolver and single lookups: how a resolver is built (no answer
//! cache, one attempt per query, a deadline per lookup), what one lookup answered,
//! and how record data is written down.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{ResolverBuilder, TokioResolver};

use super::budget::Budget;

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
    ResolverConfig::from_name_servers(servers.iter().copied().map(name_server).collect())
}

/// One name server, asked over UDP and over TCP, both at its address's port.
pub(super) fn name_server(address: SocketAddr) -> NameServerConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut connection| {
            connection.port = address.port();
            connection
        })
        .collect();
    NameServerConfig::new(address.ip(), true, connections)
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

/// A record as a lookup returned it: whose it is (its owner name, lowercase, no
/// trailing dot) and what it holds. The owner tells a record at the name asked
/// from one reached through a CNAME.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rr {
    pub(super) owner: String,
    pub(super) data: RData,
}

impl Rr {
    pub(super) fn of(owner: &Name, data: &RData) -> Self {
        Self {
            owner: normalize_host(&owner.to_ascii()),
            data: data.clone(),
        }
    }

    /// Its data written down (`describe`).
    pub(super) fn describe(&self) -> Option<String> {
        describe(&self.data)
    }

    /// The CNAME target, if this is a CNAME.
    pub(super) fn cname_target(&self) -> Option<String> {
        match &self.data {
            RData::CNAME(cname) => Some(normalize_host(&cname.0.to_ascii())),
            _ => None,
        }
    }
}

fn answer_of(result: Result<Result<Lookup, NetError>, String>) -> Answer<Rr> {
    match result {
        Err(e) => Answer::Failed(e),
        Ok(Ok(lookup)) => {
            let records: Vec<Rr> = lookup
                .answers()
                .iter()
                .map(|r| Rr::of(&r.name, &r.data))
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

/// The records of one lookup through the configured resolver (CNAME chains as
/// it followed them), bounded by `LOOKUP_DEADLINE`; one question of `budget`.
pub(super) async fn query(
    resolver: &TokioResolver,
    fqdn: &str,
    record_type: RecordType,
    budget: &Budget,
) -> Answer<Rr> {
    if let Err(spent) = budget.take() {
        return Answer::Failed(spent);
    }
    answer_of(lookup(resolver, fqdn, record_type).await)
}
