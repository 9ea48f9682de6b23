//! Judging what DNS returned against what a record must be, with one plain
//! sentence on what is wrong and what to do. Pure functions: the lookups are done
//! by the caller.

use super::{Answer, normalize_host};
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
    pub(super) fn new(status: RecordStatus, reason: Option<String>, observed: Vec<String>) -> Self {
        Self {
            status,
            reason,
            observed,
            suggested_value: None,
        }
    }

    pub(super) fn verified(observed: Vec<String>) -> Self {
        Self::new(RecordStatus::Verified, None, observed)
    }

    pub(super) fn failed(reason: String, observed: Vec<String>) -> Self {
        Self::new(RecordStatus::Failed, Some(reason), observed)
    }

    pub(super) fn missing(what: &str) -> Self {
        Self::new(
            RecordStatus::Pending,
            Some(format!(
                "No {what} record was found at this name yet; DNS changes can take up to 48 hours to propagate."
            )),
            vec![],
        )
    }
}

#[cfg(test)]
impl Judgement {
    /// Asserts this status, with a reason that mentions `words`.
    #[track_caller]
    pub(super) fn assert_judged(&self, status: RecordStatus, words: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.reason.as_deref().is_some_and(|r| r.contains(words)),
            "no {words:?} in the reason: {self:?}"
        );
    }
}

/// A record found at `<name>.<registrable domain>` instead of at its name: what a
/// DNS provider that appends the zone to every host makes of a fully qualified one.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendedRecord {
    /// Where it was found.
    pub name: String,
    /// The host to enter in the provider's form: the record's name relative to
    /// the zone (`@` for the zone itself).
    pub host_to_enter: String,
    /// What was published there.
    pub observed: Vec<String>,
}

/// The record was found one level too deep: at `<fqdn>.<registrable domain>`.
pub(super) fn appended_judgement(found: AppendedRecord) -> Judgement {
    let AppendedRecord {
        name,
        host_to_enter,
        observed,
    } = found;
    let enter = if host_to_enter == "@" {
        "@ (or leave the host empty)".to_string()
    } else {
        host_to_enter
    };
    Judgement::failed(
        format!(
            "The record was found at {name}: your DNS provider adds the domain to the host you enter, so enter only {enter} as the host."
        ),
        observed,
    )
}

/// A published value as a reason quotes it: in double quotes, cut after 60
/// characters (a reason stays one short sentence).
pub(super) fn quoted_excerpt(value: &str) -> String {
    let short: String = value.chars().take(60).collect();
    if short.len() < value.len() {
        format!("\"{short}...\"")
    } else {
        format!("\"{short}\"")
    }
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
    let observed: Vec<String> = hosts
        .iter()
        .map(|(p, h)| format!("{p} {}", if h.is_empty() { "." } else { h }))
        .collect();
    let expected = normalize_host(expected_host);
    let Some(lowest) = hosts.first().map(|(p, _)| *p) else {
        return Ok(Judgement::missing("MX"));
    };
    // RFC 7505: an MX of "." says the domain accepts no mail at all.
    if hosts.iter().any(|(_, host)| host.is_empty()) {
        return Ok(Judgement::failed(
            format!(
                "The domain publishes a null MX (0 ., RFC 7505), which tells senders it accepts no mail; remove it and publish the MX record for {expected}."
            ),
            observed,
        ));
    }
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

/// The sentence for a name answered by a wildcard record (`*.<zone>`), not by a
/// record of its own.
fn wildcard_reason(what: &str, expected: &str) -> String {
    format!(
        "Nothing is published at this name yet; a wildcard record (*) in the zone answers it with {what}. Publish the CNAME to {expected} at this exact name (a record of its own takes precedence over the wildcard); DNS changes can take up to 48 hours to propagate."
    )
}

/// `chain`: the CNAME targets from the record's name, first hop first;
/// `wildcard`: a random sibling name gets the same first target.
pub fn judge_dkim_target(expected: &str, chain: &[String], wildcard: bool) -> Judgement {
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
        None if wildcard => Judgement::new(
            RecordStatus::Pending,
            Some(wildcard_reason(
                &format!(
                    "a CNAME to {}",
                    chain.first().map(String::as_str).unwrap_or("")
                ),
                &expected,
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

/// What answers at a DKIM name that has no CNAME.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InsteadOfCname {
    /// A and AAAA records.
    pub addresses: Vec<String>,
    /// Whether a random sibling name answers with the same addresses (a wildcard).
    pub wildcard: bool,
    /// TXT records (a DKIM key published where SES's CNAME belongs).
    pub txt: Vec<String>,
}

/// No CNAME at a DKIM name: a TXT key, addresses (a proxy, CNAME flattening or a
/// wildcard), the record one level too deep, or nothing yet.
pub fn judge_missing_dkim(
    expected: &str,
    found: InsteadOfCname,
    appended: Option<AppendedRecord>,
) -> Judgement {
    let expected = normalize_host(expected);
    if !found.txt.is_empty() {
        return Judgement::failed(
            format!(
                "A TXT record (a DKIM key) stands where the CNAME belongs; SES signs with keys it rotates itself, so delete the TXT record and publish a CNAME to {expected}."
            ),
            found.txt,
        );
    }
    if !found.addresses.is_empty() && found.wildcard {
        return Judgement::new(
            RecordStatus::Pending,
            Some(wildcard_reason(
                &format!("addresses ({})", found.addresses.join(", ")),
                &expected,
            )),
            found.addresses,
        );
    }
    if !found.addresses.is_empty() {
        return Judgement::failed(
            format!(
                "This name answers with addresses ({}) instead of a CNAME to {expected}: the record is proxied or flattened by your DNS provider; turn proxying / CNAME flattening off for it (e.g. \"DNS only\" on Cloudflare).",
                found.addresses.join(", "),
            ),
            found.addresses,
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

    /// Judges MX values published for SES's inbound host.
    fn ses_mx(values: &[&str]) -> Verdict {
        judge_mx("inbound-smtp.us-east-2.amazonaws.com", found(values), None)
    }

    #[test]
    fn mx_verdicts() {
        let ours = ses_mx(&["10 inbound-smtp.us-east-2.amazonaws.com"]);
        assert_eq!(ours.map(|j| j.status), Ok(RecordStatus::Verified));
        let tie = ses_mx(&[
            "10 inbound-smtp.us-east-2.amazonaws.com",
            "10 mx.other.example",
        ]);
        assert_eq!(tie.map(|j| j.status), Ok(RecordStatus::Verified));
        let beaten = ses_mx(&[
            "10 inbound-smtp.us-east-2.amazonaws.com",
            "5 mx.other.example",
        ])
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
    fn a_null_mx_is_named_and_a_failed_lookup_is_not_judged() {
        let null = ses_mx(&["0 "]).expect("judged");
        null.assert_judged(RecordStatus::Failed, "null MX");
        assert_eq!(null.observed, ["0 ."]);
        assert!(judge_mx("a", Answer::Failed("timeout".into()), None).is_err());
    }

    #[test]
    fn the_appended_reason_names_the_host_to_enter() {
        let judged = appended_judgement(AppendedRecord {
            name: "tok._domainkey.example.com.example.com".into(),
            host_to_enter: "tok._domainkey".into(),
            observed: vec!["tok.dkim.amazonses.com".into()],
        });
        judged.assert_judged(
            RecordStatus::Failed,
            "enter only tok._domainkey as the host",
        );
    }

    #[test]
    fn dkim_verdicts() {
        let expected = "tok.dkim.amazonses.com";
        assert_eq!(
            judge_dkim_target(expected, &["tok.dkim.amazonses.com".into()], false).status,
            RecordStatus::Verified
        );
        let chained = judge_dkim_target(
            expected,
            &["alias.example.net".into(), "tok.dkim.amazonses.com".into()],
            false,
        );
        chained.assert_judged(RecordStatus::Verified, "chain");
        assert_eq!(
            judge_dkim_target(expected, &["other.example".into()], false).status,
            RecordStatus::Failed
        );
        assert_eq!(
            judge_dkim_target(expected, &["other.example".into()], true).status,
            RecordStatus::Pending
        );
        let addresses = InsteadOfCname {
            addresses: vec!["104.16.0.1".into()],
            ..InsteadOfCname::default()
        };
        let proxied = judge_missing_dkim(expected, addresses.clone(), None);
        proxied.assert_judged(RecordStatus::Failed, "proxied");
        let wildcard = judge_missing_dkim(
            expected,
            InsteadOfCname {
                wildcard: true,
                ..addresses
            },
            None,
        );
        wildcard.assert_judged(RecordStatus::Pending, "wildcard");
        let key = judge_missing_dkim(
            expected,
            InsteadOfCname {
                txt: vec!["v=DKIM1; p=MIGf".into()],
                ..InsteadOfCname::default()
            },
            None,
        );
        key.assert_judged(RecordStatus::Failed, "TXT");
        assert_eq!(
            judge_missing_dkim(expected, InsteadOfCname::default(), None).status,
            RecordStatus::Pending
        );
    }
}
