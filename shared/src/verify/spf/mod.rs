//! SPF (RFC 7208) as receivers apply it to mail sent through SES: which TXT values
//! are SPF records (and which only look like one), parsing by `mail-auth`,
//! evaluation in term order, and a suggested record that passes the same rules.

pub(in crate::verify) mod check;
mod evaluate;
mod suggest;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Mechanism, Spf as SpfRecord};

use super::judge::quoted_excerpt;

pub use evaluate::{Evaluation, Outcome, Published, SpfSource, evaluate};
pub use suggest::suggested_record;

/// The RFC 7208 4.6.4 limit on terms that cause DNS lookups.
pub const MAX_DNS_LOOKUPS: usize = 10;

/// The domain whose SPF record authorizes SES's sending addresses.
pub const SES_DOMAIN: &str = "amazonses.com";

/// What one TXT value at an SPF name is, to a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtValue {
    /// Starts exactly `v=spf1` (then a space or the end): an SPF record.
    Spf(String),
    /// Meant as SPF but discarded by receivers, with why and how to fix it.
    Lookalike {
        /// One sentence: what is wrong and what to do.
        problem: String,
        /// The value as it was probably meant, when it can be recovered.
        repaired: Option<String>,
    },
    /// Anything else (site verification tokens and the like).
    Other,
}

fn starts_spf(value: &str) -> bool {
    let lower = value.get(..6).map(str::to_ascii_lowercase);
    lower.as_deref() == Some("v=spf1") && value[6..].chars().next().is_none_or(|c| c == ' ')
}

/// Classifies a TXT value (its strings already joined).
pub fn classify(value: &str) -> TxtValue {
    if starts_spf(value) {
        return TxtValue::Spf(value.to_string());
    }
    let trimmed = value.trim();
    let unquoted = trimmed.trim_matches(|c| c == '"' || c == '\'');
    if unquoted.len() < trimmed.len() && starts_spf(unquoted.trim()) {
        return TxtValue::Lookalike {
            problem: "The SPF record has quotation marks stored inside its value, so receivers do not read it as SPF; enter the value without the quotes.".into(),
            repaired: Some(unquoted.trim().to_string()),
        };
    }
    if trimmed.len() < value.len() && starts_spf(trimmed) {
        return TxtValue::Lookalike {
            problem: "The SPF record starts with a space; receivers only read a value that begins exactly with v=spf1 (RFC 7208 4.5), so remove the leading space.".into(),
            repaired: Some(trimmed.to_string()),
        };
    }
    if trimmed.to_ascii_lowercase().starts_with("v=spf1") {
        return TxtValue::Lookalike {
            problem: format!(
                "The value {} is not followed by a space after v=spf1: a zone file record typed without quotes becomes several strings joined without spaces; put the whole value in double quotes.",
                quoted_excerpt(trimmed)
            ),
            repaired: None,
        };
    }
    TxtValue::Other
}

/// Why a record does not parse: the first term receivers reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The offending term, as written.
    pub term: String,
}

/// Parses an SPF record with `mail-auth`; on a syntax error, names the first term
/// that does not parse on its own.
pub fn parse(record: &str) -> Result<SpfRecord, SyntaxError> {
    match SpfRecord::parse(record.as_bytes()) {
        Ok(parsed) => Ok(parsed),
        Err(_) => {
            let term = record
                .split_ascii_whitespace()
                .skip(1)
                .find(|term| SpfRecord::parse(format!("v=spf1 {term}").as_bytes()).is_err())
                .unwrap_or(record)
                .to_string();
            Err(SyntaxError { term })
        }
    }
}

/// The literal domain of an `include:`/`redirect=` target: lowercase, no
/// trailing dot (`amazonses.com.` is `amazonses.com`). `None` for a target built
/// from macros, which depends on the message.
pub(crate) fn literal_domain(target: &mail_auth::spf::Macro) -> Option<String> {
    match target {
        mail_auth::spf::Macro::Literal(bytes) => {
            let text = std::str::from_utf8(bytes).ok()?;
            Some(text.trim_end_matches('.').to_ascii_lowercase())
        }
        _ => None,
    }
}

/// Whether a mechanism causes a DNS lookup (RFC 7208 4.6.4).
pub(crate) fn queries_dns(mechanism: &Mechanism) -> bool {
    matches!(
        mechanism,
        Mechanism::Include { .. }
            | Mechanism::A { .. }
            | Mechanism::Mx { .. }
            | Mechanism::Ptr { .. }
            | Mechanism::Exists { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_classified_as_receivers_read_them() {
        assert!(matches!(
            classify("v=spf1 include:amazonses.com ~all"),
            TxtValue::Spf(_)
        ));
        assert!(matches!(classify("V=SPF1 -all"), TxtValue::Spf(_)));
        assert!(matches!(classify("v=spf1"), TxtValue::Spf(_)));
        assert_eq!(classify("google-site-verification=x"), TxtValue::Other);
        assert!(matches!(classify("v=spf10 a"), TxtValue::Lookalike { .. }));
        for (value, problem_names, repaired_as) in [
            (
                " v=spf1 include:amazonses.com ~all",
                "space",
                Some("v=spf1 include:amazonses.com ~all"),
            ),
            (
                "\"v=spf1 include:amazonses.com ~all\"",
                "quotation marks",
                Some("v=spf1 include:amazonses.com ~all"),
            ),
            ("v=spf1include:amazonses.com~all", "double quotes", None),
        ] {
            let TxtValue::Lookalike { problem, repaired } = classify(value) else {
                panic!("{value:?} is a lookalike");
            };
            assert!(problem.contains(problem_names), "{value:?}: {problem}");
            assert_eq!(repaired.as_deref(), repaired_as, "{value:?}");
        }
    }

    #[test]
    fn syntax_errors_name_the_term() {
        assert_eq!(
            parse("v=spf1 ip4:192.0.2 include:amazonses.com ~all").map(|_| ()),
            Err(SyntaxError {
                term: "ip4:192.0.2".into()
            })
        );
        assert!(parse("v=spf1 include:amazonses.com. ~all").is_ok());
        assert!(parse("v=spf1 ip4:192.0.2.0/24 mx a:x.example.com -all").is_ok());
    }

    #[test]
    fn include_targets_compare_without_trailing_dot_or_case() {
        let record = parse("v=spf1 include:AmazonSES.com. ~all").expect("parses");
        let Mechanism::Include { macro_string } = &record.directives[0].mechanism else {
            panic!("an include");
        };
        assert_eq!(literal_domain(macro_string).as_deref(), Some(SES_DOMAIN));
    }
}
