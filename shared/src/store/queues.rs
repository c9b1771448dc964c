//! Typed sending on the queue port: each message type knows its queue, and
//! is serialized in one place.

use serde::Serialize;

use crate::domain::error::Error;
use crate::domain::messages::{AlertEvent, SyncJob};
use crate::ports::{JobQueue, QueueKind};

/// A message of one of the service's queues.
pub trait Message: Serialize {
    const QUEUE: QueueKind;
}

impl Message for SyncJob {
    const QUEUE: QueueKind = QueueKind::Sync;
}

impl Message for AlertEvent {
    const QUEUE: QueueKind = QueueKind::Notify;
}

/// Sends a message as JSON to its queue, visible after `delay_seconds`.
pub async fn send<M: Message>(queue: &dyn JobQueue, message: &M, delay_seconds: u32) -> Result<String, Error> {
    let body = serde_json::to_string(message).map_err(|e| Error::Config(format!("unserializable message: {e}")))?;
    Ok(queue.send(M::QUEUE, &body, delay_seconds).await?)
}
