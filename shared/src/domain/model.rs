//! Entities of the product. Secrets are never fields of these: an entity
//! holds a [`SecretRef`] (the vault name) and, for API keys, a masked hint.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::error::Error;
use super::ids::*;
use super::status::{self, DisconnectReason, Event, Status, Subject};

/// A member's role in a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees the data of the clients they are given; gets no alerts by default.
    ClientViewer,
    /// Connects and reconnects data sources; gets alerts.
    Staff,
    /// Everything staff can, plus members and removing authorizations.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "admin" => Ok(Role::Admin),
            "staff" => Ok(Role::Staff),
            "client_viewer" => Ok(Role::ClientViewer),
            _ => Err(Error::invalid("role", "must be admin, staff or client_viewer")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::ClientViewer => "client_viewer",
        }
    }
}

/// Who is calling: the verified claims of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: Role,
    pub email: Option<String>,
    /// The clients a client viewer is given (from the member record); `None`
    /// for staff and admins, who see the whole workspace.
    pub clients: Option<Vec<ClientId>>,
}

impl Caller {
    /// Whether the caller may see a connection: staff and admins see every
    /// one of their workspace, a client viewer those of the clients given.
    pub fn may_see(&self, c: &Connection) -> bool {
        match &self.clients {
            None => true,
            Some(mine) => c.client.as_ref().is_some_and(|cl| mine.contains(&cl.id)),
        }
    }

    /// Fails unless the caller has at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Error> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden { needed: needed.as_str() })
        }
    }
}

/// The kinds of alert a member can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    SyncFailed,
    Disconnected,
    ExpiringSoon,
    Recovered,
    DataNotSyncing,
}

/// An address no email goes to any more: it bounced for good, or its
/// owner marked an email as spam. Lifted by an admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSuppression {
    /// `bounced` or `complained`.
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A member of a workspace, as kept by the product (for alerts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    /// Alert kinds this member turned email off for.
    #[serde(default)]
    pub email_opt_out: Vec<AlertKind>,
    /// The IANA time zone emails give times in (UTC when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The clients a client viewer may see (ignored for other roles).
    #[serde(default)]
    pub client_ids: Vec<ClientId>,
    pub updated_at: DateTime<Utc>,
}

/// The name of a secret in the vault. Not a secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl SecretRef {
    /// `{prefix}/ws/{workspace}/{owner}`: every secret of a workspace is
    /// under its own path, and every secret of the deployment under the
    /// prefix the IAM policies allow.
    pub fn for_owner(prefix: &str, workspace: &WorkspaceId, owner: &str) -> Self {
        SecretRef(format!("{prefix}/ws/{}/{owner}", workspace.as_str()))
    }

    /// The deployment's own OAuth app credentials of a platform.
    pub fn for_app(prefix: &str, platform: &str) -> Self {
        SecretRef(format!("{prefix}/apps/{platform}"))
    }

    /// The deployment's key for fingerprints of API keys (a keyed hash, so a
    /// fingerprint reveals nothing of a key without it).
    /// The deployment's key for access tokens sealed in the table.
    pub fn token_key(prefix: &str) -> Self {
        SecretRef(format!("{prefix}/token-key"))
    }

    pub fn fingerprint_key(prefix: &str) -> Self {
        SecretRef(format!("{prefix}/fingerprint-key"))
    }

    /// The temporary credentials' secret of an OAuth 1.0a flow, under the
    /// hash of its temporary token, until the callback takes it.
    pub fn for_oauth1_flow(prefix: &str, token_hash: &str) -> Self {
        SecretRef(format!("{prefix}/oauth1/{token_hash}"))
    }

    /// The tokens of an install a platform started (BigCommerce's control
    /// panel), until a workspace claims it.
    pub fn for_install(prefix: &str, install: &str) -> Self {
        SecretRef(format!("{prefix}/installs/{install}"))
    }

    /// A workspace's own (BYO) OAuth app credentials of a platform.
    pub fn for_workspace_app(prefix: &str, workspace: &WorkspaceId, platform: &str) -> Self {
        SecretRef(format!("{prefix}/ws/{}/apps/{platform}", workspace.as_str()))
    }
}

/// The platform account a grant belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalAccount {
    pub id: String,
    pub name: Option<String>,
}

/// What is known of a grant's lifetime. None of it is assumed eternal: a
/// grant with no known expiry is still probed now and then.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenExpiry {
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// Refresh tokens that die when unused (Google 6 months, Microsoft 90 days).
    pub idle_expires_at: Option<DateTime<Utc>>,
    /// The platform wants a new consent by then (Amazon yearly, Meta ~60 days).
    pub reauthorize_by: Option<DateTime<Utc>>,
}

/// One credential grant (OAuth), shared by every connection that uses it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Authorization {
    pub id: AuthorizationId,
    pub workspace_id: WorkspaceId,
    pub platform: PlatformId,
    /// The name people recognise it by.
    pub name: String,
    pub account: Option<ExternalAccount>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Platform params given at connect time (shop domain, region, ...).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    pub status: Status,
    #[serde(default)]
    pub expiry: TokenExpiry,
    /// When the sweep should look at it next (None: never, e.g. removed).
    pub next_check_at: Option<DateTime<Utc>>,
    pub secret: SecretRef,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Consecutive transient refresh failures.
    #[serde(default)]
    pub refresh_failures: u32,
    /// Held by the one refresher at work (single-flight refresh).
    #[serde(default)]
    pub refresh_lease: Option<Lease>,
    /// When the "expiring soon" alert went out (once per expiry).
    #[serde(default)]
    pub expiring_alert_at: Option<DateTime<Utc>>,
    /// What the grant reaches (ad accounts, customers, profiles), as the
    /// platform said when last asked: where the list is kept (items of its
    /// own, see [`AccountChunk`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountsIndex>,
    /// The latest access token, sealed, when a refresh did not change the
    /// vault's long-lived credentials (see `domain::sealed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<super::sealed::SealedToken>,
}

/// Where the sub-accounts a grant reaches are kept, and when the platform
/// said so. The list lives in items of its own, a chunk at a time: an
/// agency grant may reach thousands of accounts, more than one item holds
/// (400 KB), and the authorization item is read on every refresh and list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsIndex {
    /// The discovery that wrote the list: its generation, then at random
    /// (two discoveries at once both take the next generation).
    pub list: String,
    /// One more than the list it replaces.
    #[serde(default)]
    pub generation: u64,
    pub at: DateTime<Utc>,
    /// How many accounts each chunk holds, in order.
    pub chunks: Vec<u32>,
    /// Not every page of the platform's list was read (past the pages read
    /// at most, or the time discovery had).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// The most bytes of accounts (as JSON) one chunk holds: well inside an
/// item's 400 KB.
pub const ACCOUNT_CHUNK_BYTES: usize = 256 * 1024;

impl AccountsIndex {
    /// A new list discovered at `at`, to replace `before` (if any).
    pub fn new_list(before: Option<&AccountsIndex>, at: DateTime<Utc>, chunks: &[Vec<SubAccount>]) -> Self {
        let generation = before.map_or(0, |b| b.generation) + 1;
        let list = format!("{generation:010}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        AccountsIndex { list, generation, at, chunks: chunks.iter().map(|c| c.len() as u32).collect(), partial: false }
    }

    /// The generation a list's name gives (`None`: not a list's name).
    pub fn generation_of(list: &str) -> Option<u64> {
        list.split_once('-').and_then(|(g, _)| g.parse().ok())
    }

    /// Whether a list (by name) is one this list replaced or beat: of its
    /// generation or earlier, and not itself. A list of a later generation
    /// is a discovery still at work.
    pub fn supersedes(&self, list: &str) -> bool {
        list != self.list && Self::generation_of(list).is_none_or(|g| g <= self.generation)
    }

    /// How many accounts the list holds.
    pub fn count(&self) -> usize {
        self.chunks.iter().map(|&n| n as usize).sum()
    }

    /// The chunk that holds the account at `offset` in the list, and its
    /// place in that chunk (`None` past the end).
    pub fn locate(&self, offset: usize) -> Option<(u32, usize)> {
        let mut start = 0;
        for (i, &n) in self.chunks.iter().enumerate() {
            if offset < start + n as usize {
                return Some((i as u32, offset - start));
            }
            start += n as usize;
        }
        None
    }
}

/// Splits a list of accounts, in order, into chunks of at most `budget`
/// bytes of JSON each (an account larger than the budget alone in one).
pub fn chunk_accounts(accounts: Vec<SubAccount>, budget: usize) -> Vec<Vec<SubAccount>> {
    // A chunk's JSON: its brackets, each account and a comma.
    const BRACKETS: usize = 2;
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut used = BRACKETS;
    for account in accounts {
        let size = serde_json::to_vec(&account).map_or(budget, |b| b.len() + 1);
        if !current.is_empty() && used + size > budget {
            chunks.push(std::mem::take(&mut current));
            used = BRACKETS;
        }
        used += size;
        current.push(account);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// One chunk of the accounts a grant reaches (see [`AccountsIndex`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChunk {
    pub workspace_id: WorkspaceId,
    pub authorization_id: AuthorizationId,
    pub list: String,
    pub index: u32,
    pub accounts: Vec<SubAccount>,
}

/// One account a grant reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubAccount {
    pub id: String,
    pub name: Option<String>,
    /// Its currency (ISO 4217) and time zone (IANA), when the platform says.
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    /// More the platform says of it, that its connections need (Microsoft's
    /// parent customer id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// A time-limited claim on a piece of work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

impl Lease {
    pub fn held_by_other(lease: &Option<Lease>, me: &str, now: DateTime<Utc>) -> bool {
        lease.as_ref().is_some_and(|l| l.owner != me && l.until > now)
    }
}

impl Authorization {
    /// A new grant waiting for its credentials to be accepted: tokens in
    /// the vault under `secret`, expiry facts and the next sweep check from
    /// the token policy.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: AuthorizationId,
        workspace_id: WorkspaceId,
        platform: PlatformId,
        name: String,
        account: Option<ExternalAccount>,
        scopes: Vec<String>,
        params: BTreeMap<String, String>,
        expiry: TokenExpiry,
        next_check_at: Option<DateTime<Utc>>,
        secret: SecretRef,
        created_by: UserId,
        now: DateTime<Utc>,
    ) -> Self {
        Authorization {
            id,
            workspace_id,
            platform,
            name,
            account,
            scopes,
            params,
            status: Status::PendingAuthorization,
            expiry,
            next_check_at,
            secret,
            created_by,
            created_at: now,
            updated_at: now,
            last_refreshed_at: Some(now),
            refresh_failures: 0,
            refresh_lease: None,
            expiring_alert_at: None,
            accounts: None,
            access: None,
        }
    }

    pub fn apply(&mut self, event: Event, now: DateTime<Utc>) -> Result<(), Error> {
        self.status = status::next(Subject::Authorization, &self.status, &event)?;
        if matches!(event, Event::CredentialsAccepted | Event::Reconnected { .. }) {
            self.refresh_failures = 0;
        }
        self.updated_at = now;
        Ok(())
    }
}

/// Whether a connection brings data in or sends it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionRole {
    Source,
    Destination,
}

/// The agency client a connection belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRef {
    pub id: ClientId,
    pub name: String,
}

/// How a connection authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// A shared OAuth grant.
    Authorization { authorization_id: AuthorizationId },
    /// Its own API key, in the vault; `hint` is the last 4 characters.
    ApiKey {
        secret: SecretRef,
        hint: String,
        last_verified_at: DateTime<Utc>,
        /// HMAC-SHA256, under the deployment's fingerprint key, of platform,
        /// workspace and key: finds a key submitted twice without keeping it.
        #[serde(default)]
        fingerprint: String,
    },
    /// No credential: files are uploaded.
    FileUpload,
}

/// Whether a stream is synced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSelection {
    pub name: String,
    pub selected: bool,
}

/// Where the sync of one stream stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCursor {
    /// The incremental cursor value (for example the largest `updated_at`).
    pub cursor: Option<String>,
    /// Where paging stands in the run under way.
    pub page: Option<String>,
    /// Records and pages ever synced (pages also number the batch objects).
    pub records: u64,
    #[serde(default)]
    pub pages: u64,
    /// Records and pages of the run under way.
    #[serde(default)]
    pub records_this_run: u64,
    #[serde(default)]
    pub pages_this_run: u64,
    /// The total the platform announces, when it does.
    #[serde(default)]
    pub total: Option<u64>,
    /// The greatest cursor value of the run under way (it becomes `cursor`
    /// when the stream completes), kept page by page.
    #[serde(default)]
    pub run_max: Option<String>,
    pub complete: bool,
    pub updated_at: Option<DateTime<Utc>>,
    /// A report stream's date windows this run: planned, and read.
    #[serde(default)]
    pub windows_planned: Option<u64>,
    #[serde(default)]
    pub windows_done: u64,
}

/// The sync run under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: SyncRunId,
    pub kind: SyncKind,
    pub started_at: DateTime<Utc>,
    /// What started it.
    #[serde(default)]
    pub trigger: Option<SyncTrigger>,
}

/// The last problem, as shown to people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// A data source or an export destination of a workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    pub workspace_id: WorkspaceId,
    pub platform: PlatformId,
    pub name: String,
    pub role: ConnectionRole,
    pub client: Option<ClientRef>,
    pub credential: Credential,
    pub status: Status,
    #[serde(default)]
    pub streams: Vec<StreamSelection>,
    #[serde(default)]
    pub cursors: BTreeMap<String, StreamCursor>,
    #[serde(default)]
    pub initial_sync_done: bool,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<LastError>,
    /// The platform account an API key belongs to (OAuth connections take
    /// it from their authorization).
    #[serde(default)]
    pub account: Option<ExternalAccount>,
    /// Non-secret connect-time values (WooCommerce store URL).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// File connections: how often files are expected.
    #[serde(default)]
    pub upload_schedule: Option<UploadSchedule>,
    /// The sync run under way, if any.
    #[serde(default)]
    pub running: Option<RunInfo>,
    /// When the scheduler runs it next (none: not scheduled).
    #[serde(default)]
    pub next_sync_at: Option<DateTime<Utc>>,
    /// Its own sync interval, where it has one (else its platform's).
    #[serde(default)]
    pub sync_interval_minutes: Option<u32>,
    /// Data has stopped flowing (an open `data_not_syncing` incident).
    #[serde(default)]
    pub stale: Option<Staleness>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Connection {
    /// Where a connection sits in its workspace's default list: those that
    /// need someone first (disconnected, failing, waiting for consent,
    /// syncing for the first time, then working), one rank a state.
    pub fn attention_rank(&self) -> u8 {
        Self::rank_of_state(self.status.state_name()).unwrap_or(4)
    }

    /// Where it sits in the default list: by attention rank, newest first
    /// (to the millisecond, as the list index keeps it), then by id.
    pub fn list_order(&self) -> (u8, std::cmp::Reverse<i64>, &ConnectionId) {
        (self.attention_rank(), std::cmp::Reverse(self.created_at.timestamp_millis()), &self.id)
    }

    /// The rank of a state, by its name (`None`: no such state).
    pub fn rank_of_state(state: &str) -> Option<u8> {
        match state {
            "disconnected" => Some(0),
            "error" => Some(1),
            "pending_authorization" => Some(2),
            "initial_sync_in_progress" => Some(3),
            "connected" => Some(4),
            _ => None,
        }
    }

    /// A new connection waiting for its credentials to be accepted, with
    /// no sync history.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workspace_id: WorkspaceId,
        platform: PlatformId,
        name: String,
        role: ConnectionRole,
        client: Option<ClientRef>,
        credential: Credential,
        streams: Vec<StreamSelection>,
        created_by: UserId,
        now: DateTime<Utc>,
    ) -> Self {
        Connection {
            id: ConnectionId::generate(),
            workspace_id,
            platform,
            name,
            role,
            client,
            credential,
            status: Status::PendingAuthorization,
            streams,
            cursors: BTreeMap::new(),
            initial_sync_done: false,
            last_synced_at: None,
            last_error: None,
            account: None,
            params: BTreeMap::new(),
            upload_schedule: None,
            running: None,
            next_sync_at: None,
            sync_interval_minutes: None,
            stale: None,
            created_by,
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies an event through the state machine and keeps the derived
    /// fields (last synced, last error) in step.
    pub fn apply(&mut self, event: Event, now: DateTime<Utc>) -> Result<(), Error> {
        self.status = status::next(Subject::Connection, &self.status, &event)?;
        match event {
            Event::InitialSyncCompleted | Event::SyncSucceeded => {
                if event == Event::InitialSyncCompleted {
                    self.initial_sync_done = true;
                }
                self.last_synced_at = Some(now);
                self.last_error = None;
            }
            Event::SyncFailed(reason) => {
                self.last_error = Some(LastError {
                    code: reason.code().to_owned(),
                    message: format!("The last sync failed ({}); it will be retried.", reason.code()),
                    at: now,
                });
            }
            Event::CredentialsLost(reason) => {
                if let Status::Disconnected { reason: kept } = self.status {
                    self.last_error = Some(last_error_for(kept, now));
                } else {
                    self.last_error = Some(last_error_for(reason, now));
                }
            }
            Event::Reconnected { .. } | Event::CredentialsAccepted => self.last_error = None,
        }
        // The scheduler looks at an initial sync that has not written
        // anything by then, whatever became of its job (a message that was
        // never sent is sent again; a quiet one raises `data_not_syncing`).
        if matches!(self.status, Status::InitialSyncInProgress)
            && self.next_sync_at.is_none()
            && self.is_scheduled_source()
        {
            self.next_sync_at = Some(now + Duration::minutes(super::policy::INITIAL_SYNC_QUIET_MINUTES));
        }
        self.updated_at = now;
        Ok(())
    }

    /// Records ever written, over every stream.
    pub fn records_written(&self) -> u64 {
        self.cursors.values().map(|c| c.records).sum()
    }

    /// The kind of run that comes next: the initial sync until it has
    /// completed once, incremental runs from the cursors after that.
    pub fn next_sync_kind(&self) -> SyncKind {
        if self.initial_sync_done {
            SyncKind::Incremental
        } else {
            SyncKind::Initial
        }
    }

    /// Whether the scheduler syncs it: a data source that syncs from a
    /// platform and has usable credentials.
    pub fn is_scheduled_source(&self) -> bool {
        self.role == ConnectionRole::Source
            && !matches!(self.credential, Credential::FileUpload)
            && self.status.has_credentials()
    }

    /// Whether the connection shows a problem that a reconnect repairs.
    pub fn is_broken(&self) -> bool {
        matches!(self.status, Status::Disconnected { .. } | Status::Error { .. })
    }

    pub fn authorization_id(&self) -> Option<&AuthorizationId> {
        match &self.credential {
            Credential::Authorization { authorization_id } => Some(authorization_id),
            _ => None,
        }
    }
}

fn last_error_for(reason: DisconnectReason, now: DateTime<Utc>) -> LastError {
    LastError { code: reason.code().to_owned(), message: reason.message().to_owned(), at: now }
}

/// How often files are expected (to warn when one is missed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSchedule {
    Daily,
    Weekly,
    Monthly,
}

impl UploadSchedule {
    /// The time after the last upload when the next is overdue (with grace).
    pub fn overdue_after(self) -> Duration {
        match self {
            UploadSchedule::Daily => Duration::days(2),
            UploadSchedule::Weekly => Duration::days(9),
            UploadSchedule::Monthly => Duration::days(35),
        }
    }
}

/// Which kind of sync a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    Initial,
    Incremental,
}

/// One problem of one connection or authorization: alerted once when it
/// opens, and once more when it closes (recovery).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub kind: AlertKind,
    pub reason: String,
    pub connection_ids: Vec<ConnectionId>,
    pub authorization_id: Option<AuthorizationId>,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Its email was queued for the next flush: a redelivered first event
    /// queues it only when the delivery that opened it did not get that far.
    #[serde(default)]
    pub email_queued: bool,
}

impl Incident {
    /// What an incident is about: the grant when there is one, else the
    /// (first) connection. One subject has at most one open incident a kind.
    pub fn subject_of(connections: &[ConnectionId], authorization: Option<&AuthorizationId>) -> String {
        authorization.map(|a| a.to_string()).or_else(|| connections.first().map(|c| c.to_string())).unwrap_or_default()
    }

    pub fn subject(&self) -> String {
        Self::subject_of(&self.connection_ids, self.authorization_id.as_ref())
    }

    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::SyncFailed => "sync_failed",
            AlertKind::Disconnected => "disconnected",
            AlertKind::ExpiringSoon => "expiring_soon",
            AlertKind::Recovered => "recovered",
            AlertKind::DataNotSyncing => "data_not_syncing",
        }
    }
}

/// What started a sync run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncTrigger {
    /// The first sync after connecting.
    Initial,
    /// The scheduler, at the connection's interval.
    Scheduled,
    /// A person (sync now).
    Manual,
    /// A reconnect, a key replacement, a moved authorization.
    Resumed,
}

/// How a sync run ended (or that it has not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Running,
    Succeeded,
    Failed,
    Disconnected,
}

/// Why a connection's data stopped flowing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleReason {
    /// No run has succeeded for three of its intervals.
    NoSuccessfulSync,
    /// Its initial sync has written nothing a quarter of an hour after it started.
    InitialSyncWroteNothing,
}

impl StaleReason {
    pub fn code(self) -> &'static str {
        match self {
            StaleReason::NoSuccessfulSync => "no_successful_sync",
            StaleReason::InitialSyncWroteNothing => "initial_sync_wrote_nothing",
        }
    }
    pub fn message(self) -> &'static str {
        match self {
            StaleReason::NoSuccessfulSync => {
                "No sync has succeeded for three sync intervals; the data shown is getting old."
            }
            StaleReason::InitialSyncWroteNothing => {
                "The first sync has not written any data 15 minutes after it started."
            }
        }
    }
    pub fn action(self) -> &'static str {
        "Open the connection's run history for the error; sync now, or reconnect if the platform refuses it."
    }
}

/// Since when, and why, a connection's data has not been flowing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staleness {
    pub reason: StaleReason,
    pub since: DateTime<Utc>,
}

/// What a run did in one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRun {
    pub records: u64,
    pub pages: u64,
}

/// One run of a connection's sync, kept for its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub id: SyncRunId,
    pub workspace_id: WorkspaceId,
    pub connection_id: ConnectionId,
    pub kind: SyncKind,
    pub trigger: Option<SyncTrigger>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub streams: BTreeMap<String, StreamRun>,
    pub outcome: RunOutcome,
    pub error_code: Option<String>,
    /// Kept until then (the retention), then dropped by the store.
    pub kept_until: DateTime<Utc>,
}

/// What a notification offers to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotificationAction {
    Reconnect { connection_id: Option<ConnectionId>, authorization_id: Option<AuthorizationId> },
    ReplaceKey { connection_id: ConnectionId },
    None,
}

/// An in-app notification of one member's workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: NotificationId,
    pub workspace_id: WorkspaceId,
    pub kind: AlertKind,
    pub connection_id: Option<ConnectionId>,
    pub authorization_id: Option<AuthorizationId>,
    pub platform: PlatformId,
    pub data_source: String,
    pub client_name: Option<String>,
    pub reason_code: Option<String>,
    pub message: String,
    pub action: NotificationAction,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: usize, name_len: usize) -> SubAccount {
        SubAccount {
            id: format!("act_{n}"),
            name: Some("n".repeat(name_len)),
            currency: None,
            time_zone: None,
            params: BTreeMap::new(),
        }
    }

    #[test]
    fn accounts_are_chunked_in_order_within_the_budget_and_located_by_offset() {
        let accounts: Vec<SubAccount> = (0..10).map(|n| account(n, 40)).collect();
        let one = serde_json::to_vec(&accounts[0]).unwrap().len() + 1;
        let chunks = chunk_accounts(accounts.clone(), 3 * one + 2);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
        assert_eq!(chunks.concat(), accounts, "in order, each once");
        assert!(chunks.iter().all(|c| serde_json::to_vec(c).unwrap().len() <= 3 * one + 2));
        assert_eq!(chunk_accounts(accounts.clone(), 3 * one + 1).len(), 5, "a byte less: two a chunk");
        // One larger than the budget is a chunk of its own.
        let big = chunk_accounts(vec![account(0, 10), account(1, 500), account(2, 10)], 200);
        assert_eq!(big.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(chunk_accounts(Vec::new(), 200).is_empty());
        let index = AccountsIndex::new_list(None, Utc::now(), &chunks);
        assert_eq!(index.count(), 10);
        assert_eq!(index.locate(0), Some((0, 0)));
        assert_eq!(index.locate(5), Some((1, 2)));
        assert_eq!(index.locate(9), Some((3, 0)));
        assert_eq!(index.locate(10), None);
        // Generations: the next replaces this one; two at once tie, and the
        // one named first is kept.
        let next = AccountsIndex::new_list(Some(&index), Utc::now(), &chunks);
        let rival = AccountsIndex::new_list(Some(&index), Utc::now(), &chunks);
        assert_eq!((index.generation, next.generation), (1, 2));
        assert!(next.supersedes(&index.list) && next.supersedes(&rival.list) && !next.supersedes(&next.list));
        let later = AccountsIndex::new_list(Some(&next), Utc::now(), &chunks);
        assert!(!next.supersedes(&later.list), "a later discovery still at work keeps its list");
        assert!(next.supersedes("garbage"));
        assert!(later.list > next.list && next.list > index.list, "lists sort by generation");
    }
    use crate::domain::status::FailureReason;

    fn connection(now: DateTime<Utc>) -> Connection {
        Connection {
            id: ConnectionId::generate(),
            workspace_id: WorkspaceId::parse("ws").unwrap(),
            platform: PlatformId::parse("klaviyo").unwrap(),
            name: "Klaviyo".into(),
            role: ConnectionRole::Source,
            client: None,
            credential: Credential::FileUpload,
            status: Status::PendingAuthorization,
            streams: vec![],
            cursors: BTreeMap::new(),
            initial_sync_done: false,
            last_synced_at: None,
            last_error: None,
            account: None,
            params: BTreeMap::new(),
            upload_schedule: None,
            running: None,
            next_sync_at: None,
            sync_interval_minutes: None,
            stale: None,
            created_by: UserId::parse("u").unwrap(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn apply_keeps_derived_fields_in_step() {
        let now = Utc::now();
        let mut c = connection(now);
        c.apply(Event::CredentialsAccepted, now).unwrap();
        c.apply(Event::SyncFailed(FailureReason::RateLimited), now).unwrap();
        assert_eq!(c.last_error.as_ref().unwrap().code, "rate_limited");
        c.apply(Event::InitialSyncCompleted, now).unwrap();
        assert!(c.initial_sync_done && c.last_error.is_none() && c.last_synced_at.is_some());
        c.apply(Event::CredentialsLost(DisconnectReason::TokenRevoked), now).unwrap();
        assert_eq!(c.status.reason_code(), Some("token_revoked"));
        assert_eq!(c.last_error.as_ref().unwrap().code, "token_revoked");
        let before = c.clone();
        assert!(c.apply(Event::SyncSucceeded, now).is_err());
        assert_eq!(c, before, "a rejected event changes nothing");
    }

    #[test]
    fn roles_are_ordered() {
        let caller = Caller {
            workspace_id: WorkspaceId::parse("ws").unwrap(),
            user_id: UserId::parse("u").unwrap(),
            role: Role::Staff,
            email: None,
            clients: None,
        };
        assert!(caller.require(Role::Staff).is_ok());
        assert!(caller.require(Role::ClientViewer).is_ok());
        assert!(matches!(caller.require(Role::Admin), Err(Error::Forbidden { .. })));
    }
}
