//! Discovery of what a grant reaches: asked after connecting, kept on the
//! authorization and offered; a connection chooses the sub-account it syncs;
//! a sub-account that disappears disconnects its connection with the
//! reason; streams a grant's scopes do not allow show as unavailable.

use serde_json::{json, Value};

use shared::domain::ids::*;
use shared::domain::*;

use std::sync::Arc;

use shared::ports::StateStore;

use crate::harness::{error_code, spawn_app_on, Backend, HookedStore, TestApp};

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let r = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app.http.post(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

both!(
    a_grants_accounts_are_discovered_chosen_and_lost_with_a_reason,
    an_agency_grant_reaching_thousands_of_accounts_is_kept_paged_chosen_and_replaced,
);

async fn a_grants_accounts_are_discovered_chosen_and_lost_with_a_reason(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let (auth, _) = crate::lifecycle::connect_sandbox(&app, "ws_acc", "acct_agency").await;
    let staff = app.token("ws_acc", "u", "staff").await;
    // Asked at connect: kept, and named on the authorization.
    let kept = app.stack.app.repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value;
    let index = kept.accounts.expect("discovered at connect");
    let chunk = app.stack.app.repo.account_chunk(&auth.workspace_id, &auth.id, &index.list, 0).await.unwrap();
    let ids: Vec<String> = chunk.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["acct_agency-main", "acct_agency-eu"]);
    let (status, reach) = get(&app, &staff, &format!("/v1/authorizations/{}/accounts", auth.id)).await;
    assert_eq!(status, 200, "{reach}");
    assert_eq!(reach["accounts"][1]["name"], "acct_agency EU", "{reach}");
    assert_eq!(reach["total"], 2, "{reach}");
    assert!(reach["streams"].as_array().unwrap().iter().all(|s| s["available"] == true), "{reach}");
    assert!(reach["next_cursor"].is_null(), "one page: {reach}");
    // Paged: an agency grant may reach thousands of accounts.
    let path = format!("/v1/authorizations/{}/accounts", auth.id);
    let (_, first) = get(&app, &staff, &format!("{path}?limit=1")).await;
    let first_ids: Vec<&str> =
        first["accounts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(first_ids, ["acct_agency-main"], "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, second) = get(&app, &staff, &format!("{path}?limit=1&cursor={cursor}")).await;
    assert_eq!((second["accounts"][0]["id"].as_str(), second["next_cursor"].is_null()), (Some("acct_agency-eu"), true));
    let (status, wrong) = get(&app, &staff, &format!("/v1/authorizations?cursor={cursor}")).await;
    assert_eq!((status, error_code(&wrong).as_str()), (422, "invalid_input"), "another list's cursor: {wrong}");
    // One grant, a connection per client: each chooses the account it syncs.
    let create = |account: &str| {
        json!({"authorization_id": auth.id, "name": format!("EU of {account}"), "account_id": account,
               "client": {"id": "client_eu", "name": "EU client"}})
    };
    let (status, eu) = post(&app, &staff, "/v1/connections", create("acct_agency-eu")).await;
    assert_eq!(status, 201, "{eu}");
    let (status, body) = post(&app, &staff, "/v1/connections", create("acct_someone-else")).await;
    assert_eq!((status, error_code(&body).as_str()), (422, "invalid_input"), "{body}");
    // The manager loses the EU account: asked again, its connection is disconnected, with the reason.
    app.sandbox().drop_sub_account("acct_agency-eu");
    let (status, reach) = post(&app, &staff, &format!("/v1/authorizations/{}/discover", auth.id), json!({})).await;
    assert_eq!(status, 200, "{reach}");
    assert_eq!(reach["accounts"].as_array().unwrap().len(), 1);
    let id = ConnectionId::parse(eu["id"].as_str().unwrap()).unwrap();
    let c = app.stack.app.repo.connection(&auth.workspace_id, &id).await.unwrap().value;
    assert_eq!(c.status, Status::Disconnected { reason: DisconnectReason::SubAccountGone });
    let view = app.get_json(&format!("/v1/connections/{id}"), &staff).await;
    assert!(view.to_string().contains("sub_account_gone"), "{view}");
    // The grant's own connection (no sub-account chosen) is untouched.
    let all = app.stack.app.repo.list::<Connection>(&auth.workspace_id).await.unwrap();
    assert!(all.iter().any(|c| c.value.id != id && !matches!(c.value.status, Status::Disconnected { .. })));
    // Client viewers may read but not ask the platform.
    let viewer = app.token("ws_acc", "v", "client_viewer").await;
    let (status, _) = post(&app, &viewer, &format!("/v1/authorizations/{}/discover", auth.id), json!({})).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_stream_the_grant_has_no_scope_for_is_shown_unavailable_with_the_reason() {
    let overrides = json!({"platforms": {"sandbox_oauth": {"streams": [
        {"name": "orders", "path": "/orders", "records_pointer": "/data", "pagination": {"style": "cursor_in_body", "next_pointer": "/next", "param": "cursor"}},
        {"name": "payouts", "path": "/payouts", "records_pointer": "/data", "pagination": {"style": "none"}, "required_scopes": ["finance"], "default_selected": false}
    ]}}})
    .to_string();
    let app = crate::harness::spawn_app_with(&[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let (auth, _) = crate::lifecycle::connect_sandbox(&app, "ws_sc", "acct_sc").await;
    let staff = app.token("ws_sc", "u", "staff").await;
    let (_, reach) = get(&app, &staff, &format!("/v1/authorizations/{}/accounts", auth.id)).await;
    let streams = reach["streams"].as_array().unwrap();
    assert_eq!(streams[0], json!({"name": "orders", "available": true, "reason": null}));
    assert_eq!(streams[1]["available"], false);
    assert!(streams[1]["reason"].as_str().unwrap().contains("finance"), "{reach}");
}

/// Every platform that declares discovery reads its accounts from the
/// answer its vendor documents (the fixtures in tests/conformance/examples).
#[test]
fn every_declared_discovery_reads_the_vendors_documented_answer() {
    let catalog = shared::catalog::Catalog::load(&shared::catalog::CatalogOptions::default()).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/examples");
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "google_ads",
            "accessible_customers",
            &["customers/1234567890", "customers/2345678901", "customers/3456789012"],
        ),
        ("meta_ads", "ad_accounts", &["act_1020304050", "act_6070809010"]),
        ("amazon_ads", "profiles", &["3141592653589793", "2718281828459045"]),
        ("google_analytics", "account_summaries", &["properties/400500600"]),
        ("x_ads", "accounts", &["18ce54d4x5t", "gq1844"]),
        ("tiktok_ads", "advertisers", &["7001000000000000001", "7001000000000000002"]),
        ("pinterest_ads", "discovery", &["549755885175", "549755885176"]),
        (
            "snapchat_ads",
            "discovery",
            &["8adc3db7-8148-4fbf-999c-8d2266369d74", "2f1e0d9c-8b7a-4c6d-9e5f-4a3b2c1d0e9f"],
        ),
        ("microsoft_ads", "discovery", &["149000123", "149000124"]),
    ];
    let declared: Vec<&str> =
        catalog.entries().filter(|e| e.discovery.is_some() && !e.sandbox).map(|e| e.id.as_str()).collect();
    for id in &declared {
        assert!(expected.iter().any(|(p, _, _)| p == id), "{id} declares discovery but has no test here");
    }
    for (platform, stream, ids) in expected {
        let entry = catalog.get(platform).unwrap();
        let spec = entry.discovery.as_ref().unwrap_or_else(|| panic!("{platform} declares no discovery"));
        let file = dir.join(format!("{platform}.{stream}.json"));
        let example: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        // A SOAP answer is XML, read with its repeated elements as lists.
        let page = match &example["page"] {
            Value::String(xml) => shared::platform::document_with_lists(xml.as_bytes()).unwrap(),
            json => json.clone(),
        };
        let found = shared::platform::accounts::sub_accounts(spec, &page).unwrap();
        let got: Vec<&str> = found.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(&got, ids, "{platform}");
        // The discovery request is the documented one (the stream's, when
        // the fixture is a stream's answer).
        if let Some(s) = entry.streams.iter().find(|s| s.name == *stream) {
            assert_eq!(spec.path, s.path, "{platform}");
            // And it pages as that stream does: every page is read, as
            // large as the stream asks.
            assert_eq!(spec.pagination, s.pagination, "{platform}: the accounts list pages as its stream");
            assert_eq!(
                (&spec.page_size_param, spec.page_size),
                (&s.page_size_param, s.page_size),
                "{platform}: the accounts list asks for pages as large as its stream"
            );
        }
        // The account's currency and time zone, where the answer has them.
        if *platform == "microsoft_ads" {
            assert_eq!(found[1].currency.as_deref(), Some("EUR"));
            assert_eq!(found[0].params.get("customer_id").map(String::as_str), Some("251000456"));
        }
        if *platform == "snapchat_ads" {
            assert_eq!(
                (found[0].currency.as_deref(), found[0].time_zone.as_deref()),
                (Some("USD"), Some("America/Los_Angeles"))
            );
        }
    }
}

/// An app whose sandbox grants list their accounts as Meta does
/// (`/me/adaccounts`, the next page's URL at `/paging/next`) from `fake`,
/// a grant of it in `ws`, and a staff member's token.
async fn paged_accounts(fake: &crate::harness::FakePlatform, ws: &str) -> (TestApp, Authorization, String) {
    paged_accounts_on(Backend::Embedded, fake, ws).await
}

async fn paged_accounts_on(
    backend: Backend,
    fake: &crate::harness::FakePlatform,
    ws: &str,
) -> (TestApp, Authorization, String) {
    accounts_app(backend, fake, ws, |store| store).await
}

/// A grant of the sandbox whose accounts the fake lists (as Meta pages
/// them), its app's store wrapped by `wrap`.
async fn accounts_app(
    backend: Backend,
    fake: &crate::harness::FakePlatform,
    ws: &str,
    wrap: impl FnOnce(Arc<dyn StateStore>) -> Arc<dyn StateStore>,
) -> (TestApp, Authorization, String) {
    let discovery = json!({"path": "/me/adaccounts?fields=id,name", "list_pointer": "/data", "id_pointer": "/id",
                           "name_pointer": "/name",
                           "pagination": {"style": "cursor_in_body", "next_pointer": "/paging/next", "param": "after"},
                           "page_size_param": "limit", "page_size": 2});
    let overrides =
        json!({"platforms": {"sandbox_oauth": {"api": {"base_url": fake.base}, "discovery": discovery}}}).to_string();
    // Its own secret names: the seeded app credentials are not the shared
    // moto vault's sandbox app.
    let prefix = format!("connections/{ws}");
    let env = [("CATALOG_OVERRIDES", overrides.as_str()), ("SECRET_PREFIX", prefix.as_str())];
    let app = crate::harness::spawn_app_wrapped(backend, &env, wrap).await;
    let auth = crate::lifecycle::seed(&app, ws, None).await;
    let staff = app.token(ws, "u", "staff").await;
    (app, auth, staff)
}

/// The accounts list is read page after page, as the same endpoint's
/// stream pages (Meta answers 25 a page, with `paging.next`): an agency's
/// account on a later page can be chosen, and asking again does not take
/// its connection for gone.
#[tokio::test]
async fn every_page_of_the_accounts_list_is_read_before_anything_is_decided() {
    use crate::harness::{FakePlatform, Recorded, Reply};
    let fake = FakePlatform::start(|r: &Recorded| {
        let host = r.headers["host"].to_str().unwrap().to_owned();
        match (r.path.as_str(), r.query.get("after").map(String::as_str)) {
            ("/me/adaccounts", None) => Reply::Json(
                200,
                json!({"data": [{"id": "act_1", "name": "One"}, {"id": "act_2", "name": "Two"}],
                       "paging": {"cursors": {"before": "c0", "after": "c2"},
                                  "next": format!("http://{host}/me/adaccounts?fields=id,name&after=c2")}}),
            ),
            ("/me/adaccounts", Some("c2")) => Reply::Json(
                200,
                json!({"data": [{"id": "act_3", "name": "Three"}], "paging": {"cursors": {"before": "c2", "after": "c3"}}}),
            ),
            _ => Reply::Json(404, json!({"error": {"message": "unknown path"}})),
        }
    })
    .await;
    let (app, auth, staff) = paged_accounts(&fake, "ws_pages").await;
    let discover = format!("/v1/authorizations/{}/discover", auth.id);
    let (status, reach) = post(&app, &staff, &discover, json!({})).await;
    assert_eq!(status, 200, "{reach}");
    let ids: Vec<&str> = reach["accounts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["act_1", "act_2", "act_3"], "both pages");
    assert_eq!(reach["complete"], true, "{reach}");
    let asked = fake.requests_to("/me/adaccounts");
    assert_eq!(asked[0].query.get("limit").map(String::as_str), Some("2"), "pages as large as the entry asks");
    let body = json!({"authorization_id": auth.id, "name": "Third", "account_id": "act_3"});
    let (status, third) = post(&app, &staff, "/v1/connections", body).await;
    assert_eq!(status, 201, "an account of the second page can be chosen: {third}");
    assert_eq!(post(&app, &staff, &discover, json!({})).await.0, 200);
    let id = ConnectionId::parse(third["id"].as_str().unwrap()).unwrap();
    let c = app.stack.app.repo.connection(&auth.workspace_id, &id).await.unwrap().value;
    assert!(!matches!(c.status, Status::Disconnected { .. }), "{:?}", c.status);
}

/// Endless pages of Meta's ad accounts, one account each, numbered from
/// `from`.
fn endless_pages(
    from: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> impl Fn(&crate::harness::Recorded) -> crate::harness::Reply + Send + Sync + 'static {
    move |r| {
        let host = r.headers["host"].to_str().unwrap().to_owned();
        let first = from.load(std::sync::atomic::Ordering::SeqCst);
        let n: u64 = r.query.get("after").map_or(first, |a| a.parse().unwrap());
        crate::harness::Reply::Json(
            200,
            json!({"data": [{"id": format!("act_{n}"), "name": "A"}],
                   "paging": {"next": format!("http://{host}/me/adaccounts?fields=id,name&after={}", n + 1)}}),
        )
    }
}

/// A list with more pages than are read (a hundred) is kept as far as it
/// was read, and no connection is taken for gone against it.
#[tokio::test]
async fn past_the_pages_read_no_account_is_taken_for_gone() {
    use crate::harness::FakePlatform;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let from = Arc::new(AtomicU64::new(0));
    let fake = FakePlatform::start(endless_pages(from.clone())).await;
    let (app, auth, staff) = paged_accounts(&fake, "ws_many").await;
    let discover = format!("/v1/authorizations/{}/discover", auth.id);
    let (status, reach) = post(&app, &staff, &discover, json!({})).await;
    assert_eq!(status, 200, "{reach}");
    assert_eq!(reach["accounts"].as_array().unwrap().len(), shared::flows::accounts::MAX_ACCOUNT_PAGES);
    assert_eq!((reach["complete"].as_bool(), reach["total"].as_u64()), (Some(false), Some(100)), "{reach}");
    let body = json!({"authorization_id": auth.id, "name": "Fifth", "account_id": "act_5"});
    let (status, fifth) = post(&app, &staff, "/v1/connections", body).await;
    assert_eq!(status, 201, "{fifth}");
    // Asked again, the list read no longer has it: read in part, it proves nothing.
    from.store(1_000, Ordering::SeqCst);
    assert_eq!(post(&app, &staff, &discover, json!({})).await.0, 200);
    let id = ConnectionId::parse(fifth["id"].as_str().unwrap()).unwrap();
    let c = app.stack.app.repo.connection(&auth.workspace_id, &id).await.unwrap().value;
    assert!(!matches!(c.status, Status::Disconnected { .. }), "{:?}", c.status);
}

/// An agency grant that reaches 4,000 accounts (Meta's Business Managers
/// and Google Ads managers reach thousands): more than one item holds, so
/// the list is kept in chunks of its own. Before, discovery failed: the
/// authorization item passed DynamoDB's 400 KB.
async fn an_agency_grant_reaching_thousands_of_accounts_is_kept_paged_chosen_and_replaced(backend: Backend) {
    use crate::harness::{FakePlatform, Recorded, Reply};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    const PER_PAGE: u64 = 400;
    // Ten pages of 400 (each name 90 characters); from `first` on.
    let first = Arc::new(AtomicU64::new(0));
    let start = first.clone();
    let fake = FakePlatform::start(move |r: &Recorded| {
        let host = r.headers["host"].to_str().unwrap().to_owned();
        let base = start.load(Ordering::SeqCst);
        let at: u64 = r.query.get("after").map_or(base, |a| a.parse().unwrap());
        let data: Vec<Value> = (at..at + PER_PAGE)
            .map(|n| json!({"id": format!("act_{n:05}"), "name": format!("{n:05} {}", "x".repeat(84))}))
            .collect();
        let mut body = json!({"data": data});
        if at + PER_PAGE < base + 10 * PER_PAGE {
            body["paging"] =
                json!({"next": format!("http://{host}/me/adaccounts?fields=id,name&after={}", at + PER_PAGE)});
        }
        Reply::Json(200, body)
    })
    .await;
    let (app, auth, staff) = paged_accounts_on(backend, &fake, "ws_agency").await;
    let discover = format!("/v1/authorizations/{}/discover", auth.id);
    let (status, reach) = post(&app, &staff, &discover, json!({})).await;
    assert_eq!(status, 200, "{reach}");
    assert_eq!(reach["total"], 4_000);
    let repo = &app.stack.app.repo;
    let kept = repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value;
    let index = kept.accounts.clone().unwrap();
    assert!(index.chunks.len() >= 2, "{:?}", index.chunks);
    assert!(serde_json::to_vec(&kept).unwrap().len() < 4_096, "the authorization item stays small");
    // Paged through, 500 at a time: each account once, in the platform's order.
    let path = format!("/v1/authorizations/{}/accounts", auth.id);
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=500&cursor={c}"),
            None => format!("{path}?limit=500"),
        };
        let (status, page) = get(&app, &staff, &url).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        seen.extend(page["accounts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..4_000).map(|n| format!("act_{n:05}")).collect();
    assert_eq!((pages, seen == expected), (8, true));
    // An account of the last chunk can be chosen.
    let body = json!({"authorization_id": auth.id, "name": "Last", "account_id": "act_03999"});
    let (status, last) = post(&app, &staff, "/v1/connections", body).await;
    assert_eq!(status, 201, "{last}");
    let (_, page) = get(&app, &staff, &format!("{path}?limit=500")).await;
    let old_cursor = page["next_cursor"].as_str().unwrap().to_owned();
    // Discovered again (the first thousand gone): the new list replaces the
    // old, whose chunks are dropped, and the old list's cursor is refused.
    first.store(1_000, Ordering::SeqCst);
    let (status, again) = post(&app, &staff, &discover, json!({})).await;
    assert_eq!((status, again["accounts"][0]["id"].as_str()), (200, Some("act_01000")), "{again}");
    for chunk in 0..index.chunks.len() as u32 {
        let old = repo.account_chunk(&auth.workspace_id, &auth.id, &index.list, chunk).await.unwrap();
        assert!(old.is_none(), "chunk {chunk} of the replaced list is dropped");
    }
    let (status, refused) = get(&app, &staff, &format!("{path}?limit=500&cursor={old_cursor}")).await;
    assert_eq!((status, error_code(&refused).as_str()), (422, "invalid_input"), "{refused}");
    let id = ConnectionId::parse(last["id"].as_str().unwrap()).unwrap();
    let c = repo.connection(&auth.workspace_id, &id).await.unwrap().value;
    assert!(!matches!(c.status, Status::Disconnected { .. }), "act_03999 is still reached: {:?}", c.status);
    // Removed, the grant takes its lists with it.
    let now = repo.authorization(&auth.workspace_id, &auth.id).await.unwrap().value.accounts.unwrap();
    let admin = app.token("ws_agency", "a", "admin").await;
    let r =
        app.http.delete(app.url(&format!("/v1/authorizations/{}", auth.id))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(repo.account_chunk(&auth.workspace_id, &auth.id, &now.list, 0).await.unwrap().is_none());
}

/// Two discoveries at once: the one that names its list second does not
/// replace the first's, drops its own, and decides nothing.
#[tokio::test]
async fn a_discovery_that_finds_another_list_named_first_keeps_it() {
    let fake = one_account().await;
    // Just before the first chunk of the discovery's own list is written,
    // another discovery of the same generation names its list.
    let named: Arc<std::sync::Mutex<Option<AccountsIndex>>> = Default::default();
    let rival_named = named.clone();
    let before_put: crate::harness::Hook<shared::ports::Item> = Arc::new(move |inner, item| {
        let rival_named = rival_named.clone();
        Box::pin(async move {
            if !item.sk.starts_with("ACCTS#") || rival_named.lock().unwrap().is_some() {
                return Ok(());
            }
            let ws = WorkspaceId::parse(item.pk.strip_prefix("WS#").unwrap()).unwrap();
            let auth = AuthorizationId::parse(item.sk.split('#').nth(1).unwrap()).unwrap();
            let rival = name_rival_list(inner, &ws, &auth, None, "act_2").await;
            *rival_named.lock().unwrap() = Some(rival);
            Ok(())
        })
    });
    let wrap = move |inner| -> Arc<dyn StateStore> {
        Arc::new(HookedStore { before_put: Some(before_put), ..HookedStore::new(inner) })
    };
    let (app, auth, _) = accounts_app(Backend::Embedded, &fake, "ws_race", wrap).await;
    let ws = &auth.workspace_id;
    let deadline = tokio::time::Instant::now() + shared::flows::accounts::DISCOVERY_BUDGET;
    let mine = shared::flows::accounts::discover(&app.stack.app, ws, &auth.id, deadline).await.unwrap();
    let rival = named.lock().unwrap().clone().expect("the rival named its list");
    assert_eq!((mine.generation, rival.generation), (1, 1), "a tie");
    let repo = &app.stack.app.repo;
    let kept = repo.authorization(ws, &auth.id).await.unwrap().value.accounts.unwrap();
    assert_eq!(kept.list, rival.list, "the list named first is kept");
    // Nothing of the losing discovery's list is left behind.
    let left = repo.store().query(&shared::store::workspace_pk(ws), "ACCTS#", None, 100).await.unwrap();
    let left: Vec<&str> = left.items.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains(&rival.list), "{left:?}");
}

/// Out of time (the API's function has 15 seconds), discovery asks for no
/// more pages: the list read so far is kept and offered, marked
/// incomplete, and no connection is taken for gone against it.
#[tokio::test]
async fn out_of_time_discovery_keeps_what_it_read_as_incomplete() {
    let fake = crate::harness::FakePlatform::start(endless_pages(Default::default())).await;
    let (app, auth, staff) = paged_accounts(&fake, "ws_late").await;
    // A deadline already past: the first page only.
    let ws = &auth.workspace_id;
    let now = tokio::time::Instant::now();
    let index = shared::flows::accounts::discover(&app.stack.app, ws, &auth.id, now).await.unwrap();
    assert_eq!((index.count(), index.partial), (1, true));
    assert_eq!(fake.requests_to("/me/adaccounts").len(), 1);
    let (status, reach) = get(&app, &staff, &format!("/v1/authorizations/{}/accounts", auth.id)).await;
    assert_eq!(status, 200, "{reach}");
    assert_eq!((reach["complete"].as_bool(), reach["total"].as_u64()), (Some(false), Some(1)), "{reach}");
}

/// Another discovery's list, of one account `id`, written and named on the
/// grant (replacing `before`).
async fn name_rival_list(
    inner: Arc<dyn StateStore>,
    ws: &WorkspaceId,
    auth: &AuthorizationId,
    before: Option<&AccountsIndex>,
    id: &str,
) -> AccountsIndex {
    let repo = shared::store::Repo::new(inner);
    let accounts =
        vec![SubAccount { id: id.into(), name: None, currency: None, time_zone: None, params: Default::default() }];
    let rival = AccountsIndex::new_list(before, chrono::Utc::now(), std::slice::from_ref(&accounts));
    repo.put_account_chunks(ws, auth, &rival.list, vec![accounts]).await.unwrap();
    let named = rival.clone();
    repo.update_authorization(ws, auth, move |a| {
        a.accounts = Some(named.clone());
        Ok(shared::store::Change::Save(()))
    })
    .await
    .unwrap();
    rival
}

/// A discovery with one account, `act_1`.
async fn one_account() -> crate::harness::FakePlatform {
    let one = json!({"data": [{"id": "act_1", "name": "One"}]});
    crate::harness::FakePlatform::start(move |_: &crate::harness::Recorded| {
        crate::harness::Reply::Json(200, one.clone())
    })
    .await
}

/// A list whose chunk is gone while the grant still names it (only a
/// removal in progress leaves that): reading it, or choosing from it, is a
/// conflict to try again, not an empty list or a refused account.
#[tokio::test]
async fn a_named_list_missing_a_chunk_is_a_conflict() {
    let fake = one_account().await;
    let (app, auth, staff) = paged_accounts(&fake, "ws_lost_chunk").await;
    let path = format!("/v1/authorizations/{}/accounts", auth.id);
    assert_eq!(post(&app, &staff, &format!("/v1/authorizations/{}/discover", auth.id), json!({})).await.0, 200);
    let store = app.stack.app.repo.store().clone();
    let pk = shared::store::workspace_pk(&auth.workspace_id);
    for chunk in store.query(&pk, "ACCTS#", None, 10).await.unwrap().items {
        store.delete(&pk, &chunk.sk, shared::ports::Precondition::None).await.unwrap();
    }
    let (status, body) = get(&app, &staff, &path).await;
    assert_eq!((status, error_code(&body).as_str()), (409, "conflict"), "{body}");
    let create = json!({"authorization_id": auth.id, "name": "One", "account_id": "act_1"});
    let (status, body) = post(&app, &staff, "/v1/connections", create).await;
    assert_eq!((status, error_code(&body).as_str()), (409, "conflict"), "{body}");
}

/// Another discovery replaces the list while a first page is read: the
/// first page of the list named now is answered.
#[tokio::test]
async fn a_list_replaced_while_read_answers_the_new_lists_first_page() {
    let fake = one_account().await;
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trigger = armed.clone();
    let before_get: crate::harness::Hook<String> = Arc::new(move |inner, sk| {
        let replace = sk.starts_with("ACCTS#") && trigger.swap(false, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if !replace {
                return Ok(());
            }
            // The rival discovery: its list written and named, the old dropped.
            let repo = shared::store::Repo::new(inner.clone());
            let ws = WorkspaceId::parse("ws_replaced").unwrap();
            let auth_id = AuthorizationId::parse(sk.split('#').nth(1).unwrap()).unwrap();
            let before = repo.authorization(&ws, &auth_id).await.unwrap().value.accounts;
            let rival = name_rival_list(inner, &ws, &auth_id, before.as_ref(), "act_new").await;
            repo.drop_account_lists(&ws, &auth_id, Some(&rival)).await.unwrap();
            Ok(())
        })
    });
    let wrap = move |inner| -> Arc<dyn StateStore> {
        Arc::new(HookedStore { before_get: Some(before_get), ..HookedStore::new(inner) })
    };
    let (app, auth, staff) = accounts_app(Backend::Embedded, &fake, "ws_replaced", wrap).await;
    assert_eq!(post(&app, &staff, &format!("/v1/authorizations/{}/discover", auth.id), json!({})).await.0, 200);
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, reach) = get(&app, &staff, &format!("/v1/authorizations/{}/accounts", auth.id)).await;
    assert_eq!(status, 200, "{reach}");
    assert_eq!(reach["accounts"][0]["id"], "act_new", "{reach}");
    assert!(!armed.load(std::sync::atomic::Ordering::SeqCst), "the rival ran while the page was read");
}

/// The grant is removed while its accounts are discovered: the discovery
/// fails as not found, and leaves no list behind.
#[tokio::test]
async fn a_grant_removed_during_discovery_keeps_no_list() {
    let fake = one_account().await;
    let before_put: crate::harness::Hook<shared::ports::Item> = Arc::new(move |inner, item| {
        Box::pin(async move {
            if item.sk.starts_with("ACCTS#") {
                let auth = format!("AUTH#{}", item.sk.split('#').nth(1).unwrap());
                inner.delete(&item.pk, &auth, shared::ports::Precondition::None).await?;
            }
            Ok(())
        })
    });
    let wrap = move |inner| -> Arc<dyn StateStore> {
        Arc::new(HookedStore { before_put: Some(before_put), ..HookedStore::new(inner) })
    };
    let (app, auth, staff) = accounts_app(Backend::Embedded, &fake, "ws_removed", wrap).await;
    let (status, body) = post(&app, &staff, &format!("/v1/authorizations/{}/discover", auth.id), json!({})).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"), "{body}");
    let pk = shared::store::workspace_pk(&auth.workspace_id);
    let left = app.stack.app.repo.store().query(&pk, "ACCTS#", None, 10).await.unwrap();
    assert!(left.items.is_empty(), "{:?}", left.items.iter().map(|i| &i.sk).collect::<Vec<_>>());
}
