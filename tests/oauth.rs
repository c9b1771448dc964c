//! OAuth connect: start and callback, against the sandbox OAuth platform and
//! fake platforms on loopback for each catalog pattern (standard with PKCE,
//! per-shop Shopify with HMAC, TikTok's JSON body, Amazon SP-API, Meta's
//! long-lived exchange), and every failure. Each test also checks that no
//! token value is in a stored item (other than the vault) or a response.

use hmac::Mac;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use shared::domain::ids::WorkspaceId;
use shared::domain::tokens::TokenSet;
use shared::domain::{Authorization, SecretRef};
use shared::ports::QueueKind;

use crate::harness::{error_code, spawn_app_on, spawn_app_with, Backend, FakePlatform, Recorded, Reply, TestApp};

const ORIGIN: &str = "https://app.example.com";

/// Starts a flow and launches it in the test's browser (which keeps the
/// flow's cookie), as the popup does; `authorize_url` is where the launch
/// sent the browser.
async fn start(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let r = app.http.post(app.url("/v1/connect/start")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let mut started: Value = r.json().await.unwrap();
    if status == 200 {
        started["authorize_url"] = json!(crate::harness::launch(&app.http, &started).await);
    }
    (status, started)
}

fn query_of(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// Approves on the sandbox's consent screen (as `account`) and returns where
/// the platform sends the browser back to.
async fn approve(app: &TestApp, authorize_url: &str, account: &str) -> String {
    let r = app.http.get(format!("{authorize_url}&auto_approve={account}")).send().await.unwrap();
    assert_eq!(r.status(), 302, "the sandbox approves");
    r.headers()["location"].to_str().unwrap().to_owned()
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The JSON the page's script posts.
    fn result(&self) -> Value {
        let start = self.body.find(r#"id="result">"#).expect("result element") + r#"id="result">"#.len();
        let end = start + self.body[start..].find("</script>").unwrap();
        serde_json::from_str(&self.body[start..end]).unwrap()
    }

    fn message(&self) -> Value {
        self.result()["message"].clone()
    }
}

async fn visit(app: &TestApp, url: &str) -> Page {
    let r = app.http.get(url).send().await.unwrap();
    Page { status: r.status().as_u16(), headers: r.headers().clone(), body: r.text().await.unwrap() }
}

fn start_body(platform: &str) -> Value {
    json!({"platform": platform, "name": "Main store", "return_to": format!("{ORIGIN}/settings/integrations")})
}

async fn authorizations(app: &TestApp, ws: &str) -> Vec<Authorization> {
    let ws = WorkspaceId::parse(ws).unwrap();
    app.stack.app.repo.list::<Authorization>(&ws).await.unwrap().into_iter().map(|v| v.value).collect()
}

/// A grant's tokens as its uses see them: the vault's, with the access
/// token sealed in its (current) item.
async fn tokens_of(app: &TestApp, auth: &Authorization) -> TokenSet {
    let current = app.stack.app.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value;
    shared::flows::refresh::tokens_of(&app.stack.app, &current).await.expect("tokens in the vault")
}

/// No stored item and no response holds any of `secrets`.
async fn assert_nowhere(app: &TestApp, secrets: &[&str], responses: &[&str]) {
    let state = app.dump_state().await;
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!state.contains(s), "a token is in the state store");
        for r in responses {
            assert!(!r.contains(s), "a token is in a response");
        }
    }
}

both!(
    sandbox_connects_end_to_end_and_the_state_is_single_use,
    forged_expired_and_missing_states_make_no_token_request,
    an_unclaimed_install_expires_and_the_sweep_deletes_its_tokens,
    x_ads_connects_by_oauth_1a_and_every_request_is_signed,
    the_sandbox_oauth_1a_platform_connects_syncs_and_is_probed
);

async fn sandbox_connects_end_to_end_and_the_state_is_single_use(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let t = app.token("ws_o", "u_staff", "staff").await;
    let (status, started) = start(&app, &t, start_body("sandbox_oauth")).await;
    assert_eq!(status, 200, "{started}");
    let authorize_url = started["authorize_url"].as_str().unwrap();
    let q = query_of(authorize_url);
    assert!(authorize_url.starts_with(&app.url("/sandbox/oauth/authorize?")));
    assert!(q["state"].len() >= 43, "at least 256 bits of state");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], app.url("/v1/oauth/callback"));
    assert_eq!(
        (q["client_id"].as_str(), q["scope"].as_str(), q["response_type"].as_str()),
        ("sandbox-client", "read write", "code")
    );

    let callback = approve(&app, authorize_url, "acct_demo").await;
    assert!(callback.starts_with(&app.url("/v1/oauth/callback?")));
    let page = visit(&app, &callback).await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"), "{csp}");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(page.result()["origin"], ORIGIN, "posted to the exact opener origin");
    let message = page.message();
    assert_eq!(message["status"], "connected", "{message}");
    let connection_id = message["connection_id"].as_str().unwrap().to_owned();

    let r = app.http.get(app.url(&format!("/v1/connections/{connection_id}"))).bearer_auth(&t).send().await.unwrap();
    let connection: Value = r.json().await.unwrap();
    assert_eq!(connection["status"]["state"], "initial_sync_in_progress");
    assert_eq!(connection["credential"]["kind"], "authorization");
    assert_eq!(connection["streams"][0], json!({"name": "orders", "selected": true}));
    let auths = authorizations(&app, "ws_o").await;
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0].account.as_ref().unwrap().id, "acct_demo");
    assert_eq!(auths[0].name, "Main store");
    assert_eq!(auths[0].status.state_name(), "connected");
    assert!(auths[0].next_check_at.is_some(), "the sweep will look at it");

    let jobs = app.stack.app.queue.receive(QueueKind::Sync, 10, 30).await.unwrap();
    assert_eq!(jobs.len(), 1, "the initial sync is queued");
    assert!(jobs[0].body.contains(&connection_id) && jobs[0].body.contains("initial"));

    let tokens = tokens_of(&app, &auths[0]).await;
    let requests = app.sandbox().token_requests();
    assert_eq!(requests, 1);
    let r = app.http.get(app.url("/v1/authorizations")).bearer_auth(&t).send().await.unwrap().text().await.unwrap();
    let refresh = tokens.refresh_token.clone().unwrap_or_default();
    assert_nowhere(
        &app,
        &[&tokens.access_token, &refresh],
        &[&page.body, &started.to_string(), &connection.to_string(), &r],
    )
    .await;

    // Replaying the callback: refused, and no token request is made.
    let replay = visit(&app, &callback).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.message()["error_code"], "invalid_state");
    assert!(replay.result()["origin"].is_null(), "an unknown state posts to nobody");
    assert_eq!(app.sandbox().token_requests(), requests);
    assert_eq!(authorizations(&app, "ws_o").await.len(), 1);

    // Bound to the workspace that started it: another sees nothing.
    let other = app.token("ws_other", "u", "admin").await;
    let r =
        app.http.get(app.url(&format!("/v1/connections/{connection_id}"))).bearer_auth(&other).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

async fn forged_expired_and_missing_states_make_no_token_request(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let t = app.token("ws_s", "u", "staff").await;
    let forged =
        visit(&app, &app.url("/v1/oauth/callback?code=abc&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!((forged.status, forged.message()["error_code"].as_str()), (400, Some("invalid_state")));
    let missing = visit(&app, &app.url("/v1/oauth/callback?code=abc")).await;
    assert_eq!(missing.message()["error_code"], "invalid_state");

    let (_, started) = start(&app, &t, start_body("sandbox_oauth")).await;
    let callback = approve(&app, started["authorize_url"].as_str().unwrap(), "acct_demo").await;
    app.clock.advance(chrono::Duration::minutes(11));
    let expired = visit(&app, &callback).await;
    assert_eq!(expired.message()["error_code"], "invalid_state");
    assert_eq!(app.sandbox().token_requests(), 0, "no token request for a bad state");
    assert!(authorizations(&app, "ws_s").await.is_empty());
}

#[tokio::test]
async fn consent_denied_is_reported_and_consumes_the_state() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_d", "u", "staff").await;
    let (_, started) = start(&app, &t, start_body("sandbox_oauth")).await;
    let state = query_of(started["authorize_url"].as_str().unwrap())["state"].clone();
    // As the sandbox answers: with its issuer (RFC 9207).
    let iss = app.url("/sandbox");
    let url = app.url(&format!("/v1/oauth/callback?error=access_denied&state={state}&iss={iss}"));
    let page = visit(&app, &url).await;
    assert_eq!(page.message()["status"], "error");
    assert_eq!(page.message()["error_code"], "permissions_denied");
    assert_eq!(page.result()["origin"], ORIGIN);
    assert_eq!(visit(&app, &url).await.message()["error_code"], "invalid_state");
    assert_eq!(app.sandbox().token_requests(), 0);
}

#[tokio::test]
async fn missing_scopes_are_refused_and_nothing_is_stored() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_m", "u", "staff").await;
    let (_, started) = start(&app, &t, start_body("sandbox_oauth")).await;
    // The user unticks `read` on the consent screen.
    let narrowed = started["authorize_url"].as_str().unwrap().replace("scope=read+write", "scope=write");
    let page = visit(&app, &approve(&app, &narrowed, "acct_demo").await).await;
    assert_eq!(page.message()["error_code"], "insufficient_permissions");
    assert!(authorizations(&app, "ws_m").await.is_empty());
    let ws = WorkspaceId::parse("ws_m").unwrap();
    assert!(app.stack.app.repo.list::<shared::domain::Connection>(&ws).await.unwrap().is_empty());
    assert!(app.stack.app.queue.receive(QueueKind::Sync, 10, 30).await.unwrap().is_empty());
}

#[tokio::test]
async fn redirect_mode_returns_to_the_frontend_with_the_result() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_r", "u", "admin").await;
    let mut body = start_body("sandbox_oauth");
    body["mode"] = json!("redirect");
    let (_, started) = start(&app, &t, body).await;
    let callback = approve(&app, started["authorize_url"].as_str().unwrap(), "acct_demo").await;
    let r = app.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{ORIGIN}/settings/integrations?")), "{location}");
    let q = query_of(location);
    assert_eq!(q["status"], "connected");
    assert!(q["connection_id"].starts_with("conn_"));

    // A refusal comes back with its code, message and action, for the
    // frontend to show as it would a popup's.
    let mut body = start_body("sandbox_oauth");
    body["mode"] = json!("redirect");
    let (_, started) = start(&app, &t, body).await;
    let mut form = query_of(started["authorize_url"].as_str().unwrap());
    form.insert("decision".into(), "deny".into());
    let r = app
        .http
        .post(app.url("/sandbox/oauth/decision"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish())
        .send()
        .await
        .unwrap();
    let denied = app.http.get(r.headers()["location"].to_str().unwrap()).send().await.unwrap();
    let q = query_of(denied.headers()["location"].to_str().unwrap());
    assert_eq!((q["status"].as_str(), q["error_code"].as_str()), ("error", "permissions_denied"));
    assert!(q["message"].contains("declined") && !q["action"].is_empty(), "{q:?}");
}

#[tokio::test]
async fn start_refuses_bad_input_with_clear_codes() {
    let app = spawn_app_with(&[]).await;
    let staff = app.token("ws_b", "u", "staff").await;
    let viewer = app.token("ws_b", "v", "client_viewer").await;
    for return_to in [
        "https://evil.example.com/",
        "https://app.example.com.evil.com/x",
        "javascript:alert(1)",
        "https://user@app.example.com/",
        "http://app.example.com/",
    ] {
        let mut body = start_body("sandbox_oauth");
        body["return_to"] = json!(return_to);
        let (status, r) = start(&app, &staff, body).await;
        assert_eq!((status, error_code(&r).as_str()), (422, "return_to_not_allowed"), "{return_to}");
    }
    let cases = [
        (start_body("nope"), 422, "unknown_platform"),
        (start_body("klaviyo"), 422, "wrong_auth_method"),
        (start_body("x_ads"), 503, "app_not_configured"),
        (
            json!({"platform": "shopify", "name": "S", "params": {"shop": "evil.com"}, "return_to": ORIGIN}),
            422,
            "invalid_input",
        ),
        (json!({"platform": "shopify", "name": "S", "return_to": ORIGIN}), 422, "invalid_input"),
        (json!({"platform": "sandbox_oauth", "name": "", "return_to": ORIGIN}), 422, "invalid_input"),
        (json!({"platform": "sandbox_oauth", "name": "x", "return_to": ORIGIN, "extra": 1}), 400, "malformed_body"),
        (start_body("google_ads"), 503, "app_not_configured"),
    ];
    for (body, status, code) in cases {
        let (s, r) = start(&app, &staff, body.clone()).await;
        assert_eq!((s, error_code(&r).as_str()), (status, code), "{body}");
    }
    let (s, r) = start(&app, &viewer, start_body("sandbox_oauth")).await;
    assert_eq!((s, error_code(&r).as_str()), (403, "forbidden"));
    let r = app.http.post(app.url("/v1/connect/start")).json(&start_body("sandbox_oauth")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

// ----------------------------------------------------- fake platform patterns

/// An app whose catalog points `platform` at a fake platform, with app
/// credentials in the vault.
async fn app_for(platform: &str, fake: &FakePlatform, patch: Value, client_secret: &str) -> TestApp {
    app_for_on(Backend::Embedded, platform, fake, patch, client_secret).await
}

async fn app_for_on(
    backend: Backend,
    platform: &str,
    fake: &FakePlatform,
    patch: Value,
    client_secret: &str,
) -> TestApp {
    let overrides = json!({"platforms": {platform: patch}}).to_string().replace("{fake}", &fake.base);
    let app = spawn_app_on(backend, &[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let secret = SecretRef::for_app(&app.stack.app.config.secret_prefix, platform);
    shared::platform::AppCredentials::store(
        app.stack.app.vault.as_ref(),
        &secret,
        "client-123",
        &secrecy::SecretString::from(client_secret.to_owned()),
    )
    .await
    .unwrap();
    app
}

async fn state_of(app: &TestApp, token: &str, body: Value) -> (String, BTreeMap<String, String>) {
    let (status, started) = start(app, token, body).await;
    assert_eq!(status, 200, "{started}");
    let q = query_of(started["authorize_url"].as_str().unwrap());
    (q["state"].clone(), q)
}

fn shopify_hmac(query: &BTreeMap<String, String>, secret: &str) -> String {
    let message = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn shopify_per_shop_flow_checks_the_hmac_and_the_shop() {
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/shops/demo.myshopify.com/admin/oauth/access_token" => {
            let f = r.form();
            if f["client_id"] == "client-123" && f["client_secret"] == "shpss_secret" && f["code"] == "good" && f["expiring"] == "1" {
                Reply::Json(200, json!({"access_token": "shpat_FAKE_ACCESS", "scope": "read_orders,read_customers,read_products", "expires_in": 3600, "refresh_token": "shprt_FAKE_REFRESH"}))
            } else {
                Reply::Json(400, json!({"error": "invalid_request"}))
            }
        }
        // The GraphQL Admin API: one endpoint, a query in a POST.
        "/shops/demo.myshopify.com/admin/api/graphql.json"
            if r.method == "POST"
                && r.headers.get("x-shopify-access-token").is_some_and(|v| v == "shpat_FAKE_ACCESS")
                && serde_json::from_str::<Value>(&r.body).is_ok_and(|b| b["query"].as_str().is_some_and(|q| q.contains("shop {"))) =>
        {
            Reply::Json(200, json!({"data": {"shop": {"id": "gid://shopify/Shop/987654", "name": "Demo shop", "myshopifyDomain": "demo.myshopify.com"}}}))
        }
        _ => Reply::Json(404, json!({})),
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/shops/{shop}/admin/oauth/authorize", "token_url": "{fake}/shops/{shop}/admin/oauth/access_token"},
                       "api": {"base_url": "{fake}/shops/{shop}/admin/api"}});
    let app = app_for("shopify", &fake, patch, "shpss_secret").await;
    let t = app.token("ws_shop", "u", "staff").await;
    let body =
        json!({"platform": "shopify", "name": "Demo", "params": {"shop": "demo.myshopify.com"}, "return_to": ORIGIN});

    // A bad HMAC: refused before any token request.
    let (state, authorize) = state_of(&app, &t, body.clone()).await;
    assert_eq!(authorize["scope"], "read_orders,read_all_orders,read_customers,read_products", "history past 60 days");
    let mut q = BTreeMap::from([
        ("code".to_owned(), "good".to_owned()),
        ("shop".to_owned(), "demo.myshopify.com".to_owned()),
        ("state".to_owned(), state),
        ("timestamp".to_owned(), "1795478400".to_owned()),
    ]);
    q.insert("hmac".into(), shopify_hmac(&q, "wrong-secret"));
    let page = visit(
        &app,
        &format!(
            "{}?{}",
            app.url("/v1/oauth/callback"),
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish()
        ),
    )
    .await;
    assert_eq!(page.message()["error_code"], "invalid_callback");
    // Another shop than the one the flow started with, correctly signed.
    let (state, _) = state_of(&app, &t, body.clone()).await;
    let mut q = BTreeMap::from([
        ("code".to_owned(), "good".to_owned()),
        ("shop".to_owned(), "other.myshopify.com".to_owned()),
        ("state".to_owned(), state),
        ("timestamp".to_owned(), "1795478400".to_owned()),
    ]);
    q.insert("hmac".into(), shopify_hmac(&q, "shpss_secret"));
    let page = visit(
        &app,
        &format!(
            "{}?{}",
            app.url("/v1/oauth/callback"),
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish()
        ),
    )
    .await;
    assert_eq!(page.message()["error_code"], "invalid_callback");
    assert!(fake.requests_to("/shops/demo.myshopify.com/admin/oauth/access_token").is_empty());

    let (state, _) = state_of(&app, &t, body).await;
    let mut q = BTreeMap::from([
        ("code".to_owned(), "good".to_owned()),
        ("host".to_owned(), "YWRtaW4".to_owned()),
        ("shop".to_owned(), "demo.myshopify.com".to_owned()),
        ("state".to_owned(), state),
        ("timestamp".to_owned(), "1795478400".to_owned()),
    ]);
    q.insert("hmac".into(), shopify_hmac(&q, "shpss_secret"));
    let page = visit(
        &app,
        &format!(
            "{}?{}",
            app.url("/v1/oauth/callback"),
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish()
        ),
    )
    .await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    let auth = &authorizations(&app, "ws_shop").await[0];
    assert_eq!(auth.account.as_ref().unwrap().id, "gid://shopify/Shop/987654");
    assert_eq!(auth.params["shop"], "demo.myshopify.com");
    let tokens = tokens_of(&app, auth).await;
    assert_eq!(
        (tokens.access_token.as_str(), tokens.refresh_token.as_deref()),
        ("shpat_FAKE_ACCESS", Some("shprt_FAKE_REFRESH"))
    );
    assert!(auth.expiry.refresh_expires_at.is_some(), "90-day rotating refresh token");
    // The hour-long access token is not kept in the vault, only sealed in
    // the item (a pack holds more credentials).
    let vault = app.stack.app.vault.get(&auth.secret.0).await.unwrap().unwrap();
    assert_eq!(TokenSet::from_secret(&vault).unwrap().access_token, "");
    assert!(auth.access.is_some());
    assert_nowhere(&app, &["shpat_FAKE_ACCESS", "shprt_FAKE_REFRESH"], &[&page.body]).await;
}

#[tokio::test]
async fn tiktok_uses_a_json_body_with_app_id_secret_and_auth_code() {
    let fake = FakePlatform::start(|r: &Recorded| {
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if r.path != "/token" || r.headers["content-type"] != "application/json" {
            return Reply::Json(404, json!({}));
        }
        if body["app_id"] == "client-123" && body["secret"] == "tt_secret" && body["auth_code"] == "good" {
            Reply::Json(200, json!({"code": 0, "message": "OK", "data": {"access_token": "tt_FAKE_ACCESS", "scope": [1, 2], "advertiser_ids": ["7001"]}}))
        } else {
            Reply::Json(200, json!({"code": 40001, "message": "invalid auth_code", "data": {}}))
        }
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/portal/auth", "token_url": "{fake}/token"}});
    let app = app_for("tiktok_ads", &fake, patch, "tt_secret").await;
    let t = app.token("ws_tt", "u", "staff").await;
    let (state, authorize) = state_of(&app, &t, start_body("tiktok_ads")).await;
    assert_eq!(authorize["app_id"], "client-123");
    assert!(!authorize.contains_key("client_id"));
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?auth_code=good&state={state}"))).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    assert_eq!(tokens_of(&app, &authorizations(&app, "ws_tt").await[0]).await.access_token, "tt_FAKE_ACCESS");
    let (state, _) = state_of(&app, &t, start_body("tiktok_ads")).await;
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?auth_code=stale&state={state}"))).await;
    assert_eq!(page.message()["error_code"], "token_expired");
    assert_nowhere(&app, &["tt_FAKE_ACCESS"], &[&page.body]).await;
}

/// Customer Management v13 as its WSDL describes GetUser: SOAP 1.1, the
/// tokens as SOAP headers, the user (with a contact whose `Id` is not the
/// user's) in `GetUserResponse`, and authentication faults as
/// `AdApiFaultDetail` codes.
fn ms_get_user_answer(user_id: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:TrackingId xmlns:h="https://bingads.microsoft.com/Customer/v13">t-1</h:TrackingId></s:Header><s:Body><GetUserResponse xmlns="https://bingads.microsoft.com/Customer/v13"><User xmlns:a="https://bingads.microsoft.com/Customer/v13/Entities" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><a:ContactInfo><a:Email>ads@example.com</a:Email><a:Id>999</a:Id></a:ContactInfo><a:CustomerId>5551</a:CustomerId><a:Id>{user_id}</a:Id><a:JobTitle i:nil="true"/><a:UserName>ads_owner</a:UserName></User><CustomerRoles/></GetUserResponse></s:Body></s:Envelope>"#
    )
}

const MS_FAULT_105: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>Invalid client data. Check the SOAP fault details for more information.</faultstring><detail><AdApiFaultDetail xmlns="https://adapi.microsoft.com" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><TrackingId>t-2</TrackingId><Errors><AdApiError><Code>105</Code><Detail i:nil="true"/><ErrorCode>InvalidCredentials</ErrorCode><Message>Authentication failed. Either supplied credentials are invalid or the account is inactive.</Message></AdApiError></Errors></AdApiFaultDetail></detail></s:Fault></s:Body></s:Envelope>"#;

#[tokio::test]
async fn microsoft_ads_names_the_user_from_customer_management_get_user() {
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/token" => {
            let f = r.form();
            if f["code"] == "good" {
                Reply::Json(200, json!({"access_token": "ms_ACCESS", "refresh_token": "ms_REFRESH", "expires_in": 3600, "scope": "https://ads.microsoft.com/msads.manage offline_access"}))
            } else {
                Reply::Json(200, json!({"access_token": "ms_REVOKED", "refresh_token": "ms_REFRESH", "expires_in": 3600, "scope": "https://ads.microsoft.com/msads.manage offline_access"}))
            }
        }
        "/Api/CustomerManagement/v13/CustomerManagementService.svc" => {
            let soap = r.headers.get("soapaction").and_then(|v| v.to_str().ok()) == Some("\"GetUser\"")
                && r.headers["content-type"].to_str().unwrap().starts_with("text/xml")
                && r.body.contains("<DeveloperToken>dev-token-1</DeveloperToken>")
                && r.body.contains("<GetUserRequest");
            if !soap {
                Reply::Json(400, json!({}))
            } else if r.body.contains("<AuthenticationToken>ms_ACCESS</AuthenticationToken>") {
                Reply::Text(200, "text/xml; charset=utf-8", ms_get_user_answer("424242"))
            } else {
                Reply::Text(500, "text/xml; charset=utf-8", MS_FAULT_105.to_owned())
            }
        }
        _ => Reply::Json(404, json!({})),
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/authorize", "token_url": "{fake}/token"},
                       "api": {"base_url": "{fake}/Api/CustomerManagement/v13"}});
    let app = app_for("microsoft_ads", &fake, patch, "ms_secret").await;
    // The developer token sits with the app credentials.
    let secret = SecretRef::for_app(&app.stack.app.config.secret_prefix, "microsoft_ads");
    let stored = json!({"client_id": "client-123", "client_secret": "ms_secret", "developer_token": "dev-token-1"});
    app.stack.app.vault.put(&secret.0, &secrecy::SecretString::from(stored.to_string())).await.unwrap();
    let t = app.token("ws_ms", "u", "staff").await;
    let (state, _) = state_of(&app, &t, start_body("microsoft_ads")).await;
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?code=good&state={state}"))).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    let account = authorizations(&app, "ws_ms").await[0].account.clone().unwrap();
    assert_eq!(
        (account.id.as_str(), account.name.as_deref()),
        ("424242", Some("ads_owner")),
        "the user's Id, not its contact's"
    );
    // A fault 105 (invalid credentials) refuses the connection.
    let (state, _) = state_of(&app, &t, start_body("microsoft_ads")).await;
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?code=other&state={state}"))).await;
    assert_ne!(page.message()["status"], "connected", "{}", page.body);
    assert_eq!(authorizations(&app, "ws_ms").await.len(), 1);
    assert_nowhere(&app, &["ms_ACCESS", "dev-token-1"], &[&page.body]).await;
}

#[tokio::test]
async fn amazon_seller_uses_spapi_oauth_code_and_application_id() {
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/auth/o2/token" => {
            let f = r.form();
            // LWA takes the client id, not the SP-API application id.
            let lwa_client = f.get("application_id").or(f.get("client_id")).map(String::as_str);
            if f["code"] == "good"
                && f["grant_type"] == "authorization_code"
                && f["client_secret"] == "amzn_secret"
                && lwa_client == Some("amzn1.application-oa2-client.demo")
            {
                Reply::Json(200, json!({"access_token": "Atza|FAKE_ACCESS", "refresh_token": "Atzr|FAKE_REFRESH", "token_type": "bearer", "expires_in": 3600}))
            } else {
                Reply::Json(400, json!({"error": "invalid_grant"}))
            }
        }
        // As the Sellers API describes it (sellers.json): storeName sits on the
        // marketplace participation; no seller id is given.
        "/sellers/v1/marketplaceParticipations" if r.headers["x-amz-access-token"] == "Atza|FAKE_ACCESS" => {
            Reply::Json(200, json!({"payload": [{
                "marketplace": {"id": "ATVPDKIKX0DER", "countryCode": "US", "name": "Amazon.com", "defaultCurrencyCode": "USD", "defaultLanguageCode": "en_US", "domainName": "www.amazon.com"},
                "participation": {"isParticipating": true, "hasSuspendedListings": false},
                "storeName": "Demo Store"}]}))
        }
        _ => Reply::Json(404, json!({})),
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/apps/authorize/consent", "token_url": "{fake}/auth/o2/token"}, "api": {"base_url": "{fake}"}});
    let app = app_for("amazon_seller", &fake, patch, "amzn_secret").await;
    // The app: its SP-API application id and its LWA client.
    let app_secret = json!({"client_id": "amzn1.application-oa2-client.demo", "client_secret": "amzn_secret",
                            "application_id": "amzn1.sp.solution.demo"});
    app.stack
        .app
        .vault
        .put(
            &SecretRef::for_app(&app.stack.app.config.secret_prefix, "amazon_seller").0,
            &secrecy::SecretString::from(app_secret.to_string()),
        )
        .await
        .unwrap();
    let t = app.token("ws_amz", "u", "staff").await;
    let mut body = start_body("amazon_seller");
    body["params"] = json!({"region": "na"});
    let (state, authorize) = state_of(&app, &t, body).await;
    assert_eq!(authorize["application_id"], "amzn1.sp.solution.demo", "the consent page takes the app id");
    let page = visit(
        &app,
        &app.url(&format!("/v1/oauth/callback?spapi_oauth_code=good&selling_partner_id=A1SELLER&state={state}")),
    )
    .await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    let auth = &authorizations(&app, "ws_amz").await[0];
    let account = auth.account.as_ref().unwrap();
    assert_eq!(account.id, "A1SELLER", "the selling partner is the account: another seller is caught at reconnect");
    assert_eq!(account.name.as_deref(), Some("Demo Store"));
    assert!(auth.expiry.reauthorize_by.is_some(), "yearly re-authorization");
    assert_nowhere(&app, &["Atza|FAKE_ACCESS", "Atzr|FAKE_REFRESH"], &[&page.body]).await;
}

#[tokio::test]
async fn meta_exchanges_the_short_lived_token_for_a_long_lived_one() {
    let fake = FakePlatform::start(|r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/oauth/access_token") if r.form()["code"] == "good" => {
            Reply::Json(200, json!({"access_token": "EAA_SHORT", "token_type": "bearer", "expires_in": 5400}))
        }
        ("GET", "/oauth/access_token")
            if r.query.get("grant_type").map(String::as_str) == Some("fb_exchange_token")
                && r.query["fb_exchange_token"] == "EAA_SHORT" =>
        {
            Reply::Json(200, json!({"access_token": "EAA_LONG", "token_type": "bearer", "expires_in": 5183944}))
        }
        ("GET", "/me") => Reply::Json(200, json!({"id": "10150", "name": "Ads Admin"})),
        _ => Reply::Json(400, json!({"error": "invalid_request"})),
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/dialog/oauth", "token_url": "{fake}/oauth/access_token"}, "api": {"base_url": "{fake}"}});
    let app = app_for("meta_ads", &fake, patch, "meta_secret").await;
    let t = app.token("ws_meta", "u", "staff").await;
    let (state, _) = state_of(&app, &t, start_body("meta_ads")).await;
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?code=good&state={state}"))).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    let auth = &authorizations(&app, "ws_meta").await[0];
    assert_eq!(tokens_of(&app, auth).await.access_token, "EAA_LONG");
    let days = (auth.expiry.reauthorize_by.unwrap() - app.clock_now()).num_days();
    assert!((59..=60).contains(&days), "~60 days: {days}");
    assert_nowhere(&app, &["EAA_SHORT", "EAA_LONG"], &[&page.body]).await;
}

#[tokio::test]
async fn token_endpoint_failures_map_to_clear_codes_and_store_nothing() {
    let mode = Arc::new(Mutex::new("400"));
    let m = mode.clone();
    let fake = FakePlatform::start(move |r: &Recorded| match (r.path.as_str(), *m.lock().unwrap()) {
        ("/token", "400") => Reply::Json(400, json!({"error": "invalid_grant"})),
        ("/token", "500") => Reply::Json(500, json!({"error": "server_error"})),
        ("/token", "redirect") => Reply::Redirect("/elsewhere".into()),
        ("/token", "hang") => Reply::Hang,
        ("/token", "client") => Reply::Json(401, json!({"error": "invalid_client"})),
        ("/token", "empty") => Reply::Json(200, json!({"token_type": "bearer"})),
        _ => Reply::Json(200, json!({"access_token": "SHOULD_NOT_BE_FETCHED"})),
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/authorize", "token_url": "{fake}/token", "issuer": null, "iss_parameter": false}, "api": {"base_url": "{fake}"}});
    let app = app_for("sandbox_oauth", &fake, patch, "s3cret").await;
    let t = app.token("ws_f", "u", "staff").await;
    for (kind, code) in [
        ("400", "token_expired"),
        ("500", "platform_unavailable"),
        ("redirect", "platform_unavailable"),
        ("hang", "platform_unavailable"),
        ("client", "app_not_configured"),
        ("empty", "platform_unavailable"),
    ] {
        *mode.lock().unwrap() = kind;
        let (state, _) = state_of(&app, &t, start_body("sandbox_oauth")).await;
        let page = visit(&app, &app.url(&format!("/v1/oauth/callback?code=c&state={state}"))).await;
        assert_eq!(page.message()["error_code"], code, "{kind}");
        assert!(page.message()["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(fake.requests_to("/elsewhere").is_empty(), "redirects are never followed");
    assert!(authorizations(&app, "ws_f").await.is_empty());
    let secret = app.stack.app.vault.get("connections/dev/apps/sandbox_oauth").await.unwrap().unwrap();
    assert!(secret.expose_secret().contains("client-123"), "only the app credentials are in the vault");
}

#[tokio::test]
async fn byo_platforms_take_the_workspace_app_credentials() {
    let overrides = json!({"platforms": {"sandbox_oauth": {"credentials": "byo"}}}).to_string();
    let app = spawn_app_with(&[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let admin = app.token("ws_byo", "a", "admin").await;
    let staff = app.token("ws_byo", "s", "staff").await;
    let (status, r) = start(&app, &staff, start_body("sandbox_oauth")).await;
    assert_eq!((status, error_code(&r).as_str()), (422, "app_not_configured"));
    let put = |token: &str, body: Value| {
        app.http
            .put(app.url("/v1/providers/sandbox_oauth/credentials"))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    assert_eq!(
        put(&staff, json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret"})).await.unwrap().status(),
        403
    );
    assert_eq!(put(&admin, json!({"client_id": "", "client_secret": "x"})).await.unwrap().status(), 422);
    let ok = put(&admin, json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret"})).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(!ok.text().await.unwrap().contains("sandbox-secret"), "the secret is never echoed");
    let (status, started) = start(&app, &staff, start_body("sandbox_oauth")).await;
    assert_eq!(status, 200);
    let page = visit(&app, &approve(&app, started["authorize_url"].as_str().unwrap(), "acct_byo").await).await;
    assert_eq!(page.message()["status"], "connected");
    assert!(!app.dump_state().await.contains("sandbox-secret"));
    // A platform that uses the deployment's own app takes no workspace credentials.
    let r = app
        .http
        .put(app.url("/v1/providers/shopify/credentials"))
        .bearer_auth(&admin)
        .json(&json!({"client_id": "x", "client_secret": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[test]
fn tokens_of_a_whole_flow_reach_no_log_line() {
    let (logs, tokens) = crate::logs::captured(async {
        let app = spawn_app_with(&[]).await;
        let t = app.token("ws_log2", "u", "staff").await;
        let (_, started) = start(&app, &t, start_body("sandbox_oauth")).await;
        let page = visit(&app, &approve(&app, started["authorize_url"].as_str().unwrap(), "acct_demo").await).await;
        assert_eq!(page.message()["status"], "connected");
        let auth = &authorizations(&app, "ws_log2").await[0];
        let tokens = tokens_of(&app, auth).await;
        (tokens.access_token, tokens.refresh_token.unwrap_or_default())
    });
    assert!(logs.contains("oauth connected"), "the capture works");
    assert!(!logs.contains(&tokens.0) && !logs.contains(&tokens.1), "a token reached a log line");
}

#[tokio::test]
async fn the_sandbox_consent_page_works_as_a_browser_would_use_it() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_page", "u", "staff").await;
    let (_, started) = start(&app, &t, start_body("sandbox_oauth")).await;
    let page = app.http.get(started["authorize_url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<form") && page.contains("Approve"));
    // Submit the form as the browser would: every hidden input, the account,
    // and the Approve button.
    let mut form: Vec<(String, String)> = page
        .split("<input type=\"hidden\" ")
        .skip(1)
        .map(|chunk| {
            let attr = |name: &str| {
                let start = chunk.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                chunk[start..start + chunk[start..].find('"').unwrap()].replace("&amp;", "&")
            };
            (attr("name"), attr("value"))
        })
        .collect();
    form.push(("account".into(), "acct_form".into()));
    form.push(("decision".into(), "approve".into()));
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
    let r = app
        .http
        .post(app.url("/sandbox/oauth/decision"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let callback = r.headers()["location"].to_str().unwrap().to_owned();
    let done = visit(&app, &callback).await;
    assert_eq!(done.message()["status"], "connected", "{}", done.body);
    assert_eq!(authorizations(&app, "ws_page").await[0].account.as_ref().unwrap().id, "acct_form");
}

#[tokio::test]
async fn bigcommerce_context_must_be_a_store_hash_before_it_reaches_a_url() {
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/oauth2/token" => Reply::Json(
            200,
            json!({"access_token": "bc_FAKE", "scope": "store_v2_orders_read_only", "context": "stores/abc123"}),
        ),
        _ => Reply::Json(200, json!({"data": {"id": "abc123", "name": "Demo"}})),
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/oauth2/authorize", "token_url": "{fake}/oauth2/token"},
                       "api": {"base_url": "{fake}/{context}/v3"}, "identity": null});
    let app = app_for("bigcommerce", &fake, patch, "bc_secret").await;
    let t = app.token("ws_bc", "u", "staff").await;
    for context in ["stores/abc123/../../admin", "stores/abc123?x=1", "evil.example.com/stores/x", "stores/"] {
        let (state, _) = state_of(&app, &t, start_body("bigcommerce")).await;
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", "good")
            .append_pair("scope", "store_v2_orders_read_only")
            .append_pair("context", context)
            .append_pair("state", &state)
            .finish();
        let page = visit(&app, &app.url(&format!("/v1/oauth/callback?{q}"))).await;
        assert_eq!(page.message()["error_code"], "invalid_callback", "{context}");
    }
    assert!(fake.requests_to("/oauth2/token").is_empty(), "no token request for a forged context");
    let (state, _) = state_of(&app, &t, start_body("bigcommerce")).await;
    let q = format!("code=good&scope=store_v2_orders_read_only&context=stores%2Fabc123&state={state}");
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?{q}"))).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
}

#[tokio::test]
async fn the_callback_gives_the_platform_one_deadline_and_stores_nothing_when_it_passes() {
    let hang_identity = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = hang_identity.clone();
    let fake = FakePlatform::start(move |r: &Recorded| match r.path.as_str() {
        "/token" if r.form()["code"] == "hang" => Reply::Hang,
        "/token" => {
            Reply::Json(200, json!({"access_token": "tk_FAKE", "refresh_token": "rt_FAKE", "expires_in": 3600}))
        }
        "/me" if h.load(std::sync::atomic::Ordering::SeqCst) => Reply::Hang,
        "/me" => Reply::Json(200, json!({"id": "acct_1"})),
        _ => Reply::Json(404, json!({})),
    })
    .await;
    let overrides = json!({"platforms": {"sandbox_oauth": {
        "oauth": {"authorize_url": format!("{}/authorize", fake.base), "token_url": format!("{}/token", fake.base),
                  "issuer": null, "iss_parameter": false},
        "api": {"base_url": fake.base}, "identity": {"path": "/me", "account_id_pointer": "/id"}}}})
    .to_string();
    // The budget (1 s) ends before the HTTP client's own timeout (2 s).
    let app = spawn_app_with(&[("CATALOG_OVERRIDES", overrides.as_str()), ("CALLBACK_BUDGET_SECONDS", "1")]).await;
    let t = app.token("ws_dl", "u", "staff").await;
    // The token request takes the whole budget.
    let (state, _) = state_of(&app, &t, start_body("sandbox_oauth")).await;
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?code=hang&state={state}"))).await;
    assert_eq!(page.message()["error_code"], "platform_timeout", "{}", page.body);
    // The token comes quickly, the identity request uses what is left.
    hang_identity.store(true, std::sync::atomic::Ordering::SeqCst);
    let (state, _) = state_of(&app, &t, start_body("sandbox_oauth")).await;
    let page = visit(&app, &app.url(&format!("/v1/oauth/callback?code=good&state={state}"))).await;
    assert_eq!(page.message()["error_code"], "platform_timeout", "{}", page.body);
    assert!(page.message()["message"].as_str().unwrap().contains("nothing was saved"));
    assert!(authorizations(&app, "ws_dl").await.is_empty(), "nothing stored");
    assert_nowhere(&app, &["tk_FAKE", "rt_FAKE"], &[&page.body]).await;
}

#[test]
fn the_callback_function_outlives_its_platform_budget() {
    let template =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    let block = &template[template.find("\n  OauthCallbackFunction:").unwrap()..];
    let timeout: u64 = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("Timeout: "))
        .and_then(|t| t.parse().ok())
        .expect("the callback's Timeout");
    // The budget, then the writes (state, vault, items, queue) with room to spare.
    assert!(timeout >= shared::config::DEFAULT_CALLBACK_BUDGET_SECONDS + 5, "{timeout} s");
}

#[tokio::test]
async fn an_answer_from_another_authorization_server_is_refused_before_any_token_request() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_iss", "u", "staff").await;
    let iss = app.url("/sandbox");
    // Approved at the sandbox, which names itself.
    let (_, started) = start(&app, &t, start_body("sandbox_oauth")).await;
    let callback = approve(&app, started["authorize_url"].as_str().unwrap(), "acct_iss").await;
    let q = query_of(&callback);
    assert_eq!(q["iss"], iss, "the sandbox sends iss");
    // Another server's name, or none from a server that always sends it:
    // refused, and the code is never exchanged.
    for forged in [
        format!("code={}&state={}&iss=https%3A%2F%2Fevil.example.com", q["code"], q["state"]),
        format!("code={}&state={}", q["code"], q["state"]),
    ] {
        let (_, started) = start(&app, &t, start_body("sandbox_oauth")).await;
        let state = query_of(started["authorize_url"].as_str().unwrap())["state"].clone();
        let forged = forged.replace(&format!("state={}", q["state"]), &format!("state={state}"));
        let page = visit(&app, &app.url(&format!("/v1/oauth/callback?{forged}"))).await;
        assert_eq!(page.message()["error_code"], "issuer_mismatch", "{forged}");
    }
    assert_eq!(app.sandbox().token_requests(), 0, "no token request for a mixed-up answer");
    // The real answer still works.
    let page = visit(&app, &callback).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
}

#[tokio::test]
async fn a_provider_declared_by_its_issuer_alone_is_discovered_from_its_metadata() {
    // The deployment adds a provider by its issuer: the sandbox's.
    let overrides = json!({"platforms": {"acme_idp": {
        "name": "Acme IdP", "category": "analytics", "method": "oauth2", "roles": ["source"],
        "required_role": "Any user", "docs_url": "https://acme.example.com/docs",
        "oauth": {"issuer": "{public_base_url}/sandbox", "default_scopes": ["read"], "pkce": true,
                  "client_auth": "basic", "refresh": {"kind": "rotating"}},
        "api": {"base_url": "{public_base_url}/sandbox/api", "auth_header": ["Authorization", "Bearer {access_token}"]},
        "identity": {"path": "/me", "account_id_pointer": "/id"}
    }}})
    .to_string();
    let app = spawn_app_with(&[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let base = app.stack.app.config.public_base_url.clone();
    shared::platform::AppCredentials::store(
        app.stack.app.vault.as_ref(),
        &SecretRef::for_app(&app.stack.app.config.secret_prefix, "acme_idp"),
        "sandbox-client",
        &secrecy::SecretString::from("sandbox-secret".to_owned()),
    )
    .await
    .unwrap();
    // RFC 8414's address of its metadata is served.
    let m: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server/sandbox"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["issuer"], format!("{base}/sandbox"));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let t = app.token("ws_idp", "u", "staff").await;
    let (status, started) = start(&app, &t, start_body("acme_idp")).await;
    assert_eq!(status, 200, "{started}");
    let authorize_url = started["authorize_url"].as_str().unwrap();
    assert!(authorize_url.starts_with(&format!("{base}/sandbox/oauth/authorize?")), "{authorize_url}");
    let callback = approve(&app, authorize_url, "acct_idp").await;
    // The metadata says the server sends iss: without it, refused.
    let stripped: String = callback.split('&').filter(|p| !p.starts_with("iss=")).collect::<Vec<_>>().join("&");
    assert_eq!(visit(&app, &stripped).await.message()["error_code"], "issuer_mismatch");
    let (_, started) = start(&app, &t, start_body("acme_idp")).await;
    let callback = approve(&app, started["authorize_url"].as_str().unwrap(), "acct_idp").await;
    let page = visit(&app, &callback).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    assert_eq!(authorizations(&app, "ws_idp").await[0].account.as_ref().unwrap().id, "acct_idp");
}

#[tokio::test]
async fn a_flow_finished_in_another_browser_than_it_started_in_is_refused() {
    let app = spawn_app_with(&[]).await;
    let attacker = app.token("ws_attacker", "mallory", "staff").await;
    // The attacker starts a flow in their workspace and launches it in
    // their own browser (app.http), then sends the platform's link to a
    // victim, whose browser has no cookie of this flow.
    let (_, started) = start(&app, &attacker, start_body("sandbox_oauth")).await;
    let authorize_url = started["authorize_url"].as_str().unwrap();
    let victim = {
        shared::adapters::tls::install_default_provider();
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    };
    let r = victim.get(format!("{authorize_url}&auto_approve=acct_victim")).send().await.unwrap();
    let callback = r.headers()["location"].to_str().unwrap().to_owned();
    let body = victim.get(&callback).send().await.unwrap().text().await.unwrap();
    let page = Page { status: 200, headers: Default::default(), body };
    assert_eq!(page.message()["error_code"], "browser_mismatch", "{}", page.body);
    assert_eq!(app.sandbox().token_requests(), 0, "the victim's code is never exchanged");
    assert!(authorizations(&app, "ws_attacker").await.is_empty(), "no grant lands in the attacker's workspace");
}

#[tokio::test]
async fn a_launch_is_single_use_short_lived_and_sets_a_first_party_cookie() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_launch", "u", "staff").await;
    let r = app
        .http
        .post(app.url("/v1/connect/start"))
        .bearer_auth(&t)
        .json(&start_body("sandbox_oauth"))
        .send()
        .await
        .unwrap();
    let started: Value = r.json().await.unwrap();
    assert!(started.get("authorize_url").is_none(), "the platform's URL is reached only through the launch");
    let launch_url = started["launch_url"].as_str().unwrap().to_owned();
    assert!(launch_url.starts_with(&app.url("/v1/oauth/launch?l=")), "on the API's own origin");
    let r = app.http.get(&launch_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/v1/oauth", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http on loopback only: {cookie}");
    assert!(r.headers()["location"].to_str().unwrap().starts_with(&app.url("/sandbox/oauth/authorize?")));
    // Used once already.
    let again = visit(&app, &launch_url).await;
    assert_eq!(again.message()["error_code"], "invalid_state");
    // A launch link that travelled goes stale in two minutes.
    let r = app
        .http
        .post(app.url("/v1/connect/start"))
        .bearer_auth(&t)
        .json(&start_body("sandbox_oauth"))
        .send()
        .await
        .unwrap();
    let late: Value = r.json().await.unwrap();
    app.clock.advance(chrono::Duration::seconds(121));
    let page = visit(&app, late["launch_url"].as_str().unwrap()).await;
    assert_eq!(page.message()["error_code"], "invalid_state");
}

/// BigCommerce as its app docs describe a control-panel install: the auth
/// callback with `code`, `scope` and `context` and no state of ours; the
/// token request with `context`, `scope` and the registered redirect URI.
pub(crate) async fn bigcommerce_fake() -> (FakePlatform, Arc<Mutex<usize>>) {
    let token_requests = Arc::new(Mutex::new(0usize));
    let counter = token_requests.clone();
    let fake = FakePlatform::start(move |r: &Recorded| match r.path.as_str() {
        "/oauth2/token" => {
            *counter.lock().unwrap() += 1;
            let f = r.form();
            let ok = f["client_id"] == "client-123"
                && f["client_secret"] == "bc_secret"
                && f["grant_type"] == "authorization_code"
                && f["context"] == "stores/abc123"
                && f["scope"].contains("store_v2_orders_read_only")
                && f["redirect_uri"].ends_with("/v1/oauth/callback")
                && f["code"].starts_with("good");
            if ok {
                Reply::Json(
                    200,
                    json!({"access_token": format!("bc_ACCESS_{}", f["code"]), "scope": f["scope"],
                    "user": {"id": 24654, "username": "merchant@example.com", "email": "merchant@example.com"},
                    "owner": {"id": 24654, "username": "merchant@example.com", "email": "merchant@example.com"},
                    "context": "stores/abc123", "account_uuid": "ed7ea3a8-2f4d-4bd6-8c0f-0d3d4c0c4d2a"}),
                )
            } else {
                Reply::Json(400, json!({"error": "invalid_grant"}))
            }
        }
        "/stores/abc123/v2/store" => {
            Reply::Json(200, json!({"id": "abc123", "domain": "demo.example.com", "name": "Demo Store"}))
        }
        _ => Reply::Json(404, json!({})),
    })
    .await;
    (fake, token_requests)
}

pub(crate) const BC_SCOPES: &str = "store_v2_orders_read_only store_v2_customers_read_only store_v2_products_read_only";

/// The install page's claim (from the link's fragment).
fn claim_of(page: &Page) -> String {
    let at = page.body.find("#install=").unwrap_or_else(|| panic!("no claim link: {}", page.body));
    page.body[at + "#install=".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

async fn install(app: &TestApp, code: &str) -> Page {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", code)
        .append_pair("scope", BC_SCOPES)
        .append_pair("context", "stores/abc123")
        .finish();
    visit(app, &app.url(&format!("/v1/oauth/callback?{q}"))).await
}

async fn claim(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let r = app.http.post(app.url("/v1/installs/claim")).bearer_auth(token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_bigcommerce_control_panel_install_waits_for_a_workspace_to_claim_it_once() {
    let (fake, token_requests) = bigcommerce_fake().await;
    let patch = json!({"oauth": {"token_url": "{fake}/oauth2/token"}, "api": {"base_url": "{fake}/{context}/v3"},
                       "identity": {"path": "{fake}/{context}/v2/store"}});
    let app = app_for("bigcommerce", &fake, patch, "bc_secret").await;
    // The merchant installs from BigCommerce: no state, no workspace yet.
    let page = install(&app, "good-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("BigCommerce is installed") && page.body.contains("Demo Store"), "{}", page.body);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors https://*.bigcommerce.com https://*.mybigcommerce.com")
            && !csp.contains("script-src")
    );
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    let claim_token = claim_of(&page);
    assert!(claim_token.starts_with("clm_") && claim_token.len() == 68, "{claim_token}");
    assert_nowhere(&app, &["bc_ACCESS_good-1"], &[&page.body]).await;
    // A client viewer may not claim; a made-up claim is unknown.
    let viewer = app.token("ws_bc", "v", "client_viewer").await;
    assert_eq!(claim(&app, &viewer, json!({"claim": claim_token})).await.0, 403);
    let staff = app.token("ws_bc", "u", "staff").await;
    let (status, body) = claim(&app, &staff, json!({"claim": "clm_0000"})).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    // A member claims it: a grant and a connection of the workspace, syncing.
    let (status, body) = claim(&app, &staff, json!({"claim": claim_token, "name": "Demo BC"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["reconnected"], false);
    let auths = authorizations(&app, "ws_bc").await;
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0].account.as_ref().map(|a| a.name.as_deref()), Some(Some("Demo Store")));
    assert_eq!(tokens_of(&app, &auths[0]).await.access_token, "bc_ACCESS_good-1");
    let ws = WorkspaceId::parse("ws_bc").unwrap();
    let conns = app.stack.app.repo.list::<shared::domain::Connection>(&ws).await.unwrap();
    assert_eq!((conns.len(), conns[0].value.name.as_str()), (1, "Demo BC"));
    assert_eq!(conns[0].value.status, shared::domain::Status::InitialSyncInProgress);
    let jobs = app.stack.app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap();
    assert!(jobs.iter().any(|j| j.body.contains(conns[0].value.id.as_str())), "the initial sync is queued");
    // Once only: the same claim again finds nothing, and the waiting tokens are gone.
    assert_eq!(claim(&app, &staff, json!({"claim": claim_token})).await.0, 404);
    let far = app.clock_now() + chrono::Duration::days(30);
    assert!(app.stack.app.repo.expired_installs(far, 10).await.unwrap().is_empty());
    // Installed again (a reinstall): claiming it reconnects the same grant.
    let again = claim_of(&install(&app, "good-2").await);
    let (status, body) = claim(&app, &staff, json!({"claim": again})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["reconnected"].as_bool(), body["authorization_id"].as_str()),
        (Some(true), Some(auths[0].id.as_str()))
    );
    assert_eq!(authorizations(&app, "ws_bc").await.len(), 1);
    assert_eq!(tokens_of(&app, &auths[0]).await.access_token, "bc_ACCESS_good-2");
    assert_eq!(*token_requests.lock().unwrap(), 2);
}

async fn an_unclaimed_install_expires_and_the_sweep_deletes_its_tokens(backend: Backend) {
    let (fake, _) = bigcommerce_fake().await;
    let patch = json!({"oauth": {"token_url": "{fake}/oauth2/token"}, "api": {"base_url": "{fake}/{context}/v3"},
                       "identity": {"path": "{fake}/{context}/v2/store"}});
    let app = app_for_on(backend, "bigcommerce", &fake, patch, "bc_secret").await;
    let claim_token = claim_of(&install(&app, "good-3").await);
    let staff = app.token("ws_bc2", "u", "staff").await;
    let waiting = app.stack.app.repo.expired_installs(app.clock_now() + chrono::Duration::days(2), 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    let secret = waiting[0].1.secret.clone();
    assert!(app.stack.app.vault.get(&secret.0).await.unwrap().is_some());
    // Not yet: the sweep leaves it.
    app.clock.advance(chrono::Duration::hours(23));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().installs_expired, 0);
    app.clock.advance(chrono::Duration::hours(2));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().installs_expired, 1);
    assert!(app.stack.app.vault.get(&secret.0).await.unwrap().is_none(), "the tokens are gone");
    assert_eq!(claim(&app, &staff, json!({"claim": claim_token})).await.0, 404);
    assert!(authorizations(&app, "ws_bc2").await.is_empty());
}

#[tokio::test]
async fn a_stateless_callback_that_is_no_install_is_still_an_invalid_state() {
    let (fake, token_requests) = bigcommerce_fake().await;
    let patch = json!({"oauth": {"token_url": "{fake}/oauth2/token"}});
    let app = app_for("bigcommerce", &fake, patch, "bc_secret").await;
    // No context: not an install; a context that is no store hash: refused.
    let page = visit(&app, &app.url("/v1/oauth/callback?code=good&scope=x")).await;
    assert_eq!((page.status, page.message()["error_code"].as_str()), (400, Some("invalid_state")));
    let page = visit(&app, &app.url("/v1/oauth/callback?code=good&scope=x&context=stores/../evil")).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Install failed"), "{}", page.body);
    assert_eq!(*token_requests.lock().unwrap(), 0, "no token request for either");
}

/// What X checks of a signed request: the signature, recomputed from the
/// request with the secrets it knows for the consumer and the token.
fn x_signature_ok(r: &Recorded, base: &str, token_secrets: &BTreeMap<&str, &str>) -> Option<BTreeMap<String, String>> {
    let header = r.headers.get("authorization")?.to_str().ok()?;
    let mut url = url::Url::parse(&format!("{base}{}", r.path)).ok()?;
    if !r.query.is_empty() {
        url.query_pairs_mut().extend_pairs(r.query.iter());
    }
    let secret = |t: &str| token_secrets.get(t).map(|s| s.to_string());
    shared::platform::oauth1::verify(&r.method, &url, header, ("client-123", "x_secret"), secret)
}

async fn x_ads_connects_by_oauth_1a_and_every_request_is_signed(backend: Backend) {
    let issued = Arc::new(Mutex::new(0usize));
    let base = Arc::new(Mutex::new(String::new()));
    let invalidated_ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let revoked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (n, b, inv, rev) = (issued.clone(), base.clone(), invalidated_ok.clone(), revoked.clone());
    let fake = FakePlatform::start(move |r: &Recorded| {
        let base = b.lock().unwrap().clone();
        let secrets = BTreeMap::from([
            ("tmp-token-0000000001", "tmp-secret-1"),
            ("tmp-token-0000000002", "tmp-secret-2"),
            ("acc-token-1", "acc-secret-1"),
        ]);
        let Some(p) = x_signature_ok(r, &base, &secrets) else {
            return Reply::Json(401, json!({"errors": [{"code": 32, "message": "Could not authenticate you."}]}));
        };
        let form = |s: &str| Reply::Text(200, "application/x-www-form-urlencoded", s.to_owned());
        match r.path.as_str() {
            "/oauth/request_token" if p.get("oauth_callback").is_some_and(|c| c.ends_with("/v1/oauth/callback")) => {
                let mut n = n.lock().unwrap();
                *n += 1;
                form(&format!("oauth_token=tmp-token-000000000{n}&oauth_token_secret=tmp-secret-{n}&oauth_callback_confirmed=true"))
            }
            "/oauth/access_token" if p.get("oauth_token").map(String::as_str) == Some("tmp-token-0000000001") && p.get("oauth_verifier").map(String::as_str) == Some("ver-1") => {
                form("oauth_token=acc-token-1&oauth_token_secret=acc-secret-1&user_id=6253282&screen_name=xads_owner")
            }
            "/1.1/account/verify_credentials.json" if p.get("oauth_token").map(String::as_str) == Some("acc-token-1") => {
                if rev.load(std::sync::atomic::Ordering::SeqCst) {
                    return Reply::Json(401, json!({"errors": [{"code": 89, "message": "Invalid or expired token."}]}));
                }
                Reply::Json(200, json!({"id": 6253282, "id_str": "6253282", "screen_name": "xads_owner", "name": "X Ads owner"}))
            }
            "/1.1/oauth/invalidate_token" if p.get("oauth_token").map(String::as_str) == Some("acc-token-1") => {
                inv.store(true, std::sync::atomic::Ordering::SeqCst);
                Reply::Json(200, json!({"access_token": "acc-token-1"}))
            }
            "/12/accounts" if p.get("oauth_token").map(String::as_str) == Some("acc-token-1") => Reply::Json(
                200,
                json!({"request": {"params": {}}, "data": [{"id": "18ce54d4x5t", "name": "Acme X"}], "data_type": "account", "total_count": 1, "next_cursor": null}),
            ),
            // The account's daily stats (signed like every request).
            "/12/stats/accounts/18ce54d4x5t" if p.get("oauth_token").map(String::as_str) == Some("acc-token-1") => Reply::Json(
                200,
                json!({"data_type": "stats", "data": [{"id": "18ce54d4x5t", "id_data": [{"segment": null, "metrics": {"billed_charge_local_micro": [1_500_000]}}]}]}),
            ),
            _ => Reply::Json(400, json!({"errors": [{"code": 215, "message": "Bad Authentication data."}]})),
        }
    })
    .await;
    *base.lock().unwrap() = fake.base.clone();
    let patch = json!({"oauth": {"authorize_url": "{fake}/oauth/authorize", "token_url": "{fake}/oauth/access_token",
                                 "request_token_url": "{fake}/oauth/request_token",
                                 "revoke_url": "{fake}/1.1/oauth/invalidate_token"},
                       "api": {"base_url": "{fake}/12"}, "identity": {"path": "{fake}/1.1/account/verify_credentials.json"}});
    let app = app_for_on(backend, "x_ads", &fake, patch, "x_secret").await;
    let t = app.token("ws_x", "u", "staff").await;
    let admin = app.token("ws_x", "a", "admin").await;
    // Start: temporary credentials for the exact callback; the browser goes to X with the temporary token.
    let (status, started) = start(&app, &t, start_body("x_ads")).await;
    assert_eq!(status, 200, "{started}");
    let authorize = started["authorize_url"].as_str().unwrap();
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?oauth_token=tmp-token-0000000001", fake.base)),
        "{authorize}"
    );
    // The person approves: X sends the browser back with the token and the verifier.
    let page = visit(&app, &app.url("/v1/oauth/callback?oauth_token=tmp-token-0000000001&oauth_verifier=ver-1")).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    let auth = authorizations(&app, "ws_x").await.pop().unwrap();
    assert_eq!(
        auth.account.as_ref().map(|a| (a.id.as_str(), a.name.as_deref())),
        Some(("6253282", Some("xads_owner")))
    );
    let tokens = tokens_of(&app, &auth).await;
    assert_eq!((tokens.access_token.as_str(), tokens.token_secret.as_deref()), ("acc-token-1", Some("acc-secret-1")));
    // The callback is single use, and its temporary secret is gone.
    let again = visit(&app, &app.url("/v1/oauth/callback?oauth_token=tmp-token-0000000001&oauth_verifier=ver-1")).await;
    assert_eq!(again.message()["error_code"], "invalid_state");
    // The initial sync: the accounts, signed with the token credentials.
    local_stack::workers::drain(&app.stack, QueueKind::Sync).await.unwrap();
    let ws = WorkspaceId::parse("ws_x").unwrap();
    let c = app.stack.app.repo.list::<shared::domain::Connection>(&ws).await.unwrap().pop().unwrap().value;
    assert_eq!(c.status, shared::domain::Status::Connected, "{:?}", c.last_error);
    assert_eq!(c.cursors["accounts"].records, 1);
    // The grant reaches one account: the connection syncs its stats.
    assert_eq!(c.params.get("account_id").map(String::as_str), Some("18ce54d4x5t"));
    assert!(c.cursors["account_stats"].complete, "{:?}", c.cursors);
    // Tokens that do not expire are probed by the sweep (a signed identity request).
    app.clock.advance(chrono::Duration::days(2));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!((report.probed, report.disconnected), (1, 0), "{report:?}");
    assert_eq!(fake.requests_to("/1.1/account/verify_credentials.json").len(), 1);
    // Revoked at X (the app removed from the account): the next probe disconnects the grant.
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    app.clock.advance(chrono::Duration::days(2));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!(report.disconnected, 1, "{report:?}");
    let now = authorizations(&app, "ws_x").await.pop().unwrap();
    assert_eq!(
        now.status,
        shared::domain::Status::Disconnected { reason: shared::domain::DisconnectReason::TokenRevoked }
    );
    // Declined: `denied` names the flow; nothing is stored.
    let (status, started) = start(&app, &t, start_body("x_ads")).await;
    assert_eq!(status, 200, "{started}");
    let page = visit(&app, &app.url("/v1/oauth/callback?denied=tmp-token-0000000002")).await;
    assert_eq!(page.message()["error_code"], "permissions_denied", "{}", page.body);
    assert_eq!(authorizations(&app, "ws_x").await.len(), 1);
    assert_nowhere(&app, &["acc-secret-1", "tmp-secret-1", "tmp-secret-2"], &[&page.body]).await;
    // Removed: the token is invalidated at X (a signed request), then forgotten.
    let r =
        app.http.delete(app.url(&format!("/v1/authorizations/{}", auth.id))).bearer_auth(&admin).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let invalidated = fake.requests_to("/1.1/oauth/invalidate_token");
    assert_eq!((invalidated.len(), invalidated[0].method.as_str()), (1, "POST"));
    assert!(invalidated_ok.load(std::sync::atomic::Ordering::SeqCst), "signed with the token being invalidated");
    assert!(app.stack.app.vault.get(&auth.secret.0).await.unwrap().is_none());
}

/// The sandbox OAuth 1.0a platform, end to end through the real flow: its
/// server checks every signature, as X does.
async fn the_sandbox_oauth_1a_platform_connects_syncs_and_is_probed(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let t = app.token("ws_s1", "u", "staff").await;
    let (status, started) = start(&app, &t, start_body("sandbox_oauth1")).await;
    assert_eq!(status, 200, "{started}");
    let back = approve(&app, started["authorize_url"].as_str().unwrap(), "acct_one").await;
    assert!(back.contains("oauth_verifier="), "{back}");
    let page = visit(&app, &back).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    let auth = authorizations(&app, "ws_s1").await.pop().unwrap();
    assert_eq!(auth.account.as_ref().map(|a| a.id.as_str()), Some("acct_one"));
    let first = tokens_of(&app, &auth).await;
    assert!(first.token_secret.is_some());
    local_stack::workers::drain(&app.stack, QueueKind::Sync).await.unwrap();
    let ws = WorkspaceId::parse("ws_s1").unwrap();
    let c = app.stack.app.repo.list::<shared::domain::Connection>(&ws).await.unwrap().pop().unwrap().value;
    assert_eq!(c.status, shared::domain::Status::Connected, "{:?}", c.last_error);
    assert!(c.cursors["orders"].records >= 2500, "{:?}", c.cursors);
    // Revoked on the platform: a proxied request's 401 comes back as it is and
    // does not end the grant by itself (its tokens cannot be renewed) …
    assert_eq!(app.sandbox().revoke_account("acct_one"), 1);
    let r = app
        .http
        .get(app.url(&format!("/v1/service/connections/{}/proxy/orders", c.id)))
        .bearer_auth(crate::harness::SERVICE_TOKEN)
        .header("x-workspace-id", "ws_s1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(authorizations(&app, "ws_s1").await[0].status, shared::domain::Status::Connected);
    // … the next probe (every minute for the sandbox) does.
    app.clock.advance(chrono::Duration::minutes(2));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!(report.disconnected, 1, "{report:?}");
    // Reconnect, as for OAuth 2.0: the same authorization, new token
    // credentials, its connection back; another account is refused.
    let mut body = start_body("sandbox_oauth1");
    body["reconnect"] = json!({"authorization_id": auth.id});
    let (_, started) = start(&app, &t, body.clone()).await;
    let page = visit(&app, &approve(&app, started["authorize_url"].as_str().unwrap(), "acct_other").await).await;
    assert_eq!(page.message()["error_code"], "account_mismatch", "{}", page.body);
    let (_, started) = start(&app, &t, body).await;
    let page = visit(&app, &approve(&app, started["authorize_url"].as_str().unwrap(), "acct_one").await).await;
    assert_eq!(page.message()["status"], "connected", "{}", page.body);
    let auths = authorizations(&app, "ws_s1").await;
    assert_eq!((auths.len(), auths[0].id.as_str()), (1, auth.id.as_str()));
    assert_eq!(auths[0].status, shared::domain::Status::Connected);
    assert_ne!(tokens_of(&app, &auths[0]).await.access_token, first.access_token);
    let c = app.stack.app.repo.connection(&ws, &c.id).await.unwrap().value;
    assert!(!matches!(c.status, shared::domain::Status::Disconnected { .. }), "{:?}", c.status);
}

#[tokio::test]
async fn an_oauth_1a_start_that_x_refuses_or_leaves_unconfirmed_says_why_and_stores_nothing() {
    let mode = Arc::new(Mutex::new("refuse"));
    let m = mode.clone();
    let fake = FakePlatform::start(move |_r: &Recorded| match *m.lock().unwrap() {
        // Wrong consumer keys: X answers 401.
        "refuse" => Reply::Json(401, json!({"errors": [{"code": 32, "message": "Could not authenticate you."}]})),
        // Credentials, but the callback not confirmed (RFC 5849 §2.1 requires it).
        _ => Reply::Text(
            200,
            "application/x-www-form-urlencoded",
            "oauth_token=t-0000000000000001&oauth_token_secret=s".into(),
        ),
    })
    .await;
    let patch = json!({"oauth": {"authorize_url": "{fake}/oauth/authorize", "token_url": "{fake}/oauth/access_token",
                                 "request_token_url": "{fake}/oauth/request_token"}});
    let app = app_for("x_ads", &fake, patch, "x_secret").await;
    let t = app.token("ws_x1", "u", "staff").await;
    let (status, body) = start(&app, &t, start_body("x_ads")).await;
    assert_eq!((status, error_code(&body).as_str()), (503, "app_not_configured"), "{body}");
    *mode.lock().unwrap() = "unconfirmed";
    let (status, body) = start(&app, &t, start_body("x_ads")).await;
    assert_eq!((status, error_code(&body).as_str()), (502, "platform_unavailable"), "{body}");
    // No temporary secret was kept for either.
    let state = app.dump_state().await;
    assert!(!state.contains("t-0000000000000001"), "no flow was stored");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"t-0000000000000001"));
    let kept = SecretRef::for_oauth1_flow(&app.stack.app.config.secret_prefix, &hash);
    assert!(app.stack.app.vault.get(&kept.0).await.unwrap().is_none());
}
