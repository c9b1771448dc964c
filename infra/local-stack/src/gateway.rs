//! The local gateway: plays API Gateway's HTTP API in front of the handler
//! functions. It matches the route, verifies the bearer token (as the JWT
//! authorizer does), answers CORS, turns the request into the same payload
//! v2.0 event Lambda receives, and calls the function that owns the route.

use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};
use std::sync::Arc;

use shared::entry::http::{self as api, error};
use shared::Error;

use crate::LocalStack;

/// API Gateway HTTP APIs take bodies up to 10 MB.
pub const MAX_BODY: usize = 10 * 1024 * 1024;

pub type Reply = Response<Full<Bytes>>;

fn reply(r: Response<lambda_http::Body>) -> Reply {
    let (parts, body) = r.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        #[allow(unreachable_patterns)]
        _ => Bytes::new(),
    };
    Response::from_parts(parts, Full::new(bytes))
}

fn error_reply(e: &Error) -> Reply {
    reply(error::response(e))
}

fn bytes_reply(r: Response<Bytes>) -> Reply {
    let (parts, body) = r.into_parts();
    Response::from_parts(parts, Full::new(body))
}

/// Adds CORS headers when the origin is allowed (exact match).
fn cors(stack: &LocalStack, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    let Some(origin) = origin.and_then(|o| o.to_str().ok()) else {
        return;
    };
    if !stack.app.config.origin_allowed(origin) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    }
}

fn preflight(stack: &LocalStack, origin: Option<&HeaderValue>) -> Reply {
    let mut r = Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("static");
    cors(stack, origin, r.headers_mut());
    if r.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let h = r.headers_mut();
        let methods = api::cors_methods().join(", ");
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_str(&methods).expect("method names"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(api::CORS_HEADERS));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    r
}

/// Serves one HTTP request.
pub async fn serve_request(stack: Arc<LocalStack>, request: Request<Incoming>) -> Reply {
    if request.method() == Method::PUT && request.uri().path().starts_with("/local/uploads/") {
        return crate::uploads::presigned_put(&stack, request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error_reply(&Error::PayloadTooLarge { limit: MAX_BODY }),
    };
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let mut r = route(&stack, Request::from_parts(parts, body)).await;
    cors(&stack, origin.as_ref(), r.headers_mut());
    r
}

async fn route(stack: &LocalStack, request: Request<Bytes>) -> Reply {
    let path = request.uri().path().to_owned();
    if path == "/.well-known/oauth-authorization-server/sandbox" {
        return match &stack.sandbox {
            Some(s) => bytes_reply(s.metadata()),
            None => error_reply(&Error::RouteNotFound),
        };
    }
    if path == "/sandbox" || path.starts_with("/sandbox/") {
        return match &stack.sandbox {
            Some(s) => bytes_reply(s.handle(&request)),
            None => error_reply(&Error::RouteNotFound),
        };
    }
    if request.method() == Method::OPTIONS {
        return preflight(stack, request.headers().get(header::ORIGIN));
    }
    if request.method() == Method::GET {
        if let Some(r) = crate::outbox::serve(stack, &path) {
            return r;
        }
    }
    match (request.method(), path.as_str()) {
        (&Method::GET, p) if crate::console::serve(p).is_some() => {
            return crate::console::serve(p).expect("checked");
        }
        (&Method::POST, "/dev/token") => return dev_token(stack, &request),
        _ => {}
    }
    let (route, params) = match api::find_route(request.method(), &path) {
        Ok(found) => found,
        Err(e) => return error_reply(&e),
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let identity = match route.auth {
        api::Auth::Public => Identity::None,
        api::Auth::User => {
            let Some(token) = bearer else {
                return error_reply(&Error::Unauthenticated("no bearer token"));
            };
            match stack.tokens.verify(token) {
                Ok(c) => Identity::Claims(c),
                Err(why) => return error_reply(&Error::Unauthenticated(why)),
            }
        }
        // API Gateway refuses an unsigned call to an AWS_IAM route before the
        // function runs (403); here the service token stands in for SigV4.
        api::Auth::Service => match bearer {
            Some(token) if stack.service_token.verify(token) => Identity::Service,
            _ => {
                return error_reply(&Error::Unauthenticated(
                    "service routes take the local service token (.local/data/service-token)",
                ))
            }
        },
    };
    let event = to_event(&request, route.method.as_str(), route.path, &params, identity);
    let lambda_request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => return error_reply(&Error::MalformedBody(format!("gateway: {e}"))),
    };
    reply(api::handle(&stack.app, route.function, lambda_request).await)
}

fn dev_token(stack: &LocalStack, request: &Request<Bytes>) -> Reply {
    let parsed: Result<crate::devtoken::TokenRequest, Error> = serde_json::from_slice(request.body())
        .map_err(|_| Error::MalformedBody("expected {\"workspace_id\", \"user_id\", \"role\", \"email\"}".into()));
    let now = stack.app.clock.now().timestamp();
    match parsed.and_then(|r| stack.tokens.mint(&r, now)) {
        Ok((token, exp)) => reply(api::json(StatusCode::OK, &json!({"token": token, "expires_at": exp}))),
        Err(e) => error_reply(&e),
    }
}

/// Who the gateway verified, as API Gateway's authorizers pass it on.
pub enum Identity {
    None,
    /// A JWT's claims (the JWT authorizer).
    Claims(std::collections::HashMap<String, String>),
    /// The service token (standing in for the AWS_IAM authorizer).
    Service,
}

/// The API Gateway HTTP API payload v2.0 event of a request.
pub fn to_event(
    request: &Request<Bytes>,
    method: &str,
    template: &str,
    params: &api::Params,
    identity: Identity,
) -> Value {
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    headers.entry("host").or_insert_with(|| Value::String("127.0.0.1".into()));
    headers.insert("x-forwarded-proto".into(), Value::String("http".into()));
    let raw_query = request.uri().query().unwrap_or("").to_owned();
    let mut query = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let (body, encoded) = match std::str::from_utf8(request.body()) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(request.body()), true),
    };
    let route_key = format!("{method} {template}");
    let now = chrono::Utc::now();
    let mut context = json!({
        "accountId": "local", "apiId": "local", "domainName": "127.0.0.1", "domainPrefix": "local",
        "http": {"method": method, "path": request.uri().path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                 "userAgent": request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("")},
        "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": route_key, "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(), "timeEpoch": now.timestamp_millis(),
    });
    match identity {
        Identity::Claims(claims) => context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}}),
        Identity::Service => {
            context["authorizer"] = json!({"iam": {
                "accessKey": "local", "accountId": "local", "callerId": crate::devtoken::ServiceToken::CALLER,
                "cognitoIdentity": null, "principalOrgId": null,
                "userArn": crate::devtoken::ServiceToken::CALLER, "userId": crate::devtoken::ServiceToken::CALLER,
            }})
        }
        Identity::None => {}
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.uri().path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": encoded,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    if !request.body().is_empty() {
        event["body"] = Value::String(body);
    }
    event
}
