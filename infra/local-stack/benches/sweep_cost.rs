//! Sweep cost: `cargo bench -p local-stack --bench sweep_cost`.
//!
//! Stores `SWEEP_BENCH_N` authorizations (default 100,000; moto:
//! `SWEEP_BENCH_MOTO_N`, default 20,000, as moto writes slowly), 1% of them
//! due for a refresh, then runs one sweep against a fake token endpoint on
//! loopback. Reports items read, token requests made and the sweep's time,
//! for the embedded adapters and for the AWS adapters on a moto_server the
//! bench starts (skipped if moto_server is not installed). Target: items
//! read no more than twice the due count.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shared::adapters::{aws, clock::SystemClock};
use shared::domain::ids::*;
use shared::domain::tokens::TokenSet;
use shared::domain::*;
use shared::store::Entity;
use shared::wiring::{App, EmbeddedPorts, Ports};

async fn fake_token_endpoint(calls: Arc<AtomicUsize>) -> String {
    support::serve(move |_| {
        calls.fetch_add(1, Ordering::Relaxed);
        r#"{"access_token":"fresh","refresh_token":"rt-new","expires_in":3600}"#.to_owned()
    })
    .await
}

fn overrides(base: &str) -> String {
    serde_json::json!({"platforms": {"sandbox_oauth": {"oauth": {"token_url": format!("{base}/token"), "authorize_url": format!("{base}/authorize"), "probe_minutes": null}}}}).to_string()
}

fn config(base: &str, extra: &[(&str, String)]) -> shared::Config {
    let o = overrides(base);
    let extra: BTreeMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    shared::Config::from_lookup(|k| match k {
        "SANDBOX_PLATFORMS" => Some("true".into()),
        "ALLOW_LOOPBACK_PLATFORMS" => Some("true".into()),
        "CATALOG_OVERRIDES" => Some(o.clone()),
        "VAULT_WRITES_PER_SECOND" => Some("1000".into()),
        _ => extra.get(k).cloned(),
    })
    .unwrap()
}

/// Stores `n` authorizations; every 100th is due now (its token expires in
/// 10 minutes), the others in days.
async fn seed(app: &App, n: usize, batch: Option<(&aws_sdk_dynamodb::Client, &str)>) -> usize {
    let now = chrono::Utc::now();
    let ws = WorkspaceId::parse("ws_sweep").unwrap();
    let spec = app.catalog.get("sandbox_oauth").unwrap().oauth.clone().unwrap();
    shared::platform::AppCredentials::store(
        app.vault.as_ref(),
        &SecretRef::for_app(&app.config.secret_prefix, "sandbox_oauth"),
        "client",
        &secrecy::SecretString::from("secret".to_owned()),
    )
    .await
    .unwrap();
    let mut due = 0;
    let mut pending = Vec::new();
    for i in 0..n {
        let is_due = i % 100 == 0;
        let id = AuthorizationId::generate();
        let secret = app.packs.allocate(&app.config.secret_prefix, &ws, id.as_str()).await.unwrap();
        let tokens = TokenSet {
            access_token: "old".into(),
            refresh_token: Some("rt".into()),
            expires_at: Some(now + if is_due { chrono::Duration::minutes(10) } else { chrono::Duration::days(3) }),
            refresh_expires_at: None,
            scopes: vec![],
            obtained_at: now,
            token_secret: None,
        };
        if is_due {
            app.vault.put(&secret.0, &tokens.to_secret()).await.unwrap();
            due += 1;
        }
        let expiry = shared::domain::policy::expiry_facts(&spec, &tokens, now);
        // The due 1% are overdue; the rest are checked in days.
        let next_check = Some(if is_due {
            now - chrono::Duration::minutes(1)
        } else {
            shared::domain::policy::next_check(&spec, &expiry, now)
        });
        let mut auth = Authorization::new(
            id,
            ws.clone(),
            PlatformId::parse("sandbox_oauth").unwrap(),
            format!("Grant {i}"),
            None,
            vec![],
            BTreeMap::new(),
            expiry,
            next_check,
            secret,
            UserId::parse("bench").unwrap(),
            now,
        );
        auth.status = Status::Connected;
        match batch {
            None => {
                app.repo.create(&auth).await.unwrap();
            }
            Some((client, table)) => {
                pending.push(auth);
                if pending.len() == 25 || i + 1 == n {
                    let writes = pending.drain(..).map(|a| {
                        let due = a.due().unwrap();
                        let mut item = std::collections::HashMap::new();
                        use aws_sdk_dynamodb::types::AttributeValue as V;
                        item.insert("pk".to_owned(), V::S(format!("WS#{}", a.workspace_id)));
                        item.insert("sk".to_owned(), V::S(a.sk()));
                        item.insert("v".to_owned(), V::N("1".into()));
                        item.insert(
                            "body".to_owned(),
                            serde_dynamo::to_attribute_value(serde_json::to_value(&a).unwrap()).unwrap(),
                        );
                        item.insert("due_shard".to_owned(), V::S(format!("DUE#{:02}", due.shard)));
                        item.insert("due_at".to_owned(), V::N(due.at.to_string()));
                        aws_sdk_dynamodb::types::WriteRequest::builder()
                            .put_request(
                                aws_sdk_dynamodb::types::PutRequest::builder().set_item(Some(item)).build().unwrap(),
                            )
                            .build()
                    });
                    client.batch_write_item().request_items(table, writes.collect()).send().await.unwrap();
                }
            }
        }
    }
    due
}

async fn run(name: &str, app: &App, calls: &AtomicUsize, due: usize) {
    let started = Instant::now();
    let report = shared::flows::sweep::sweep(app).await.unwrap();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{name:>9} {due:>6} {:>11} {:>9} {:>9} {ms:>10.0} {:>8}",
        report.items_read,
        calls.load(Ordering::Relaxed),
        report.refreshed,
        if report.items_read <= 2 * due { "ok" } else { "OVER" }
    );
}

fn start_moto() -> Option<(String, std::process::Child)> {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let mut child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut lines = std::io::BufReader::new(child.stderr.take()?).lines();
    for line in lines.by_ref() {
        if line.ok()?.contains("Running on") {
            std::thread::spawn(move || for _ in lines {});
            return Some((format!("http://127.0.0.1:{port}"), child));
        }
    }
    None
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let n: usize = std::env::var("SWEEP_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let moto_n: usize = std::env::var("SWEEP_BENCH_MOTO_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    println!(
        "{:>9} {:>6} {:>11} {:>9} {:>9} {:>10} {:>8}",
        "adapters", "due", "items read", "requests", "refreshed", "sweep ms", "target"
    );
    runtime.block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let base = fake_token_endpoint(calls.clone()).await;
        let cfg = config(&base, &[]);
        let clock = Arc::new(SystemClock);
        let ports = EmbeddedPorts::open(&cfg, None, clock.clone()).unwrap();
        let app = App::assemble(cfg, ports.ports(clock)).unwrap();
        let due = seed(&app, n, None).await;
        run("embedded", &app, &calls, due).await;
    });
    let Some((endpoint, mut child)) = start_moto() else {
        println!("(moto_server not installed: the AWS adapters were not measured)");
        return;
    };
    runtime.block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let base = fake_token_endpoint(calls.clone()).await;
        let sdk = aws::sdk_config_for_endpoint(&endpoint, "us-east-1").await;
        let resources = aws::provision(&sdk, "sweepbench", 5).await.unwrap();
        let queues: Vec<(String, String)> = resources
            .queue_urls
            .iter()
            .map(|(k, v)| (format!("{}_QUEUE_URL", k.as_str().to_uppercase()), v.clone()))
            .collect();
        let mut extra = vec![("TABLE_NAME", resources.table.clone()), ("BUCKET_NAME", resources.bucket.clone())];
        for (k, v) in &queues {
            extra.push((if k.starts_with("SYNC") { "SYNC_QUEUE_URL" } else { "NOTIFY_QUEUE_URL" }, v.clone()));
        }
        let cfg = config(&base, &extra);
        let ports: Ports = App::aws_ports(&cfg, &sdk, Arc::new(SystemClock));
        let app = App::assemble(cfg, ports).unwrap();
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let due = seed(&app, moto_n, Some((&client, &resources.table))).await;
        run("moto", &app, &calls, due).await;
    });
    let _ = child.kill();
}
