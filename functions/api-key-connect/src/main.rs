//! The api-key-connect Lambda: HTTP routes served by `Function::ApiKeyConnect`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::wiring::telemetry::init_lambda();
    let app = shared::App::from_env().await?;
    lambda_http::run(shared::entry::http::service(app, shared::entry::http::Function::ApiKeyConnect)).await
}
