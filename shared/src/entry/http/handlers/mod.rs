//! The route handlers, one file an area. Each parses the request, calls
//! one flow with the verified caller, and renders the result with a view;
//! rules live in the flows, errors become HTTP in `error.rs` only.

mod authorizations;
mod connect;
mod connections;
mod members;
mod notifications;
mod service;
mod uploads;

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{identity, json, Auth, Params, Route, RouteId};
use crate::domain::error::Error;
use crate::domain::ids::ConnectionId;
use crate::domain::upload::DIRECT_LIMITS;
use crate::flows::App;

/// The largest JSON body taken.
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub(super) async fn dispatch(
    app: &App,
    route: &Route,
    params: Params,
    request: Request,
) -> Result<Response<Body>, Error> {
    // Service routes verify their own caller (and audit refusals too).
    match route.id {
        RouteId::Proxy => return service::proxy(app, &params, request).await,
        RouteId::ServiceCredentials => return service::credentials(app, &params, request).await,
        _ => {}
    }
    let caller = match route.auth {
        Auth::User => Some(members::authenticate_caller(app, identity::caller(&request, &app.config)?).await?),
        Auth::Public | Auth::Service => None,
    };
    let caller = || caller.as_ref().ok_or(Error::Unauthenticated("no verified token"));
    let (p, r) = (&params, &request);
    match route.id {
        RouteId::Health => Ok(json(StatusCode::OK, &json!({"status": "ok"}))),
        RouteId::Providers => connect::providers(app),
        RouteId::ProviderCredentials => connect::provider_credentials(app, caller()?, p, r).await,
        RouteId::ConnectStart => connect::start(app, caller()?, r).await,
        RouteId::OauthCallback => connect::callback(app, r).await,
        RouteId::OauthLaunch => connect::launch(app, r).await,
        RouteId::ClaimInstall => connect::claim_install(app, caller()?, r).await,
        RouteId::ApiKeyConnect => connect::api_key(app, caller()?, r).await,
        RouteId::ReplaceApiKey => connect::replace_api_key(app, caller()?, p, r).await,
        RouteId::ListConnections => connections::list(app, caller()?, r).await,
        RouteId::CreateConnection => connections::create(app, caller()?, r).await,
        RouteId::GetConnection => connections::get(app, caller()?, p).await,
        RouteId::PatchConnection => connections::patch(app, caller()?, p, r).await,
        RouteId::DeleteConnection => connections::remove(app, caller()?, p).await,
        RouteId::SyncNow => connections::sync_now(app, caller()?, p).await,
        RouteId::ListRuns => connections::runs(app, caller()?, p, r).await,
        RouteId::DailySpend => connections::spend(app, caller()?, r).await,
        RouteId::ListAuthorizations => authorizations::list(app, caller()?, r).await,
        RouteId::RenameAuthorization => authorizations::rename(app, caller()?, p, r).await,
        RouteId::RemoveAuthorization => authorizations::remove(app, caller()?, p).await,
        RouteId::AuthorizationAccounts => authorizations::accounts(app, caller()?, p, r).await,
        RouteId::DiscoverAccounts => authorizations::discover(app, caller()?, p, r).await,
        RouteId::ListMembers => members::list(app, caller()?, r).await,
        RouteId::UpsertMember => members::upsert(app, caller()?, p, r).await,
        RouteId::LiftEmailSuppression => members::lift_suppression(app, caller()?, p).await,
        RouteId::GetMe => members::me(app, caller()?).await,
        RouteId::UpdateMe => members::update_me(app, caller()?, r).await,
        RouteId::EmailUnsubscribePage => Ok(members::unsubscribe_page(app, r).await),
        RouteId::EmailUnsubscribe => Ok(members::unsubscribe(app, r).await),
        RouteId::ListNotifications => notifications::list(app, caller()?, r).await,
        RouteId::ReadNotification => notifications::read(app, caller()?, p.get("id").map(String::as_str)).await,
        RouteId::ReadAllNotifications => notifications::read(app, caller()?, None).await,
        RouteId::CreateFileConnection => uploads::create_connection(app, caller()?, r).await,
        RouteId::Upload => uploads::upload(app, caller()?, p, r).await,
        RouteId::AutomationUpload => uploads::automation_upload(app, r).await,
        RouteId::PresignUpload => uploads::presign(app, caller()?, p, r).await,
        RouteId::ListUploads => uploads::list(app, caller()?, p, r).await,
        RouteId::GetUpload => uploads::get(app, caller()?, p).await,
        RouteId::ExportCosts => uploads::export(app, caller()?, p).await,
        RouteId::IssueUploadToken => uploads::issue_token(app, caller()?, p).await,
        RouteId::RevokeUploadTokens => uploads::revoke_tokens(app, caller()?, p).await,
        RouteId::ListAudit => service::audit(app, caller()?, r).await,
        RouteId::Proxy | RouteId::ServiceCredentials => Err(Error::RouteNotFound),
    }
}

/// The `{id}` of a connection route.
pub(super) fn connection_id(params: &Params) -> Result<ConnectionId, Error> {
    ConnectionId::parse(param(params, "id"))
}

/// A path parameter ("" when absent: the id parsers refuse it).
pub(super) fn param<'p>(params: &'p Params, name: &str) -> &'p str {
    params.get(name).map(String::as_str).unwrap_or("")
}

/// The `limit` of a paged list, if given: 1 to 100 (the flow has the default).
pub(super) fn limit_param(request: &Request) -> Result<Option<usize>, Error> {
    query(request, "limit")
        .map(|l| match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(Error::invalid("limit", "must be a whole number from 1 to 100")),
        })
        .transpose()
}

/// `limit` and `cursor` of a list read whole, and its page.
pub(super) fn paged<T>(request: &Request, shape: &str, items: Vec<T>) -> Result<(Vec<T>, Option<String>), Error> {
    let limit = crate::domain::paging::limit(query(request, "limit").as_deref())?;
    let cursor = cursor_param(request)?;
    crate::domain::paging::page(items, shape, cursor.as_deref(), limit)
}

/// The `limit` and `cursor` of a page read from the store.
pub(super) fn page_ask(request: &Request) -> Result<crate::domain::paging::PageAsk, Error> {
    let limit = crate::domain::paging::limit(query(request, "limit").as_deref())?;
    Ok(crate::domain::paging::PageAsk { cursor: cursor_param(request)?, limit })
}

/// A paging `cursor`, if given: never empty (an empty one is a mistake, not
/// the first page).
pub(super) fn cursor_param(request: &Request) -> Result<Option<String>, Error> {
    match query(request, "cursor") {
        Some(c) if c.is_empty() => Err(Error::invalid("cursor", "is empty; leave it out for the first page")),
        other => Ok(other),
    }
}

/// A query-string parameter.
pub(super) fn query(request: &Request, name: &str) -> Option<String> {
    request.query_string_parameters().first(name).map(str::to_owned)
}

pub(super) fn body_bytes(request: &Request) -> &[u8] {
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
pub(super) fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, Error> {
    let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
        return Err(Error::UnsupportedMediaType { expected: "application/json" });
    }
    let bytes = body_bytes(request);
    if bytes.len() > MAX_JSON_BODY {
        return Err(Error::PayloadTooLarge { limit: MAX_JSON_BODY });
    }
    // A JSON object, as every route documents (serde would also read a
    // struct from an array).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_none_or(|b| *b != b'{') {
        return Err(Error::MalformedBody("not a JSON object".into()));
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

/// A CSV body: `text/csv`, at most the direct-upload limit.
pub(super) fn csv_body(request: &Request) -> Result<Vec<u8>, Error> {
    let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "text/csv" && mime != "application/csv" {
        return Err(Error::UnsupportedMediaType { expected: "text/csv" });
    }
    let bytes = body_bytes(request);
    if bytes.len() as u64 > DIRECT_LIMITS.max_bytes {
        return Err(Error::PayloadTooLarge { limit: DIRECT_LIMITS.max_bytes as usize });
    }
    Ok(bytes.to_vec())
}
