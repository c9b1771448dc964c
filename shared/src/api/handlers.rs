//! Route handlers. Each reads the caller's workspace from the verified
//! claims and touches nothing outside it.

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::{identity, json, views, Params, Route, RouteId};
use crate::app::App;
use crate::domain::{Authorization, Caller, Connection, Credential, Member, Notification, Role};
use crate::error::Error;
use crate::ids::ConnectionId;

/// The largest JSON body taken.
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub(super) async fn dispatch(
    app: &App,
    route: &Route,
    params: Params,
    request: Request,
) -> Result<Response<Body>, Error> {
    let caller = if route.auth { Some(identity::caller(&request, &app.config)?) } else { None };
    let caller = || caller.as_ref().ok_or(Error::Unauthenticated("no verified token"));
    match route.id {
        RouteId::Health => Ok(json(StatusCode::OK, &json!({"status": "ok"}))),
        RouteId::Providers => providers(app),
        RouteId::ListConnections => list_connections(app, caller()?, &request).await,
        RouteId::GetConnection => get_connection(app, caller()?, &params).await,
        RouteId::PatchConnection => patch_connection(app, caller()?, &params, &request).await,
        RouteId::DeleteConnection => delete_connection(app, caller()?, &params).await,
        RouteId::ListMembers => {
            let caller = caller()?;
            caller.require(Role::Admin)?;
            let members: Vec<_> =
                app.repo.list::<Member>(&caller.workspace_id).await?.into_iter().map(|v| v.value).collect();
            Ok(json(StatusCode::OK, &json!({"members": members})))
        }
        RouteId::UpsertMember => upsert_member(app, caller()?, &params, &request).await,
        RouteId::UpdateMe => update_me(app, caller()?, &request).await,
        RouteId::ReadNotification => read_notifications(app, caller()?, params.get("id").map(String::as_str)).await,
        RouteId::ReadAllNotifications => read_notifications(app, caller()?, None).await,
        RouteId::CreateConnection => {
            let c = crate::authorizations::create_connection(app, caller()?, json_body(&request)?).await?;
            Ok(json(StatusCode::CREATED, &views::connection(&c, app.clock.now())))
        }
        RouteId::RenameAuthorization => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Rename {
                name: String,
            }
            let id = crate::ids::AuthorizationId::parse(params.get("id").map(String::as_str).unwrap_or(""))?;
            let body: Rename = json_body(&request)?;
            let a = crate::authorizations::rename(app, caller()?, &id, &body.name).await?;
            Ok(json(StatusCode::OK, &views::authorization(&a, &[])))
        }
        RouteId::RemoveAuthorization => {
            let id = crate::ids::AuthorizationId::parse(params.get("id").map(String::as_str).unwrap_or(""))?;
            let n = crate::authorizations::remove(app, caller()?, &id).await?;
            Ok(json(StatusCode::OK, &json!({"removed": true, "connections_disconnected": n})))
        }
        RouteId::SyncNow => {
            crate::sync::sync_now(app, caller()?, &connection_id(&params)?).await?;
            Ok(json(StatusCode::ACCEPTED, &json!({"queued": true})))
        }
        RouteId::ListAuthorizations => list_authorizations(app, caller()?).await,
        RouteId::ListNotifications => list_notifications(app, caller()?).await,
        RouteId::ConnectStart => {
            let started = crate::oauth::start(app, caller()?, json_body(&request)?).await?;
            Ok(json(StatusCode::OK, &json!(started)))
        }
        RouteId::OauthCallback => {
            let query: std::collections::BTreeMap<String, String> =
                request.query_string_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            Ok(super::callback_page::render(&crate::oauth::callback(app, &query).await))
        }
        RouteId::ProviderCredentials => provider_credentials(app, caller()?, &params, &request).await,
        RouteId::ApiKeyConnect => {
            let outcome = crate::apikey::connect(app, caller()?, json_body(&request)?).await?;
            let status = if outcome.existing { StatusCode::OK } else { StatusCode::CREATED };
            let mut body = views::connection(&outcome.connection, app.clock.now());
            body["existing"] = json!(outcome.existing);
            Ok(json(status, &body))
        }
        RouteId::ReplaceApiKey => {
            let c = crate::apikey::replace(app, caller()?, &connection_id(&params)?, json_body(&request)?).await?;
            Ok(json(StatusCode::OK, &views::connection(&c, app.clock.now())))
        }
        RouteId::CreateFileConnection => {
            let c = crate::uploads::create(app, caller()?, json_body(&request)?).await?;
            Ok(json(StatusCode::CREATED, &views::connection(&c, app.clock.now())))
        }
        RouteId::Upload => {
            let caller = caller()?;
            caller.require(Role::Staff)?;
            let id = connection_id(&params)?;
            let by = Some(caller.user_id.clone());
            upload_file(app, &caller.workspace_id, &id, crate::uploads::UploadSource::Direct, by, &request).await
        }
        RouteId::AutomationUpload => {
            let token = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(Error::Unauthenticated("an upload token is required"))?;
            let (ws, id) = crate::uploads::resolve_token(app, token.trim()).await?;
            upload_file(app, &ws, &id, crate::uploads::UploadSource::Automation, None, &request).await
        }
        RouteId::PresignUpload => {
            let caller = caller()?;
            caller.require(Role::Staff)?;
            let id = connection_id(&params)?;
            crate::uploads::file_connection(app, &caller.workspace_id, &id).await?;
            let options = upload_options(&request)?;
            let upload = crate::uploads::begin(
                app,
                &caller.workspace_id,
                &id,
                crate::uploads::UploadSource::Presigned,
                &options,
                Some(caller.user_id.clone()),
            )
            .await?;
            let ttl = std::time::Duration::from_secs(crate::uploads::PRESIGN_SECONDS);
            let url = app.sink.presign_put(&upload.object_key(), ttl).await?;
            let expires_at = app.clock.now() + chrono::Duration::seconds(crate::uploads::PRESIGN_SECONDS as i64);
            Ok(json(
                StatusCode::CREATED,
                &json!({"upload": views::upload(&upload), "upload_url": url, "method": "PUT", "expires_at": expires_at,
                        "max_bytes": crate::uploads::LARGE_LIMITS.max_bytes}),
            ))
        }
        RouteId::ListUploads => {
            let caller = caller()?;
            let id = connection_id(&params)?;
            crate::uploads::file_connection(app, &caller.workspace_id, &id).await?;
            let mut list =
                app.repo.list_prefix::<crate::uploads::Upload>(&caller.workspace_id, &format!("UPLOAD#{id}#")).await?;
            list.sort_by_key(|u| std::cmp::Reverse(u.value.created_at));
            let items: Vec<_> = list.iter().map(|u| views::upload(&u.value)).collect();
            Ok(json(StatusCode::OK, &json!({"uploads": items})))
        }
        RouteId::GetUpload => {
            let caller = caller()?;
            let id = connection_id(&params)?;
            let upload_id = crate::ids::UploadId::parse(params.get("upload_id").map(String::as_str).unwrap_or(""))?;
            let sk = format!("UPLOAD#{id}#{upload_id}");
            let item = app
                .repo
                .store()
                .get(&crate::repo::workspace_pk(&caller.workspace_id), &sk)
                .await?
                .ok_or(Error::NotFound { kind: "upload" })?;
            let upload: crate::uploads::Upload =
                serde_json::from_value(item.body).map_err(|e| crate::error::StoreError::Corrupt(e.to_string()))?;
            Ok(json(StatusCode::OK, &views::upload(&upload)))
        }
        RouteId::ExportCosts => {
            let caller = caller()?;
            let id = connection_id(&params)?;
            crate::uploads::file_connection(app, &caller.workspace_id, &id).await?;
            let csv = crate::uploads::export(app, &caller.workspace_id, &id, 5 * 1024 * 1024).await?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "text/csv; charset=utf-8")
                .header(http::header::CONTENT_DISPOSITION, "attachment; filename=\"custom-costs.csv\"")
                .header(http::header::CACHE_CONTROL, "no-store")
                .body(Body::Binary(csv))
                .expect("static response parts"))
        }
        RouteId::IssueUploadToken => {
            let (token, created_at) = crate::uploads::issue_token(app, caller()?, &connection_id(&params)?).await?;
            Ok(json(
                StatusCode::CREATED,
                &json!({"token": token, "created_at": created_at,
                "note": "Shown once. Send it as `Authorization: Bearer <token>` to POST /v1/automation/uploads."}),
            ))
        }
        RouteId::RevokeUploadTokens => {
            let n = crate::uploads::revoke_tokens(app, caller()?, &connection_id(&params)?).await?;
            Ok(json(StatusCode::OK, &json!({"revoked": n})))
        }
    }
}

fn body_bytes(request: &Request) -> &[u8] {
    match request.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        #[allow(unreachable_patterns)]
        _ => &[],
    }
}

/// Parses a JSON body: 415 without a JSON content type, 413 past the limit,
/// 400 for malformed JSON or a wrong shape (the serde message names the
/// field, never the value).
pub(crate) fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, Error> {
    let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
        return Err(Error::UnsupportedMediaType { expected: "application/json" });
    }
    let bytes = body_bytes(request);
    if bytes.len() > MAX_JSON_BODY {
        return Err(Error::PayloadTooLarge { limit: MAX_JSON_BODY });
    }
    serde_json::from_slice(bytes).map_err(|e| {
        // serde_json's messages describe positions and expected types;
        // "invalid value: string \"...\"" would echo input, so keep only the
        // category and position.
        let kind = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
            serde_json::error::Category::Data => "a field is missing or has the wrong type",
            serde_json::error::Category::Io => "unreadable",
        };
        Error::MalformedBody(format!("{kind} (line {}, column {})", e.line(), e.column()))
    })
}

/// A CSV file in the request body, for a file connection: ingested whole
/// or not at all (direct and automation uploads alike).
async fn upload_file(
    app: &App,
    ws: &crate::ids::WorkspaceId,
    id: &ConnectionId,
    source: crate::uploads::UploadSource,
    by: Option<crate::ids::UserId>,
    request: &Request,
) -> Result<Response<Body>, Error> {
    crate::uploads::file_connection(app, ws, id).await?;
    let options = upload_options(request)?;
    let body = csv_body(request)?;
    let upload = crate::uploads::ingest_bytes(app, ws, id, source, &options, by, body).await?;
    Ok(upload_response(&upload))
}

fn upload_options(request: &Request) -> Result<crate::uploads::UploadOptions, Error> {
    let q = request.query_string_parameters();
    crate::uploads::UploadOptions::from_query(q.first("period"), q.first("import_valid_rows"))
}

/// A CSV body: `text/csv`, at most the direct-upload limit.
fn csv_body(request: &Request) -> Result<Vec<u8>, Error> {
    let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "text/csv" && mime != "application/csv" {
        return Err(Error::UnsupportedMediaType { expected: "text/csv" });
    }
    let bytes = body_bytes(request);
    if bytes.len() as u64 > crate::uploads::DIRECT_LIMITS.max_bytes {
        return Err(Error::PayloadTooLarge { limit: crate::uploads::DIRECT_LIMITS.max_bytes as usize });
    }
    Ok(bytes.to_vec())
}

/// 201 ingested, 200 duplicate, 413/422 rejected with the report.
fn upload_response(upload: &crate::uploads::Upload) -> Response<Body> {
    use crate::uploads::UploadState;
    let view = views::upload(upload);
    match upload.state {
        UploadState::Ingested => json(StatusCode::CREATED, &view),
        UploadState::Duplicate => json(StatusCode::OK, &view),
        _ => {
            let (status, code, message, action) = match &upload.file_error {
                Some(e) if e.code == "file_too_large" || e.code == "too_many_rows" => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    e.code.clone(),
                    e.message.clone(),
                    "Split the file, or use POST /v1/connections/{id}/uploads/presigned for large files.".to_owned(),
                ),
                Some(e) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.code.clone(),
                    e.message.clone(),
                    "Fix the file as described, then upload it again. Nothing was imported.".to_owned(),
                ),
                None => {
                    let total = upload.report.as_ref().map_or(0, |r| r.error_total);
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rows".to_owned(), if total == 1 { "1 row has errors; nothing was imported.".to_owned() } else { format!("{total} rows have errors; nothing was imported.") },
                     "Fix the rows listed in upload.errors and upload again, or upload with import_valid_rows=true to import only the valid rows.".to_owned())
                }
            };
            json(status, &json!({"error": {"code": code, "message": message, "action": action}, "upload": view}))
        }
    }
}

fn providers(app: &App) -> Result<Response<Body>, Error> {
    let list: Vec<_> = app.catalog.entries().map(views::provider).collect();
    Ok(json(StatusCode::OK, &json!({"providers": list})))
}

fn connection_id(params: &Params) -> Result<ConnectionId, Error> {
    ConnectionId::parse(params.get("id").map(String::as_str).unwrap_or(""))
}

async fn list_connections(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let query = request.query_string_parameters();
    let status = query.first("status").map(str::to_owned);
    let platform = query.first("platform").map(str::to_owned);
    let client = query.first("client").map(str::to_owned);
    let mut list: Vec<Connection> = app
        .repo
        .list::<Connection>(&caller.workspace_id)
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|c| status.as_deref().is_none_or(|s| c.status.state_name() == s))
        .filter(|c| platform.as_deref().is_none_or(|p| c.platform.as_str() == p))
        .filter(|c| client.as_deref().is_none_or(|id| c.client.as_ref().is_some_and(|cl| cl.id.as_str() == id)))
        .collect();
    // Default: disconnected first, then errors, then the rest; newest first within.
    let rank = |c: &Connection| match c.status.state_name() {
        "disconnected" => 0,
        "error" => 1,
        "pending_authorization" => 2,
        "initial_sync_in_progress" => 3,
        _ => 4,
    };
    match query.first("sort").unwrap_or("status") {
        "status" => list.sort_by(|a, b| rank(a).cmp(&rank(b)).then(b.created_at.cmp(&a.created_at))),
        "platform" => list.sort_by(|a, b| a.platform.cmp(&b.platform).then(a.name.cmp(&b.name))),
        "client" => list.sort_by(|a, b| {
            let name = |c: &Connection| c.client.as_ref().map(|cl| cl.name.to_lowercase());
            name(a).is_none().cmp(&name(b).is_none()).then(name(a).cmp(&name(b)))
        }),
        "last_synced" => list.sort_by_key(|c| c.last_synced_at),
        _ => return Err(Error::invalid("sort", "must be status, platform, client or last_synced")),
    }
    let now = app.clock.now();
    let items: Vec<_> = list.iter().map(|c| views::connection(c, now)).collect();
    Ok(json(StatusCode::OK, &json!({"connections": items})))
}

async fn get_connection(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let c = app.repo.connection(&caller.workspace_id, &connection_id(params)?).await?;
    Ok(json(StatusCode::OK, &views::connection(&c.value, app.clock.now())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionPatch {
    name: Option<String>,
    /// Names of the streams to sync.
    selected_streams: Option<Vec<String>>,
    /// File connections: `daily`, `weekly`, `monthly`, or null for none.
    #[serde(default)]
    upload_schedule: Option<serde_json::Value>,
    /// OAuth connections: use another authorization of the same platform
    /// (after one was removed); a disconnected connection resumes.
    #[serde(default)]
    authorization_id: Option<String>,
}

pub(crate) fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "must be 1 to 100 printable characters"));
    }
    Ok(name.to_owned())
}

async fn patch_connection(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    caller.require(Role::Staff)?;
    let id = connection_id(params)?;
    let patch: ConnectionPatch = json_body(request)?;
    let current = app.repo.connection(&caller.workspace_id, &id).await?;
    let mut c = current.value;
    if let Some(name) = &patch.name {
        c.name = check_name(name)?;
    }
    if let Some(selected) = &patch.selected_streams {
        for name in selected {
            if !c.streams.iter().any(|s| &s.name == name) {
                return Err(Error::invalid("selected_streams", format!("{name} is not a stream of this connection")));
            }
        }
        for s in &mut c.streams {
            s.selected = selected.contains(&s.name);
        }
    }
    let mut resume = false;
    if let Some(auth_id) = &patch.authorization_id {
        if !matches!(c.credential, Credential::Authorization { .. }) {
            return Err(Error::invalid("authorization_id", "only OAuth connections use an authorization"));
        }
        let auth =
            app.repo.authorization(&caller.workspace_id, &crate::ids::AuthorizationId::parse(auth_id)?).await?.value;
        if auth.platform != c.platform {
            return Err(Error::invalid(
                "authorization_id",
                format!("the authorization is for {}, not {}", auth.platform, c.platform),
            ));
        }
        if !auth.status.has_credentials() && auth.status != crate::domain::Status::Connected {
            return Err(Error::invalid("authorization_id", "that authorization is disconnected; reconnect it first"));
        }
        c.credential = Credential::Authorization { authorization_id: auth.id.clone() };
        if matches!(c.status, crate::domain::Status::Disconnected { .. }) {
            c.apply(crate::domain::Event::Reconnected { initial_sync_done: c.initial_sync_done }, app.clock.now())?;
            resume = c.role == crate::domain::ConnectionRole::Source;
        }
    }
    if let Some(schedule) = patch.upload_schedule {
        if !matches!(c.credential, Credential::FileUpload) {
            return Err(Error::invalid("upload_schedule", "only file connections have an upload schedule"));
        }
        c.upload_schedule = serde_json::from_value(schedule)
            .map_err(|_| Error::invalid("upload_schedule", "must be daily, weekly, monthly or null"))?;
    }
    c.updated_at = app.clock.now();
    app.repo.save(&c, current.version).await?;
    if resume {
        let kind =
            if c.initial_sync_done { crate::domain::SyncKind::Incremental } else { crate::domain::SyncKind::Initial };
        crate::jobs::enqueue(app, crate::ports::QueueKind::Sync, &crate::jobs::SyncJob::start(&c, kind), 0).await?;
    }
    Ok(json(StatusCode::OK, &views::connection(&c, app.clock.now())))
}

async fn delete_connection(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    caller.require(Role::Staff)?;
    let id = connection_id(params)?;
    let current = app.repo.connection(&caller.workspace_id, &id).await?;
    app.repo.delete(&current.value, current.version).await?;
    // Its own key dies with it; a shared authorization stays.
    if let Credential::ApiKey { secret, .. } = &current.value.credential {
        app.vault.delete(&secret.0).await?;
    }
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).expect("static response"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppCredentialsInput {
    client_id: String,
    client_secret: secrecy::SecretString,
}

/// `PUT /v1/providers/{id}/credentials`: a workspace brings its own OAuth
/// app (BYO platforms). The secret goes to the vault only.
async fn provider_credentials(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    use secrecy::ExposeSecret;
    caller.require(Role::Admin)?;
    let entry = app.catalog.get(params.get("id").map(String::as_str).unwrap_or(""))?;
    if entry.credentials != crate::catalog::CredentialSource::Byo {
        return Err(Error::invalid(
            "platform",
            format!("{} uses this deployment's own app; there is nothing to enter", entry.name),
        ));
    }
    let input: AppCredentialsInput = json_body(request)?;
    let printable = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_graphic());
    if !printable(&input.client_id, 256) {
        return Err(Error::invalid("client_id", "must be 1 to 256 printable characters"));
    }
    if !printable(input.client_secret.expose_secret(), 1024) {
        return Err(Error::invalid("client_secret", "must be 1 to 1024 printable characters"));
    }
    let secret = crate::platform::AppCredentials::secret_ref(app, entry, &caller.workspace_id);
    crate::platform::AppCredentials::store(app, &secret, &input.client_id, &input.client_secret).await?;
    Ok(json(StatusCode::OK, &json!({"platform": entry.id, "client_id": input.client_id, "configured": true})))
}

async fn list_authorizations(app: &App, caller: &Caller) -> Result<Response<Body>, Error> {
    let connections: Vec<Connection> =
        app.repo.list::<Connection>(&caller.workspace_id).await?.into_iter().map(|v| v.value).collect();
    let auths = app.repo.list::<Authorization>(&caller.workspace_id).await?;
    let items: Vec<_> = auths
        .iter()
        .map(|a| {
            let used: Vec<&Connection> =
                connections.iter().filter(|c| c.authorization_id() == Some(&a.value.id)).collect();
            views::authorization(&a.value, &used)
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({"authorizations": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberInput {
    email: String,
    role: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email_opt_out: Vec<crate::domain::AlertKind>,
}

fn check_email(email: &str) -> Result<String, Error> {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e.to_owned())
    } else {
        Err(Error::invalid("email", "must be an email address"))
    }
}

/// `PUT /v1/members/{user_id}` (admin): the members alerts go to.
async fn upsert_member(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    caller.require(Role::Admin)?;
    let user_id = crate::ids::UserId::parse(params.get("user_id").map(String::as_str).unwrap_or(""))?;
    let input: MemberInput = json_body(request)?;
    let member = Member {
        workspace_id: caller.workspace_id.clone(),
        user_id,
        email: check_email(&input.email)?,
        display_name: match input.display_name {
            Some(n) => Some(check_name(&n)?),
            None => None,
        },
        role: Role::parse(&input.role)?,
        email_opt_out: input.email_opt_out,
        updated_at: app.clock.now(),
    };
    app.repo.upsert(&member).await?;
    Ok(json(StatusCode::OK, &json!(member)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MePatch {
    email_opt_out: Vec<crate::domain::AlertKind>,
}

/// `PATCH /v1/members/me`: a member turns email off (or on) per alert kind.
async fn update_me(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let patch: MePatch = json_body(request)?;
    let current = app
        .repo
        .member(&caller.workspace_id, &caller.user_id)
        .await
        .map_err(|_| Error::NotFound { kind: "member (an admin adds members first)" })?;
    let mut me = current.value;
    me.email_opt_out = patch.email_opt_out;
    me.updated_at = app.clock.now();
    app.repo.save(&me, current.version).await?;
    Ok(json(StatusCode::OK, &json!(me)))
}

/// Marks one notification (or all) read.
async fn read_notifications(app: &App, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, Error> {
    caller.require(Role::Staff)?;
    let id = id.map(crate::ids::NotificationId::parse).transpose()?;
    let now = app.clock.now();
    let mut marked = 0;
    for n in app.repo.list::<Notification>(&caller.workspace_id).await? {
        if n.value.read_at.is_some() || id.as_ref().is_some_and(|i| *i != n.value.id) {
            continue;
        }
        let mut v = n.value;
        v.read_at = Some(now);
        app.repo.save(&v, n.version).await?;
        marked += 1;
    }
    if id.is_some() && marked == 0 {
        // Either unknown or already read: tell them apart.
        let known = app
            .repo
            .list::<Notification>(&caller.workspace_id)
            .await?
            .into_iter()
            .any(|n| Some(&n.value.id) == id.as_ref());
        if !known {
            return Err(Error::NotFound { kind: "notification" });
        }
    }
    Ok(json(StatusCode::OK, &json!({"marked_read": marked})))
}

async fn list_notifications(app: &App, caller: &Caller) -> Result<Response<Body>, Error> {
    // Client viewers get no alerts by default.
    caller.require(Role::Staff)?;
    let mut list: Vec<Notification> =
        app.repo.list::<Notification>(&caller.workspace_id).await?.into_iter().map(|v| v.value).collect();
    list.reverse();
    let unread = list.iter().filter(|n| n.read_at.is_none()).count();
    let items: Vec<_> = list.iter().map(views::notification).collect();
    Ok(json(StatusCode::OK, &json!({"notifications": items, "unread": unread})))
}
