//! Zone cuts and their name servers, found the way delegation works: the
//! registrable domain's delegation, asked of its parent zone's servers (else its
//! own NS records, owner == the name asked, never reached through a CNAME),
//! then referrals followed down from its servers. A recursive
//! NS answer for any other name is never trusted: for a name covered by a CNAME
//! (a wildcard `* CNAME` to a hosting provider), it names the target's servers,
//! whose owner would then answer for the name. Servers at addresses the operator
//! did not allow (`crate::network`) are never asked. What was found is remembered
//! for a while, in a bounded cache that lets its oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::DnsChecker;
use super::budget::Budget;
use super::resolver::{Answer, LOOKUP_DEADLINE, Rr, normalize_host, query};
use super::servers::{Question, Referral, Reply, ZoneServers, below, within};
use crate::domain_name::DomainName;

/// How long a zone's authoritative servers (never answers) are remembered.
pub(super) const ZONE_SERVERS_TTL: Duration = Duration::from_secs(300);
/// Zones remembered at most; past it the oldest go first.
pub(super) const MAX_ZONE_CACHE_ENTRIES: usize = 50_000;
/// Name servers of a zone asked at most.
pub(super) const MAX_AUTHORITATIVE_SERVERS: usize = 4;
/// Zone cuts followed below a registrable domain at most: an ordinary domain has
/// none to two; a tenant's zone could otherwise delegate every label of a long name.
pub const MAX_ZONE_CUTS: usize = 8;

/// How a zone's records can be asked.
#[derive(Clone)]
pub(super) enum Reach {
    /// Of its authoritative servers.
    Servers(Arc<ZoneServers>),
    /// No authoritative servers could be found or reached: the configured resolver
    /// answers instead (which may serve an older copy).
    Unknown(String),
    /// Not at all: its servers are at addresses this service does not reach, or
    /// it is too deep. The reason says which.
    Refused(String),
}

/// A zone cut found for a check, and how its records can be asked.
#[derive(Clone)]
pub(super) struct KnownZone {
    /// The zone's apex.
    pub(super) name: String,
    pub(super) reach: Reach,
}

/// What is remembered of a zone: definite answers only (servers found, or
/// refused); a zone whose servers could not be found is looked for again next
/// time. Addresses, not connections: each check opens its own to a zone's
/// servers and closes them when it ends, so a tenant's servers that keep
/// connections open (answer truncated over UDP, then never close TCP) cannot
/// pile sockets up in a process that checks everyone's domains.
#[derive(Clone)]
enum Remembered {
    Servers(Vec<SocketAddr>),
    Refused(String),
}

#[derive(Default)]
pub(super) struct ZoneCache {
    entries: HashMap<String, (Instant, Remembered, u64)>,
    /// Names in the order they were remembered, with the generation each was
    /// remembered at (an entry remembered again is younger than its old place).
    order: VecDeque<(String, u64)>,
    generation: u64,
}

impl ZoneCache {
    fn get(&self, zone: &str, now: Instant) -> Option<Remembered> {
        self.entries
            .get(zone)
            .filter(|(until, _, _)| *until > now)
            .map(|(_, remembered, _)| remembered.clone())
    }

    fn remember(&mut self, zone: &str, remembered: Remembered, now: Instant) {
        self.generation += 1;
        self.entries.insert(
            zone.to_string(),
            (now + ZONE_SERVERS_TTL, remembered, self.generation),
        );
        self.order.push_back((zone.to_string(), self.generation));
        while self.entries.len() > MAX_ZONE_CACHE_ENTRIES {
            let Some((oldest, generation)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|e| e.2 == generation) {
                self.entries.remove(&oldest);
            }
        }
        // Expired entries go first, a few at a time, from the front (the oldest).
        while let Some((oldest, generation)) = self.order.front().cloned() {
            match self.entries.get(&oldest) {
                Some(entry) if entry.2 == generation && entry.0 <= now => {
                    self.entries.remove(&oldest);
                }
                Some(entry) if entry.2 == generation => break,
                _ => {}
            }
            self.order.pop_front();
        }
        // Places left by names remembered again: dropped once they outnumber the
        // entries, so the queue stays within twice the bound.
        if self.order.len() > 2 * MAX_ZONE_CACHE_ENTRIES {
            let entries = &self.entries;
            self.order
                .retain(|(name, generation)| entries.get(name).is_some_and(|e| e.2 == *generation));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl DnsChecker {
    /// The zones a check of `domain` asks: its registrable domain's, then each
    /// cut found by following referrals from there down to `domain` (the last is
    /// `domain`'s own zone). A CNAME at `domain`, an empty answer or a server that
    /// cannot answer ends the walk where it is.
    pub(super) async fn locate(&self, domain: &DomainName, budget: &Budget) -> Vec<KnownZone> {
        let apex = domain.registrable_domain().to_string();
        let target = domain.as_str();
        let mut known = vec![KnownZone {
            reach: self.apex_zone(&apex, budget).await,
            name: apex,
        }];
        let mut cuts = 0;
        loop {
            let Some(current) = known.last().cloned() else {
                break;
            };
            let Reach::Servers(servers) = &current.reach else {
                break;
            };
            if current.name == target {
                break;
            }
            let question = Question {
                zone: &current.name,
                fqdn: target,
                record_type: RecordType::NS,
            };
            match servers.ask(question, budget).await {
                Reply::Referral(referral) => {
                    cuts += 1;
                    known.push(self.cut(referral, cuts, budget).await);
                }
                // Its own NS records, from servers that hold its zone too.
                Reply::Answer(records)
                    if records.first().is_some_and(|r| r.cname_target().is_none())
                        && !name_servers_of(&records, target).is_empty() =>
                {
                    known.push(KnownZone {
                        name: target.to_string(),
                        reach: current.reach.clone(),
                    });
                    break;
                }
                // Nothing there, from a nested zone these servers hold too.
                Reply::Empty { zone: Some(zone) }
                    if below(&zone, &current.name) && within(target, &zone) =>
                {
                    known.push(KnownZone {
                        name: zone,
                        reach: current.reach.clone(),
                    });
                    break;
                }
                _ => break,
            }
        }
        known
    }

    /// The zone a referral names, the `cuts`-th of a walk: its servers, unless
    /// there are too many cuts.
    pub(super) async fn cut(&self, referral: Referral, cuts: usize, budget: &Budget) -> KnownZone {
        let reach = if cuts > MAX_ZONE_CUTS {
            Reach::Refused(format!(
                "{} is more than {MAX_ZONE_CUTS} zone cuts below its registrable domain, more than this service follows",
                referral.zone
            ))
        } else {
            self.referred(&referral, budget).await
        };
        KnownZone {
            name: referral.zone,
            reach,
        }
    }

    /// The registrable domain's servers, as its parent zone delegates it (the
    /// referral's NS set and glue, asked of the parent's servers): the zone's
    /// own NS records may still list a server it no longer uses, whose name
    /// someone else may have taken over, and a resolver that trusts them may
    /// even learn that server's answers for the zone's other servers'
    /// addresses. Where the parent cannot be asked, the zone's own NS records
    /// as the configured resolver answers them (never records owned by another
    /// name, reached through a CNAME).
    async fn apex_zone(&self, apex: &str, budget: &Budget) -> Reach {
        if let Some(reach) = self.known(apex) {
            return reach;
        }
        match self.delegation(apex, budget).await {
            Some(hosts) => {
                let reach = self.reach(apex, &hosts, budget).await;
                self.remember(apex, &reach);
                reach
            }
            None => self.own_zone(apex, budget).await,
        }
    }

    /// The name servers (and glue) `apex`'s parent zone delegates it to, if the
    /// parent's servers can be found and asked.
    async fn delegation(&self, apex: &str, budget: &Budget) -> Option<Vec<(String, Vec<IpAddr>)>> {
        let (parent, servers) = self.parent_zone(apex, budget).await?;
        let question = Question {
            zone: &parent,
            fqdn: apex,
            record_type: RecordType::NS,
        };
        match servers.ask(question, budget).await {
            Reply::Referral(referral) if referral.zone == apex => Some(referral.servers),
            // The parent's servers hold the zone too: its NS records, asked of them.
            Reply::Answer(records) => {
                let hosts = name_servers_of(&records, apex);
                (!hosts.is_empty()).then_some(hosts)
            }
            _ => None,
        }
    }

    /// The zone above `apex` (its public suffix, or the nearest name above
    /// that is a zone: a private suffix such as `github.io` is no zone of its
    /// own) and its servers: the name's own NS records, as the resolver answers
    /// them. Public suffixes are the registries', not a tenant's.
    async fn parent_zone(&self, apex: &str, budget: &Budget) -> Option<(String, Arc<ZoneServers>)> {
        let mut name = apex.split_once('.')?.1.to_string();
        loop {
            let reach = match self.known(&name) {
                Some(reach) => reach,
                None => self.own_zone(&name, budget).await,
            };
            if let Reach::Servers(servers) = reach {
                return Some((name, servers));
            }
            name = name.split_once('.')?.1.to_string();
        }
    }

    /// `zone`'s servers from its own NS records, as the configured resolver
    /// answers them (remembered like any zone's), or why there are none.
    async fn own_zone(&self, zone: &str, budget: &Budget) -> Reach {
        let hosts = match query(&self.resolver, zone, RecordType::NS, budget).await {
            Answer::Failed(why) => {
                return Reach::Unknown(format!(
                    "the name servers of {zone} could not be looked up ({why})"
                ));
            }
            answer => name_servers_of(answer.found(), zone),
        };
        if hosts.is_empty() {
            return Reach::Unknown(format!("{zone} has no NS records of its own"));
        }
        let reach = self.reach(zone, &hosts, budget).await;
        self.remember(zone, &reach);
        reach
    }

    /// The servers a referral names (remembered like any zone's).
    async fn referred(&self, referral: &Referral, budget: &Budget) -> Reach {
        if let Some(reach) = self.known(&referral.zone) {
            return reach;
        }
        let reach = self.reach(&referral.zone, &referral.servers, budget).await;
        self.remember(&referral.zone, &reach);
        reach
    }

    /// What is remembered of `zone` and not expired, with connections of this
    /// check's own.
    fn known(&self, zone: &str) -> Option<Reach> {
        let now = Instant::now();
        let remembered = self
            .zones
            .lock()
            .ok()
            .and_then(|zones| zones.get(zone, now))?;
        Some(match remembered {
            Remembered::Servers(addresses) => match ZoneServers::new(&addresses) {
                Some(servers) => Reach::Servers(Arc::new(servers)),
                None => Reach::Unknown(format!("no name servers of {zone} could be set up")),
            },
            Remembered::Refused(why) => Reach::Refused(why),
        })
    }

    /// Remembers a definite answer (a zone whose servers could not be found is
    /// looked for again next time).
    fn remember(&self, zone: &str, reach: &Reach) {
        let remembered = match reach {
            Reach::Servers(servers) => Remembered::Servers(servers.addresses().to_vec()),
            Reach::Refused(why) => Remembered::Refused(why.clone()),
            Reach::Unknown(_) => return,
        };
        if let Ok(mut zones) = self.zones.lock() {
            zones.remember(zone, remembered, Instant::now());
        }
    }

    /// `zone`'s servers among these name servers (with any glue addresses; the
    /// others' looked up), at most `MAX_AUTHORITATIVE_SERVERS`, leaving out every
    /// address the operator did not allow: never sent a packet.
    async fn reach(&self, zone: &str, hosts: &[(String, Vec<IpAddr>)], budget: &Budget) -> Reach {
        let hosts = &hosts[..hosts.len().min(MAX_AUTHORITATIVE_SERVERS)];
        let addresses = join_all(hosts.iter().map(|(host, glue)| async move {
            if !glue.is_empty() {
                return glue.clone();
            }
            // A and AAAA: two questions.
            if budget.take_many(2).is_err() {
                return Vec::new();
            }
            tokio::time::timeout(LOOKUP_DEADLINE, self.resolver.lookup_ip(host.as_str()))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|ips| ips.iter().collect::<Vec<IpAddr>>())
                .unwrap_or_default()
        }))
        .await;
        let (permitted, refused): (Vec<IpAddr>, Vec<IpAddr>) = addresses
            .into_iter()
            .flatten()
            .partition(|ip| self.allowed_networks.refusal(*ip).is_none());
        let servers: Vec<SocketAddr> = permitted
            .into_iter()
            .take(MAX_AUTHORITATIVE_SERVERS)
            .map(|ip| SocketAddr::new(ip, self.authoritative_port))
            .collect();
        if let Some(servers) = ZoneServers::new(&servers) {
            return Reach::Servers(Arc::new(servers));
        }
        if let Some(first) = refused.first() {
            let why = self
                .allowed_networks
                .refusal(*first)
                .unwrap_or("not public");
            let listed: Vec<String> = refused.iter().take(3).map(IpAddr::to_string).collect();
            return Reach::Refused(format!(
                "the name servers of {zone} are at non-public addresses ({}: {why}), which this service does not query",
                listed.join(", ")
            ));
        }
        Reach::Unknown(format!(
            "the addresses of the name servers of {zone} could not be found"
        ))
    }
}

/// The name servers named by `zone`'s own NS records among `records` (never a
/// record owned by another name, reached through a CNAME), without glue.
fn name_servers_of(records: &[Rr], zone: &str) -> Vec<(String, Vec<IpAddr>)> {
    records
        .iter()
        .filter(|record| record.owner == zone)
        .filter_map(|record| match &record.data {
            RData::NS(ns) => Some((normalize_host(&ns.0.to_ascii()), Vec::new())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_lets_its_oldest_entries_go_first() {
        let mut cache = ZoneCache::default();
        let now = Instant::now();
        let refused = || Remembered::Refused("test".into());
        for i in 0..MAX_ZONE_CACHE_ENTRIES {
            cache.remember(&format!("zone{i}.example"), refused(), now);
        }
        // Remembered again: younger than every other.
        cache.remember("zone0.example", refused(), now);
        cache.remember("new.example", refused(), now);
        assert_eq!(cache.len(), MAX_ZONE_CACHE_ENTRIES);
        assert!(cache.get("zone0.example", now).is_some());
        assert!(cache.get("zone1.example", now).is_none(), "the oldest went");
        assert!(cache.get("zone2.example", now).is_some());
        assert!(cache.get("new.example", now).is_some());
        assert!(
            cache
                .get(
                    "new.example",
                    now + ZONE_SERVERS_TTL + Duration::from_secs(1)
                )
                .is_none(),
            "expired"
        );
        // Remembered after they expired: expired entries at the front go.
        let later = now + ZONE_SERVERS_TTL + Duration::from_secs(1);
        cache.remember("newer.example", refused(), later);
        assert_eq!(cache.len(), 1, "only the newest is left");
    }
}
