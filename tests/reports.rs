//! Report streams: rows by day read in date windows, the first run over its
//! history, every later run re-reading the last days the platform restates;
//! each day written whole (raw rows and normalised spend facts), so a
//! restated day replaces the day and never duplicates it.

use chrono::Duration;
use serde_json::Value;

use shared::domain::messages::{QueueKind, SyncJob};
use shared::domain::*;

use crate::harness::{spawn_app_on, Backend, TestApp};

async fn facts_of(app: &TestApp, ws: &str, day: &str) -> Vec<Value> {
    let sink = &app.stack.app.sink;
    let mut out = Vec::new();
    for key in sink.list(&format!("spend/{ws}/{day}/")).await.unwrap() {
        let bytes = sink.get(&key).await.unwrap().unwrap();
        out.extend(bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()));
    }
    out
}

pub(crate) fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/spend.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

both!(
    ad_spend_arrives_in_the_normalised_table_and_a_restated_day_replaces_itself,
    the_first_sync_reads_the_newest_days_first_and_counts_its_windows,
);

async fn ad_spend_arrives_in_the_normalised_table_and_a_restated_day_replaces_itself(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let (_, c) = crate::lifecycle::connect_sandbox(&app, "ws_spend", "acct_spend").await;
    local_stack::workers::drain(&app.stack, QueueKind::Sync).await.unwrap();
    let a = &app.stack.app;
    let c = a.repo.connection(&c.workspace_id, &c.id).await.unwrap().value;
    assert_eq!(c.status, Status::Connected, "{:?}", c.last_error);
    // The history (30 days and today, in 7-day windows): two campaigns a day.
    let today = app.clock_now().date_naive();
    let daily = &c.cursors["ad_spend"];
    assert_eq!((daily.records, daily.pages), (62, 5), "{daily:?}");
    let schema = schema();
    for back in 0..=30 {
        let day = (today - Duration::days(back)).format("%Y-%m-%d").to_string();
        let facts = facts_of(&app, "ws_spend", &day).await;
        assert_eq!(facts.len(), 2, "{day}");
        for f in &facts {
            let errors: Vec<String> = schema.iter_errors(f).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{f}: {errors:?}");
            assert_eq!((f["platform"].as_str(), f["currency"].as_str()), (Some("sandbox_oauth"), Some("EUR")));
        }
    }
    let yesterday = (today - Duration::days(1)).format("%Y-%m-%d").to_string();
    let old_day = (today - Duration::days(10)).format("%Y-%m-%d").to_string();
    let before = facts_of(&app, "ws_spend", &yesterday).await;
    let old_before = facts_of(&app, "ws_spend", &old_day).await;
    assert_eq!(before[0]["conversions"], 3, "{before:?}");
    // A day later the platform has restated it: the next run re-reads the
    // last three days and today, and the day is replaced, not duplicated.
    // (Tokens are minted before the clock moves.)
    let staff = app.token("ws_spend", "u", "staff").await;
    let viewer = app.token("ws_spend", "v", "client_viewer").await;
    app.clock.advance(Duration::days(1));
    let job = SyncJob::start(&c).triggered(SyncTrigger::Scheduled);
    shared::entry::lambda::run_sync_job(a, job, crate::sync::budget_for_tests()).await.unwrap();
    let after = facts_of(&app, "ws_spend", &yesterday).await;
    assert_eq!(after.len(), 2, "replaced, not appended");
    assert_eq!(after[0]["conversions"], 4, "the restated value: {after:?}");
    assert_eq!(after[0]["spend"], before[0]["spend"]);
    let c = a.repo.connection(&c.workspace_id, &c.id).await.unwrap().value;
    assert_eq!(c.cursors["ad_spend"].records_this_run, 8, "three days back and today, two rows each");
    assert_eq!(facts_of(&app, "ws_spend", &old_day).await, old_before, "older days are not read again");
    // The table read back for a dashboard: the facts and each day's total,
    // as the restated day stands now.
    let read = app.get_json(&format!("/v1/spend?from={old_day}&to={yesterday}"), &staff).await;
    assert_eq!(read["facts"].as_array().unwrap().len(), 20, "ten days, two campaigns");
    let last = read["facts"].as_array().unwrap().iter().rev().find(|f| f["date"] == yesterday.as_str()).unwrap();
    assert_eq!(last["conversions"], 4);
    let totals = read["totals"].as_array().unwrap();
    assert_eq!(totals.len(), 10);
    let sum: rust_decimal::Decimal =
        after.iter().map(|f| f["spend"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap()).sum();
    assert_eq!(
        totals[9],
        serde_json::json!({"date": yesterday, "currency": "EUR", "spend": sum.normalize().to_string(), "connections": 1})
    );
    // A connection the caller may not see (or none) is not found.
    let unknown = "conn_00000000000000000000000000000000";
    let r = app.http.get(app.url(&format!("/v1/spend?from={old_day}&to={yesterday}&connection_id={unknown}")));
    assert_eq!(r.bearer_auth(&staff).send().await.unwrap().status(), 404);
    let r = app.http.get(app.url(&format!("/v1/spend?from={old_day}&to={yesterday}&connection_id={}", c.id)));
    assert_eq!(r.bearer_auth(&viewer).send().await.unwrap().status(), 404, "not the viewer's");
    // A client viewer sees only their clients' connections (this one has none).
    let theirs = app.get_json(&format!("/v1/spend?from={old_day}&to={yesterday}"), &viewer).await;
    assert_eq!(theirs["facts"], serde_json::json!([]), "{theirs}");
    // Bad ranges are refused with what to do.
    let far = (today - Duration::days(40)).format("%Y-%m-%d").to_string();
    for (query, field) in [
        (format!("from={far}&to={yesterday}"), "to"),
        (format!("from={yesterday}&to={far}"), "to"),
        ("from=yesterday&to=today".into(), "from"),
        (format!("to={yesterday}"), "from"),
    ] {
        let r = app.http.get(app.url(&format!("/v1/spend?{query}"))).bearer_auth(&staff).send().await.unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_input", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{query}: {body}");
    }
    // The raw rows of a day sit beside its facts.
    let raw = a.sink.list(&format!("reports/ws_spend/{}/ad_spend/", c.id)).await.unwrap();
    assert_eq!(raw.len(), 32);
}

/// The history is read from today backwards, a window at a time, so the
/// last days are there first; the connection shows windows done of planned.
async fn the_first_sync_reads_the_newest_days_first_and_counts_its_windows(backend: Backend) {
    let sandbox = shared::catalog::Catalog::load(&shared::catalog::CatalogOptions {
        public_base_url: "http://unused".into(),
        include_sandbox: true,
        overrides: None,
    })
    .unwrap();
    let spend = sandbox.get("sandbox_oauth").unwrap().streams.iter().find(|s| s.name == "ad_spend").unwrap().clone();
    let overrides = serde_json::json!({"platforms": {"sandbox_oauth": {"streams": [spend]}}}).to_string();
    let app = spawn_app_on(backend, &[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let (_, c) = crate::lifecycle::connect_sandbox(&app, "ws_newest", "acct_newest").await;
    let a = &app.stack.app;
    // One job with room for one page: the newest window (today and the six
    // days before it), read whole, and nothing older yet.
    let budget = shared::flows::sync::Budget {
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(60),
        max_pages: Some(1),
    };
    shared::entry::lambda::run_sync_job(a, SyncJob::start(&c), budget).await.unwrap();
    let today = app.clock_now().date_naive();
    let day = |back: i64| (today - Duration::days(back)).format("%Y-%m-%d").to_string();
    for back in 0..7 {
        assert_eq!(facts_of(&app, "ws_newest", &day(back)).await.len(), 2, "{}", day(back));
    }
    assert!(facts_of(&app, "ws_newest", &day(7)).await.is_empty(), "older windows come later");
    let t = app.token("ws_newest", "u", "staff").await;
    let view = app.get_json(&format!("/v1/connections/{}", c.id), &t).await;
    let progress = &view["progress"]["ad_spend"];
    assert_eq!((progress["windows_done"].as_u64(), progress["windows_planned"].as_u64()), (Some(1), Some(5)), "{view}");
    assert_eq!(progress["percent"], 20);
    // The continuations read the rest, back to the history's first day.
    local_stack::workers::drain(&app.stack, QueueKind::Sync).await.unwrap();
    assert_eq!(facts_of(&app, "ws_newest", &day(30)).await.len(), 2);
    let c = a.repo.connection(&c.workspace_id, &c.id).await.unwrap().value;
    assert_eq!(c.status, Status::Connected, "{:?}", c.last_error);
    assert_eq!((c.cursors["ad_spend"].windows_done, c.cursors["ad_spend"].windows_planned), (5, Some(5)));
}
