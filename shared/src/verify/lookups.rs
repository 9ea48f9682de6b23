//! The lookups of one check and the judging of each record from them: asked of
//! the authoritative servers of the deepest zone known to hold the name
//! (referrals to delegated child zones followed and remembered for the check),
//! else of the configured resolver; CNAME chains followed within bounds; every
//! question counted against the check's budget.

use std::sync::Mutex;

use hickory_resolver::proto::rr::{RData, RecordType};

use super::DnsChecker;
use super::budget::Budget;
use super::dmarc::{DmarcFindings, dmarc_domain, judge_dmarc};
use super::judge::{
    AppendedRecord, InsteadOfCname, Judgement, judge_dkim_target, judge_missing_dkim, judge_mx,
};
use super::resolver::{Answer, Rr, normalize_host, query};
use super::servers::{Question, Reply, within};
use super::spf;
use super::zones::{KnownZone, Reach};
use crate::domain_name::DomainName;
use crate::model::{DnsRecord, RecordPurpose};

/// CNAME hops followed.
const MAX_CNAME_HOPS: usize = 8;
/// Referrals one lookup follows below the deepest zone known.
const MAX_REFERRALS: usize = 3;

/// The lookups of one check: authoritative servers first, where known.
pub(super) struct Lookups<'a> {
    pub(super) checker: &'a DnsChecker,
    /// What the check may still ask.
    budget: &'a Budget,
    /// The zones found so far, outermost (the registrable domain's) first.
    zones: Mutex<Vec<KnownZone>>,
}

/// What the authoritative servers of a name's zone said.
enum Asked {
    /// An answer (or "nothing there").
    Answer(Answer<Rr>),
    /// They could not be found (no NS records of the zone's own, their
    /// addresses not found): the resolver, following the same delegations, may
    /// answer instead.
    NoServers(String),
    /// They were asked and could not answer (timeouts, refusals, lame).
    Unreachable(String),
    /// They are not asked at all (non-public addresses, too deep): neither is
    /// anyone else, and the reason says why.
    Refused(String),
    /// The name is outside every zone known (a CNAME target, an SPF include).
    Outside,
}

impl<'a> Lookups<'a> {
    /// The lookups of one check of `domain`: its zones found first, from its
    /// registrable domain down.
    pub(super) async fn for_domain(
        checker: &'a DnsChecker,
        domain: &DomainName,
        budget: &'a Budget,
    ) -> Self {
        let zones = checker.locate(domain, budget).await;
        Self {
            checker,
            budget,
            zones: Mutex::new(zones),
        }
    }

    /// The deepest zone known that holds `fqdn`, and how many are known.
    fn zone_for(&self, fqdn: &str) -> (Option<KnownZone>, usize) {
        let zones = match self.zones.lock() {
            Ok(zones) => zones,
            Err(_) => return (None, 0),
        };
        let deepest = zones
            .iter()
            .filter(|zone| within(fqdn, &zone.name))
            .max_by_key(|zone| zone.name.len())
            .cloned();
        (deepest, zones.len())
    }

    /// Asks the authoritative servers of the deepest zone known to hold `fqdn`,
    /// following referrals down into delegated child zones: one of them, or
    /// (`every`) all of them, for an answer they agree on.
    async fn ask_authoritative(&self, fqdn: &str, record_type: RecordType, every: bool) -> Asked {
        let (Some(mut zone), mut known) = self.zone_for(fqdn) else {
            return Asked::Outside;
        };
        for _ in 0..=MAX_REFERRALS {
            let servers = match &zone.reach {
                Reach::Servers(servers) => servers.clone(),
                Reach::Unknown(why) => return Asked::NoServers(why.clone()),
                Reach::Refused(why) => return Asked::Refused(why.clone()),
            };
            let question = Question {
                zone: &zone.name,
                fqdn,
                record_type,
            };
            let reply = if every {
                servers.ask_agreed(question, self.budget).await
            } else {
                servers.ask(question, self.budget).await
            };
            match reply {
                Reply::Answer(records) if records.is_empty() => {
                    return Asked::Answer(Answer::Empty);
                }
                Reply::Answer(records) => return Asked::Answer(Answer::Found(records)),
                Reply::Empty { .. } => return Asked::Answer(Answer::Empty),
                Reply::Failed(why) => return Asked::Unreachable(why),
                Reply::Referral(referral) => {
                    zone = self.checker.cut(referral, known, self.budget).await;
                    known += 1;
                    if let Ok(mut zones) = self.zones.lock() {
                        zones.push(zone.clone());
                    }
                }
            }
        }
        Asked::Unreachable(format!("more than {MAX_REFERRALS} referrals"))
    }

    /// Records at `fqdn`: from its zone's authoritative servers; where they cannot
    /// be asked, or the name is outside every zone known, the configured resolver.
    /// Servers this service does not reach are not replaced by the resolver: the
    /// lookup fails, saying why.
    async fn ask(&self, fqdn: &str, record_type: RecordType) -> Answer<Rr> {
        match self.ask_authoritative(fqdn, record_type, false).await {
            Asked::Answer(answer) => answer,
            Asked::Refused(why) => Answer::Failed(why),
            Asked::NoServers(why) | Asked::Unreachable(why) => {
                tracing::debug!(fqdn, %why, "authoritative servers not asked or not answering; asking the resolver");
                query(&self.checker.resolver, fqdn, record_type, self.budget).await
            }
            Asked::Outside => query(&self.checker.resolver, fqdn, record_type, self.budget).await,
        }
    }

    /// Values of `record_type` at `fqdn`. A CNAME at the name is followed (also when
    /// an authoritative server only returns the alias); the chain comes back too.
    pub(super) async fn values(
        &self,
        fqdn: &str,
        record_type: RecordType,
    ) -> (Answer<String>, Vec<String>) {
        let mut chain: Vec<String> = Vec::new();
        let mut name = normalize_host(fqdn);
        for _ in 0..MAX_CNAME_HOPS {
            let records = match self.ask(&name, record_type).await {
                Answer::Found(records) => records,
                other => return (other.map(|r| r.describe()), chain),
            };
            // A server may answer with the whole chain (aliases in its zone).
            loop {
                let wanted: Vec<String> = records
                    .iter()
                    .filter(|r| r.owner == name && r.data.record_type() == record_type)
                    .filter_map(Rr::describe)
                    .collect();
                if !wanted.is_empty() {
                    return (Answer::Found(wanted), chain);
                }
                let next = records
                    .iter()
                    .filter(|r| r.owner == name)
                    .find_map(Rr::cname_target);
                match next {
                    Some(target) if target != name && !chain.contains(&target) => {
                        chain.push(target.clone());
                        name = target;
                        if chain.len() >= MAX_CNAME_HOPS {
                            return (Answer::Failed("CNAME chain too long".into()), chain);
                        }
                        if !records.iter().any(|r| r.owner == name) {
                            break;
                        }
                    }
                    _ => return (Answer::Empty, chain),
                }
            }
        }
        (Answer::Failed("CNAME chain too long".into()), chain)
    }

    /// The TXT values at exactly `fqdn` as its own zone answers them, and every
    /// alias met on the way (a proof reached through a CNAME is no proof). Asked
    /// of every authoritative server of the zone, found from the registrable
    /// domain down: they must all answer alike (a stale name server that someone
    /// else now runs could otherwise answer for the zone alone). Only where no
    /// servers can be found does the configured resolver, which follows the
    /// same delegations, stand in. Servers that were found but did not answer,
    /// or that this service does not reach, are replaced by nobody: the claim
    /// waits.
    pub(super) async fn proof(&self, fqdn: &str) -> (Answer<String>, Vec<String>) {
        let fqdn = normalize_host(fqdn);
        let answer = match self.ask_authoritative(&fqdn, RecordType::TXT, true).await {
            Asked::Answer(answer) => answer,
            Asked::Refused(why) => {
                return (
                    Answer::Failed(format!("the name servers of its zone are not asked: {why}")),
                    Vec::new(),
                );
            }
            Asked::Unreachable(why) => return (Answer::Failed(why), Vec::new()),
            Asked::NoServers(why) => {
                tracing::debug!(%fqdn, %why, "no authoritative servers found for the proof; asking the resolver");
                query(&self.checker.resolver, &fqdn, RecordType::TXT, self.budget).await
            }
            Asked::Outside => {
                query(&self.checker.resolver, &fqdn, RecordType::TXT, self.budget).await
            }
        };
        match answer {
            Answer::Found(records) => {
                let aliases: Vec<String> = records.iter().filter_map(Rr::cname_target).collect();
                // What was found at the name or through its aliases (shown to
                // the claimant; only the name's own, with no alias, proves).
                let values: Vec<String> = records
                    .iter()
                    .filter(|r| r.owner == fqdn || aliases.contains(&r.owner))
                    .filter(|r| matches!(r.data, RData::TXT(_)))
                    .filter_map(Rr::describe)
                    .collect();
                let answer = if values.is_empty() {
                    Answer::Empty
                } else {
                    Answer::Found(values)
                };
                (answer, aliases)
            }
            other => (other.map(|r| r.describe()), Vec::new()),
        }
    }

    /// The CNAME targets from `start`, following the chain (start included).
    async fn cname_chain(&self, start: &str) -> Vec<String> {
        let mut chain = vec![start.to_string()];
        while chain.len() < MAX_CNAME_HOPS {
            let Some(last) = chain.last().cloned() else {
                break;
            };
            match self.ask(&last, RecordType::CNAME).await {
                Answer::Found(records) => match first_cname(&records) {
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
                    Some(name) => Some((name.clone(), self.values(name, RecordType::TXT).await.0)),
                    None => None,
                }
            });
        let nothing_found = matches!(own, Answer::Empty)
            && !matches!(
                inherited,
                Some((_, Answer::Found(_))) | Some((_, Answer::Failed(_)))
            );
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
            Answer::Found(records) => {
                let targets: Vec<String> = records.iter().filter_map(Rr::cname_target).collect();
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
                    .filter_map(Rr::describe)
                    .collect();
                let wildcard = if addresses.is_empty() {
                    false
                } else {
                    let sibling = self.ask(&sibling_of(&record.fqdn), RecordType::A).await;
                    let mut theirs: Vec<String> =
                        sibling.found().iter().filter_map(Rr::describe).collect();
                    let mut ours: Vec<String> =
                        v4.found().iter().filter_map(Rr::describe).collect();
                    theirs.sort();
                    ours.sort();
                    !ours.is_empty() && ours == theirs
                };
                let found = InsteadOfCname {
                    addresses,
                    wildcard,
                    txt: txt.found().iter().filter_map(Rr::describe).collect(),
                };
                Ok(judge_missing_dkim(&record.value, found, appended))
            }
        }
    }
}

fn first_cname(records: &[Rr]) -> Option<String> {
    records.iter().find_map(Rr::cname_target)
}

/// A name beside `fqdn` that nobody publishes: what a wildcard would answer.
fn sibling_of(fqdn: &str) -> String {
    let parent = fqdn.split_once('.').map_or(fqdn, |(_, parent)| parent);
    format!(
        "x{}.{parent}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
