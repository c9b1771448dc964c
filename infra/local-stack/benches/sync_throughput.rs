//! Sync throughput: `cargo bench -p local-stack --bench sync_throughput`.
//!
//! A fake platform on loopback serves `SYNC_BENCH_RECORDS` records (default
//! 1,000,000; 100,000 first, to show memory does not grow with the count) in
//! pages of 1,000; the real sync engine pages through them with the
//! embedded adapters (records written as JSON Lines under a temporary
//! folder). Reports records per second and the process's peak memory.

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

const PAGE: usize = 1000;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn page(start: usize, total: usize) -> String {
    let mut body = String::with_capacity(PAGE * 130);
    body.push_str("{\"data\":[");
    let end = (start + PAGE).min(total);
    for i in start..end {
        if i > start {
            body.push(',');
        }
        let _ = write!(body, "{{\"id\":\"order-{i:08}\",\"amount\":\"{}.{:02}\",\"currency\":\"EUR\",\"updated_at\":\"2026-11-{:02}T10:00:00Z\"}}", i % 1000, i % 100, i % 28 + 1);
    }
    let next = if end < total { format!("\"{end}\"") } else { "null".into() };
    let _ = write!(body, "],\"next\":{next},\"total\":{total}}}");
    body
}

async fn fake_platform(total: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| async move {
                    let start = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                        .find(|(k, _)| k == "cursor")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let body = page(start, total);
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

async fn sync_once(total: usize) -> (f64, u64) {
    let base = fake_platform(total).await;
    let dir = std::env::temp_dir().join(format!("sync-bench-{}-{total}", std::process::id()));
    let overrides = serde_json::json!({"platforms": {"sandbox_api_key": {
        "api": {"base_url": base, "auth_header": ["Authorization", "Bearer {api_key}"]},
        "streams": [{"name": "orders", "path": "/orders", "records_pointer": "/data",
                     "pagination": {"style": "cursor_in_body", "next_pointer": "/next", "param": "cursor"},
                     "cursor_field": "updated_at", "page_size_param": "limit", "page_size": PAGE, "total_pointer": "/total"}]}}})
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
        vec![StreamSelection { name: "orders".into(), selected: true }],
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
    let records = done.cursors["orders"].records;
    let _ = std::fs::remove_dir_all(&dir);
    (records as f64 / seconds, records)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let total: usize = std::env::var("SYNC_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    println!("{:>10} {:>14} {:>14}", "records", "records/s", "peak RSS MB");
    for n in [total / 10, total] {
        let (rate, records) = runtime.block_on(sync_once(n));
        assert_eq!(records as usize, n);
        println!("{records:>10} {rate:>14.0} {:>14.1}", peak_rss_mb());
    }
}
