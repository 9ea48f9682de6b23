//! A zone's authoritative name servers, asked one question at a time without
//! recursion, and what each reply means: an answer (owners kept, CNAMEs not
//! chased), "nothing there" (with the zone that said so), or a referral to a zone
//! cut below. hickory's resolver would chase a CNAME itself and lose who owned
//! what; its name-server pool sends exactly the one question.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hickory_resolver::config::ResolverOpts;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::{DnsRequestOptions, Query};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use super::budget::Budget;
use super::resolver::{LOOKUP_DEADLINE, QUERY_TIMEOUT, Rr, name_server, normalize_host};

/// What one authoritative server said.
pub(super) enum Reply {
    /// Records in the answer section (a CNAME first when the name is an alias).
    Answer(Vec<Rr>),
    /// No records of the type at the name (NXDOMAIN or NODATA, with an SOA): the
    /// zone whose SOA came with it, when there was one.
    Empty { zone: Option<String> },
    /// "Ask these servers": a zone cut below the asked zone, with glue.
    Referral(Referral),
    /// Timeout, refusal, SERVFAIL, a lame referral: nothing can be concluded.
    Failed(String),
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

/// Whether `name` is `zone` or below it.
pub(super) fn within(name: &str, zone: &str) -> bool {
    let name = normalize_host(name);
    let zone = normalize_host(zone);
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// Whether `name` is strictly below `zone`.
pub(super) fn below(name: &str, zone: &str) -> bool {
    within(name, zone) && normalize_host(name) != normalize_host(zone)
}

type Pool = NameServerPool<TokioRuntimeProvider>;

/// One question for a zone's servers: `fqdn`'s records of `record_type`, asked of
/// the servers of `zone` (which holds `fqdn`).
#[derive(Clone, Copy)]
pub(super) struct Question<'a> {
    pub(super) zone: &'a str,
    pub(super) fqdn: &'a str,
    pub(super) record_type: RecordType,
}

/// A zone's authoritative servers (at most a few), each asked on its own so a lame
/// one can be passed over for the next.
pub(super) struct ZoneServers {
    addresses: Vec<SocketAddr>,
    each: Vec<Pool>,
    /// Where the next question starts, so no one server (a lame one first in the
    /// NS set, say) is always asked first.
    next: AtomicUsize,
}

impl ZoneServers {
    /// These servers, each reached over UDP (TCP when a reply is truncated).
    pub(super) fn new(addresses: &[SocketAddr]) -> Option<Self> {
        let (addresses, each): (Vec<SocketAddr>, Vec<Pool>) = addresses
            .iter()
            .filter_map(|address| Some((*address, pool_for(*address)?)))
            .unzip();
        (!each.is_empty()).then(|| Self {
            addresses,
            each,
            next: AtomicUsize::new(0),
        })
    }

    /// The servers' addresses.
    pub(super) fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Asks the question of one server; if it cannot answer (refused, failed,
    /// timed out, referred somewhere that is not below the zone), the others at
    /// once, the first to answer winning. Every question sent is taken from `budget`.
    pub(super) async fn ask(&self, question: Question<'_>, budget: &Budget) -> Reply {
        let count = self.each.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count.max(1);
        let mut order = (0..count).map(|i| &self.each[(start + i) % count]);
        let Some(first) = order.next() else {
            return Reply::Failed("no name servers".into());
        };
        let mut failure = match ask_one(first, question, budget).await {
            Reply::Failed(error) => error,
            reply => return reply,
        };
        let mut others: FuturesUnordered<_> = order
            .map(|server| ask_one(server, question, budget))
            .collect();
        while let Some(reply) = others.next().await {
            match reply {
                Reply::Failed(error) => failure = error,
                reply => return reply,
            }
        }
        Reply::Failed(failure)
    }
}

impl ZoneServers {
    /// Asks the question of every server at once, for an answer they agree
    /// on: the same records (in any order) from every server that answers;
    /// servers that fail are passed over, but one at least must answer. A
    /// referral, from any of them, is followed as `ask` follows one.
    pub(super) async fn ask_agreed(&self, question: Question<'_>, budget: &Budget) -> Reply {
        let replies = futures::future::join_all(
            self.each
                .iter()
                .map(|server| ask_one(server, question, budget)),
        )
        .await;
        let asked = replies.len();
        let mut failure = None;
        let mut answered: Vec<Vec<Rr>> = Vec::new();
        for reply in replies {
            match reply {
                Reply::Referral(referral) => return Reply::Referral(referral),
                Reply::Answer(records) => answered.push(records),
                Reply::Empty { .. } => answered.push(Vec::new()),
                Reply::Failed(why) => failure = Some(why),
            }
        }
        let Some(first) = answered.first() else {
            return Reply::Failed(format!(
                "none of the {asked} name servers of its zone answered ({})",
                failure.unwrap_or_default()
            ));
        };
        let seen = |records: &Vec<Rr>| {
            let mut seen: Vec<String> = records
                .iter()
                .map(|r| format!("{} {}", r.owner, r.describe().unwrap_or_default()))
                .collect();
            seen.sort();
            seen.dedup();
            seen
        };
        let reference = seen(first);
        let agreeing = answered
            .iter()
            .filter(|records| seen(records) == reference)
            .count();
        if agreeing < answered.len() {
            return Reply::Failed(format!(
                "the name servers of its zone answer {} differently ({agreeing} of {} alike): every one must serve the record, so wait until they all do",
                question.fqdn,
                answered.len()
            ));
        }
        Reply::Answer(first.clone())
    }
}

fn pool_for(address: SocketAddr) -> Option<Pool> {
    let mut options = ResolverOpts::default();
    options.timeout = QUERY_TIMEOUT;
    options.attempts = 1;
    options.num_concurrent_reqs = 1;
    let context = PoolContext::new(options, TlsConfig::new().ok()?);
    Some(NameServerPool::from_config(
        [name_server(address)],
        Arc::new(context),
        TokioRuntimeProvider::default(),
    ))
}

/// One question to one server, read as `Reply`.
async fn ask_one(server: &Pool, question: Question<'_>, budget: &Budget) -> Reply {
    let Question {
        zone,
        fqdn,
        record_type,
    } = question;
    if let Err(spent) = budget.take() {
        return Reply::Failed(spent);
    }
    let Ok(name) = Name::from_ascii(format!("{}.", fqdn.trim_end_matches('.'))) else {
        return Reply::Failed(format!("{fqdn} is not a DNS name"));
    };
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = false;
    let mut replies = server.lookup(Query::query(name, record_type), options);
    let reply = match tokio::time::timeout(LOOKUP_DEADLINE, replies.next()).await {
        Err(_) => return Reply::Failed("timed out".into()),
        Ok(None) => return Reply::Failed("no reply".into()),
        Ok(Some(reply)) => reply,
    };
    match reply {
        // hickory reads a referral for an NS question as an answer (the NS
        // records it asked for are there, in the authority section).
        Ok(response) if response.answers.is_empty() => {
            read_authority(zone, fqdn, &response.authorities, &response.additionals)
        }
        Ok(response) => Reply::Answer(
            response
                .answers
                .iter()
                .map(|record| Rr::of(&record.name, &record.data))
                .collect(),
        ),
        Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => {
            read_no_records(zone, fqdn, &no_records)
        }
        Err(error) => Reply::Failed(error.to_string()),
    }
}

/// A reply whose answer section is empty, from its authority section: "nothing
/// there" with an SOA, else a referral if it carries NS records (with glue from
/// the additional section), read by `referral`.
fn read_authority(zone: &str, fqdn: &str, authorities: &[Record], additionals: &[Record]) -> Reply {
    if let Some(soa) = authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
    {
        return Reply::Empty {
            zone: Some(normalize_host(&soa.name.to_ascii())),
        };
    }
    let servers: Vec<(String, String, Vec<IpAddr>)> = authorities
        .iter()
        .filter_map(|record| match &record.data {
            RData::NS(host) => {
                let host_name = &host.0;
                let glue = additionals
                    .iter()
                    .filter(|glue| &glue.name == host_name)
                    .filter_map(glue_address)
                    .collect();
                Some((
                    normalize_host(&record.name.to_ascii()),
                    normalize_host(&host_name.to_ascii()),
                    glue,
                ))
            }
            _ => None,
        })
        .collect();
    referral(zone, fqdn, servers)
}

/// The address a glue record gives, if it is an A or AAAA record.
fn glue_address(glue: &Record) -> Option<IpAddr> {
    match &glue.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

/// A referral from (child zone, name server, glue) triples: only one to a zone
/// below `zone` that holds `fqdn` counts; anything else is a lame server.
fn referral(zone: &str, fqdn: &str, servers: Vec<(String, String, Vec<IpAddr>)>) -> Reply {
    let Some(child) = servers.first().map(|(child, _, _)| child.clone()) else {
        return Reply::Empty { zone: None };
    };
    if !below(&child, zone) || !within(fqdn, &child) {
        return Reply::Failed(format!(
            "a server of {zone} referred the question to {child}, which is not below it (a lame server)"
        ));
    }
    Reply::Referral(Referral {
        servers: servers
            .into_iter()
            .filter(|(owner, _, _)| *owner == child)
            .map(|(_, host, glue)| (host, glue))
            .collect(),
        zone: child,
    })
}

/// A reply without answers: a referral if it carries NS records and no SOA (only
/// one to a zone below `zone` that holds `fqdn` counts; anything else is a lame
/// server), else "nothing there".
fn read_no_records(zone: &str, fqdn: &str, no_records: &NoRecords) -> Reply {
    if let Some(soa) = &no_records.soa {
        return Reply::Empty {
            zone: Some(normalize_host(&soa.name.to_ascii())),
        };
    }
    let Some(ns) = no_records.ns.as_ref().filter(|ns| !ns.is_empty()) else {
        return Reply::Empty { zone: None };
    };
    let servers = ns
        .iter()
        .filter_map(|data| match &data.ns.data {
            RData::NS(host) => Some((
                normalize_host(&data.ns.name.to_ascii()),
                normalize_host(&host.0.to_ascii()),
                data.glue.iter().filter_map(glue_address).collect(),
            )),
            _ => None,
        })
        .collect();
    referral(zone, fqdn, servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_within_and_below_zones() {
        assert!(within("a.example.com", "example.com"));
        assert!(within("Example.COM.", "example.com"));
        assert!(!within("badexample.com", "example.com"));
        assert!(below("a.example.com", "example.com"));
        assert!(!below("example.com", "example.com"));
        assert!(!below("com", "example.com"));
    }
}
