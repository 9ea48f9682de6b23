//! Domain events: what a change of a stored domain means to an integrator. One
//! rule (`event_for_change`) turns a before/after pair into at most one event; the
//! table's stream (`crate::publishing`, for the publisher Lambda) and the dev server's
//! in-memory store both feed it, so both publish the same events.
//!
//! | before | after | event | `previous_status` |
//! |---|---|---|---|
//! | none, or a claimed mark | a domain | `domain.created` | null |
//! | a domain | the same domain, another status | `domain.<new status>` | the old status |
//! | a domain | the same domain, same status | none (a re-check, a mark, tokens) | |
//! | a domain | a claimed mark | `domain.claimed` (the domain as it was) | its status |
//! | a domain | none | `domain.deleted` (the domain as it was) | its status |
//! | a claimed mark | none | none (the mark lapsed) | |

use serde::Serialize;

use crate::model::{Domain, DomainStatus, Timestamp};

/// The `source` of every event.
pub const EVENT_SOURCE: &str = "domains-api";

/// What a domain's item held before or after a change.
#[derive(Clone, Debug, PartialEq)]
pub enum Snapshot {
    /// A domain.
    Domain(Box<Domain>),
    /// The mark a domain leaves when another organization takes its name.
    Claimed,
}

/// One stored change of a domain's item, as the in-memory store reports it (the
/// dev server's stand-in for the table's stream).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The item before (none: it did not exist).
    pub before: Option<Snapshot>,
    /// The item after (none: it was removed).
    pub after: Option<Snapshot>,
    /// When it was stored.
    pub at: Timestamp,
}

/// The kinds of event, by their `detail-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `domain.created`
    Created,
    /// `domain.verified`
    Verified,
    /// `domain.pending`
    Pending,
    /// `domain.temporary_failure`
    TemporaryFailure,
    /// `domain.failed`
    Failed,
    /// `domain.deleted`
    Deleted,
    /// `domain.claimed`: another organization took the name.
    Claimed,
}

impl EventType {
    /// The event's `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::Created => "domain.created",
            Self::Verified => "domain.verified",
            Self::Pending => "domain.pending",
            Self::TemporaryFailure => "domain.temporary_failure",
            Self::Failed => "domain.failed",
            Self::Deleted => "domain.deleted",
            Self::Claimed => "domain.claimed",
        }
    }

    fn of_status(status: DomainStatus) -> Self {
        match status {
            DomainStatus::Pending => Self::Pending,
            DomainStatus::Verified => Self::Verified,
            DomainStatus::TemporaryFailure => Self::TemporaryFailure,
            DomainStatus::Failed => Self::Failed,
        }
    }
}

/// The event's `detail`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventDetail {
    /// Unique per stored change (the stream record's id): a consumer drops repeats by it.
    pub event_id: String,
    /// The domain's organization.
    pub organization_id: String,
    /// The domain as the API returns it (as it was, for `deleted` and `claimed`).
    pub domain: Domain,
    /// Its status before the change (null for `created`).
    pub previous_status: Option<DomainStatus>,
}

/// An event in EventBridge's envelope (what a webhook receives).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DomainEvent {
    /// The same as `detail.event_id`.
    pub id: String,
    /// `domains-api`.
    pub source: &'static str,
    /// `domain.created`, ...
    #[serde(rename = "detail-type")]
    pub detail_type: &'static str,
    /// When the change was stored.
    pub time: Timestamp,
    /// What changed.
    pub detail: EventDetail,
}

impl DomainEvent {
    fn new(
        id: &str,
        at: Timestamp,
        kind: EventType,
        domain: &Domain,
        previous_status: Option<DomainStatus>,
    ) -> Self {
        Self {
            id: id.to_string(),
            source: EVENT_SOURCE,
            detail_type: kind.detail_type(),
            time: at,
            detail: EventDetail {
                event_id: id.to_string(),
                organization_id: domain.organization_id.clone(),
                domain: domain.clone(),
                previous_status,
            },
        }
    }
}

/// The event a stored change makes, if any (the table in the module docs). `id`
/// names the change; `at` is when it was stored.
pub fn event_for_change(
    id: &str,
    at: Timestamp,
    before: Option<&Snapshot>,
    after: Option<&Snapshot>,
) -> Option<DomainEvent> {
    use Snapshot::{Claimed, Domain as Stored};
    let event =
        |kind, domain: &Domain, previous| Some(DomainEvent::new(id, at, kind, domain, previous));
    match (before, after) {
        (Some(Stored(old)), Some(Stored(new))) if old.id == new.id => (old.status != new.status)
            .then(|| {
                DomainEvent::new(
                    id,
                    at,
                    EventType::of_status(new.status),
                    new,
                    Some(old.status),
                )
            }),
        (_, Some(Stored(new))) => event(EventType::Created, new, None),
        (Some(Stored(old)), Some(Claimed)) => event(EventType::Claimed, old, Some(old.status)),
        (Some(Stored(old)), None) => event(EventType::Deleted, old, Some(old.status)),
        (Some(Claimed) | None, Some(Claimed) | None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain_name::DomainName;

    fn domain(status: DomainStatus) -> Domain {
        let mut domain = Domain::new(
            "org_a",
            DomainName::parse("example.com").expect("valid"),
            Timestamp::now(),
        );
        domain.status = status;
        domain
    }

    fn kind(
        before: Option<Snapshot>,
        after: Option<Snapshot>,
    ) -> Option<(&'static str, Option<DomainStatus>)> {
        event_for_change("e1", Timestamp::now(), before.as_ref(), after.as_ref())
            .map(|e| (e.detail_type, e.detail.previous_status))
    }

    fn stored(domain: &Domain) -> Option<Snapshot> {
        Some(Snapshot::Domain(Box::new(domain.clone())))
    }

    #[test]
    fn every_change_maps_to_its_event_or_none() {
        use DomainStatus::*;
        let pending = domain(Pending);
        let mut verified = pending.clone();
        verified.status = Verified;
        let mut rechecked = pending.clone();
        rechecked.last_checked_at = Some(Timestamp::now());
        let mut failing = verified.clone();
        failing.status = TemporaryFailure;
        let mut failed = failing.clone();
        failed.status = Failed;
        let claimed = Some(Snapshot::Claimed);
        let other = domain(Pending);

        let s = stored;
        let event = |kind: &'static str, previous| Some((kind, previous));
        // (before, after, the event and its previous status, or none)
        let changes = [
            (None, s(&pending), event("domain.created", None)),
            (claimed.clone(), s(&other), event("domain.created", None)),
            (
                s(&pending),
                s(&verified),
                event("domain.verified", Some(Pending)),
            ),
            (
                s(&verified),
                s(&failing),
                event("domain.temporary_failure", Some(Verified)),
            ),
            (
                s(&failing),
                s(&failed),
                event("domain.failed", Some(TemporaryFailure)),
            ),
            (
                s(&verified),
                s(&pending),
                event("domain.pending", Some(Verified)),
            ),
            // A re-check alone.
            (s(&pending), s(&rechecked), None),
            (
                s(&verified),
                claimed.clone(),
                event("domain.claimed", Some(Verified)),
            ),
            (s(&failed), None, event("domain.deleted", Some(Failed))),
            // A lapsed mark.
            (claimed.clone(), None, None),
            (None, claimed, None),
            (None, None, None),
        ];
        for (before, after, event) in changes {
            let change = format!("{before:?} -> {after:?}");
            assert_eq!(kind(before, after), event, "{change}");
        }
    }

    #[test]
    fn an_event_is_eventbridges_envelope_around_the_api_domain() {
        let pending = domain(DomainStatus::Pending);
        let event = event_for_change("rec-1", Timestamp::now(), None, stored(&pending).as_ref())
            .expect("created");
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["id"], "rec-1");
        assert_eq!(json["source"], "domains-api");
        assert_eq!(json["detail-type"], "domain.created");
        assert_eq!(json["detail"]["event_id"], "rec-1");
        assert_eq!(json["detail"]["organization_id"], "org_a");
        assert_eq!(json["detail"]["previous_status"], serde_json::Value::Null);
        assert_eq!(
            json["detail"]["domain"],
            serde_json::to_value(&pending).expect("domain")
        );
        assert!(
            json["detail"]["domain"].get("version").is_none(),
            "only what the API shows"
        );
    }
}
