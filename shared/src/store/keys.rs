//! Every key of the one table, and every object key of the record sink, in
//! one place. No other module builds a key (the architecture test checks).
//!
//! The table: every item of a workspace lives in the partition
//! `WS#{workspace}`, so no read or write can reach another workspace's items.
//! Items that arrive without a workspace (OAuth state, upload tokens) live in
//! their own partition and carry the workspace they are bound to.
//!
//! | partition | sort key | what |
//! |---|---|---|
//! | `WS#{ws}` | `CONN#{id}` | a connection (in the list index at `CONN#{rank}#{countdown}#{id}`) |
//! | `WS#{ws}` | `LISTINDEX` | whether the workspace's connections are all in the list index |
//! | `WS#{ws}` | `AUTH#{id}` | an authorization (in the due index) |
//! | `WS#{ws}` | `ACCTS#{auth}#{list}#{chunk}` | a chunk of the accounts a grant reaches, as one discovery listed them |
//! | `WS#{ws}` | `MEMBER#{user}` | a member |
//! | `WS#{ws}` | `NTF#{time}#{id}` | an in-app notification |
//! | `WS#{ws}` | `UPLOAD#{conn}#{id}` | an uploaded file |
//! | `WS#{ws}` | `UPHASH#{conn}#{sha256}` | the upload that holds some content |
//! | `WS#{ws}` | `UPPERIOD#{conn}#{month}` | the upload that holds a month |
//! | `WS#{ws}` | `UPTOKENREF#{conn}#{hash}` | an upload token of a connection |
//! | `WS#{ws}` | `SYNCLEASE#{conn}` | the sync lease of a connection |
//! | `WS#{ws}` | `RUN#{conn}#{countdown}#{run}` | a sync run, newest first (TTL) |
//! | `WS#{ws}` | `AUDIT#{countdown}#{id}` | a service call, newest first (TTL) |
//! | `WS#{ws}` | `WHFAIL#{countdown}#{event}` | an event the webhook never took, newest first (TTL) |
//! | `WS#{ws}` | `KEYCLAIM#{platform}#{fingerprint}` | the connection that holds an API key |
//! | `WS#{ws}` | `INCIDENT#{subject}#{kind}` | an open or closed incident |
//! | `WS#{ws}` | `PENDINGMAIL#{incident}` | an email waiting for its flush (due for the sweep past its window) |
//! | `WS#{ws}` | `MAILBATCH#{flush}` | what one flush took (due for the sweep until its sends are done) |
//! | `WS#{ws}` | `MAILSENT#{batch}#{user}` | the claim of one send |
//! | `OAUTH#{sha256(state)}` | `STATE` | a started OAuth flow (TTL) |
//! | `OAUTHLAUNCH#{sha256(launch)}` | `LAUNCH` | its single-use launch (TTL) |
//! | `UPTOKEN#{sha256(token)}` | `TOKEN` | an upload token |
//! | `OUTBOX#{event}` | `EVENT` | an event the queue refused, until the sweep queues it (due at once) |
//! | `INSTALL#{sha256(claim)}` | `INSTALL` | an install waiting for its workspace (due at its expiry) |
//! | `SECRETINTENT#{sha256(name)}` | `INTENT` | a secret written ahead of its item (due for the sweep 15 minutes on) |
//! | `VAULTPACKS` | `NEXT#{kind}` | the next free slot in the credential packs of a kind |
//! | `VAULTPACK#{pack}` | `HEAD` | the version of a credential pack's secret that holds it |

use sha2::Digest;

use super::Entity;
use crate::domain::ids::{AuthorizationId, ConnectionId, UploadId, UserId, WorkspaceId};
use crate::domain::policy::{INITIAL_SYNC_QUIET_MINUTES, RUN_STALL_MINUTES};
use crate::domain::upload::Upload;
use crate::domain::{Authorization, Connection, Member, Notification};
use crate::ports::Due;

/// How many shards the due-work index is spread over (for each kind of
/// due work).
pub const DUE_SHARDS: u16 = 8;
/// The shards of sync runs to look at start here (authorizations: 0..8).
pub const RUN_SHARDS_FROM: u16 = 16;
/// The one shard of unclaimed installs (due when they expire).
pub const INSTALL_SHARD: u16 = 32;
/// The one shard of events the queue refused (due at once).
pub const OUTBOX_SHARD: u16 = 33;
/// The one shard of uploads still waiting for their file (due when a wait
/// is over: the file never came, or its worker died).
pub const UPLOAD_SHARD: u16 = 34;
/// The one shard of pending alert emails (due when their flush should
/// long have sent them: its message was lost or dead-lettered).
pub const PENDING_MAIL_SHARD: u16 = 35;
/// The due shard of secrets written ahead of their item
/// ([`super::secret_intents`]).
pub const SECRET_INTENT_SHARD: u16 = 36;
/// How long past its digest window a pending email waits before the sweep
/// asks for another flush of its workspace.
pub const PENDING_MAIL_GRACE_MINUTES: i64 = 15;
/// How long an upload may wait for its file: a presigned URL lives 15
/// minutes, and a large file's processing takes minutes more.
pub const UPLOAD_WAIT_MINUTES: i64 = 60;

pub fn workspace_pk(ws: &WorkspaceId) -> String {
    format!("WS#{}", ws.as_str())
}

fn shard_of(key: &str) -> u16 {
    // FNV-1a: stable across builds and platforms.
    let mut h: u32 = 0x811c9dc5;
    for b in key.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    (h % DUE_SHARDS as u32) as u16
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

// ------------------------------------------------------------------ entities

impl Entity for Connection {
    const KIND: &'static str = "connection";
    const SK_PREFIX: &'static str = "CONN#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        connection_sk(&self.id)
    }
    /// A connection is due for the scheduler: with a run under way, when it
    /// has saved no progress for a stall window (sooner for an initial sync
    /// that has written nothing, to be found stale); else at its next sync.
    fn due(&self) -> Option<Due> {
        let shard = RUN_SHARDS_FROM + shard_of(self.id.as_str());
        match &self.running {
            Some(run) => {
                let mut at = self.updated_at + chrono::Duration::minutes(RUN_STALL_MINUTES);
                if !self.initial_sync_done && self.stale.is_none() && self.records_written() == 0 {
                    at = at.min(run.started_at + chrono::Duration::minutes(INITIAL_SYNC_QUIET_MINUTES));
                }
                Some(Due { shard, at: at.timestamp() })
            }
            None => self.next_sync_at.map(|at| Due { shard, at: at.timestamp() }),
        }
    }
    fn list_key(&self) -> Option<String> {
        Some(connection_list_key(self))
    }
}

pub(super) fn connection_sk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

/// A connection's place in its workspace's list index: the default order
/// of `GET /v1/connections` (by attention rank, newest first, then id), so
/// a page of it is one query however many connections there are.
pub(super) fn connection_list_key(c: &Connection) -> String {
    let (rank, std::cmp::Reverse(millis), id) = c.list_order();
    format!("{}{:013}#{id}", connections_ranked(rank), 9_999_999_999_999i64 - millis)
}

/// The list-index prefix of the connections of one rank (all: none).
pub(super) fn connections_ranked(rank: u8) -> String {
    format!("CONN#{rank}#")
}

/// The list-index prefix of every connection.
pub(super) const CONNECTIONS_LISTED: &str = "CONN#";

/// The item that says whether a workspace's connections are all in the
/// list index (written by the service version before it was, they are not
/// until rewritten).
pub(super) const LIST_INDEX_STATE: &str = "LISTINDEX";

impl Entity for Authorization {
    const KIND: &'static str = "authorization";
    const SK_PREFIX: &'static str = "AUTH#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        format!("AUTH#{}", self.id)
    }
    /// A grant is due for the sweep at its next check, or sooner when a
    /// refresher holds its lease: a refresher that died after the platform
    /// rotated the refresh token and before the vault took the new one left
    /// a dead token behind, which the sweep finds when the lease runs out
    /// (found by the fault harness, seed 17 of the rotating-grant journey,
    /// once a vault write took more steps than one).
    fn due(&self) -> Option<Due> {
        let lease = self.refresh_lease.as_ref().map(|l| l.until);
        let at = [self.next_check_at, lease].into_iter().flatten().min();
        at.map(|at| Due { shard: shard_of(self.id.as_str()), at: at.timestamp() })
    }
}

impl Entity for crate::domain::AccountChunk {
    const KIND: &'static str = "accounts list";
    const SK_PREFIX: &'static str = "ACCTS#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        account_chunk_sk(&self.authorization_id, &self.list, self.index)
    }
}

pub(super) fn account_chunk_sk(auth: &AuthorizationId, list: &str, index: u32) -> String {
    format!("{}{index:05}", account_list(auth, list))
}

pub(super) fn account_list(auth: &AuthorizationId, list: &str) -> String {
    format!("{}{list}#", account_lists_of(auth))
}

pub(super) fn account_lists_of(auth: &AuthorizationId) -> String {
    format!("ACCTS#{auth}#")
}

/// The list an accounts chunk's sort key belongs to.
pub(super) fn list_of_account_chunk<'a>(auth: &AuthorizationId, sk: &'a str) -> Option<&'a str> {
    sk.strip_prefix(account_lists_of(auth).as_str())?.split_once('#').map(|(list, _)| list)
}

impl Entity for Member {
    const KIND: &'static str = "member";
    const SK_PREFIX: &'static str = "MEMBER#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        member_sk(&self.user_id)
    }
}

pub(super) fn member_sk(id: &UserId) -> String {
    format!("MEMBER#{id}")
}

impl Entity for Notification {
    const KIND: &'static str = "notification";
    const SK_PREFIX: &'static str = "NTF#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        // Newest first when read in reverse; ids break ties.
        format!("NTF#{}#{}", self.created_at.format("%Y%m%dT%H%M%S%.6fZ"), self.id)
    }
}

impl Entity for crate::domain::SyncRun {
    const KIND: &'static str = "sync run";
    const SK_PREFIX: &'static str = "RUN#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    /// Newest first: the start time counts down.
    fn sk(&self) -> String {
        let countdown = 9_999_999_999_999i64 - self.started_at.timestamp_millis();
        format!("RUN#{}#{countdown:013}#{}", self.connection_id, self.id)
    }
    fn expires_at(&self) -> Option<i64> {
        Some(self.kept_until.timestamp())
    }
}

impl Entity for crate::domain::events::FailedDelivery {
    const KIND: &'static str = "failed delivery";
    const SK_PREFIX: &'static str = "WHFAIL#";
    fn workspace(&self) -> &WorkspaceId {
        &self.event.workspace_id
    }
    fn sk(&self) -> String {
        let countdown = 9_999_999_999_999i64 - self.failed_at.timestamp_millis();
        format!("WHFAIL#{countdown:013}#{}", self.event.id)
    }
    fn expires_at(&self) -> Option<i64> {
        Some(self.kept_until.timestamp())
    }
}

impl Entity for crate::domain::audit::AuditRecord {
    const KIND: &'static str = "audit record";
    const SK_PREFIX: &'static str = "AUDIT#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        let countdown = 9_999_999_999_999i64 - self.at.timestamp_millis();
        format!("AUDIT#{countdown:013}#{}", self.id)
    }
    fn expires_at(&self) -> Option<i64> {
        Some(self.kept_until.timestamp())
    }
}

pub(super) fn runs_of(connection: &ConnectionId) -> String {
    format!("RUN#{connection}#")
}

impl Entity for Upload {
    const KIND: &'static str = "upload";
    const SK_PREFIX: &'static str = "UPLOAD#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        upload_sk(&self.connection_id, self.id.as_str())
    }
    fn due(&self) -> Option<Due> {
        (self.state == crate::domain::upload::UploadState::AwaitingFile).then(|| Due {
            shard: UPLOAD_SHARD,
            at: (self.created_at + chrono::Duration::minutes(UPLOAD_WAIT_MINUTES)).timestamp(),
        })
    }
}

pub(super) fn upload_sk(connection: &ConnectionId, upload: &str) -> String {
    format!("UPLOAD#{connection}#{upload}")
}

pub(super) fn uploads_of(connection: &ConnectionId) -> String {
    format!("UPLOAD#{connection}#")
}

// ------------------------------------------------------------ control items

pub(super) fn outbox(key: &str) -> (String, String) {
    (format!("OUTBOX#{key}"), "EVENT".to_owned())
}

/// An email address's suppression, under its hash (no address in a key).
pub(super) fn suppression(email: &str) -> (String, String) {
    (format!("SUPPRESS#{}", sha256_hex(&email.trim().to_lowercase())), "SUPPRESS".into())
}

pub(super) fn install(claim: &str) -> (String, String) {
    (format!("INSTALL#{}", sha256_hex(claim)), "INSTALL".to_owned())
}

pub(super) fn oauth_state(state: &str) -> (String, String) {
    (format!("OAUTH#{}", sha256_hex(state)), "STATE".to_owned())
}

pub(super) fn api_key_claim(platform: &str, fingerprint: &str) -> String {
    format!("KEYCLAIM#{platform}#{fingerprint}")
}

/// A flow's single-use launch (the browser binding is made there).
pub(super) fn oauth_launch(token: &str) -> (String, String) {
    (format!("OAUTHLAUNCH#{}", sha256_hex(token)), "LAUNCH".to_owned())
}

pub(super) fn sync_lease(connection: &ConnectionId) -> String {
    format!("SYNCLEASE#{connection}")
}

pub(super) fn incident(subject: &str, kind: &str) -> String {
    format!("INCIDENT#{subject}#{kind}")
}

pub(super) fn incidents_of(subject: &str) -> String {
    format!("INCIDENT#{subject}#")
}

pub(super) fn pending_mail(incident: &str) -> String {
    format!("PENDINGMAIL#{incident}")
}

pub(super) const PENDING_MAIL: &str = "PENDINGMAIL#";

pub(super) fn mail_batch(flush_id: &str) -> String {
    format!("MAILBATCH#{flush_id}")
}

pub(super) fn mail_sent(batch: &str, user: &UserId) -> String {
    format!("MAILSENT#{batch}#{user}")
}

pub(super) fn upload_hash(connection: &ConnectionId, sha256: &str) -> String {
    format!("UPHASH#{connection}#{sha256}")
}

pub(super) fn upload_period(connection: &ConnectionId, period: &str) -> String {
    format!("UPPERIOD#{connection}#{period}")
}

/// The partition and sort key of an upload token (kept as a hash only).
pub(super) fn upload_token(token: &str) -> (String, String) {
    (format!("UPTOKEN#{}", sha256_hex(token)), "TOKEN".to_owned())
}

/// The workspace's reference to an upload token's partition.
pub(super) fn upload_token_ref(connection: &ConnectionId, token_pk: &str) -> String {
    format!("UPTOKENREF#{connection}#{token_pk}")
}

pub(super) fn upload_token_refs(connection: &ConnectionId) -> String {
    format!("UPTOKENREF#{connection}#")
}

/// The token partition a reference points at.
pub(super) fn upload_token_of_ref(ref_sk: &str) -> Option<(String, String)> {
    ref_sk.rsplit_once('#').map(|(_, h)| (format!("UPTOKEN#{h}"), "TOKEN".to_owned()))
}

// -------------------------------------------------------------- object keys

/// Where one page of a stream's records lands: numbered by the stream's
/// page count, so a redelivered job rewrites the same object.
pub fn record_batch(ws: &WorkspaceId, connection: &ConnectionId, stream: &str, page: u64) -> String {
    format!("records/{ws}/{connection}/{stream}/batch-{page:010}.jsonl")
}

/// Where one day of a report stream's raw rows lands: rewritten whole when
/// the day is read again (restated days replace, never duplicate).
pub fn report_day(ws: &WorkspaceId, connection: &ConnectionId, stream: &str, day: &str) -> String {
    format!("reports/{ws}/{connection}/{stream}/{day}.jsonl")
}

/// Where one day of a connection's normalised spend facts lands (the one
/// daily spend table across platforms: a day's facts of every connection
/// under `spend/{ws}/{day}/`).
pub fn spend_day(ws: &WorkspaceId, connection: &ConnectionId, stream: &str, day: &str) -> String {
    format!("spend/{ws}/{day}/{connection}-{stream}.jsonl")
}

/// Where a presigned upload's file lands.
pub fn upload_object(upload: &Upload) -> String {
    format!("uploads/{}/{}/{}.csv", upload.workspace_id, upload.connection_id, upload.id)
}

/// The upload a landed object is for, if the key is one of ours.
pub fn parse_upload_object(key: &str) -> Option<(WorkspaceId, ConnectionId, UploadId)> {
    let parts: Vec<&str> = key.split('/').collect();
    let ["uploads", ws, conn, file] = parts[..] else { return None };
    let upload = file.strip_suffix(".csv")?;
    Some((WorkspaceId::parse(ws).ok()?, ConnectionId::parse(conn).ok()?, UploadId::parse(upload).ok()?))
}

/// One staged part of an upload's valid rows.
pub fn upload_part(upload: &Upload, n: usize) -> String {
    format!("costs/{}/{}/{}/part-{n:05}.jsonl", upload.workspace_id, upload.connection_id, upload.id)
}

// ------------------------------------------------------------ credential packs

/// A secret written ahead of its item, until the item is there.
pub fn secret_intent(secret: &str) -> (String, String) {
    (format!("SECRETINTENT#{}", sha256_hex(secret)), "INTENT".to_owned())
}

/// The counter that hands out slots in the credential packs of a kind
/// (`auth`, `conn`).
pub fn vault_pack_counter(kind: &str) -> (String, String) {
    ("VAULTPACKS".to_owned(), format!("NEXT#{kind}"))
}

/// The head of a credential pack: the version of its secret that holds it.
pub fn vault_pack_head(pack: &str) -> (String, String) {
    (format!("VAULTPACK#{pack}"), "HEAD".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landed_keys_are_ours_only_in_the_uploads_layout() {
        let (ws, c, u) = (WorkspaceId::parse("ws_1").unwrap(), ConnectionId::generate(), UploadId::generate());
        let key = format!("uploads/{ws}/{c}/{u}.csv");
        assert_eq!(parse_upload_object(&key), Some((ws.clone(), c.clone(), u.clone())));
        assert_eq!(parse_upload_object(&format!("costs/{ws}/{c}/{u}.csv")), None);
        assert_eq!(parse_upload_object(&format!("uploads/{ws}/{c}/{u}.txt")), None);
        assert_eq!(parse_upload_object("uploads/x"), None);
    }

    #[test]
    fn shards_are_stable() {
        assert_eq!(shard_of("auth_0"), shard_of("auth_0"));
        assert!((0..100).map(|i| shard_of(&format!("auth_{i}"))).all(|s| s < DUE_SHARDS));
    }
}
