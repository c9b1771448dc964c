//! AWS adapters. Clients are built once per Lambda instance from the
//! environment (`aws-config`), or from an explicit endpoint (moto server,
//! LocalStack) for local runs and tests.

mod dynamo;
mod eventbridge;
mod s3;
mod secrets;
mod ses;
mod sqs;

pub use dynamo::DynamoStore;
pub use eventbridge::{create_bus, EventBridgeBus};
pub use s3::client as s3_client;
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

/// The SDK configuration from the environment (the Lambda role, region,
/// `AWS_ENDPOINT_URL` when set).
pub async fn sdk_config_from_env() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// The SDK configuration for an explicit endpoint with static credentials
/// (moto server, LocalStack).
pub async fn sdk_config_for_endpoint(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
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
    s3::create_bucket(&s3::client(sdk), &bucket).await?;
    let event_bus = format!("{prefix}-events");
    create_bus(&aws_sdk_eventbridge::Client::new(sdk), &event_bus).await?;
    Ok(Resources { table, bucket, queue_urls, event_bus })
}
