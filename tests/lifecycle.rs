//! Token lifecycle: single-flight refresh, rotation that survives a crash,
//! revocation found by the sweep (one alert for every connection of the
//! grant), transient failures that do not disconnect, and each refresh
//! kind's policy on a controllable clock.

use chrono::Duration;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use shared::domain::error::StoreError;
use shared::domain::ids::*;
use shared::domain::tokens::TokenSet;
use shared::domain::*;
use shared::ports::{Due, Item};

use crate::harness::{
    spawn_app_on, spawn_app_with, spawn_app_wrapped, Backend, FakePlatform, Recorded, Reply, TestApp,
};

const ORIGIN: &str = "https://app.example.com";

/// Connects the sandbox OAuth platform through the real flow.
pub(crate) async fn connect_sandbox(app: &TestApp, ws: &str, account: &str) -> (Authorization, Connection) {
    let t = app.token(ws, "u", "staff").await;
    let message = crate::harness::oauth_flow(
        app,
        &t,
        json!({"platform": "sandbox_oauth", "name": "Agency grant", "return_to": ORIGIN}),
        account,
    )
    .await;
    assert_eq!(message["status"], "connected", "{message}");
    let ws = WorkspaceId::parse(ws).unwrap();
    let auth = app.stack.app.repo.list::<Authorization>(&ws).await.unwrap().pop().unwrap().value;
    let conn = app.stack.app.repo.list::<Connection>(&ws).await.unwrap().pop().unwrap().value;
    (auth, conn)
}

/// A second connection (another client) on the same grant.
async fn share(app: &TestApp, c: &Connection) -> Connection {
    let mut other = c.clone();
    other.id = ConnectionId::generate();
    other.name = "Second client".into();
    other.client = Some(ClientRef { id: ClientId::parse("client_2").unwrap(), name: "Client 2".into() });
    app.stack.app.repo.create(&other).await.unwrap();
    other
}

/// The tokens as a user of the grant sees them now (the item is read again:
/// it may hold a newer access token, sealed).
pub(crate) async fn tokens(app: &TestApp, auth: &Authorization) -> TokenSet {
    let now = reload_auth(app, auth).await;
    shared::flows::refresh::tokens_of(&app.stack.app, &now).await.unwrap()
}

pub(crate) async fn reload_auth(app: &TestApp, a: &Authorization) -> Authorization {
    app.stack.app.repo.authorization(&a.workspace_id, &a.id).await.unwrap().value
}

async fn drain_alerts(app: &TestApp) -> Vec<Value> {
    crate::harness::drain_notify(&app.stack.app).await.0
}

both!(concurrent_refreshers_make_exactly_one_token_request, a_revoked_grant_is_found_by_the_sweep_with_one_alert);

async fn concurrent_refreshers_make_exactly_one_token_request(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let (auth, _) = connect_sandbox(&app, "ws_sf", "acct_sf").await;
    let before = tokens(&app, &auth).await;
    let requests = app.sandbox().token_requests();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (a, stale) = (app.stack.app.clone(), before.access_token.clone());
        let (ws, id) = (auth.workspace_id.clone(), auth.id.clone());
        tasks.push(tokio::spawn(async move { shared::flows::refresh::refresh(&a, &ws, &id, Some(&stale)).await }));
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap().expect("every refresher gets tokens").access_token);
    }
    assert_eq!(app.sandbox().token_requests(), requests + 1, "exactly one token request");
    assert_eq!(seen.len(), 1, "everyone reads the one result");
    assert_ne!(seen.into_iter().next().unwrap(), before.access_token);
    assert!(reload_auth(&app, &auth).await.refresh_lease.is_none());
}

async fn a_revoked_grant_is_found_by_the_sweep_with_one_alert(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let (auth, c1) = connect_sandbox(&app, "ws_rv", "acct_rv").await;
    let c2 = share(&app, &c1).await;
    drain_alerts(&app).await;
    // The user revokes the app on the platform.
    assert_eq!(app.sandbox().revoke_account("acct_rv"), 1);
    // The sandbox grant is probed every minute: the next sweep finds it.
    app.clock.advance(Duration::minutes(2));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!((report.items_read, report.disconnected), (1, 1), "{report:?}");
    assert_eq!(reload_auth(&app, &auth).await.status, Status::Disconnected { reason: DisconnectReason::TokenRevoked });
    for c in [&c1, &c2] {
        let now = app.stack.app.repo.connection(&c.workspace_id, &c.id).await.unwrap().value;
        assert_eq!(now.status, Status::Disconnected { reason: DisconnectReason::TokenRevoked });
    }
    let alerts = drain_alerts(&app).await;
    assert_eq!(alerts.len(), 1, "one alert for the grant: {alerts:?}");
    assert_eq!(alerts[0]["type"], "authorization_disconnected");
    assert_eq!(alerts[0]["connection_ids"].as_array().unwrap().len(), 2);
    // Disconnected grants leave the due index: later sweeps read nothing.
    app.clock.advance(Duration::days(2));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().items_read, 0);
    assert!(drain_alerts(&app).await.is_empty());
}

/// Fails the next write of an authorization that releases its lease, once
/// `armed`: the refresher "crashes" after the vault write, before recording
/// the refresh.
fn crash_after_vault(armed: Arc<AtomicBool>) -> crate::harness::Hook<Item> {
    Arc::new(move |_, item| {
        let crash = item.sk.starts_with("AUTH#")
            && item.body["refresh_lease"].is_null()
            && item.body["last_refreshed_at"].is_string()
            && armed.swap(false, Ordering::SeqCst);
        Box::pin(async move {
            if crash {
                return Err(StoreError::Unavailable("simulated crash".into()));
            }
            Ok(())
        })
    })
}

#[tokio::test]
async fn rotation_keeps_the_newest_refresh_token_when_a_refresher_crashes() {
    let armed = Arc::new(AtomicBool::new(false));
    let before_put = Some(crash_after_vault(armed.clone()));
    let app = spawn_app_wrapped(Backend::Embedded, &[], move |inner| {
        Arc::new(crate::harness::HookedStore { before_put, ..crate::harness::HookedStore::new(inner) })
    })
    .await;
    let (auth, conn) = connect_sandbox(&app, "ws_crash", "acct_crash").await;
    let first = tokens(&app, &auth).await;
    armed.store(true, Ordering::SeqCst);
    // The refresh reaches the platform (the refresh token rotates) and the
    // vault, then the process dies before it records the refresh.
    let second =
        shared::flows::refresh::refresh(&app.stack.app, &auth.workspace_id, &auth.id, Some(&first.access_token))
            .await
            .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(tokens(&app, &auth).await.refresh_token, second.refresh_token, "the rotated token is in the vault");
    assert!(reload_auth(&app, &auth).await.refresh_lease.is_some(), "the crashed refresher's lease remains");
    // After the lease expires, the next refresh uses the newest refresh
    // token (the old one would make the sandbox revoke the whole grant).
    app.clock.advance(Duration::seconds(31));
    let third =
        shared::flows::refresh::refresh(&app.stack.app, &auth.workspace_id, &auth.id, Some(&second.access_token))
            .await
            .unwrap();
    assert_ne!(third.access_token, second.access_token);
    assert!(reload_auth(&app, &auth).await.status.has_credentials());
    let me = app.http.get(app.url("/sandbox/api/me")).bearer_auth(&third.access_token).send().await.unwrap();
    assert_eq!(me.status(), 200, "the grant is alive");
    assert_eq!(
        app.stack.app.repo.connection(&conn.workspace_id, &conn.id).await.unwrap().value.status,
        Status::InitialSyncInProgress
    );
}

/// An app whose `sandbox_oauth` entry points at a fake platform, with a
/// refresh kind and lifetimes of the test's choosing.
async fn fake_app(fake: &FakePlatform, refresh: Value, extra_oauth: Value) -> TestApp {
    let mut oauth = json!({"authorize_url": format!("{}/authorize", fake.base), "token_url": format!("{}/token", fake.base), "refresh": refresh, "probe_minutes": null});
    oauth.as_object_mut().unwrap().extend(extra_oauth.as_object().cloned().unwrap_or_default());
    let overrides =
        json!({"platforms": {"sandbox_oauth": {"oauth": oauth, "api": {"base_url": fake.base}}}}).to_string();
    spawn_app_with(&[("CATALOG_OVERRIDES", overrides.as_str())]).await
}

/// An authorization with tokens, as the callback would store them.
pub(crate) async fn seed(app: &TestApp, ws: &str, expires_in: Option<i64>) -> Authorization {
    let a = &app.stack.app;
    let now = app.clock_now();
    let ws = WorkspaceId::parse(ws).unwrap();
    let id = AuthorizationId::generate();
    let secret = SecretRef::for_owner(&a.config.secret_prefix, &ws, id.as_str());
    let t = TokenSet {
        access_token: "at-1".into(),
        refresh_token: Some("rt-1".into()),
        expires_at: expires_in.map(|s| now + Duration::seconds(s)),
        refresh_expires_at: None,
        scopes: vec![],
        obtained_at: now,
        token_secret: None,
    };
    a.vault.put(&secret.0, &t.to_secret()).await.unwrap();
    let spec = a.catalog.get("sandbox_oauth").unwrap().oauth.clone().unwrap();
    let expiry = shared::domain::policy::expiry_facts(&spec, &t, now);
    let next_check = Some(shared::domain::policy::next_check(&spec, &expiry, now));
    let mut auth = Authorization::new(
        id,
        ws,
        PlatformId::parse("sandbox_oauth").unwrap(),
        "Grant".into(),
        None,
        vec![],
        BTreeMap::new(),
        expiry,
        next_check,
        secret,
        UserId::parse("u").unwrap(),
        now,
    );
    auth.status = Status::Connected;
    a.repo.create(&auth).await.unwrap();
    shared::platform::AppCredentials::store(
        a.vault.as_ref(),
        &SecretRef::for_app(&a.config.secret_prefix, "sandbox_oauth"),
        "client-1",
        &secrecy::SecretString::from("s".to_owned()),
    )
    .await
    .unwrap();
    auth
}

#[tokio::test]
async fn transient_failures_back_off_and_disconnect_only_past_the_bound() {
    let token_calls = Arc::new(AtomicUsize::new(0));
    let calls = token_calls.clone();
    let fake = FakePlatform::start(move |r: &Recorded| {
        if r.path == "/token" {
            calls.fetch_add(1, Ordering::SeqCst);
        }
        Reply::Json(503, json!({"error": "temporarily_unavailable"}))
    })
    .await;
    let app = fake_app(&fake, json!({"kind": "non_rotating"}), json!({})).await;
    let auth = seed(&app, "ws_tr", Some(3600)).await;
    app.clock.advance(Duration::minutes(50));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!(report.transient_failures, 1, "{report:?}");
    let after = reload_auth(&app, &auth).await;
    assert_eq!(after.status, Status::Connected, "a transient failure does not disconnect");
    assert_eq!(after.refresh_failures, 1);
    let cooldown = after.next_check_at.unwrap() - app.clock_now();
    assert!(cooldown >= Duration::minutes(30), "a cooldown, not a storm: {cooldown}");
    // Not due during the cooldown: no token request.
    let calls_before = token_calls.load(Ordering::SeqCst);
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().items_read, 0);
    assert_eq!(token_calls.load(Ordering::SeqCst), calls_before);
    // Days of failures: then, and only then, disconnected.
    for _ in 0..40 {
        app.clock.advance(Duration::hours(6));
        shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
        if !reload_auth(&app, &auth).await.status.has_credentials() {
            break;
        }
    }
    let end = reload_auth(&app, &auth).await;
    assert_eq!(end.status, Status::Disconnected { reason: DisconnectReason::RefreshFailed });
    assert!(app.clock_now() - auth.created_at >= Duration::days(3));
}

/// A platform whose refresh tokens rotate (`rt-N` gives `at-N+1` and
/// `rt-N+1`, an hour's token), and an app on it.
async fn rotating_platform() -> (FakePlatform, TestApp) {
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/token" => {
            let n: u32 = r.form()["refresh_token"].trim_start_matches("rt-").parse().unwrap();
            Reply::Json(200, json!({"access_token": format!("at-{}", n + 1), "refresh_token": format!("rt-{}", n + 1), "expires_in": 3600}))
        }
        _ => Reply::Json(200, json!({})),
    })
    .await;
    let app = fake_app(&fake, json!({"kind": "rotating"}), json!({})).await;
    (fake, app)
}

/// A data source on `auth` (not stored: uses read only the grant).
fn used_by(app: &TestApp, auth: &Authorization) -> Connection {
    Connection::new(
        auth.workspace_id.clone(),
        auth.platform.clone(),
        "Used".into(),
        ConnectionRole::Source,
        None,
        Credential::Authorization { authorization_id: auth.id.clone() },
        vec![],
        UserId::parse("u").unwrap(),
        app.clock_now(),
    )
}

/// The access token a use of `connection` gets.
async fn access_for(app: &TestApp, connection: &Connection) -> String {
    match shared::flows::grants::credentials(&app.stack.app, connection).await.ok().unwrap().0 {
        shared::flows::grants::Creds::OAuth { access, .. } => secrecy::ExposeSecret::expose_secret(&access).to_owned(),
        _ => panic!("an OAuth grant"),
    }
}

#[tokio::test]
async fn a_rotating_grant_is_refreshed_when_used_and_daily_not_hourly() {
    let (fake, app) = rotating_platform().await;
    let auth = seed(&app, "ws_rot", Some(3600)).await;
    // Past the access token's expiry, the sweep leaves it: nothing uses it.
    app.clock.advance(Duration::hours(2));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().refreshed, 0);
    assert_eq!(fake.requests_to("/token").len(), 0);
    // A use refreshes it first, and the rotated refresh token is in the vault.
    let connection = used_by(&app, &auth);
    assert_eq!(access_for(&app, &connection).await, "at-2");
    assert_eq!(tokens(&app, &auth).await.refresh_token.as_deref(), Some("rt-2"));
    // A day on, the sweep exercises it once (the rotation goes on; a dead
    // grant is found), then leaves it for another day.
    app.clock.advance(Duration::hours(25));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().refreshed, 1);
    assert_eq!(tokens(&app, &auth).await.refresh_token.as_deref(), Some("rt-3"));
    app.clock.advance(Duration::hours(2));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().refreshed, 0);
}

#[tokio::test]
async fn a_refresh_that_says_no_expiry_and_keeps_the_refresh_token_writes_no_vault() {
    // The new access token goes sealed into the item, whatever its answer
    // says of its lifetime: only a changed refresh token is worth a write.
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/token" => Reply::Json(200, json!({"access_token": "at-2"})),
        _ => Reply::Json(400, json!({"error": "invalid_grant"})),
    })
    .await;
    let app = fake_app(&fake, json!({"kind": "non_rotating"}), json!({"token_lifetime_seconds": null})).await;
    let a = &app.stack.app;
    let auth = seed(&app, "ws_noexp", Some(3600)).await;
    let before = a.vault.get(&auth.secret.0).await.unwrap();
    let fresh = shared::flows::refresh::refresh(a, &auth.workspace_id, &auth.id, None).await.unwrap();
    assert_eq!((fresh.access_token.as_str(), fresh.refresh_token.as_deref()), ("at-2", Some("rt-1")));
    let after = reload_auth(&app, &auth).await;
    assert_eq!(
        a.vault.get(&after.secret.0).await.unwrap().map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned()),
        before.map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned()),
        "the vault is as it was"
    );
    assert!(after.access.is_some(), "the access token is sealed in the item");
    assert_eq!(tokens(&app, &after).await.access_token, "at-2");
}

#[tokio::test]
async fn non_rotating_refresh_keeps_the_refresh_token() {
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/token" if r.form()["refresh_token"] == "rt-1" => {
            Reply::Json(200, json!({"access_token": "at-2", "expires_in": 3600}))
        }
        _ => Reply::Json(400, json!({"error": "invalid_grant"})),
    })
    .await;
    let app = fake_app(&fake, json!({"kind": "non_rotating", "idle_expiry_days": 180}), json!({})).await;
    let auth = seed(&app, "ws_nr", Some(3600)).await;
    app.clock.advance(Duration::minutes(46));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().refreshed, 1);
    let t = tokens(&app, &auth).await;
    assert_eq!((t.access_token.as_str(), t.refresh_token.as_deref()), ("at-2", Some("rt-1")));
    let after = reload_auth(&app, &auth).await;
    assert_eq!(after.next_check_at, Some(app.clock_now() + Duration::minutes(45)), "next check by policy");
    // Nothing long-lived changed: the vault was not written (its copy is
    // the grant's first), and the new access token is in the item, sealed.
    // (Seeded as before credential packs, it was moved into one.)
    let vault = app.stack.app.vault.get(&after.secret.0).await.unwrap().unwrap();
    let stored = shared::domain::tokens::TokenSet::from_secret(&vault).unwrap();
    assert_ne!(stored.access_token, "at-2");
    assert!(after.access.is_some());
    assert!(!serde_json::to_string(&after).unwrap().contains("at-2"), "sealed, never in the clear");
    // A sealed token that does not open (another key, an altered item)
    // counts as absent: the vault's copy serves.
    let mut altered = after.clone();
    altered.access.as_mut().unwrap().key_id = "k-replaced".into();
    let t = shared::flows::refresh::tokens_of(&app.stack.app, &altered).await.unwrap();
    assert_eq!((t.access_token.as_str(), t.refresh_token.as_deref()), ("at-1", Some("rt-1")));
    // The next refresh starts from the same refresh token.
    app.clock.advance(Duration::minutes(46));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().refreshed, 1);
    assert_eq!(tokens(&app, &auth).await.refresh_token.as_deref(), Some("rt-1"));
}

#[tokio::test]
async fn a_rotating_grants_hour_long_token_serves_until_five_minutes_before_its_end() {
    // Each refresh of a rotating grant writes the vault: an hour-long token
    // serves four 15-minute syncs, not three (REFRESH_MARGIN would renew it
    // at 45 minutes).
    let (fake, app) = rotating_platform().await;
    let t0 = app.clock_now();
    let auth = seed(&app, "ws_rot_margin", Some(3600)).await;
    let connection = used_by(&app, &auth);
    let access = || access_for(&app, &connection);
    for minutes in [15, 30, 45, 54] {
        app.clock.set(t0 + Duration::minutes(minutes));
        assert_eq!(access().await, "at-1", "at {minutes} minutes");
    }
    assert_eq!(fake.requests_to("/token").len(), 0);
    app.clock.set(t0 + Duration::minutes(56));
    assert_eq!(access().await, "at-2");
    assert_eq!(fake.requests_to("/token").len(), 1);
}

#[tokio::test]
async fn a_use_of_a_fresh_sealed_access_token_reads_no_vault() {
    let app = crate::harness::spawn_app().await;
    let (auth, conn) = connect_sandbox(&app, "ws_novault", "acct_novault").await;
    let a = &app.stack.app;
    let current = a.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value;
    let expected = shared::flows::refresh::tokens_of(a, &current).await.unwrap().access_token;
    // Without the vault's copy, a use still has the item's sealed token.
    a.vault.delete(&current.secret.0).await.unwrap();
    assert_eq!(access_for(&app, &conn).await, expected);
}

#[test]
fn a_sealed_token_that_does_not_open_is_renewed_and_said_once() {
    let (logs, ()) = crate::logs::captured(async {
        let (fake, app) = rotating_platform().await;
        let a = &app.stack.app;
        let auth = seed(&app, "ws_unsealable", Some(3600)).await;
        let other = seed(&app, "ws_unsealable", Some(3600)).await;
        shared::flows::refresh::refresh(a, &auth.workspace_id, &auth.id, None).await.unwrap();
        shared::flows::refresh::refresh(a, &other.workspace_id, &other.id, None).await.unwrap();
        // An altered item: the sealed token of another grant, bound to it.
        let mut altered = a.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap();
        altered.value.access = reload_auth(&app, &other).await.access;
        a.repo.save(&altered.value, altered.version).await.unwrap();
        let before = fake.requests_to("/token").len();
        assert_eq!(access_for(&app, &used_by(&app, &auth)).await, "at-3", "renewed, never the other grant's token");
        assert_eq!(fake.requests_to("/token").len(), before + 1);
    });
    assert_eq!(logs.matches("did not open").count(), 1, "{logs}");
}

#[tokio::test]
async fn a_refresh_whose_item_write_was_lost_is_mended_by_the_next_401() {
    // The vault keeps a rotating grant's refresh token without the access
    // token; if the item's write after a refresh was lost, the item still
    // holds the access token before it. Its 401 must renew the grant from
    // the vault, not take the vault's empty access token for a fresh one.
    let (fake, app) = rotating_platform().await;
    let a = &app.stack.app;
    let auth = seed(&app, "ws_lost_item", Some(3600)).await;
    shared::flows::refresh::refresh(a, &auth.workspace_id, &auth.id, None).await.unwrap();
    let after_first = reload_auth(&app, &auth).await;
    app.clock.advance(Duration::minutes(1));
    shared::flows::refresh::refresh(a, &auth.workspace_id, &auth.id, None).await.unwrap();
    let mut lost = a.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap();
    lost.value.access = after_first.access.clone();
    a.repo.save(&lost.value, lost.version).await.unwrap();
    assert_eq!(fake.requests_to("/token").len(), 2);
    let fresh = shared::flows::refresh::refresh(a, &auth.workspace_id, &auth.id, Some("at-2")).await.unwrap();
    assert_eq!((fresh.access_token.as_str(), fresh.refresh_token.as_deref()), ("at-4", Some("rt-4")));
}

#[tokio::test]
async fn long_lived_tokens_warn_ahead_then_disconnect_at_expiry() {
    let fake = FakePlatform::start(|r: &Recorded| match r.path.as_str() {
        "/me" => Reply::Json(200, json!({"id": "1"})),
        _ => Reply::Json(400, json!({})),
    })
    .await;
    let app = fake_app(&fake, json!({"kind": "long_lived_exchange", "long_lived_seconds": 5184000}), json!({})).await;
    let auth = seed(&app, "ws_ll", Some(60 * 86400)).await;
    // Daily probes while far from the end.
    app.clock.advance(Duration::days(1));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().probed, 1);
    app.clock.advance(Duration::days(53) + Duration::hours(1));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!(report.expiring_alerts, 1, "{report:?}");
    let alerts = drain_alerts(&app).await;
    assert_eq!(alerts[0]["type"], "expiring_soon");
    // Once: the following days probe but do not warn again.
    for _ in 0..5 {
        app.clock.advance(Duration::days(1));
        let r = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
        assert_eq!(r.expiring_alerts, 0);
    }
    assert!(drain_alerts(&app).await.is_empty());
    app.clock.advance(Duration::days(2));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().disconnected, 1);
    assert_eq!(
        reload_auth(&app, &auth).await.status,
        Status::Disconnected { reason: DisconnectReason::ReauthorizationRequired }
    );
}

#[tokio::test]
async fn grants_without_expiry_are_probed_and_revocation_is_found() {
    let revoked = Arc::new(AtomicBool::new(false));
    let flag = revoked.clone();
    let fake = FakePlatform::start(move |r: &Recorded| match r.path.as_str() {
        "/me" if flag.load(Ordering::SeqCst) => Reply::Json(401, json!({"error": "revoked"})),
        "/me" => Reply::Json(200, json!({"id": "1"})),
        _ => Reply::Json(400, json!({})),
    })
    .await;
    let app = fake_app(&fake, json!({"kind": "none"}), json!({"token_lifetime_seconds": null})).await;
    let auth = seed(&app, "ws_ne", None).await;
    assert!(auth.next_check_at.unwrap() <= app.clock_now() + Duration::hours(24), "never assumed eternal");
    app.clock.advance(Duration::hours(25));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().probed, 1);
    revoked.store(true, Ordering::SeqCst);
    app.clock.advance(Duration::hours(25));
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().disconnected, 1);
    assert_eq!(reload_auth(&app, &auth).await.status, Status::Disconnected { reason: DisconnectReason::TokenRevoked });
    let _: Option<Due> = None;
}

#[tokio::test]
async fn a_refresher_that_died_after_the_rotation_is_found_by_the_sweep_when_its_lease_runs_out() {
    let app = crate::harness::spawn_app().await;
    let (auth, _) = connect_sandbox(&app, "ws_died", "acct_died").await;
    let first = tokens(&app, &auth).await;
    // The platform rotates the refresh token; the worker dies before the
    // vault takes the new one: the vault's token is dead, the lease stays.
    let a = &app.stack.app;
    let (entry, creds) = {
        let entry = a.catalog.get("sandbox_oauth").unwrap();
        (entry, a.app_credentials(entry, &auth.workspace_id).await.unwrap())
    };
    let refresh_token = first.refresh_token.clone().unwrap();
    let grant = shared::platform::token_client::Grant::Refresh { refresh_token: &refresh_token };
    a.token_client().request(entry, &auth.params, &creds, grant).await.unwrap();
    let mut leased = app.stack.app.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap();
    leased.value.refresh_lease = Some(shared::domain::Lease {
        owner: "dead-worker".into(),
        until: shared::ports::Clock::now(app.clock.as_ref()) + Duration::seconds(30),
    });
    app.stack.app.repo.save(&leased.value, leased.version).await.unwrap();
    // The grant is due when the lease runs out, though its next check is
    // far off (a rotating grant is refreshed when used).
    app.clock.advance(Duration::seconds(31));
    let report = shared::flows::sweep::sweep(&app.stack.app).await.unwrap();
    assert_eq!(report.disconnected, 1, "{report:?}");
    assert!(matches!(
        reload_auth(&app, &auth).await.status,
        Status::Disconnected { reason: shared::domain::DisconnectReason::TokenRevoked }
    ));
}

#[tokio::test]
async fn a_secret_whose_item_never_came_is_removed_by_the_sweep() {
    let app = crate::harness::spawn_app().await;
    let a = &app.stack.app;
    let ws = shared::domain::ids::WorkspaceId::parse("ws_orphan").unwrap();
    let lost = a.packs.allocate(&a.config.secret_prefix, &ws, AuthorizationId::generate().as_str()).await.unwrap();
    crate::harness::leave_orphan_secret(&app, &lost, r#"{"access_token":"at-orphan"}"#).await;
    // A grant that did get its item keeps its secret.
    let (auth, _) = connect_sandbox(&app, "ws_orphan", "acct_orphan").await;
    a.repo.put_secret_intent(&auth.secret, shared::ports::Clock::now(app.clock.as_ref())).await.unwrap();
    // Not before its writer is surely done.
    assert_eq!(shared::flows::sweep::sweep(a).await.unwrap().secret_intents_checked, 1);
    assert!(a.vault.get(&lost.0).await.unwrap().is_some());
    app.clock.advance(Duration::minutes(shared::flows::secrets::INTENT_DUE_MINUTES + 1));
    assert_eq!(shared::flows::sweep::sweep(a).await.unwrap().secret_intents_checked, 1);
    assert!(a.vault.get(&lost.0).await.unwrap().is_none(), "the orphan is deleted");
    assert!(a.vault.get(&auth.secret.0).await.unwrap().is_some(), "the held secret stays");
    assert_eq!(shared::flows::sweep::sweep(a).await.unwrap().secret_intents_checked, 0, "each intent once");
}

#[tokio::test]
async fn the_sweep_moves_tokens_stored_before_packing_into_a_pack() {
    // The sandbox's token lasts an hour and rotates; synced every 15
    // minutes its grants are written up to 27 times a day (an hour-long
    // token serves four syncs) and share packs two to a pack. Synced every
    // 12 hours at most, they are written 3 times a day, 18 to a pack.
    let every_sync = crate::harness::spawn_app().await;
    let mut packs = Vec::new();
    for n in 0..3 {
        let (auth, _) = connect_sandbox(&every_sync, &format!("ws_pair{n}"), "acct_pair").await;
        packs.push(shared::store::vault_packs::split(&auth.secret.0).unwrap().0.rsplit('/').next().unwrap().to_owned());
    }
    assert_eq!(packs, ["auth-r2-0", "auth-r2-0", "auth-r2-1"]);
    let app = spawn_app_with(&[("SYNC_INTERVAL_FLOOR_MINUTES", "720")]).await;
    let a = &app.stack.app;
    let (auth, _) = connect_sandbox(&app, "ws_premove", "acct_premove").await;
    let before = tokens(&app, &auth).await;
    // As a deployment from before packs stored it: a secret of its own.
    let own = SecretRef::for_owner(&a.config.secret_prefix, &auth.workspace_id, auth.id.as_str());
    a.vault.put(&own.0, &a.vault.get(&auth.secret.0).await.unwrap().unwrap()).await.unwrap();
    a.vault.delete(&auth.secret.0).await.unwrap();
    let mut old = a.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap();
    old.value.secret = own.clone();
    old.value.next_check_at = Some(shared::ports::Clock::now(app.clock.as_ref()));
    a.repo.save(&old.value, old.version).await.unwrap();

    shared::flows::sweep::sweep(a).await.unwrap();
    let moved = reload_auth(&app, &auth).await;
    assert!(moved.secret.0.contains("/packs/auth-r18-0/"), "{}", moved.secret.0);
    assert!(moved.refresh_lease.is_none());
    assert_eq!(tokens(&app, &moved).await.refresh_token, before.refresh_token, "the same tokens");
    assert!(a.vault.get(&own.0).await.unwrap().is_none(), "the old secret is deleted");
    // Nothing left for the intents' sweep to remove, and the grant works.
    app.clock.advance(Duration::minutes(shared::flows::secrets::INTENT_DUE_MINUTES + 1));
    shared::flows::sweep::sweep(a).await.unwrap();
    assert!(a.vault.get(&moved.secret.0).await.unwrap().is_some());
    shared::flows::refresh::refresh(a, &auth.workspace_id, &auth.id, None).await.unwrap();
    assert_eq!(reload_auth(&app, &auth).await.status, Status::Connected);
}

#[tokio::test]
async fn a_grant_stored_before_sealed_tokens_moves_into_a_pack_without_its_access_token() {
    let app = spawn_app_with(&[("SYNC_INTERVAL_FLOOR_MINUTES", "720")]).await;
    let a = &app.stack.app;
    let (auth, _) = connect_sandbox(&app, "ws_oldest", "acct_oldest").await;
    let before = tokens(&app, &auth).await;
    assert!(!before.access_token.is_empty());
    // As the first deployments stored it: every token whole in a secret of
    // its own, nothing sealed in the item.
    let own = SecretRef::for_owner(&a.config.secret_prefix, &auth.workspace_id, auth.id.as_str());
    a.vault.put(&own.0, &before.to_secret()).await.unwrap();
    a.vault.delete(&auth.secret.0).await.unwrap();
    let mut old = a.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap();
    old.value.secret = own.clone();
    old.value.access = None;
    old.value.next_check_at = Some(shared::ports::Clock::now(app.clock.as_ref()));
    a.repo.save(&old.value, old.version).await.unwrap();

    shared::flows::sweep::sweep(a).await.unwrap();
    let moved = reload_auth(&app, &auth).await;
    assert!(moved.secret.0.contains("/packs/auth-r18-"), "{}", moved.secret.0);
    let copy = TokenSet::from_secret(&a.vault.get(&moved.secret.0).await.unwrap().unwrap()).unwrap();
    assert_eq!(copy.access_token, "", "the pack keeps no renewable access token");
    assert_eq!(copy.refresh_token, before.refresh_token);
    assert!(moved.access.is_some(), "the access token is sealed in the item");
    let now = tokens(&app, &moved).await;
    assert_eq!(
        (now.access_token, now.expires_at),
        (before.access_token, before.expires_at),
        "the same token, still good"
    );
    assert!(a.vault.get(&own.0).await.unwrap().is_none());
}

#[tokio::test]
async fn a_process_reads_the_deployments_app_credentials_once_in_a_while() {
    let app = crate::harness::spawn_app().await;
    let a = &app.stack.app;
    let entry = a.catalog.get("sandbox_oauth").unwrap();
    let ws = WorkspaceId::parse("ws_cache").unwrap();
    let first = a.app_credentials(entry, &ws).await.unwrap();
    // An operator changes the client secret: this process keeps the one it
    // read for APP_CACHE_SECONDS (each sync run and refresh needs the app).
    let name = shared::platform::AppCredentials::secret_ref(&a.config.secret_prefix, entry, &ws);
    let stored = serde_json::json!({"client_id": first.client_id, "client_secret": "rotated"});
    a.vault.put(&name.0, &secrecy::SecretString::from(stored.to_string())).await.unwrap();
    let again = a.app_credentials(entry, &ws).await.unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(again.client_secret.expose_secret(), first.client_secret.expose_secret());
    // A new process reads the new one.
    a.app_cache.lock().unwrap().clear();
    assert_eq!(a.app_credentials(entry, &ws).await.unwrap().client_secret.expose_secret(), "rotated");
}
