//! Connections: list, create on an authorization, read, change, remove,
//! sync now.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::{connection_id, json_body, query};
use crate::domain::error::Error;
use crate::domain::ids::ConnectionId;
use crate::domain::Caller;
use crate::entry::http::{json, json_of, views, Params};
use crate::flows::{authorizations, connections, sync, App};

/// `GET /v1/spend?from=YYYY-MM-DD&to=YYYY-MM-DD[&connection_id=]`: the
/// daily spend table over the connections the caller may see.
pub(super) async fn spend(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let day = |name: &'static str| -> Result<chrono::NaiveDate, Error> {
        let text = query(request, name).ok_or_else(|| Error::invalid(name, "is required (YYYY-MM-DD)"))?;
        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map_err(|_| Error::invalid(name, "must be a date (YYYY-MM-DD)"))
    };
    let (from, to) = (day("from")?, day("to")?);
    let connection = query(request, "connection_id").map(|c| ConnectionId::parse(&c)).transpose()?;
    let read = crate::flows::spend::daily(app, caller, from, to, connection.as_ref()).await?;
    Ok(json(StatusCode::OK, &json!({"from": from, "to": to, "facts": read.facts, "totals": read.totals})))
}

pub(super) async fn list(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    // A filter given empty is a mistake, not "no filter".
    let filter = |name: &'static str| match query(request, name) {
        Some(v) if v.is_empty() => Err(Error::invalid(name, "is empty; leave it out to not filter")),
        other => Ok(other),
    };
    let q = connections::ListQuery {
        status: filter("status")?,
        platform: filter("platform")?,
        client: filter("client")?,
        sort: filter("sort")?,
    };
    let (page, next) = connections::list(app, caller, &q, &super::page_ask(request)?).await?;
    let now = app.clock.now();
    #[derive(serde::Serialize)]
    struct Listed<'a> {
        connections: Vec<views::ConnectionView<'a>>,
        next_cursor: Option<String>,
    }
    let listed =
        Listed { connections: page.iter().map(|c| views::ConnectionView::of(c, now)).collect(), next_cursor: next };
    Ok(json_of(StatusCode::OK, &listed))
}

pub(super) async fn create(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let c = authorizations::create_connection(app, caller, json_body(request)?).await?;
    Ok(json(StatusCode::CREATED, &views::connection(&c, app.clock.now())))
}

pub(super) async fn get(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let c = connections::get(app, caller, &connection_id(params)?).await?;
    Ok(json(StatusCode::OK, &views::connection(&c, app.clock.now())))
}

pub(super) async fn patch(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    // The role is checked before the id and the body are read.
    caller.require(crate::domain::Role::Staff)?;
    let id = connection_id(params)?;
    let c = connections::patch(app, caller, &id, json_body(request)?).await?;
    Ok(json(StatusCode::OK, &views::connection(&c, app.clock.now())))
}

pub(super) async fn remove(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    connections::remove(app, caller, &connection_id(params)?).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).expect("static response"))
}

pub(super) async fn runs(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let id = connection_id(params)?;
    let limit = super::limit_param(request)?;
    let cursor = super::cursor_param(request)?;
    let (runs, next) = connections::runs(app, caller, &id, cursor.as_deref(), limit).await?;
    let runs: Vec<_> = runs.iter().map(views::run).collect();
    Ok(json(StatusCode::OK, &json!({"runs": runs, "next_cursor": next})))
}

pub(super) async fn sync_now(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    sync::sync_now(app, caller, &connection_id(params)?).await?;
    Ok(json(StatusCode::ACCEPTED, &json!({"queued": true})))
}
