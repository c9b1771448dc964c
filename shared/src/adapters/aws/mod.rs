//! AWS adapters. Clients are built once per Lambda instance from the
//! environment (`aws-config`), or from an explicit endpoint (moto server,
//! LocalStack) for local runs and tests.

mod dynamo;
mod eventbridge;
mod http_client;
mod s3;
mod secrets;
mod ses;
mod sqs;

pub use dynamo::DynamoStore;
pub use eventbridge::{create_bus, EventBridgeBus};
pub use s3::S3Sink;
pub use secrets::SecretsManagerVault;
pub use ses::SesMailer;
pub use sqs::SqsQueue;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::collections::HashMap;

use crate::ports::QueueKind;

/// An AWS error as text: code and message of the service, never request
/// contents (so never a secret value).
pub(crate) fn describe<E>(e: &E) -> String
where
    E: std::error::Error + 'static,
{
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}

/// Where the SDK configuration comes from.
#[derive(Clone)]
enum Source {
    Ready(Box<SdkConfig>),
    Env,
    Endpoint { endpoint: String, region: String },
}

/// The SDK configuration, loaded when the first client needs it (a cold
/// start reads no profile and builds no credential chain before its first
/// AWS call), then shared by every client.
#[derive(Clone)]
pub struct LazySdk {
    source: Source,
    cell: std::sync::Arc<tokio::sync::OnceCell<SdkConfig>>,
}

impl LazySdk {
    pub fn ready(sdk: SdkConfig) -> Self {
        Self { source: Source::Ready(Box::new(sdk)), cell: Default::default() }
    }

    pub fn from_env() -> Self {
        Self { source: Source::Env, cell: Default::default() }
    }

    pub fn for_endpoint(endpoint: &str, region: &str) -> Self {
        Self {
            source: Source::Endpoint { endpoint: endpoint.to_owned(), region: region.to_owned() },
            cell: Default::default(),
        }
    }

    pub async fn get(&self) -> &SdkConfig {
        self.cell
            .get_or_init(|| async {
                match &self.source {
                    Source::Ready(sdk) => (**sdk).clone(),
                    Source::Env => sdk_config_from_env().await,
                    Source::Endpoint { endpoint, region } => sdk_config_for_endpoint(endpoint, region).await,
                }
            })
            .await
    }
}

/// A service client built on first use: a function builds only the
/// clients it calls.
pub struct Lazy<C> {
    sdk: LazySdk,
    cell: std::sync::Arc<tokio::sync::OnceCell<C>>,
    make: fn(&SdkConfig) -> C,
}

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self { sdk: self.sdk.clone(), cell: self.cell.clone(), make: self.make }
    }
}

impl<C> Lazy<C> {
    pub fn new(sdk: LazySdk, make: fn(&SdkConfig) -> C) -> Self {
        Self { sdk, cell: Default::default(), make }
    }

    pub async fn get(&self) -> &C {
        self.cell.get_or_init(|| async { (self.make)(self.sdk.get().await) }).await
    }
}

/// The SDK configuration from the environment (the Lambda role, region,
/// `AWS_ENDPOINT_URL` when set).
pub async fn sdk_config_from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client::sdk_http_client()).load().await
}

/// The SDK configuration for an explicit endpoint with static credentials
/// (moto server, LocalStack).
pub async fn sdk_config_for_endpoint(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .http_client(http_client::sdk_http_client())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
}

/// The names of the deployment's resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub table: String,
    pub bucket: String,
    pub queue_urls: HashMap<QueueKind, String>,
    pub event_bus: String,
}

/// Creates the table (with its due-work index and TTL), the queues (each
/// with a dead-letter queue), the bucket and the event bus, as `template.yaml` does. For
/// moto and LocalStack; a real deployment gets them from the template.
pub async fn provision(sdk: &SdkConfig, prefix: &str, max_receives: u32) -> Result<Resources, String> {
    let table = format!("{prefix}-state");
    dynamo::create_table(&aws_sdk_dynamodb::Client::new(sdk), &table).await?;
    let sqs_client = aws_sdk_sqs::Client::new(sdk);
    let mut queue_urls = HashMap::new();
    for kind in QueueKind::ALL {
        let url = sqs::create_queue_with_dlq(&sqs_client, &format!("{prefix}-{}", kind.as_str()), max_receives).await?;
        queue_urls.insert(kind, url);
    }
    let bucket = format!("{prefix}-records");
    s3::create_bucket(sdk, &bucket).await?;
    let event_bus = format!("{prefix}-events");
    create_bus(&aws_sdk_eventbridge::Client::new(sdk), &event_bus).await?;
    Ok(Resources { table, bucket, queue_urls, event_bus })
}
