//! Domain claims: how an organization takes a name another organization holds, by
//! proving control of its DNS with a TXT record at `_domains-claim.<name>`. The
//! claim object and every rule about its status live here; the transfer of the
//! name itself is `transfer.rs`.
//!
//! | stored status | and | the claim is |
//! |---|---|---|
//! | any | `expires_at` passed | gone (404; DynamoDB's TTL removes the item later) |
//! | `pending` | the name was taken by another organization's claim after this one was made | `superseded` |
//! | `pending` | the caller holds the name (it was freed and created) | `completed` |
//! | `pending` | otherwise | `pending` |
//! | `completed`, `superseded` | | as stored |

use serde::{Deserialize, Serialize};

use crate::domain_name::DomainName;
use crate::model::{Domain, RecordType, Timestamp, truncate_chars};
use crate::verify::Answer;

/// How long a claim lives: long enough to reach whoever runs the zone.
pub const CLAIM_LIFETIME: chrono::Duration = chrono::Duration::days(7);
/// Open (pending) claims one organization may have at once.
pub const MAX_OPEN_CLAIMS: usize = 10;

/// Whether an organization with these (live) claims may open no other.
pub fn open_claim_limit_reached(claims: &[DomainClaim]) -> bool {
    claims.iter().filter(|c| c.is_open()).count() >= MAX_OPEN_CLAIMS
}
/// The label the proof is published at, under the claimed name.
pub const PROOF_LABEL: &str = "_domains-claim";
/// What every proof value starts with.
pub const PROOF_PREFIX: &str = "domains-claim=";
/// 32 characters from 62: about 190 random bits, beyond guessing.
const PROOF_RANDOM_CHARS: usize = 32;
/// TXT values kept from a check, as for a record's `observed`.
const MAX_OBSERVED: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// Where a claim stands.
pub enum ClaimStatus {
    /// Waiting for the TXT record.
    Pending,
    /// Proven: the name passed to the claimant.
    Completed,
    /// Another organization proved control of the name first.
    Superseded,
}

/// The TXT record whose publication proves control of the name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofRecord {
    #[serde(rename = "type")]
    /// Always TXT.
    pub record_type: RecordType,
    /// `_domains-claim.<name>`, fully qualified.
    pub name: String,
    /// `domains-claim=<random>`.
    pub value: String,
}

/// Who holds a name now: its name claim item.
#[derive(Clone, Debug, PartialEq)]
pub struct NameHolder {
    /// The organization holding it.
    pub organization_id: String,
    /// Its domain of that name.
    pub domain_id: String,
    /// When the holder took the name by a completed claim (absent when it
    /// created the name).
    pub claimed_at: Option<Timestamp>,
}

/// A claim, as stored (keyed by organization and name) and returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainClaim {
    /// The claimed name.
    pub name: DomainName,
    /// The claimant.
    pub organization_id: String,
    /// Where it stands (stored; see `settle` for what a reader sees).
    pub status: ClaimStatus,
    /// What to publish.
    pub record: ProofRecord,
    /// One sentence on what the claim waits for, or why it ended; null once completed.
    pub reason: Option<String>,
    /// The TXT values the last check found at the record's name.
    #[serde(default)]
    pub observed: Vec<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it lapses (7 days after it was made).
    pub expires_at: Timestamp,
    /// When DNS was last asked for the proof.
    pub last_checked_at: Option<Timestamp>,
    /// When the name passed to the claimant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// The claimant's domain made by the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<String>,
}

/// A claim as the API answers it: with the claimant's domain once completed.
#[derive(Serialize)]
pub struct ClaimView<'a> {
    #[serde(flatten)]
    /// The claim.
    pub claim: &'a DomainClaim,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The domain the claim made, while the claimant holds it.
    pub domain: Option<&'a Domain>,
}

impl DomainClaim {
    /// A new pending claim of `name` with a fresh random proof value.
    pub fn new(organization_id: &str, name: DomainName, now: Timestamp) -> Self {
        let value = format!(
            "{PROOF_PREFIX}{}",
            crate::keys::random_alphanumeric(PROOF_RANDOM_CHARS)
        );
        let record = ProofRecord {
            record_type: RecordType::Txt,
            name: proof_name(&name),
            value,
        };
        Self {
            reason: Some(waiting_reason(&record)),
            name,
            organization_id: organization_id.to_string(),
            status: ClaimStatus::Pending,
            record,
            observed: Vec::new(),
            created_at: now,
            expires_at: now.plus(CLAIM_LIFETIME),
            last_checked_at: None,
            completed_at: None,
            domain_id: None,
        }
    }

    /// Lapsed: it no longer exists for anyone.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    /// Still waiting for its proof (counts against the limit).
    pub fn is_open(&self) -> bool {
        self.status == ClaimStatus::Pending
    }

    /// Brings a pending claim up to date with who holds the name now (the table
    /// in the module docs). Returns whether it changed.
    pub fn settle(&mut self, holder: Option<&NameHolder>) -> bool {
        if self.status != ClaimStatus::Pending {
            return false;
        }
        let Some(holder) = holder else {
            return false;
        };
        if holder.organization_id == self.organization_id {
            self.complete(holder.domain_id.clone(), holder.claimed_at);
            return true;
        }
        if holder.claimed_at.is_some_and(|at| at >= self.created_at) {
            self.status = ClaimStatus::Superseded;
            self.reason = Some(format!(
                "Another organization proved control of {} first and holds it now; make a new claim to take it back.",
                self.name
            ));
            return true;
        }
        false
    }

    /// Marks the claim completed by the claimant's domain `domain_id`.
    pub fn complete(&mut self, domain_id: String, at: Option<Timestamp>) {
        self.status = ClaimStatus::Completed;
        self.reason = None;
        self.completed_at = at.or(Some(Timestamp::now()));
        self.domain_id = Some(domain_id);
    }

    /// Takes in what DNS answered at the proof's name, and the CNAME chain followed
    /// to get it; returns whether the proof is there. Only a TXT record at the
    /// name itself proves control: through an alias (a wildcard CNAME to a
    /// hosting provider, say) whoever controls the alias's target could publish it.
    pub fn record_check(
        &mut self,
        answer: &Answer<String>,
        aliases: &[String],
        now: Timestamp,
    ) -> bool {
        self.last_checked_at = Some(now);
        let found: Vec<String> = match answer {
            Answer::Found(values) => values.iter().map(|v| v.trim().to_string()).collect(),
            _ => Vec::new(),
        };
        let proven = aliases.is_empty() && found.contains(&self.record.value);
        self.observed = found;
        self.observed.truncate(MAX_OBSERVED);
        for value in &mut self.observed {
            truncate_chars(value, 255);
        }
        self.reason = match answer {
            _ if proven => None,
            _ if !aliases.is_empty() => Some(format!(
                "{} is an alias (CNAME to {}): the proof must be a TXT record {} at {} itself, published in the name's own zone.",
                self.record.name, aliases[0], self.record.value, self.record.name
            )),
            Answer::Failed(why) => Some(format!(
                "The DNS lookup for {} could not be completed ({why}); try again later.",
                self.record.name
            )),
            Answer::Found(_) => Some(format!(
                "{} has TXT records, but not {}: add it (other TXT records there may stay).",
                self.record.name, self.record.value
            )),
            Answer::Empty => Some(waiting_reason(&self.record)),
        };
        if let Some(reason) = &mut self.reason {
            truncate_chars(reason, 500);
        }
        proven
    }
}

fn waiting_reason(record: &ProofRecord) -> String {
    format!(
        "No TXT record {} at {} yet: publish it at the name's DNS provider, then verify the claim.",
        record.value, record.name
    )
}

/// `_domains-claim.<name>`.
pub fn proof_name(name: &DomainName) -> String {
    format!("{PROOF_LABEL}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> DomainName {
        DomainName::valid("victim-corp.com")
    }

    /// Whether the claim's reason says `text`.
    fn says(claim: &DomainClaim, text: &str) -> bool {
        claim.reason.as_deref().is_some_and(|r| r.contains(text))
    }

    fn holder(org: &str, claimed_at: Option<Timestamp>) -> NameHolder {
        NameHolder {
            organization_id: org.into(),
            domain_id: "d1".into(),
            claimed_at,
        }
    }

    #[test]
    fn a_new_claim_asks_for_a_random_txt_record_for_seven_days() {
        let now = Timestamp::now();
        let claim = DomainClaim::new("org_b", name(), now);
        let other = DomainClaim::new("org_b", name(), now);
        assert_eq!(claim.record.name, "_domains-claim.victim-corp.com");
        assert!(claim.record.value.starts_with("domains-claim="));
        assert_eq!(claim.record.value.len(), "domains-claim=".len() + 32);
        assert_ne!(claim.record.value, other.record.value);
        assert_eq!(claim.expires_at, now.plus(chrono::Duration::days(7)));
        assert!(claim.is_open() && !claim.is_expired(now));
        assert!(claim.is_expired(now.plus(chrono::Duration::days(7))));
        let json = serde_json::to_value(&claim).expect("serializes");
        assert_eq!(json["record"]["type"], "TXT");
        assert_eq!(json["status"], "pending");
    }

    #[test]
    fn a_claim_is_superseded_only_by_a_later_claim_of_another_organization() {
        let now = Timestamp::now();
        let mut claim = DomainClaim::new("org_c", name(), now);
        // The holder created the name: still claimable.
        assert!(!claim.settle(Some(&holder("org_a", None))));
        // Taken by another claim before this one was made: claimable from it.
        let earlier = now.plus(chrono::Duration::seconds(-5));
        assert!(!claim.settle(Some(&holder("org_b", Some(earlier)))));
        assert_eq!(claim.status, ClaimStatus::Pending);
        assert!(claim.settle(Some(&holder("org_b", Some(now)))));
        assert_eq!(claim.status, ClaimStatus::Superseded);
        // Ended claims stay ended.
        assert!(!claim.settle(Some(&holder("org_c", None))));
        assert_eq!(claim.status, ClaimStatus::Superseded);
    }

    #[test]
    fn a_claim_whose_claimant_holds_the_name_is_completed() {
        let mut claim = DomainClaim::new("org_b", name(), Timestamp::now());
        assert!(claim.settle(Some(&holder("org_b", None))));
        assert_eq!(claim.status, ClaimStatus::Completed);
        assert_eq!(claim.domain_id.as_deref(), Some("d1"));
        assert_eq!(claim.reason, None);
    }

    #[test]
    fn only_the_exact_value_proves_control() {
        let now = Timestamp::now();
        let mut claim = DomainClaim::new("org_b", name(), now);
        let value = claim.record.value.clone();
        assert!(!claim.record_check(&Answer::Empty, &[], now));
        assert!(says(&claim, "No TXT record"));
        let others = Answer::Found(vec!["v=spf1 -all".into(), format!("{value}x")]);
        assert!(!claim.record_check(&others, &[], now));
        assert_eq!(claim.observed.len(), 2);
        assert!(says(&claim, "but not"));
        assert!(!claim.record_check(&Answer::Failed("timeout".into()), &[], now));
        assert!(says(&claim, "could not be completed"));
        let proven = Answer::Found(vec!["other".into(), format!(" {value} ")]);
        // Reached through an alias, the same value proves nothing.
        let alias = ["proof.hosting.example".to_string()];
        assert!(!claim.record_check(&proven, &alias, now));
        assert!(says(&claim, "CNAME to proof.hosting.example"));
        assert!(claim.record_check(&proven, &[], now));
        assert_eq!(claim.reason, None);
        assert_eq!(claim.last_checked_at, Some(now));
    }
}
