//! The sync engine against a fake platform on loopback: every pagination
//! style, resume after a simulated deadline, redelivery, the lease, 429 with
//! Retry-After, 5xx, 401 then refresh, a revoked grant shared by two
//! connections, and a malformed page; embedded and moto (S3, SQS) backends.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::domain::ids::*;
use shared::domain::messages::SyncJob;
use shared::domain::tokens::TokenSet;
use shared::domain::*;
use shared::flows::sync::{Budget, Outcome};
use shared::ports::QueueKind;

use crate::harness::{Backend, FakePlatform, Recorded, Reply, TestApp};

pub(crate) const RECORDS: usize = 25;
const PAGE: usize = 10;

fn record(stream: &str, i: usize) -> Value {
    json!({"id": format!("{stream}-{i:03}"), "updated_at": format!("2026-11-{:02}T00:00:00Z", i % 28 + 1), "n": i})
}

/// The fake platform's data: each stream pages by its own style.
fn serve(r: &Recorded, fail: &Mutex<BTreeMap<String, Vec<Reply>>>, hung: &tokio::sync::Notify) -> Reply {
    // `hang@{cursor}`: the page at that cursor never answers (and says so).
    if let Some(at) = r.query.get("cursor") {
        if fail.lock().unwrap().contains_key(&format!("hang@{at}")) {
            hung.notify_one();
            return Reply::Hang;
        }
    }
    if let Some(queue) = fail.lock().unwrap().get_mut(&r.path) {
        if !queue.is_empty() {
            return queue.remove(0);
        }
    }
    if r.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer good-token") {
        return Reply::Json(401, json!({"error": "unauthorized"}));
    }
    let q = |k: &str| r.query.get(k).and_then(|v| v.parse::<usize>().ok());
    let stream = r.path.trim_start_matches('/');
    let page =
        |start: usize| -> Vec<Value> { (start..(start + PAGE).min(RECORDS)).map(|i| record(stream, i)).collect() };
    match stream {
        "cursor" => {
            let start = q("cursor").unwrap_or(0);
            let next = (start + PAGE < RECORDS).then(|| (start + PAGE).to_string());
            Reply::Json(200, json!({"data": page(start), "next": next, "total": RECORDS}))
        }
        "link" => {
            let start = q("offset").unwrap_or(0);
            let headers = if start + PAGE < RECORDS {
                vec![("link", format!("</link?offset={}>; rel=\"next\"", start + PAGE))]
            } else {
                vec![]
            };
            Reply::JsonWith(200, headers, json!(page(start)))
        }
        "page" => Reply::Json(200, json!({"items": page((q("page").unwrap_or(1) - 1) * PAGE)})),
        "offset" => Reply::Json(200, json!({"items": page(q("offset").unwrap_or(0))})),
        "since" => {
            let after = r
                .query
                .get("since_id")
                .map(|s| s.rsplit('-').next().unwrap().parse::<usize>().unwrap() + 1)
                .unwrap_or(0);
            Reply::Json(200, json!({"items": page(after)}))
        }
        "single" => Reply::Json(200, json!({"items": page(0)})),
        // A GraphQL connection (Shopify's shape): the page cursor comes back
        // as $after in the variables.
        "graphql" => {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            let start = body["variables"]["after"].as_str().and_then(|a| a.parse().ok()).unwrap_or(0usize);
            let more = start + PAGE < RECORDS;
            Reply::Json(
                200,
                json!({"data": {"items": {"nodes": page(start),
                "pageInfo": {"hasNextPage": more, "endCursor": (start + PAGE).to_string()}}}}),
            )
        }
        // TikTok's shape: errors answer 200 with a code.
        "tiktok" => Reply::Json(200, json!({"code": 0, "message": "OK", "data": {"list": page(0)}})),
        // The newest record first (in another time zone), then older ones,
        // then no content at all.
        "mixed" => match q("cursor") {
            None => Reply::Json(
                200,
                json!({"data": [
                {"id": "m-0", "updated_at": "2026-11-05T10:00:00-05:00"},
                {"id": "m-1", "updated_at": "2026-11-05T09:00:00Z"}], "next": "1"}),
            ),
            Some(1) => {
                Reply::Json(200, json!({"data": [{"id": "m-2", "updated_at": "2026-11-05T14:00:00Z"}], "next": "2"}))
            }
            _ => Reply::Empty(204),
        },
        // Snapchat's shape: each record inside a wrapper with a status.
        "wrapped" => Reply::Json(
            200,
            json!({"request_status": "SUCCESS", "organizations": page(0).into_iter()
            .map(|r| json!({"sub_request_status": "SUCCESS", "organization": r})).collect::<Vec<_>>()}),
        ),
        "evil" => Reply::JsonWith(
            200,
            vec![("link", "<http://127.0.0.2:9/steal>; rel=\"next\"".into())],
            json!([record("evil", 0)]),
        ),
        "me" => Reply::Json(200, json!({"id": "acct_sync"})),
        _ => Reply::Json(404, json!({})),
    }
}

pub(crate) struct Setup {
    pub(crate) app: TestApp,
    pub(crate) fake: FakePlatform,
    pub(crate) fail: Arc<Mutex<BTreeMap<String, Vec<Reply>>>>,
    pub(crate) token_requests: Arc<AtomicUsize>,
    /// Notified when a page starts hanging.
    hung: Arc<tokio::sync::Notify>,
}

pub(crate) async fn setup(backend: Backend, streams: &[&str]) -> Setup {
    setup_with(backend, streams, json!({})).await
}

/// As `setup`, with more of the platform's `api` declared (an error
/// envelope, refresh on 403).
pub(crate) async fn setup_with(backend: Backend, streams: &[&str], api_extra: Value) -> Setup {
    setup_env(backend, streams, api_extra, &[]).await
}

/// As `setup_with`, with more of the deployment's settings.
pub(crate) async fn setup_env(backend: Backend, streams: &[&str], api_extra: Value, env: &[(&str, &str)]) -> Setup {
    setup_ports(backend, streams, api_extra, env, |_| {}).await
}

/// As `setup_env`, with the app's ports wrapped (fault injection).
pub(crate) async fn setup_ports(
    backend: Backend,
    streams: &[&str],
    api_extra: Value,
    env: &[(&str, &str)],
    wrap: impl FnOnce(&mut shared::wiring::Ports),
) -> Setup {
    setup_ports_http(backend, streams, api_extra, env, wrap, |http| http).await
}

/// [`setup_ports`], with the platform HTTP client wrapped too.
pub(crate) async fn setup_ports_http(
    backend: Backend,
    streams: &[&str],
    api_extra: Value,
    env: &[(&str, &str)],
    wrap: impl FnOnce(&mut shared::wiring::Ports),
    wrap_http: impl FnOnce(Arc<dyn shared::ports::PlatformHttp>) -> Arc<dyn shared::ports::PlatformHttp>,
) -> Setup {
    let fail: Arc<Mutex<BTreeMap<String, Vec<Reply>>>> = Arc::default();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let (f, t) = (fail.clone(), token_requests.clone());
    let hung = Arc::new(tokio::sync::Notify::new());
    let h = hung.clone();
    let refresh_mode = fail.clone();
    let fake = FakePlatform::start(move |r: &Recorded| {
        if r.path == "/token" {
            t.fetch_add(1, Ordering::SeqCst);
            if refresh_mode.lock().unwrap().contains_key("revoked") {
                return Reply::Json(400, json!({"error": "invalid_grant"}));
            }
            return Reply::Json(
                200,
                json!({"access_token": "good-token", "refresh_token": "rt-2", "expires_in": 3600}),
            );
        }
        serve(r, &f, &h)
    })
    .await;
    let all = json!([
        {"name": "cursor", "path": "/cursor", "records_pointer": "/data", "pagination": {"style": "cursor_in_body", "next_pointer": "/next", "param": "cursor"}, "cursor_field": "updated_at", "cursor_param": "updated_since", "total_pointer": "/total"},
        {"name": "link", "path": "/link", "records_pointer": "", "pagination": {"style": "link_header"}},
        {"name": "page", "path": "/page", "records_pointer": "/items", "pagination": {"style": "page_number", "param": "page", "start": 1}, "page_size": 10},
        {"name": "offset", "path": "/offset", "records_pointer": "/items", "pagination": {"style": "offset", "param": "offset"}, "page_size": 10},
        {"name": "since", "path": "/since", "records_pointer": "/items", "pagination": {"style": "since_id", "param": "since_id", "id_field": "id"}, "page_size": 10},
        {"name": "windowed", "path": "/cursor", "records_pointer": "/data", "pagination": {"style": "cursor_in_body", "next_pointer": "/next", "param": "cursor"}, "cursor_field": "updated_at", "cursor_param": "updated_since", "initial_window": true, "default_selected": false},
        {"name": "alone", "path": "/cursor", "records_pointer": "/data", "pagination": {"style": "cursor_in_body", "next_pointer": "/next", "param": "cursor", "alone": true}, "cursor_field": "updated_at", "cursor_param": "updated_since", "initial_window": true, "page_size_param": "limit", "page_size": 10, "default_selected": false},
        {"name": "gql", "path": "/graphql", "graphql": {"query": "query Items($first: Int!, $after: String, $query: String) { items(first: $first, after: $after, query: $query) { nodes { id updated_at } pageInfo { hasNextPage endCursor } } }", "root_field": "items", "filter": "updated_at:>'{cursor}'"}, "records_pointer": "/data/items/nodes", "pagination": {"style": "graphql_cursor", "end_cursor_pointer": "/data/items/pageInfo/endCursor", "has_next_pointer": "/data/items/pageInfo/hasNextPage"}, "cursor_field": "updated_at", "page_size": 10, "default_selected": false},
        {"name": "credq", "path": "/single", "records_pointer": "/items", "pagination": {"style": "none"}, "credential_query": {"app_id": "{client_id}", "secret": "{client_secret}"}, "default_selected": false},
        {"name": "tiktok", "path": "/tiktok", "records_pointer": "/data/list", "pagination": {"style": "none"}, "default_selected": false},
        {"name": "single", "path": "/single", "records_pointer": "/items", "pagination": {"style": "none"}},
        {"name": "mixed", "path": "/mixed", "records_pointer": "/data", "pagination": {"style": "cursor_in_body", "next_pointer": "/next", "param": "cursor"}, "cursor_field": "updated_at", "cursor_param": "updated_since", "default_selected": false},
        {"name": "wrapped", "path": "/wrapped", "records_pointer": "/organizations", "record_pointer": "/organization", "pagination": {"style": "none"}, "default_selected": false},
        {"name": "evil", "path": "/evil", "records_pointer": "", "pagination": {"style": "link_header"}, "default_selected": false}
    ]);
    let overrides = json!({"platforms": {"sandbox_oauth": {
        "oauth": {"authorize_url": format!("{}/authorize", fake.base), "token_url": format!("{}/token", fake.base)},
        "api": {"base_url": fake.base, "auth_header": ["Authorization", "Bearer {access_token}"],
                "error_envelope": api_extra.get("error_envelope"), "refresh_on_forbidden": api_extra.get("refresh_on_forbidden").cloned().unwrap_or(json!(false)),
                "rate_limit_header": api_extra.get("rate_limit_header"), "query_cost": api_extra.get("query_cost")},
        "streams": all}}})
    .to_string();
    let mut settings = vec![("CATALOG_OVERRIDES", overrides.as_str())];
    settings.extend_from_slice(env);
    let app = crate::harness::spawn_app_wrapped_http(backend, &settings, wrap, wrap_http).await;
    let _ = streams;
    Setup { app, fake, fail, token_requests, hung }
}

/// An OAuth authorization (with tokens in the vault) and `n` connections
/// that share it.
pub(crate) async fn connect(
    s: &Setup,
    ws: &str,
    access: &str,
    n: usize,
    streams: &[&str],
) -> (Authorization, Vec<Connection>) {
    let app = &s.app.stack.app;
    let now = s.app.clock_now();
    let ws = WorkspaceId::parse(ws).unwrap();
    let id = AuthorizationId::generate();
    let secret = SecretRef::for_owner(&app.config.secret_prefix, &ws, id.as_str());
    let tokens = TokenSet {
        access_token: access.into(),
        refresh_token: Some("rt-1".into()),
        expires_at: None,
        refresh_expires_at: None,
        scopes: vec!["read".into()],
        obtained_at: now,
        token_secret: None,
    };
    app.vault.put(&secret.0, &tokens.to_secret()).await.unwrap();
    let auth = Authorization {
        id: id.clone(),
        workspace_id: ws.clone(),
        platform: PlatformId::parse("sandbox_oauth").unwrap(),
        name: "Shared grant".into(),
        account: None,
        scopes: vec!["read".into()],
        params: BTreeMap::new(),
        status: Status::Connected,
        expiry: TokenExpiry::default(),
        next_check_at: None,
        secret,
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
    app.repo.create(&auth).await.unwrap();
    let mut connections = Vec::new();
    for i in 0..n {
        let mut c = Connection::new(
            ws.clone(),
            auth.platform.clone(),
            format!("Source {i}"),
            ConnectionRole::Source,
            Some(ClientRef { id: ClientId::parse(&format!("client_{i}")).unwrap(), name: format!("Client {i}") }),
            Credential::Authorization { authorization_id: id.clone() },
            streams.iter().map(|s| StreamSelection { name: s.to_string(), selected: true }).collect(),
            UserId::parse("u").unwrap(),
            now,
        );
        // Accepted through the state machine, as the connect flows do (its
        // first sync's safety-net slot included).
        c.status = Status::PendingAuthorization;
        c.apply(Event::CredentialsAccepted, now).unwrap();
        app.repo.create(&c).await.unwrap();
        connections.push(c);
    }
    (auth, connections)
}

fn budget() -> Budget {
    Budget::until(Instant::now() + Duration::from_secs(600))
}

/// A budget no test run exhausts.
pub(crate) fn budget_for_tests() -> Budget {
    budget()
}

async fn run(s: &Setup, c: &Connection, budget: Budget) -> Result<Outcome, shared::Error> {
    shared::flows::sync::run_job(&s.app.stack.app, &SyncJob::start(c), budget).await
}

pub(crate) async fn reload(s: &Setup, c: &Connection) -> Connection {
    s.app.stack.app.repo.connection(&c.workspace_id, &c.id).await.unwrap().value
}

pub(crate) async fn stored_records(s: &Setup, c: &Connection, stream: &str) -> Vec<Value> {
    let sink = &s.app.stack.app.sink;
    let prefix = format!("records/{}/{}/{stream}/", c.workspace_id, c.id);
    let mut out = Vec::new();
    for key in sink.list(&prefix).await.unwrap() {
        let bytes = sink.get(&key).await.unwrap().unwrap();
        out.extend(
            bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice::<Value>(l).unwrap()),
        );
    }
    out
}

const STYLES: [&str; 6] = ["cursor", "link", "page", "offset", "since", "single"];

both!(
    every_pagination_style_syncs_every_record_once,
    a_deadline_stops_cleanly_and_the_continuation_resumes,
    every_run_is_kept_in_the_connections_history_newest_first_and_paged,
    a_connection_with_no_success_for_three_intervals_is_stale_alerts_once_and_recovers,
);

async fn every_pagination_style_syncs_every_record_once(backend: Backend) {
    let s = setup(backend, &STYLES).await;
    let (_, cs) = connect(&s, "ws_sync", "good-token", 1, &STYLES).await;
    let c = &cs[0];
    assert_eq!(run(&s, c, budget()).await.unwrap(), Outcome::Completed);
    for stream in STYLES {
        let records = stored_records(&s, c, stream).await;
        let expected = if stream == "single" { PAGE } else { RECORDS };
        assert_eq!(records.len(), expected, "{stream}");
        let ids: std::collections::BTreeSet<_> = records.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), expected, "{stream}: no duplicates");
    }
    let after = reload(&s, c).await;
    assert_eq!(after.status, Status::Connected);
    assert!(after.initial_sync_done && after.last_synced_at.is_some() && after.running.is_none());
    let cursor = &after.cursors["cursor"];
    assert_eq!((cursor.records, cursor.pages, cursor.total, cursor.complete), (25, 3, Some(25), true));
    assert_eq!(
        cursor.cursor.as_deref(),
        Some("2026-11-25T00:00:00Z"),
        "the incremental cursor is the largest updated_at"
    );
    // The progress shows on the API.
    let t = s.app.token("ws_sync", "u", "staff").await;
    let view: Value = s.app.get_json(&format!("/v1/connections/{}", c.id), &t).await;
    assert_eq!(view["progress"]["cursor"]["percent"], 100);
    assert_eq!(view["status"]["state"], "connected");
}

async fn a_deadline_stops_cleanly_and_the_continuation_resumes(backend: Backend) {
    let s = setup(backend, &["cursor", "page"]).await;
    let (_, cs) = connect(&s, "ws_dl", "good-token", 1, &["cursor", "page"]).await;
    let c = &cs[0];
    let one_page = Budget { deadline: Instant::now() + Duration::from_secs(600), max_pages: Some(1) };
    assert_eq!(run(&s, c, one_page).await.unwrap(), Outcome::Continued { delay_seconds: 0 });
    let mid = reload(&s, c).await;
    assert_eq!(mid.status, Status::InitialSyncInProgress);
    assert_eq!(mid.cursors["cursor"].records_this_run, 10, "progress saved");
    assert!(mid.running.is_some());
    // Follow the continuations, one page each, as the queue delivers them.
    let queue = &s.app.stack.app.queue;
    let mut jobs_run = 0;
    loop {
        let messages = queue.receive(QueueKind::Sync, 10, 60).await.unwrap();
        let Some(m) = messages.first() else { break };
        let job: SyncJob = serde_json::from_str(&m.body).unwrap();
        let outcome = shared::flows::sync::run_job(&s.app.stack.app, &job, one_page).await.unwrap();
        queue.ack(QueueKind::Sync, &m.receipt).await.unwrap();
        jobs_run += 1;
        if outcome == Outcome::Completed {
            // Redelivered after it completed: harmless.
            assert_eq!(
                shared::flows::sync::run_job(&s.app.stack.app, &job, one_page).await.unwrap(),
                Outcome::Skipped("a continuation of a run that is over")
            );
        }
        assert!(jobs_run < 20);
    }
    assert_eq!(reload(&s, c).await.status, Status::Connected);
    assert_eq!(stored_records(&s, c, "cursor").await.len(), RECORDS);
    assert_eq!(stored_records(&s, c, "page").await.len(), RECORDS);
    // No page fetched twice: 3 pages each.
    assert_eq!(s.fake.requests_to("/cursor").len(), 3);
    assert_eq!(s.fake.requests_to("/page").len(), 3);
}

#[tokio::test]
async fn a_held_lease_keeps_a_second_worker_off() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_lease", "good-token", 1, &["cursor"]).await;
    let c = &cs[0];
    // Another worker holds the lease.
    let lease = shared::ports::Item {
        pk: format!("WS#{}", c.workspace_id),
        sk: format!("SYNCLEASE#{}", c.id),
        version: 1,
        body: json!({"owner": "other", "until": (s.app.clock_now() + chrono::Duration::minutes(5)).to_rfc3339()}),
        due: None,
        expires_at: None,
        list_key: None,
    };
    s.app.stack.app.repo.store().put(&lease, shared::ports::Precondition::Absent).await.unwrap();
    assert_eq!(run(&s, c, budget()).await.unwrap(), Outcome::Busy);
    assert!(s.fake.requests_to("/cursor").is_empty());
    // The job is not done: the worker reports it failed, so SQS delivers it
    // again later instead of deleting it, and the connection shows no error.
    let job = SyncJob::start(c);
    let err = shared::entry::lambda::run_sync_job(&s.app.stack.app, job, budget()).await.unwrap_err();
    assert!(matches!(err, shared::Error::SyncInProgress), "{err}");
    assert_eq!(reload(&s, c).await.status, Status::InitialSyncInProgress);
    // Once it expires, the connection is free again.
    s.app.clock.advance(chrono::Duration::minutes(6));
    assert_eq!(run(&s, c, budget()).await.unwrap(), Outcome::Completed);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out_within_bounds() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_429", "good-token", 1, &["cursor"]).await;
    let c = &cs[0];
    s.fail.lock().unwrap().insert(
        "/cursor".into(),
        vec![Reply::JsonWith(429, vec![("retry-after", "1".into())], json!({})), Reply::Json(503, json!({}))],
    );
    assert_eq!(run(&s, c, budget()).await.unwrap(), Outcome::Completed);
    assert_eq!(s.fake.requests_to("/cursor").len(), 5, "two refusals, then three pages");

    // A long Retry-After: stop, and continue later with that delay.
    let (_, cs) = connect(&s, "ws_429b", "good-token", 1, &["cursor"]).await;
    s.fail
        .lock()
        .unwrap()
        .insert("/cursor".into(), vec![Reply::JsonWith(429, vec![("retry-after", "120".into())], json!({}))]);
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Continued { delay_seconds: 120 });
    assert!(
        s.app.stack.app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap().is_empty(),
        "the continuation waits 120 s"
    );

    // 5xx past the bound: the job fails, the connection shows the error.
    let (_, cs) = connect(&s, "ws_5xx", "good-token", 1, &["cursor"]).await;
    s.fail.lock().unwrap().insert("/cursor".into(), (0..5).map(|_| Reply::Json(500, json!({}))).collect());
    let job = SyncJob::start(&cs[0]);
    assert!(shared::entry::lambda::run_sync_job(&s.app.stack.app, job, budget()).await.is_err());
    let failed = reload(&s, &cs[0]).await;
    assert_eq!(failed.status, Status::Error { reason: FailureReason::PlatformUnavailable });
    assert!(failed.last_error.unwrap().message.contains("unavailable"));
    let messages = alert_events(&s).await;
    let alerts: Vec<Value> = messages.iter().map(|m| serde_json::to_value(m).unwrap()).collect();
    assert!(alerts.iter().any(|a| a["type"] == "sync_failed" && a["connection_id"] == cs[0].id.as_str()));
    let types = crate::published::published_types(&messages);
    assert!(
        types.contains(&"sync.failed".to_owned()) && types.contains(&"connection.status_changed".to_owned()),
        "{types:?}"
    );
}

#[tokio::test]
async fn a_401_refreshes_once_through_the_shared_path() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (auth, cs) = connect(&s, "ws_401", "expired-token", 1, &["cursor"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 1);
    let current = s.app.stack.app.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value;
    let tokens = shared::flows::refresh::tokens_of(&s.app.stack.app, &current).await.unwrap();
    assert_eq!(
        (tokens.access_token.as_str(), tokens.refresh_token.as_deref()),
        ("good-token", Some("rt-2")),
        "the rotated refresh token is stored"
    );
    let vault = s.app.stack.app.vault.get(&current.secret.0).await.unwrap().unwrap();
    let stored = shared::domain::tokens::TokenSet::from_secret(&vault).unwrap();
    assert_eq!(
        (stored.access_token.as_str(), stored.refresh_token.as_deref()),
        ("", Some("rt-2")),
        "the access token only sealed"
    );
    let auth_now = s.app.stack.app.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value;
    assert!(auth_now.refresh_lease.is_none() && auth_now.last_refreshed_at.is_some());
}

#[tokio::test]
async fn a_revoked_grant_disconnects_every_connection_that_uses_it() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (auth, cs) = connect(&s, "ws_rev", "expired-token", 2, &["cursor"]).await;
    s.fail.lock().unwrap().insert("revoked".into(), vec![]);
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Disconnected(DisconnectReason::TokenRevoked));
    let app = &s.app.stack.app;
    assert_eq!(
        app.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value.status,
        Status::Disconnected { reason: DisconnectReason::TokenRevoked }
    );
    for c in &cs {
        let now = reload(&s, c).await;
        assert_eq!(now.status, Status::Disconnected { reason: DisconnectReason::TokenRevoked }, "{}", c.name);
        assert_eq!(now.last_error.unwrap().code, "token_revoked");
    }
    let alerts: Vec<String> = crate::harness::drain_notify(app).await.0.iter().map(|a| a.to_string()).collect();
    assert_eq!(alerts.len(), 1, "one alert for the grant");
    assert!(alerts[0].contains("authorization_disconnected") && cs.iter().all(|c| alerts[0].contains(c.id.as_str())));
    // The second connection's job finds nothing to do.
    assert!(matches!(run(&s, &cs[1], budget()).await.unwrap(), Outcome::Skipped(_)));
}

#[tokio::test]
async fn a_malformed_page_is_an_error_naming_the_page() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_mal", "good-token", 1, &["cursor"]).await;
    s.fail.lock().unwrap().insert("/cursor".into(), vec![Reply::Json(200, json!({"data": "not a list"}))]);
    let job = SyncJob::start(&cs[0]);
    let err = shared::entry::lambda::run_sync_job(&s.app.stack.app, job, budget()).await.unwrap_err();
    assert!(err.to_string().contains("cursor page 1"), "{err}");
    let failed = reload(&s, &cs[0]).await;
    assert_eq!(failed.status, Status::Error { reason: FailureReason::MalformedResponse });
    assert!(failed.last_error.unwrap().message.contains("cursor page 1"));
    // Nothing it left behind blocks the next run: sync now is accepted.
    let t = s.app.token("ws_mal", "u", "staff").await;
    let r =
        s.app.http.post(s.app.url(&format!("/v1/connections/{}/sync", cs[0].id))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 202);
    local_stack::workers::drain(&s.app.stack, QueueKind::Sync).await.unwrap();
    assert_eq!(reload(&s, &cs[0]).await.status, Status::Connected);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let s = setup(Backend::Embedded, &["evil"]).await;
    let (_, cs) = connect(&s, "ws_evil", "good-token", 1, &["evil"]).await;
    let job = SyncJob::start(&cs[0]);
    // The platform's fault, which retrying cannot fix: recorded on the
    // connection with its own code, and the job is done (not retried into
    // the dead-letter queue).
    shared::entry::lambda::run_sync_job(&s.app.stack.app, job, budget()).await.unwrap();
    let c = reload(&s, &cs[0]).await;
    assert_eq!(c.status, Status::Error { reason: FailureReason::NextPageOnAnotherHost });
    let last = c.last_error.unwrap();
    assert_eq!(last.code, "next_page_on_another_host");
    assert!(last.message.contains("another host"), "{}", last.message);
    assert_eq!(s.fake.requests_to("/evil").len(), 1, "the foreign link was not followed");
    let alerts = crate::harness::drain_notify(&s.app.stack.app).await.0;
    assert!(alerts.iter().any(|m| m.to_string().contains("next_page_on_another_host")));
}

#[tokio::test]
async fn sync_now_queues_a_run_from_the_cursors() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_now", "good-token", 1, &["cursor"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let t = s.app.token("ws_now", "u", "staff").await;
    let r =
        s.app.http.post(s.app.url(&format!("/v1/connections/{}/sync", cs[0].id))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let jobs = s.app.stack.app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap();
    assert!(jobs[0].body.contains("incremental"));
    // The incremental run asks from the saved cursor.
    let job: SyncJob = serde_json::from_str(&jobs[0].body).unwrap();
    shared::flows::sync::run_job(&s.app.stack.app, &job, budget()).await.unwrap();
    s.app.stack.app.queue.ack(QueueKind::Sync, &jobs[0].receipt).await.unwrap();
    let first_of_run = &s.fake.requests_to("/cursor")[3];
    assert_eq!(first_of_run.query.get("updated_since").map(String::as_str), Some("2026-11-25T00:00:00Z"));
    assert_eq!(first_of_run.query.get("cursor"), None, "a new run starts at the first page");
    // While a run is under way, sync now says so.
    let v = s.app.stack.app.repo.connection(&cs[0].workspace_id, &cs[0].id).await.unwrap();
    let mut running = v.value;
    running.running = Some(RunInfo {
        id: SyncRunId::generate(),
        kind: SyncKind::Incremental,
        started_at: s.app.clock_now(),
        trigger: None,
    });
    s.app.stack.app.repo.save(&running, v.version).await.unwrap();
    let (ws, id) = (&cs[0].workspace_id, &cs[0].id);
    let ttl = chrono::Duration::minutes(2);
    s.app.stack.app.repo.acquire_sync_lease(ws, id, "a-live-worker", s.app.clock_now(), ttl).await.unwrap().unwrap();
    let r =
        s.app.http.post(s.app.url(&format!("/v1/connections/{}/sync", cs[0].id))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(crate::harness::error_code(&r.json().await.unwrap()), "sync_in_progress");
    // Once the worker's lease has expired (it died), sync now continues
    // the interrupted run instead of answering 409 forever.
    s.app.clock.advance(chrono::Duration::minutes(3));
    let r =
        s.app.http.post(s.app.url(&format!("/v1/connections/{}/sync", cs[0].id))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let jobs = s.app.stack.app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap();
    let job: SyncJob = serde_json::from_str(&jobs[0].body).unwrap();
    let SyncJob::Sync { run_id, .. } = job;
    assert_eq!(run_id, running.running.as_ref().map(|r| r.id.clone()), "a continuation of the interrupted run");
}

/// Kills a worker while it waits for page 2 of the `cursor` stream: the
/// batch's future is dropped, so nothing is released or acknowledged.
async fn kill_worker_at_page_2(s: &Setup) {
    s.fail.lock().unwrap().insert("hang@10".into(), vec![]);
    tokio::select! {
        _ = local_stack::workers::run_batch(&s.app.stack, QueueKind::Sync) => panic!("page 2 should hang"),
        _ = s.hung.notified() => {}
    }
    s.fail.lock().unwrap().remove("hang@10");
}

/// Every record of the stream, each exactly once, and page 1 fetched once.
async fn assert_written_once(s: &Setup, c: &Connection) {
    let records = stored_records(s, c, "cursor").await;
    let mut ids: Vec<String> = records.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("cursor-{i:03}")).collect();
    assert_eq!(ids, expected, "every record exactly once");
    let first_pages = s.fake.requests_to("/cursor").iter().filter(|r| !r.query.contains_key("cursor")).count();
    assert_eq!(first_pages, 1, "the run continued from its saved page");
    let c = reload(s, c).await;
    assert_eq!(c.status, Status::Connected);
    assert!(c.running.is_none());
}

#[tokio::test]
async fn a_worker_killed_between_pages_is_taken_over_and_the_run_completes_once() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_crash", "good-token", 1, &["cursor"]).await;
    s.app.stack.app.send(&SyncJob::start(&cs[0]), 0).await.unwrap();
    kill_worker_at_page_2(&s).await;
    assert_eq!(stored_records(&s, &cs[0], "cursor").await.len(), PAGE, "page 1 was written before the kill");
    // Time passes: the message becomes visible again; the dead worker's
    // lease expires and the next delivery takes over.
    let visibility = chrono::Duration::seconds(i64::from(local_stack::workers::VISIBILITY_SECONDS) + 1);
    for _ in 0..3 {
        s.app.clock.advance(visibility);
        local_stack::workers::drain(&s.app.stack, QueueKind::Sync).await.unwrap();
    }
    assert_written_once(&s, &cs[0]).await;
}

#[tokio::test]
async fn the_sweep_requeues_a_run_whose_worker_died_and_whose_message_was_lost() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_lost", "good-token", 1, &["cursor"]).await;
    let app = &s.app.stack.app;
    app.send(&SyncJob::start(&cs[0]), 0).await.unwrap();
    kill_worker_at_page_2(&s).await;
    // The message is gone (dead-lettered, or deleted by mistake).
    s.app.clock.advance(chrono::Duration::seconds(i64::from(local_stack::workers::VISIBILITY_SECONDS) + 1));
    for m in app.queue.receive(QueueKind::Sync, 10, 60).await.unwrap() {
        app.queue.ack(QueueKind::Sync, &m.receipt).await.unwrap();
    }
    // Within the stall window the sweep leaves the run alone...
    assert_eq!(shared::flows::sweep::sweep(app).await.unwrap().stalled_runs_requeued, 0);
    // ...after it, the run is re-queued once, and completes.
    s.app.clock.advance(chrono::Duration::minutes(shared::domain::policy::RUN_STALL_MINUTES));
    assert_eq!(shared::flows::sweep::sweep(app).await.unwrap().stalled_runs_requeued, 1);
    assert_eq!(shared::flows::sweep::sweep(app).await.unwrap().stalled_runs_requeued, 0, "once per stall window");
    local_stack::workers::drain(&s.app.stack, QueueKind::Sync).await.unwrap();
    assert_written_once(&s, &cs[0]).await;
    // A finished run leaves the index: nothing more to look at.
    s.app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(shared::flows::sweep::sweep(app).await.unwrap().stalled_runs_requeued, 0);
}

#[tokio::test]
async fn wrapped_records_are_stored_without_their_wrappers() {
    let s = setup(Backend::Embedded, &["wrapped"]).await;
    let (_, cs) = connect(&s, "ws_wrap", "good-token", 1, &["wrapped"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let records = stored_records(&s, &cs[0], "wrapped").await;
    assert_eq!(records.len(), PAGE);
    assert_eq!(records[0]["id"], "wrapped-000", "the record, not its wrapper");
    assert!(records[0].get("sub_request_status").is_none());
}

#[tokio::test]
async fn the_cursor_is_the_latest_of_the_whole_run_and_no_content_ends_the_stream() {
    let s = setup(Backend::Embedded, &["mixed"]).await;
    let (_, cs) = connect(&s, "ws_mixed", "good-token", 1, &["mixed"]).await;
    // Page 3 answers 204 with no body: the end, not a malformed page.
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let c = reload(&s, &cs[0]).await;
    // 10:00-05:00 is 15:00Z: later than 14:00Z on the last page with
    // records, and than 09:00Z beside it (text order would say otherwise).
    assert_eq!(c.cursors["mixed"].cursor.as_deref(), Some("2026-11-05T10:00:00-05:00"));
    assert_eq!(stored_records(&s, &cs[0], "mixed").await.len(), 3);
    // The next run asks from it, in the platform's own format.
    let job = SyncJob::start(&c);
    shared::flows::sync::run_job(&s.app.stack.app, &job, budget()).await.unwrap();
    let asked =
        s.fake.requests_to("/mixed").into_iter().filter(|r| r.query.contains_key("updated_since")).collect::<Vec<_>>();
    assert_eq!(asked[0].query["updated_since"], "2026-11-05T10:00:00-05:00");
}

/// Shopify's GraphQL Admin API, as its rate-limit documentation describes
/// it: errors in a 200 body with `extensions.code`, and the cost budget in
/// `extensions.cost`.
fn shopify_graphql() -> Value {
    json!({
        "error_envelope": {"code_pointer": "/errors/0/extensions/code", "throttled_codes": ["THROTTLED"], "denied_codes": ["ACCESS_DENIED"]},
        "query_cost": {"requested_pointer": "/extensions/cost/requestedQueryCost", "available_pointer": "/extensions/cost/throttleStatus/currentlyAvailable", "restore_rate_pointer": "/extensions/cost/throttleStatus/restoreRate"}
    })
}

fn shopify_error(code: &str, message: &str, available: f64) -> Reply {
    Reply::Json(
        200,
        json!({
            "errors": [{"message": message, "extensions": {"code": code, "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
            "extensions": {"cost": {"requestedQueryCost": 12, "actualQueryCost": null, "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}}}
        }),
    )
}

#[tokio::test]
async fn shopify_graphql_throttling_waits_for_the_cost_budget_and_access_denied_asks_a_person() {
    let s = setup_with(Backend::Embedded, &["gql"], shopify_graphql()).await;
    let (_, cs) = connect(&s, "ws_sg", "good-token", 1, &["gql"]).await;
    // THROTTLED in a 200: waited out (the budget lacks 2 points at 100/s:
    // 20 ms), then the pages, and no error body stored as records.
    s.fail.lock().unwrap().insert("/graphql".into(), vec![shopify_error("THROTTLED", "Throttled", 10.0)]);
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    assert_eq!(stored_records(&s, &cs[0], "gql").await.len(), RECORDS);
    assert_eq!(reload(&s, &cs[0]).await.status, Status::Connected);
    // ACCESS_DENIED: a missing permission, shown on the connection, no retry.
    let (_, cs) = connect(&s, "ws_sg2", "good-token", 1, &["gql"]).await;
    let before = s.fake.requests_to("/graphql").len();
    s.fail.lock().unwrap().insert(
        "/graphql".into(),
        vec![shopify_error("ACCESS_DENIED", "Access denied for orders field. Required access: `read_orders`", 1990.0)],
    );
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Failed(FailureReason::PermissionDenied));
    assert_eq!(s.fake.requests_to("/graphql").len(), before + 1);
    // Another code: a platform error, not records.
    let (_, cs) = connect(&s, "ws_sg3", "good-token", 1, &["gql"]).await;
    s.fail.lock().unwrap().insert("/graphql".into(), vec![shopify_error("INTERNAL_SERVER_ERROR", "oops", 1990.0)]);
    assert!(run(&s, &cs[0], budget()).await.is_err());
    assert!(stored_records(&s, &cs[0], "gql").await.is_empty());
}

#[test]
fn the_cost_budget_says_how_long_to_wait() {
    let overrides = json!({"platforms": {"sandbox_oauth": {"api": {"base_url": "https://x.example", "query_cost": shopify_graphql()["query_cost"]}}}});
    let catalog = shared::catalog::Catalog::load(&shared::catalog::CatalogOptions {
        public_base_url: "http://127.0.0.1:3000".into(),
        include_sandbox: true,
        overrides: Some(overrides.to_string()),
    })
    .unwrap();
    let entry = catalog.get("sandbox_oauth").unwrap();
    let body = |available: f64| {
        json!({"data": {}, "extensions": {"cost": {"requestedQueryCost": 52, "throttleStatus": {"currentlyAvailable": available, "restoreRate": 50.0}}}})
            .to_string()
    };
    let wait = |available| shared::platform::cost_wait(entry, body(available).as_bytes()).unwrap();
    assert_eq!(wait(2.0), std::time::Duration::from_secs(1));
    assert_eq!(wait(500.0), std::time::Duration::ZERO);
    assert_eq!(shared::platform::cost_wait(entry, b"{}"), None);
}

fn tiktok_envelope() -> Value {
    json!({"error_envelope": {"code_pointer": "/code", "ok_codes": [0], "revoked_codes": [40105], "throttled_codes": [40100]}})
}

#[tokio::test]
async fn an_error_in_a_200_body_is_read_as_the_platform_means_it() {
    let s = setup_with(Backend::Embedded, &["tiktok"], tiktok_envelope()).await;
    let (_, cs) = connect(&s, "ws_tt", "good-token", 1, &["tiktok"]).await;
    // Throttled (40100 over HTTP 200): waited out, then the records.
    s.fail
        .lock()
        .unwrap()
        .insert("/tiktok".into(), vec![Reply::Json(200, json!({"code": 40100, "message": "Too many requests"}))]);
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    assert_eq!(s.fake.requests_to("/tiktok").len(), 2);
    assert_eq!(stored_records(&s, &cs[0], "tiktok").await.len(), PAGE, "the error body was not stored as records");
    // Revoked (40105 over HTTP 200): one refresh, and a refused one
    // disconnects the grant.
    let (_, cs) = connect(&s, "ws_tt2", "good-token", 1, &["tiktok"]).await;
    s.fail.lock().unwrap().insert("revoked".into(), vec![]);
    s.fail
        .lock()
        .unwrap()
        .insert("/tiktok".into(), vec![Reply::Json(200, json!({"code": 40105, "message": "Access token is expired"}))]);
    let outcome = run(&s, &cs[0], budget()).await.unwrap();
    assert!(matches!(outcome, Outcome::Disconnected(_)), "{outcome:?}");
    assert!(matches!(reload(&s, &cs[0]).await.status, Status::Disconnected { .. }));
    // Another code: a platform error, not records.
    let (_, cs) = connect(&s, "ws_tt3", "good-token", 1, &["tiktok"]).await;
    s.fail.lock().unwrap().remove("revoked");
    s.fail
        .lock()
        .unwrap()
        .insert("/tiktok".into(), vec![Reply::Json(200, json!({"code": 40002, "message": "Invalid param"}))]);
    let err = run(&s, &cs[0], budget()).await.unwrap_err();
    assert!(err.to_string().contains("40002"), "{err}");
}

#[tokio::test]
async fn rate_limiting_that_outlasts_the_retries_continues_later_instead_of_failing() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_slow", "good-token", 1, &["cursor"]).await;
    s.fail.lock().unwrap().insert("/cursor".into(), (0..6).map(|_| Reply::Json(429, json!({}))).collect());
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Continued { delay_seconds: 60 });
    let c = reload(&s, &cs[0]).await;
    assert_eq!(c.status, Status::InitialSyncInProgress, "no failure");
    assert!(c.last_error.is_none());
}

#[tokio::test]
async fn a_403_refreshes_once_where_the_platform_uses_it_for_expired_tokens() {
    let s = setup_with(Backend::Embedded, &["cursor"], json!({"refresh_on_forbidden": true})).await;
    let (_, cs) = connect(&s, "ws_403", "good-token", 1, &["cursor"]).await;
    s.fail
        .lock()
        .unwrap()
        .insert("/cursor".into(), vec![Reply::Json(403, json!({"errors": [{"code": "Unauthorized"}]}))]);
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 1, "one refresh");
    // Without the declaration a 403 is a permission problem.
    let plain = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&plain, "ws_403b", "good-token", 1, &["cursor"]).await;
    plain.fail.lock().unwrap().insert("/cursor".into(), vec![Reply::Json(403, json!({}))]);
    assert_eq!(run(&plain, &cs[0], budget()).await.unwrap(), Outcome::Failed(FailureReason::PermissionDenied));
}

#[tokio::test]
async fn a_first_run_reads_the_history_window_and_a_page_token_goes_alone() {
    let s = setup(Backend::Embedded, &["windowed", "alone"]).await;
    let (_, cs) = connect(&s, "ws_win", "good-token", 1, &["windowed"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let first = &s.fake.requests_to("/cursor")[0];
    let since = (s.app.clock_now() - chrono::Duration::days(730)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(first.query["updated_since"], since, "two years back, as the platform needs a start");
    // A token that must go alone: the later pages carry nothing else.
    let (_, cs) = connect(&s, "ws_alone", "good-token", 1, &["alone"]).await;
    let before = s.fake.requests_to("/cursor").len();
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let asked = &s.fake.requests_to("/cursor")[before..];
    assert!(asked[0].query.contains_key("limit") && asked[0].query.contains_key("updated_since"));
    for later in &asked[1..] {
        assert_eq!(later.query.keys().collect::<Vec<_>>(), vec!["cursor"], "{:?}", later.query);
    }
}

#[tokio::test]
async fn the_platforms_announced_rate_paces_a_connection_and_a_long_wait_continues_later() {
    let s = setup_with(Backend::Embedded, &["cursor"], json!({"rate_limit_header": "x-amzn-RateLimit-Limit"})).await;
    let (_, cs) = connect(&s, "ws_rate", "good-token", 1, &["cursor"]).await;
    // SP-API getOrders: 0.0167 requests a second, a minute apart.
    let first_page =
        json!({"data": (0..PAGE).map(|i| record("cursor", i)).collect::<Vec<_>>(), "next": "10", "total": RECORDS});
    s.fail.lock().unwrap().insert(
        "/cursor".into(),
        vec![Reply::JsonWith(200, vec![("x-amzn-RateLimit-Limit", "0.0167".into())], first_page)],
    );
    let outcome = run(&s, &cs[0], budget()).await.unwrap();
    assert!(
        matches!(outcome, Outcome::Continued { delay_seconds } if (59..=60).contains(&delay_seconds)),
        "{outcome:?}"
    );
    assert_eq!(s.fake.requests_to("/cursor").len(), 1, "no second request before its time");
    assert_eq!(stored_records(&s, &cs[0], "cursor").await.len(), PAGE);
    assert!(reload(&s, &cs[0]).await.last_error.is_none(), "slow, not failed");
}

#[tokio::test]
async fn a_stream_may_send_the_apps_credentials_in_its_query_and_keeps_them_nowhere() {
    // TikTok's advertiser/get takes app_id and secret as query parameters.
    let s = setup(Backend::Embedded, &["credq"]).await;
    let (_, cs) = connect(&s, "ws_credq", "good-token", 1, &["credq"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let asked = &s.fake.requests_to("/single")[0];
    assert_eq!(asked.query["app_id"], "sandbox-client");
    assert_eq!(asked.query["secret"], "sandbox-secret");
    assert!(!s.app.dump_state().await.contains("sandbox-secret"), "the secret is in no stored item");
}

#[test]
fn the_apps_credentials_in_a_query_reach_no_log_line_error_or_item_when_the_platform_fails() {
    let (logs, (last_error, state)) = crate::logs::captured(async {
        let s = setup(Backend::Embedded, &["credq"]).await;
        let (_, cs) = connect(&s, "ws_credq_fail", "good-token", 1, &["credq"]).await;
        let malformed = Reply::Json(200, json!({"items": "not a list"}));
        s.fail.lock().unwrap().insert("/single".into(), vec![malformed]);
        let job = SyncJob::start(&cs[0]);
        assert!(shared::entry::lambda::run_sync_job(&s.app.stack.app, job, budget()).await.is_err());
        assert!(s.fake.requests_to("/single")[0].query.contains_key("secret"), "sent");
        (reload(&s, &cs[0]).await.last_error, s.app.dump_state().await)
    });
    assert_eq!(last_error.as_ref().map(|e| e.code.as_str()), Some("malformed_response"));
    assert!(logs.contains("hyper_util"), "the HTTP stack's own TRACE lines are in what was read");
    for (place, text) in [("logs", logs.as_str()), ("the error", &format!("{last_error:?}")), ("items", &state)] {
        assert!(!text.contains("sandbox-secret"), "the app's secret reached {place}");
    }
}

#[tokio::test]
async fn a_graphql_stream_pages_by_its_end_cursor_and_filters_incremental_runs() {
    let s = setup(Backend::Embedded, &["gql"]).await;
    let (_, cs) = connect(&s, "ws_gql", "good-token", 1, &["gql"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let asked = s.fake.requests_to("/graphql");
    assert_eq!(asked.len(), 3);
    let vars: Vec<Value> =
        asked.iter().map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["variables"].clone()).collect();
    assert!(asked.iter().all(|r| r.method == "POST"));
    assert_eq!(vars[0], json!({"first": 10, "after": null, "query": null}));
    assert_eq!(vars[1]["after"], "10");
    assert_eq!(vars[2]["after"], "20");
    let mut ids: Vec<String> =
        stored_records(&s, &cs[0], "gql").await.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RECORDS, "every record once");
    // The next run asks for what changed since the latest it saw.
    let c = reload(&s, &cs[0]).await;
    shared::flows::sync::run_job(&s.app.stack.app, &SyncJob::start(&c), budget()).await.unwrap();
    let last: Value = serde_json::from_str(&s.fake.requests_to("/graphql")[3].body).unwrap();
    assert_eq!(last["variables"]["query"], format!("updated_at:>'{}'", c.cursors["gql"].cursor.clone().unwrap()));
    assert_eq!(last["variables"]["after"], Value::Null);
}

#[tokio::test]
async fn a_finished_run_schedules_the_next_and_the_scheduler_starts_it_once() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let app = &s.app.stack.app;
    let (_, cs) = connect(&s, "ws_sched", "good-token", 1, &["cursor"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let t0 = s.app.clock_now();
    let c = reload(&s, &cs[0]).await;
    assert_eq!(c.next_sync_at, Some(t0 + chrono::Duration::minutes(60)), "the platform's default interval");
    // Not due yet: nothing is read but what is due, nothing queued.
    let early = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!((early.items_read, early.scheduled), (0, 0));
    // Due: one incremental run, once.
    s.app.clock.advance(chrono::Duration::minutes(61));
    let due = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!((due.items_read, due.scheduled), (1, 1));
    assert_eq!(shared::flows::schedule::tick(app).await.unwrap().scheduled, 0, "the slot was claimed");
    // The job waits the connection's own jitter (within a tenth of the
    // interval), then runs from the cursors.
    s.app.clock.advance(chrono::Duration::minutes(6));
    let before = s.fake.requests_to("/cursor").len();
    local_stack::workers::drain(&s.app.stack, QueueKind::Sync).await.unwrap();
    let asked = &s.fake.requests_to("/cursor")[before..];
    assert!(!asked.is_empty() && asked[0].query.contains_key("updated_since"), "an incremental run");
    let after = reload(&s, &cs[0]).await;
    assert_eq!(after.next_sync_at, Some(s.app.clock_now() + chrono::Duration::minutes(60)));
    assert!(after.last_synced_at > c.last_synced_at);
}

#[tokio::test]
async fn a_disconnected_connection_leaves_the_schedule_and_a_failed_run_is_tried_again_soon() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let app = &s.app.stack.app;
    let (_, cs) = connect(&s, "ws_unsched", "good-token", 2, &["cursor"]).await;
    for c in &cs {
        assert_eq!(run(&s, c, budget()).await.unwrap(), Outcome::Completed);
    }
    // One is disconnected: when it comes due, it is taken off.
    let v = app.repo.connection(&cs[0].workspace_id, &cs[0].id).await.unwrap();
    let mut gone = v.value;
    gone.apply(Event::CredentialsLost(DisconnectReason::TokenRevoked), s.app.clock_now()).unwrap();
    app.repo.save(&gone, v.version).await.unwrap();
    s.app.clock.advance(chrono::Duration::minutes(61));
    let tick = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!((tick.scheduled, tick.unscheduled), (1, 1));
    assert_eq!(reload(&s, &cs[0]).await.next_sync_at, None);
    // A run that fails is tried again within 15 minutes, not an interval.
    s.fail.lock().unwrap().insert("/cursor".into(), vec![Reply::Json(200, json!({"data": "not a list"}))]);
    let job = SyncJob::start(&reload(&s, &cs[1]).await);
    let _ = shared::entry::lambda::run_sync_job(app, job, budget()).await;
    let failed = reload(&s, &cs[1]).await;
    assert!(matches!(failed.status, Status::Error { .. }));
    assert!(failed.running.is_some(), "the failed run keeps its progress, to be continued");
    // Never a second run beside it: once it has stalled, the scheduler
    // continues it instead of starting another.
    s.fail.lock().unwrap().remove("/cursor");
    s.app.clock.advance(chrono::Duration::minutes(61));
    let tick = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!((tick.scheduled, tick.stalled_requeued), (0, 1));
    local_stack::workers::drain(&s.app.stack, QueueKind::Sync).await.unwrap();
    let recovered = reload(&s, &cs[1]).await;
    assert_eq!(recovered.status, Status::Connected);
    assert!(recovered.running.is_none() && recovered.next_sync_at.is_some());
}

#[tokio::test]
async fn a_connection_may_sync_at_its_own_interval_within_the_bounds() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_iv", "good-token", 1, &["cursor"]).await;
    assert_eq!(run(&s, &cs[0], budget()).await.unwrap(), Outcome::Completed);
    let t = s.app.token("ws_iv", "u", "staff").await;
    let patch = |v: Value| {
        s.app
            .http
            .patch(s.app.url(&format!("/v1/connections/{}", cs[0].id)))
            .bearer_auth(&t)
            .json(&json!({"sync_interval_minutes": v}))
            .send()
    };
    let r = patch(json!(5)).await.unwrap();
    assert_eq!(r.status(), 422, "below the deployment's floor (15)");
    assert!(r.text().await.unwrap().contains("from 15 to 10080"));
    let r: Value = patch(json!(120)).await.unwrap().json().await.unwrap();
    assert_eq!(r["sync_interval_minutes"], 120);
    let last: chrono::DateTime<chrono::Utc> = r["data_fresh_as_of"].as_str().unwrap().parse().unwrap();
    let next: chrono::DateTime<chrono::Utc> = r["next_sync_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next - last, chrono::Duration::minutes(120));
    let r: Value = patch(Value::Null).await.unwrap().json().await.unwrap();
    assert_eq!(r["sync_interval_minutes"], Value::Null, "back to the platform's");
}

async fn every_run_is_kept_in_the_connections_history_newest_first_and_paged(backend: Backend) {
    let s = setup(backend, &["cursor"]).await;
    let (_, cs) = connect(&s, "ws_hist", "good-token", 1, &["cursor"]).await;
    let c = &cs[0];
    assert_eq!(run(&s, c, budget()).await.unwrap(), Outcome::Completed);
    // A run that fails on a malformed page.
    s.app.clock.advance(chrono::Duration::minutes(1));
    s.fail.lock().unwrap().insert("/cursor".into(), vec![Reply::Json(200, json!({"data": "not a list"}))]);
    let job = SyncJob::start(&reload(&s, c).await).triggered(SyncTrigger::Manual);
    let _ = shared::entry::lambda::run_sync_job(&s.app.stack.app, job, budget()).await;
    let t = s.app.token("ws_hist", "u", "staff").await;
    let (http, base) = (s.app.http.clone(), s.app.url(&format!("/v1/connections/{}/runs", c.id)));
    let get = |q: String| {
        let (http, url, t) = (http.clone(), format!("{base}{q}"), t.clone());
        async move { http.get(url).bearer_auth(t).send().await.unwrap() }
    };
    let all: Value = get(String::new()).await.json().await.unwrap();
    let runs = all["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{all}");
    assert_eq!(
        (runs[0]["outcome"].as_str(), runs[0]["trigger"].as_str()),
        (Some("failed"), Some("manual")),
        "newest first"
    );
    assert_eq!(runs[0]["error_code"], "malformed_response");
    assert_eq!((runs[1]["outcome"].as_str(), runs[1]["kind"].as_str()), (Some("succeeded"), Some("initial")));
    assert_eq!(runs[1]["trigger"], "initial");
    assert_eq!(runs[1]["streams"]["cursor"], json!({"records": RECORDS, "pages": 3}));
    assert!(runs[1]["finished_at"].is_string());
    assert!(runs[0].get("workspace_id").is_none() && runs[0].get("kept_until").is_none(), "the documented shape");
    // Paged with an opaque cursor.
    let first: Value = get("?limit=1".into()).await.json().await.unwrap();
    assert_eq!(first["runs"].as_array().unwrap().len(), 1);
    let next = first["next_cursor"].as_str().unwrap().to_owned();
    let second: Value = get(format!("?limit=1&cursor={next}")).await.json().await.unwrap();
    assert_eq!(second["runs"][0]["id"], runs[1]["id"]);
    assert_eq!(get("?limit=0".into()).await.status(), 422);
    assert_eq!(get("?cursor=bm90LWEtY3Vyc29y".into()).await.status(), 422);
    // Another workspace's connection is not there.
    let other = s.app.token("ws_other", "u", "staff").await;
    let r =
        s.app.http.get(s.app.url(&format!("/v1/connections/{}/runs", c.id))).bearer_auth(other).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// The alert events waiting in the notify queue (taken off it).
async fn alert_events(s: &Setup) -> Vec<shared::domain::messages::AlertEvent> {
    let q = &s.app.stack.app.queue;
    let mut events = Vec::new();
    loop {
        let batch = q.receive(QueueKind::Notify, 10, 60).await.unwrap();
        if batch.is_empty() {
            return events;
        }
        for m in batch {
            events.push(serde_json::from_str(&m.body).unwrap());
            q.ack(QueueKind::Notify, &m.receipt).await.unwrap();
        }
    }
}

fn not_syncing(events: &[shared::domain::messages::AlertEvent]) -> Vec<String> {
    use shared::domain::messages::AlertEvent;
    events
        .iter()
        .filter_map(|e| match e {
            AlertEvent::DataNotSyncing { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

async fn a_connection_with_no_success_for_three_intervals_is_stale_alerts_once_and_recovers(backend: Backend) {
    use shared::domain::messages::AlertEvent;
    let s = setup(backend, &["cursor"]).await;
    let app = &s.app.stack.app;
    let (_, cs) = connect(&s, "ws_stale", "good-token", 1, &["cursor"]).await;
    let c = &cs[0];
    let t = s.app.token("ws_stale", "u", "staff").await;
    assert_eq!(run(&s, c, budget()).await.unwrap(), Outcome::Completed);
    alert_events(&s).await;
    // The sync worker stops (its jobs pile up): two intervals are not yet stale.
    s.app.clock.advance(chrono::Duration::minutes(121));
    let tick = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!((tick.scheduled, tick.stale), (1, 0));
    assert!(reload(&s, c).await.stale.is_none());
    // Three intervals: stale, with its reason, and one alert.
    s.app.clock.advance(chrono::Duration::minutes(60));
    let tick = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!(tick.stale, 1);
    let view: Value = s.app.get_json(&format!("/v1/connections/{}", c.id), &t).await;
    assert_eq!(view["stale"], true, "{view}");
    assert_eq!(view["stale_reason"]["code"], "no_successful_sync");
    assert!(view["stale_reason"]["action"].as_str().unwrap().contains("run history"));
    let events = alert_events(&s).await;
    assert_eq!(not_syncing(&events), vec!["no_successful_sync".to_owned()]);
    assert_eq!(crate::published::published_types(&events), ["connection.stale"]);
    for e in events {
        shared::entry::lambda::deliver_alert(app, e).await.unwrap();
    }
    let subject = c.id.to_string();
    let open = app.repo.incident(&c.workspace_id, &subject, AlertKind::DataNotSyncing).await.unwrap().unwrap();
    assert!(open.value.is_open());
    // Still stale later: no second alert.
    s.app.clock.advance(chrono::Duration::minutes(61));
    shared::flows::schedule::tick(app).await.unwrap();
    assert!(not_syncing(&alert_events(&s).await).is_empty(), "one alert per incident");
    // The worker comes back (one of the queued jobs: SQS delays are real
    // time on moto): data flows, the mark is cleared, the incident closes.
    let job = SyncJob::start(&reload(&s, c).await).triggered(SyncTrigger::Scheduled);
    shared::entry::lambda::run_sync_job(app, job, budget()).await.unwrap();
    let after = reload(&s, c).await;
    assert!(after.stale.is_none() && after.last_synced_at == Some(s.app.clock_now()));
    let events = alert_events(&s).await;
    assert!(events.iter().any(|e| matches!(e, AlertEvent::Recovered { .. })), "{events:?}");
    assert_eq!(crate::published::published_types(&events), ["sync.completed", "connection.fresh"]);
    for e in events {
        shared::entry::lambda::deliver_alert(app, e).await.unwrap();
    }
    let closed = app.repo.incident(&c.workspace_id, &subject, AlertKind::DataNotSyncing).await.unwrap().unwrap();
    assert!(!closed.value.is_open());
}

#[tokio::test]
async fn an_initial_sync_that_writes_nothing_for_15_minutes_is_stale_and_a_lost_first_job_is_sent_again() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let app = &s.app.stack.app;
    let (_, cs) = connect(&s, "ws_quiet", "good-token", 1, &["cursor"]).await;
    // Accepted through the state machine, its first job never sent (the
    // worker died before the send).
    let v = app.repo.connection(&cs[0].workspace_id, &cs[0].id).await.unwrap();
    let mut c = v.value;
    c.status = Status::PendingAuthorization;
    c.apply(Event::CredentialsAccepted, s.app.clock_now()).unwrap();
    assert_eq!(c.next_sync_at, Some(s.app.clock_now() + chrono::Duration::minutes(15)));
    app.repo.save(&c, v.version).await.unwrap();
    s.app.clock.advance(chrono::Duration::minutes(14));
    assert_eq!(shared::flows::schedule::tick(app).await.unwrap().items_read, 0);
    s.app.clock.advance(chrono::Duration::minutes(1));
    let tick = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!((tick.stale, tick.scheduled), (1, 1), "stale, and its first sync is sent again");
    assert_eq!(not_syncing(&alert_events(&s).await), vec!["initial_sync_wrote_nothing".to_owned()]);
    s.app.clock.advance(chrono::Duration::minutes(6));
    local_stack::workers::drain(&s.app.stack, QueueKind::Sync).await.unwrap();
    let done = reload(&s, &c).await;
    assert!(done.initial_sync_done && done.stale.is_none() && done.records_written() > 0);
    // Had the first job only been late (or delivered again after its run,
    // its acknowledgement lost), it comes after the first sync is done: it
    // does nothing, rather than read every full-refresh stream a second time.
    s.app.clock.advance(chrono::Duration::minutes(1));
    let before = s.fake.requests_to("/cursor").len();
    assert!(
        matches!(run(&s, &c, budget()).await.unwrap(), Outcome::Skipped(_)),
        "a first job sent before the sync completed"
    );
    assert_eq!(s.fake.requests_to("/cursor").len(), before, "nothing read again");
    let (runs, _) = app.repo.runs_page(&c.workspace_id, &c.id, None, 5).await.unwrap();
    assert_eq!(runs.len(), 1, "no second run");
}

#[tokio::test]
async fn an_initial_sync_under_way_that_has_written_nothing_is_found_at_15_minutes() {
    let s = setup(Backend::Embedded, &["cursor"]).await;
    let app = &s.app.stack.app;
    let (_, cs) = connect(&s, "ws_quiet_run", "good-token", 1, &["cursor"]).await;
    // A run started and died before its first page was saved.
    let v = app.repo.connection(&cs[0].workspace_id, &cs[0].id).await.unwrap();
    let mut c = v.value;
    c.running = Some(RunInfo {
        id: SyncRunId::generate(),
        kind: SyncKind::Initial,
        started_at: s.app.clock_now(),
        trigger: Some(SyncTrigger::Initial),
    });
    app.repo.save(&c, v.version).await.unwrap();
    s.app.clock.advance(chrono::Duration::minutes(15));
    let tick = shared::flows::schedule::tick(app).await.unwrap();
    assert_eq!(
        (tick.items_read, tick.stale),
        (1, 1),
        "read before its stall window ({} min)",
        shared::domain::policy::RUN_STALL_MINUTES
    );
    assert_eq!(not_syncing(&alert_events(&s).await), vec!["initial_sync_wrote_nothing".to_owned()]);
    // Marked: not read again until its stall window.
    assert_eq!(shared::flows::schedule::tick(app).await.unwrap().items_read, 0);
}
