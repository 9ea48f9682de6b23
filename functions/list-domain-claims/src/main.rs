//! Lambda for `handlers::list_domain_claims`: reads config and builds clients once, then serves.

use lambda_http::{Error, run, service_fn};
use shared::{App, app::StartupClients, handlers, telemetry};

// One event at a time, on less than one vCPU: no worker threads to start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = &App::from_env(StartupClients {
        ses: false,
        dns: false,
    })
    .await?;
    run(service_fn(move |request| {
        handlers::list_domain_claims(app, request)
    }))
    .await
}
