//! Lambda for `handlers::list_domains`: reads config and builds clients once, then serves.

use lambda_http::{Error, run, service_fn};
use shared::{App, handlers, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = &App::from_env().await?;
    run(service_fn(move |request| {
        handlers::list_domains(app, request)
    }))
    .await
}
