//! The expiry-sweep Lambda: runs on a schedule, reads only due authorizations.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::wiring::telemetry::init_lambda();
    let app = shared::App::from_env().await?;
    lambda_runtime::run(shared::entry::lambda::sweep_service(app)).await
}
