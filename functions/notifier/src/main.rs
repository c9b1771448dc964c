//! The notifier Lambda: consumes the notification queue, reports partial batch failures.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::wiring::telemetry::init_lambda();
    let app = shared::App::from_env().await?;
    let handler =
        |app: shared::App, event, _deadline_ms: u64| async move { shared::entry::lambda::notifier(&app, event).await };
    lambda_runtime::run(shared::entry::lambda::sqs_service(app, handler)).await
}
