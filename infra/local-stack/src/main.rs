//! `cargo run -p local-stack`: the whole product on 127.0.0.1:3000.

use std::sync::Arc;
use std::time::Duration;

use local_stack::{devtoken::DevTokens, sandbox::Sandbox, workers, LocalStack};
use shared::adapters::{aws, clock::SystemClock};
use shared::app::{App, EmbeddedPorts};
use shared::config::{Backend, Config};
use shared::ports::Clock;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shared::telemetry::init_local();
    let port: u16 = std::env::var("PORT")
        .ok()
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let env = |k: &str| std::env::var(k).ok();
    let mut config = Config::from_lookup(|k| match k {
        // Local defaults: sandbox on, data under .local/data, this origin allowed.
        "SANDBOX_PLATFORMS" => env(k).or(Some("true".into())),
        "DATA_DIR" => env(k).or(Some(".local/data".into())),
        "PUBLIC_BASE_URL" => env(k).or(Some(base.clone())),
        "ALLOWED_ORIGINS" => env(k).or(Some(base.clone())),
        "CONNECTIONS_BACKEND" | "SYNC_QUEUE_URL" | "NOTIFY_QUEUE_URL" => {
            env(k).or(match env("CONNECTIONS_BACKEND").as_deref() {
                // Queue URLs are provisioned below for an endpoint.
                Some("aws") if k != "CONNECTIONS_BACKEND" && env("AWS_ENDPOINT_URL").is_some() => {
                    Some("pending".into())
                }
                _ => None,
            })
        }
        _ => env(k),
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (app, embedded_queue, data_dir) = match config.backend.clone() {
        Backend::Embedded { data_dir } => {
            let ports = EmbeddedPorts::open(&config, data_dir.as_deref(), clock.clone())?;
            let queue = ports.queue.clone();
            (
                App::assemble(config, ports.ports(clock.clone()))?,
                Some(queue),
                data_dir,
            )
        }
        Backend::Aws { endpoint } => {
            let sdk = match &endpoint {
                Some(e) => {
                    let region = env("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
                    let sdk = aws::sdk_config_for_endpoint(e, &region).await;
                    // Against moto or LocalStack, create what the template would.
                    let resources = aws::provision(
                        &sdk,
                        &format!("connections-{}", config.stage),
                        config.max_receives,
                    )
                    .await?;
                    config.table_name = resources.table;
                    config.bucket_name = resources.bucket;
                    config.queue_urls = resources.queue_urls;
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
        .then(|| Arc::new(Sandbox::new(clock.clone())));
    if sandbox.is_some() {
        local_stack::seed_sandbox_app(&app).await?;
    }
    let stack = Arc::new(LocalStack {
        app,
        tokens,
        sandbox,
        embedded_queue,
    });
    let sweep_every: u64 = env("SWEEP_INTERVAL_SECONDS")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(900);
    workers::spawn(stack.clone(), Duration::from_secs(sweep_every.max(1)));
    let backend = match &stack.app.config.backend {
        Backend::Embedded { data_dir } => format!(
            "embedded state in {}",
            data_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or("memory".into())
        ),
        Backend::Aws { endpoint } => format!(
            "AWS adapters at {}",
            endpoint.as_deref().unwrap_or("the default AWS endpoint")
        ),
    };
    println!("connections local stack listening on {base} ({backend})");
    println!("  health:    {base}/health");
    println!("  catalog:   {base}/v1/providers");
    println!("  dev token: curl -s -X POST {base}/dev/token -H 'content-type: application/json' -d '{{\"workspace_id\":\"ws_demo\",\"user_id\":\"u_admin\",\"role\":\"admin\",\"email\":\"admin@example.com\"}}'");
    local_stack::serve(listener, stack).await?;
    Ok(())
}
