//! Building the local stack from its environment.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::{aws, clock::SystemClock};
use shared::config::{Backend, Config};
use shared::ports::Clock;
use shared::wiring::{App, EmbeddedPorts};

use crate::{devtoken::DevTokens, sandbox::Sandbox, seed_sandbox_app, workers, LocalStack};

pub type BootError = Box<dyn std::error::Error + Send + Sync>;

/// A started local stack: serve it on the listener it was booted for.
pub struct Booted {
    pub stack: Arc<LocalStack>,
    /// What to print: where it listens and how to start.
    pub banner: String,
}

/// Builds the stack for `listener` from `env` (local defaults: sandbox on,
/// state under `.local/data`, this origin allowed), and starts its queue
/// consumers and sweep schedule.
pub async fn boot(
    listener: &tokio::net::TcpListener,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Booted, BootError> {
    let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let aws_endpoint = env("CONNECTIONS_BACKEND").as_deref() == Some("aws") && env("AWS_ENDPOINT_URL").is_some();
    let mut config = Config::from_lookup(|k| match k {
        "SANDBOX_PLATFORMS" => env(k).or(Some("true".into())),
        // The sandboxes live on this machine.
        "ALLOW_LOOPBACK_PLATFORMS" => env(k).or(Some("true".into())),
        "DATA_DIR" => env(k).or(Some(".local/data".into())),
        "PUBLIC_BASE_URL" => env(k).or(Some(base.clone())),
        "ALLOWED_ORIGINS" => env(k).or(Some(base.clone())),
        // Against an endpoint the queues are provisioned below.
        "SYNC_QUEUE_URL" | "NOTIFY_QUEUE_URL" if aws_endpoint => env(k).or(Some("provisioned".into())),
        _ => env(k),
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (app, embedded, data_dir) = match config.backend.clone() {
        Backend::Embedded { data_dir } => {
            let ports = EmbeddedPorts::open(&config, data_dir.as_deref(), clock.clone())?;
            let queue = ports.queue.clone();
            let sink = ports.sink.clone();
            (App::assemble(config, ports.ports(clock.clone()))?, Some((queue, sink)), data_dir)
        }
        Backend::Aws { endpoint } => {
            let sdk = match &endpoint {
                Some(e) => {
                    let region = env("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
                    let sdk = aws::sdk_config_for_endpoint(e, &region).await;
                    // Against moto or LocalStack, create what the template would.
                    let prefix = format!("connections-{}", config.stage);
                    let resources = aws::provision(&sdk, &prefix, config.max_receives).await?;
                    config.table_name = resources.table;
                    config.bucket_name = resources.bucket;
                    config.queue_urls = resources.queue_urls;
                    config.event_bus_name = Some(resources.event_bus);
                    sdk
                }
                None => aws::sdk_config_from_env().await,
            };
            let ports = App::aws_ports(&config, &sdk, clock.clone());
            (App::assemble(config, ports)?, None, None)
        }
    };
    let tokens = DevTokens::load_or_create(data_dir.as_deref())?;
    let sandbox = app
        .config
        .sandbox_platforms
        .then(|| Arc::new(Sandbox::new(clock.clone(), format!("{}/sandbox", app.config.public_base_url))));
    if sandbox.is_some() {
        seed_sandbox_app(&app).await?;
    }
    let webhook = match shared::flows::events::ensure_webhook_secret(&app).await? {
        None => String::new(),
        Some(secret) => {
            // The receiver needs the secret to check signatures: it goes to a
            // private file in the data folder, never to the console.
            let place = match &data_dir {
                Some(dir) => {
                    let path = dir.join("webhook-secret");
                    shared::adapters::embedded::write_secret_file(
                        &path,
                        secrecy::ExposeSecret::expose_secret(&secret),
                    )?;
                    format!("secret in {}", path.display())
                }
                None => format!("secret in the vault as {}", app.config.webhook_secret_name),
            };
            format!("\n  webhook:   {} ({place})", app.config.webhook_url.as_deref().unwrap_or_default())
        }
    };
    let events = match &data_dir {
        Some(dir) => {
            format!("\n  events:    {}", dir.join(shared::adapters::embedded::FileEventBus::FILE_NAME).display())
        }
        None => String::new(),
    };
    let (embedded_queue, embedded_sink) = embedded.unzip();
    let (service_token, service_token_file) = crate::devtoken::ServiceToken::load_or_create(data_dir.as_deref())?;
    let service = match &service_token_file {
        Some(path) => format!("\n  service:   /v1/service/... with the bearer token in {}", path.display()),
        None => String::new(),
    };
    let stack = Arc::new(LocalStack { app, tokens, service_token, sandbox, embedded_queue, embedded_sink });
    let sweep_every: u64 = env("SWEEP_INTERVAL_SECONDS").map(|s| s.parse()).transpose()?.unwrap_or(60);
    workers::spawn(stack.clone(), Duration::from_secs(sweep_every.max(1)));
    let backend = match &stack.app.config.backend {
        Backend::Embedded { data_dir } => format!(
            "embedded state in {}",
            data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "memory".into())
        ),
        Backend::Aws { endpoint } => {
            format!("AWS adapters at {}", endpoint.as_deref().unwrap_or("the default AWS endpoint"))
        }
    };
    let banner = format!(
        "connections local stack listening on {base} ({backend})\n  \
         console:   {base}/  (open it in a browser)\n  \
         health:    {base}/health\n  \
         catalog:   {base}/v1/providers\n  \
         outbox:    {base}/local/outbox  (alert emails sent)\n  \
         dev token: curl -s -X POST {base}/dev/token -H 'content-type: application/json' \
         -d '{{\"workspace_id\":\"ws_demo\",\"user_id\":\"u_admin\",\"role\":\"admin\",\"email\":\"admin@example.com\"}}'\
         {events}{webhook}{service}"
    );
    Ok(Booted { stack, banner })
}
