//! Judging what DNS returned against what a record must be, with one plain
//! sentence on what is wrong and what to do. Pure functions: the lookups are done
//! by the caller.

use super::{Answer, normalize_host, spf};
use crate::model::RecordStatus;

/// The outcome of judging one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The record's new status.
    pub status: RecordStatus,
    /// One sentence on what is wrong, or a note.
    pub reason: Option<String>,
    /// What DNS returned.
    pub observed: Vec<String>,
    /// A value that would fix the record (e.g. the existing SPF record merged with ours).
    pub suggested_value: Option<String>,
}

impl Judgement {
    fn new(status: RecordStatus, reason: Option<String>, observed: Vec<String>) -> Self {
        Self {
            status,
            reason,
            observed,
            suggested_value: None,
        }
    }

    fn verified(observed: Vec<String>) -> Self {
        Self::new(RecordStatus::Verified, None, observed)
    }

    fn failed(reason: String, observed: Vec<String>) -> Self {
        Self::new(RecordStatus::Failed, Some(reason), observed)
    }

    fn missing(what: &str) -> Self {
        Self::new(
            RecordStatus::Pending,
            Some(format!(
                "No {what} record was found at this name yet; DNS changes can take up to 48 hours to propagate."
            )),
            vec![],
        )
    }

    fn suggesting(mut self, value: String) -> Self {
        self.suggested_value = Some(value);
        self
    }
}

/// A record found at `<name>.<registrable domain>` instead of at its name: what a
/// DNS provider that appends the zone to every host makes of a fully qualified one.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendedRecord {
    /// Where it was found.
    pub name: String,
    /// What was published there.
    pub observed: Vec<String>,
}

/// The record was found one level too deep: at `<fqdn>.<registrable domain>`.
fn appended_judgement(AppendedRecord { name, observed }: AppendedRecord) -> Judgement {
    Judgement::failed(
        format!(
            "The record was found at {name}: your DNS provider appended the domain to the host you entered, so enter the host without the domain (the record's \"name\")."
        ),
        observed,
    )
}

/// `Err` carries why the lookup could not be completed.
pub type Verdict = Result<Judgement, String>;

/// MX values are `"<preference> <host>"`.
pub fn judge_mx(
    expected_host: &str,
    answer: Answer<String>,
    appended: Option<AppendedRecord>,
) -> Verdict {
    let observed = match answer {
        Answer::Found(values) => values,
        Answer::Empty => {
            return Ok(appended
                .map(appended_judgement)
                .unwrap_or_else(|| Judgement::missing("MX")));
        }
        Answer::Failed(e) => return Err(e),
    };
    let mut hosts: Vec<(u16, String)> = observed
        .iter()
        .filter_map(|v| v.split_once(' '))
        .filter_map(|(p, h)| Some((p.parse().ok()?, normalize_host(h))))
        .collect();
    hosts.sort();
    let observed: Vec<String> = hosts.iter().map(|(p, h)| format!("{p} {h}")).collect();
    let expected = normalize_host(expected_host);
    let Some(lowest) = hosts.first().map(|(p, _)| *p) else {
        return Ok(Judgement::missing("MX"));
    };
    Ok(match hosts.iter().find(|(_, host)| *host == expected) {
        Some((preference, _)) if *preference == lowest => Judgement::verified(observed),
        Some((preference, _)) => {
            let others: Vec<&str> = hosts
                .iter()
                .filter(|(p, _)| *p == lowest)
                .map(|(_, h)| h.as_str())
                .collect();
            Judgement::failed(
                format!(
                    "{expected} is published with preference {preference}, but {} has a lower preference ({lowest}) and receives the mail first; remove it or give {expected} the lowest preference.",
                    others.join(", ")
                ),
                observed,
            )
        }
        None => Judgement::failed(
            format!(
                "The MX records point to {}; expected {expected}.",
                hosts
                    .iter()
                    .map(|(_, h)| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            observed,
        ),
    })
}

/// `lookups`: DNS lookups the (single, correct) record costs, when it was counted.
pub fn judge_spf(
    answer: Answer<String>,
    appended: Option<AppendedRecord>,
    lookups: Option<usize>,
) -> Verdict {
    let texts = match answer {
        Answer::Found(texts) => texts,
        Answer::Empty => vec![],
        Answer::Failed(e) => return Err(e),
    };
    let records: Vec<String> = texts.into_iter().filter(|t| spf::is_spf(t)).collect();
    Ok(match records.as_slice() {
        [] => match appended {
            Some(found) => appended_judgement(found),
            None => Judgement::missing("SPF (v=spf1) TXT"),
        },
        [record] if spf::includes_ses(record) => match lookups {
            Some(count) if count > spf::MAX_DNS_LOOKUPS => Judgement::new(
                RecordStatus::Verified,
                Some(format!(
                    "Warning: this SPF record needs {count} DNS lookups, more than the 10 receivers allow (RFC 7208 4.6.4), so SPF may fail for your mail; remove includes you no longer use."
                )),
                records,
            ),
            _ => Judgement::verified(records),
        },
        [_] => Judgement::failed(
            "The SPF record does not include amazonses.com; add include:amazonses.com to the existing record (see suggested_value) rather than publishing a second one.".into(),
            records.clone(),
        )
        .suggesting(spf::merged_with_ses(&records)),
        _ => Judgement::failed(
            format!(
                "{} SPF records were found; a name may have only one (RFC 7208 4.5), so replace them with the single merged record in suggested_value.",
                records.len()
            ),
            records.clone(),
        )
        .suggesting(spf::merged_with_ses(&records)),
    })
}

fn is_dmarc(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    lower
        .strip_prefix("v=dmarc1")
        .is_some_and(|rest| rest.trim_start().is_empty() || rest.trim_start().starts_with(';'))
}

/// `chain`: CNAMEs followed to reach `own`; `inherited`: the answer at the
/// organizational domain's `_dmarc`, for a subdomain.
pub fn judge_dmarc(
    own: Answer<String>,
    chain: &[String],
    inherited: Option<Answer<String>>,
    appended: Option<AppendedRecord>,
) -> Verdict {
    let own: Vec<String> = match own {
        Answer::Found(texts) => texts.into_iter().filter(|t| is_dmarc(t)).collect(),
        Answer::Empty => vec![],
        Answer::Failed(e) => return Err(e),
    };
    match own.len() {
        1 if chain.is_empty() => return Ok(Judgement::verified(own)),
        1 => {
            return Ok(Judgement::new(
                RecordStatus::Verified,
                Some(format!(
                    "The DMARC record is published through a CNAME to {}; that is fine.",
                    chain.join(" -> ")
                )),
                own,
            ));
        }
        0 => {}
        n => {
            return Ok(Judgement::failed(
                format!(
                    "{n} DMARC records were found; receivers ignore DMARC when there is more than one (RFC 7489 6.6.3), so keep only one."
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
        Judgement::new(
            RecordStatus::Verified,
            Some("No DMARC record at this name; the organizational domain's DMARC record applies to it (RFC 7489 6.6.3), which is accepted.".into()),
            inherited,
        )
    } else if let Some(found) = appended {
        appended_judgement(found)
    } else {
        Judgement::missing("DMARC (v=DMARC1) TXT")
    })
}

/// `chain`: the CNAME targets from the record's name, first hop first.
pub fn judge_dkim_target(expected: &str, chain: &[String]) -> Judgement {
    let expected = normalize_host(expected);
    match chain.iter().position(|target| *target == expected) {
        Some(0) => Judgement::verified(vec![expected]),
        Some(_) => Judgement::new(
            RecordStatus::Verified,
            Some(format!(
                "The CNAME reaches {expected} through a chain ({}); that works, but a direct CNAME to {expected} is more robust.",
                chain.join(" -> ")
            )),
            chain.to_vec(),
        ),
        None => Judgement::failed(
            format!(
                "The CNAME points to {}; expected {expected}.",
                chain.first().map(String::as_str).unwrap_or("nothing")
            ),
            chain.to_vec(),
        ),
    }
}

/// No CNAME at a DKIM name: addresses there mean a proxy or CNAME flattening.
pub fn judge_missing_dkim(
    expected: &str,
    addresses: Vec<String>,
    appended: Option<AppendedRecord>,
) -> Judgement {
    if !addresses.is_empty() {
        return Judgement::failed(
            format!(
                "This name answers with addresses ({}) instead of a CNAME to {}: the record is proxied or flattened by your DNS provider; turn proxying / CNAME flattening off for it (e.g. \"DNS only\" on Cloudflare).",
                addresses.join(", "),
                normalize_host(expected)
            ),
            addresses,
        );
    }
    match appended {
        Some(found) => appended_judgement(found),
        None => Judgement::missing("CNAME"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(items: &[&str]) -> Answer<String> {
        Answer::Found(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn spf_verdicts() {
        let ok = judge_spf(
            found(&[
                "v=spf1 include:amazonses.com ~all",
                "google-site-verification=x",
            ]),
            None,
            Some(1),
        );
        assert_eq!(ok.map(|j| j.status), Ok(RecordStatus::Verified));
        let heavy = judge_spf(
            found(&["v=spf1 include:amazonses.com ~all"]),
            None,
            Some(11),
        )
        .expect("judged");
        assert_eq!(heavy.status, RecordStatus::Verified);
        assert!(
            heavy
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("Warning") && r.contains("11"))
        );
        let missing_include =
            judge_spf(found(&["v=spf1 include:_spf.google.com ~all"]), None, None).expect("judged");
        assert_eq!(missing_include.status, RecordStatus::Failed);
        assert_eq!(
            missing_include.suggested_value.as_deref(),
            Some("v=spf1 include:_spf.google.com include:amazonses.com ~all")
        );
        let two = judge_spf(
            found(&["v=spf1 include:amazonses.com ~all", "v=spf1 mx -all"]),
            None,
            None,
        )
        .expect("judged");
        assert_eq!(two.status, RecordStatus::Failed);
        assert_eq!(
            two.suggested_value.as_deref(),
            Some("v=spf1 include:amazonses.com mx ~all")
        );
        let none = judge_spf(Answer::Empty, None, None).expect("judged");
        assert_eq!(none.status, RecordStatus::Pending);
        let appended = judge_spf(
            Answer::Empty,
            Some(AppendedRecord {
                name: "example.com.example.com".into(),
                observed: vec!["v=spf1".into()],
            }),
            None,
        )
        .expect("judged");
        assert_eq!(appended.status, RecordStatus::Failed);
        assert!(
            appended
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("appended"))
        );
    }

    #[test]
    fn failed_lookups_are_not_judged() {
        assert!(judge_spf(Answer::Failed("timeout".into()), None, None).is_err());
        assert!(judge_mx("a", Answer::Failed("timeout".into()), None).is_err());
        assert!(
            judge_dmarc(
                Answer::Empty,
                &[],
                Some(Answer::Failed("timeout".into())),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn dmarc_verdicts() {
        let none = judge_dmarc(found(&["v=DMARC1; p=none"]), &[], None, None);
        assert_eq!(none.map(|j| j.status), Ok(RecordStatus::Verified));
        let inherited = judge_dmarc(
            Answer::Empty,
            &[],
            Some(found(&["v=DMARC1; p=reject;"])),
            None,
        )
        .expect("judged");
        assert_eq!(inherited.status, RecordStatus::Verified);
        assert!(inherited.reason.is_some());
        let two = judge_dmarc(
            found(&["v=DMARC1; p=none", "v=DMARC1; p=reject"]),
            &[],
            None,
            None,
        );
        assert_eq!(two.map(|j| j.status), Ok(RecordStatus::Failed));
        let missing = judge_dmarc(Answer::Empty, &[], Some(Answer::Empty), None);
        assert_eq!(missing.map(|j| j.status), Ok(RecordStatus::Pending));
    }

    #[test]
    fn mx_verdicts() {
        let host = "inbound-smtp.us-east-2.amazonaws.com";
        let ours = judge_mx(
            host,
            found(&["10 inbound-smtp.us-east-2.amazonaws.com"]),
            None,
        );
        assert_eq!(ours.map(|j| j.status), Ok(RecordStatus::Verified));
        let tie = judge_mx(
            host,
            found(&[
                "10 inbound-smtp.us-east-2.amazonaws.com",
                "10 mx.other.example",
            ]),
            None,
        );
        assert_eq!(tie.map(|j| j.status), Ok(RecordStatus::Verified));
        let beaten = judge_mx(
            host,
            found(&[
                "10 inbound-smtp.us-east-2.amazonaws.com",
                "5 mx.other.example",
            ]),
            None,
        )
        .expect("judged");
        assert_eq!(beaten.status, RecordStatus::Failed);
        assert_eq!(
            beaten.observed,
            [
                "5 mx.other.example",
                "10 inbound-smtp.us-east-2.amazonaws.com"
            ]
        );
    }

    #[test]
    fn dkim_verdicts() {
        let expected = "tok.dkim.amazonses.com";
        assert_eq!(
            judge_dkim_target(expected, &["tok.dkim.amazonses.com".into()]).status,
            RecordStatus::Verified
        );
        let chained = judge_dkim_target(
            expected,
            &["alias.example.net".into(), "tok.dkim.amazonses.com".into()],
        );
        assert_eq!(chained.status, RecordStatus::Verified);
        assert!(
            chained
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("chain"))
        );
        assert_eq!(
            judge_dkim_target(expected, &["other.example".into()]).status,
            RecordStatus::Failed
        );
        let proxied = judge_missing_dkim(expected, vec!["104.16.0.1".into()], None);
        assert_eq!(proxied.status, RecordStatus::Failed);
        assert!(
            proxied
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("proxied"))
        );
        assert_eq!(
            judge_missing_dkim(expected, vec![], None).status,
            RecordStatus::Pending
        );
    }
}
