use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use std::collections::HashMap;

use super::describe;
use crate::adapters::embedded::MAX_MESSAGE_BYTES;
use crate::domain::error::QueueError;
use crate::ports::{JobQueue, QueueKind, Received};

/// The job queue on SQS; each queue has a DLQ by redrive policy.
#[derive(Clone)]
pub struct SqsQueue {
    client: super::Lazy<Client>,
    urls: HashMap<QueueKind, String>,
}

impl SqsQueue {
    pub fn new(client: super::Lazy<Client>, urls: HashMap<QueueKind, String>) -> Self {
        Self { client, urls }
    }

    fn url(&self, queue: QueueKind) -> Result<&str, QueueError> {
        self.urls
            .get(&queue)
            .map(String::as_str)
            .ok_or_else(|| QueueError::Unavailable(format!("no URL configured for the {} queue", queue.as_str())))
    }
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> QueueError {
    QueueError::Unavailable(describe(&e))
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, queue: QueueKind, body: &str, delay_seconds: u32) -> Result<String, QueueError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(body.len()));
        }
        let out = self
            .client
            .get()
            .await
            .send_message()
            .queue_url(self.url(queue)?)
            .message_body(body)
            .delay_seconds(delay_seconds.min(900) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn receive(&self, queue: QueueKind, max: u32, visibility_seconds: u32) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .get()
            .await
            .receive_message()
            .queue_url(self.url(queue)?)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility_seconds as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    async fn ack(&self, queue: QueueKind, receipt: &str) -> Result<(), QueueError> {
        self.client
            .get()
            .await
            .delete_message()
            .queue_url(self.url(queue)?)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Creates `{name}` with a redrive policy to `{name}-dlq` (idempotent).
pub(crate) async fn create_queue_with_dlq(client: &Client, name: &str, max_receives: u32) -> Result<String, String> {
    let dlq = client.create_queue().queue_name(format!("{name}-dlq")).send().await.map_err(|e| describe(&e))?;
    let dlq_url = dlq.queue_url.ok_or("no DLQ URL")?;
    let attrs = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let dlq_arn = attrs.attributes.and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned()).ok_or("no DLQ ARN")?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}).to_string();
    let q = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    q.queue_url.ok_or_else(|| "no queue URL".to_owned())
}
