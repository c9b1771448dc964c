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
    Ok(callback_page::render(&connect_oauth::callback(app, &query).await))
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
