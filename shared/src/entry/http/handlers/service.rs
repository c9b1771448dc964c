//! The service routes, for the deployer's backend (AWS IAM; locally the
//! service token): the proxy to a connection's platform and the optional
//! credentials route. The workspace is named by `X-Workspace-Id`. Every
//! call, answered or refused, is written to the workspace's audit log.

use bytes::Bytes;
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{body_bytes, connection_id, param};
use crate::domain::audit::ServiceRoute;
use crate::domain::error::Error;
use crate::domain::ids::WorkspaceId;
use crate::domain::Caller;
use crate::entry::http::{error, identity, json, Params};
use crate::flows::service::{self as flow, Forward, ServiceCaller};
use crate::flows::App;

/// The largest body forwarded to a platform.
pub const MAX_PROXY_BODY: usize = 5 * 1024 * 1024;

/// The header that names the workspace of a service call.
pub const WORKSPACE_HEADER: &str = "x-workspace-id";

fn service_caller(request: &Request) -> Result<ServiceCaller, Error> {
    let id = identity::service_caller(request)?;
    let ws = request
        .headers()
        .get(WORKSPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::invalid(WORKSPACE_HEADER, "is required: the workspace of the connection"))?;
    Ok(ServiceCaller { id, workspace_id: WorkspaceId::parse(ws.trim())? })
}

/// The platform path: everything after `/proxy/` in the raw path, exactly as
/// sent (trailing slash included).
fn platform_path(request: &Request) -> String {
    let path = request.uri().path();
    path.split_once("/proxy/").map(|(_, rest)| rest.to_owned()).unwrap_or_default()
}

/// Answers a service call and records it: the status and error code the
/// caller got, never a token.
async fn answered(
    app: &App,
    caller: Option<&ServiceCaller>,
    connection: &str,
    route: ServiceRoute,
    request_line: Option<String>,
    result: Result<Response<Body>, Error>,
) -> Result<Response<Body>, Error> {
    let (status, code) = match &result {
        Ok(r) => (r.status().as_u16(), None),
        Err(e) => {
            let d = error::describe(e);
            (d.status.as_u16(), Some(d.code.to_owned()))
        }
    };
    // Without a verified caller and workspace there is no log to write to.
    if let Some(caller) = caller {
        let written = flow::audit(app, caller, connection, route, request_line, status, code).await;
        // A token leaves only if its hand-out is on record.
        if let (Err(e), ServiceRoute::Credentials, Ok(_)) = (written, route, &result) {
            return Err(e);
        }
    }
    result
}

pub(super) async fn proxy(app: &App, params: &Params, request: Request) -> Result<Response<Body>, Error> {
    let caller = service_caller(&request);
    let header = |name: http::HeaderName| request.headers().get(name).cloned();
    let forward = Forward {
        method: request.method().clone(),
        path: platform_path(&request),
        query: request.uri().query().map(str::to_owned),
        content_type: header(http::header::CONTENT_TYPE),
        accept: header(http::header::ACCEPT),
        body: Bytes::copy_from_slice(body_bytes(&request)),
    };
    let line = forward.request_line();
    let connection = param(params, "id").to_owned();
    let result = async {
        let caller = caller.as_ref().map_err(|e| Error::Unauthenticated(unauth(e)))?;
        if forward.body.len() > MAX_PROXY_BODY {
            return Err(Error::PayloadTooLarge { limit: MAX_PROXY_BODY });
        }
        let answer = flow::proxy(app, caller, &connection_id(params)?, forward).await?;
        let (parts, body) = answer.into_parts();
        let mut response = Response::builder().status(parts.status);
        for (name, value) in &parts.headers {
            response = response.header(name, value);
        }
        let body = match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        };
        response.body(body).map_err(|e| Error::Config(format!("proxy answer: {e}")))
    }
    .await;
    answered(app, caller.as_ref().ok(), &connection, ServiceRoute::Proxy, Some(line), result).await
}

pub(super) async fn credentials(app: &App, params: &Params, request: Request) -> Result<Response<Body>, Error> {
    let caller = service_caller(&request);
    let connection = param(params, "id").to_owned();
    let result = async {
        let caller = caller.as_ref().map_err(|e| Error::Unauthenticated(unauth(e)))?;
        let issued = flow::access_token(app, caller, &connection_id(params)?).await?;
        Ok(json(
            StatusCode::OK,
            &json!({
                "access_token": issued.access_token.expose_secret(),
                "token_type": "Bearer",
                "expires_at": issued.expires_at,
                "platform": issued.platform,
                "scopes": issued.scopes,
            }),
        ))
    }
    .await;
    answered(app, caller.as_ref().ok(), &connection, ServiceRoute::Credentials, None, result).await
}

/// The reason of a refused service caller, for the 401.
fn unauth(e: &Error) -> &'static str {
    match e {
        Error::Unauthenticated(why) => why,
        _ => "a service call names its workspace in X-Workspace-Id",
    }
}

/// `GET /v1/audit` (a person's route, for admins): the workspace's service
/// calls, newest first.
pub(super) async fn audit(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let limit = super::limit_param(request)?.unwrap_or(50);
    let cursor = super::cursor_param(request)?;
    let (records, next) = flow::audit_log(app, caller, cursor.as_deref(), limit).await?;
    let records: Vec<_> = records.iter().map(crate::entry::http::views::audit).collect();
    Ok(json(StatusCode::OK, &json!({"records": records, "next_cursor": next})))
}
