//! Named authorizations: list with the connections that use each, rename,
//! remove.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

use super::{json_body, param};
use crate::domain::error::Error;
use crate::domain::ids::AuthorizationId;
use crate::domain::{Caller, Connection};
use crate::entry::http::{json, views, Params};
use crate::flows::{authorizations, App};

pub(super) async fn list(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let list = authorizations::list(app, caller).await?;
    let (list, next) = super::paged(request, "authorizations", list)?;
    let items: Vec<_> =
        list.iter().map(|(a, used)| views::authorization(a, &used.iter().collect::<Vec<&Connection>>())).collect();
    Ok(json(StatusCode::OK, &json!({"authorizations": items, "next_cursor": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

pub(super) async fn rename(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let id = AuthorizationId::parse(param(params, "id"))?;
    let body: Rename = json_body(request)?;
    let a = authorizations::rename(app, caller, &id, &body.name).await?;
    Ok(json(StatusCode::OK, &views::authorization(&a, &[])))
}

pub(super) async fn remove(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let id = AuthorizationId::parse(param(params, "id"))?;
    let n = authorizations::remove(app, caller, &id).await?;
    Ok(json(StatusCode::OK, &json!({"removed": true, "connections_disconnected": n})))
}

/// What a grant reaches, its accounts paged (`limit`, `cursor`; an agency
/// grant may reach thousands).
fn reach_view(id: &AuthorizationId, reach: &crate::flows::accounts::Reach) -> serde_json::Value {
    let page = reach.discovered.as_ref();
    json!({
        "authorization_id": id,
        "accounts": page.map(|p| &p.accounts),
        "next_cursor": page.and_then(|p| p.next_cursor.as_ref()),
        "discovered_at": page.map(|p| p.at),
        "total": page.map(|p| p.count),
        "complete": page.map(|p| p.complete),
        "streams": reach.streams,
    })
}

/// `GET /v1/authorizations/{id}/accounts`: what the grant reaches.
pub(super) async fn accounts(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let id = AuthorizationId::parse(param(params, "id"))?;
    let reach = crate::flows::accounts::reach(app, caller, &id, &super::page_ask(request)?).await?;
    Ok(json(StatusCode::OK, &reach_view(&id, &reach)))
}

/// `POST /v1/authorizations/{id}/discover`: ask the platform again.
pub(super) async fn discover(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let id = AuthorizationId::parse(param(params, "id"))?;
    let reach = crate::flows::accounts::rediscover(app, caller, &id, &super::page_ask(request)?).await?;
    Ok(json(StatusCode::OK, &reach_view(&id, &reach)))
}
