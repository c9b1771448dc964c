//! The connect-start Lambda: HTTP routes served by `Function::ConnectStart`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_lambda();
    let app = shared::App::from_env().await?;
    lambda_http::run(shared::api::service(app, shared::api::Function::ConnectStart)).await
}
