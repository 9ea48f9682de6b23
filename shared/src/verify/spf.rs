//! SPF (RFC 7208) helpers: recognizing the record, the include we need, merging
//! records into one, and counting DNS-lookup terms.

use crate::records::SPF_INCLUDE;

/// The RFC 7208 4.6.4 limit on terms that cause DNS lookups.
pub const MAX_DNS_LOOKUPS: usize = 10;

/// Whether a TXT value is an SPF record (`v=spf1`, then a space or the end).
pub fn is_spf(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    lower == "v=spf1" || lower.starts_with("v=spf1 ")
}

fn terms(record: &str) -> impl Iterator<Item = &str> {
    record.split_ascii_whitespace().skip(1)
}

/// `mechanism` without its qualifier (`+`, `-`, `~`, `?`).
fn unqualified(term: &str) -> &str {
    term.strip_prefix(['+', '-', '~', '?']).unwrap_or(term)
}

fn is_all(term: &str) -> bool {
    unqualified(term).eq_ignore_ascii_case("all")
}

/// Whether the record authorizes SES: `include:amazonses.com`, qualifier `+` or none.
pub fn includes_ses(record: &str) -> bool {
    terms(record).any(|term| {
        term.strip_prefix('+')
            .unwrap_or(term)
            .eq_ignore_ascii_case(SPF_INCLUDE)
    })
}

/// One record with every mechanism of `records` and `include:amazonses.com`,
/// ending with the first record's `all` (or `~all`). A `redirect=` is kept only
/// when no record has an `all` (RFC 7208 6.1: it is ignored otherwise).
pub fn merged_with_ses(records: &[String]) -> String {
    let mut merged: Vec<&str> = Vec::new();
    let mut all = None;
    let mut redirect = None;
    for term in records.iter().flat_map(|r| terms(r)) {
        if is_all(term) {
            all.get_or_insert(term);
        } else if term.to_ascii_lowercase().starts_with("redirect=") {
            redirect.get_or_insert(term);
        } else if !merged.iter().any(|t| t.eq_ignore_ascii_case(term)) {
            merged.push(term);
        }
    }
    if !merged.iter().any(|t| {
        t.strip_prefix('+')
            .unwrap_or(t)
            .eq_ignore_ascii_case(SPF_INCLUDE)
    }) {
        merged.push(SPF_INCLUDE);
    }
    let ending = match (all, redirect) {
        (Some(all), _) => all,
        (None, Some(redirect)) => redirect,
        (None, None) => "~all",
    };
    merged.push(ending);
    format!("v=spf1 {}", merged.join(" "))
}

/// A term that costs DNS lookups, and the domain whose SPF record it pulls in.
#[derive(Debug, PartialEq, Eq)]
pub enum LookupTerm {
    /// `include:` or `redirect=`: one lookup plus those of the target's record.
    Nested(String),
    /// `a`, `mx`, `ptr`, `exists`: one lookup.
    Single,
}

/// The DNS-querying terms of an SPF record (RFC 7208 4.6.4), in order.
pub fn lookup_terms(record: &str) -> Vec<LookupTerm> {
    terms(record)
        .filter_map(|term| {
            let term = unqualified(term).to_ascii_lowercase();
            if let Some(target) = term
                .strip_prefix("include:")
                .or_else(|| term.strip_prefix("redirect="))
            {
                return Some(LookupTerm::Nested(target.trim_end_matches('.').to_string()));
            }
            let name = term.split([':', '/']).next().unwrap_or("");
            matches!(name, "a" | "mx" | "ptr" | "exists").then_some(LookupTerm::Single)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_the_include_and_keeps_one_all() {
        assert_eq!(
            merged_with_ses(&["v=spf1 include:_spf.google.com ~all".into()]),
            "v=spf1 include:_spf.google.com include:amazonses.com ~all"
        );
        assert_eq!(
            merged_with_ses(&[
                "v=spf1 mx -all".into(),
                "v=spf1 include:amazonses.com ~all".into()
            ]),
            "v=spf1 mx include:amazonses.com -all"
        );
        assert_eq!(
            merged_with_ses(&["v=spf1".into()]),
            "v=spf1 include:amazonses.com ~all"
        );
        assert_eq!(
            merged_with_ses(&["v=spf1 a redirect=_spf.example.net".into()]),
            "v=spf1 a include:amazonses.com redirect=_spf.example.net"
        );
    }

    #[test]
    fn lookup_terms_are_recognized() {
        let terms = lookup_terms(
            "v=spf1 ip4:192.0.2.0/24 a mx:mail.example.com/24 -ptr exists:%{i}.x include:_spf.google.com ~all redirect=spf.example.net",
        );
        assert_eq!(
            terms,
            [
                LookupTerm::Single,
                LookupTerm::Single,
                LookupTerm::Single,
                LookupTerm::Single,
                LookupTerm::Nested("_spf.google.com".into()),
                LookupTerm::Nested("spf.example.net".into()),
            ]
        );
        assert!(lookup_terms("v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all").is_empty());
    }

    #[test]
    fn includes_ses_only_for_the_exact_mechanism() {
        assert!(includes_ses("v=spf1 include:amazonses.com ~all"));
        assert!(includes_ses("v=spf1 +include:AmazonSES.com -all"));
        assert!(!includes_ses("v=spf1 -include:amazonses.com ~all"));
        assert!(!includes_ses(
            "v=spf1 include:amazonses.com.evil.example ~all"
        ));
        assert!(!is_spf("v=spf10 include:amazonses.com"));
    }
}
