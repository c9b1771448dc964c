//! File-upload connections (custom costs): uploads by hand, by presigned
//! URL for large files, or by an automation token; all-or-nothing
//! ingestion; duplicate content recognised; a period replaced whole.
//!
//! Valid rows are written as JSON Lines parts under
//! `costs/{workspace}/{connection}/{upload}/` while the file streams through
//! the validator; the upload's item turning `ingested` is the commit. A file
//! with errors is rejected whole (its parts deleted) unless the user chose to
//! import the valid rows.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::App;
use crate::catalog::AuthMethod;
use crate::costs::{self, FileError, Limits, Options, Report};
use crate::domain::error::{Error, StoreError};
use crate::domain::events::EventBody;
use crate::domain::ids::*;
use crate::domain::input::{check_client, check_name, ClientInput};
use crate::domain::upload::*;
use crate::domain::*;
use crate::store::uploads::ContentClaim;
use crate::store::{keys, Change, Versioned};

/// A file connection of the caller's workspace.
pub async fn file_connection(app: &App, ws: &WorkspaceId, id: &ConnectionId) -> Result<Versioned<Connection>, Error> {
    let c = app.repo.connection(ws, id).await?;
    if !matches!(c.value.credential, Credential::FileUpload) {
        return Err(Error::invalid("connection", "this connection does not take file uploads"));
    }
    Ok(c)
}

/// The body of `POST /v1/connections/file-upload`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub platform: String,
    pub name: String,
    #[serde(default)]
    pub client: Option<ClientInput>,
    #[serde(default)]
    pub upload_schedule: Option<UploadSchedule>,
}

/// `POST /v1/connections/file-upload`: a connection that takes files. It
/// waits for its first file in `pending_authorization`.
pub async fn create(app: &App, caller: &Caller, request: CreateRequest) -> Result<Connection, Error> {
    caller.require(Role::Staff)?;
    let entry = app.catalog.get(&request.platform)?;
    if entry.method != AuthMethod::FileUpload {
        return Err(Error::WrongAuthMethod { platform: entry.name.clone(), method: "file uploads" });
    }
    let now = app.clock.now();
    let client = check_client(request.client.as_ref())?;
    let mut connection = Connection::new(
        caller.workspace_id.clone(),
        entry.id.clone(),
        check_name(&request.name)?,
        ConnectionRole::Source,
        client,
        Credential::FileUpload,
        vec![StreamSelection { name: "costs".into(), selected: true }],
        caller.user_id.clone(),
        now,
    );
    connection.upload_schedule = request.upload_schedule;
    app.repo.create(&connection).await?;
    super::events::status_changed(app, None, &connection).await;
    Ok(connection)
}

/// Validates a stream and stages its valid rows, in constant memory: one
/// thread validates and writes each valid row into a JSON Lines part as it
/// goes (nothing copied per row), and the async side stores each part; a
/// bounded channel keeps at most a few parts in flight whatever the file's
/// size.
async fn stage(
    app: &App,
    upload: &Upload,
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    limits: Limits,
) -> (Result<Report, FileError>, Vec<String>) {
    let (bytes_tx, mut bytes_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let options = Options { period: upload.period };
    // Large reads: each read of a file or S3 stream is one round trip.
    let bridge = tokio_util::io::SyncIoBridge::new(tokio::io::BufReader::with_capacity(1 << 20, reader));
    let validation = tokio::task::spawn_blocking(move || {
        // Each valid row is written as a JSON line as it is read (its text
        // borrowed from the row, never copied first).
        let mut part = Vec::with_capacity(PART_ROWS * 160);
        let mut rows = 0;
        let result = costs::validate(bridge, limits, &options, |row| {
            row.write_json_line(&mut part);
            rows += 1;
            if rows == PART_ROWS {
                let full = std::mem::replace(&mut part, Vec::with_capacity(PART_ROWS * 160));
                rows = 0;
                bytes_tx.blocking_send(full).map_err(|_| std::io::Error::other("staging stopped"))?;
            }
            Ok(())
        });
        if result.is_ok() && !part.is_empty() {
            let _ = bytes_tx.blocking_send(part);
        }
        result
    });
    let mut parts = Vec::new();
    let mut write_error = None;
    while let Some(bytes) = bytes_rx.recv().await {
        if write_error.is_some() {
            continue;
        }
        let key = keys::upload_part(upload, parts.len() + 1);
        match app.sink.put(&key, bytes::Bytes::from(bytes), "application/x-ndjson").await {
            Ok(()) => parts.push(key),
            Err(e) => write_error = Some(e.to_string()),
        }
    }
    let result = match validation.await {
        Ok(r) => r,
        Err(e) => Err(FileError { code: "internal_error".into(), message: format!("validation stopped: {e}") }),
    };
    match write_error {
        Some(e) => {
            tracing::error!(upload = %upload.id, error = %e, "staging failed");
            (
                Err(FileError {
                    code: "storage_unavailable".into(),
                    message: "The file could not be stored; try again.".into(),
                }),
                parts,
            )
        }
        None => (result, parts),
    }
}

async fn discard(app: &App, parts: &[String]) {
    for key in parts {
        if let Err(e) = app.sink.delete(key).await {
            tracing::warn!(error = %e, "a staged part was not deleted");
        }
    }
}

/// Takes a file for an upload: validate, stage, and commit or reject,
/// then say so (`upload.processed`). Returns the upload as it ended.
pub async fn ingest(
    app: &App,
    upload: Upload,
    version: u64,
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    limits: Limits,
) -> Result<Upload, Error> {
    let upload = take(app, upload, version, reader, limits).await?;
    announce(app, &upload).await;
    Ok(upload)
}

/// `upload.processed`, for an upload that ended.
async fn announce(app: &App, upload: &Upload) {
    match app.repo.connection(&upload.workspace_id, &upload.connection_id).await {
        Ok(c) => {
            let body = EventBody::UploadProcessed { connection: (&c.value).into(), upload: upload.into() };
            super::events::emit(app, &upload.workspace_id, body).await;
        }
        Err(e) => tracing::error!(upload = %upload.id, error = %e, "upload.processed not published"),
    }
}

async fn take(
    app: &App,
    mut upload: Upload,
    version: u64,
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    limits: Limits,
) -> Result<Upload, Error> {
    let (result, parts) = stage(app, &upload, reader, limits).await;
    let now = app.clock.now();
    upload.finished_at = Some(now);
    match result {
        Err(file_error) => {
            discard(app, &parts).await;
            upload.state = UploadState::Rejected;
            upload.file_error = Some(file_error);
        }
        Ok(report) if report.valid_rows == 0 || (report.error_total > 0 && !upload.import_valid_rows) => {
            discard(app, &parts).await;
            upload.state = UploadState::Rejected;
            upload.report = Some(report);
        }
        Ok(report) => return commit(app, upload, version, report, parts).await,
    }
    app.repo.save(&upload, version).await?;
    Ok(upload)
}

/// An upload of the same connection, by the id a claim or pointer holds.
async fn upload_by_id(app: &App, upload: &Upload, id: &str) -> Option<Versioned<Upload>> {
    let id = UploadId::parse(id).ok()?;
    app.repo.upload(&upload.workspace_id, &upload.connection_id, &id).await.ok()
}

async fn commit(
    app: &App,
    mut upload: Upload,
    version: u64,
    report: Report,
    parts: Vec<String>,
) -> Result<Upload, Error> {
    let ws = upload.workspace_id.clone();
    // 1. Claim the content: the same bytes are ingested once per connection.
    let claim = match app.repo.claim_content(&ws, &upload.connection_id, &report.sha256, &upload.id).await {
        Ok(claim) => claim,
        Err(e) => {
            discard(app, &parts).await;
            return Err(e);
        }
    };
    if let ContentClaim::HeldBy { holder, version: claim_version } = claim {
        let live = upload_by_id(app, &upload, &holder).await.is_some_and(|u| u.value.state == UploadState::Ingested);
        if live {
            discard(app, &parts).await;
            upload.state = UploadState::Duplicate;
            upload.duplicate_of = UploadId::parse(&holder).ok();
            upload.report = Some(report);
            app.repo.save(&upload, version).await?;
            return Ok(upload);
        }
        // The holder was replaced, rejected or never finished: take the claim over.
        let retaken =
            app.repo.retake_content(&ws, &upload.connection_id, &report.sha256, &upload.id, claim_version).await;
        if let Err(e) = retaken {
            discard(app, &parts).await;
            return Err(e);
        }
    }
    // 2. The period now points at this upload; the one before is replaced.
    let mut replaced = None;
    if let Some(period) = upload.period {
        match app.repo.point_period(&ws, &upload.connection_id, &String::from(period), &upload.id).await {
            Ok(previous) => replaced = previous,
            Err(e) => {
                discard(app, &parts).await;
                return Err(e);
            }
        }
    }
    // 3. The commit point.
    upload.state = UploadState::Ingested;
    upload.parts = parts;
    let rows = report.valid_rows;
    upload.report = Some(report);
    app.repo.save(&upload, version).await?;
    if let Some(old) = replaced.filter(|id| id != upload.id.as_str()) {
        if let Some(mut previous) = upload_by_id(app, &upload, &old).await {
            previous.value.state = UploadState::Replaced;
            previous.value.replaced_by = Some(upload.id.clone());
            if let Err(e) = app.repo.save(&previous.value, previous.version).await {
                tracing::error!(upload = %old, error = %e, "replaced upload not marked");
            }
        }
    }
    // 4. The connection shows the last upload.
    record_on_connection(app, &upload, rows).await?;
    tracing::info!(upload = %upload.id, rows, "upload ingested");
    Ok(upload)
}

async fn record_on_connection(app: &App, upload: &Upload, rows: u64) -> Result<(), Error> {
    let (previous, saved) = app
        .repo
        .update_connection(&upload.workspace_id, &upload.connection_id, |c| {
            let now = app.clock.now();
            let previous = c.status;
            match c.status {
                Status::PendingAuthorization => {
                    c.apply(Event::CredentialsAccepted, now)?;
                    c.apply(Event::InitialSyncCompleted, now)?;
                }
                Status::InitialSyncInProgress => c.apply(Event::InitialSyncCompleted, now)?,
                Status::Connected | Status::Error { .. } => c.apply(Event::SyncSucceeded, now)?,
                Status::Disconnected { .. } => c.apply(Event::Reconnected { initial_sync_done: true }, now)?,
            }
            let cursor = c.cursors.entry("costs".into()).or_default();
            cursor.records += rows;
            cursor.complete = true;
            cursor.updated_at = Some(now);
            Ok(Change::Save(previous))
        })
        .await?;
    super::events::status_changed(app, Some(&previous), &saved.value).await;
    Ok(())
}

/// A new upload item for a file about to arrive.
pub async fn begin(
    app: &App,
    ws: &WorkspaceId,
    connection: &ConnectionId,
    source: UploadSource,
    options: &UploadOptions,
    by: Option<UserId>,
) -> Result<Upload, Error> {
    let upload = Upload {
        id: UploadId::generate(),
        workspace_id: ws.clone(),
        connection_id: connection.clone(),
        state: UploadState::AwaitingFile,
        source,
        period: options.period,
        import_valid_rows: options.import_valid_rows,
        report: None,
        file_error: None,
        parts: vec![],
        duplicate_of: None,
        replaced_by: None,
        created_by: by,
        created_at: app.clock.now(),
        finished_at: None,
    };
    app.repo.create(&upload).await?;
    Ok(upload)
}

/// A file whose bytes are all here (direct and automation uploads).
pub async fn ingest_bytes(
    app: &App,
    ws: &WorkspaceId,
    connection: &ConnectionId,
    source: UploadSource,
    options: &UploadOptions,
    by: Option<UserId>,
    body: Vec<u8>,
) -> Result<Upload, Error> {
    if body.len() as u64 > DIRECT_LIMITS.max_bytes {
        return Err(Error::PayloadTooLarge { limit: DIRECT_LIMITS.max_bytes as usize });
    }
    let upload = begin(app, ws, connection, source, options, by).await?;
    let id = upload.id.clone();
    match ingest(app, upload, 1, Box::new(std::io::Cursor::new(body)), DIRECT_LIMITS).await {
        Ok(upload) => Ok(upload),
        Err(e) => {
            if let Ok(current) = app.repo.upload(ws, connection, &id).await {
                not_processed(app, current).await;
            }
            Err(e)
        }
    }
}

/// Uploads still waiting for their file an hour on (the sweep): a file that
/// landed is processed now (its event was lost); else the upload is
/// rejected, saying the file never arrived or could not be processed.
/// Nothing of it was imported either way. One that cannot be looked at now
/// (the bucket or the store failing) is said and left for the next sweep;
/// the others are ended all the same. Answers how many were ended.
/// How long one sweep spends processing files whose event was lost (the
/// upload processor's work, done in the sweep's smaller function): files
/// past it wait for the next sweep, so a backlog of them cannot run the
/// sweep out of time.
pub const LANDED_FILES_BUDGET: std::time::Duration = std::time::Duration::from_secs(90);

/// Ends the uploads that waited too long: a file that landed is processed
/// (its event was lost) while `budget` lasts; a file that never came ends
/// `not_processed`. Returns how many were ended.
pub async fn expire_waiting(app: &App, budget: std::time::Duration) -> Result<usize, Error> {
    let overdue = app.repo.overdue_uploads(app.clock.now(), 100).await?;
    let id = |_, u: &Versioned<Upload>| u.value.id.to_string();
    let started = tokio::time::Instant::now();
    let deferred = std::sync::atomic::AtomicUsize::new(0);
    let ended = super::each_of("uploads left waiting", overdue, id, |current| async {
        if !end_waiting(app, current, started.elapsed() < budget).await? {
            deferred.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    })
    .await;
    let deferred = deferred.into_inner();
    if deferred > 0 {
        tracing::info!(deferred, "files whose event was lost wait for the next sweep");
    }
    Ok(ended - deferred)
}

/// Ends one upload that waited too long: its landed file processed (only
/// `in_time`: `false` when it was left for the next sweep), or ended
/// `not_processed` when no file came.
async fn end_waiting(app: &App, current: Versioned<Upload>, in_time: bool) -> Result<bool, Error> {
    let key = object_key(&current.value);
    if current.value.source == UploadSource::Presigned && app.sink.size(&key).await?.is_some() {
        if !in_time {
            return Ok(false);
        }
        process_landed(app, &key).await?;
    } else {
        not_processed(app, current).await;
    }
    Ok(true)
}

/// A direct upload whose attempt failed on our side says so, rather than
/// wait for a file it had (nothing of it was imported: its rows only count
/// once the upload is committed). Best effort: the error goes back either way.
async fn not_processed(app: &App, current: Versioned<Upload>) {
    if current.value.state != UploadState::AwaitingFile {
        return;
    }
    let mut upload = current.value;
    upload.state = UploadState::Rejected;
    upload.finished_at = Some(app.clock.now());
    upload.file_error = Some(FileError {
        code: "not_processed".into(),
        message: "The file never arrived, or could not be processed on our side; nothing of it was imported. Upload it again.".into(),
    });
    if let Err(e) = app.repo.save(&upload, current.version).await {
        tracing::warn!(upload = %upload.id, error = %e, "a failed upload still shows as waiting");
    }
}

/// A presigned file landed (S3 event, or the local stack's upload route).
pub async fn process_landed(app: &App, key: &str) -> Result<Option<Upload>, Error> {
    let Some((ws, conn, upload_id)) = keys::parse_upload_object(key) else { return Ok(None) };
    let current = match app.repo.upload(&ws, &conn, &upload_id).await {
        Ok(u) => u,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if current.value.state != UploadState::AwaitingFile {
        // A redelivered event, or the presigned URL used again: a processed
        // upload never changes, and a file that lands again is discarded.
        discard_raw(app, key).await;
        return Ok(Some(current.value));
    }
    let limits = Limits { max_bytes: app.config.max_upload_bytes, max_rows: LARGE_LIMITS.max_rows };
    // The size is checked before a byte is read.
    let Some(size) = app.sink.size(key).await? else { return Ok(None) };
    if size > limits.max_bytes {
        let mut upload = current.value;
        upload.state = UploadState::Rejected;
        upload.finished_at = Some(app.clock.now());
        upload.file_error = Some(FileError {
            code: "file_too_large".into(),
            message: format!("The file has {size} bytes; at most {} are taken.", limits.max_bytes),
        });
        app.repo.save(&upload, current.version).await?;
        discard_raw(app, key).await;
        announce(app, &upload).await;
        return Ok(Some(upload));
    }
    let Some(reader) = app.sink.open(key).await? else { return Ok(None) };
    let done = ingest(app, current.value, current.version, reader, limits).await?;
    // Processed: its rows are staged, the raw file goes (so nothing can
    // replace what was processed).
    discard_raw(app, key).await;
    Ok(Some(done))
}

async fn discard_raw(app: &App, key: &str) {
    if let Err(e) = app.sink.delete(key).await {
        tracing::warn!(error = %e, "a landed upload file was not deleted; the bucket's lifecycle removes it");
    }
}

/// Where a presigned upload's file must land.
pub fn object_key(upload: &Upload) -> String {
    keys::upload_object(upload)
}

/// The ingested costs of a connection as a spreadsheet-safe CSV.
pub async fn export(
    app: &App,
    ws: &WorkspaceId,
    connection: &ConnectionId,
    max_bytes: usize,
) -> Result<Vec<u8>, Error> {
    let uploads = app.repo.uploads(ws, connection).await?;
    // Every text field quoted: a spreadsheet whose list separator is `;` would
    // otherwise split `x;=1+1` into a cell that starts a formula.
    let mut out = csv::WriterBuilder::new().quote_style(csv::QuoteStyle::NonNumeric).from_writer(Vec::new());
    let io = |e: csv::Error| Error::Config(format!("export: {e}"));
    out.write_record(costs::EXPORT_HEADER).map_err(io)?;
    for upload in uploads.into_iter().map(|v| v.value).filter(|u| u.state == UploadState::Ingested) {
        for key in &upload.parts {
            let Some(bytes) = app.sink.get(key).await? else { continue };
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let row: costs::CostRow =
                    serde_json::from_slice(line).map_err(|e| Error::Store(StoreError::Corrupt(e.to_string())))?;
                out.write_record(costs::export_record(&row, upload.id.as_str())).map_err(io)?;
            }
            if out.get_ref().len() > max_bytes {
                return Err(Error::PayloadTooLarge { limit: max_bytes });
            }
        }
    }
    out.into_inner().map_err(|e| Error::Config(format!("export: {e}")))
}

// ------------------------------------------------------- automation tokens

/// Issues an upload token for a file connection: shown once, stored as a
/// hash only.
pub async fn issue_token(app: &App, caller: &Caller, connection: &ConnectionId) -> Result<IssuedToken, Error> {
    caller.require(Role::Admin)?;
    file_connection(app, &caller.workspace_id, connection).await?;
    let token = format!("upl_{}", oauth2::CsrfToken::new_random_len(32).secret());
    let now = app.clock.now();
    let expires_at = now + chrono::Duration::days(i64::from(app.config.upload_token_days));
    app.repo.put_upload_token(&token, &caller.workspace_id, connection, &caller.user_id, now, expires_at).await?;
    Ok(IssuedToken { token, created_at: now, expires_at })
}

/// An upload token as issued: shown once.
pub struct IssuedToken {
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Revokes every upload token of a connection; returns how many.
pub async fn revoke_tokens(app: &App, caller: &Caller, connection: &ConnectionId) -> Result<usize, Error> {
    caller.require(Role::Admin)?;
    file_connection(app, &caller.workspace_id, connection).await?;
    app.repo.delete_upload_tokens(&caller.workspace_id, connection).await
}

/// The connection an upload token is for.
pub async fn resolve_token(app: &App, token: &str) -> Result<(WorkspaceId, ConnectionId), Error> {
    if !token.starts_with("upl_") || token.len() > 128 {
        return Err(Error::Unauthenticated("not an upload token"));
    }
    let (ws, connection, expires_at) =
        app.repo.upload_token(token).await?.ok_or(Error::Unauthenticated("unknown or revoked upload token"))?;
    if expires_at.is_some_and(|at| at <= app.clock.now()) {
        return Err(Error::Unauthenticated("the upload token has expired; an admin issues a new one"));
    }
    Ok((ws, connection))
}

// ------------------------------------------------------------ the routes' journeys

/// The parts of an upload request as the route parsed them: their errors
/// count only after the caller and the connection are checked (in this
/// order: caller, connection, options, body).
pub struct UploadParts {
    pub options: Result<UploadOptions, Error>,
    pub body: Result<Vec<u8>, Error>,
}

/// A file whose bytes are all in the request, for a file connection:
/// ingested whole or not at all.
async fn upload_file(
    app: &App,
    ws: &WorkspaceId,
    id: &ConnectionId,
    source: UploadSource,
    by: Option<UserId>,
    parts: UploadParts,
) -> Result<Upload, Error> {
    file_connection(app, ws, id).await?;
    let options = parts.options?;
    ingest_bytes(app, ws, id, source, &options, by, parts.body?).await
}

/// `POST /v1/connections/{id}/uploads` by a member (staff).
pub async fn upload_as_member(
    app: &App,
    caller: &Caller,
    id: &ConnectionId,
    parts: UploadParts,
) -> Result<Upload, Error> {
    caller.require(Role::Staff)?;
    let by = Some(caller.user_id.clone());
    upload_file(app, &caller.workspace_id, id, UploadSource::Direct, by, parts).await
}

/// `POST /v1/automation/uploads` with an upload token.
pub async fn upload_with_token(app: &App, token: &str, parts: UploadParts) -> Result<Upload, Error> {
    let (ws, id) = resolve_token(app, token).await?;
    upload_file(app, &ws, &id, UploadSource::Automation, None, parts).await
}

/// A presigned URL that takes one large file.
pub struct Presigned {
    pub upload: Upload,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /v1/connections/{id}/uploads/presigned` (staff).
pub async fn presign(
    app: &App,
    caller: &Caller,
    id: &ConnectionId,
    options: Result<UploadOptions, Error>,
) -> Result<Presigned, Error> {
    caller.require(Role::Staff)?;
    file_connection(app, &caller.workspace_id, id).await?;
    let upload =
        begin(app, &caller.workspace_id, id, UploadSource::Presigned, &options?, Some(caller.user_id.clone())).await?;
    let ttl = std::time::Duration::from_secs(PRESIGN_SECONDS);
    let url = app.sink.presign_put(&object_key(&upload), ttl).await?;
    let expires_at = app.clock.now() + chrono::Duration::seconds(PRESIGN_SECONDS as i64);
    Ok(Presigned { upload, url, expires_at })
}

/// A file connection the caller may see (a client viewer: of their clients).
async fn visible_file_connection(app: &App, caller: &Caller, id: &ConnectionId) -> Result<Connection, Error> {
    let c = file_connection(app, &caller.workspace_id, id).await?.value;
    if !caller.may_see(&c) {
        return Err(Error::NotFound { kind: "connection" });
    }
    Ok(c)
}

/// The uploads of a file connection, newest first.
pub async fn list(app: &App, caller: &Caller, id: &ConnectionId) -> Result<Vec<Upload>, Error> {
    visible_file_connection(app, caller, id).await?;
    let mut list: Vec<Upload> =
        app.repo.uploads(&caller.workspace_id, id).await?.into_iter().map(|u| u.value).collect();
    list.sort_by_key(|u| std::cmp::Reverse(u.created_at));
    Ok(list)
}

/// One upload of a connection.
pub async fn get(app: &App, caller: &Caller, id: &ConnectionId, upload: &UploadId) -> Result<Upload, Error> {
    // The connection first: a removed connection's uploads are gone with it
    // (and a client viewer sees only their clients').
    visible_file_connection(app, caller, id).await?;
    Ok(app.repo.upload(&caller.workspace_id, id, upload).await?.value)
}

/// The largest export answered in one response.
pub const MAX_EXPORT_BYTES: usize = 5 * 1024 * 1024;

/// `GET /v1/connections/{id}/costs/export`.
pub async fn export_costs(app: &App, caller: &Caller, id: &ConnectionId) -> Result<Vec<u8>, Error> {
    visible_file_connection(app, caller, id).await?;
    export(app, &caller.workspace_id, id, MAX_EXPORT_BYTES).await
}
