//! Every report stream of the catalog syncs, through the real engine, from
//! the answer its vendor documents (`tests/conformance/reports/`: each
//! fixture names the page it follows), and its rows land in the daily spend
//! table as the fixture expects: dates, accounts, campaigns, exact money
//! (micros divided), counts. An asynchronous report is created, polled
//! while it is not ready (on delayed continuations), then downloaded from
//! its declared host and read. The requests themselves are held to the
//! vendors' descriptions in `conformance.rs`.

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use shared::catalog::ReportFile;
use shared::domain::messages::SyncJob;
use shared::domain::Status;

use crate::harness::{Backend, FakePlatform, Recorded, Reply};

#[derive(Deserialize)]
struct Example {
    #[allow(dead_code)]
    source: String,
    /// The answers by request path, in order (the last one repeats).
    answers: BTreeMap<String, Vec<Value>>,
    /// An asynchronous report's file (its rows), served at `/report-file`.
    #[serde(default)]
    file: Option<Value>,
    /// The facts expected, by day and campaign (the fields given).
    facts: Vec<Value>,
}

fn file_bytes(format: ReportFile, rows: &Value) -> Vec<u8> {
    use std::io::Write;
    let text = rows.to_string();
    match format {
        ReportFile::GzipJson => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            gz.finish().unwrap()
        }
        ReportFile::Json => text.into_bytes(),
        ReportFile::ZipCsv => {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            zip.start_file("report.csv", zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(rows.as_str().unwrap().as_bytes()).unwrap();
            zip.finish().unwrap().into_inner()
        }
        other => panic!("no fixture file format for {other:?}"),
    }
}

#[tokio::test]
async fn every_report_stream_syncs_from_the_answer_its_vendor_documents() {
    let catalog = crate::conformance::catalog();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/reports");
    let schema = crate::reports::schema();
    let (mut missing, mut synced) = (Vec::new(), Vec::new());
    for entry in catalog.entries() {
        for stream in entry.streams.iter().filter(|s| s.report.is_some()) {
            let file = dir.join(format!("{}.{}.json", entry.id, stream.name));
            let Ok(text) = std::fs::read_to_string(&file) else {
                missing.push(format!("{} {}", entry.id, stream.name));
                continue;
            };
            let asked: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
            let base: Arc<Mutex<String>> = Arc::default();
            let (log, fake_base) = (asked.clone(), base.clone());
            let spec = stream.report.clone().unwrap();
            let file_format = spec.job.as_ref().map(|j| j.file);
            let example_text = text.clone();
            let fake = FakePlatform::start(move |r: &Recorded| {
                let example: Example =
                    serde_json::from_str(&example_text.replace("{fake}", &fake_base.lock().unwrap())).unwrap();
                if r.path == "/report-file" {
                    let bytes = file_bytes(file_format.unwrap(), example.file.as_ref().unwrap());
                    return Reply::Bytes(200, "application/octet-stream", bytes);
                }
                let Some(answers) = example.answers.get(&r.path) else {
                    return Reply::Json(404, json!({"error": format!("not documented: {}", r.path)}));
                };
                let mut asked = log.lock().unwrap();
                let n = asked.entry(r.path.clone()).or_default();
                *n += 1;
                match &answers[(*n - 1).min(answers.len() - 1)] {
                    // A SOAP service answers XML.
                    Value::String(xml) => Reply::Text(200, "text/xml; charset=utf-8", xml.clone()),
                    json => Reply::Json(200, json.clone()),
                }
            })
            .await;
            *base.lock().unwrap() = fake.base.clone();
            let example: Example = serde_json::from_str(&text).unwrap();
            // One window from the fixture's first day to today.
            let first = example.facts.iter().filter_map(|f| f["date"].as_str()).min().unwrap().to_owned();
            let first = chrono::NaiveDate::parse_from_str(&first, "%Y-%m-%d").unwrap();
            let today = chrono::Utc::now().date_naive();
            let mut patched = entry.clone();
            {
                let s = patched.streams.iter_mut().find(|s| s.name == stream.name).unwrap();
                let r = s.report.as_mut().unwrap();
                r.history_days = Some((today - first).num_days() as u32);
                r.window_days = r.history_days.unwrap() + 2;
                if let Some(job) = r.job.as_mut() {
                    job.download_hosts = vec!["127.0.0.1".into()];
                }
            }
            let (app, ws, c) = crate::conformance::connection_on_fake(
                Backend::Embedded,
                &patched,
                &fake.base,
                std::slice::from_ref(&stream.name),
            )
            .await;
            let a = &app.stack.app;
            // The first job, then its continuations (a report job's polls).
            let mut job = SyncJob::start(&c);
            let mut after = c.clone();
            for _ in 0..10 {
                let outcome = shared::entry::lambda::run_sync_job(a, job, crate::sync::budget_for_tests()).await;
                assert!(outcome.is_ok(), "{} {}: {outcome:?}", entry.id, stream.name);
                after = a.repo.connection(&ws, &c.id).await.unwrap().value;
                if after.running.is_none() {
                    break;
                }
                job = SyncJob::resume(&after);
            }
            assert_eq!(after.status, Status::Connected, "{} {}: {:?}", entry.id, stream.name, after.last_error);
            let mut facts = Vec::new();
            for key in a.sink.list(&format!("spend/{ws}/")).await.unwrap() {
                let bytes = a.sink.get(&key).await.unwrap().unwrap();
                facts.extend(
                    bytes
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_slice::<Value>(l).unwrap()),
                );
            }
            let key = |f: &Value| (f["date"].to_string(), f["campaign_id"].to_string(), f["source"].to_string());
            facts.sort_by_key(key);
            assert_eq!(facts.len(), example.facts.len(), "{} {}: {facts:#?}", entry.id, stream.name);
            for (got, want) in facts.iter().zip(&example.facts) {
                let errors: Vec<String> = schema.iter_errors(got).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{} {}: {got}: {errors:?}", entry.id, stream.name);
                assert_eq!(
                    (got["platform"].as_str(), got["stream"].as_str()),
                    (Some(entry.id.as_str()), Some(stream.name.as_str()))
                );
                for (field, value) in want.as_object().unwrap() {
                    assert_eq!(&got[field], value, "{} {}: {field} of {got}", entry.id, stream.name);
                }
            }
            // An asynchronous report was created once, then polled on
            // continuations (not waited for) until it was ready.
            if spec.job.is_some() {
                let calls: usize = asked.lock().unwrap().values().sum();
                assert_eq!(calls, 3, "{} {}: created, polled twice", entry.id, stream.name);
                assert_eq!(fake.requests_to("/report-file").len(), 1);
                let download = &fake.requests_to("/report-file")[0];
                assert!(download.headers.get("authorization").is_none(), "no credentials go with the file's URL");
            }
            synced.push(format!("{} {}", entry.id, stream.name));
        }
    }
    assert!(missing.is_empty(), "report streams without a documented example: {missing:?}");
    for platform in [
        "google_ads",
        "meta_ads",
        "tiktok_ads",
        "pinterest_ads",
        "amazon_ads",
        "snapchat_ads",
        "x_ads",
        "microsoft_ads",
        "google_analytics",
    ] {
        assert!(synced.iter().any(|s| s.starts_with(platform)), "{platform} declares no report stream: {synced:?}");
    }
}

/// A fake Amazon Ads reporting API: each created report is pending for two
/// polls, then completed (or failed, when `fail` is set at its creation).
struct AsyncFake {
    fake: FakePlatform,
    creates: Arc<Mutex<u32>>,
    polls: Arc<Mutex<BTreeMap<String, u32>>>,
    fail: Arc<Mutex<bool>>,
}

async fn async_fake() -> AsyncFake {
    let creates: Arc<Mutex<u32>> = Arc::default();
    let polls: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let fail: Arc<Mutex<bool>> = Arc::default();
    let failing: Arc<Mutex<Vec<String>>> = Arc::default();
    let base: Arc<Mutex<String>> = Arc::default();
    let (c, p, f, b) = (creates.clone(), polls.clone(), fail.clone(), base.clone());
    let fake = FakePlatform::start(move |r: &Recorded| {
        let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/reporting/reports") => {
                let mut n = c.lock().unwrap();
                *n += 1;
                let id = format!("rep-{n}");
                if *f.lock().unwrap() {
                    failing.lock().unwrap().push(id.clone());
                }
                Reply::Json(200, json!({"reportId": id, "status": "PENDING"}))
            }
            ("GET", "/report-file") => Reply::Bytes(
                200,
                "application/octet-stream",
                file_bytes(
                    ReportFile::GzipJson,
                    &json!([{"date": today, "campaignId": 1, "campaignName": "Brand", "cost": 2.5, "campaignBudgetCurrencyCode": "USD"}]),
                ),
            ),
            ("GET", path) if path.starts_with("/reporting/reports/") => {
                let id = path.trim_start_matches("/reporting/reports/").to_owned();
                if failing.lock().unwrap().contains(&id) {
                    return Reply::Json(200, json!({"reportId": id, "status": "FAILED", "failureReason": "Internal error"}));
                }
                let mut polls = p.lock().unwrap();
                let n = polls.entry(id.clone()).or_default();
                *n += 1;
                if *n < 3 {
                    Reply::Json(200, json!({"reportId": id, "status": "PROCESSING", "url": null}))
                } else {
                    let url = format!("{}/report-file", b.lock().unwrap());
                    Reply::Json(200, json!({"reportId": id, "status": "COMPLETED", "url": url}))
                }
            }
            _ => Reply::Json(404, json!({"code": "404", "details": "not found"})),
        }
    })
    .await;
    *base.lock().unwrap() = fake.base.clone();
    AsyncFake { fake, creates, polls, fail }
}

fn amazon_one_window(hosts: &[&str]) -> shared::catalog::PlatformEntry {
    let mut entry = crate::conformance::catalog().get("amazon_ads").unwrap().clone();
    let s = entry.streams.iter_mut().find(|s| s.name == "sponsored_products_campaigns").unwrap();
    let r = s.report.as_mut().unwrap();
    (r.history_days, r.window_days) = (Some(2), 3);
    r.job.as_mut().unwrap().download_hosts = hosts.iter().map(|h| h.to_string()).collect();
    entry
}

both!(an_async_report_is_created_once_polled_on_continuations_and_asked_again_after_it_fails);

async fn an_async_report_is_created_once_polled_on_continuations_and_asked_again_after_it_fails(backend: Backend) {
    let f = async_fake().await;
    let entry = amazon_one_window(&["127.0.0.1"]);
    let streams = ["sponsored_products_campaigns".to_owned()];
    let (app, ws, c) = crate::conformance::connection_on_fake(backend, &entry, &f.fake.base, &streams).await;
    let a = &app.stack.app;
    let run = |job: SyncJob| shared::entry::lambda::run_sync_job(a, job, crate::sync::budget_for_tests());
    let load = || async { a.repo.connection(&ws, &c.id).await.unwrap().value };
    // The first job creates the report, saves its id and goes on later.
    run(SyncJob::start(&c)).await.unwrap();
    let after = load().await;
    assert!(after.running.is_some(), "the run waits for the report");
    let page = after.cursors["sponsored_products_campaigns"].page.clone().unwrap();
    assert!(page.contains("rep-1"), "the report's id is saved: {page}");
    assert_eq!(*f.creates.lock().unwrap(), 1);
    // Its continuation, delivered twice (queues deliver at least once):
    // the same report is polled, never created again.
    let resume = SyncJob::resume(&after);
    run(resume.clone()).await.unwrap();
    run(resume).await.unwrap();
    assert_eq!((*f.creates.lock().unwrap(), f.polls.lock().unwrap()["rep-1"]), (1, 2));
    assert!(load().await.running.is_some(), "still processing");
    // Completed: downloaded once, read, the run over.
    run(SyncJob::resume(&load().await)).await.unwrap();
    let after = load().await;
    assert!(after.running.is_none() && after.status == Status::Connected, "{:?}", after.last_error);
    assert_eq!(f.fake.requests_to("/report-file").len(), 1);
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let facts = a.sink.get(&format!("spend/{ws}/{today}/{}-sponsored_products_campaigns.jsonl", c.id)).await.unwrap();
    let fact: Value = serde_json::from_slice(facts.unwrap().split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!((fact["spend"].as_str(), fact["currency"].as_str()), (Some("2.5"), Some("USD")));
    // The next report fails at Amazon: the run fails with the reason, and
    // the run after it asks for a new report rather than polling the dead one.
    *f.fail.lock().unwrap() = true;
    app.clock.advance(chrono::Duration::days(1));
    run(SyncJob::start(&after).triggered(shared::domain::SyncTrigger::Scheduled)).await.unwrap();
    assert_eq!(*f.creates.lock().unwrap(), 2);
    let _ = run(SyncJob::resume(&load().await)).await;
    let failed = load().await;
    assert!(failed.last_error.as_ref().is_some_and(|e| e.message.contains("FAILED")), "{:?}", failed.last_error);
    *f.fail.lock().unwrap() = false;
    app.clock.advance(chrono::Duration::days(1));
    let _ = run(SyncJob::start(&load().await).triggered(shared::domain::SyncTrigger::Scheduled)).await;
    assert_eq!(*f.creates.lock().unwrap(), 3, "asked again");
    assert!(!f.polls.lock().unwrap().contains_key("rep-2"), "the failed report is never polled as pending");
}

/// A report file on a host the catalog does not name is not downloaded:
/// the address comes from the platform's answer, not from us.
#[tokio::test]
async fn a_report_file_elsewhere_than_the_declared_hosts_is_not_downloaded() {
    let f = async_fake().await;
    let entry = amazon_one_window(&["*.amazonaws.com"]);
    let streams = ["sponsored_products_campaigns".to_owned()];
    let (app, ws, c) = crate::conformance::connection_on_fake(Backend::Embedded, &entry, &f.fake.base, &streams).await;
    let a = &app.stack.app;
    let run = |job: SyncJob| shared::entry::lambda::run_sync_job(a, job, crate::sync::budget_for_tests());
    run(SyncJob::start(&c)).await.unwrap();
    for _ in 0..3 {
        let current = a.repo.connection(&ws, &c.id).await.unwrap().value;
        let _ = run(SyncJob::resume(&current)).await;
    }
    let after = a.repo.connection(&ws, &c.id).await.unwrap().value;
    assert_eq!(
        after.last_error.as_ref().map(|e| e.code.as_str()),
        Some("address_not_allowed"),
        "{:?}",
        after.last_error
    );
    assert!(f.fake.requests_to("/report-file").is_empty());
}

/// A stream of one sub-account (X's campaigns list, its stats report) is
/// not read while the connection has chosen none: the run completes, the
/// platform is asked nothing, and the report plans no window.
#[tokio::test]
async fn streams_of_a_sub_account_wait_until_one_is_chosen() {
    let fake =
        FakePlatform::start(|_: &Recorded| Reply::Json(500, json!({"errors": [{"message": "not expected"}]}))).await;
    let entry = crate::conformance::catalog().get("x_ads").unwrap().clone();
    let streams = ["campaigns".to_owned(), "account_stats".to_owned()];
    let (app, ws, c) = crate::conformance::connection_on_fake(Backend::Embedded, &entry, &fake.base, &streams).await;
    let a = &app.stack.app;
    let mut held = a.repo.connection(&ws, &c.id).await.unwrap();
    held.value.params.remove("account_id");
    a.repo.save(&held.value, held.version).await.unwrap();
    // (The helper's grant carries the example parameters too.)
    let grant = c.authorization_id().unwrap();
    let mut auth = a.repo.authorization(&ws, grant).await.unwrap();
    auth.value.params.remove("account_id");
    a.repo.save(&auth.value, auth.version).await.unwrap();
    shared::entry::lambda::run_sync_job(a, SyncJob::start(&c), crate::sync::budget_for_tests()).await.unwrap();
    let after = a.repo.connection(&ws, &c.id).await.unwrap().value;
    assert_eq!(after.status, Status::Connected, "{:?}", after.last_error);
    assert!(fake.requests().is_empty(), "nothing asked without an account");
    assert!(after.cursors["campaigns"].complete && after.cursors["account_stats"].complete);
    assert_eq!(after.cursors["account_stats"].windows_planned, Some(0));
}
