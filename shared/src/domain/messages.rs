//! The messages of the service's queues: sync jobs and alert events. They
//! carry ids, names and reason codes, never a token or key.

use serde::{Deserialize, Serialize};

use super::events::ServiceEvent;
use super::ids::{AuthorizationId, ConnectionId, SyncRunId, WorkspaceId};
use super::model::{Connection, SyncKind, SyncTrigger};

/// The queues of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// Sync jobs, consumed by the sync worker.
    Sync,
    /// Alert events, consumed by the notifier.
    Notify,
}

impl QueueKind {
    pub const ALL: [QueueKind; 2] = [QueueKind::Sync, QueueKind::Notify];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Sync => "sync",
            QueueKind::Notify => "notify",
        }
    }
}

/// A message of the sync queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncJob {
    Sync {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        /// The kind of run the connection was due for when this was sent
        /// (for people reading the queue). The worker decides from the
        /// connection as it finds it: a late first job runs incrementally.
        kind: SyncKind,
        /// A continuation carries the run it continues.
        #[serde(default)]
        run_id: Option<SyncRunId>,
        /// What started the run (recorded in its history).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<SyncTrigger>,
    },
}

impl SyncJob {
    /// The next run of a connection (not a continuation): initial or
    /// incremental by its history when it starts.
    pub fn start(connection: &Connection) -> Self {
        SyncJob::Sync {
            workspace_id: connection.workspace_id.clone(),
            connection_id: connection.id.clone(),
            kind: connection.next_sync_kind(),
            run_id: None,
            trigger: None,
        }
    }

    /// The same job, saying what started it.
    pub fn triggered(self, by: SyncTrigger) -> Self {
        let SyncJob::Sync { workspace_id, connection_id, kind, run_id, .. } = self;
        SyncJob::Sync { workspace_id, connection_id, kind, run_id, trigger: Some(by) }
    }
}

/// A message of the notification queue: something people should hear of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertEvent {
    ConnectionDisconnected {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        reason: String,
    },
    /// A grant was lost: every connection that uses it is disconnected (one alert).
    AuthorizationDisconnected {
        workspace_id: WorkspaceId,
        authorization_id: AuthorizationId,
        connection_ids: Vec<ConnectionId>,
        reason: String,
    },
    SyncFailed {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        reason: String,
    },
    ExpiringSoon {
        workspace_id: WorkspaceId,
        authorization_id: AuthorizationId,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// A grant works again (reconnected).
    AuthorizationRecovered {
        workspace_id: WorkspaceId,
        authorization_id: AuthorizationId,
    },
    /// SES's word on a sent email (its configuration set's bounce and
    /// complaint events, reshaped by the template's EventBridge rule).
    EmailFeedback {
        /// `Bounce` or `Complaint`.
        event: String,
        /// `Permanent`, `Transient` or `Undetermined` (bounces only).
        #[serde(default)]
        bounce_type: Option<String>,
        #[serde(default)]
        addresses: Vec<String>,
    },
    /// Send the workspace's pending emails (a delayed message: the digest window).
    Flush {
        workspace_id: WorkspaceId,
        flush_id: String,
    },
    Recovered {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
    },
    /// A connection's data stopped flowing (`reason`: a stale reason code).
    DataNotSyncing {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        reason: String,
    },
    /// An event for the deployer's backend, to deliver to the bus and the
    /// webhook (`attempt` > 0: a webhook retry, the bus already has it).
    Publish {
        event: Box<ServiceEvent>,
        #[serde(default)]
        attempt: u32,
    },
}

impl SyncJob {
    /// A job that continues the run under way, else starts the next run.
    pub fn resume(connection: &Connection) -> Self {
        match &connection.running {
            Some(run) => SyncJob::Sync {
                workspace_id: connection.workspace_id.clone(),
                connection_id: connection.id.clone(),
                kind: run.kind,
                run_id: Some(run.id.clone()),
                trigger: None,
            },
            None => Self::start(connection),
        }
    }
}
