//! The local stack: the whole product on one machine. Every HTTP function
//! behind one port with API-Gateway-shaped routing and JWT verification, the
//! queue consumers and the sweep schedule in-process, embedded state by
//! default (or the AWS adapters against any endpoint), and the sandbox
//! platforms under `/sandbox`.

mod boot;
pub mod console;
pub mod devtoken;
pub mod gateway;
mod outbox;
pub mod sandbox;
mod uploads;
pub mod workers;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpListener;

use shared::adapters::embedded::MemoryQueue;
use shared::App;

pub use boot::{boot, BootError, Booted};

/// Everything the local stack serves with.
pub struct LocalStack {
    pub app: App,
    pub tokens: devtoken::DevTokens,
    /// The service routes' bearer token (AWS IAM in AWS).
    pub service_token: devtoken::ServiceToken,
    /// `None` when the sandbox platforms are off.
    pub sandbox: Option<Arc<sandbox::Sandbox>>,
    /// The embedded queue, when embedded, for wake-ups without polling.
    pub embedded_queue: Option<Arc<MemoryQueue>>,
    /// The embedded sink, when embedded: presigned uploads land in it.
    pub embedded_sink: Option<Arc<shared::adapters::embedded::FileSink>>,
}

/// Stores the sandbox OAuth app's credentials in the vault, as an operator
/// stores a real platform's (`{prefix}/apps/{platform}`).
pub async fn seed_sandbox_app(app: &App) -> Result<(), shared::Error> {
    for platform in ["sandbox_oauth", "sandbox_oauth1"] {
        let secret = shared::domain::SecretRef::for_app(&app.config.secret_prefix, platform);
        if app.vault.get(&secret.0).await?.is_none() {
            let client_secret = secrecy::SecretString::from(sandbox::CLIENT_SECRET.to_owned());
            shared::platform::AppCredentials::store(app.vault.as_ref(), &secret, sandbox::CLIENT_ID, &client_secret)
                .await?;
        }
    }
    Ok(())
}

/// Accepts connections until the listener fails.
pub async fn serve(listener: TcpListener, stack: Arc<LocalStack>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let stack = stack.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let stack = stack.clone();
                async move { Ok::<_, std::convert::Infallible>(gateway::serve_request(stack, req).await) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
}
