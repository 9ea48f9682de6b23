//! The custom MAIL FROM domain: `<label>.<domain>`, the envelope sender SES uses
//! instead of `amazonses.com`, so that SPF aligns with the domain for DMARC.

use serde::{Deserialize, Serialize};

use crate::domain_name::{DomainName, MAX_NAME_LENGTH};

/// The one label of a custom MAIL FROM domain, normalized (lowercase ASCII).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MailFromLabel(String);

/// Why a MAIL FROM label was refused, in the caller's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMailFromLabel(String);

impl InvalidMailFromLabel {
    /// The sentence for the caller.
    pub fn why(&self) -> &str {
        &self.0
    }
}

impl MailFromLabel {
    /// One DNS label of ASCII letters, digits and hyphens (an internationalized
    /// label in its `xn--` form, which must decode), not starting or ending with a
    /// hyphen, making a name of at most 253 characters under `domain`. Unicode is
    /// refused rather than converted: the MAIL FROM domain is an envelope address
    /// that SES and receivers take in ASCII, so the caller sees what is used.
    pub fn parse(input: &str, domain: &DomainName) -> Result<Self, InvalidMailFromLabel> {
        let trimmed = input.trim().to_lowercase();
        let shown: String = trimmed.chars().take(70).collect();
        if trimmed.is_empty() {
            return Err(InvalidMailFromLabel(
                "`mail_from_subdomain` is empty: send one label such as \"send\", or null to remove it".into(),
            ));
        }
        if trimmed.contains('.') {
            return Err(InvalidMailFromLabel(format!(
                "\"{shown}\" has more than one label: send one label such as \"send\"; the MAIL FROM domain is that label under {domain}"
            )));
        }
        let ascii = Some(trimmed.as_str())
            .filter(|label| label.is_ascii() && is_ldh_label(label))
            // An `xn--` label must be valid Punycode, which the IDNA mapping checks.
            .filter(|label| idna::domain_to_ascii(label).is_ok_and(|mapped| mapped == *label))
            .map(str::to_string)
            .ok_or_else(|| {
                InvalidMailFromLabel(format!(
                    "\"{shown}\" is not a DNS label: use 1-63 ASCII letters, digits or hyphens, not starting or ending with a hyphen (an internationalized label in its xn-- form)"
                ))
            })?;
        let full = ascii.len() + 1 + domain.as_str().len();
        if full > MAX_NAME_LENGTH {
            return Err(InvalidMailFromLabel(format!(
                "{ascii}.{domain} would be {full} characters long (at most {MAX_NAME_LENGTH})"
            )));
        }
        Ok(Self(ascii))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The MAIL FROM domain under `domain`.
    pub fn domain_under(&self, domain: &DomainName) -> String {
        format!("{}.{domain}", self.0)
    }
}

impl std::fmt::Display for MailFromLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_ldh_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The host the MAIL FROM domain's MX points to: SES's feedback endpoint in the
/// region that sends (bounces and complaints come back through it).
pub fn feedback_mx_host(sending_region: &str) -> String {
    format!("feedback-smtp.{sending_region}.amazonses.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> DomainName {
        DomainName::valid("mail.example.com")
    }

    #[test]
    fn labels_are_normalized() {
        let label = MailFromLabel::parse(" Send ", &domain()).expect("valid");
        assert_eq!(label.as_str(), "send");
        assert_eq!(label.domain_under(&domain()), "send.mail.example.com");
        let punycode = MailFromLabel::parse("XN--BCHER-KVA", &domain()).expect("valid");
        assert_eq!(punycode.as_str(), "xn--bcher-kva");
        assert_eq!(
            feedback_mx_host("eu-west-1"),
            "feedback-smtp.eu-west-1.amazonses.com"
        );
    }

    #[test]
    fn bad_labels_say_why() {
        for (input, says) in [
            ("", "empty"),
            ("a.b", "more than one label"),
            ("-send", "not a DNS label"),
            ("send-", "not a DNS label"),
            ("_send", "not a DNS label"),
            ("se nd", "not a DNS label"),
            (&"x".repeat(64), "not a DNS label"),
            ("bücher", "xn-- form"),
            ("¢£ò", "not a DNS label"),
            ("xn--zz-", "not a DNS label"),
            ("xn--a", "not a DNS label"),
        ] {
            let error = MailFromLabel::parse(input, &domain()).expect_err(input);
            assert!(error.why().contains(says), "{input}: {}", error.why());
        }
        // 250 characters: valid, but no room for "send.".
        let long_domain = DomainName::parse(&format!(
            "{}.{}.{}.{}.example.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(46)
        ))
        .expect("valid");
        let error = MailFromLabel::parse("send", &long_domain).expect_err("too long");
        assert!(error.why().contains("at most 253"), "{}", error.why());
    }
}
