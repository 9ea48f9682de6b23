//! Lambda for `authorizer::authorize`: the HTTP API's API-key authorizer.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::authorizer::authorize;
use shared::lambda_events::ApiGatewayV2CustomAuthorizerV2Request;
use shared::{app, telemetry};

// One event at a time, on less than one vCPU: no worker threads to start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let keys = &app::key_store_from_env().await?;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            authorize(keys, &event.payload).await
        },
    ))
    .await
}
