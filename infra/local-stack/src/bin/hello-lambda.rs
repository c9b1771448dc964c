//! The cold-start baseline of `cargo bench -p local-stack --bench cold_start`:
//! a bare `lambda_runtime` function that echoes its event. Every function's
//! init is reported as a ratio to this one's, measured alternately.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
