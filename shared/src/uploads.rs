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
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::app::App;
use crate::catalog::AuthMethod;
use crate::costs::{self, FileError, Limits, Options, Period, Report};
use crate::domain::*;
use crate::error::{Error, StoreError};
use crate::ids::*;
use crate::ports::{Item, Precondition};
use crate::repo::{workspace_pk, Entity};

/// Through the API (Lambda takes 6 MB synchronously).
pub const DIRECT_LIMITS: Limits = Limits { max_bytes: 5 * 1024 * 1024, max_rows: 100_000 };
/// Through a presigned URL.
pub const LARGE_LIMITS: Limits = Limits { max_bytes: 1024 * 1024 * 1024, max_rows: 20_000_000 };
/// Rows per staged part.
pub const PART_ROWS: usize = 10_000;
/// How long a presigned URL takes a file.
pub const PRESIGN_SECONDS: u64 = 900;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// A presigned URL was handed out; the file has not landed.
    AwaitingFile,
    Ingested,
    Rejected,
    /// The same content was already ingested: nothing new was stored.
    Duplicate,
    /// A later upload for the same period replaced it.
    Replaced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSource {
    Direct,
    Presigned,
    Automation,
}

/// One uploaded file and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub id: UploadId,
    pub workspace_id: WorkspaceId,
    pub connection_id: ConnectionId,
    pub state: UploadState,
    pub source: UploadSource,
    pub period: Option<Period>,
    pub import_valid_rows: bool,
    pub report: Option<Report>,
    pub file_error: Option<FileError>,
    #[serde(default)]
    pub parts: Vec<String>,
    pub duplicate_of: Option<UploadId>,
    pub replaced_by: Option<UploadId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Entity for Upload {
    const KIND: &'static str = "upload";
    const SK_PREFIX: &'static str = "UPLOAD#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        format!("UPLOAD#{}#{}", self.connection_id, self.id)
    }
}

impl Upload {
    /// Where a presigned upload's file lands.
    pub fn object_key(&self) -> String {
        format!("uploads/{}/{}/{}.csv", self.workspace_id, self.connection_id, self.id)
    }

    fn part_key(&self, n: usize) -> String {
        format!("costs/{}/{}/{}/part-{n:05}.jsonl", self.workspace_id, self.connection_id, self.id)
    }
}

/// Options of one upload, from the query string.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    pub period: Option<Period>,
    pub import_valid_rows: bool,
}

impl UploadOptions {
    pub fn from_query(period: Option<&str>, import_valid_rows: Option<&str>) -> Result<Self, Error> {
        let period = match period {
            Some(p) => Some(Period::parse(p).ok_or_else(|| Error::invalid("period", "must be a month, YYYY-MM"))?),
            None => None,
        };
        let import_valid_rows = match import_valid_rows {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::invalid("import_valid_rows", "must be true or false")),
        };
        Ok(Self { period, import_valid_rows })
    }
}

/// A file connection of the caller's workspace.
pub async fn file_connection(
    app: &App,
    ws: &WorkspaceId,
    id: &ConnectionId,
) -> Result<crate::repo::Versioned<Connection>, Error> {
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
    pub client: Option<crate::oauth::ClientInput>,
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
    let client = match request.client {
        Some(c) => Some(ClientRef { id: ClientId::parse(&c.id)?, name: crate::api::check_name(&c.name)? }),
        None => None,
    };
    let mut connection = Connection::new(
        caller.workspace_id.clone(),
        entry.id.clone(),
        crate::api::check_name(&request.name)?,
        ConnectionRole::Source,
        client,
        Credential::FileUpload,
        vec![StreamSelection { name: "costs".into(), selected: true }],
        caller.user_id.clone(),
        now,
    );
    connection.upload_schedule = request.upload_schedule;
    app.repo.create(&connection).await?;
    Ok(connection)
}

/// Validates a stream and stages its valid rows, in constant memory: one
/// thread validates, a second serializes batches of valid rows as JSON Lines
/// parts, and the async side stores each part; bounded channels keep at most
/// a few batches in flight whatever the file's size.
async fn stage(
    app: &App,
    upload: &Upload,
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    limits: Limits,
) -> (Result<Report, FileError>, Vec<String>) {
    let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel::<Vec<costs::CostRow>>(1);
    let (bytes_tx, mut bytes_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let options = Options { period: upload.period };
    // Large reads: each read of a file or S3 stream is one round trip.
    let bridge = tokio_util::io::SyncIoBridge::new(tokio::io::BufReader::with_capacity(1 << 20, reader));
    let validation = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(PART_ROWS);
        let result = costs::validate(bridge, limits, &options, |row| {
            batch.push(row);
            if batch.len() == PART_ROWS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(PART_ROWS));
                rows_tx.send(full).map_err(|_| std::io::Error::other("staging stopped"))?;
            }
            Ok(())
        });
        if result.is_ok() && !batch.is_empty() {
            let _ = rows_tx.send(batch);
        }
        result
    });
    let serializer = tokio::task::spawn_blocking(move || {
        for rows in rows_rx {
            let mut out = Vec::with_capacity(rows.len() * 160);
            for row in &rows {
                row.write_json_line(&mut out);
            }
            if bytes_tx.blocking_send(out).is_err() {
                return;
            }
        }
    });
    let mut parts = Vec::new();
    let mut write_error = None;
    while let Some(bytes) = bytes_rx.recv().await {
        if write_error.is_some() {
            continue;
        }
        let key = upload.part_key(parts.len() + 1);
        match app.sink.put(&key, bytes::Bytes::from(bytes), "application/x-ndjson").await {
            Ok(()) => parts.push(key),
            Err(e) => write_error = Some(e.to_string()),
        }
    }
    let _ = serializer.await;
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

/// Takes a file for an upload: validate, stage, and commit or reject.
/// Returns the upload as it ended.
pub async fn ingest(
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

/// A small control item of the workspace partition (hash claims, period
/// pointers, token references).
async fn control(app: &App, ws: &WorkspaceId, sk: &str) -> Result<Option<Item>, Error> {
    Ok(app.repo.store().get(&workspace_pk(ws), sk).await?)
}

fn control_item(ws: &WorkspaceId, sk: String, version: u64, body: serde_json::Value) -> Item {
    Item { pk: workspace_pk(ws), sk, version, body, due: None, expires_at: None }
}

async fn upload_state(app: &App, upload: &Upload, id: &str) -> Option<crate::repo::Versioned<Upload>> {
    let sk = format!("UPLOAD#{}#{id}", upload.connection_id);
    let item = app.repo.store().get(&workspace_pk(&upload.workspace_id), &sk).await.ok()??;
    Some(crate::repo::Versioned { value: serde_json::from_value(item.body).ok()?, version: item.version })
}

async fn commit(
    app: &App,
    mut upload: Upload,
    version: u64,
    report: Report,
    parts: Vec<String>,
) -> Result<Upload, Error> {
    let ws = upload.workspace_id.clone();
    let store = app.repo.store();
    // 1. Claim the content: the same bytes are ingested once per connection.
    let claim_sk = format!("UPHASH#{}#{}", upload.connection_id, report.sha256);
    let claim = control_item(&ws, claim_sk.clone(), 1, serde_json::json!({"upload_id": upload.id}));
    if let Err(e) = store.put(&claim, Precondition::Absent).await {
        if e != StoreError::ConditionFailed {
            discard(app, &parts).await;
            return Err(e.into());
        }
        let existing = control(app, &ws, &claim_sk).await?.ok_or(Error::Conflict { kind: "upload" })?;
        let holder = existing.body["upload_id"].as_str().unwrap_or_default().to_owned();
        let live = upload_state(app, &upload, &holder).await.is_some_and(|u| u.value.state == UploadState::Ingested);
        if live {
            discard(app, &parts).await;
            upload.state = UploadState::Duplicate;
            upload.duplicate_of = UploadId::parse(&holder).ok();
            upload.report = Some(report);
            app.repo.save(&upload, version).await?;
            return Ok(upload);
        }
        // The holder was replaced, rejected or never finished: take the claim over.
        let retake = control_item(&ws, claim_sk, existing.version + 1, serde_json::json!({"upload_id": upload.id}));
        if let Err(e) = store.put(&retake, Precondition::Version(existing.version)).await {
            discard(app, &parts).await;
            return Err(if e == StoreError::ConditionFailed { Error::Conflict { kind: "upload" } } else { e.into() });
        }
    }
    // 2. The period now points at this upload; the one before is replaced.
    let mut replaced = None;
    if let Some(period) = upload.period {
        let sk = format!("UPPERIOD#{}#{}", upload.connection_id, String::from(period));
        let current = control(app, &ws, &sk).await?;
        let (next_version, pre) = match &current {
            Some(item) => (item.version + 1, Precondition::Version(item.version)),
            None => (1, Precondition::Absent),
        };
        let pointer = control_item(&ws, sk, next_version, serde_json::json!({"upload_id": upload.id}));
        if let Err(e) = store.put(&pointer, pre).await {
            discard(app, &parts).await;
            return Err(if e == StoreError::ConditionFailed { Error::Conflict { kind: "upload" } } else { e.into() });
        }
        replaced = current.and_then(|i| i.body["upload_id"].as_str().map(str::to_owned));
    }
    // 3. The commit point.
    upload.state = UploadState::Ingested;
    upload.parts = parts;
    let rows = report.valid_rows;
    upload.report = Some(report);
    app.repo.save(&upload, version).await?;
    if let Some(old) = replaced.filter(|id| id != upload.id.as_str()) {
        if let Some(mut previous) = upload_state(app, &upload, &old).await {
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
    for _ in 0..5 {
        let current = app.repo.connection(&upload.workspace_id, &upload.connection_id).await?;
        let mut c = current.value.clone();
        let now = app.clock.now();
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
        match app.repo.save(&c, current.version).await {
            Ok(_) => return Ok(()),
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict { kind: "connection" })
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
    ingest(app, upload, 1, Box::new(std::io::Cursor::new(body)), DIRECT_LIMITS).await
}

/// A presigned file landed (S3 event, or the local stack's upload route).
pub async fn process_landed(app: &App, key: &str) -> Result<Option<Upload>, Error> {
    let parts: Vec<&str> = key.split('/').collect();
    let [prefix, ws, conn, file] = parts[..] else { return Ok(None) };
    let Some(upload_id) = file.strip_suffix(".csv") else { return Ok(None) };
    if prefix != "uploads" {
        return Ok(None);
    }
    let ws = WorkspaceId::parse(ws)?;
    let sk = format!("UPLOAD#{}#{}", ConnectionId::parse(conn)?, UploadId::parse(upload_id)?);
    let Some(item) = app.repo.store().get(&workspace_pk(&ws), &sk).await? else { return Ok(None) };
    let upload: Upload =
        serde_json::from_value(item.body).map_err(|e| Error::Store(StoreError::Corrupt(e.to_string())))?;
    if upload.state != UploadState::AwaitingFile {
        // A redelivered event: the file was already taken.
        return Ok(Some(upload));
    }
    let Some(reader) = app.sink.open(key).await? else { return Ok(None) };
    Ok(Some(ingest(app, upload, item.version, reader, LARGE_LIMITS).await?))
}

/// The ingested costs of a connection as a spreadsheet-safe CSV.
pub async fn export(
    app: &App,
    ws: &WorkspaceId,
    connection: &ConnectionId,
    max_bytes: usize,
) -> Result<Vec<u8>, Error> {
    let uploads = app.repo.list_prefix::<Upload>(ws, &format!("UPLOAD#{connection}#")).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::Config(format!("export: {e}"));
    out.write_record([
        "date",
        "category",
        "description",
        "amount",
        "currency",
        "sku",
        "channel",
        "recurrence",
        "upload_id",
    ])
    .map_err(io)?;
    for upload in uploads.into_iter().map(|v| v.value).filter(|u| u.state == UploadState::Ingested) {
        for key in &upload.parts {
            let Some(bytes) = app.sink.get(key).await? else { continue };
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let row: costs::CostRow =
                    serde_json::from_slice(line).map_err(|e| Error::Store(StoreError::Corrupt(e.to_string())))?;
                let recurrence = serde_json::to_value(row.recurrence)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                out.write_record([
                    row.date.to_string().as_str(),
                    &costs::spreadsheet_safe(&row.category),
                    &costs::spreadsheet_safe(&row.description),
                    &row.amount.to_string(),
                    &row.currency,
                    &costs::spreadsheet_safe(&row.sku),
                    &costs::spreadsheet_safe(&row.channel),
                    &recurrence,
                    upload.id.as_str(),
                ])
                .map_err(io)?;
            }
            if out.get_ref().len() > max_bytes {
                return Err(Error::PayloadTooLarge { limit: max_bytes });
            }
        }
    }
    out.into_inner().map_err(|e| Error::Config(format!("export: {e}")))
}

// ------------------------------------------------------- automation tokens

fn token_key(token: &str) -> (String, String) {
    (format!("UPTOKEN#{}", hex::encode(sha2::Sha256::digest(token.as_bytes()))), "TOKEN".to_owned())
}

/// Issues an upload token for a file connection: shown once, stored as a
/// hash only.
pub async fn issue_token(
    app: &App,
    caller: &Caller,
    connection: &ConnectionId,
) -> Result<(String, DateTime<Utc>), Error> {
    caller.require(Role::Admin)?;
    file_connection(app, &caller.workspace_id, connection).await?;
    let token = format!("upl_{}", oauth2::CsrfToken::new_random_len(32).secret());
    let (pk, sk) = token_key(&token);
    let now = app.clock.now();
    let body = serde_json::json!({"workspace_id": caller.workspace_id, "connection_id": connection, "created_by": caller.user_id, "created_at": now});
    app.repo
        .store()
        .put(&Item { pk: pk.clone(), sk, version: 1, body, due: None, expires_at: None }, Precondition::Absent)
        .await?;
    // A reference in the workspace, so the connection's tokens can be revoked.
    let reference =
        control_item(&caller.workspace_id, format!("UPTOKENREF#{connection}#{pk}"), 1, serde_json::json!({}));
    app.repo.store().put(&reference, Precondition::Absent).await?;
    Ok((token, now))
}

/// Revokes every upload token of a connection; returns how many.
pub async fn revoke_tokens(app: &App, caller: &Caller, connection: &ConnectionId) -> Result<usize, Error> {
    caller.require(Role::Admin)?;
    file_connection(app, &caller.workspace_id, connection).await?;
    let store = app.repo.store();
    let page =
        store.query(&workspace_pk(&caller.workspace_id), &format!("UPTOKENREF#{connection}#"), None, 1000).await?;
    for item in &page.items {
        let pk = item.sk.rsplit_once('#').map(|(_, h)| format!("UPTOKEN#{h}")).unwrap_or_default();
        store.delete(&pk, "TOKEN", Precondition::None).await?;
        store.delete(&item.pk, &item.sk, Precondition::None).await?;
    }
    Ok(page.items.len())
}

/// The connection an upload token is for.
pub async fn resolve_token(app: &App, token: &str) -> Result<(WorkspaceId, ConnectionId), Error> {
    if !token.starts_with("upl_") || token.len() > 128 {
        return Err(Error::Unauthenticated("not an upload token"));
    }
    let (pk, sk) = token_key(token);
    let item =
        app.repo.store().get(&pk, &sk).await?.ok_or(Error::Unauthenticated("unknown or revoked upload token"))?;
    let ws = WorkspaceId::parse(item.body["workspace_id"].as_str().unwrap_or_default())?;
    let conn = ConnectionId::parse(item.body["connection_id"].as_str().unwrap_or_default())?;
    Ok((ws, conn))
}
