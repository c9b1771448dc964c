//! Members: list, add or replace, a member's own email settings.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::{json_body, param, query};
use crate::domain::error::Error;
use crate::domain::ids::UserId;
use crate::domain::Caller;
use crate::entry::http::{email_page, json, Params};
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

pub(super) async fn me(app: &App, caller: &Caller) -> Result<Response<Body>, Error> {
    Ok(json(StatusCode::OK, &json!(members::me(app, caller).await?)))
}

pub(super) async fn update_me(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let me = members::update_me(app, caller, json_body(request)?).await?;
    Ok(json(StatusCode::OK, &json!(me)))
}

/// `GET /v1/email/unsubscribe?token=…`: asks (a link scanner's GET changes
/// nothing); the page's button POSTs.
pub(super) async fn unsubscribe_page(app: &App, request: &Request) -> Response<Body> {
    let token = query(request, "token").unwrap_or_default();
    let product = &app.config.brand.product_name;
    let prefs = crate::flows::alerts::preferences_link(app);
    match members::unsubscribe_preview(app, &token).await {
        Ok((member, kind)) => email_page::confirm(product, kind, &member.email, &token, &prefs),
        Err(e) => email_page::failed(product, &crate::entry::http::error::describe(&e), &prefs),
    }
}

/// `POST /v1/email/unsubscribe?token=…`: one-click unsubscribe, from the
/// mailbox's button (`List-Unsubscribe=One-Click`) or the page's form.
pub(super) async fn unsubscribe(app: &App, request: &Request) -> Response<Body> {
    let token = query(request, "token").unwrap_or_default();
    let product = &app.config.brand.product_name;
    let prefs = crate::flows::alerts::preferences_link(app);
    match members::unsubscribe(app, &token).await {
        Ok((member, kind)) => email_page::done(product, kind, &member.email, &prefs),
        Err(e) => email_page::failed(product, &crate::entry::http::error::describe(&e), &prefs),
    }
}
