//! The publisher Lambda's work: a stream batch (events/publish-events.json, items
//! as the store writes them) becomes the domain events, put on EventBridge ten at a
//! time in stream order; a failing entry is reported as exactly its record.

use std::sync::Mutex;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_smithy_mocks::{RuleMode, mock};
use shared::events::DomainEvent;
use shared::publishing::{EventBridgeSink, EventSink, event_for_record, publish_stream_batch};

fn fixture() -> Event {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/publish-events.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("a stream batch")
}

/// Records every put, and fails the entries whose event ids it is told to.
#[derive(Default)]
struct Recording {
    puts: Mutex<Vec<Vec<String>>>,
    failing: Vec<String>,
}

#[async_trait]
impl EventSink for Recording {
    async fn put(&self, events: &[DomainEvent]) -> Vec<Option<String>> {
        self.puts
            .lock()
            .expect("lock")
            .push(events.iter().map(|e| e.detail_type.to_string()).collect());
        events
            .iter()
            .map(|e| {
                self.failing
                    .contains(&e.id)
                    .then(|| "InternalFailure".to_string())
            })
            .collect()
    }
}

#[test]
fn the_fixture_is_a_create_a_verification_and_a_delete() {
    let batch = fixture();
    let events: Vec<_> = batch
        .records
        .iter()
        .map(|r| event_for_record(r).expect("readable"))
        .collect();
    let kinds: Vec<Option<(&str, Option<&str>)>> = events
        .iter()
        .map(|e| {
            e.as_ref().map(|e| {
                (
                    e.detail_type,
                    e.detail.previous_status.map(|s| match s {
                        shared::DomainStatus::Pending => "pending",
                        shared::DomainStatus::Verified => "verified",
                        _ => "other",
                    }),
                )
            })
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            Some(("domain.created", None)),
            None, // the organization's count
            Some(("domain.verified", Some("pending"))),
            None, // a daily re-check: no status change
            Some(("domain.deleted", Some("verified"))),
        ]
    );
    let created = events[0].as_ref().expect("created");
    assert_eq!(
        created.id, batch.records[0].event_id,
        "the id is the stream record's"
    );
    assert_eq!(created.detail.organization_id, "org_123");
    assert_eq!(created.detail.domain.name.as_str(), "example.com");
    assert_eq!(created.detail.domain.records.len(), 6);
    let json = serde_json::to_value(created).expect("json");
    assert!(json["detail"]["domain"].get("dkim_tokens").is_none());
    assert_eq!(json["time"], "2026-11-28T12:00:00.000Z");
}

#[tokio::test]
async fn a_batch_is_published_in_order_and_reports_nothing_when_all_is_put() {
    let sink = Recording::default();
    let response = publish_stream_batch(&sink, &fixture()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        *sink.puts.lock().expect("lock"),
        vec![vec!["domain.created", "domain.verified", "domain.deleted"]]
    );
}

#[tokio::test]
async fn a_failing_entry_is_reported_as_exactly_its_record_and_nothing_after_is_sent() {
    let mut batch = fixture();
    // 25 status changes (and the fixture's five records between them): three puts.
    let template = batch.records[2].clone();
    for i in 0..25 {
        let mut record = template.clone();
        record.event_id = format!("extra-{i}");
        record.change.sequence_number = Some(format!("9{i:03}"));
        batch.records.push(record);
    }
    let sink = Recording {
        failing: vec!["extra-12".into()],
        ..Recording::default()
    };
    let response = publish_stream_batch(&sink, &batch).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![Some("9012".to_string())]);
    let sizes: Vec<usize> = sink
        .puts
        .lock()
        .expect("lock")
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(
        sizes,
        vec![10, 10],
        "the put holding the failed entry is the last one sent"
    );

    // The first entry of the batch failing: that record, nothing else sent.
    let sink = Recording {
        failing: vec![batch.records[0].event_id.clone()],
        ..Recording::default()
    };
    let response = publish_stream_batch(&sink, &fixture()).await;
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        fixture().records[0].change.sequence_number
    );
    assert_eq!(response.batch_item_failures.len(), 1);
}

#[tokio::test]
async fn eventbridge_entries_carry_the_envelope_and_per_entry_errors_are_seen() {
    let partial = mock!(Client::put_events)
        .match_requests(|request| {
            let entries = request.entries();
            entries.len() == 3
                && entries.iter().all(|e| {
                    e.event_bus_name() == Some("domain-events")
                        && e.source() == Some("domains-api")
                        && e.detail().is_some_and(|d| d.contains("\"event_id\""))
                })
                && entries[1].detail_type() == Some("domain.verified")
        })
        .then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(PutEventsResultEntry::builder().event_id("eb-1").build())
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("InternalFailure")
                        .error_message("try again")
                        .build(),
                )
                .entries(PutEventsResultEntry::builder().event_id("eb-3").build())
                .build()
        });
    let (sdk, interceptor) = crate::common::mocked_sdk(&[&partial], RuleMode::MatchAny);
    let client = Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(interceptor)
            .build(),
    );
    let sink = EventBridgeSink::new(client, "domain-events");
    let batch = fixture();
    let response = publish_stream_batch(&sink, &batch).await;
    assert_eq!(partial.num_calls(), 1);
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        vec![batch.records[2].change.sequence_number.clone()]
    );

    // The whole call failing: the first record of the put is retried.
    let down = mock!(Client::put_events).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(500).expect("status"),
            aws_smithy_types::body::SdkBody::from(r#"{"message":"internal failure"}"#),
        )
    });
    let (sdk, interceptor) = crate::common::mocked_sdk(&[&down], RuleMode::MatchAny);
    let client = Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(interceptor)
            .build(),
    );
    let response =
        publish_stream_batch(&EventBridgeSink::new(client, "domain-events"), &batch).await;
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        batch.records[0].change.sequence_number
    );
}
