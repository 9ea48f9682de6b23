//! The domain and record objects of the contract, as stored and as returned.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain_name::DomainName;
use crate::mail_from::MailFromLabel;

/// Observed values kept per record, and the length of each (DNS answers are
/// the zone owner's to choose: a wildcard can answer thousands of addresses).
pub const MAX_OBSERVED_VALUES: usize = 10;
/// Characters kept of each observed value.
pub const MAX_OBSERVED_CHARS: usize = 255;
/// Characters kept of a reason or a suggested value.
pub const MAX_REASON_CHARS: usize = 500;

/// Cuts `text` to at most `max` characters, marking the cut with an ellipsis.
pub fn truncate_chars(text: &mut String, max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max.saturating_sub(1))
        && text[cut..].chars().count() > 1
    {
        text.truncate(cut);
        text.push('…');
    }
}

/// A UTC instant written as RFC 3339 with milliseconds, e.g. `2026-11-27T18:39:21.123Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current instant.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// The instant as chrono's.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The instant `duration` later.
    pub fn plus(&self, duration: chrono::Duration) -> Self {
        Self::from(self.0 + duration)
    }

    /// Time from `earlier` to this instant (zero if `earlier` is later).
    pub fn since(&self, earlier: Timestamp) -> std::time::Duration {
        (self.0 - earlier.0).to_std().unwrap_or_default()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// Truncates to milliseconds so a stored and re-read value compares equal.
    fn from(value: DateTime<Utc>) -> Self {
        let millis = value.timestamp_millis();
        Self(DateTime::from_timestamp_millis(millis).unwrap_or(value))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| Self::from(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// Where a domain stands (see `lifecycle`).
pub enum DomainStatus {
    /// Waiting for DNS.
    Pending,
    /// Every record seen correct.
    Verified,
    /// Not verified within the verification window.
    Failed,
    /// Was verified; records went missing since (set by the scheduled job).
    TemporaryFailure,
}

/// A domain name as one organization asks for it: the key of everything a
/// request may read or change (another organization's domain of the same name
/// is never found through it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantName {
    /// The caller's organization.
    pub organization_id: String,
    /// The name.
    pub name: DomainName,
}

impl DomainStatus {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Failed => "failed",
            Self::TemporaryFailure => "temporary_failure",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// What the last check saw of a record.
pub enum RecordStatus {
    /// Not seen in DNS yet.
    Pending,
    /// Seen correct.
    Verified,
    /// Seen, but wrong.
    Failed,
}

/// What a record is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordPurpose {
    #[serde(rename = "MX")]
    /// Inbound mail to SES.
    Mx,
    #[serde(rename = "SPF")]
    /// SPF authorizing SES to send.
    Spf,
    #[serde(rename = "DMARC")]
    /// The DMARC policy.
    Dmarc,
    #[serde(rename = "DKIM")]
    /// One of the three Easy DKIM CNAMEs.
    Dkim,
    #[serde(rename = "MAIL_FROM_MX")]
    /// The custom MAIL FROM domain's MX to SES's feedback endpoint.
    MailFromMx,
    #[serde(rename = "MAIL_FROM_SPF")]
    /// SPF at the custom MAIL FROM domain, authorizing SES.
    MailFromSpf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// The DNS type of a record.
pub enum RecordType {
    #[serde(rename = "MX")]
    /// MX.
    Mx,
    #[serde(rename = "TXT")]
    /// TXT.
    Txt,
    #[serde(rename = "CNAME")]
    /// CNAME.
    Cname,
}

/// One DNS record the owner must publish, with what the last check saw of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// What the record is for.
    pub record: RecordPurpose,
    #[serde(rename = "type")]
    /// Its DNS type.
    pub record_type: RecordType,
    /// The host as a DNS provider's form wants it: relative to the zone apex
    /// (`@`, `mail`, `_dmarc.mail`), except DKIM names, which are fully qualified.
    pub name: String,
    /// The fully qualified name.
    pub fqdn: String,
    /// The value to publish.
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// MX only: the preference.
    pub priority: Option<u16>,
    /// What the last check saw.
    pub status: RecordStatus,
    /// One sentence on what is wrong (or a note); null when verified.
    pub reason: Option<String>,
    #[serde(default)]
    /// What DNS returned at the name (bounded: `DnsRecord::bound`).
    pub observed: Vec<String>,
    /// A value that would fix a failed record (e.g. the SPF record to publish
    /// instead of the existing ones); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_value: Option<String>,
}

impl DnsRecord {
    /// The verdict alone: for a domain that would not fit its bound otherwise.
    pub fn drop_observations(&mut self) {
        self.observed.clear();
        self.suggested_value = None;
        if let Some(reason) = &mut self.reason {
            truncate_chars(reason, 200);
        }
    }

    /// Keeps what a check stored within the contract's bounds, whatever DNS said.
    pub fn bound(&mut self) {
        self.observed.truncate(MAX_OBSERVED_VALUES);
        for value in &mut self.observed {
            truncate_chars(value, MAX_OBSERVED_CHARS);
        }
        if let Some(reason) = &mut self.reason {
            truncate_chars(reason, MAX_REASON_CHARS);
        }
        if let Some(suggested) = &mut self.suggested_value {
            truncate_chars(suggested, MAX_REASON_CHARS);
        }
    }
}

/// SES's own verdict on an identity's records (`GetEmailIdentity`), as SES
/// spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SesStatus {
    /// SES has not confirmed the records yet.
    Pending,
    /// SES has seen the records: mail is signed and sent.
    Success,
    /// SES gave up (72 hours without the records).
    Failed,
    /// SES can no longer see records it had confirmed.
    TemporaryFailure,
    /// SES has not started looking.
    NotStarted,
}

/// What SES last said about the domain's identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SesView {
    /// Easy DKIM: SES signs the domain's mail only at `SUCCESS`.
    pub dkim_status: SesStatus,
    /// The custom MAIL FROM domain's status, when one is set.
    pub mail_from_status: Option<SesStatus>,
    /// When SES was asked.
    pub checked_at: Timestamp,
}

/// When the scheduled job looks at a domain next, and what it needs to decide.
/// Stored with the domain; not part of the API object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckSchedule {
    /// Creation or the last manual verify: the 72-hour window starts here.
    pub window_started_at: Timestamp,
    /// `None`: not watched any more (failed).
    pub next_check_at: Option<Timestamp>,
    /// Scheduled checks since the window started (the back-off step).
    pub checks_in_window: u32,
    /// When a verified domain's records went missing (temporary failure).
    pub failing_since: Option<Timestamp>,
}

impl CheckSchedule {
    /// A new window starting `now`, first check a minute later.
    pub fn starting(now: Timestamp) -> Self {
        Self {
            window_started_at: now,
            next_check_at: Some(now.plus(chrono::Duration::minutes(1))),
            checks_in_window: 0,
            failing_since: None,
        }
    }
}

/// A registered domain. `dkim_tokens` and `schedule` are kept with the domain but
/// are not part of the API object (the DKIM records carry the tokens).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    /// Unique, never reused.
    pub id: String,
    /// The owner.
    pub organization_id: String,
    /// The normalized name.
    pub name: DomainName,
    /// True once every record was seen correct (kept through a temporary failure).
    pub verified: bool,
    /// Where the domain stands.
    pub status: DomainStatus,
    /// The records to publish, with what the last check saw.
    pub records: Vec<DnsRecord>,
    /// When the domain was created.
    pub created_at: Timestamp,
    /// When the domain last changed.
    pub updated_at: Timestamp,
    /// When DNS was last checked.
    pub last_checked_at: Option<Timestamp>,
    /// When every record was first seen correct.
    pub verified_at: Option<Timestamp>,
    /// What the domain waits for, in one sentence; null when verified.
    #[serde(default)]
    pub reason: Option<String>,
    /// What SES last said (null until DNS was first all correct).
    #[serde(default)]
    pub ses: Option<SesView>,
    /// The custom MAIL FROM domain's label (`<label>.<name>`), if one is set.
    #[serde(default)]
    pub mail_from_subdomain: Option<MailFromLabel>,
    #[serde(skip)]
    /// The Easy DKIM tokens SES gave (stored, not part of the API object).
    pub dkim_tokens: Vec<String>,
    #[serde(skip, default = "CheckSchedule::unknown")]
    /// When the scheduled job checks next (stored, not part of the API object).
    pub schedule: CheckSchedule,
    /// Bumped by every write; every write is conditioned on the version it read,
    /// so an older view never overwrites a newer one. Not part of the API object.
    #[serde(skip)]
    pub version: u64,
    /// Set while a request creates (or re-creates) the SES identity; a delete
    /// waits until it is done or `lifecycle::SETUP_WINDOW` has passed.
    #[serde(skip)]
    pub setup_started_at: Option<Timestamp>,
    /// Set by the first step of a delete: the name stays held until the identity
    /// is gone and the last step removes the domain and its holder item together.
    #[serde(skip)]
    pub deleting_since: Option<Timestamp>,
    /// Whether the domain was ever verified (`verified_at` is cleared when it
    /// fails): a failed name that once sent mail is taken only by a claim.
    /// `None` for a domain stored before this was kept, read as "it may have
    /// been". Not part of the API object.
    #[serde(skip)]
    pub was_verified: Option<bool>,
}

impl CheckSchedule {
    /// Placeholder when deserializing the API object alone (never stored).
    fn unknown() -> Self {
        Self::starting(Timestamp::from(DateTime::<Utc>::UNIX_EPOCH))
    }
}

impl Domain {
    /// A freshly claimed domain: pending, no DKIM tokens yet.
    pub fn new(organization_id: &str, name: DomainName, now: Timestamp) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: organization_id.to_string(),
            name,
            verified: false,
            status: DomainStatus::Pending,
            records: Vec::new(),
            created_at: now,
            updated_at: now,
            last_checked_at: None,
            verified_at: None,
            reason: None,
            ses: None,
            mail_from_subdomain: None,
            dkim_tokens: Vec::new(),
            schedule: CheckSchedule::starting(now),
            version: 0,
            setup_started_at: Some(now),
            deleting_since: None,
            was_verified: Some(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let Some(instant) = DateTime::from_timestamp_millis(1_795_804_761_123) else {
            panic!("valid instant");
        };
        let ts = Timestamp::from(instant);
        let json = serde_json::to_string(&ts).expect("serializes");
        assert_eq!(json, "\"2026-11-27T18:39:21.123Z\"");
        let back: Timestamp = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, ts);
    }

    #[test]
    fn truncation_keeps_short_text_and_marks_cuts() {
        let mut short = "abc".to_string();
        truncate_chars(&mut short, 3);
        assert_eq!(short, "abc");
        let mut long = "é".repeat(600);
        truncate_chars(&mut long, 500);
        assert_eq!(long.chars().count(), 500);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn priority_is_only_present_when_set() {
        let record = DnsRecord {
            record: RecordPurpose::Spf,
            record_type: RecordType::Txt,
            name: "@".into(),
            fqdn: "example.com".into(),
            value: "v=spf1 include:amazonses.com ~all".into(),
            priority: None,
            status: RecordStatus::Pending,
            reason: None,
            observed: vec![],
            suggested_value: None,
        };
        let json = serde_json::to_value(&record).expect("serializes");
        assert!(json.get("priority").is_none());
        assert_eq!(json["type"], "TXT");
        assert_eq!(json["record"], "SPF");
        assert_eq!(json["reason"], serde_json::Value::Null);
    }
}
