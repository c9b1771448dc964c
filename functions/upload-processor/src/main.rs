//! The upload-processor Lambda: validates and ingests files that landed by
//! presigned URL (S3 "Object Created" events through EventBridge).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::wiring::telemetry::init_lambda();
    let app = shared::App::from_env().await?;
    lambda_runtime::run(shared::entry::lambda::upload_landed_service(app)).await
}
