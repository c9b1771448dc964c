//! Reconnect and shared, named authorizations: one reconnect restores every
//! connection of a grant with cursors kept; another account is refused
//! unless switching is asked for; removal disconnects dependants and
//! revokes at the platform; a destination uses another member's grant;
//! renaming; the disconnected-first list.

use serde_json::{json, Value};

use shared::domain::ids::*;
use shared::domain::*;
use shared::ports::QueueKind;

use crate::harness::{error_code, oauth_flow as oauth, spawn_app_on, Backend, TestApp};

const ORIGIN: &str = "https://app.example.com";

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app.http.post(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn conn(app: &TestApp, ws: &WorkspaceId, id: &str) -> Connection {
    app.stack.app.repo.connection(ws, &ConnectionId::parse(id).unwrap()).await.unwrap().value
}

async fn revoke_and_sweep(app: &TestApp, account: &str) {
    assert_eq!(app.sandbox().revoke_account(account), 1);
    app.clock.advance(chrono::Duration::minutes(2));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!(report.disconnected, 1, "{report:?}");
}

both!(one_reconnect_restores_every_connection_of_the_grant, another_account_is_refused_and_changes_nothing);

async fn one_reconnect_restores_every_connection_of_the_grant(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let admin = app.token("ws_rc", "u_admin", "admin").await;
    let staff = app.token("ws_rc", "u_staff", "staff").await;
    let ws = WorkspaceId::parse("ws_rc").unwrap();
    let msg = oauth(&app, &admin, json!({"platform": "sandbox_oauth", "name": "Agency MCC", "return_to": ORIGIN, "client": {"id": "c1", "name": "Client 1"}}), "acct_mcc").await;
    let first = msg["connection_id"].as_str().unwrap().to_owned();
    let auth_id = msg["authorization_id"].as_str().unwrap().to_owned();
    // Two more clients on the same grant, added by a staff member.
    let mut ids = vec![first.clone()];
    for n in 2..=3 {
        let (status, c) = post(&app, &staff, "/v1/connections", json!({"authorization_id": auth_id, "name": format!("Ads {n}"), "client": {"id": format!("c{n}"), "name": format!("Client {n}")}})).await;
        assert_eq!(status, 201, "{c}");
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    // The first has synced: it has cursors to keep.
    let v = app.stack.app.repo.connection(&ws, &ConnectionId::parse(&first).unwrap()).await.unwrap();
    let mut c = v.value;
    c.apply(Event::InitialSyncCompleted, app.clock_now()).unwrap();
    c.cursors.insert(
        "orders".into(),
        StreamCursor {
            cursor: Some("2026-03-01T00:00:00Z".into()),
            records: 1234,
            pages: 13,
            complete: true,
            ..Default::default()
        },
    );
    app.stack.app.repo.save(&c, v.version).await.unwrap();
    for m in app.stack.app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap() {
        app.stack.app.queue.ack(QueueKind::Sync, &m.receipt).await.unwrap();
    }

    revoke_and_sweep(&app, "acct_mcc").await;
    for id in &ids {
        assert_eq!(conn(&app, &ws, id).await.status, Status::Disconnected { reason: DisconnectReason::TokenRevoked });
    }
    let auth = app.stack.app.repo.authorization(&ws, &AuthorizationId::parse(&auth_id).unwrap()).await.unwrap().value;
    let old = shared::flows::refresh::tokens_of(&app.stack.app, &auth).await.unwrap();

    // Reconnect from the first connection (as from its notification).
    let msg = oauth(
        &app,
        &staff,
        json!({"platform": "sandbox_oauth", "return_to": ORIGIN, "reconnect": {"connection_id": first}}),
        "acct_mcc",
    )
    .await;
    assert_eq!(
        (msg["status"].as_str(), msg["connection_id"].as_str()),
        (Some("connected"), Some(first.as_str())),
        "{msg}"
    );
    let synced = conn(&app, &ws, &first).await;
    assert_eq!(synced.status, Status::Connected, "resumes, no full re-sync");
    assert_eq!(synced.cursors["orders"].records, 1234, "cursors kept");
    assert_eq!(synced.cursors["orders"].cursor.as_deref(), Some("2026-03-01T00:00:00Z"));
    for id in &ids[1..] {
        assert_eq!(conn(&app, &ws, id).await.status, Status::InitialSyncInProgress);
    }
    let jobs = app.stack.app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap();
    assert_eq!(jobs.len(), 3, "every connection of the grant resumes");
    assert!(jobs.iter().any(|j| j.body.contains(&first) && j.body.contains("incremental")));
    let auths = app.stack.app.repo.list::<Authorization>(&ws).await.unwrap();
    assert_eq!(auths.len(), 1, "the same authorization, not a new one");
    assert_eq!(auths[0].value.status, Status::Connected);
    assert_ne!(
        shared::flows::refresh::tokens_of(&app.stack.app, &auths[0].value).await.unwrap().access_token,
        old.access_token
    );
    let alerts: Vec<String> =
        crate::harness::drain_notify(&app.stack.app).await.0.iter().map(|a| a.to_string()).collect();
    assert!(alerts.iter().any(|a| a.contains("authorization_recovered")), "{alerts:?}");
}

async fn another_account_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let admin = app.token("ws_am", "u", "admin").await;
    let ws = WorkspaceId::parse("ws_am").unwrap();
    let msg =
        oauth(&app, &admin, json!({"platform": "sandbox_oauth", "name": "Main", "return_to": ORIGIN}), "acct_one")
            .await;
    let auth_id = msg["authorization_id"].as_str().unwrap().to_owned();
    revoke_and_sweep(&app, "acct_one").await;
    let id = AuthorizationId::parse(&auth_id).unwrap();
    let before = app.stack.app.repo.authorization(&ws, &id).await.unwrap().value;
    let tokens_before = shared::flows::refresh::tokens_of(&app.stack.app, &before).await.unwrap();

    let reconnect =
        json!({"platform": "sandbox_oauth", "return_to": ORIGIN, "reconnect": {"authorization_id": auth_id}});
    let msg = oauth(&app, &admin, reconnect.clone(), "acct_two").await;
    assert_eq!(msg["error_code"], "account_mismatch");
    let after = app.stack.app.repo.authorization(&ws, &id).await.unwrap().value;
    assert_eq!((after.status, after.account.clone()), (before.status, before.account.clone()));
    assert_eq!(
        shared::flows::refresh::tokens_of(&app.stack.app, &after).await.unwrap().access_token,
        tokens_before.access_token,
        "nothing overwritten"
    );

    let mut switch = reconnect;
    switch["switch_account"] = json!(true);
    let msg = oauth(&app, &admin, switch, "acct_two").await;
    assert_eq!(msg["status"], "connected");
    assert!(msg.get("warning").is_none(), "the platform named the account: it was checked");
    let switched = app.stack.app.repo.authorization(&ws, &id).await.unwrap().value;
    assert_eq!(switched.account.unwrap().id, "acct_two");
}

#[tokio::test]
async fn removing_an_authorization_disconnects_dependants_and_revokes_it() {
    let app = spawn_app_on(Backend::Embedded, &[]).await;
    let admin = app.token("ws_rm", "a", "admin").await;
    let staff = app.token("ws_rm", "s", "staff").await;
    let ws = WorkspaceId::parse("ws_rm").unwrap();
    let msg =
        oauth(&app, &admin, json!({"platform": "sandbox_oauth", "name": "To remove", "return_to": ORIGIN}), "acct_rm")
            .await;
    let (auth_id, conn_id) =
        (msg["authorization_id"].as_str().unwrap().to_owned(), msg["connection_id"].as_str().unwrap().to_owned());
    let auth = app.stack.app.repo.authorization(&ws, &AuthorizationId::parse(&auth_id).unwrap()).await.unwrap().value;
    let tokens = shared::flows::refresh::tokens_of(&app.stack.app, &auth).await.unwrap();
    let path = app.url(&format!("/v1/authorizations/{auth_id}"));
    assert_eq!(app.http.delete(&path).bearer_auth(&staff).send().await.unwrap().status(), 403);
    let r: Value = app.http.delete(&path).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["connections_disconnected"], 1);
    assert_eq!(
        conn(&app, &ws, &conn_id).await.status,
        Status::Disconnected { reason: DisconnectReason::AuthorizationRemoved }
    );
    assert!(app.stack.app.vault.get(&auth.secret.0).await.unwrap().is_none(), "the secret is deleted");
    let me = app.http.get(app.url("/sandbox/api/me")).bearer_auth(&tokens.access_token).send().await.unwrap();
    assert_eq!(me.status(), 401, "revoked at the platform");
    let list: Value = app.get_json("/v1/authorizations", &admin).await;
    assert_eq!(list["authorizations"], json!([]));
    // Not to another platform's authorization.
    let now = app.clock_now();
    let mut foreign = auth.clone();
    foreign.id = AuthorizationId::generate();
    foreign.platform = PlatformId::parse("google_ads").unwrap();
    foreign.status = Status::Connected;
    foreign.updated_at = now;
    app.stack.app.repo.create(&foreign).await.unwrap();
    let r = app
        .http
        .patch(app.url(&format!("/v1/connections/{conn_id}")))
        .bearer_auth(&staff)
        .json(&json!({"authorization_id": foreign.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // The data source moves to another authorization of the platform and resumes.
    let other = oauth(
        &app,
        &admin,
        json!({"platform": "sandbox_oauth", "name": "Replacement", "return_to": ORIGIN}),
        "acct_new",
    )
    .await;
    let new_auth = other["authorization_id"].as_str().unwrap().to_owned();
    for m in app.stack.app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap() {
        app.stack.app.queue.ack(QueueKind::Sync, &m.receipt).await.unwrap();
    }
    let r = app
        .http
        .patch(app.url(&format!("/v1/connections/{conn_id}")))
        .bearer_auth(&staff)
        .json(&json!({"authorization_id": new_auth}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let moved = conn(&app, &ws, &conn_id).await;
    assert_eq!(moved.authorization_id().map(|a| a.as_str()), Some(new_auth.as_str()));
    assert_eq!(moved.status, Status::InitialSyncInProgress);
    assert!(app
        .stack
        .app
        .queue
        .receive(QueueKind::Sync, 10, 60)
        .await
        .unwrap()
        .iter()
        .any(|j| j.body.contains(&conn_id)));
    let r = app.http.delete(&path).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_destination_uses_another_members_grant_and_authorizations_are_named() {
    let app = spawn_app_on(Backend::Embedded, &[]).await;
    let admin = app.token("ws_dst", "u_admin", "admin").await;
    let staff = app.token("ws_dst", "u_staff", "staff").await;
    let msg = oauth(
        &app,
        &admin,
        json!({"platform": "sandbox_oauth", "name": "Acme ads account", "return_to": ORIGIN}),
        "acct_dst",
    )
    .await;
    let auth_id = msg["authorization_id"].as_str().unwrap().to_owned();
    let (status, d) = post(
        &app,
        &staff,
        "/v1/connections",
        json!({"authorization_id": auth_id, "name": "Audience export", "role": "destination"}),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    assert_eq!((d["role"].as_str(), d["status"]["state"].as_str()), (Some("destination"), Some("connected")));
    assert_eq!(d["credential"]["authorization_id"], auth_id.as_str());
    // A second named authorization of the same platform.
    let msg2 = oauth(
        &app,
        &admin,
        json!({"platform": "sandbox_oauth", "name": "Second account", "return_to": ORIGIN}),
        "acct_dst2",
    )
    .await;
    assert_ne!(msg2["authorization_id"], auth_id.as_str());
    let r = app
        .http
        .patch(app.url(&format!("/v1/authorizations/{auth_id}")))
        .bearer_auth(&staff)
        .json(&json!({"name": "Acme (main)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = app.get_json("/v1/authorizations", &staff).await;
    let names: Vec<&str> =
        list["authorizations"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Acme (main)") && names.contains(&"Second account"), "{names:?}");
    let main = list["authorizations"].as_array().unwrap().iter().find(|a| a["name"] == "Acme (main)").unwrap();
    assert_eq!(main["connections"].as_array().unwrap().len(), 2, "its data source and the destination");
    // Unknown or foreign authorizations are not found.
    let (status, r) = post(
        &app,
        &staff,
        "/v1/connections",
        json!({"authorization_id": "auth_00000000000000000000000000000000", "name": "x"}),
    )
    .await;
    assert_eq!((status, error_code(&r).as_str()), (404, "not_found"));
    let other = app.token("ws_other", "u", "admin").await;
    let (status, _) = post(&app, &other, "/v1/connections", json!({"authorization_id": auth_id, "name": "x"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_list_sorts_and_filters() {
    let app = spawn_app_on(Backend::Embedded, &[]).await;
    let admin = app.token("ws_sort", "u", "admin").await;
    let m1 = oauth(&app, &admin, json!({"platform": "sandbox_oauth", "name": "Zeta", "return_to": ORIGIN, "client": {"id": "cz", "name": "Zed Corp"}}), "acct_s1").await;
    let m2 = oauth(&app, &admin, json!({"platform": "sandbox_oauth", "name": "Alpha", "return_to": ORIGIN, "client": {"id": "ca", "name": "Able Inc"}}), "acct_s2").await;
    revoke_and_sweep(&app, "acct_s1").await;
    let get = |q: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let v: Value = app.get_json(&format!("/v1/connections{q}"), &admin).await;
            v["connections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let (c1, c2) = (m1["connection_id"].as_str().unwrap().to_owned(), m2["connection_id"].as_str().unwrap().to_owned());
    assert_eq!(get("").await, [c1.clone(), c2.clone()], "disconnected first");
    assert_eq!(get("?status=disconnected").await, vec![c1.clone()]);
    assert_eq!(get("?sort=client").await, [c2.clone(), c1.clone()]);
    assert_eq!(get("?client=ca").await, vec![c2.clone()]);
    let r = app.http.get(app.url("/v1/connections?sort=size")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn a_reconnect_the_platform_cannot_check_says_so() {
    // A platform with no identity request names no account.
    let overrides = json!({"platforms": {"sandbox_oauth": {"identity": null}}}).to_string();
    let app = spawn_app_on(Backend::Embedded, &[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let admin = app.token("ws_noid", "u", "admin").await;
    let msg =
        oauth(&app, &admin, json!({"platform": "sandbox_oauth", "name": "Main", "return_to": ORIGIN}), "acct_one")
            .await;
    assert_eq!(msg["status"], "connected");
    let auth_id = msg["authorization_id"].as_str().unwrap().to_owned();
    let reconnect =
        json!({"platform": "sandbox_oauth", "return_to": ORIGIN, "reconnect": {"authorization_id": auth_id}});
    let msg = oauth(&app, &admin, reconnect, "acct_two").await;
    assert_eq!(msg["status"], "connected");
    assert_eq!(msg["warning"], "account_not_verified", "{msg}");
    assert!(msg["warning_message"].as_str().unwrap().contains("could not be checked"));
}
