//! The service routes, for the deployer's backend: the proxy to a
//! connection's platform (credentials applied as the catalog declares, one
//! refresh on a 401, the platform's answer and rate-limit headers passed
//! back, never another host), the optional credentials route, who may call
//! them (the service token here, AWS IAM in AWS), and the audit log.

use chrono::Duration;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

use shared::domain::tokens::TokenSet;
use shared::domain::*;

use crate::harness::{error_code, Backend, Reply, SERVICE_TOKEN};
use crate::sync::{connect, setup, setup_env, Setup};

/// A service call as the deployer's backend makes it.
async fn call(
    s: &Setup,
    method: reqwest::Method,
    ws: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut r = s.app.http.request(method, s.app.url(path)).bearer_auth(SERVICE_TOKEN).header("x-workspace-id", ws);
    if let Some((content_type, body)) = body {
        r = r.header("content-type", content_type).body(body.to_owned());
    }
    r.send().await.unwrap()
}

fn proxy_path(c: &Connection, platform_path: &str) -> String {
    format!("/v1/service/connections/{}/proxy/{platform_path}", c.id)
}

async fn audit(s: &Setup, ws: &str) -> Vec<Value> {
    let admin = s.app.token(ws, "u_admin", "admin").await;
    let page = s.app.get_json("/v1/audit?limit=100", &admin).await;
    page["records"].as_array().unwrap_or_else(|| panic!("{page}")).clone()
}

both!(
    the_proxy_calls_with_the_grant_refreshes_once_on_401_and_is_audited,
    a_refresh_that_finds_the_grant_revoked_disconnects_it
);

async fn the_proxy_calls_with_the_grant_refreshes_once_on_401_and_is_audited(backend: Backend) {
    let s = setup(backend, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_px", "expired-token", 1, &["cursor"]).await;
    let c = &cs[0];
    let r = call(&s, reqwest::Method::GET, "ws_px", &proxy_path(c, "cursor?cursor=5"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    assert!(!text.contains("good-token") && !text.contains("rt-"), "no token reaches the caller");
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["data"][0]["id"], "cursor-005", "{page}");
    // The expired token was refused, the grant renewed once, the call made again.
    let sent = s.fake.requests_to("/cursor");
    let auths: Vec<&str> = sent.iter().map(|r| r.headers["authorization"].to_str().unwrap()).collect();
    assert_eq!(auths, ["Bearer expired-token", "Bearer good-token"]);
    assert_eq!(sent[1].query["cursor"], "5", "the query goes as it came");
    assert!(sent.iter().all(|r| r.headers.get("x-workspace-id").is_none()), "our headers stay here");
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 1);
    // A second call uses the renewed token straight away.
    let r = call(&s, reqwest::Method::GET, "ws_px", &proxy_path(c, "cursor"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 1);
    // Both calls are on record, newest first; the query is not.
    let records = audit(&s, "ws_px").await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["request"], "GET /cursor");
    assert_eq!(records[1]["request"], "GET /cursor", "no query in the log");
    assert_eq!(records[0]["caller"], "local-service-token");
    assert_eq!(records[0]["route"], "proxy");
    assert_eq!((records[0]["status"].as_u64(), records[0]["connection_id"].as_str()), (Some(200), Some(c.id.as_str())));
    assert!(!serde_json::to_string(&records).unwrap().contains("token\":"));
}

async fn a_refresh_that_finds_the_grant_revoked_disconnects_it(backend: Backend) {
    let s = setup(backend, &["cursor"]).await;
    let (auth, cs) = connect(&s, "ws_pr", "expired-token", 1, &["cursor"]).await;
    s.fail.lock().unwrap().insert("revoked".into(), vec![]);
    let r = call(&s, reqwest::Method::GET, "ws_pr", &proxy_path(&cs[0], "cursor"), None).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(&r.json().await.unwrap()), "connection_disconnected");
    let now = s.app.stack.app.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value;
    assert!(matches!(now.status, Status::Disconnected { .. }), "{:?}", now.status);
    // Disconnected: refused before any request.
    let before = s.fake.requests().len();
    let r = call(&s, reqwest::Method::GET, "ws_pr", &proxy_path(&cs[0], "cursor"), None).await;
    assert_eq!(r.status(), 409);
    assert_eq!(s.fake.requests().len(), before);
    let records = audit(&s, "ws_pr").await;
    assert_eq!(records[0]["error_code"], "connection_disconnected");
}

#[tokio::test]
async fn bodies_go_as_sent_and_the_platforms_status_and_rate_headers_come_back() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_pb", "good-token", 1, &["cursor"]).await;
    let c = &cs[0];
    s.fail.lock().unwrap().insert(
        "/single".into(),
        vec![
            Reply::JsonWith(201, vec![("x-ratelimit-remaining", "41".into())], json!({"created": true})),
            Reply::JsonWith(
                429,
                vec![("retry-after", "7".into()), ("x-ratelimit-remaining", "0".into()), ("set-cookie", "a=b".into())],
                json!({"error": "slow down"}),
            ),
        ],
    );
    let r = call(
        &s,
        reqwest::Method::POST,
        "ws_pb",
        &proxy_path(c, "single"),
        Some(("application/json", r#"{"name":"x"}"#)),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "41");
    let sent = s.fake.requests_to("/single");
    assert_eq!((sent[0].method.as_str(), sent[0].body.as_str()), ("POST", r#"{"name":"x"}"#));
    assert_eq!(sent[0].headers["content-type"], "application/json");
    assert_eq!(sent[0].headers["authorization"], "Bearer good-token");
    // Throttled: the platform's 429 and its wait reach the caller; its cookie does not.
    let r = call(&s, reqwest::Method::PUT, "ws_pb", &proxy_path(c, "single"), Some(("text/plain", "hello"))).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(s.fake.requests_to("/single")[1].headers["content-type"], "text/plain");
    // A short wait the platform asks for is sat out for the caller.
    s.fail.lock().unwrap().insert(
        "/single".into(),
        vec![Reply::JsonWith(429, vec![("retry-after", "0".into())], json!({"error": "slow down"}))],
    );
    let r = call(&s, reqwest::Method::GET, "ws_pb", &proxy_path(c, "single"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.fake.requests_to("/single").len(), 4, "the throttled call was made again");
    // DELETE and PATCH go too.
    for method in [reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let r = call(&s, method.clone(), "ws_pb", &proxy_path(c, "single"), None).await;
        assert_eq!(r.status(), 200, "{method}");
    }
    let methods: Vec<String> = s.fake.requests_to("/single").iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "PUT", "GET", "GET", "DELETE", "PATCH"]);
}

#[tokio::test]
async fn the_proxy_never_leaves_the_platforms_api() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_ph", "good-token", 1, &["cursor"]).await;
    let c = &cs[0];
    // (`..` and `.` segments, plain or encoded, are normalised away by
    // HTTP clients; `flows::service::target` refuses them, see its tests.)
    for path in ["cursor//x", "%2Fetc%2Fpasswd", "@evil.example/x", "a%40evil.example/x", "a%5C..%5Cb"] {
        let r = call(&s, reqwest::Method::GET, "ws_ph", &proxy_path(c, path), None).await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(error_code(&body), "path_not_allowed", "{path}: {body}");
    }
    assert!(s.fake.requests().is_empty(), "nothing was sent anywhere");
    assert!(audit(&s, "ws_ph").await.iter().all(|r| r["error_code"] == "path_not_allowed"));
    // A body past the limit is refused before anything is sent.
    let big = "x".repeat(5 * 1024 * 1024 + 1);
    let r =
        call(&s, reqwest::Method::POST, "ws_ph", &proxy_path(c, "single"), Some(("text/plain", big.as_str()))).await;
    assert_eq!(r.status(), 413);
    assert!(s.fake.requests().is_empty());
}

#[tokio::test]
async fn only_the_service_token_opens_the_service_routes_and_only_for_its_workspace() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_pa", "good-token", 1, &["cursor"]).await;
    let path = proxy_path(&cs[0], "cursor");
    let admin = s.app.token("ws_pa", "u_admin", "admin").await;
    let get = |token: Option<String>, ws: Option<&str>| {
        let mut r = s.app.http.get(s.app.url(&path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(ws) = ws {
            r = r.header("x-workspace-id", ws);
        }
        r.send()
    };
    for (token, ws, why) in [
        (None, Some("ws_pa"), "no token"),
        (Some("svc_not_the_token_of_this_deployment".to_owned()), Some("ws_pa"), "another token"),
        (Some(admin.clone()), Some("ws_pa"), "a person's token"),
        (Some(SERVICE_TOKEN.to_owned()), None, "no workspace"),
    ] {
        let r = get(token, ws).await.unwrap();
        assert_eq!(r.status(), 401, "{why}");
        assert_eq!(error_code(&r.json().await.unwrap()), "unauthenticated", "{why}");
    }
    // Another workspace does not see the connection.
    let r = get(Some(SERVICE_TOKEN.to_owned()), Some("ws_other")).await.unwrap();
    assert_eq!(r.status(), 404);
    // The service token opens nothing else.
    let r = s.app.http.get(s.app.url("/v1/connections")).bearer_auth(SERVICE_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.fake.requests().is_empty());
    // The audit log is for admins.
    for role in ["staff", "client_viewer"] {
        let t = s.app.token("ws_pa", "u", role).await;
        let r = s.app.http.get(s.app.url("/v1/audit")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 403, "{role}");
    }
    // The refused call of the other workspace is on its record, not on ours.
    assert!(audit(&s, "ws_pa").await.iter().all(|r| r["status"] == 401 || r["connection_id"] == cs[0].id.as_str()));
    let other = audit(&s, "ws_other").await;
    assert_eq!((other.len(), other[0]["status"].as_u64()), (1, Some(404)));
}

#[tokio::test]
async fn file_connections_have_no_platform_to_call() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let staff = s.app.token("ws_pf", "u", "staff").await;
    let r = s
        .app
        .http
        .post(s.app.url("/v1/connections/file-upload"))
        .bearer_auth(&staff)
        .json(&json!({"platform": "custom_costs", "name": "Costs"}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = call(&s, reqwest::Method::GET, "ws_pf", &format!("/v1/service/connections/{id}/proxy/x"), None).await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(&r.json().await.unwrap()), "no_platform_api");
}

#[tokio::test]
async fn the_credentials_route_is_off_unless_turned_on() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_co", "good-token", 1, &["cursor"]).await;
    let path = format!("/v1/service/connections/{}/credentials", cs[0].id);
    let r = call(&s, reqwest::Method::GET, "ws_co", &path, None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r.json().await.unwrap()), "credentials_route_disabled");
    assert_eq!(audit(&s, "ws_co").await[0]["error_code"], "credentials_route_disabled");
}

#[tokio::test]
async fn the_credentials_route_hands_out_a_fresh_token_and_records_it() {
    let s = setup_env(Backend::Embedded, &["cursor"], json!({}), &[("ENABLE_CREDENTIALS_ROUTE", "true")]).await;
    let (auth, cs) = connect(&s, "ws_cr", "good-token", 1, &["cursor"]).await;
    let app = &s.app.stack.app;
    // The token expires in 5 minutes: inside the refresh margin.
    let now = s.app.clock_now();
    let soon = TokenSet {
        access_token: "expiring-token".into(),
        refresh_token: Some("rt-1".into()),
        expires_at: Some(now + Duration::minutes(5)),
        refresh_expires_at: None,
        scopes: vec!["read".into()],
        obtained_at: now,
        token_secret: None,
    };
    app.vault.put(&auth.secret.0, &soon.to_secret()).await.unwrap();
    let path = format!("/v1/service/connections/{}/credentials", cs[0].id);
    let r = call(&s, reqwest::Method::GET, "ws_cr", &path, None).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["access_token"], "good-token", "renewed first: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["platform"], "sandbox_oauth");
    let expires: chrono::DateTime<chrono::Utc> = serde_json::from_value(body["expires_at"].clone()).unwrap();
    assert!(expires > now + Duration::minutes(30));
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 1);
    // Fresh now: handed out again without a refresh.
    let r = call(&s, reqwest::Method::GET, "ws_cr", &path, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 1);
    let records = audit(&s, "ws_cr").await;
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["route"] == "credentials" && r["status"] == 200 && r["request"].is_null()));
    assert!(!serde_json::to_string(&records).unwrap().contains("good-token"), "the log never holds the token");
    // Paged, newest first.
    let admin = s.app.token("ws_cr", "u_admin", "admin").await;
    let first = s.app.get_json("/v1/audit?limit=1", &admin).await;
    assert_eq!(first["records"][0]["id"], records[0]["id"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = s.app.get_json(&format!("/v1/audit?limit=1&cursor={cursor}"), &admin).await;
    assert_eq!(second["records"][0]["id"], records[1]["id"]);
}

#[tokio::test]
async fn an_api_key_connection_is_called_with_its_key_as_the_catalog_declares() {
    let app = crate::harness::spawn_app().await;
    let staff = app.token("ws_pk", "u", "staff").await;
    let r = app
        .http
        .post(app.url("/v1/connections/api-key"))
        .bearer_auth(&staff)
        .json(
            &json!({"platform": "sandbox_api_key", "name": "Shop", "credentials": {"api_key": "sandbox-valid-proxy"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app
        .http
        .get(app.url(&format!("/v1/service/connections/{id}/proxy/orders?limit=2")))
        .bearer_auth(SERVICE_TOKEN)
        .header("x-workspace-id", "ws_pk")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
    assert!(!body.to_string().contains("sandbox-valid-proxy"));
}
