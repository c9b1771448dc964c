//! The notification tray: list, mark read.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::domain::error::Error;
use crate::domain::Caller;
use crate::entry::http::{json, views};
use crate::flows::{notifications, App};

pub(super) async fn list(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let (list, unread) = notifications::list(app, caller).await?;
    let (list, next) = super::paged(request, "notifications", list)?;
    let items: Vec<_> = list.iter().map(views::notification).collect();
    Ok(json(StatusCode::OK, &json!({"notifications": items, "unread": unread, "next_cursor": next})))
}

pub(super) async fn read(app: &App, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, Error> {
    let marked = notifications::mark_read(app, caller, id).await?;
    Ok(json(StatusCode::OK, &json!({"marked_read": marked})))
}
