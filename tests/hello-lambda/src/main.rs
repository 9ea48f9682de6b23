//! A hello-world Lambda: what the runtime alone costs (scripts/bench compares with it),
//! as lambda_runtime's own example writes it (tokio's default multi-threaded runtime).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
