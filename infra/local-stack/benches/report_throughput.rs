//! Report throughput: `cargo bench -p local-stack --bench report_throughput`.
//!
//! A fake ad platform on loopback serves a daily campaign report: for each
//! requested window (`since`..`until`), one row a day for each of
//! `REPORT_BENCH_CAMPAIGNS` campaigns (default 500). The real engine reads
//! two years of it (`history_days` 730, 30-day windows, newest first) with
//! the embedded adapters, writing each day's raw rows and spend facts.
//! Reports rows per second and the process's peak memory (which a window's
//! rows bound, not the history's).

use bytes::Bytes;
use http_body_util::Full;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::adapters::clock::SystemClock;
use shared::domain::ids::*;
use shared::domain::messages::SyncJob;
use shared::domain::*;
use shared::flows::sync::{Budget, Outcome};
use shared::wiring::{App, EmbeddedPorts};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One window of the report: every day, every campaign.
fn window(since: chrono::NaiveDate, until: chrono::NaiveDate, campaigns: usize) -> String {
    let days = (until - since).num_days().max(0) as usize + 1;
    let mut body = String::with_capacity(days * campaigns * 190 + 16);
    body.push_str("{\"data\":[");
    let mut first = true;
    let mut day = since;
    while day <= until {
        let date = day.format("%Y-%m-%d");
        for c in 0..campaigns {
            if !first {
                body.push(',');
            }
            first = false;
            let cents = (c * 37 + day.format("%j").to_string().parse::<usize>().unwrap_or(0) * 11) % 100_000;
            let _ = write!(
                body,
                "{{\"date\":\"{date}\",\"campaign_id\":\"cmp_{c:05}\",\"campaign_name\":\"Campaign {c}\",\"spend\":\"{}.{:02}\",\"currency\":\"EUR\",\"impressions\":{},\"clicks\":{},\"conversions\":{},\"conversion_value\":\"{}.00\"}}",
                cents / 100,
                cents % 100,
                1000 + cents % 5000,
                cents % 300,
                cents % 7,
                cents % 7 * 25
            );
        }
        day = day.succ_opt().unwrap();
    }
    body.push_str("]}");
    body
}

async fn fake_platform(campaigns: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| async move {
                    let q: std::collections::HashMap<String, String> =
                        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
                    let day = |k: &str| chrono::NaiveDate::parse_from_str(&q[k], "%Y-%m-%d").unwrap();
                    let body = window(day("since"), day("until"), campaigns);
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

async fn sync_history(campaigns: usize, days: u32) -> (f64, u64, u64) {
    let base = fake_platform(campaigns).await;
    let dir = std::env::temp_dir().join(format!("report-bench-{}-{campaigns}-{days}", std::process::id()));
    let overrides = serde_json::json!({"platforms": {"sandbox_api_key": {
        "api": {"base_url": base, "auth_header": ["Authorization", "Bearer {api_key}"]},
        "streams": [{"name": "spend", "path": "/report", "records_pointer": "/data", "pagination": {"style": "none"},
                     "report": {"query": {"since": "{from}", "until": "{to}"}, "window_days": 30, "history_days": days,
                                "date_pointer": "/date",
                                "spend": {"spend": "/spend", "currency": "/currency", "campaign_id": "/campaign_id",
                                          "campaign_name": "/campaign_name", "impressions": "/impressions", "clicks": "/clicks",
                                          "conversions": "/conversions", "conversion_value": "/conversion_value"}}}]}}})
    .to_string();
    let config = shared::Config::from_lookup(|k| match k {
        "SANDBOX_PLATFORMS" => Some("true".into()),
        "ALLOW_LOOPBACK_PLATFORMS" => Some("true".into()),
        "CATALOG_OVERRIDES" => Some(overrides.clone()),
        _ => None,
    })
    .unwrap();
    let clock = Arc::new(SystemClock);
    let ports = EmbeddedPorts::open(&config, Some(&dir), clock.clone()).unwrap();
    let app = App::assemble(config, ports.ports(clock)).unwrap();
    let ws = WorkspaceId::parse("ws_bench").unwrap();
    let secret = SecretRef::for_owner(&app.config.secret_prefix, &ws, "bench-key");
    app.vault
        .put(&secret.0, &secrecy::SecretString::from(r#"{"api_key":"sandbox-valid-bench"}"#.to_owned()))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let mut connection = Connection::new(
        ws,
        PlatformId::parse("sandbox_api_key").unwrap(),
        "Bench".into(),
        ConnectionRole::Source,
        None,
        Credential::ApiKey { secret, hint: "ench".into(), last_verified_at: now, fingerprint: String::new() },
        vec![StreamSelection { name: "spend".into(), selected: true }],
        UserId::parse("bench").unwrap(),
        now,
    );
    connection.status = Status::InitialSyncInProgress;
    app.repo.create(&connection).await.unwrap();
    let started = Instant::now();
    let outcome = shared::flows::sync::run_job(
        &app,
        &SyncJob::start(&connection),
        Budget::until(Instant::now() + Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(outcome, Outcome::Completed);
    let done = app.repo.connection(&connection.workspace_id, &connection.id).await.unwrap().value;
    let cursor = &done.cursors["spend"];
    let _ = std::fs::remove_dir_all(&dir);
    (cursor.records as f64 / seconds, cursor.records, cursor.windows_done)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let campaigns: usize = std::env::var("REPORT_BENCH_CAMPAIGNS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    println!("{:>10} {:>10} {:>8} {:>12} {:>14}", "campaigns", "rows", "windows", "rows/s", "peak RSS MB");
    // A quarter first, then two years: memory stays with the window.
    for days in [90, 730] {
        let (rate, rows, windows) = runtime.block_on(sync_history(campaigns, days));
        assert_eq!(rows as usize, campaigns * (days as usize + 1));
        println!("{campaigns:>10} {rows:>10} {windows:>8} {rate:>12.0} {:>14.1}", peak_rss_mb());
    }
}
