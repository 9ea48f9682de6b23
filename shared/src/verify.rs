//! DNS verification: real lookups (all concurrent, no answer cache) judged by the
//! contract's rules.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::domain_name::DomainName;
use crate::model::{DnsRecord, RecordPurpose, RecordStatus};
use crate::records::SPF_INCLUDE;

/// Per-query timeout; with `ATTEMPTS` this bounds a verify when DNS is down.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPTS: usize = 2;

/// What one lookup gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Found(Vec<T>),
    /// NXDOMAIN or no records of the type.
    Empty,
    /// Timeout, SERVFAIL, refused, network error: nothing can be concluded.
    Failed(String),
}

/// The outcome of judging one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub status: RecordStatus,
    pub reason: Option<String>,
    pub observed: Vec<String>,
}

impl Judgement {
    fn verified(observed: Vec<String>) -> Self {
        Self {
            status: RecordStatus::Verified,
            reason: None,
            observed,
        }
    }

    fn with(status: RecordStatus, reason: impl Into<String>, observed: Vec<String>) -> Self {
        Self {
            status,
            reason: Some(reason.into()),
            observed,
        }
    }
}

pub struct DnsChecker {
    resolver: TokioResolver,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverSetupError(String);

impl DnsChecker {
    /// Asks the system's resolvers (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, ResolverSetupError> {
        let builder = Resolver::builder_tokio().map_err(|e| ResolverSetupError(e.to_string()))?;
        Self::finish(builder)
    }

    /// Asks only these servers, over UDP and TCP.
    pub fn with_nameservers(servers: &[SocketAddr]) -> Result<Self, ResolverSetupError> {
        let name_servers = servers
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
            .collect();
        let builder = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        );
        Self::finish(builder)
    }

    fn finish(
        mut builder: hickory_resolver::ResolverBuilder<TokioRuntimeProvider>,
    ) -> Result<Self, ResolverSetupError> {
        let options = builder.options_mut();
        options.timeout = QUERY_TIMEOUT;
        options.attempts = ATTEMPTS;
        // No answer cache: a record published after a negative answer must be seen
        // on the next check, not after the negative TTL.
        options.cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| ResolverSetupError(e.to_string()))?;
        Ok(Self { resolver })
    }

    /// Checks every record concurrently and returns them with status, reason and
    /// observed values updated. A lookup that could not be completed leaves the
    /// record's previous status and says so.
    pub async fn check(&self, domain: &DomainName, records: &[DnsRecord]) -> Vec<DnsRecord> {
        join_all(records.iter().map(|record| async move {
            let judgement = self.judge(domain, record).await;
            let mut updated = record.clone();
            updated.status = judgement.status;
            updated.reason = judgement.reason;
            updated.observed = judgement.observed;
            updated
        }))
        .await
    }

    async fn judge(&self, domain: &DomainName, record: &DnsRecord) -> Judgement {
        let judgement = match record.record {
            RecordPurpose::Mx => judge_mx(&record.value, self.mx(&record.fqdn).await),
            RecordPurpose::Spf => judge_spf(self.txt(&record.fqdn).await),
            RecordPurpose::Dkim => judge_dkim(&record.value, self.cname(&record.fqdn).await),
            RecordPurpose::Dmarc => {
                let organizational = (!domain.is_registrable_domain())
                    .then(|| format!("_dmarc.{}", domain.registrable_domain()));
                let (own, inherited) = futures::join!(self.txt(&record.fqdn), async {
                    match &organizational {
                        Some(name) => Some(self.txt(name).await),
                        None => None,
                    }
                });
                judge_dmarc(own, inherited)
            }
        };
        match judgement {
            Ok(judgement) => judgement,
            Err(lookup_error) => Judgement {
                status: record.status,
                reason: Some(format!(
                    "The DNS lookup for {} could not be completed ({lookup_error}); the status is unchanged, try again later.",
                    record.fqdn
                )),
                observed: record.observed.clone(),
            },
        }
    }

    async fn lookup(&self, fqdn: &str, record_type: RecordType) -> Answer<RData> {
        let name = match Name::from_ascii(format!("{fqdn}.")) {
            Ok(name) => name,
            Err(e) => return Answer::Failed(format!("invalid name: {e}")),
        };
        match self.resolver.lookup(name, record_type).await {
            Ok(lookup) => {
                let data: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == record_type)
                    .map(|r| r.data.clone())
                    .collect();
                if data.is_empty() {
                    Answer::Empty
                } else {
                    Answer::Found(data)
                }
            }
            Err(e) if e.is_no_records_found() => Answer::Empty,
            Err(e) => Answer::Failed(e.to_string()),
        }
    }

    async fn txt(&self, fqdn: &str) -> Answer<String> {
        map_answer(
            self.lookup(fqdn, RecordType::TXT).await,
            |data| match data {
                // A TXT record may be split into several strings; they form one value.
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            },
        )
    }

    async fn mx(&self, fqdn: &str) -> Answer<(u16, String)> {
        map_answer(self.lookup(fqdn, RecordType::MX).await, |data| match data {
            RData::MX(mx) => Some((mx.preference, normalize_host(&mx.exchange.to_ascii()))),
            _ => None,
        })
    }

    async fn cname(&self, fqdn: &str) -> Answer<String> {
        map_answer(
            self.lookup(fqdn, RecordType::CNAME).await,
            |data| match data {
                RData::CNAME(cname) => Some(normalize_host(&cname.0.to_ascii())),
                _ => None,
            },
        )
    }
}

fn map_answer<T>(answer: Answer<RData>, f: impl Fn(&RData) -> Option<T>) -> Answer<T> {
    match answer {
        Answer::Found(data) => Answer::Found(data.iter().filter_map(f).collect()),
        Answer::Empty => Answer::Empty,
        Answer::Failed(e) => Answer::Failed(e),
    }
}

/// Lowercase, no trailing dot: how hosts are compared.
fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `Err` carries why the lookup could not be completed.
type Verdict = Result<Judgement, String>;

pub fn judge_mx(expected_host: &str, answer: Answer<(u16, String)>) -> Verdict {
    let mut hosts = match answer {
        Answer::Found(hosts) if !hosts.is_empty() => hosts,
        Answer::Found(_) | Answer::Empty => {
            return Ok(Judgement::with(
                RecordStatus::Pending,
                "No MX record was found at this name yet.",
                vec![],
            ));
        }
        Answer::Failed(e) => return Err(e),
    };
    hosts.sort();
    let observed = hosts.iter().map(|(p, h)| format!("{p} {h}")).collect();
    let expected = normalize_host(expected_host);
    let lowest = hosts[0].0;
    let ours = hosts.iter().find(|(_, host)| *host == expected);
    Ok(match ours {
        Some((preference, _)) if *preference == lowest => Judgement::verified(observed),
        Some((preference, _)) => {
            let others: Vec<&str> = hosts
                .iter()
                .filter(|(p, _)| *p == lowest)
                .map(|(_, h)| h.as_str())
                .collect();
            Judgement::with(
                RecordStatus::Failed,
                format!(
                    "{expected} is published with preference {preference}, but {} has a lower preference ({lowest}) and receives the mail first.",
                    others.join(", ")
                ),
                observed,
            )
        }
        None => Judgement::with(
            RecordStatus::Failed,
            format!("The MX records point elsewhere; expected {expected}."),
            observed,
        ),
    })
}

fn is_spf(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    lower == "v=spf1" || lower.starts_with("v=spf1 ")
}

pub fn judge_spf(answer: Answer<String>) -> Verdict {
    let texts = match answer {
        Answer::Found(texts) => texts,
        Answer::Empty => vec![],
        Answer::Failed(e) => return Err(e),
    };
    let spf: Vec<String> = texts.into_iter().filter(|t| is_spf(t)).collect();
    Ok(match spf.as_slice() {
        [] => Judgement::with(
            RecordStatus::Pending,
            "No SPF (v=spf1) TXT record was found at this name yet.",
            spf,
        ),
        [record] => {
            let includes_ses = record.split_ascii_whitespace().skip(1).any(|term| {
                let mechanism = term.strip_prefix('+').unwrap_or(term);
                mechanism.eq_ignore_ascii_case(SPF_INCLUDE)
            });
            if includes_ses {
                Judgement::verified(spf)
            } else {
                Judgement::with(
                    RecordStatus::Failed,
                    format!(
                        "The SPF record does not contain {SPF_INCLUDE}; add it to the existing record."
                    ),
                    spf,
                )
            }
        }
        _ => Judgement::with(
            RecordStatus::Failed,
            format!(
                "{} SPF records were found; a name may have only one (RFC 7208 4.5), so merge them into one.",
                spf.len()
            ),
            spf,
        ),
    })
}

fn is_dmarc(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    lower
        .strip_prefix("v=dmarc1")
        .is_some_and(|rest| rest.trim_start().is_empty() || rest.trim_start().starts_with(';'))
}

/// `inherited` is the answer at the organizational domain's `_dmarc`, for a subdomain.
pub fn judge_dmarc(own: Answer<String>, inherited: Option<Answer<String>>) -> Verdict {
    let own = match own {
        Answer::Found(texts) => texts.into_iter().filter(|t| is_dmarc(t)).collect(),
        Answer::Empty => vec![],
        Answer::Failed(e) => return Err(e),
    };
    match own.len() {
        1 => return Ok(Judgement::verified(own)),
        0 => {}
        n => {
            return Ok(Judgement::with(
                RecordStatus::Failed,
                format!(
                    "{n} DMARC records were found; receivers ignore DMARC when there is more than one (RFC 7489 6.6.3)."
                ),
                own,
            ));
        }
    }
    let inherited: Vec<String> = match inherited {
        Some(Answer::Found(texts)) => texts.into_iter().filter(|t| is_dmarc(t)).collect(),
        Some(Answer::Failed(e)) => return Err(e),
        Some(Answer::Empty) | None => vec![],
    };
    Ok(if inherited.len() == 1 {
        Judgement {
            status: RecordStatus::Verified,
            reason: Some(
                "No DMARC record at this name; the organizational domain's DMARC record applies (RFC 7489 6.6.3).".into(),
            ),
            observed: inherited,
        }
    } else {
        Judgement::with(
            RecordStatus::Pending,
            "No DMARC (v=DMARC1) TXT record was found at this name yet.",
            vec![],
        )
    })
}

pub fn judge_dkim(expected_target: &str, answer: Answer<String>) -> Verdict {
    let targets = match answer {
        Answer::Found(targets) if !targets.is_empty() => targets,
        Answer::Found(_) | Answer::Empty => {
            return Ok(Judgement::with(
                RecordStatus::Pending,
                "No CNAME record was found at this name yet.",
                vec![],
            ));
        }
        Answer::Failed(e) => return Err(e),
    };
    let expected = normalize_host(expected_target);
    Ok(if targets.contains(&expected) {
        Judgement::verified(targets)
    } else {
        Judgement::with(
            RecordStatus::Failed,
            format!(
                "The CNAME points to {}; expected {expected}.",
                targets.join(", ")
            ),
            targets,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found<T>(items: Vec<T>) -> Answer<T> {
        Answer::Found(items)
    }

    #[test]
    fn spf_needs_exactly_one_record_with_the_include() {
        let ok = judge_spf(found(vec![
            "v=spf1 include:amazonses.com ~all".into(),
            "google-site-verification=x".into(),
        ]));
        assert_eq!(ok.map(|j| j.status), Ok(RecordStatus::Verified));
        let plus = judge_spf(found(vec!["V=SPF1 +include:AmazonSES.com -all".into()]));
        assert_eq!(plus.map(|j| j.status), Ok(RecordStatus::Verified));
        let missing_include = judge_spf(found(vec!["v=spf1 include:_spf.google.com ~all".into()]));
        assert_eq!(missing_include.map(|j| j.status), Ok(RecordStatus::Failed));
        let lookalike = judge_spf(found(vec![
            "v=spf1 include:amazonses.com.evil.example ~all".into(),
        ]));
        assert_eq!(lookalike.map(|j| j.status), Ok(RecordStatus::Failed));
        let two = judge_spf(found(vec![
            "v=spf1 include:amazonses.com ~all".into(),
            "v=spf1 mx -all".into(),
        ]));
        assert_eq!(two.map(|j| j.status), Ok(RecordStatus::Failed));
        let not_spf = judge_spf(found(vec!["v=spf10 include:amazonses.com".into()]));
        assert_eq!(not_spf.map(|j| j.status), Ok(RecordStatus::Pending));
    }

    #[test]
    fn failed_lookups_are_not_judged() {
        assert!(judge_spf(Answer::Failed("timeout".into())).is_err());
        assert!(judge_mx("a", Answer::Failed("timeout".into())).is_err());
        assert!(judge_dkim("a", Answer::Failed("timeout".into())).is_err());
        assert!(judge_dmarc(Answer::Empty, Some(Answer::Failed("timeout".into()))).is_err());
    }

    #[test]
    fn dmarc_accepts_any_policy_and_the_organizational_record() {
        let none = judge_dmarc(found(vec!["v=DMARC1; p=none".into()]), None);
        assert_eq!(none.map(|j| j.status), Ok(RecordStatus::Verified));
        let inherited = judge_dmarc(
            Answer::Empty,
            Some(found(vec!["v=DMARC1; p=reject;".into()])),
        );
        let inherited = inherited.expect("judged");
        assert_eq!(inherited.status, RecordStatus::Verified);
        assert!(inherited.reason.is_some());
        let two = judge_dmarc(
            found(vec!["v=DMARC1; p=none".into(), "v=DMARC1; p=reject".into()]),
            None,
        );
        assert_eq!(two.map(|j| j.status), Ok(RecordStatus::Failed));
        let missing = judge_dmarc(Answer::Empty, Some(Answer::Empty));
        assert_eq!(missing.map(|j| j.status), Ok(RecordStatus::Pending));
    }

    #[test]
    fn mx_must_be_among_the_lowest_preference() {
        let host = "inbound-smtp.us-east-2.amazonaws.com";
        let ours = judge_mx(host, found(vec![(10, host.into())]));
        assert_eq!(ours.map(|j| j.status), Ok(RecordStatus::Verified));
        let tie = judge_mx(
            host,
            found(vec![(10, host.into()), (10, "mx.other.example".into())]),
        );
        assert_eq!(tie.map(|j| j.status), Ok(RecordStatus::Verified));
        let beaten = judge_mx(
            host,
            found(vec![(10, host.into()), (5, "mx.other.example".into())]),
        );
        let beaten = beaten.expect("judged");
        assert_eq!(beaten.status, RecordStatus::Failed);
        assert!(
            beaten
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("mx.other.example"))
        );
        assert_eq!(
            beaten.observed,
            vec![
                "5 mx.other.example",
                "10 inbound-smtp.us-east-2.amazonaws.com"
            ]
        );
    }

    #[test]
    fn dkim_ignores_case_and_trailing_dot() {
        let ok = judge_dkim(
            "tok.dkim.amazonses.com",
            found(vec![normalize_host("TOK.dkim.amazonses.com.")]),
        );
        assert_eq!(ok.map(|j| j.status), Ok(RecordStatus::Verified));
        let wrong = judge_dkim(
            "tok.dkim.amazonses.com",
            found(vec!["other.dkim.amazonses.com".into()]),
        );
        assert_eq!(wrong.map(|j| j.status), Ok(RecordStatus::Failed));
    }
}
