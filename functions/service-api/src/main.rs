//! The service-api Lambda: the routes for the deployer's own services
//! (AWS IAM authorization), served by `Function::ServiceApi`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::wiring::telemetry::init_lambda();
    let app = shared::App::from_env().await?;
    lambda_http::run(shared::entry::http::service(app, shared::entry::http::Function::ServiceApi)).await
}
