//! The sync-worker Lambda: consumes the sync queue within each invocation's
//! deadline, reports partial batch failures.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::wiring::telemetry::init_lambda();
    let app = shared::App::from_env().await?;
    let handler = |app: shared::App, event, deadline_ms: u64| async move {
        shared::entry::lambda::sync_worker(&app, event, shared::entry::lambda::budget_from_deadline(deadline_ms)).await
    };
    lambda_runtime::run(shared::entry::lambda::sqs_service(app, handler)).await
}
