use async_trait::async_trait;
use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::describe;
use crate::domain::error::BusError;
use crate::domain::events::ServiceEvent;
use crate::ports::EventBus;

/// The event bus on Amazon EventBridge: `source` is the deployment's event
/// source, `detail-type` the event's `type`, `detail` the whole event.
#[derive(Clone)]
pub struct EventBridgeBus {
    client: super::Lazy<Client>,
    bus: String,
    source: String,
}

impl EventBridgeBus {
    pub fn new(client: super::Lazy<Client>, bus: &str, source: &str) -> Self {
        Self { client, bus: bus.to_owned(), source: source.to_owned() }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, event: &ServiceEvent) -> Result<(), BusError> {
        let detail = serde_json::to_string(event).map_err(|e| BusError::Rejected(e.to_string()))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(event.type_name())
            .detail(detail)
            .time(aws_sdk_eventbridge::primitives::DateTime::from_secs(event.occurred_at.timestamp()))
            .build();
        let out = self.client.get().await.put_events().entries(entry).send().await.map_err(|e| {
            let throttled = e.code() == Some("ThrottlingException");
            if throttled {
                BusError::Throttled
            } else {
                BusError::Unavailable(describe(&e))
            }
        })?;
        // PutEvents answers 200 with per-entry failures.
        if out.failed_entry_count > 0 {
            let entry = out.entries().first();
            let code = entry.and_then(|e| e.error_code()).unwrap_or("unknown");
            let message = entry.and_then(|e| e.error_message()).unwrap_or("");
            return Err(match code {
                "ThrottlingException" => BusError::Throttled,
                "InternalFailure" => BusError::Unavailable(format!("{code}: {message}")),
                _ => BusError::Rejected(format!("{code}: {message}")),
            });
        }
        Ok(())
    }
}

/// Creates an event bus (moto and tests; the template creates it in AWS).
pub async fn create_bus(client: &Client, name: &str) -> Result<(), String> {
    match client.create_event_bus().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_already_exists_exception()) => Ok(()),
        Err(e) => Err(describe(&e)),
    }
}
