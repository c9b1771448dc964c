use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use super::JsonFile;
use crate::domain::error::QueueError;
use crate::ports::{Clock, JobQueue, QueueKind, Received};

/// The largest message SQS takes.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Message {
    id: String,
    body: String,
    /// Epoch milliseconds from which it can be received.
    visible_at: i64,
    receive_count: u32,
    /// The receipt of the current receive, if any.
    receipt: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct Queues {
    live: BTreeMap<String, Vec<Message>>,
    dead: BTreeMap<String, Vec<Message>>,
}

/// The embedded queue: SQS semantics (delays, visibility timeouts, receive
/// counts, a dead-letter queue after `max_receives`), persisted to
/// `queues.json` under the data folder.
pub struct MemoryQueue {
    queues: Mutex<Queues>,
    file: JsonFile,
    clock: Arc<dyn Clock>,
    max_receives: u32,
    notify: Notify,
}

impl MemoryQueue {
    pub fn open(dir: Option<&Path>, clock: Arc<dyn Clock>, max_receives: u32) -> std::io::Result<Self> {
        let file = JsonFile::new(dir, "queues.json");
        let mut queues: Queues = file.load()?;
        // Receipts die with the process that held them.
        for m in queues.live.values_mut().flatten() {
            m.receipt = None;
        }
        Ok(Self { queues: Mutex::new(queues), file, clock, max_receives, notify: Notify::new() })
    }

    /// A future that resolves at the next send (to wake consumers without
    /// polling); `enable` it before looking at the queue.
    pub fn sent_notify(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Epoch milliseconds of the next message that becomes visible, if any.
    pub fn next_visible_at(&self, queue: QueueKind) -> Option<i64> {
        let q = self.queues.lock().expect("queue lock");
        q.live.get(queue.as_str()).and_then(|v| v.iter().map(|m| m.visible_at).min())
    }

    /// Bodies of the messages that landed in the dead-letter queue.
    pub fn dead_letters(&self, queue: QueueKind) -> Vec<String> {
        let q = self.queues.lock().expect("queue lock");
        q.dead.get(queue.as_str()).map(|v| v.iter().map(|m| m.body.clone()).collect()).unwrap_or_default()
    }

    /// How many messages wait (visible or not).
    pub fn depth(&self, queue: QueueKind) -> usize {
        let q = self.queues.lock().expect("queue lock");
        q.live.get(queue.as_str()).map_or(0, Vec::len)
    }

    fn save(&self, q: &Queues) -> Result<(), QueueError> {
        self.file.save(q).map_err(|e| QueueError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, queue: QueueKind, body: &str, delay_seconds: u32) -> Result<String, QueueError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(body.len()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let visible_at = self.clock.now().timestamp_millis() + i64::from(delay_seconds.min(900)) * 1000;
        {
            let mut q = self.queues.lock().expect("queue lock");
            let live = q.live.entry(queue.as_str().to_owned()).or_default();
            live.push(Message { id: id.clone(), body: body.to_owned(), visible_at, receive_count: 0, receipt: None });
            if let Err(e) = self.save(&q) {
                q.live.entry(queue.as_str().to_owned()).or_default().pop();
                return Err(e);
            }
        }
        self.notify.notify_waiters();
        Ok(id)
    }

    async fn receive(&self, queue: QueueKind, max: u32, visibility_seconds: u32) -> Result<Vec<Received>, QueueError> {
        let now = self.clock.now().timestamp_millis();
        let mut q = self.queues.lock().expect("queue lock");
        let Queues { live, dead } = &mut *q;
        let live = live.entry(queue.as_str().to_owned()).or_default();
        // Redrive: a visible message received max_receives times goes to the DLQ.
        let (poison, keep): (Vec<Message>, Vec<Message>) =
            std::mem::take(live).into_iter().partition(|m| m.visible_at <= now && m.receive_count >= self.max_receives);
        *live = keep;
        dead.entry(queue.as_str().to_owned()).or_default().extend(poison);
        let mut out = Vec::new();
        for m in live.iter_mut().filter(|m| m.visible_at <= now).take(max.clamp(1, 10) as usize) {
            m.receive_count += 1;
            m.visible_at = now + i64::from(visibility_seconds) * 1000;
            let receipt = format!("{}:{}", m.id, m.receive_count);
            m.receipt = Some(receipt.clone());
            out.push(Received { id: m.id.clone(), receipt, body: m.body.clone(), receive_count: m.receive_count });
        }
        self.save(&q)?;
        Ok(out)
    }

    async fn ack(&self, queue: QueueKind, receipt: &str) -> Result<(), QueueError> {
        let mut q = self.queues.lock().expect("queue lock");
        if let Some(live) = q.live.get_mut(queue.as_str()) {
            live.retain(|m| m.receipt.as_deref() != Some(receipt));
        }
        self.save(&q)
    }
}
