//! The catalog, connect by OAuth (start and callback), BYO app
//! credentials, connect and replace by API key.

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use super::{connection_id, json_body, param};
use crate::domain::error::Error;
use crate::domain::Caller;
use crate::entry::http::{callback_page, json, views, Params};
use crate::flows::{connect_api_key, connect_oauth, providers as provider_flows, App};

pub(super) fn providers(app: &App) -> Result<Response<Body>, Error> {
    let list: Vec<_> = app.catalog.entries().map(views::provider).collect();
    Ok(json(StatusCode::OK, &json!({"providers": list})))
}

pub(super) async fn provider_credentials(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    // The role and the platform are checked before the body is read.
    caller.require(crate::domain::Role::Admin)?;
    app.catalog.get(param(params, "id"))?;
    let input: provider_flows::AppCredentialsInput = json_body(request)?;
    let client_id = input.client_id.clone();
    let entry = provider_flows::store_app_credentials(app, caller, param(params, "id"), input).await?;
    Ok(json(StatusCode::OK, &json!({"platform": entry.id, "client_id": client_id, "configured": true})))
}

pub(super) async fn start(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let started = connect_oauth::start(app, caller, json_body(request)?).await?;
    Ok(json(StatusCode::OK, &json!(started)))
}

pub(super) async fn callback(app: &App, request: &Request) -> Result<Response<Body>, Error> {
    let query: std::collections::BTreeMap<String, String> =
        request.query_string_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let cookies = cookies_of(request);
    // An install the platform started itself: no state of ours.
    if !query.contains_key("state") {
        if let Some(entry) = crate::flows::installs::install_platform(app, &query) {
            let received = crate::flows::installs::receive(app, entry, &query).await;
            let ancestors = entry.oauth.as_ref().map(|o| o.install_frame_ancestors.clone()).unwrap_or_default();
            return Ok(callback_page::install(&received, &app.config.app_base_url, &ancestors));
        }
    }
    let result = connect_oauth::callback(app, &query, &cookies).await;
    let mut response = callback_page::render(&result);
    // The flow's cookie has done its work.
    if let Some(state) = query.get("state") {
        let name = connect_oauth::cookie_name(state);
        if cookies.contains_key(&name) {
            let gone = flow_cookie(app, name, String::new(), cookie::time::Duration::ZERO);
            if let Ok(v) = http::HeaderValue::from_str(&gone.to_string()) {
                response.headers_mut().append(http::header::SET_COOKIE, v);
            }
        }
    }
    Ok(response)
}

/// The cookies of a request (API Gateway passes them in the Cookie header).
fn cookies_of(request: &Request) -> std::collections::BTreeMap<String, String> {
    request
        .headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_owned()).filter_map(Result::ok).collect::<Vec<_>>())
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect()
}

/// The cookie that binds a flow to the browser: first-party, `HttpOnly`,
/// `SameSite=Lax` (sent on the platform's top-level redirect back), only to
/// `/v1/oauth`, `Secure` unless the API itself is plain http (loopback).
fn flow_cookie(app: &App, name: String, value: String, max_age: cookie::time::Duration) -> cookie::Cookie<'static> {
    cookie::Cookie::build((name, value))
        .path("/v1/oauth")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(app.config.base_url().starts_with("https://"))
        .max_age(max_age)
        .build()
}

/// `GET /v1/oauth/launch?l=…`: the browser that opens it is the one the flow
/// is bound to; then on to the platform.
pub(super) async fn launch(app: &App, request: &Request) -> Result<Response<Body>, Error> {
    let token = request.query_string_parameters().first("l").unwrap_or_default().to_owned();
    match connect_oauth::launch(app, &token).await {
        Ok(l) => {
            let cookie = flow_cookie(app, l.cookie_name, l.nonce, cookie::time::Duration::seconds(l.max_age_seconds));
            Ok(Response::builder()
                .status(StatusCode::FOUND)
                .header(http::header::LOCATION, l.authorize_url)
                .header(http::header::SET_COOKIE, cookie.to_string())
                .header(http::header::CACHE_CONTROL, "no-store")
                .header("referrer-policy", "no-referrer")
                .body(Body::Empty)
                .expect("valid launch response"))
        }
        Err(e) => {
            let result = connect_oauth::CallbackResult {
                return_origin: None,
                return_to: None,
                mode: connect_oauth::ReturnMode::Popup,
                outcome: Err(e),
            };
            Ok(callback_page::render(&result))
        }
    }
}

pub(super) async fn api_key(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let outcome = connect_api_key::connect(app, caller, json_body(request)?).await?;
    let status = if outcome.existing { StatusCode::OK } else { StatusCode::CREATED };
    let mut body = views::connection(&outcome.connection, app.clock.now());
    body["existing"] = json!(outcome.existing);
    Ok(json(status, &body))
}

pub(super) async fn replace_api_key(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let c = connect_api_key::replace(app, caller, &connection_id(params)?, json_body(request)?).await?;
    Ok(json(StatusCode::OK, &views::connection(&c, app.clock.now())))
}

/// `POST /v1/installs/claim`: an install the platform started becomes the
/// caller's workspace's (201), or reconnects its store there (200).
pub(super) async fn claim_install(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let claimed = crate::flows::installs::claim(app, caller, super::json_body(request)?).await?;
    let status = if claimed.reconnected { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(
        status,
        &serde_json::json!({
            "connection_id": claimed.connection_id,
            "authorization_id": claimed.authorization_id,
            "reconnected": claimed.reconnected,
        }),
    ))
}
