//! The lookups of one check and the judging of each record from them: asked of
//! the zone's authoritative servers first, CNAME chains and SPF includes followed
//! within bounds.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::{BoxFuture, join_all};
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::judge::{
    self, AppendedRecord, Judgement, judge_dkim_target, judge_dmarc, judge_mx, judge_spf,
};
use super::resolver::{Answer, describe, normalize_host, query};
use super::{DnsChecker, spf};
use crate::domain_name::DomainName;
use crate::model::{DnsRecord, RecordPurpose};
use crate::records::SPF_INCLUDE;

/// CNAME hops followed.
const MAX_CNAME_HOPS: usize = 8;
/// TXT lookups spent counting an SPF record's DNS-lookup terms.
const MAX_SPF_QUERIES: usize = 20;

/// The lookups of one check: authoritative servers first, where known.
pub(super) struct Lookups<'a> {
    pub(super) checker: &'a DnsChecker,
    pub(super) authoritative: Option<&'a TokioResolver>,
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
    ) -> Option<AppendedRecord> {
        let name = format!("{fqdn}.{}", domain.registrable_domain());
        let (answer, _) = self.values(&name, record_type).await;
        match answer {
            Answer::Found(observed) => Some(AppendedRecord { name, observed }),
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

    /// Looks the record up and judges it, by the rules of its kind.
    pub(super) async fn judge(
        &self,
        domain: &DomainName,
        record: &DnsRecord,
    ) -> Result<Judgement, String> {
        match record.record {
            RecordPurpose::Mx => self.judge_mx_record(domain, record).await,
            RecordPurpose::Spf => self.judge_spf_record(domain, record).await,
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

    async fn judge_spf_record(
        &self,
        domain: &DomainName,
        record: &DnsRecord,
    ) -> Result<Judgement, String> {
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

    /// The record at `_dmarc.<name>`, and for a subdomain the organizational
    /// domain's, which also counts.
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
        let appended = match &own {
            Answer::Empty => self.appended(domain, &record.fqdn, RecordType::TXT).await,
            _ => None,
        };
        judge_dmarc(own, &chain, inherited, appended)
    }

    /// The CNAME (chain) at the selector; with none, what answers there instead
    /// (addresses: a proxy or a wildcard) and whether the domain was appended.
    async fn judge_dkim_record(
        &self,
        domain: &DomainName,
        record: &DnsRecord,
    ) -> Result<Judgement, String> {
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
