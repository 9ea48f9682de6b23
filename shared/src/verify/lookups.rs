//! The lookups of one check and the judging of each record from them: asked of
//! the zone's authoritative servers first (referrals to delegated child zones
//! followed), CNAME chains followed within bounds.

use std::sync::Arc;

use hickory_resolver::proto::rr::{RData, RecordType};

use super::dmarc::{DmarcFindings, dmarc_domain, judge_dmarc};
use super::judge::{
    AppendedRecord, InsteadOfCname, Judgement, judge_dkim_target, judge_missing_dkim, judge_mx,
};
use super::resolver::{Answer, Reply, ZoneServers, describe, normalize_host, query};
use super::{DnsChecker, spf};
use crate::domain_name::DomainName;
use crate::model::{DnsRecord, RecordPurpose};

/// CNAME hops followed.
const MAX_CNAME_HOPS: usize = 8;
/// Referrals followed from the zone's servers to delegated child zones.
const MAX_REFERRALS: usize = 3;

/// The lookups of one check: authoritative servers first, where known.
pub(super) struct Lookups<'a> {
    pub(super) checker: &'a DnsChecker,
    /// The domain's zone and its servers.
    pub(super) authoritative: Option<(String, Arc<ZoneServers>)>,
}

/// Whether `name` is `zone` or below it.
fn within(name: &str, zone: &str) -> bool {
    let name = normalize_host(name);
    name == zone || name.ends_with(&format!(".{zone}"))
}

impl Lookups<'_> {
    /// Asks the authoritative servers of the domain's zone for a name in it,
    /// following referrals down into delegated child zones (only down: an
    /// "upward" referral is not followed); then, if they cannot answer or the name
    /// is outside the zone, the configured resolver.
    async fn ask(&self, fqdn: &str, record_type: RecordType) -> Answer<RData> {
        let mut server = match &self.authoritative {
            Some((zone, servers)) if within(fqdn, zone) => Some((zone.clone(), servers.clone())),
            _ => None,
        };
        for _ in 0..=MAX_REFERRALS {
            let Some((zone, current)) = server else { break };
            server = match current.ask(fqdn, record_type).await {
                Reply::Answer(Answer::Failed(_)) => None,
                Reply::Answer(answer) => return answer,
                Reply::Referral(referral)
                    if referral.zone != zone
                        && within(&referral.zone, &zone)
                        && within(fqdn, &referral.zone) =>
                {
                    let child = self.checker.referred(&referral).await;
                    child.map(|servers| (referral.zone, servers))
                }
                Reply::Referral(_) => None,
            };
        }
        query(&self.checker.resolver, fqdn, record_type).await
    }

    /// Values of `record_type` at `fqdn`. A CNAME at the name is followed (also when
    /// an authoritative server only returns the alias); the chain comes back too.
    pub(super) async fn values(
        &self,
        fqdn: &str,
        record_type: RecordType,
    ) -> (Answer<String>, Vec<String>) {
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
                Answer::Found(data) => match first_cname(&data) {
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
    pub(super) async fn appended(
        &self,
        domain: &DomainName,
        fqdn: &str,
        record_type: RecordType,
    ) -> Option<AppendedRecord> {
        let zone = domain.registrable_domain();
        let name = format!("{fqdn}.{zone}");
        let (answer, _) = self.values(&name, record_type).await;
        let host_to_enter = match fqdn.strip_suffix(&format!(".{zone}")) {
            Some(relative) => relative.to_string(),
            None => "@".to_string(),
        };
        match answer {
            Answer::Found(observed) => Some(AppendedRecord {
                name,
                host_to_enter,
                observed,
            }),
            _ => None,
        }
    }

    /// Looks the record up and judges it, by the rules of its kind.
    pub(super) async fn judge(
        &self,
        domain: &DomainName,
        record: &DnsRecord,
    ) -> Result<Judgement, String> {
        match record.record {
            RecordPurpose::Mx | RecordPurpose::MailFromMx => {
                self.judge_mx_record(domain, record).await
            }
            RecordPurpose::Spf | RecordPurpose::MailFromSpf => {
                spf::check::judge_spf_record(self, domain, record).await
            }
            RecordPurpose::Dmarc => self.judge_dmarc_record(domain, record).await,
            RecordPurpose::Dkim => self.judge_dkim_record(domain, record).await,
        }
    }

    async fn judge_mx_record(
        &self,
        domain: &DomainName,
        record: &DnsRecord,
    ) -> Result<Judgement, String> {
        let (answer, _) = self.values(&record.fqdn, RecordType::MX).await;
        let appended = match answer {
            Answer::Empty => self.appended(domain, &record.fqdn, RecordType::MX).await,
            _ => None,
        };
        judge_mx(&record.value, answer, appended)
    }

    /// The record at `_dmarc.<name>`, for a subdomain the organizational domain's
    /// (which also counts); with neither, whether it sits at the domain itself or
    /// one level too deep.
    async fn judge_dmarc_record(
        &self,
        domain: &DomainName,
        record: &DnsRecord,
    ) -> Result<Judgement, String> {
        let organizational = (!domain.is_registrable_domain())
            .then(|| format!("_dmarc.{}", domain.registrable_domain()));
        let ((own, chain), inherited) =
            futures::join!(self.values(&record.fqdn, RecordType::TXT), async {
                match &organizational {
                    Some(name) => Some(self.values(name, RecordType::TXT).await.0),
                    None => None,
                }
            });
        let nothing_found = matches!(own, Answer::Empty)
            && !matches!(inherited, Some(Answer::Found(_)) | Some(Answer::Failed(_)));
        let (at_domain, appended) = if nothing_found {
            let at = dmarc_domain(&record.fqdn);
            let (at_domain, appended) = futures::join!(
                self.values(&at, RecordType::TXT),
                self.appended(domain, &record.fqdn, RecordType::TXT)
            );
            (Some((at, at_domain.0.found().to_vec())), appended)
        } else {
            (None, None)
        };
        judge_dmarc(DmarcFindings {
            own,
            chain,
            inherited,
            at_domain,
            appended,
        })
    }

    /// The CNAME (chain) at the selector; with none, what answers there instead
    /// (a TXT key, addresses from a proxy or a wildcard) and whether the domain
    /// was appended. A wrong answer is checked against a random sibling name, so a
    /// wildcard is not taken for the user's own record.
    async fn judge_dkim_record(
        &self,
        domain: &DomainName,
        record: &DnsRecord,
    ) -> Result<Judgement, String> {
        let answer = self.ask(&record.fqdn, RecordType::CNAME).await;
        match answer {
            Answer::Failed(e) => Err(e),
            Answer::Found(data) => {
                let targets: Vec<String> = data.iter().filter_map(first_cname_of).collect();
                let expected = normalize_host(&record.value);
                if targets.is_empty() || targets.contains(&expected) {
                    return Ok(judge_dkim_target(&expected, &targets, false));
                }
                let sibling = sibling_of(&record.fqdn);
                let (chain, sibling) = futures::join!(
                    self.cname_chain(targets.first().map(String::as_str).unwrap_or_default()),
                    self.ask(&sibling, RecordType::CNAME)
                );
                let wildcard =
                    first_cname(sibling.found()).is_some_and(|t| Some(&t) == targets.first());
                Ok(judge_dkim_target(&expected, &chain, wildcard))
            }
            Answer::Empty => {
                let (v4, v6, txt, appended) = futures::join!(
                    self.ask(&record.fqdn, RecordType::A),
                    self.ask(&record.fqdn, RecordType::AAAA),
                    self.ask(&record.fqdn, RecordType::TXT),
                    self.appended(domain, &record.fqdn, RecordType::CNAME),
                );
                let addresses: Vec<String> = v4
                    .found()
                    .iter()
                    .chain(v6.found())
                    .filter_map(describe)
                    .collect();
                let wildcard = if addresses.is_empty() {
                    false
                } else {
                    let sibling = self.ask(&sibling_of(&record.fqdn), RecordType::A).await;
                    let mut theirs: Vec<String> =
                        sibling.found().iter().filter_map(describe).collect();
                    let mut ours: Vec<String> = v4.found().iter().filter_map(describe).collect();
                    theirs.sort();
                    ours.sort();
                    !ours.is_empty() && ours == theirs
                };
                let found = InsteadOfCname {
                    addresses,
                    wildcard,
                    txt: txt.found().iter().filter_map(describe).collect(),
                };
                Ok(judge_missing_dkim(&record.value, found, appended))
            }
        }
    }
}

fn first_cname_of(data: &RData) -> Option<String> {
    match data {
        RData::CNAME(c) => Some(normalize_host(&c.0.to_ascii())),
        _ => None,
    }
}

fn first_cname(data: &[RData]) -> Option<String> {
    data.iter().find_map(first_cname_of)
}

/// A name beside `fqdn` that nobody publishes: what a wildcard would answer.
fn sibling_of(fqdn: &str) -> String {
    let parent = fqdn.split_once('.').map_or(fqdn, |(_, parent)| parent);
    format!(
        "x{}.{parent}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
