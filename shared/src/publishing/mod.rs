//! Publishing a stream batch to EventBridge: in stream order, at most 10 entries a
//! `PutEvents`, and on the first entry that fails, nothing after it. That record is
//! reported as the batch's item failure, so Lambda retries from it (and only the
//! records after it, which were not published): order per domain is kept, and an
//! event is repeated only when a `PutEvents` that failed in part is retried (the
//! `event_id` lets a consumer drop the repeat).

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

mod stream;

pub use stream::event_for_record;

use crate::events::DomainEvent;

/// EventBridge takes at most this many entries per `PutEvents`.
pub const MAX_ENTRIES_PER_PUT: usize = 10;

/// Where events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Puts up to `MAX_ENTRIES_PER_PUT` events; for each, `None` once put, else why not.
    async fn put(&self, events: &[DomainEvent]) -> Vec<Option<String>>;
}

/// An EventBridge bus.
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeSink {
    /// The bus `bus_name`, through `client`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    fn entry(&self, event: &DomainEvent) -> Result<PutEventsRequestEntry, String> {
        let detail = serde_json::to_string(&event.detail).map_err(|e| e.to_string())?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(event.source)
            .detail_type(event.detail_type)
            .detail(detail)
            .time(aws_smithy_types::DateTime::from_millis(
                event.time.as_datetime().timestamp_millis(),
            ))
            .build())
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn put(&self, events: &[DomainEvent]) -> Vec<Option<String>> {
        let entries: Result<Vec<_>, String> = events.iter().map(|e| self.entry(e)).collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(why) => return vec![Some(why); events.len()],
        };
        put_entries(&self.client, entries).await
    }
}

/// One `PutEvents` of up to `MAX_ENTRIES_PER_PUT` entries: for each, `None` once
/// put, else why not (the whole call's error for every entry when it failed).
pub(crate) async fn put_entries(
    client: &aws_sdk_eventbridge::Client,
    entries: Vec<PutEventsRequestEntry>,
) -> Vec<Option<String>> {
    let count = entries.len();
    match client.put_events().set_entries(Some(entries)).send().await {
        Ok(output) => {
            let results = output.entries();
            (0..count)
                .map(|i| match results.get(i) {
                    Some(result) => result.error_code().map(|code| {
                        format!("{code}: {}", result.error_message().unwrap_or_default())
                    }),
                    None => Some("no result for the entry".into()),
                })
                .collect()
        }
        Err(error) => {
            let why = aws_sdk_eventbridge::error::DisplayErrorContext(&error).to_string();
            vec![Some(why); count]
        }
    }
}

/// Publishes the events of a stream batch (see the module docs) and says which
/// record Lambda must retry from, if any.
pub async fn publish_stream_batch(sink: &dyn EventSink, batch: &Event) -> DynamoDbEventResponse {
    let mut events: Vec<(String, DomainEvent)> = Vec::new();
    for record in &batch.records {
        let position = record
            .change
            .sequence_number
            .clone()
            .unwrap_or_else(|| record.event_id.clone());
        match event_for_record(record) {
            Ok(Some(event)) => events.push((position, event)),
            Ok(None) => {}
            // Retrying cannot make it readable: it would only hold the stream up.
            Err(why) => {
                tracing::error!(event_id = %record.event_id, %why, "stream record left out: its images cannot be read")
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    for chunk in events.chunks(MAX_ENTRIES_PER_PUT) {
        let batch: Vec<DomainEvent> = chunk.iter().map(|(_, event)| event.clone()).collect();
        let results = sink.put(&batch).await;
        if let Some((failed, why)) = results
            .iter()
            .enumerate()
            .find_map(|(i, result)| result.as_ref().map(|why| (i, why)))
        {
            let (position, event) = &chunk[failed];
            tracing::warn!(event_id = %event.id, %why, "event not published; the stream retries from its record");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(position.clone());
            response.batch_item_failures.push(failure);
            return response;
        }
        for (_, event) in chunk {
            tracing::info!(event_id = %event.id, detail_type = event.detail_type, domain = %event.detail.domain.name, organization_id = %event.detail.organization_id, "event published");
        }
    }
    response
}
