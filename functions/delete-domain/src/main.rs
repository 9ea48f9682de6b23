//! Lambda for `handlers::delete_domain`: reads config and builds clients once, then serves.

use lambda_http::{Error, run, service_fn};
use shared::{App, handlers, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = &App::from_env().await?;
    run(service_fn(move |request| {
        handlers::delete_domain(app, request)
    }))
    .await
}
