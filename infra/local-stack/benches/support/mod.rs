//! What the benches share: a JSON server on loopback, the process's peak
//! memory, and a sandbox API-key connection synced once by the real engine.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::adapters::clock::SystemClock;
use shared::domain::ids::*;
use shared::domain::messages::SyncJob;
use shared::domain::*;
use shared::flows::sync::{Budget, Outcome};
use shared::wiring::{App, EmbeddedPorts};

/// The process's peak resident memory, in MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Serves JSON on loopback: `answer` gets each request's query string.
pub async fn serve(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> String {
    let answer = Arc::new(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let body = answer(req.uri().query().unwrap_or(""));
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

/// A sandbox API-key connection syncing `stream` of the overridden
/// catalog, synced once to the end: its seconds and its cursor after.
pub async fn sync_once(overrides: &str, stream: &str, dir: &std::path::Path) -> (f64, StreamCursor) {
    let config = shared::Config::from_lookup(|k| match k {
        "SANDBOX_PLATFORMS" => Some("true".into()),
        "ALLOW_LOOPBACK_PLATFORMS" => Some("true".into()),
        "CATALOG_OVERRIDES" => Some(overrides.to_owned()),
        _ => None,
    })
    .unwrap();
    let clock = Arc::new(SystemClock);
    let ports = EmbeddedPorts::open(&config, Some(dir), clock.clone()).unwrap();
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
        vec![StreamSelection { name: stream.into(), selected: true }],
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
    let _ = std::fs::remove_dir_all(dir);
    (seconds, done.cursors[stream].clone())
}
