//! Lambda for `handlers::reverify_pending`, run by an EventBridge schedule.

use lambda_runtime::{Error, run, service_fn};
use shared::{App, handlers, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = &App::from_env().await?;
    run(service_fn(move |event| {
        handlers::reverify_pending(app, event)
    }))
    .await
}
