//! Lambda for `handlers::publish_events`, run by the table's DynamoDB Stream.

use lambda_runtime::{Error, run, service_fn};
use shared::{app::event_sink_from_env, handlers, telemetry};

// One batch at a time, on less than one vCPU: no worker threads to start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let sink = &event_sink_from_env().await?;
    run(service_fn(move |event| {
        handlers::publish_events(sink, event)
    }))
    .await
}
