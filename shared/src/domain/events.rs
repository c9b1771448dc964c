//! The events the service publishes for the deployer's backend: what
//! changed, on what, why. Each carries ids, names, platform, client,
//! status, reasons and counts; never a token, key or secret. Their JSON
//! Schemas are `docs/events/*.schema.json` (tested against what is emitted).
//!
//! Delivery is at least once: a consumer drops a repeat by `id`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{AuthorizationId, ConnectionId, UploadId, WorkspaceId};
use super::model::{
    Authorization, ClientRef, Connection, ConnectionRole, RunOutcome, StreamRun, SyncKind, SyncRun, SyncTrigger,
};
use super::status::Status;
use super::upload::{Upload, UploadState};

/// The version of the events' shape; a breaking change gets a new one.
pub const SCHEMA_VERSION: u32 = 1;

/// One event, as it goes to the bus (the `detail`) and to the webhook (the body).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceEvent {
    /// `evt_…`, the same on every delivery of this event.
    pub id: String,
    #[serde(flatten)]
    pub body: EventBody,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub workspace_id: WorkspaceId,
}

/// What happened (`type`) and its facts (`data`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventBody {
    /// A connection's status changed (created, connected, disconnected, in
    /// error, reconnected).
    #[serde(rename = "connection.status_changed")]
    ConnectionStatusChanged { connection: ConnectionFacts, previous_status: Option<String> },
    /// A connection was removed (its data stays where it landed).
    #[serde(rename = "connection.removed")]
    ConnectionRemoved { connection: ConnectionFacts },
    /// A grant was lost; every connection that uses it is disconnected.
    #[serde(rename = "authorization.disconnected")]
    AuthorizationDisconnected { authorization: AuthorizationFacts, reason: Reason, connection_ids: Vec<ConnectionId> },
    /// A grant works again (reconnected); its connections resume.
    #[serde(rename = "authorization.reconnected")]
    AuthorizationReconnected { authorization: AuthorizationFacts, connection_ids: Vec<ConnectionId> },
    #[serde(rename = "sync.completed")]
    SyncCompleted { connection: ConnectionFacts, run: RunFacts },
    #[serde(rename = "sync.failed")]
    SyncFailed { connection: ConnectionFacts, run: RunFacts, reason: Reason },
    /// Data stopped flowing (the `data_not_syncing` incident opened).
    #[serde(rename = "connection.stale")]
    ConnectionStale { connection: ConnectionFacts, reason: Reason, since: DateTime<Utc> },
    /// Data flows again after a stale period.
    #[serde(rename = "connection.fresh")]
    ConnectionFresh { connection: ConnectionFacts, stale_since: DateTime<Utc> },
    /// An uploaded file was processed (ingested, rejected or a duplicate).
    #[serde(rename = "upload.processed")]
    UploadProcessed { connection: ConnectionFacts, upload: UploadFacts },
}

impl EventBody {
    /// The `type` (the EventBridge detail-type).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::ConnectionStatusChanged { .. } => "connection.status_changed",
            EventBody::ConnectionRemoved { .. } => "connection.removed",
            EventBody::AuthorizationDisconnected { .. } => "authorization.disconnected",
            EventBody::AuthorizationReconnected { .. } => "authorization.reconnected",
            EventBody::SyncCompleted { .. } => "sync.completed",
            EventBody::SyncFailed { .. } => "sync.failed",
            EventBody::ConnectionStale { .. } => "connection.stale",
            EventBody::ConnectionFresh { .. } => "connection.fresh",
            EventBody::UploadProcessed { .. } => "upload.processed",
        }
    }

    /// Every type, for documentation and the schema test.
    pub const TYPES: [&'static str; 9] = [
        "connection.status_changed",
        "connection.removed",
        "authorization.disconnected",
        "authorization.reconnected",
        "sync.completed",
        "sync.failed",
        "connection.stale",
        "connection.fresh",
        "upload.processed",
    ];
}

/// Why, in a code for programs and words for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

impl Reason {
    pub fn new(code: &str, message: &str) -> Self {
        Self { code: code.to_owned(), message: message.to_owned() }
    }

    /// The reason of a disconnected or failed status.
    pub fn of_status(status: &Status) -> Option<Self> {
        match status {
            Status::Disconnected { reason } => Some(Self::new(reason.code(), reason.message())),
            Status::Error { reason } => Some(Self::new(reason.code(), "Syncing failed; the service retries it.")),
            _ => None,
        }
    }
}

/// A connection as events name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionFacts {
    pub id: ConnectionId,
    pub name: String,
    pub platform: String,
    pub role: ConnectionRole,
    pub client: Option<ClientRef>,
    pub authorization_id: Option<AuthorizationId>,
    pub status: String,
    /// Why it is disconnected or in error.
    pub reason: Option<Reason>,
}

impl From<&Connection> for ConnectionFacts {
    fn from(c: &Connection) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            platform: c.platform.to_string(),
            role: c.role,
            client: c.client.clone(),
            authorization_id: c.authorization_id().cloned(),
            status: c.status.state_name().to_owned(),
            reason: Reason::of_status(&c.status),
        }
    }
}

/// An authorization (grant) as events name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationFacts {
    pub id: AuthorizationId,
    pub name: String,
    pub platform: String,
    /// The platform account it reaches (id and name).
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub status: String,
}

impl From<&Authorization> for AuthorizationFacts {
    fn from(a: &Authorization) -> Self {
        Self {
            id: a.id.clone(),
            name: a.name.clone(),
            platform: a.platform.to_string(),
            account_id: a.account.as_ref().map(|x| x.id.clone()),
            account_name: a.account.as_ref().and_then(|x| x.name.clone()),
            status: a.status.state_name().to_owned(),
        }
    }
}

/// One sync run's counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    pub id: String,
    pub kind: SyncKind,
    pub trigger: Option<SyncTrigger>,
    pub outcome: RunOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub records: u64,
    pub pages: u64,
    pub streams: BTreeMap<String, StreamRun>,
}

impl From<&SyncRun> for RunFacts {
    fn from(r: &SyncRun) -> Self {
        Self {
            id: r.id.to_string(),
            kind: r.kind,
            trigger: r.trigger,
            outcome: r.outcome,
            started_at: r.started_at,
            finished_at: r.finished_at,
            records: r.streams.values().map(|s| s.records).sum(),
            pages: r.streams.values().map(|s| s.pages).sum(),
            streams: r.streams.clone(),
        }
    }
}

/// A processed upload's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadFacts {
    pub id: UploadId,
    pub state: UploadState,
    pub rows: u64,
    pub valid_rows: u64,
    pub error_rows: u64,
    /// Why the file as a whole was refused.
    pub file_error: Option<Reason>,
    pub duplicate_of: Option<UploadId>,
}

impl From<&Upload> for UploadFacts {
    fn from(u: &Upload) -> Self {
        Self {
            id: u.id.clone(),
            state: u.state,
            rows: u.report.as_ref().map_or(0, |r| r.rows),
            valid_rows: u.report.as_ref().map_or(0, |r| r.valid_rows),
            error_rows: u.report.as_ref().map_or(0, |r| r.error_total),
            file_error: u.file_error.as_ref().map(|e| Reason::new(&e.code, &e.message)),
            duplicate_of: u.duplicate_of.clone(),
        }
    }
}

impl ServiceEvent {
    /// A new event, with a fresh id.
    pub fn new(workspace_id: &WorkspaceId, body: EventBody, now: DateTime<Utc>) -> Self {
        Self {
            id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            body,
            schema_version: SCHEMA_VERSION,
            occurred_at: now,
            workspace_id: workspace_id.clone(),
        }
    }

    /// A connection's status changed from `previous` (None: it was just created).
    /// None when the state did not change.
    pub fn status_changed(previous: Option<&Status>, c: &Connection, now: DateTime<Utc>) -> Option<Self> {
        if previous.map(Status::state_name) == Some(c.status.state_name()) {
            return None;
        }
        let body = EventBody::ConnectionStatusChanged {
            connection: c.into(),
            previous_status: previous.map(|s| s.state_name().to_owned()),
        };
        Some(Self::new(&c.workspace_id, body, now))
    }

    pub fn type_name(&self) -> &'static str {
        self.body.type_name()
    }
}

/// An event the webhook refused every time it was offered: kept for the
/// workspace's admins (and the operator's alarm) with why it failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedDelivery {
    pub event: ServiceEvent,
    pub attempts: u32,
    /// The last answer: `HTTP 500`, a timeout, a refused connection.
    pub last_error: String,
    pub failed_at: DateTime<Utc>,
    pub kept_until: DateTime<Utc>,
}

/// How long failed deliveries are kept.
pub const FAILED_DELIVERY_RETENTION_DAYS: i64 = 30;

/// The wait before the next delivery attempt (`attempt` ≥ 1 failed so far):
/// 30 s doubling, at most 15 minutes (the queue's longest delay).
pub fn webhook_backoff_seconds(failed: u32) -> u32 {
    30u32.saturating_mul(1 << failed.saturating_sub(1).min(10)).min(900)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_up_to_the_queue_limit() {
        let waits: Vec<u32> = (1..=8).map(webhook_backoff_seconds).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900, 900]);
    }

    use super::*;

    #[test]
    fn the_type_and_data_sit_beside_the_envelope() {
        let body = EventBody::AuthorizationReconnected {
            authorization: AuthorizationFacts {
                id: AuthorizationId::generate(),
                name: "Main".into(),
                platform: "shopify".into(),
                account_id: None,
                account_name: None,
                status: "connected".into(),
            },
            connection_ids: vec![],
        };
        let e = ServiceEvent::new(&WorkspaceId::parse("ws-1").unwrap(), body, Utc::now());
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "authorization.reconnected");
        assert!(json["data"]["authorization"]["id"].as_str().unwrap().starts_with("auth_"));
        assert_eq!(json["schema_version"], 1);
        assert!(json["id"].as_str().unwrap().starts_with("evt_"));
        let back: ServiceEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        for t in EventBody::TYPES {
            assert!(t.contains('.'));
        }
        assert!(EventBody::TYPES.contains(&e.type_name()));
    }
}
