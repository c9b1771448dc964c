//! The small traits through which the domain talks to the world. Each has an
//! AWS adapter and an embedded adapter ([`crate::adapters`]); the behaviour
//! tests in `tests/` run the same cases against both.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::error::{BusError, HttpError, MailError, QueueError, SinkError, StoreError, VaultError};
use crate::domain::events::ServiceEvent;

// ---------------------------------------------------------------- state store

/// One stored item: a partition key, a sort key, an optimistic-concurrency
/// version and a JSON body. `due` places it in the sparse due-work index;
/// `expires_at` (epoch seconds) lets the store drop it (TTL); `list_key`
/// places it in the sparse list index of its partition (an order other than
/// its sort key's, kept by the store with the item itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    pub version: u64,
    pub body: serde_json::Value,
    pub due: Option<Due>,
    pub expires_at: Option<i64>,
    pub list_key: Option<String>,
}

/// DynamoDB's item limit, 400 KB (AWS documents "400 KB"; moto refuses past
/// 405,000 bytes): the embedded store refuses what DynamoDB would.
pub const MAX_ITEM_BYTES: usize = 400_000;

impl Item {
    /// The item's size as DynamoDB counts it (names and values): its keys,
    /// its body (maps and lists 3 bytes and 1 an element more, numbers by
    /// their digits, more than DynamoDB counts), and an allowance for the
    /// version, due and expiry attributes, whatever an adapter names them.
    pub fn size(&self) -> usize {
        fn value(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Null | serde_json::Value::Bool(_) => 1,
                serde_json::Value::Number(n) => n.to_string().len(),
                serde_json::Value::String(s) => s.len(),
                serde_json::Value::Array(items) => 3 + items.iter().map(|i| value(i) + 1).sum::<usize>(),
                serde_json::Value::Object(map) => 3 + map.iter().map(|(k, v)| k.len() + value(v) + 1).sum::<usize>(),
            }
        }
        const BOOKKEEPING: usize = 96;
        self.pk.len() + self.sk.len() + self.list_key.as_ref().map_or(0, String::len) + value(&self.body) + BOOKKEEPING
    }
}

/// Where a page of a list index ends (its `next`), as every store writes
/// it: the last item's list key and sort key.
pub fn list_position(list_key: &str, sk: &str) -> String {
    format!("{list_key}\n{sk}")
}

/// The list key and sort key a [`list_position`] names.
pub fn split_list_position(position: &str) -> Option<(&str, &str)> {
    position.split_once('\n')
}

/// A place in the sparse due-work index: a shard (so that one partition never
/// gets hot) and the epoch second the work is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub shard: u16,
    pub at: i64,
}

/// What must hold for a write to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Write unconditionally.
    None,
    /// The item must not exist.
    Absent,
    /// The item must exist.
    Exists,
    /// The item must exist at this version.
    Version(u64),
}

/// One page of a query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// The sort key to continue after, when there is more.
    pub next: Option<String>,
}

#[async_trait]
pub trait StateStore: Send + Sync {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError>;
    /// Writes the item whole, if `pre` holds; else `ConditionFailed`.
    async fn put(&self, item: &Item, pre: Precondition) -> Result<(), StoreError>;
    /// Deletes the item if `pre` holds and returns what was there.
    async fn delete(&self, pk: &str, sk: &str, pre: Precondition) -> Result<Option<Item>, StoreError>;
    /// Items of one partition whose sort key starts with `sk_prefix`, in sort
    /// key order, after `after` when given.
    async fn query(&self, pk: &str, sk_prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError>;
    /// Items of one due shard that are due at or before `until`, earliest first.
    async fn due(&self, shard: u16, until: i64, limit: usize) -> Result<Vec<Item>, StoreError>;
    /// Items of one partition whose list key starts with `prefix`, in list
    /// key order, after `after` (the `next` of the page before: opaque).
    /// The index may trail the items a moment (DynamoDB's is eventually
    /// consistent): each item is read as it is now, and one that has left
    /// the prefix meanwhile is not returned.
    async fn listed(&self, pk: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError>;
}

// --------------------------------------------------------------- secret vault

/// Secrets: tokens, API keys, client secrets. Values are `SecretString`,
/// which never prints.
#[async_trait]
pub trait SecretVault: Send + Sync {
    /// Creates the secret or stores a new version of it.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), VaultError>;
    async fn get(&self, name: &str) -> Result<Option<SecretString>, VaultError>;
    /// Deletes at once (no recovery window); deleting a missing secret is fine.
    async fn delete(&self, name: &str) -> Result<(), VaultError>;

    /// Stores `value` as the version `version` of the secret (created when
    /// missing). Storing the same version with the same value again changes
    /// nothing. What reads which version is up to the caller (the credential
    /// packs keep it in the table: [`crate::store::vault_packs`]).
    async fn put_version(&self, name: &str, version: &str, value: &SecretString) -> Result<(), VaultError>;
    /// That version of the secret; `None` when the secret or the version is not there.
    async fn get_version(&self, name: &str, version: &str) -> Result<Option<SecretString>, VaultError>;

    /// A deployment's own key: the stored value, else `fresh` stored first
    /// (the template creates these keys; the local stack and the tests get
    /// them on first use). Two first uses at once both write; each reads
    /// back, so both end with the one stored last.
    async fn get_or_create(&self, name: &str, fresh: SecretString) -> Result<SecretString, VaultError> {
        if let Some(value) = self.get(name).await? {
            return Ok(value);
        }
        self.put(name, &fresh).await?;
        Ok(self.get(name).await?.unwrap_or(fresh))
    }
}

// ---------------------------------------------------------------------- queue

pub use crate::domain::messages::QueueKind;

/// A message taken from a queue, invisible to others until acked or until
/// its visibility timeout passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// How many times it was received, this time included.
    pub receive_count: u32,
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends a message, visible after `delay_seconds` (at most 900). Returns its id.
    async fn send(&self, queue: QueueKind, body: &str, delay_seconds: u32) -> Result<String, QueueError>;
    /// Receives up to `max` visible messages (in Lambda the event source does
    /// this; the local stack and the tests call it).
    async fn receive(&self, queue: QueueKind, max: u32, visibility_seconds: u32) -> Result<Vec<Received>, QueueError>;
    /// Deletes a received message.
    async fn ack(&self, queue: QueueKind, receipt: &str) -> Result<(), QueueError>;
}

// --------------------------------------------------------------------- mailer

/// One email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Extra headers (`List-Unsubscribe`, `List-Unsubscribe-Post`).
    pub headers: Vec<(String, String)>,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends it; returns the provider's message id.
    async fn send(&self, email: &Email) -> Result<String, MailError>;
}

// ------------------------------------------------------------------ event bus

/// Where the service's events go for the deployer's backend (an EventBridge
/// bus, or a JSON-lines file locally). Webhooks are delivered beside it.
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: &ServiceEvent) -> Result<(), BusError>;
}

// ---------------------------------------------------------------- record sink

/// Where synced records and uploaded files land (S3, or a local folder).
#[async_trait]
pub trait RecordSink: Send + Sync {
    /// Writes the object whole (a rewrite of the same key replaces it).
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), SinkError>;
    async fn get(&self, key: &str) -> Result<Option<Bytes>, SinkError>;
    /// The size of an object in bytes, without reading it.
    async fn size(&self, key: &str) -> Result<Option<u64>, SinkError>;
    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError>;
    /// Deletes an object; deleting a missing one is fine.
    async fn delete(&self, key: &str) -> Result<(), SinkError>;
    /// Reads an object as a stream (constant memory for large files).
    async fn open(&self, key: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError>;
    /// A URL that takes one `PUT` of the object until it expires.
    async fn presign_put(&self, key: &str, expires_in: std::time::Duration) -> Result<String, SinkError>;
}

// ---------------------------------------------------------------------- clock

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

// -------------------------------------------------------------- platform http

/// HTTP to the platforms. The production adapter follows no redirects and
/// has timeouts; tests point the catalog at fake platform servers on loopback
/// and go through the same adapter.
#[async_trait]
pub trait PlatformHttp: Send + Sync {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError>;
}
