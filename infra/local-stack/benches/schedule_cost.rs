//! Scheduler cost: `cargo bench -p local-stack --bench schedule_cost`.
//!
//! Stores `SCHEDULE_BENCH_N` connections (default 100,000), 1% of them due
//! for their next sync, and runs one scheduler tick on the embedded
//! adapters. Reports items read, jobs queued and the tick's time. Targets:
//! items read no more than twice the due count (the scheduler reads only
//! the due index, never scans), jobs queued equal to the due count, and a
//! second tick right after queues nothing (every slot was claimed).

use std::sync::Arc;
use std::time::Instant;

use shared::adapters::clock::SystemClock;
use shared::domain::ids::*;
use shared::domain::*;
use shared::wiring::{App, EmbeddedPorts};

/// Stores `n` connections; every 100th is due a minute ago, the others in
/// hours to days. All synced half an hour ago (none is stale).
async fn seed(app: &App, n: usize) -> usize {
    let now = chrono::Utc::now();
    let ws = WorkspaceId::parse("ws_schedule").unwrap();
    let authorization_id = AuthorizationId::generate();
    let mut due = 0;
    for i in 0..n {
        let is_due = i % 100 == 0;
        let mut c = Connection::new(
            ws.clone(),
            PlatformId::parse("sandbox_oauth").unwrap(),
            format!("Source {i}"),
            ConnectionRole::Source,
            None,
            Credential::Authorization { authorization_id: authorization_id.clone() },
            vec![StreamSelection { name: "orders".into(), selected: true }],
            UserId::parse("bench").unwrap(),
            now - chrono::Duration::days(1),
        );
        c.status = Status::Connected;
        c.initial_sync_done = true;
        c.last_synced_at = Some(now - chrono::Duration::minutes(30));
        c.next_sync_at = Some(if is_due {
            now - chrono::Duration::minutes(1)
        } else {
            now + chrono::Duration::minutes(30 + (i % 5000) as i64)
        });
        if is_due {
            due += 1;
        }
        app.repo.create(&c).await.unwrap();
    }
    due
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let n: usize = std::env::var("SCHEDULE_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    println!(
        "{:>9} {:>8} {:>6} {:>11} {:>7} {:>8} {:>11} {:>8}",
        "adapters", "stored", "due", "items read", "queued", "tick ms", "second tick", "target"
    );
    runtime.block_on(async {
        let cfg = shared::Config::from_lookup(|k| match k {
            "SANDBOX_PLATFORMS" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        let clock = Arc::new(SystemClock);
        let ports = EmbeddedPorts::open(&cfg, None, clock.clone()).unwrap();
        let app = App::assemble(cfg, ports.ports(clock)).unwrap();
        let due = seed(&app, n).await;
        let started = Instant::now();
        let report = shared::flows::schedule::tick(&app).await.unwrap();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let again = shared::flows::schedule::tick(&app).await.unwrap();
        let ok = report.items_read <= 2 * due && report.scheduled == due && again.scheduled == 0 && report.stale == 0;
        println!(
            "{:>9} {n:>8} {due:>6} {:>11} {:>7} {ms:>8.0} {:>11} {:>8}",
            "embedded",
            report.items_read,
            report.scheduled,
            again.scheduled,
            if ok { "ok" } else { "MISSED" }
        );
        assert!(ok, "the scheduler missed its target: {report:?}, then {again:?}");
    });
}
