//! What the API shows of each entity: never a secret, never a vault name.

use serde::Serialize;
use serde_json::{json, Value};

use crate::catalog::PlatformEntry;
use crate::domain::{Authorization, Connection, Credential, Notification, Status};

fn status(s: &Status) -> Value {
    json!({"state": s.state_name(), "reason": s.reason_code()})
}

pub fn provider(e: &PlatformEntry) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "category": e.category,
        "method": e.method,
        "roles": e.roles,
        "required_role": e.required_role,
        "docs_url": e.docs_url,
        "credentials": e.credentials,
        "params": e.params.iter().map(|p| json!({"name": p.name, "label": p.label, "pattern": p.pattern, "example": p.example, "help": p.help})).collect::<Vec<_>>(),
        "key_fields": e.api_key.as_ref().map(|k| k.fields.iter().map(|f| json!({"name": f.name, "label": f.label, "secret": f.secret, "pattern": f.pattern})).collect::<Vec<_>>()),
        "key_help": e.api_key.as_ref().and_then(|k| k.help.clone()),
        "scopes": e.oauth.as_ref().map(|o| o.default_scopes.clone()).unwrap_or_default(),
        "streams": e.streams.iter().map(|s| json!({"name": s.name, "default_selected": s.default_selected})).collect::<Vec<_>>(),
        "sandbox": e.sandbox,
        "note": e.note,
        "api_version": e.api_version,
    })
}

/// A connection as the API shows it, serialized straight from the entity
/// (a list of them is never built as a tree first).
#[derive(Serialize)]
pub struct ConnectionView<'a> {
    id: &'a crate::domain::ids::ConnectionId,
    platform: &'a crate::domain::ids::PlatformId,
    name: &'a str,
    role: &'a crate::domain::ConnectionRole,
    client: &'a Option<crate::domain::ClientRef>,
    credential: CredentialView<'a>,
    account: &'a Option<crate::domain::ExternalAccount>,
    params: &'a std::collections::BTreeMap<String, String>,
    status: StatusView<'a>,
    streams: &'a [crate::domain::StreamSelection],
    progress: std::collections::BTreeMap<&'a str, ProgressView<'a>>,
    sync: Option<RunningView<'a>>,
    initial_sync_done: bool,
    upload_schedule: &'a Option<crate::domain::UploadSchedule>,
    upload_overdue: bool,
    last_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    data_fresh_as_of: Option<chrono::DateTime<chrono::Utc>>,
    next_sync_at: Option<chrono::DateTime<chrono::Utc>>,
    sync_interval_minutes: Option<u32>,
    stale: bool,
    stale_reason: Option<StaleView>,
    last_error: &'a Option<crate::domain::LastError>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum CredentialView<'a> {
    Authorization { authorization_id: &'a crate::domain::ids::AuthorizationId },
    ApiKey { hint: String, last_verified_at: chrono::DateTime<chrono::Utc> },
    FileUpload,
}

#[derive(Serialize)]
struct StatusView<'a> {
    state: &'a str,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ProgressView<'a> {
    records: u64,
    pages: u64,
    records_this_run: u64,
    pages_this_run: u64,
    total: Option<u64>,
    windows_done: Option<u64>,
    windows_planned: Option<u64>,
    percent: Option<u8>,
    complete: bool,
    updated_at: &'a Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Serialize)]
struct RunningView<'a> {
    run_id: &'a crate::domain::ids::SyncRunId,
    kind: &'a crate::domain::SyncKind,
    started_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct StaleView {
    code: &'static str,
    message: &'static str,
    action: &'static str,
    since: chrono::DateTime<chrono::Utc>,
}

impl<'a> ConnectionView<'a> {
    pub fn of(c: &'a Connection, now: chrono::DateTime<chrono::Utc>) -> Self {
        let credential = match &c.credential {
            Credential::Authorization { authorization_id } => CredentialView::Authorization { authorization_id },
            Credential::ApiKey { hint, last_verified_at, .. } => {
                CredentialView::ApiKey { hint: format!("…{hint}"), last_verified_at: *last_verified_at }
            }
            Credential::FileUpload => CredentialView::FileUpload,
        };
        ConnectionView {
            id: &c.id,
            platform: &c.platform,
            name: &c.name,
            role: &c.role,
            client: &c.client,
            credential,
            account: &c.account,
            params: &c.params,
            status: StatusView { state: c.status.state_name(), reason: c.status.reason_code() },
            streams: &c.streams,
            progress: c
                .cursors
                .iter()
                .map(|(k, v)| {
                    let percent = match v.windows_planned {
                        Some(planned) if planned > 0 => Some((v.windows_done.min(planned) * 100 / planned) as u8),
                        _ => v.total.filter(|t| *t > 0).map(|t| (v.records_this_run.min(t) * 100 / t) as u8),
                    };
                    let view = ProgressView {
                        records: v.records,
                        pages: v.pages,
                        records_this_run: v.records_this_run,
                        pages_this_run: v.pages_this_run,
                        total: v.total,
                        windows_done: v.windows_planned.map(|_| v.windows_done),
                        windows_planned: v.windows_planned,
                        percent,
                        complete: v.complete,
                        updated_at: &v.updated_at,
                    };
                    (k.as_str(), view)
                })
                .collect(),
            sync: c.running.as_ref().map(|r| RunningView { run_id: &r.id, kind: &r.kind, started_at: r.started_at }),
            initial_sync_done: c.initial_sync_done,
            upload_schedule: &c.upload_schedule,
            upload_overdue: c
                .upload_schedule
                .is_some_and(|s| c.last_synced_at.unwrap_or(c.created_at) + s.overdue_after() < now),
            last_synced_at: c.last_synced_at,
            data_fresh_as_of: c.last_synced_at,
            next_sync_at: c.next_sync_at,
            sync_interval_minutes: c.sync_interval_minutes,
            stale: c.stale.is_some(),
            stale_reason: c.stale.map(|s| StaleView {
                code: s.reason.code(),
                message: s.reason.message(),
                action: s.reason.action(),
                since: s.since,
            }),
            last_error: &c.last_error,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

pub fn connection(c: &Connection, now: chrono::DateTime<chrono::Utc>) -> Value {
    serde_json::to_value(ConnectionView::of(c, now)).expect("a view serializes")
}

pub fn authorization(a: &Authorization, used_by: &[&Connection]) -> Value {
    json!({
        "id": a.id,
        "platform": a.platform,
        "name": a.name,
        "account": a.account,
        "scopes": a.scopes,
        "params": a.params,
        "status": status(&a.status),
        "expiry": a.expiry,
        "last_refreshed_at": a.last_refreshed_at,
        "created_by": a.created_by,
        "created_at": a.created_at,
        "connections": used_by.iter().map(|c| json!({"id": c.id, "name": c.name, "client": c.client, "status": status(&c.status)})).collect::<Vec<_>>(),
    })
}

pub fn notification(n: &Notification) -> Value {
    serde_json::to_value(n).unwrap_or(Value::Null)
}

/// A sync run as the history lists it.
pub fn run(r: &crate::domain::SyncRun) -> Value {
    json!({
        "id": r.id,
        "kind": r.kind,
        "trigger": r.trigger,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "streams": r.streams,
        "outcome": r.outcome,
        "error_code": r.error_code,
    })
}

pub fn upload(u: &crate::domain::upload::Upload) -> Value {
    let report = u.report.as_ref();
    json!({
        "id": u.id,
        "connection_id": u.connection_id,
        "state": u.state,
        "source": u.source,
        "period": u.period,
        "import_valid_rows": u.import_valid_rows,
        "bytes": report.map(|r| r.bytes),
        "rows": report.map(|r| r.rows),
        "valid_rows": report.map(|r| r.valid_rows),
        "error_total": report.map(|r| r.error_total),
        "errors": report.map(|r| r.errors.clone()).unwrap_or_default(),
        "file_error": u.file_error,
        "first_date": report.and_then(|r| r.first_date),
        "last_date": report.and_then(|r| r.last_date),
        "duplicate_of": u.duplicate_of,
        "replaced_by": u.replaced_by,
        "created_at": u.created_at,
        "finished_at": u.finished_at,
    })
}

/// One service call of the audit log.
pub fn audit(r: &crate::domain::audit::AuditRecord) -> Value {
    json!({
        "id": r.id,
        "caller": r.caller,
        "connection_id": r.connection_id,
        "route": r.route,
        "request": r.request,
        "status": r.status,
        "error_code": r.error_code,
        "at": r.at,
    })
}
