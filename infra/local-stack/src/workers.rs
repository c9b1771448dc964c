//! The queue consumers and the sweep schedule, in-process: what SQS event
//! source mappings and the EventBridge schedule do in AWS. Each batch goes
//! through the same handler as the Lambda, and only the messages it did not
//! report as failed are deleted.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use shared::entry::lambda as jobs;
use shared::ports::{QueueKind, Received};
use shared::Error;

use crate::LocalStack;

/// Visibility timeout of a received batch (as the template sets for the queues).
pub const VISIBILITY_SECONDS: u32 = 120;
/// How long one sync job may run locally before it continues in a new one.
pub const SYNC_BUDGET_SECONDS: u64 = 90;

fn to_event(messages: &[Received]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = Some(m.id.clone());
            r.receipt_handle = Some(m.receipt.clone());
            r.body = Some(m.body.clone());
            r.attributes.insert("ApproximateReceiveCount".into(), m.receive_count.to_string());
            r.event_source = Some("aws:sqs".into());
            r
        })
        .collect();
    event
}

/// Receives one batch of a queue and runs its handler; returns how many
/// messages were received.
pub async fn run_batch(stack: &LocalStack, queue: QueueKind) -> Result<usize, Error> {
    let messages = stack.app.queue.receive(queue, 10, VISIBILITY_SECONDS).await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let event = to_event(&messages);
    let response = match queue {
        QueueKind::Sync => {
            // A Lambda-sized budget: long syncs continue in a new job.
            let budget = shared::flows::sync::Budget::until(
                std::time::Instant::now() + Duration::from_secs(SYNC_BUDGET_SECONDS),
            );
            jobs::sync_worker(&stack.app, event, budget).await
        }
        QueueKind::Notify => jobs::notifier(&stack.app, event).await,
    };
    let failed: HashSet<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    for m in messages.iter().filter(|m| !failed.contains(&m.id)) {
        stack.app.queue.ack(queue, &m.receipt).await?;
    }
    Ok(messages.len())
}

/// Runs batches until the queue has nothing visible (tests and scripts).
pub async fn drain(stack: &LocalStack, queue: QueueKind) -> Result<usize, Error> {
    let mut total = 0;
    loop {
        match run_batch(stack, queue).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

async fn consume(stack: Arc<LocalStack>, queue: QueueKind) {
    loop {
        // Register for wake-ups before looking, so no send is missed.
        let woken = stack.embedded_queue.as_ref().map(|q| q.clone());
        let notified = woken.as_ref().map(|q| q.sent_notify());
        let mut notified = notified.map(Box::pin);
        if let Some(n) = notified.as_mut() {
            n.as_mut().enable();
        }
        let handled = match run_batch(&stack, queue).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(queue = queue.as_str(), error = %e, "queue consumer");
                0
            }
        };
        if handled > 0 {
            continue;
        }
        // Nothing visible: wait for a send, or for the next delayed message,
        // or poll (AWS backend) every second.
        let wait = match &woken {
            Some(q) => q
                .next_visible_at(queue)
                .map(|at| (at - stack.app.clock.now().timestamp_millis()).clamp(10, 30_000) as u64)
                .unwrap_or(30_000),
            None => 1_000,
        };
        match notified {
            Some(n) => {
                let _ = tokio::time::timeout(Duration::from_millis(wait), n).await;
            }
            None => tokio::time::sleep(Duration::from_millis(wait)).await,
        }
    }
}

async fn schedule_sweep(stack: Arc<LocalStack>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        if let Err(e) = shared::flows::sweep::sweep(&stack.app).await {
            tracing::error!(error = %e, "expiry sweep");
        }
    }
}

/// Starts the consumers of every queue and the sweep schedule.
pub fn spawn(stack: Arc<LocalStack>, sweep_every: Duration) {
    for queue in QueueKind::ALL {
        tokio::spawn(consume(stack.clone(), queue));
    }
    tokio::spawn(schedule_sweep(stack, sweep_every));
}
