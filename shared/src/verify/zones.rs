//! Zone cuts and their name servers: the deepest zone between a name and its
//! registrable domain whose authoritative servers answer, remembered for a
//! while (bounded, expired entries dropped).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hickory_resolver::Resolver;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::DnsChecker;
use super::resolver::{
    LOOKUP_DEADLINE, Referral, ZoneServers, build_resolver, query, servers_config,
};
use crate::domain_name::DomainName;

/// How long a zone's authoritative servers (never answers) are remembered.
pub(super) const ZONE_SERVERS_TTL: Duration = Duration::from_secs(300);
pub(super) const MAX_ZONE_CACHE_ENTRIES: usize = 50_000;
/// Name servers of a zone asked at most.
pub(super) const MAX_AUTHORITATIVE_SERVERS: usize = 4;

pub(super) struct ZoneEntry {
    until: Instant,
    /// The authoritative servers if this name is a zone cut, `None` if it is not.
    servers: Option<Arc<ZoneServers>>,
}

impl DnsChecker {
    /// The deepest zone cut between `domain` and its registrable domain whose name
    /// servers can be found and reached: the zone, and its servers as a
    /// non-recursive resolver.
    pub(super) async fn authoritative(
        &self,
        domain: &DomainName,
    ) -> Option<(String, Arc<ZoneServers>)> {
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
        let resolved = join_all(candidates.iter().map(|candidate| async move {
            match self.known(candidate) {
                Some(servers) => servers,
                None => {
                    let servers = self.discover(candidate).await;
                    self.remember(candidate, servers.clone());
                    servers
                }
            }
        }))
        .await;
        candidates
            .into_iter()
            .zip(resolved)
            .find_map(|(zone, servers)| Some((zone, servers?)))
    }

    /// What is remembered of `zone` and not expired: `Some(None)` means "not a
    /// zone cut"; `None`, "not known".
    fn known(&self, zone: &str) -> Option<Option<Arc<ZoneServers>>> {
        let now = Instant::now();
        self.zones.lock().ok().and_then(|zones| {
            zones
                .get(zone)
                .filter(|entry| entry.until > now)
                .map(|entry| entry.servers.clone())
        })
    }

    fn remember(&self, zone: &str, servers: Option<Arc<ZoneServers>>) {
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
    async fn discover(&self, zone: &str) -> Option<Arc<ZoneServers>> {
        let hosts = query(&self.resolver, zone, RecordType::NS)
            .await
            .map(|data| match data {
                RData::NS(ns) => Some((ns.0.to_ascii(), Vec::new())),
                _ => None,
            });
        self.resolver_for(hosts.found()).await
    }

    /// The servers a referral names, as a non-recursive resolver (remembered like
    /// any zone's): the glue addresses, else the hosts' addresses looked up.
    pub(super) async fn referred(&self, referral: &Referral) -> Option<Arc<ZoneServers>> {
        if let Some(servers) = self.known(&referral.zone) {
            return servers;
        }
        let servers = self.resolver_for(&referral.servers).await;
        self.remember(&referral.zone, servers.clone());
        servers
    }

    /// A non-recursive resolver for these name servers (with any addresses already
    /// known; the others' looked up), at most `MAX_AUTHORITATIVE_SERVERS`.
    async fn resolver_for(&self, hosts: &[(String, Vec<IpAddr>)]) -> Option<Arc<ZoneServers>> {
        let hosts = &hosts[..hosts.len().min(MAX_AUTHORITATIVE_SERVERS)];
        if hosts.is_empty() {
            return None;
        }
        let addresses = join_all(hosts.iter().map(|(host, glue)| async move {
            if !glue.is_empty() {
                return glue.clone();
            }
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
        // One resolver per server, so a lame one (refusing the zone) can be passed
        // over for the next instead of ending the lookup.
        let each: Vec<_> = servers
            .iter()
            .filter_map(|server| {
                let builder = Resolver::builder_with_config(
                    servers_config(std::slice::from_ref(server)),
                    TokioRuntimeProvider::default(),
                );
                build_resolver(builder, false).ok()
            })
            .collect();
        (!each.is_empty()).then(|| Arc::new(ZoneServers::new(each)))
    }
}
