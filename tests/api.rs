//! The HTTP API through the local gateway (API-Gateway-shaped routing, JWT
//! verification, CORS), on a port of its own per test.

use chrono::Utc;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use shared::domain::ids::*;
use shared::domain::*;

use crate::harness::{error_code, spawn_app, TestApp};

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = app.http.get(app.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn seed_connection(app: &TestApp, workspace: &str, credential: Credential) -> Connection {
    let now = Utc::now();
    let mut c = Connection::new(
        WorkspaceId::parse(workspace).unwrap(),
        PlatformId::parse("sandbox_oauth").unwrap(),
        "Sandbox store".into(),
        ConnectionRole::Source,
        Some(ClientRef { id: ClientId::parse("client_1").unwrap(), name: "Acme".into() }),
        credential,
        vec![
            StreamSelection { name: "orders".into(), selected: true },
            StreamSelection { name: "customers".into(), selected: false },
        ],
        UserId::parse("u_admin").unwrap(),
        now,
    );
    c.status = Status::Connected;
    c.initial_sync_done = true;
    c.last_synced_at = Some(now);
    app.stack.app.repo.create(&c).await.unwrap();
    c
}

#[tokio::test]
async fn health_and_catalog_are_public() {
    let app = spawn_app().await;
    let (status, body) = get(&app, "/health", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = get(&app, "/v1/providers", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["providers"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    for id in shared::catalog::PLATFORM_IDS.iter().chain(&shared::catalog::SANDBOX_IDS) {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
    let shopify = body["providers"].as_array().unwrap().iter().find(|p| p["id"] == "shopify").unwrap();
    assert!(shopify["required_role"].as_str().unwrap().contains("Orders"));
    assert_eq!(shopify["params"][0]["name"], "shop");
    assert!(shopify.get("oauth").is_none(), "no endpoint internals in the public view");
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_the_error_shape() {
    let app = spawn_app().await;
    let other_key = local_stack::devtoken::DevTokens::with_key(b"another-key-another-key-another-k".to_vec());
    let request = local_stack::devtoken::TokenRequest {
        workspace_id: "ws_a".into(),
        user_id: "u".into(),
        role: "admin".into(),
        email: None,
    };
    let (forged, _) = other_key.mint(&request, Utc::now().timestamp()).unwrap();
    let tokens = [None, Some("garbage"), Some(forged.as_str())];
    for token in tokens {
        let (status, body) = get(&app, "/v1/connections", token).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(error_code(&body), "unauthenticated");
    }
    // Expired: a token minted a day ago.
    let their_key = local_stack::devtoken::DevTokens::with_key(b"test-key-test-key-test-key-test-key".to_vec());
    let (old, _) = their_key.mint(&request, Utc::now().timestamp() - 86_400).unwrap();
    let (status, body) = get(&app, "/v1/connections", Some(&old)).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn dev_tokens_validate_their_input() {
    let app = spawn_app().await;
    for body in [
        json!({"workspace_id": "ws#1", "user_id": "u", "role": "admin"}),
        json!({"workspace_id": "ws", "user_id": "u", "role": "owner"}),
        json!({"workspace_id": "ws", "user_id": "u", "role": "admin", "email": "nope"}),
        json!({"workspace_id": "ws"}),
    ] {
        let r = app.http.post(app.url("/dev/token")).json(&body).send().await.unwrap();
        assert!(r.status().is_client_error(), "{body}");
        error_code(&r.json().await.unwrap());
    }
}

#[tokio::test]
async fn another_workspace_sees_nothing_and_gets_404() {
    let app = spawn_app().await;
    let mine = seed_connection(&app, "ws_a", Credential::FileUpload).await;
    let a = app.token("ws_a", "u_a", "admin").await;
    let b = app.token("ws_b", "u_b", "admin").await;
    let (status, body) = get(&app, &format!("/v1/connections/{}", mine.id), Some(&a)).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], mine.id.as_str());
    assert_eq!(body["status"], json!({"state": "connected", "reason": null}));
    let (status, body) = get(&app, &format!("/v1/connections/{}", mine.id), Some(&b)).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
    assert!(!body.to_string().contains("ws_a"), "reveals nothing");
    let (_, list) = get(&app, "/v1/connections", Some(&b)).await;
    assert_eq!(list["connections"], json!([]));
    let r = app.http.delete(app.url(&format!("/v1/connections/{}", mine.id))).bearer_auth(&b).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(app.stack.app.repo.connection(&mine.workspace_id, &mine.id).await.is_ok(), "still there");
}

#[tokio::test]
async fn connections_list_filters_and_puts_disconnected_first() {
    let app = spawn_app().await;
    let healthy = seed_connection(&app, "ws_l", Credential::FileUpload).await;
    let mut broken = seed_connection(&app, "ws_l", Credential::FileUpload).await;
    let v = app.stack.app.repo.connection(&broken.workspace_id, &broken.id).await.unwrap();
    broken.apply(Event::CredentialsLost(DisconnectReason::TokenRevoked), Utc::now()).unwrap();
    app.stack.app.repo.save(&broken, v.version).await.unwrap();
    let t = app.token("ws_l", "u", "staff").await;
    let (_, all) = get(&app, "/v1/connections", Some(&t)).await;
    let ids: Vec<&str> = all["connections"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [broken.id.as_str(), healthy.id.as_str()]);
    assert_eq!(all["connections"][0]["status"], json!({"state": "disconnected", "reason": "token_revoked"}));
    assert_eq!(all["connections"][0]["last_error"]["code"], "token_revoked");
    let (_, only) = get(&app, "/v1/connections?status=disconnected", Some(&t)).await;
    assert_eq!(only["connections"].as_array().unwrap().len(), 1);
    let (_, none) = get(&app, "/v1/connections?platform=shopify", Some(&t)).await;
    assert_eq!(none["connections"], json!([]));
}

#[tokio::test]
async fn connections_page_in_the_lists_order_and_refuse_a_cursor_of_another_list() {
    let app = spawn_app().await;
    for _ in 0..5 {
        seed_connection(&app, "ws_pg", Credential::FileUpload).await;
    }
    let t = app.token("ws_pg", "u", "staff").await;
    let ids = |v: &Value| -> Vec<String> {
        v["connections"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
    };
    let (_, whole) = get(&app, "/v1/connections?sort=last_synced", Some(&t)).await;
    assert_eq!(whole["next_cursor"], Value::Null, "five fit the default page");
    let mut paged = Vec::new();
    let mut path = "/v1/connections?sort=last_synced&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = get(&app, &path, Some(&t)).await;
        assert_eq!(status, 200, "{page}");
        assert!(ids(&page).len() <= 2);
        paged.extend(ids(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/connections?sort=last_synced&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((pages, paged), (3, ids(&whole)), "every connection once, in the list's order");
    // A cursor belongs to its filters and sort.
    let (_, first) = get(&app, "/v1/connections?sort=last_synced&limit=2", Some(&t)).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, body) = get(&app, &format!("/v1/connections?sort=platform&limit=2&cursor={cursor}"), Some(&t)).await;
    assert_eq!((status, error_code(&body)), (422, "invalid_input".to_owned()), "{body}");
    let (status, _) = get(&app, "/v1/connections?cursor=bm90LWEtY3Vyc29y", Some(&t)).await;
    assert_eq!(status, 422);
    for bad in ["0", "501", "x"] {
        let (status, _) = get(&app, &format!("/v1/connections?limit={bad}"), Some(&t)).await;
        assert_eq!(status, 422, "limit={bad}");
    }
    // The workspace's other lists page the same way.
    let t = app.token("ws_pg", "u_admin", "admin").await;
    for (route, key) in
        [("/v1/authorizations", "authorizations"), ("/v1/notifications", "notifications"), ("/v1/members", "members")]
    {
        let (status, body) = get(&app, &format!("{route}?limit=1"), Some(&t)).await;
        assert_eq!(status, 200, "{route}: {body}");
        assert!(body[key].is_array() && body["next_cursor"].is_null(), "{route}: {body}");
        let (status, _) = get(&app, &format!("{route}?limit=501"), Some(&t)).await;
        assert_eq!(status, 422, "{route}");
        let (status, _) = get(&app, &format!("{route}?cursor={cursor}"), Some(&t)).await;
        assert_eq!(status, 422, "{route}: the connections list's cursor");
    }
}

#[tokio::test]
async fn patch_checks_role_body_and_streams() {
    let app = spawn_app().await;
    let c = seed_connection(&app, "ws_p", Credential::FileUpload).await;
    let path = app.url(&format!("/v1/connections/{}", c.id));
    let staff = app.token("ws_p", "u_s", "staff").await;
    let viewer = app.token("ws_p", "u_v", "client_viewer").await;

    let r = app.http.patch(&path).bearer_auth(&viewer).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r.json().await.unwrap()), "forbidden");

    let r = app.http.patch(&path).bearer_auth(&staff).body("{\"name\":\"x\"}").send().await.unwrap();
    assert_eq!(r.status(), 415, "no JSON content type");

    let r = app
        .http
        .patch(&path)
        .bearer_auth(&staff)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().await.unwrap()), "malformed_body");

    let big = json!({"name": "x".repeat(70_000)});
    let r = app.http.patch(&path).bearer_auth(&staff).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);

    let r = app
        .http
        .patch(&path)
        .bearer_auth(&staff)
        .json(&json!({"selected_streams": ["orders", "refunds"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(&r.json().await.unwrap()), "invalid_input");

    let r = app.http.patch(&path).bearer_auth(&staff).json(&json!({"name": "  "})).send().await.unwrap();
    assert_eq!(r.status(), 422);

    let r = app
        .http
        .patch(&path)
        .bearer_auth(&staff)
        .json(&json!({"name": "Main store", "selected_streams": ["customers"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "Main store");
    assert_eq!(
        body["streams"],
        json!([{"name": "orders", "selected": false}, {"name": "customers", "selected": true}])
    );
    let stored = app.stack.app.repo.connection(&c.workspace_id, &c.id).await.unwrap();
    assert_eq!((stored.value.name.as_str(), stored.version), ("Main store", 2));
}

#[tokio::test]
async fn deleting_an_api_key_connection_deletes_its_secret_and_shows_only_a_hint() {
    let app = spawn_app().await;
    let secret = SecretRef(format!("connections/dev/ws_d/{}", uuid::Uuid::new_v4().simple()));
    app.stack.app.vault.put(&secret.0, &secrecy::SecretString::from("sk_test_valid_0123456789")).await.unwrap();
    let c = seed_connection(
        &app,
        "ws_d",
        Credential::ApiKey {
            secret: secret.clone(),
            hint: "6789".into(),
            last_verified_at: Utc::now(),
            fingerprint: String::new(),
        },
    )
    .await;
    let t = app.token("ws_d", "u", "admin").await;
    let (_, body) = get(&app, &format!("/v1/connections/{}", c.id), Some(&t)).await;
    assert_eq!(body["credential"]["hint"], "…6789");
    let text = body.to_string();
    assert!(!text.contains("sk_test_valid") && !text.contains(&secret.0), "{text}");
    let r = app.http.delete(app.url(&format!("/v1/connections/{}", c.id))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(app.stack.app.vault.get(&secret.0).await.unwrap().is_none());
    let (status, _) = get(&app, &format!("/v1/connections/{}", c.id), Some(&t)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn authorizations_list_the_connections_that_use_them() {
    let app = spawn_app().await;
    let now = Utc::now();
    let auth = Authorization {
        id: AuthorizationId::generate(),
        workspace_id: WorkspaceId::parse("ws_z").unwrap(),
        platform: PlatformId::parse("sandbox_oauth").unwrap(),
        name: "Agency MCC".into(),
        account: Some(ExternalAccount { id: "acct_demo".into(), name: Some("Demo".into()) }),
        scopes: vec!["read".into()],
        params: BTreeMap::new(),
        status: Status::Connected,
        expiry: TokenExpiry::default(),
        next_check_at: None,
        secret: SecretRef("connections/dev/ws_z/auth".into()),
        created_by: UserId::parse("u").unwrap(),
        created_at: now,
        updated_at: now,
        last_refreshed_at: None,
        refresh_failures: 0,
        refresh_lease: None,
        expiring_alert_at: None,
        accounts: None,
        access: None,
    };
    app.stack.app.repo.create(&auth).await.unwrap();
    let c1 = seed_connection(&app, "ws_z", Credential::Authorization { authorization_id: auth.id.clone() }).await;
    let c2 = seed_connection(&app, "ws_z", Credential::Authorization { authorization_id: auth.id.clone() }).await;
    seed_connection(&app, "ws_z", Credential::FileUpload).await;
    let t = app.token("ws_z", "u", "staff").await;
    let (status, body) = get(&app, "/v1/authorizations", Some(&t)).await;
    assert_eq!(status, 200);
    let a = &body["authorizations"][0];
    assert_eq!(a["name"], "Agency MCC");
    let mut used: Vec<&str> = a["connections"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    used.sort();
    let mut expected = vec![c1.id.as_str(), c2.id.as_str()];
    expected.sort();
    assert_eq!(used, expected);
    assert!(!body.to_string().contains("connections/dev/ws_z/auth"), "no vault names");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let app = spawn_app().await;
    let (status, body) = get(&app, "/v1/nothing", None).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "route_not_found"));
    let r = app.http.put(app.url("/v1/connections")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST, OPTIONS", "a 405 names the methods the route takes");
    let t = app.token("ws", "u", "admin").await;
    let (status, body) = get(&app, "/v1/connections/not-an-id", Some(&t)).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/v1/connections"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    let evil = preflight("https://app.example.com.evil.test").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let r = app.http.get(app.url("/health")).header("origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
}

#[tokio::test]
async fn every_route_passes_its_cors_preflight_locally_and_in_the_template() {
    let app = spawn_app().await;
    for route in shared::entry::http::ROUTES {
        let path = route.path.replace("{id}", "conn_0").replace("{upload_id}", "upl_0").replace("{user_id}", "u");
        let r = app
            .http
            .request(reqwest::Method::OPTIONS, app.url(&path))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", route.method.as_str())
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{} {}", route.method, route.path);
        let allowed = r.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
        assert!(
            allowed.split(", ").any(|m| m == route.method.as_str()),
            "{} {}: preflight allows only {allowed}",
            route.method,
            route.path
        );
        assert_eq!(r.headers()["access-control-allow-headers"], shared::entry::http::CORS_HEADERS);
    }
    // API Gateway answers preflights in AWS: the template allows the same.
    let template =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    let line = template.lines().find(|l| l.trim_start().starts_with("AllowMethods:")).unwrap();
    for method in shared::entry::http::cors_methods() {
        assert!(line.contains(method), "template AllowMethods lacks {method}: {line}");
    }
    let headers = template.lines().find(|l| l.trim_start().starts_with("AllowHeaders:")).unwrap();
    for h in shared::entry::http::CORS_HEADERS.split(", ") {
        assert!(headers.contains(h), "template AllowHeaders lacks {h}");
    }
}

async fn send_json(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = app.http.request(method, app.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn client_viewers_see_only_the_clients_they_are_given() {
    let app = spawn_app().await;
    let admin = app.token("ws_cv", "admin", "admin").await;
    let mut files = BTreeMap::new();
    for (client, name) in [("client_a", "Acme"), ("client_b", "Bolt")] {
        let body = json!({"platform": "custom_costs", "name": format!("Costs {name}"), "client": {"id": client, "name": name}});
        let (status, c) = send_json(&app, reqwest::Method::POST, "/v1/connections/file-upload", &admin, body).await;
        assert_eq!(status, 201, "{c}");
        files.insert(client, c["id"].as_str().unwrap().to_owned());
        let start = json!({"platform": "sandbox_oauth", "name": format!("Ads {name}"), "return_to": "https://app.example.com/x",
                           "client": {"id": client, "name": name}});
        let msg = crate::harness::oauth_flow(&app, &admin, start, &format!("acct_{client}")).await;
        assert_eq!(msg["status"], "connected", "{msg}");
    }
    let member = json!({"email": "viewer@example.com", "role": "client_viewer", "client_ids": ["client_a"]});
    let (status, m) = send_json(&app, reqwest::Method::PUT, "/v1/members/viewer", &admin, member).await;
    assert_eq!(status, 200, "{m}");
    let viewer = app.token("ws_cv", "viewer", "client_viewer").await;

    let (_, list) = get(&app, "/v1/connections", Some(&viewer)).await;
    let list = list["connections"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "the two connections of client A");
    assert!(list.iter().all(|c| c["client"]["id"] == "client_a"));
    let (_, all) = get(&app, "/v1/connections", Some(&admin)).await;
    let b_oauth = all["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client"]["id"] == "client_b" && c["credential"]["kind"] == "authorization")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get(&app, &format!("/v1/connections/{b_oauth}"), Some(&viewer)).await.0, 404);
    let (_, auths) = get(&app, "/v1/authorizations", Some(&viewer)).await;
    let auths = auths["authorizations"].as_array().unwrap();
    assert_eq!(auths.len(), 1);
    assert!(auths[0]["connections"].as_array().unwrap().iter().all(|c| c["client"]["id"] == "client_a"));
    let (a, b) = (&files["client_a"], &files["client_b"]);
    assert_eq!(
        app.http
            .get(app.url(&format!("/v1/connections/{a}/costs/export")))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for path in [format!("/v1/connections/{b}/costs/export"), format!("/v1/connections/{b}/uploads")] {
        assert_eq!(app.http.get(app.url(&path)).bearer_auth(&viewer).send().await.unwrap().status(), 404, "{path}");
    }
    // A client viewer the workspace never gave a client sees nothing.
    let stranger = app.token("ws_cv", "nobody", "client_viewer").await;
    assert_eq!(get(&app, "/v1/connections", Some(&stranger)).await.1["connections"], json!([]));
    assert_eq!(get(&app, "/v1/authorizations", Some(&stranger)).await.1["authorizations"], json!([]));
    // Staff still see the whole workspace.
    assert_eq!(all["connections"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn with_required_membership_only_members_get_in_and_their_own_role_counts() {
    let app = crate::harness::spawn_app_with(&[("REQUIRE_MEMBERSHIP", "true")]).await;
    // A workspace with no member yet takes its first admin from the token...
    let founder = app.token("ws_mem", "founder", "admin").await;
    let me = json!({"email": "founder@example.com", "role": "admin"});
    assert_eq!(send_json(&app, reqwest::Method::PUT, "/v1/members/founder", &founder, me).await.0, 200);
    let staff = json!({"email": "member@example.com", "role": "staff"});
    assert_eq!(send_json(&app, reqwest::Method::PUT, "/v1/members/member", &founder, staff).await.0, 200);
    // ...after that, a token names only members, whatever role it claims.
    let stranger = app.token("ws_mem", "stranger", "admin").await;
    let (status, body) = get(&app, "/v1/connections", Some(&stranger)).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "not_a_member"));
    // The member's role counts, not the token's.
    let inflated = app.token("ws_mem", "member", "admin").await;
    assert_eq!(get(&app, "/v1/connections", Some(&inflated)).await.0, 200);
    let (status, body) = get(&app, "/v1/members", Some(&inflated)).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "forbidden"));
    assert_eq!(get(&app, "/v1/members", Some(&founder)).await.0, 200);
    // Without the setting the identity provider's claims count.
    let open = spawn_app().await;
    let stranger = open.token("ws_mem", "stranger", "admin").await;
    assert_eq!(get(&open, "/v1/members", Some(&stranger)).await.0, 200);
}
