//! API latency: `cargo bench -p local-stack --bench api_latency`.
//!
//! Boots the local stack (embedded adapters, in memory) on loopback, stores
//! 50, 1,000 and 10,000 connections in one workspace each (`API_BENCH_SIZES`), and
//! times `GET /v1/connections` as an admin: one client in a row (p50 and
//! p99), then 16 clients at once for two seconds (requests per second and
//! p50), client and server on the same machine.

use std::time::{Duration, Instant};

use shared::domain::ids::*;
use shared::domain::*;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn seed(app: &shared::App, ws: &WorkspaceId, n: usize) {
    let now = chrono::Utc::now();
    for i in 0..n {
        let secret = SecretRef::for_owner(&app.config.secret_prefix, ws, &format!("conn-{i}"));
        let mut c = Connection::new(
            ws.clone(),
            PlatformId::parse("sandbox_api_key").unwrap(),
            format!("Store {i}"),
            ConnectionRole::Source,
            None,
            Credential::ApiKey { secret, hint: "abcd".into(), last_verified_at: now, fingerprint: String::new() },
            vec![StreamSelection { name: "orders".into(), selected: true }],
            UserId::parse("bench").unwrap(),
            now,
        );
        c.status = Status::Connected;
        c.initial_sync_done = true;
        c.last_synced_at = Some(now);
        app.repo.create(&c).await.unwrap();
    }
    // Stored by this version: every one is in the list index already.
    let ready = shared::store::listing::ListIndexState { since: now, ready: true };
    app.repo.set_list_index_state(ws, &ready).await.unwrap();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let sizes: Vec<usize> = std::env::var("API_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![50, 1000, 10_000]);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let booted = local_stack::boot(&listener, |k| match k {
            "CONNECTIONS_BACKEND" => Some("embedded".into()),
            "DATA_DIR" => Some(String::new()),
            "LOG_LEVEL" | "RUST_LOG" => Some("error".into()),
            _ => None,
        })
        .await
        .unwrap();
        let stack = booted.stack.clone();
        tokio::spawn(local_stack::serve(listener, booted.stack));
        shared::adapters::tls::install_default_provider();
        let client = reqwest::Client::new();
        println!(
            "{:>12} {:>10} {:>10} {:>16} {:>16}",
            "connections", "p50 ms", "p99 ms", "16 clients req/s", "16 clients p50"
        );
        for (k, n) in sizes.into_iter().enumerate() {
            let ws = WorkspaceId::parse(&format!("ws_api_{k}")).unwrap();
            seed(&stack.app, &ws, n).await;
            let request = local_stack::devtoken::TokenRequest {
                workspace_id: ws.to_string(),
                user_id: "admin".into(),
                role: "admin".into(),
                email: None,
            };
            let (token, _) = stack.tokens.mint(&request, chrono::Utc::now().timestamp()).unwrap();
            let url = format!("{base}/v1/connections");
            let get = |client: reqwest::Client, url: String, token: String| async move {
                let started = Instant::now();
                let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.unwrap();
                started.elapsed().as_secs_f64() * 1000.0
            };
            for _ in 0..20 {
                get(client.clone(), url.clone(), token.clone()).await;
            }
            let mut one = Vec::new();
            for _ in 0..300 {
                one.push(get(client.clone(), url.clone(), token.clone()).await);
            }
            one.sort_by(f64::total_cmp);
            let until = Instant::now() + Duration::from_secs(2);
            let workers: Vec<_> = (0..16)
                .map(|_| {
                    let (client, url, token) = (client.clone(), url.clone(), token.clone());
                    tokio::spawn(async move {
                        let mut times = Vec::new();
                        while Instant::now() < until {
                            times.push(get(client.clone(), url.clone(), token.clone()).await);
                        }
                        times
                    })
                })
                .collect();
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.await.unwrap());
            }
            all.sort_by(f64::total_cmp);
            println!(
                "{n:>12} {:>10.2} {:>10.2} {:>16.0} {:>16.2}",
                percentile(&one, 0.5),
                percentile(&one, 0.99),
                all.len() as f64 / 2.0,
                percentile(&all, 0.5)
            );
        }
    });
}
