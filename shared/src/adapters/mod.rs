//! Implementations of the ports: `aws` (DynamoDB, Secrets Manager, SQS,
//! SES v2, S3) and `embedded` (in-process, persisted under a data folder),
//! plus the platform HTTP client and the clocks.

pub mod aws;
pub mod clock;
pub mod embedded;
pub mod http;
