//! API-key connect: fake Klaviyo, Recharge and WooCommerce on loopback for
//! every outcome (timeouts and refused connections included), the sandbox's
//! magic keys, duplicates, key replacement, input limits, and the key never
//! being stored outside the vault, logged or returned.

use serde_json::{json, Value};
use std::collections::BTreeMap;

use shared::domain::ids::WorkspaceId;
use shared::domain::{Connection, Credential, DisconnectReason, Event, StreamCursor};
use shared::ports::QueueKind;

use crate::harness::{error_code, spawn_app_on, spawn_app_with, Backend, FakePlatform, Recorded, Reply, TestApp};

const KLAVIYO_OK: &str = "pk_valid0123456789abcdefABCDEF";

/// Klaviyo: the outcome is chosen by the key; the revision header is required.
fn klaviyo(r: &Recorded) -> Reply {
    let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(key) = auth.strip_prefix("Klaviyo-API-Key ") else {
        return Reply::Json(401, json!({"errors": []}));
    };
    if r.path != "/api/accounts/" || r.headers.get("revision").is_none() {
        return Reply::Json(400, json!({"errors": [{"detail": "revision header missing"}]}));
    }
    match &key[..7.min(key.len())] {
        "pk_vali" | "pk_new0" => Reply::Json(
            200,
            json!({"data": [{"id": "ACCT_K1", "attributes": {"contact_information": {"organization_name": "Demo Shop"}}}]}),
        ),
        "pk_scop" => Reply::Json(403, json!({"errors": [{"detail": "missing scope"}]})),
        "pk_expi" => Reply::Json(401, json!({"errors": [{"detail": "This API key has expired"}]})),
        "pk_down" => Reply::Json(503, json!({})),
        "pk_slow" => Reply::Hang,
        "pk_rate" => Reply::JsonWith(429, vec![("retry-after", "30".into())], json!({"errors": []})),
        _ => Reply::Json(401, json!({"errors": [{"detail": "Incorrect authentication credentials."}]})),
    }
}

async fn app_with_fakes(backend: Backend) -> (TestApp, FakePlatform) {
    let fake = FakePlatform::start(|r: &Recorded| {
        if r.path.starts_with("/api/") {
            return klaviyo(r);
        }
        if r.path == "/token_information" {
            let key = r.headers.get("x-recharge-access-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            return match key {
                k if k.starts_with("rc_full") => Reply::Json(200, json!({"token_information": {"name": "Sync", "scopes": ["read_orders", "read_subscriptions", "read_customers"]}})),
                k if k.starts_with("rc_part") => Reply::Json(200, json!({"token_information": {"name": "Sync", "scopes": ["read_orders"]}})),
                _ => Reply::Json(401, json!({"error": "bad token"})),
            };
        }
        if r.path == "/store/wp-json/wc/v3/customers" && r.query.get("per_page").map(String::as_str) == Some("1") {
            use base64::Engine;
            let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ck_0123456789abcdef0123:cs_0123456789abcdef0123"));
            return if r.headers.get("authorization").is_some_and(|v| v == good.as_str()) {
                Reply::Json(200, json!([]))
            } else {
                Reply::Json(401, json!({"code": "woocommerce_rest_cannot_view"}))
            };
        }
        Reply::Json(404, json!({"code": "rest_no_route"}))
    })
    .await;
    let overrides = json!({"platforms": {
        "klaviyo": {"api": {"base_url": fake.base}},
        "recharge": {"api": {"base_url": fake.base}},
        "woocommerce": {"api_key": {"fields": [
            {"name": "store_url", "label": "Store URL", "secret": false, "pattern": "http://127\\.0\\.0\\.1:[0-9]+(/[a-z]*)?"},
            {"name": "consumer_key", "label": "Consumer key", "secret": true, "pattern": "ck_[A-Za-z0-9]{20,80}"},
            {"name": "consumer_secret", "label": "Consumer secret", "secret": true, "pattern": "cs_[A-Za-z0-9]{20,80}"}]}}
    }})
    .to_string();
    (spawn_app_on(backend, &[("CATALOG_OVERRIDES", overrides.as_str())]).await, fake)
}

async fn connect(app: &TestApp, token: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = app.http.post(app.url("/v1/connections/api-key")).bearer_auth(token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.headers().clone(), r.json().await.unwrap())
}

fn klaviyo_body(key: &str) -> Value {
    json!({"platform": "klaviyo", "name": "Klaviyo", "credentials": {"api_key": key}})
}

async fn connections(app: &TestApp, ws: &str) -> Vec<Connection> {
    let ws = WorkspaceId::parse(ws).unwrap();
    app.stack.app.repo.list::<Connection>(&ws).await.unwrap().into_iter().map(|v| v.value).collect()
}

both!(
    a_valid_key_is_stored_only_in_the_vault_and_the_sync_queued,
    every_refusal_has_its_code_and_stores_nothing,
    the_same_key_sent_concurrently_connects_once
);

async fn the_same_key_sent_concurrently_connects_once(backend: Backend) {
    let (app, fake) = app_with_fakes(backend).await;
    let app = std::sync::Arc::new(app);
    let t = app.token("ws_race", "u", "staff").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (app, t) = (app.clone(), t.clone());
        tasks.spawn(async move { connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (status, _, body) = done.unwrap();
        outcomes.push((status, body["existing"].as_bool(), body["id"].as_str().unwrap_or_default().to_owned()));
    }
    let created: Vec<_> = outcomes.iter().filter(|o| o.0 == 201).collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    let id = &created[0].2;
    for o in outcomes.iter().filter(|o| o.0 != 201) {
        assert_eq!((o.0, o.1, &o.2), (200, Some(true), id), "{outcomes:?}");
    }
    assert_eq!(connections(&app, "ws_race").await.len(), 1);
    assert_eq!(fake.requests_to("/api/accounts/").len(), 1, "validated once");
    // Removing the connection frees the key: it connects anew.
    let r = app.http.delete(app.url(&format!("/v1/connections/{id}"))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (status, _, again) = connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await;
    assert_eq!((status, again["existing"].as_bool()), (201, Some(false)), "{again}");
}

#[tokio::test]
async fn fingerprints_are_keyed_by_the_deployment() {
    use sha2::Digest;
    let (app, _fake) = app_with_fakes(Backend::Embedded).await;
    let t = app.token("ws_fp", "u", "staff").await;
    assert_eq!(connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await.0, 201);
    let c = &connections(&app, "ws_fp").await[0];
    let Credential::ApiKey { fingerprint, .. } = &c.credential else { panic!("api key credential") };
    // Not the plain hash of what a guesser knows (platform, workspace, key).
    let mut plain = sha2::Sha256::new();
    plain.update(b"klaviyows_fp\0");
    plain.update(KLAVIYO_OK.as_bytes());
    assert_ne!(fingerprint, &hex::encode(plain.finalize()));
    // Another deployment (another key) fingerprints the same key otherwise.
    let (other, _f) = app_with_fakes(Backend::Embedded).await;
    let t2 = other.token("ws_fp", "u", "staff").await;
    assert_eq!(connect(&other, &t2, klaviyo_body(KLAVIYO_OK)).await.0, 201);
    let Credential::ApiKey { fingerprint: f2, .. } = &connections(&other, "ws_fp").await[0].credential else {
        panic!("api key credential")
    };
    assert_ne!(fingerprint, f2);
    // The fingerprint key lives in the vault only.
    assert!(!app.dump_state().await.contains(
        &app.stack
            .app
            .vault
            .get(&shared::domain::SecretRef::fingerprint_key(&app.stack.app.config.secret_prefix).0)
            .await
            .unwrap()
            .map(|k| {
                use secrecy::ExposeSecret;
                k.expose_secret().to_owned()
            })
            .unwrap()
    ));
}

async fn a_valid_key_is_stored_only_in_the_vault_and_the_sync_queued(backend: Backend) {
    let (app, fake) = app_with_fakes(backend).await;
    let t = app.token("ws_k", "u", "staff").await;
    let (status, _, body) = connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["state"], "initial_sync_in_progress");
    assert_eq!(body["credential"]["hint"], "…CDEF");
    assert!(body["credential"]["last_verified_at"].is_string());
    assert_eq!(body["account"], json!({"id": "ACCT_K1", "name": "Demo Shop"}));
    assert_eq!(body["existing"], false);
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(fake.requests_to("/api/accounts/").len(), 1, "validated once, with the platform");

    let jobs = app.stack.app.queue.receive(QueueKind::Sync, 10, 30).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].body.contains(&id));

    let list = app.http.get(app.url("/v1/connections")).bearer_auth(&t).send().await.unwrap().text().await.unwrap();
    let state = app.dump_state().await;
    for text in [&body.to_string(), &list, &state] {
        assert!(!text.contains(KLAVIYO_OK), "the key leaked");
    }
    let c = &connections(&app, "ws_k").await[0];
    let Credential::ApiKey { secret, .. } = &c.credential else { panic!("api key credential") };
    let stored = shared::platform::api_key::load_key(app.stack.app.vault.as_ref(), secret).await.unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(stored.values["api_key"].expose_secret(), KLAVIYO_OK);

    // The same key again: no second connection, unless asked for.
    let (status, _, again) = connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await;
    assert_eq!((status, again["id"].as_str(), again["existing"].as_bool()), (200, Some(id.as_str()), Some(true)));
    assert_eq!(fake.requests_to("/api/accounts/").len(), 1, "no second validation for a known key");
    let mut second = klaviyo_body(KLAVIYO_OK);
    second["allow_duplicate"] = json!(true);
    let (status, _, other) = connect(&app, &t, second).await;
    assert_eq!(status, 201);
    assert_ne!(other["id"], json!(id));
    assert_eq!(connections(&app, "ws_k").await.len(), 2);
}

async fn every_refusal_has_its_code_and_stores_nothing(backend: Backend) {
    let (app, _fake) = app_with_fakes(backend).await;
    let t = app.token("ws_r", "u", "staff").await;
    for (key, status, code) in [
        ("pk_invalid0123456789abcdefABCD", 422, "api_key_invalid"),
        ("pk_scope0123456789abcdefABCDEF", 422, "api_key_insufficient_scope"),
        ("pk_expired0123456789abcdefABCD", 422, "api_key_expired"),
        ("pk_down0123456789abcdefABCDEFG", 502, "platform_unavailable"),
        ("pk_slow0123456789abcdefABCDEFG", 502, "platform_unavailable"),
        ("pk_rate0123456789abcdefABCDEFG", 429, "rate_limited"),
    ] {
        let (s, headers, body) = connect(&app, &t, klaviyo_body(key)).await;
        assert_eq!((s, error_code(&body).as_str()), (status, code), "{key}");
        assert!(!body.to_string().contains(key));
        if code == "rate_limited" {
            assert_eq!(headers["retry-after"], "30", "Retry-After is passed on");
        }
    }
    assert!(connections(&app, "ws_r").await.is_empty());
    assert!(app.stack.app.queue.receive(QueueKind::Sync, 10, 30).await.unwrap().is_empty());
    assert!(!app.dump_state().await.contains("pk_"), "no key in the state store");
}

#[tokio::test]
async fn a_refused_connection_is_platform_unavailable_not_an_invalid_key() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let overrides =
        json!({"platforms": {"klaviyo": {"api": {"base_url": format!("http://127.0.0.1:{closed}")}}}}).to_string();
    let app = spawn_app_with(&[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let t = app.token("ws_c", "u", "staff").await;
    let (status, _, body) = connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await;
    assert_eq!((status, error_code(&body).as_str()), (502, "platform_unavailable"));
}

#[tokio::test]
async fn recharge_scopes_are_checked_against_the_catalog() {
    let (app, fake) = app_with_fakes(Backend::Embedded).await;
    let t = app.token("ws_rc", "u", "staff").await;
    let body = |key: &str| json!({"platform": "recharge", "name": "Recharge", "credentials": {"api_key": key}});
    let (status, _, r) = connect(&app, &t, body("rc_partial_0123456789abcdefghij")).await;
    assert_eq!((status, error_code(&r).as_str()), (422, "api_key_insufficient_scope"));
    let (status, _, r) = connect(&app, &t, body("rc_full_0123456789abcdefghijkl")).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["account"]["name"], "Sync");
    let sent = &fake.requests_to("/token_information")[0];
    assert!(sent.headers.get("x-recharge-version").is_some());
}

#[tokio::test]
async fn woocommerce_takes_a_key_pair_and_the_store_url() {
    let (app, fake) = app_with_fakes(Backend::Embedded).await;
    let t = app.token("ws_wc", "u", "staff").await;
    let body = |url: String, secret: &str| json!({"platform": "woocommerce", "name": "Woo", "credentials": {"store_url": url, "consumer_key": "ck_0123456789abcdef0123", "consumer_secret": secret}});
    let (status, _, r) = connect(&app, &t, body(format!("{}/store", fake.base), "cs_0123456789abcdef0123")).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["params"]["store_url"], format!("{}/store", fake.base), "the store URL is not secret");
    assert!(!r.to_string().contains("cs_0123456789abcdef0123"));
    let (status, _, r) = connect(&app, &t, body(format!("{}/wrong", fake.base), "cs_0123456789abcdef0123")).await;
    assert_eq!((status, error_code(&r).as_str()), (422, "platform_endpoint_not_found"));
    let (status, _, r) = connect(&app, &t, body(format!("{}/store", fake.base), "cs_wrongwrongwrongwrong00")).await;
    assert_eq!((status, error_code(&r).as_str()), (422, "api_key_invalid"));
}

#[tokio::test]
async fn input_is_checked_before_any_platform_request() {
    let (app, fake) = app_with_fakes(Backend::Embedded).await;
    let t = app.token("ws_i", "u", "staff").await;
    let viewer = app.token("ws_i", "v", "client_viewer").await;
    let cases = [
        (klaviyo_body(&"pk_".repeat(200)), 422, "invalid_input"),
        (klaviyo_body("pk_has spaces and ünïcode 0123456789"), 422, "invalid_input"),
        (klaviyo_body(""), 422, "invalid_input"),
        (json!({"platform": "klaviyo", "name": "K", "credentials": {}}), 422, "invalid_input"),
        (
            json!({"platform": "klaviyo", "name": "K", "credentials": {"api_key": KLAVIYO_OK, "other": "x"}}),
            422,
            "invalid_input",
        ),
        (json!({"platform": "shopify", "name": "K", "credentials": {"api_key": KLAVIYO_OK}}), 422, "wrong_auth_method"),
        (
            json!({"platform": "klaviyo", "name": "K", "credentials": {"api_key": "x".repeat(70_000)}}),
            413,
            "payload_too_large",
        ),
    ];
    for (body, status, code) in cases {
        let (s, _, r) = connect(&app, &t, body.clone()).await;
        assert_eq!(
            (s, error_code(&r).as_str()),
            (status, code),
            "{}",
            &body.to_string()[..80.min(body.to_string().len())]
        );
    }
    let (s, _, r) = connect(&app, &viewer, klaviyo_body(KLAVIYO_OK)).await;
    assert_eq!((s, error_code(&r).as_str()), (403, "forbidden"));
    assert!(fake.requests().is_empty(), "nothing reached the platform");
}

#[tokio::test]
async fn replacing_a_key_validates_first_and_keeps_history() {
    let (app, _fake) = app_with_fakes(Backend::Embedded).await;
    let t = app.token("ws_x", "u", "staff").await;
    let (_, _, created) = connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // The connection has synced and then lost its key.
    let ws = WorkspaceId::parse("ws_x").unwrap();
    let cid = shared::domain::ids::ConnectionId::parse(&id).unwrap();
    let v = app.stack.app.repo.connection(&ws, &cid).await.unwrap();
    let mut c = v.value;
    let now = app.clock_now();
    c.apply(Event::InitialSyncCompleted, now).unwrap();
    c.cursors.insert(
        "profiles".into(),
        StreamCursor { cursor: Some("2026-11-01".into()), records: 420, complete: true, ..Default::default() },
    );
    c.apply(Event::CredentialsLost(DisconnectReason::ApiKeyInvalid), now).unwrap();
    app.stack.app.repo.save(&c, v.version).await.unwrap();
    let _ = app.stack.app.queue.receive(QueueKind::Sync, 10, 0).await.unwrap();

    let put = |key: &str| {
        app.http
            .put(app.url(&format!("/v1/connections/{id}/api-key")))
            .bearer_auth(&t)
            .json(&json!({"credentials": {"api_key": key}}))
            .send()
    };
    let r = put("pk_invalid0123456789abcdefWXYZ").await.unwrap();
    assert_eq!(r.status(), 422);
    let Credential::ApiKey { secret, .. } = &c.credential else { panic!() };
    use secrecy::ExposeSecret;
    assert_eq!(
        shared::platform::api_key::load_key(app.stack.app.vault.as_ref(), secret).await.unwrap().values["api_key"]
            .expose_secret(),
        KLAVIYO_OK,
        "the old key stays in force"
    );

    let r = put("pk_new0123456789abcdefABCDWXYZ").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["credential"]["hint"], "…WXYZ");
    assert_eq!(body["status"]["state"], "connected", "reconnected, not re-synced from scratch");
    assert_eq!(body["progress"]["profiles"]["records"], 420, "cursors kept");
    assert_eq!(
        shared::platform::api_key::load_key(app.stack.app.vault.as_ref(), secret).await.unwrap().values["api_key"]
            .expose_secret(),
        "pk_new0123456789abcdefABCDWXYZ"
    );
    let jobs = app.stack.app.queue.receive(QueueKind::Sync, 10, 30).await.unwrap();
    assert!(jobs.iter().any(|j| j.body.contains(&id) && j.body.contains("incremental")), "{jobs:?}");
    assert!(!body.to_string().contains("pk_new"));
}

#[tokio::test]
async fn the_sandbox_magic_keys_give_each_outcome() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_sb", "u", "staff").await;
    let body = |key: &str| json!({"platform": "sandbox_api_key", "name": "Sandbox", "credentials": {"api_key": key}});
    for (key, status, code) in [
        ("sandbox-valid-abc", 201, None),
        ("sandbox-invalid-abc", 422, Some("api_key_invalid")),
        ("sandbox-scope-abc", 422, Some("api_key_insufficient_scope")),
        ("sandbox-expired-abc", 422, Some("api_key_expired")),
        ("sandbox-down-abc", 502, Some("platform_unavailable")),
        ("sandbox-ratelimit-abc", 429, Some("rate_limited")),
        ("sandbox-whatever-abc", 422, Some("api_key_invalid")),
    ] {
        let (s, headers, r) = connect(&app, &t, body(key)).await;
        assert_eq!(s, status, "{key}: {r}");
        if let Some(code) = code {
            assert_eq!(error_code(&r), code, "{key}");
        }
        if key.starts_with("sandbox-ratelimit") {
            assert_eq!(headers["retry-after"], "7");
        }
    }
}

#[test]
fn a_key_reaches_no_log_line() {
    let (logs, ()) = crate::logs::captured(async {
        let (app, _fake) = app_with_fakes(Backend::Embedded).await;
        let t = app.token("ws_l", "u", "staff").await;
        let (status, _, _) = connect(&app, &t, klaviyo_body(KLAVIYO_OK)).await;
        assert_eq!(status, 201);
        let (status, _, _) = connect(&app, &t, klaviyo_body("pk_invalid0123456789abcdefABCD")).await;
        assert_eq!(status, 422);
    });
    assert!(logs.contains("api key connected"), "the capture works");
    assert!(!logs.contains(KLAVIYO_OK) && !logs.contains("pk_invalid0123456789abcdefABCD"));
    let _ = BTreeMap::<String, String>::new();
}

#[tokio::test]
async fn a_store_url_on_an_internal_address_is_refused_in_every_form() {
    // The real catalog's pattern (https store URLs), and loopback not
    // allowed, as in a deployment.
    let app = spawn_app_on(Backend::Embedded, &[("ALLOW_LOOPBACK_PLATFORMS", "false")]).await;
    let t = app.token("ws_ssrf", "u", "staff").await;
    // A loopback listener that records any connection: nothing may reach it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let hosts = [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "0.0.0.0",
    ];
    for host in hosts {
        let body = json!({"platform": "woocommerce", "name": "Woo", "credentials": {
            "store_url": format!("https://{host}:{port}"),
            "consumer_key": "ck_0123456789abcdef0123", "consumer_secret": "cs_0123456789abcdef0123"}});
        let (status, _, r) = connect(&app, &t, body).await;
        assert_eq!((status, error_code(&r).as_str()), (422, "address_not_allowed"), "{host}: {r}");
    }
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "no connection reached this machine");
    assert!(connections(&app, "ws_ssrf").await.is_empty());
}

#[tokio::test]
async fn the_scheduler_moves_keys_stored_before_packing_into_a_pack() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_keymove", "u", "staff").await;
    let body =
        json!({"platform": "sandbox_api_key", "name": "Sandbox", "credentials": {"api_key": "sandbox-valid-move"}});
    let (s, _, r) = connect(&app, &t, body).await;
    assert_eq!(s, 201, "{r}");
    let a = &app.stack.app;
    let conn = connections(&app, "ws_keymove").await.remove(0);
    let Credential::ApiKey { secret: packed, .. } = &conn.credential else { panic!("a key connection") };
    assert!(packed.0.contains("/packs/conn-"), "new keys go into packs: {}", packed.0);
    // As a deployment from before packs stored it: a secret of its own.
    let own = shared::domain::SecretRef::for_owner(&a.config.secret_prefix, &conn.workspace_id, conn.id.as_str());
    a.vault.put(&own.0, &a.vault.get(&packed.0).await.unwrap().unwrap()).await.unwrap();
    a.vault.delete(&packed.0).await.unwrap();
    let mut old = a.repo.connection(&conn.workspace_id, &conn.id).await.unwrap();
    if let Credential::ApiKey { secret, .. } = &mut old.value.credential {
        *secret = own.clone();
    }
    old.value.running = None;
    old.value.next_sync_at = Some(shared::ports::Clock::now(app.clock.as_ref()));
    a.repo.save(&old.value, old.version).await.unwrap();

    shared::flows::schedule::tick(a).await.unwrap();
    let moved = a.repo.connection(&conn.workspace_id, &conn.id).await.unwrap().value;
    let Credential::ApiKey { secret, .. } = &moved.credential else { panic!("a key connection") };
    assert!(secret.0.contains("/packs/conn-"), "{}", secret.0);
    let key = shared::platform::api_key::load_key(a.vault.as_ref(), secret).await.unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&key.values["api_key"]), "sandbox-valid-move");
    assert!(a.vault.get(&own.0).await.unwrap().is_none(), "the old secret is deleted");
    assert!(!a
        .repo
        .sync_lease_live(&conn.workspace_id, &conn.id, shared::ports::Clock::now(app.clock.as_ref()))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_key_whose_connection_never_came_is_removed_by_the_sweep() {
    let app = spawn_app_with(&[]).await;
    let a = &app.stack.app;
    let ws = WorkspaceId::parse("ws_keyorphan").unwrap();
    let lost = a
        .packs
        .allocate(&a.config.secret_prefix, &ws, shared::domain::ids::ConnectionId::generate().as_str())
        .await
        .unwrap();
    crate::harness::leave_orphan_secret(&app, &lost, r#"{"api_key":"sandbox-valid-orphan"}"#).await;
    app.clock.advance(chrono::Duration::minutes(shared::flows::secrets::INTENT_DUE_MINUTES + 1));
    assert_eq!(shared::flows::sweep::sweep(a).await.unwrap().secret_intents_checked, 1);
    assert!(a.vault.get(&lost.0).await.unwrap().is_none(), "the key no connection holds is deleted");
}
