//! The record to publish instead: the existing terms in their order, with
//! `include:amazonses.com` (no qualifier) before the `all` that ends it.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Mechanism, Spf as SpfRecord};

use super::{SES_DOMAIN, literal_domain};
use crate::records::SPF_INCLUDE;

enum Term {
    All,
    PassAll,
    SesInclude,
    Redirect,
    Other,
}

fn term_kind(term: &str) -> Term {
    let Ok(parsed) = SpfRecord::parse(format!("v=spf1 {term}").as_bytes()) else {
        return Term::Other;
    };
    if parsed.redirect.is_some() {
        return Term::Redirect;
    }
    match parsed
        .directives
        .first()
        .map(|d| (&d.qualifier, &d.mechanism))
    {
        Some((mail_auth::spf::Qualifier::Pass, Mechanism::All)) => Term::PassAll,
        Some((_, Mechanism::All)) => Term::All,
        Some((_, Mechanism::Include { macro_string }))
            if literal_domain(macro_string).as_deref() == Some(SES_DOMAIN) =>
        {
            Term::SesInclude
        }
        _ => Term::Other,
    }
}

/// One record from `records` (all SPF records at the name) that authorizes SES:
/// every other term once, in order; any `amazonses.com` include (whatever its
/// qualifier) replaced by `include:amazonses.com` placed before the first `all`
/// (or first of all when `ses_first`, for a record whose earlier terms use up the
/// DNS lookups); one `all`, `~all` when none (or `+all`) was there; `redirect=`
/// kept only without an `all` (RFC 7208 6.1 ignores it otherwise).
pub fn suggested_record(records: &[String], ses_first: bool) -> String {
    let mut kept: Vec<String> = Vec::new();
    let mut all: Option<(usize, String)> = None;
    let mut redirect: Option<String> = None;
    for term in records
        .iter()
        .flat_map(|r| r.split_ascii_whitespace().skip(1))
    {
        match term_kind(term) {
            Term::SesInclude => {}
            Term::All | Term::PassAll if all.is_some() => {}
            Term::All => all = Some((kept.len(), term.to_string())),
            Term::PassAll => all = Some((kept.len(), "~all".to_string())),
            Term::Redirect => {
                redirect.get_or_insert_with(|| term.to_string());
            }
            Term::Other => {
                if !kept.iter().any(|k| k.eq_ignore_ascii_case(term)) {
                    kept.push(term.to_string());
                }
            }
        }
    }
    let (all_at, ending) = match (all, redirect) {
        (Some((at, all)), _) => (at, all),
        (None, Some(redirect)) => (kept.len(), redirect),
        (None, None) => (kept.len(), "~all".to_string()),
    };
    let ses_at = if ses_first { 0 } else { all_at };
    let mut terms: Vec<&str> = Vec::with_capacity(kept.len() + 2);
    for (index, term) in kept.iter().enumerate() {
        if index == ses_at {
            terms.push(SPF_INCLUDE);
        }
        if index == all_at {
            terms.push(&ending);
        }
        terms.push(term);
    }
    if ses_at == kept.len() {
        terms.push(SPF_INCLUDE);
    }
    if all_at == kept.len() {
        terms.push(&ending);
    }
    format!("v=spf1 {}", terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggest(records: &[&str]) -> String {
        let records: Vec<String> = records.iter().map(|r| r.to_string()).collect();
        suggested_record(&records, false)
    }

    #[test]
    fn the_include_goes_before_the_all_and_other_terms_keep_their_order() {
        let cases: [(&[&str], &str); 8] = [
            (
                &["v=spf1 include:_spf.google.com ~all"],
                "v=spf1 include:_spf.google.com include:amazonses.com ~all",
            ),
            (
                &["v=spf1 ~all include:amazonses.com"],
                "v=spf1 include:amazonses.com ~all",
            ),
            (
                &["v=spf1 ?include:amazonses.com ~all"],
                "v=spf1 include:amazonses.com ~all",
            ),
            (
                &["v=spf1 mx -all", "v=spf1 include:amazonses.com ~all"],
                "v=spf1 mx include:amazonses.com -all",
            ),
            (&["v=spf1"], "v=spf1 include:amazonses.com ~all"),
            (
                &["v=spf1 a redirect=_spf.example.net"],
                "v=spf1 a include:amazonses.com redirect=_spf.example.net",
            ),
            (&["v=spf1 +all"], "v=spf1 include:amazonses.com ~all"),
            (
                &["v=spf1 a -all mx"],
                "v=spf1 a include:amazonses.com -all mx",
            ),
        ];
        for (records, expected) in cases {
            assert_eq!(suggest(records), expected, "{records:?}");
        }
    }

    #[test]
    fn ses_first_when_asked() {
        assert_eq!(
            suggested_record(&["v=spf1 a mx ~all".to_string()], true),
            "v=spf1 include:amazonses.com a mx ~all"
        );
    }
}
