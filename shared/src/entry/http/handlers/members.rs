//! Members: list, add or replace, a member's own email settings.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

use super::{json_body, param};
use crate::domain::error::Error;
use crate::domain::ids::UserId;
use crate::domain::{AlertKind, Caller};
use crate::entry::http::{json, Params};
use crate::flows::{members, App};

/// The verified caller as the workspace knows them (membership, role,
/// clients).
pub(super) async fn authenticate_caller(app: &App, caller: Caller) -> Result<Caller, Error> {
    members::authenticate(app, caller).await
}

pub(super) async fn list(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let mut out = Vec::new();
    let (page, next) = super::paged(request, "members", members::list(app, caller).await?)?;
    for m in page {
        let mut view = json!(m);
        view["email_suppressed"] = json!(members::suppression(app, &m).await?);
        out.push(view);
    }
    Ok(json(StatusCode::OK, &json!({"members": out, "next_cursor": next})))
}

/// `DELETE /v1/members/{user_id}/email-suppression` (admin).
pub(super) async fn lift_suppression(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let user_id = UserId::parse(param(params, "user_id"))?;
    members::lift_suppression(app, caller, &user_id).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).expect("static response"))
}

pub(super) async fn upsert(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    caller.require(crate::domain::Role::Admin)?;
    let user_id = UserId::parse(param(params, "user_id"))?;
    let member = members::upsert(app, caller, user_id, json_body(request)?).await?;
    Ok(json(StatusCode::OK, &json!(member)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MePatch {
    email_opt_out: Vec<AlertKind>,
}

pub(super) async fn update_me(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let patch: MePatch = json_body(request)?;
    let me = members::set_email_opt_out(app, caller, patch.email_opt_out).await?;
    Ok(json(StatusCode::OK, &json!(me)))
}
