//! DMARC records as receivers read them (RFC 7489 6.6.3): parsed by `mail-auth`,
//! one valid record per name, a policy (or a valid `rua`, read as `p=none`).

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Dmarc as DmarcRecord, Policy};
use mail_auth::{DnsError, Error};

use super::judge::{AppendedRecord, Judgement, Verdict, appended_judgement, quoted_excerpt};
use super::{Answer, normalize_host};
use crate::model::RecordStatus;

/// What one TXT value at a `_dmarc` name is, to a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmarcValue {
    /// A DMARC record receivers apply; the note says how they read it, if needed.
    Valid(Option<String>),
    /// A DMARC record receivers discard, with why and what to do.
    Invalid(String),
    /// Not a DMARC record at all.
    Other,
}

/// Classifies a TXT value (its strings already joined).
pub fn classify(value: &str) -> DmarcValue {
    match DmarcRecord::parse(value.as_bytes()) {
        Ok(record) if record.p != Policy::Unspecified => DmarcValue::Valid(None),
        Ok(record) if !record.rua.is_empty() => DmarcValue::Valid(Some(
            "The DMARC record has no p= tag but a valid rua=, so receivers apply it as p=none (RFC 7489 6.6.3); add p=quarantine or p=reject to protect the domain.".into(),
        )),
        Ok(_) if value.trim().eq_ignore_ascii_case("v=DMARC1") => DmarcValue::Invalid(
            "The DMARC record is only v=DMARC1, with no policy, so receivers apply no DMARC (RFC 7489 6.6.3); a zone file record typed without quotes loses everything after the first ; so put the whole value in double quotes: \"v=DMARC1; p=reject;\".".into(),
        ),
        Ok(_) => DmarcValue::Invalid(
            "The DMARC record has no p= policy and no valid rua=, so receivers apply no DMARC (RFC 7489 6.6.3); add p=reject (or p=none while you watch reports).".into(),
        ),
        Err(Error::Dns(DnsError::InvalidRecordType)) => lookalike(value),
        Err(_) => DmarcValue::Invalid(format!(
            "The DMARC record {} has a syntax error, so receivers discard it; tags are separated by semicolons, e.g. \"v=DMARC1; p=reject;\".",
            quoted_excerpt(value)
        )),
    }
}

fn lookalike(value: &str) -> DmarcValue {
    let trimmed = value.trim();
    let unquoted = trimmed.trim_matches(|c| c == '"' || c == '\'').trim();
    if !unquoted.to_ascii_lowercase().starts_with("v=dmarc1") {
        return out_of_order(unquoted);
    }
    DmarcValue::Invalid(if unquoted.len() < trimmed.len() {
        "The DMARC record has quotation marks stored inside its value, so receivers do not read it; enter the value without the quotes.".into()
    } else {
        format!(
            "The value {} is not a valid DMARC record (v=DMARC1 must be followed by a semicolon and the tags), so receivers ignore it; publish e.g. \"v=DMARC1; p=reject;\".",
            quoted_excerpt(value)
        )
    })
}

/// A tag list holding `v=DMARC1` anywhere but first: meant as DMARC, discarded
/// by receivers (the version tag must come first, RFC 7489 6.4).
fn out_of_order(value: &str) -> DmarcValue {
    let is_version = |tag: &str| {
        tag.split_once('=').is_some_and(|(name, version)| {
            name.trim().eq_ignore_ascii_case("v") && version.trim().eq_ignore_ascii_case("DMARC1")
        })
    };
    if value.split(';').skip(1).any(is_version) {
        DmarcValue::Invalid(format!(
            "The DMARC record {} does not start with v=DMARC1, so receivers discard it (the version tag must come first, RFC 7489 6.4); publish e.g. \"v=DMARC1; p=reject;\".",
            quoted_excerpt(value)
        ))
    } else {
        DmarcValue::Other
    }
}

/// What receivers make of the TXT values at one `_dmarc` name.
enum Applied {
    /// No DMARC record there.
    Nothing,
    /// One record, which receivers apply; the note says how they read it, if needed.
    Valid(Option<String>),
    /// One record, which receivers discard: why and what to do.
    Invalid(String),
    /// This many records: receivers apply none.
    Several(usize),
}

/// What receivers make of the answer at a `_dmarc` name, and the values there
/// meant as DMARC (as observed); `Err` carries why the lookup failed.
fn applied(answer: Answer<String>) -> Result<(Applied, Vec<String>), String> {
    let texts = match answer {
        Answer::Found(texts) => texts,
        Answer::Empty => vec![],
        Answer::Failed(e) => return Err(e),
    };
    let (meant, observed): (Vec<DmarcValue>, Vec<String>) = texts
        .into_iter()
        .map(|t| (classify(&t), t))
        .filter(|(kind, _)| *kind != DmarcValue::Other)
        .unzip();
    let applied = match meant.as_slice() {
        [] => Applied::Nothing,
        [DmarcValue::Valid(note)] => Applied::Valid(note.clone()),
        [DmarcValue::Invalid(reason)] => Applied::Invalid(reason.clone()),
        several => Applied::Several(several.len()),
    };
    Ok((applied, observed))
}

/// What was found at the places a DMARC record is looked for.
pub struct DmarcFindings {
    /// At `_dmarc.<name>` (CNAMEs followed).
    pub own: Answer<String>,
    /// The CNAMEs followed to reach `own`.
    pub chain: Vec<String>,
    /// At the organizational domain's `_dmarc` (named), for a subdomain.
    pub inherited: Option<(String, Answer<String>)>,
    /// TXT values at the domain itself (looked at when `_dmarc` has nothing).
    pub at_domain: Option<(String, Vec<String>)>,
    /// A record one level too deep (the zone appended by the DNS provider).
    pub appended: Option<AppendedRecord>,
}

/// Judges the DMARC record from what was found.
pub fn judge_dmarc(findings: DmarcFindings) -> Verdict {
    let (own, observed) = applied(findings.own)?;
    let chain = &findings.chain;
    match own {
        Applied::Valid(note) => {
            let reason = match (note, chain.is_empty()) {
                (Some(note), _) => Some(note),
                (None, true) => None,
                (None, false) => Some(format!(
                    "The DMARC record is published through a CNAME to {}; that is fine.",
                    chain.join(" -> ")
                )),
            };
            return Ok(Judgement::new(RecordStatus::Verified, reason, observed));
        }
        Applied::Invalid(reason) => return Ok(Judgement::failed(reason, observed)),
        Applied::Nothing => {}
        Applied::Several(count) => {
            return Ok(Judgement::failed(
                format!(
                    "{count} DMARC records were found; receivers apply none when there is more than one (RFC 7489 6.6.3), so keep only one."
                ),
                observed,
            ));
        }
    }
    if let Some((name, answer)) = findings.inherited {
        let (inherited, observed) = applied(answer)?;
        match inherited {
            Applied::Valid(_) => {
                return Ok(Judgement::new(
                    RecordStatus::Verified,
                    Some("No DMARC record at this name; the organizational domain's DMARC record applies to it (RFC 7489 6.6.3), which is accepted.".into()),
                    observed,
                ));
            }
            // Receivers fall back to the organizational domain's record and find
            // it broken: no DMARC applies, as if the domain's own were broken.
            Applied::Invalid(reason) => {
                return Ok(Judgement::failed(
                    format!(
                        "No DMARC record at this name, and the organizational domain's at {name}, which receivers use instead, is broken: {reason}"
                    ),
                    observed,
                ));
            }
            Applied::Nothing => {}
            Applied::Several(count) => {
                return Ok(Judgement::failed(
                    format!(
                        "No DMARC record at this name, and {count} DMARC records are at {name}, which receivers use instead; they apply none when there is more than one (RFC 7489 6.6.3), so publish one here or keep only one there."
                    ),
                    observed,
                ));
            }
        }
    }
    if let Some((domain, texts)) = findings.at_domain {
        let misplaced: Vec<String> = texts
            .into_iter()
            .filter(|t| classify(t) != DmarcValue::Other)
            .collect();
        if !misplaced.is_empty() {
            return Ok(Judgement::failed(
                format!(
                    "A DMARC record is published at {domain} itself; receivers read DMARC only from _dmarc.{domain}, so move it there."
                ),
                misplaced,
            ));
        }
    }
    Ok(match findings.appended {
        Some(found) => appended_judgement(found),
        None => Judgement::missing("DMARC (v=DMARC1) TXT"),
    })
}

/// The name a DMARC record for `fqdn` (`_dmarc.<domain>`) belongs to.
pub fn dmarc_domain(fqdn: &str) -> String {
    normalize_host(fqdn.strip_prefix("_dmarc.").unwrap_or(fqdn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(own: Answer<String>) -> DmarcFindings {
        DmarcFindings {
            own,
            chain: vec![],
            inherited: None,
            at_domain: None,
            appended: None,
        }
    }

    fn found(items: &[&str]) -> Answer<String> {
        Answer::Found(items.iter().map(|s| s.to_string()).collect())
    }

    fn judged(own: Answer<String>) -> Judgement {
        judge_dmarc(findings(own)).expect("judged")
    }

    #[test]
    fn values_are_read_as_receivers_read_them() {
        assert_eq!(classify("v=DMARC1; p=reject;"), DmarcValue::Valid(None));
        assert_eq!(
            classify("v=DMARC1; p=none; rua=mailto:d@example.com"),
            DmarcValue::Valid(None)
        );
        assert!(matches!(
            classify("v=DMARC1; rua=mailto:d@example.com"),
            DmarcValue::Valid(Some(_))
        ));
        assert!(
            matches!(classify("v=DMARC1"), DmarcValue::Invalid(r) if r.contains("double quotes"))
        );
        assert!(
            matches!(classify("v=DMARC1; p=maybe"), DmarcValue::Invalid(r) if r.contains("syntax"))
        );
        assert!(
            matches!(classify("\"v=DMARC1; p=reject;\""), DmarcValue::Invalid(r) if r.contains("quotation"))
        );
        assert_eq!(classify("google-site-verification=x"), DmarcValue::Other);
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            judged(found(&["v=DMARC1; p=none"])).status,
            RecordStatus::Verified
        );
        assert_eq!(judged(found(&["v=DMARC1"])).status, RecordStatus::Failed);
        assert_eq!(
            judged(found(&["v=DMARC1; p=none", "v=DMARC1; p=reject"])).status,
            RecordStatus::Failed
        );
        assert_eq!(judged(Answer::Empty).status, RecordStatus::Pending);
        let inherited = judge_dmarc(DmarcFindings {
            inherited: Some(("_dmarc.example.com".into(), found(&["v=DMARC1; p=reject;"]))),
            ..findings(Answer::Empty)
        })
        .expect("judged");
        assert_eq!(inherited.status, RecordStatus::Verified);
        assert!(inherited.reason.is_some());
        let at_apex = judge_dmarc(DmarcFindings {
            at_domain: Some(("example.com".into(), vec!["v=DMARC1; p=reject;".into()])),
            ..findings(Answer::Empty)
        })
        .expect("judged");
        at_apex.assert_judged(RecordStatus::Failed, "_dmarc.example.com");
        assert!(
            judge_dmarc(DmarcFindings {
                inherited: Some((
                    "_dmarc.example.com".into(),
                    Answer::Failed("timeout".into())
                )),
                ..findings(Answer::Empty)
            })
            .is_err()
        );
    }

    #[test]
    fn a_record_whose_version_tag_is_not_first_is_broken_here_and_at_the_organizational_domain() {
        for misordered in ["p=reject; v=DMARC1", "p=reject; v = dmarc1;"] {
            assert!(
                matches!(classify(misordered), DmarcValue::Invalid(r) if r.contains("does not start with v=DMARC1")),
                "{misordered}"
            );
            assert_eq!(judged(found(&[misordered])).status, RecordStatus::Failed);
        }
        assert_eq!(classify("p=reject; v=spf1"), DmarcValue::Other);
        let broken_parent = |texts: &[&str]| {
            judge_dmarc(DmarcFindings {
                inherited: Some(("_dmarc.example.com".into(), found(texts))),
                ..findings(Answer::Empty)
            })
            .expect("judged")
        };
        for texts in [
            &["p=reject; v=DMARC1"][..],
            &["v=DMARC1"],
            &["v=DMARC1; p=none", "v=DMARC1; p=reject"],
        ] {
            let judged = broken_parent(texts);
            judged.assert_judged(RecordStatus::Failed, "_dmarc.example.com");
            assert!(!judged.observed.is_empty(), "{texts:?}");
        }
        // Not DMARC at all there: nothing found, as before.
        assert_eq!(
            broken_parent(&["google-site-verification=x"]).status,
            RecordStatus::Pending
        );
    }
}
