//! Lambda for `handlers::reverify_pending`, run by an EventBridge schedule (and,
//! with a fan-out, by its workers' tasks).

use lambda_runtime::{Error, run, service_fn};
use shared::{App, app::StartupClients, fanout, handlers, telemetry};

// One event at a time, on less than one vCPU: no worker threads to start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = &App::from_env(StartupClients {
        ses: false,
        dns: true,
    })
    .await?;
    let fanout = &fanout::fanout_from_env().await?;
    run(service_fn(move |event| {
        handlers::reverify_pending(app, fanout.as_ref(), event)
    }))
    .await
}
