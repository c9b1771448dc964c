//! Environment → configuration → AWS or embedded adapters → the [`App`]
//! the flows run on. Used by `functions/` (every Lambda's cold start), the
//! local stack and the tests; nothing in the library below imports it.

pub mod functions;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::{aws, clock::SystemClock, embedded, http::ReqwestHttp};
use crate::catalog::{CatalogOptions, LazyCatalog};
use crate::config::{Backend, Config};
use crate::domain::error::Error;
pub use crate::flows::App;
use crate::ports::{Clock, EventBus, JobQueue, Mailer, PlatformHttp, RecordSink, SecretVault, StateStore};
use crate::store::vault_packs::PackedVault;
use crate::store::Repo;

/// The ports, for building an [`App`] by hand (tests, the local stack).
pub struct Ports {
    pub store: Arc<dyn StateStore>,
    pub vault: Arc<dyn SecretVault>,
    pub queue: Arc<dyn JobQueue>,
    pub mailer: Arc<dyn Mailer>,
    pub sink: Arc<dyn RecordSink>,
    pub events: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
}

/// The embedded adapters, concrete, so the local stack and tests can reach
/// their extras (queue wake-ups, sent mail, dead letters).
pub struct EmbeddedPorts {
    pub store: Arc<embedded::MemoryStore>,
    pub vault: Arc<embedded::MemoryVault>,
    pub queue: Arc<embedded::MemoryQueue>,
    pub mailer: Arc<embedded::MemoryMailer>,
    pub sink: Arc<embedded::FileSink>,
    pub events: Arc<embedded::FileEventBus>,
}

impl EmbeddedPorts {
    pub fn open(config: &Config, data_dir: Option<&std::path::Path>, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let io = |what: &str, e: std::io::Error| Error::Config(format!("embedded {what}: {e}"));
        Ok(Self {
            store: Arc::new(embedded::MemoryStore::open(data_dir).map_err(|e| io("store", e))?),
            vault: Arc::new(embedded::MemoryVault::open(data_dir).map_err(|e| io("vault", e))?),
            queue: Arc::new(
                embedded::MemoryQueue::open(data_dir, clock, config.max_receives).map_err(|e| io("queue", e))?,
            ),
            mailer: Arc::new(embedded::MemoryMailer::open(data_dir).map_err(|e| io("mailer", e))?),
            sink: Arc::new(
                embedded::FileSink::open(data_dir)
                    .map_err(|e| io("sink", e))?
                    .with_presign_base(&config.public_base_url),
            ),
            events: Arc::new(embedded::FileEventBus::open(data_dir).map_err(|e| io("event bus", e))?),
        })
    }

    pub fn ports(&self, clock: Arc<dyn Clock>) -> Ports {
        Ports {
            store: self.store.clone(),
            vault: self.vault.clone(),
            queue: self.queue.clone(),
            mailer: self.mailer.clone(),
            sink: self.sink.clone(),
            events: self.events.clone(),
            clock,
        }
    }
}

impl App {
    /// Builds the app from the environment (every Lambda's cold start).
    pub async fn from_env() -> Result<Self, Error> {
        Self::from_config(Config::from_env()?).await
    }

    pub async fn from_config(config: Config) -> Result<Self, Error> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ports = match &config.backend {
            Backend::Embedded { data_dir } => {
                EmbeddedPorts::open(&config, data_dir.as_deref(), clock.clone())?.ports(clock)
            }
            Backend::Aws { endpoint } => {
                // Loaded, and each client built, on first use.
                let sdk = match endpoint {
                    Some(e) => {
                        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
                        aws::LazySdk::for_endpoint(e, &region)
                    }
                    None => aws::LazySdk::from_env(),
                };
                Self::lazy_aws_ports(&config, sdk, clock)
            }
        };
        Self::assemble(config, ports)
    }

    /// The AWS adapters on one SDK configuration.
    pub fn aws_ports(config: &Config, sdk: &aws_config::SdkConfig, clock: Arc<dyn Clock>) -> Ports {
        Self::lazy_aws_ports(config, aws::LazySdk::ready(sdk.clone()), clock)
    }

    /// The AWS adapters, each building its client on first use.
    pub fn lazy_aws_ports(config: &Config, sdk: aws::LazySdk, clock: Arc<dyn Clock>) -> Ports {
        use aws::Lazy;
        Ports {
            store: Arc::new(aws::DynamoStore::new(
                Lazy::new(sdk.clone(), aws_sdk_dynamodb::Client::new),
                &config.table_name,
            )),
            vault: Arc::new(aws::SecretsManagerVault::new(
                Lazy::new(sdk.clone(), aws_sdk_secretsmanager::Client::new),
                config.secrets_kms_key_id.clone(),
            )),
            queue: Arc::new(aws::SqsQueue::new(
                Lazy::new(sdk.clone(), aws_sdk_sqs::Client::new),
                config.queue_urls.clone(),
            )),
            mailer: Arc::new(aws::SesMailer::new(
                Lazy::new(sdk.clone(), aws_sdk_sesv2::Client::new),
                config.ses_configuration_set.clone(),
            )),
            sink: Arc::new(aws::S3Sink::new(sdk.clone(), &config.bucket_name)),
            events: match &config.event_bus_name {
                Some(bus) => Arc::new(aws::EventBridgeBus::new(
                    Lazy::new(sdk, aws_sdk_eventbridge::Client::new),
                    bus,
                    &config.event_source,
                )),
                None => Arc::new(crate::adapters::NoBus),
            },
            clock,
        }
    }

    /// An app over the given ports, with the production HTTP client.
    pub fn assemble(config: Config, ports: Ports) -> Result<Self, Error> {
        let http = ReqwestHttp::new(Duration::from_secs(config.http_timeout_seconds), config.allow_loopback_platforms)?;
        Self::assemble_with_http(config, ports, Arc::new(http))
    }

    pub fn assemble_with_http(config: Config, ports: Ports, http: Arc<dyn PlatformHttp>) -> Result<Self, Error> {
        let catalog = LazyCatalog::new(CatalogOptions {
            public_base_url: config.public_base_url.clone(),
            include_sandbox: config.sandbox_platforms,
            overrides: config.catalog_overrides.clone(),
        })?;
        let packs =
            Arc::new(PackedVault::new(ports.vault, ports.store.clone(), ports.clock.clone(), config.vault_pack_size));
        Ok(Self {
            config: Arc::new(config),
            catalog: Arc::new(catalog),
            repo: Repo::new(ports.store),
            vault: packs.clone(),
            packs,
            queue: ports.queue,
            mailer: ports.mailer,
            sink: ports.sink,
            events: ports.events,
            clock: ports.clock,
            http,
            app_cache: Arc::default(),
            token_key: Arc::default(),
            lists_trusted: Arc::default(),
        })
    }
}
