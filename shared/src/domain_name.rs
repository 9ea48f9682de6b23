//! Domain names as the API accepts them: parsed once, valid ever after.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest domain name DNS allows, in characters (RFC 1035).
pub const MAX_NAME_LENGTH: usize = 253;
const MAX_LABEL_LENGTH: usize = 63;
/// Labels a name may have below its registrable domain: every parent of a new
/// name is checked in the same DynamoDB transaction as its claim (at most 100
/// items in all), so no other organization can hold one meanwhile.
pub const MAX_DEPTH_BELOW_REGISTRABLE: usize = 90;

/// A normalized (lowercase ASCII, no trailing dot) domain name that can own mail:
/// at least two labels, not an IP address and not itself a public suffix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName {
    ascii: String,
    /// Byte offset in `ascii` where the registrable domain (zone apex by the Public
    /// Suffix List) starts; 0 when the name is its own registrable domain.
    apex_start: usize,
}

/// Why a name is refused, in the caller's terms (it goes into the error's
/// `detail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid domain name: {0}")]
pub struct InvalidDomainName(String);

impl InvalidDomainName {
    fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }

    /// One sentence on what is wrong with the name.
    pub fn why(&self) -> &str {
        &self.0
    }
}

/// The input as quoted in an explanation: at most 80 characters.
fn quoted(input: &str) -> String {
    let mut shown: String = input.chars().take(80).collect();
    if input.chars().count() > 80 {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Explains a name whose labels break the rules, recognizing what callers most
/// often send instead of a domain.
fn bad_labels(input: &str) -> InvalidDomainName {
    let trimmed = input.trim();
    if trimmed.contains("://") || trimmed.contains('/') {
        InvalidDomainName::new(format!(
            "{} looks like a URL: send the host name alone, e.g. example.com",
            quoted(trimmed)
        ))
    } else if trimmed.contains('@') {
        InvalidDomainName::new(format!(
            "{} looks like an e-mail address: send the domain after the @",
            quoted(trimmed)
        ))
    } else {
        InvalidDomainName::new(format!(
            "{}: each label must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen",
            quoted(trimmed)
        ))
    }
}

impl DomainName {
    /// Trims, lowercases, drops one trailing dot and maps Unicode to ASCII (UTS-46),
    /// then applies the label, length, IP and public-suffix rules of the contract.
    pub fn parse(input: &str) -> Result<Self, InvalidDomainName> {
        let trimmed = input.trim();
        let without_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if without_dot.is_empty() {
            return Err(InvalidDomainName::new("the name is empty"));
        }
        // UTS-46 also lowercases; ASCII input is lowercased first so the checks below
        // see what is stored even if the IDNA mapping ever passes ASCII through.
        let ascii = idna::domain_to_ascii(&without_dot.to_lowercase())
            .map_err(|_| bad_labels(input))?
            .to_ascii_lowercase();

        if ascii.len() > MAX_NAME_LENGTH {
            return Err(InvalidDomainName::new(format!(
                "the name is {} characters long (at most {MAX_NAME_LENGTH})",
                ascii.len()
            )));
        }
        if ascii.parse::<IpAddr>().is_ok() {
            return Err(InvalidDomainName::new(format!(
                "{ascii} is an IP address: send a domain name"
            )));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(InvalidDomainName::new(format!(
                "{} has one label: send a name such as example.com",
                quoted(&ascii)
            )));
        }
        if !labels.iter().all(|label| is_valid_label(label)) {
            return Err(bad_labels(input));
        }
        // Every top-level domain starts with a letter (an all-numeric one is
        // never a TLD, RFC 3696 2, and makes dotted numbers such as 999.1 look
        // like names); openapi.yaml's pattern says the same.
        if !labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_alphabetic()))
        {
            return Err(InvalidDomainName::new(format!(
                "{ascii}: the last label must start with a letter, as every top-level domain does"
            )));
        }
        let apex = psl::domain_str(&ascii).ok_or_else(|| {
            InvalidDomainName::new(format!(
                "{ascii} is a public suffix: register a name under it, such as example.{ascii}"
            ))
        })?;
        let apex_start = ascii.len() - apex.len();
        let depth = ascii[..apex_start].matches('.').count();
        if depth > MAX_DEPTH_BELOW_REGISTRABLE {
            return Err(InvalidDomainName::new(format!(
                "{} has {depth} labels below its registrable domain {apex} (at most {MAX_DEPTH_BELOW_REGISTRABLE})",
                quoted(&ascii)
            )));
        }
        Ok(Self { ascii, apex_start })
    }

    /// The normalized ASCII name.
    pub fn as_str(&self) -> &str {
        &self.ascii
    }

    /// The registrable domain (organizational domain), e.g. `company.co.uk` for
    /// `mail.company.co.uk`.
    pub fn registrable_domain(&self) -> &str {
        &self.ascii[self.apex_start..]
    }

    /// Whether the name is its own registrable domain (a zone apex).
    pub fn is_registrable_domain(&self) -> bool {
        self.apex_start == 0
    }

    /// The labels left of the registrable domain (`mail` for `mail.company.co.uk`),
    /// or `None` at the apex. This is the "host" a DNS provider's form asks for.
    pub fn subdomain_prefix(&self) -> Option<&str> {
        (self.apex_start > 0).then(|| &self.ascii[..self.apex_start - 1])
    }

    /// The name relative to the zone apex, with `@` for the apex itself.
    pub fn relative_name(&self) -> &str {
        self.subdomain_prefix().unwrap_or("@")
    }

    /// The names above this one up to its registrable domain, nearest first
    /// (`b.example.com`, `example.com` for `a.b.example.com`; none at the apex).
    pub fn parents(&self) -> Vec<DomainName> {
        let mut parents = Vec::new();
        let mut start = 0;
        while start < self.apex_start {
            let Some(dot) = self.ascii[start..].find('.') else {
                break;
            };
            start += dot + 1;
            parents.push(Self {
                ascii: self.ascii[start..].to_string(),
                apex_start: self.apex_start - start,
            });
        }
        parents
    }
}

fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LENGTH
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ascii)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.ascii
    }
}

impl Serialize for DomainName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.ascii)
    }
}

impl DomainName {
    /// A name read back from storage. It was valid when stored, but the Public
    /// Suffix List and IDNA tables change: a name is never refused here for
    /// today's rules (it must stay readable, listable and deletable), only for not
    /// being a lowercase ASCII name at all.
    pub fn from_stored(raw: &str) -> Result<Self, InvalidDomainName> {
        if let Ok(name) = Self::parse(raw) {
            return Ok(name);
        }
        let plausible = !raw.is_empty()
            && raw.len() <= MAX_NAME_LENGTH
            && raw.contains('.')
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !plausible {
            return Err(InvalidDomainName::new("not a stored domain name"));
        }
        // Now a public suffix itself (or unknown): the name is its own apex.
        let apex_start = psl::domain_str(raw).map_or(0, |apex| raw.len() - apex.len());
        Ok(Self {
            ascii: raw.to_string(),
            apex_start,
        })
    }
}

impl DomainName {
    /// A name to find a stored domain by: normalized as `parse` does, but not
    /// judged again by today's Public Suffix List, so a domain stored before its
    /// name became a public suffix can still be read, verified and deleted. Only a
    /// lookup key: a name nobody stored is simply not found.
    pub fn for_lookup(input: &str) -> Result<Self, InvalidDomainName> {
        if let Ok(name) = Self::parse(input) {
            return Ok(name);
        }
        let trimmed = input.trim();
        let without_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
        let ascii = idna::domain_to_ascii(&without_dot.to_lowercase())
            .map_err(|_| bad_labels(input))?
            .to_ascii_lowercase();
        Self::from_stored(&ascii)
    }
}

/// Deserializing reads stored data (`from_stored`); input from callers goes
/// through `DomainName::parse`.
impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::from_stored(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
impl DomainName {
    /// A name a test knows to be valid.
    pub(crate) fn valid(name: &str) -> Self {
        Self::parse(name).expect("a valid test name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_go_up_to_the_registrable_domain() {
        let name = parse("a.b.mail.company.co.uk").expect("valid");
        let parents: Vec<String> = name.parents().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            parents,
            [
                "b.mail.company.co.uk",
                "mail.company.co.uk",
                "company.co.uk"
            ]
        );
        assert!(
            name.parents()
                .iter()
                .all(|p| p.registrable_domain() == "company.co.uk")
        );
        assert!(parse("company.co.uk").expect("valid").parents().is_empty());
    }

    #[test]
    fn a_name_may_be_at_most_ninety_labels_below_its_registrable_domain() {
        let deep = |labels: usize| format!("{}example.com", "a.".repeat(labels));
        assert!(parse(&deep(90)).is_ok());
        let refused = parse(&deep(91)).expect_err("too deep");
        assert!(refused.why().contains("91 labels below"), "{refused}");
    }

    fn parse(input: &str) -> Result<DomainName, InvalidDomainName> {
        DomainName::parse(input)
    }

    #[test]
    fn stored_names_stay_readable_under_newer_rules() {
        // `github.io` is a public suffix today; a name stored before it became one
        // (or a suffix added later) must still be read, listed and deleted.
        let stored: DomainName = serde_json::from_str("\"github.io\"").expect("readable");
        assert_eq!(stored.as_str(), "github.io");
        assert!(stored.is_registrable_domain());
        assert!(
            DomainName::parse("github.io").is_err(),
            "callers still cannot create it"
        );
        let normal: DomainName = serde_json::from_str("\"mail.example.co.uk\"").expect("readable");
        assert_eq!(normal.registrable_domain(), "example.co.uk");
        for garbage in ["\"\"", "\"NOT A NAME\"", "\"com\""] {
            assert!(
                serde_json::from_str::<DomainName>(garbage).is_err(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn accepts_the_documented_examples() {
        for name in [
            "domain.com",
            "subdomain.domain.com",
            "mail.company.co.uk",
            "yourdomain.com",
        ] {
            assert_eq!(
                parse(name).map(|d| d.to_string()),
                Ok(name.to_string()),
                "{name}"
            );
        }
    }

    #[test]
    fn normalizes_case_whitespace_and_one_trailing_dot() {
        let name = parse("  Mail.Example.COM. ").expect("valid");
        assert_eq!(name.as_str(), "mail.example.com");
        assert!(
            parse("example.com..").is_err(),
            "only one trailing dot is dropped"
        );
    }

    #[test]
    fn maps_unicode_to_punycode() {
        assert_eq!(
            parse("Bücher.de").expect("valid").as_str(),
            "xn--bcher-kva.de"
        );
        assert_eq!(
            parse("xn--bcher-kva.de").expect("valid").as_str(),
            "xn--bcher-kva.de"
        );
        assert_eq!(
            parse("例え.テスト").expect("valid").as_str(),
            "xn--r8jz45g.xn--zckzah"
        );
    }

    #[test]
    fn rejects_public_suffixes_including_private_ones() {
        for name in ["com", "co.uk", "github.io", "s3.amazonaws.com", "uk."] {
            assert!(parse(name).is_err(), "{name} is a public suffix");
        }
        assert!(parse("someone.github.io").is_ok());
    }

    #[test]
    fn rejects_bad_shapes() {
        let long_label = "a".repeat(64);
        // 25 labels of 9 plus ".com" is exactly 253 characters: the longest valid name.
        let longest = format!("{}.com", ["abcdefghi"; 25].join("."));
        assert_eq!(longest.len(), 253);
        assert!(parse(&longest).is_ok());
        let long_name = format!("a{longest}");
        for name in [
            "",
            " ",
            ".",
            "localhost",
            "-example.com",
            "example-.com",
            "exa_mple.com",
            "exa mple.com",
            "a..com",
            ".example.com",
            "example.com/path",
            "user@example.com",
            "http://example.com",
            "1.2.3.4",
            "999.1",
            "[::1]",
            "::1",
            &format!("{long_label}.com"),
            &long_name,
        ] {
            assert!(parse(name).is_err(), "{name:?} must be rejected");
        }
        assert!(parse(&format!("{}.com", "a".repeat(63))).is_ok());
    }

    #[test]
    fn derives_registrable_domain_and_relative_names() {
        let apex = parse("company.co.uk").expect("valid");
        assert!(apex.is_registrable_domain());
        assert_eq!(apex.relative_name(), "@");
        assert_eq!(apex.subdomain_prefix(), None);

        let sub = parse("mail.company.co.uk").expect("valid");
        assert_eq!(sub.registrable_domain(), "company.co.uk");
        assert_eq!(sub.relative_name(), "mail");

        let deep = parse("a.b.example.com").expect("valid");
        assert_eq!(deep.registrable_domain(), "example.com");
        assert_eq!(deep.subdomain_prefix(), Some("a.b"));
    }
}
