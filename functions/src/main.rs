//! Every Lambda function of `template.yaml` runs this binary; the
//! function's `Handler` (`_HANDLER`) names its job, e.g. `sync-worker`.
//! Locally: `cargo run -p functions -- sync-worker`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::wiring::functions::Job::from_env()?.run().await
}
