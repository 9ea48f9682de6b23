//! The dev server's domain events: built by `shared::events::event_for_change`
//! (the publisher Lambda's rule) from the in-memory store's changes, printed as
//! one JSON line each and, with `DEV_WEBHOOK_URL`, POSTed there in order. The feed
//! runs beside the server: a slow or failing webhook never holds up or fails a
//! request.

use std::time::Duration;

use shared::events::{Change, DomainEvent, event_for_change};
use tokio::sync::mpsc::UnboundedReceiver;

/// Pauses before the retries of a webhook POST.
const RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];
/// One POST may take this long.
const POST_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes the events of `changes`, in order, until the store goes away.
pub async fn publish(mut changes: UnboundedReceiver<Change>, webhook: Option<String>) {
    let client = reqwest::Client::new();
    while let Some(change) = changes.recv().await {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let Some(event) = event_for_change(
            &id,
            change.at,
            change.before.as_ref(),
            change.after.as_ref(),
        ) else {
            continue;
        };
        match serde_json::to_string(&event) {
            Ok(line) => println!("{line}"),
            Err(error) => tracing::error!(%error, "event not serializable"),
        }
        if let Some(url) = &webhook {
            deliver(&client, url, &event).await;
        }
    }
}

async fn deliver(client: &reqwest::Client, url: &str, event: &DomainEvent) {
    let mut pauses = RETRY_PAUSES.iter();
    loop {
        let outcome = client
            .post(url)
            .timeout(POST_TIMEOUT)
            .json(event)
            .send()
            .await
            .map_err(|e| e.to_string())
            .and_then(|response| {
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("answered {status}"))
                }
            });
        match (outcome, pauses.next()) {
            (Ok(()), _) => return,
            (Err(why), Some(pause)) => {
                tracing::warn!(event_id = %event.id, %why, "webhook POST failed; retrying");
                tokio::time::sleep(*pause).await;
            }
            (Err(why), None) => {
                tracing::error!(event_id = %event.id, %why, "webhook POST failed; the event is dropped");
                return;
            }
        }
    }
}
