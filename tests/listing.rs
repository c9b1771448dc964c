//! `GET /v1/connections` in its default order, a page at a time from the
//! list index however many connections a workspace has; connections stored
//! before the index (by the version before) are put into it before it is
//! trusted.

use chrono::Duration;
use serde_json::Value;

use shared::domain::ids::*;
use shared::domain::*;
use shared::ports::{Item, Precondition};

use crate::harness::{error_code, spawn_app_on, Backend, HookedStore, TestApp};

both!(connections_page_from_the_list_index_once_every_one_is_in_it);

/// A connection of the workspace in `state`, created `age` minutes ago.
fn connection(ws: &WorkspaceId, n: usize, state: &str, age: i64, now: chrono::DateTime<chrono::Utc>) -> Connection {
    let mut c = Connection::new(
        ws.clone(),
        PlatformId::parse("sandbox_api_key").unwrap(),
        format!("Store {n}"),
        ConnectionRole::Source,
        None,
        Credential::FileUpload,
        vec![],
        UserId::parse("u").unwrap(),
        now - Duration::minutes(age),
    );
    c.status = match state {
        "disconnected" => Status::Disconnected { reason: DisconnectReason::TokenRevoked },
        "error" => Status::Error { reason: shared::domain::status::FailureReason::PlatformUnavailable },
        "pending_authorization" => Status::PendingAuthorization,
        "initial_sync_in_progress" => Status::InitialSyncInProgress,
        _ => Status::Connected,
    };
    c
}

async fn ids_of_every_page(app: &TestApp, token: &str, query: &str) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/connections?{query}&cursor={c}"),
            None => format!("/v1/connections?{query}"),
        };
        let page: Value = app.get_json(&path, token).await;
        pages += 1;
        ids.extend(
            page["connections"]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: {page}"))
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (ids, pages),
        }
    }
}

async fn connections_page_from_the_list_index_once_every_one_is_in_it(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let name = format!("ws_list_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ws = WorkspaceId::parse(&name).unwrap();
    let (repo, store) = (&app.stack.app.repo, app.stack.app.repo.store().clone());
    let now = app.clock_now();
    let states =
        ["connected", "disconnected", "error", "connected", "pending_authorization", "initial_sync_in_progress"];
    let mut all = Vec::new();
    // 150 stored by the version before the list index (no place in it)...
    for n in 0..150 {
        let c = connection(&ws, n, states[n % states.len()], (n as i64 * 7) % 500, now);
        let body = serde_json::to_value(&c).unwrap();
        let item = Item {
            pk: shared::store::workspace_pk(&ws),
            sk: format!("CONN#{}", c.id),
            version: 1,
            body,
            due: None,
            expires_at: None,
            list_key: None,
        };
        store.put(&item, Precondition::Absent).await.unwrap();
        all.push(c);
    }
    // ...and 30 by this one.
    for n in 150..180 {
        let c = connection(&ws, n, states[n % states.len()], n as i64, now);
        repo.create(&c).await.unwrap();
        all.push(c);
    }
    let rank = Connection::attention_rank;
    all.sort_by(|a, b| {
        let newest = |c: &Connection| std::cmp::Reverse(c.created_at.timestamp_millis());
        rank(a).cmp(&rank(b)).then(newest(a).cmp(&newest(b))).then(a.id.cmp(&b.id))
    });
    let expected: Vec<String> = all.iter().map(|c| c.id.to_string()).collect();
    let admin = app.token(&name, "a", "admin").await;
    // Listed whole while the index is not trusted: every one, in order.
    assert_eq!(ids_of_every_page(&app, &admin, "limit=40").await, (expected.clone(), 5));
    // The first listing put the old ones into the index.
    let raw = store.query(&shared::store::workspace_pk(&ws), "CONN#", None, 500).await.unwrap();
    assert!(raw.items.iter().all(|i| i.list_key.is_some()), "every connection has its place");
    assert_eq!(repo.list_index_state(&ws).await.unwrap().map(|s| s.ready), Some(false), "not trusted yet");
    // A writer of the version before, still running, stores one more without its place.
    let late = connection(&ws, 999, "disconnected", 0, now);
    let item = Item {
        pk: shared::store::workspace_pk(&ws),
        sk: format!("CONN#{}", late.id),
        version: 1,
        body: serde_json::to_value(&late).unwrap(),
        due: None,
        expires_at: None,
        list_key: None,
    };
    store.put(&item, Precondition::Absent).await.unwrap();
    let mut expected = expected;
    expected.insert(0, late.id.to_string());
    // Past the settling time, a listing rewrites it; the next one finds none
    // left and trusts the index.
    app.clock.advance(Duration::minutes(16));
    let (first_pass, _) = ids_of_every_page(&app, &admin, "limit=40").await;
    assert_eq!(first_pass, expected);
    assert_eq!(repo.list_index_state(&ws).await.unwrap().map(|s| s.ready), Some(false));
    // From the index now: the same list, page by page, each once, in order.
    assert_eq!(ids_of_every_page(&app, &admin, "limit=40").await, (expected.clone(), 5));
    assert_eq!(repo.list_index_state(&ws).await.unwrap().map(|s| s.ready), Some(true));
    assert_eq!(ids_of_every_page(&app, &admin, "limit=500").await.0, expected);
    // The index is what answers: an item written without its place now is not listed.
    let ghost = connection(&ws, 1000, "connected", 0, now);
    let mut ghost_item = item.clone();
    ghost_item.sk = format!("CONN#{}", ghost.id);
    ghost_item.body = serde_json::to_value(&ghost).unwrap();
    store.put(&ghost_item, Precondition::Absent).await.unwrap();
    assert!(!ids_of_every_page(&app, &admin, "limit=500").await.0.contains(&ghost.id.to_string()));
    store.delete(&ghost_item.pk, &ghost_item.sk, Precondition::None).await.unwrap();
    // A status filter reads one rank of the index.
    let disconnected: Vec<String> =
        all.iter().filter(|c| c.status.state_name() == "disconnected").map(|c| c.id.to_string()).collect();
    let (got, _) = ids_of_every_page(&app, &admin, "status=disconnected&limit=7").await;
    assert_eq!(got[1..], disconnected[..], "{got:?}");
    // A connection whose status changes moves in the list.
    let moved = all.iter().find(|c| c.status.state_name() == "connected").unwrap().id.clone();
    repo.update_connection(&ws, &moved, |c| {
        c.status = Status::Error { reason: shared::domain::status::FailureReason::PlatformUnavailable };
        Ok(shared::store::Change::Save(()))
    })
    .await
    .unwrap();
    let (errors, _) = ids_of_every_page(&app, &admin, "status=error").await;
    assert!(errors.contains(&moved.to_string()));
    let (connected, _) = ids_of_every_page(&app, &admin, "status=connected&limit=500").await;
    assert!(!connected.contains(&moved.to_string()));
    // A cursor of another list, or of the list read whole, is refused.
    let page: Value = app.get_json("/v1/connections?limit=10", &admin).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let r = app.http.get(app.url(&format!("/v1/connections?status=error&cursor={cursor}"))).bearer_auth(&admin);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(&r.json::<Value>().await.unwrap()), "invalid_input");
    // Other orders and a client viewer's list are read whole, and complete.
    let (by_platform, _) = ids_of_every_page(&app, &admin, "sort=platform&limit=500").await;
    assert_eq!(by_platform.len(), expected.len());
}

/// The embedded stack, its store one a test can step into.
async fn app_with_hooked_store() -> (TestApp, std::sync::Arc<HookedStore>) {
    let hook: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<HookedStore>>>> = Default::default();
    let keep = hook.clone();
    let app = crate::harness::spawn_app_wrapped(Backend::Embedded, &[], move |inner| {
        let store = std::sync::Arc::new(HookedStore::new(inner));
        *keep.lock().unwrap() = Some(store.clone());
        store
    })
    .await;
    let store = hook.lock().unwrap().clone().unwrap();
    (app, store)
}

/// The index unreadable: a first page is read whole instead (complete);
/// a later page, whose cursor names a place in the index, says to try again
/// rather than answer from another list.
#[tokio::test]
async fn an_unreadable_index_falls_back_to_the_whole_list_for_a_first_page_only() {
    let (app, store) = app_with_hooked_store().await;
    let ws = WorkspaceId::parse("ws_index_down").unwrap();
    let now = app.clock_now();
    for n in 0..5 {
        app.stack.app.repo.create(&connection(&ws, n, "connected", n as i64, now)).await.unwrap();
    }
    let ready = shared::store::listing::ListIndexState { since: now, ready: true };
    app.stack.app.repo.set_list_index_state(&ws, &ready).await.unwrap();
    let admin = app.token("ws_index_down", "a", "admin").await;
    let first: Value = app.get_json("/v1/connections?limit=2", &admin).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    store.listed_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ids, _) = ids_of_every_page(&app, &admin, "limit=10").await;
    assert_eq!(ids.len(), 5, "a first page read whole");
    let r = app.http.get(app.url(&format!("/v1/connections?limit=2&cursor={cursor}"))).bearer_auth(&admin);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 503, "a later page of the index: try again");
}

/// DynamoDB builds a new index for a while after the stack's update: a
/// workspace whose index does not answer yet is not trusted, and its list
/// is read whole, complete; once the index answers it is trusted, and this
/// process keeps trusting it without reading the marker again.
#[tokio::test]
async fn an_index_not_answering_yet_is_not_trusted() {
    let (app, store) = app_with_hooked_store().await;
    let hooks = store;
    let index_down = |down: bool| hooks.listed_fails.store(down, std::sync::atomic::Ordering::SeqCst);
    let ws = WorkspaceId::parse("ws_building").unwrap();
    let now = app.clock_now();
    for n in 0..3 {
        app.stack.app.repo.create(&connection(&ws, n, "connected", n as i64, now)).await.unwrap();
    }
    let admin = app.token("ws_building", "a", "admin").await;
    let repo = &app.stack.app.repo;
    assert_eq!(ids_of_every_page(&app, &admin, "limit=10").await.0.len(), 3, "the first listing");
    app.clock.advance(Duration::minutes(16));
    index_down(true);
    assert_eq!(ids_of_every_page(&app, &admin, "limit=10").await.0.len(), 3, "read whole");
    assert_eq!(repo.list_index_state(&ws).await.unwrap().map(|s| s.ready), Some(false), "not trusted");
    index_down(false);
    assert_eq!(ids_of_every_page(&app, &admin, "limit=10").await.0.len(), 3);
    assert_eq!(repo.list_index_state(&ws).await.unwrap().map(|s| s.ready), Some(true), "trusted");
    // The marker gone, this process still pages from the index: the next
    // page of a cursor of the index is answered (read whole, the cursor
    // would be another list's).
    let first: Value = app.get_json("/v1/connections?limit=1", &admin).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let store = repo.store().clone();
    store.delete(&shared::store::workspace_pk(&ws), "LISTINDEX", Precondition::None).await.unwrap();
    let r = app.http.get(app.url(&format!("/v1/connections?limit=1&cursor={cursor}"))).bearer_auth(&admin);
    assert_eq!(r.send().await.unwrap().status(), 200);
}
