//! Implementations of the ports: `aws` (DynamoDB, Secrets Manager, SQS,
//! SES v2, S3, EventBridge) and `embedded` (in-process, persisted under a data folder),
//! plus the platform HTTP client and the clocks.

pub mod aws;
pub mod clock;
pub mod embedded;
pub mod http;
#[cfg(test)]
pub(crate) mod loopback;
pub mod tls;

/// The event bus of a deployment without one: events still reach the
/// webhook, when there is one.
pub struct NoBus;

#[async_trait::async_trait]
impl crate::ports::EventBus for NoBus {
    async fn publish(
        &self,
        _event: &crate::domain::events::ServiceEvent,
    ) -> Result<(), crate::domain::error::BusError> {
        Ok(())
    }
}
