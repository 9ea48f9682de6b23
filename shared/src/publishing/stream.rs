//! The table's DynamoDB Stream, as the publisher Lambda receives it: each record's
//! images read as the store writes items, then judged by `event_for_change`.

use aws_lambda_events::event::dynamodb::EventRecord;

use crate::events::{DomainEvent, event_for_change};
use crate::model::Timestamp;
use crate::store::snapshot_of_item;

/// The event a stream record makes, if any; an error for a record whose images
/// cannot be read as the store's items.
pub fn event_for_record(record: &EventRecord) -> Result<Option<DomainEvent>, String> {
    let image = |item: &serde_dynamo::Item| {
        if item.is_empty() {
            Ok(None)
        } else {
            snapshot_of_item(item.clone()).map_err(|e| e.to_string())
        }
    };
    let before = image(&record.change.old_image)?;
    let after = image(&record.change.new_image)?;
    let at = Timestamp::from(record.change.approximate_creation_date_time);
    Ok(event_for_change(
        &record.event_id,
        at,
        before.as_ref(),
        after.as_ref(),
    ))
}
