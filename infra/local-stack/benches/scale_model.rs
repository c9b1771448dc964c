//! Scale and cost model: `cargo bench -p local-stack --bench scale_model`.
//!
//! Simulates a day of a deployment with `SCALE_N` connections (default
//! 1,000,000) by running the real scheduler (every minute), the real sweep
//! (every 5 minutes, as `template.yaml` schedules it) and the real sync
//! worker (every queued job) over 24 hours of simulated time, against the
//! embedded adapters wrapped in counters, on a sample of `SCALE_SAMPLE`
//! connections (default 10,000) spread evenly over the catalog's platforms
//! with their token lifetimes, refresh kinds and sync intervals. Platforms
//! are played in process: token requests get tokens of the catalog's
//! lifetime (a new refresh token where the platform rotates them), every
//! other request a 204 (no data). The sample's counts are scaled to N
//! (each connection's work is independent of the others'; the hottest
//! partition is a workspace of `SCALE_PER_WORKSPACE` connections, default
//! 10, and does not scale).
//!
//! Prints per second, mean and peak (the busiest 10 minutes): Secrets Manager
//! writes and reads, DynamoDB reads and writes (and the hottest partition's),
//! SQS messages, Lambda invocations; then the monthly cost at list prices.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use secrecy::SecretString;
use shared::adapters::clock::ManualClock;
use shared::catalog::{AuthMethod, RefreshKind};
use shared::domain::error::{HttpError, QueueError, StoreError, VaultError};
use shared::domain::ids::*;
use shared::domain::messages::{QueueKind, SyncJob};
use shared::domain::tokens::TokenSet;
use shared::domain::*;
use shared::ports::{Clock, Item, JobQueue, Page, PlatformHttp, Precondition, Received, SecretVault, StateStore};
use shared::wiring::{App, EmbeddedPorts, Ports};

const MINUTES: usize = 24 * 60;
const PEAK_WINDOW: usize = 10;

/// What is counted, per simulated minute.
#[derive(Clone, Copy)]
enum K {
    VaultWrite,
    VaultRead,
    DbRead,
    DbWrite,
    QueueSend,
    SyncRun,
    TokenRequest,
    PlatformRequest,
}
const KINDS: usize = 8;

struct Meter {
    minute: AtomicUsize,
    counts: Vec<[AtomicU64; KINDS]>,
    partitions: Mutex<HashMap<String, u64>>,
    reads: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// What is running: an index into [`PHASES`].
    phase: AtomicUsize,
}

const PHASES: [&str; 4] = ["setup", "sweep", "scheduler", "sync worker"];

impl Meter {
    fn new() -> Self {
        Self {
            minute: AtomicUsize::new(0),
            counts: (0..MINUTES).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
            partitions: Mutex::new(HashMap::new()),
            reads: Mutex::new(BTreeMap::new()),
            phase: AtomicUsize::new(0),
        }
    }
    fn add(&self, k: K, n: u64) {
        let m = self.minute.load(Ordering::Relaxed).min(MINUTES - 1);
        self.counts[m][k as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// Vault reads by kind of secret (`SCALE_READS=1` prints them).
    fn read_of(&self, name: &str) {
        let kind = ["/packs/auth-r", "/packs/auth-", "/packs/conn-", "/apps/", "/ws/"]
            .into_iter()
            .find(|k| name.contains(k))
            .unwrap_or("other");
        let phase = PHASES[self.phase.load(Ordering::Relaxed)];
        *self.reads.lock().unwrap().entry((phase, kind)).or_default() += 1;
    }
    fn partition(&self, pk: &str, units: u64) {
        *self.partitions.lock().unwrap().entry(pk.to_owned()).or_default() += units;
    }
    fn total(&self, k: K) -> u64 {
        self.counts.iter().map(|c| c[k as usize].load(Ordering::Relaxed)).sum()
    }
    /// The busiest `PEAK_WINDOW` minutes' count, per minute: a single
    /// minute of a sample is mostly sampling noise once scaled up.
    fn peak(&self, k: K) -> f64 {
        let per: Vec<u64> = self.counts.iter().map(|c| c[k as usize].load(Ordering::Relaxed)).collect();
        per.windows(PEAK_WINDOW).map(|w| w.iter().sum::<u64>()).max().unwrap_or(0) as f64 / PEAK_WINDOW as f64
    }
}

/// DynamoDB capacity units of an item (1 KB a write unit, 4 KB a read unit).
fn units(item: &Item, per: usize) -> u64 {
    let size = item.pk.len() + item.sk.len() + item.body.to_string().len() + 40;
    size.div_ceil(per) as u64
}

struct CountingStore(Arc<dyn StateStore>, Arc<Meter>);

#[async_trait]
impl StateStore for CountingStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let r = self.0.get(pk, sk).await?;
        self.1.add(K::DbRead, r.as_ref().map_or(1, |i| units(i, 4096)));
        Ok(r)
    }
    async fn put(&self, item: &Item, pre: Precondition) -> Result<(), StoreError> {
        let u = units(item, 1024);
        self.1.add(K::DbWrite, u);
        self.1.partition(&item.pk, u);
        self.0.put(item, pre).await
    }
    async fn delete(&self, pk: &str, sk: &str, pre: Precondition) -> Result<Option<Item>, StoreError> {
        self.1.add(K::DbWrite, 1);
        self.1.partition(pk, 1);
        self.0.delete(pk, sk, pre).await
    }
    async fn query(&self, pk: &str, sk_prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let page = self.0.query(pk, sk_prefix, after, limit).await?;
        let bytes: u64 = page.items.iter().map(|i| units(i, 1)).sum();
        self.1.add(K::DbRead, bytes.div_ceil(4096).max(1));
        Ok(page)
    }
    async fn due(&self, shard: u16, until: i64, limit: usize) -> Result<Vec<Item>, StoreError> {
        let items = self.0.due(shard, until, limit).await?;
        let bytes: u64 = items.iter().map(|i| units(i, 1)).sum();
        self.1.add(K::DbRead, bytes.div_ceil(4096).max(1));
        Ok(items)
    }
    /// The index's keys (one unit), then each item read (its own units).
    /// Its writes are not counted: keys only, an item costs the index a
    /// write only when its place changes (a connection's status rank).
    async fn listed(&self, pk: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let page = self.0.listed(pk, prefix, after, limit).await?;
        let units: u64 = page.items.iter().map(|i| units(i, 4096)).sum();
        self.1.add(K::DbRead, 1 + units);
        Ok(page)
    }
}

struct CountingVault(Arc<dyn SecretVault>, Arc<Meter>);

#[async_trait]
impl SecretVault for CountingVault {
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), VaultError> {
        self.1.add(K::VaultWrite, 1);
        self.0.put(name, value).await
    }
    async fn get(&self, name: &str) -> Result<Option<SecretString>, VaultError> {
        self.1.add(K::VaultRead, 1);
        self.1.read_of(name);
        self.0.get(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), VaultError> {
        self.1.add(K::VaultWrite, 1);
        self.0.delete(name).await
    }
    async fn put_version(&self, name: &str, version: &str, value: &SecretString) -> Result<(), VaultError> {
        self.1.add(K::VaultWrite, 1);
        self.0.put_version(name, version, value).await
    }
    async fn get_version(&self, name: &str, version: &str) -> Result<Option<SecretString>, VaultError> {
        self.1.add(K::VaultRead, 1);
        self.1.read_of(name);
        self.0.get_version(name, version).await
    }
}

struct CountingQueue(Arc<dyn JobQueue>, Arc<Meter>);

#[async_trait]
impl JobQueue for CountingQueue {
    async fn send(&self, queue: QueueKind, body: &str, delay_seconds: u32) -> Result<String, QueueError> {
        self.1.add(K::QueueSend, 1);
        self.0.send(queue, body, delay_seconds).await
    }
    async fn receive(&self, queue: QueueKind, max: u32, visibility_seconds: u32) -> Result<Vec<Received>, QueueError> {
        self.0.receive(queue, max, visibility_seconds).await
    }
    async fn ack(&self, queue: QueueKind, receipt: &str) -> Result<(), QueueError> {
        self.0.ack(queue, receipt).await
    }
}

/// Every platform of the catalog, in process: token requests get tokens of
/// the platform's lifetime, anything else a 204.
struct Platforms {
    /// Token endpoint path → (lifetime, rotating).
    token_paths: Vec<(String, u64, bool)>,
    meter: Arc<Meter>,
    serial: AtomicU64,
}

#[async_trait]
impl PlatformHttp for Platforms {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let path = request.uri().path().to_owned();
        if let Some((_, lifetime, rotating)) = self.token_paths.iter().find(|(p, _, _)| *p == path) {
            self.meter.add(K::TokenRequest, 1);
            let n = self.serial.fetch_add(1, Ordering::Relaxed);
            let mut body =
                serde_json::json!({"access_token": format!("at-{n}"), "token_type": "bearer", "expires_in": lifetime});
            if *rotating {
                body["refresh_token"] = format!("rt-{n}").into();
            }
            return Ok(http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Bytes::from(body.to_string()))
                .unwrap());
        }
        self.meter.add(K::PlatformRequest, 1);
        Ok(http::Response::builder().status(204).body(Bytes::new()).unwrap())
    }
}

fn path_of(template: &str) -> String {
    let rest = template.split_once("://").map_or(template, |(_, r)| r);
    rest.find('/').map_or("/".to_owned(), |i| rest[i..].split('?').next().unwrap_or("/").to_owned())
}

struct Setup {
    app: App,
    meter: Arc<Meter>,
    clock: Arc<ManualClock>,
    ports: EmbeddedPorts,
    /// The deployment's app credentials (every connection adds one secret
    /// of its own: its grant's tokens or its key).
    app_secrets: usize,
    by_platform: BTreeMap<String, usize>,
}

async fn setup(sample: usize, per_workspace: usize) -> Setup {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let clock = Arc::new(ManualClock::new(start));
    let config = shared::Config::from_lookup(|k| match k {
        "VAULT_WRITES_PER_SECOND" => Some("1000000".into()),
        _ => None,
    })
    .unwrap();
    let meter = Arc::new(Meter::new());
    let ports = EmbeddedPorts::open(&config, None, clock.clone()).unwrap();
    let base = ports.ports(clock.clone());
    let counted = Ports {
        store: Arc::new(CountingStore(base.store, meter.clone())),
        vault: Arc::new(CountingVault(base.vault, meter.clone())),
        queue: Arc::new(CountingQueue(base.queue, meter.clone())),
        ..base
    };
    let catalog = shared::catalog::Catalog::load(&shared::catalog::CatalogOptions::default()).unwrap();
    let token_paths = catalog
        .entries()
        .filter_map(|e| e.oauth.as_ref())
        .map(|o| {
            (path_of(&o.token_url), o.token_lifetime_seconds.unwrap_or(3600), o.refresh.kind == RefreshKind::Rotating)
        })
        .collect();
    let http = Arc::new(Platforms { token_paths, meter: meter.clone(), serial: AtomicU64::new(0) });
    let app = App::assemble_with_http(config, counted, http).unwrap();
    let platforms: Vec<_> =
        app.catalog.entries().filter(|e| !e.sandbox && e.method != AuthMethod::FileUpload).cloned().collect();
    let now = clock.now();
    let mut app_secrets = 0;
    let mut by_platform = BTreeMap::new();
    for entry in &platforms {
        if entry.oauth.is_some() {
            shared::platform::AppCredentials::store(
                app.vault.as_ref(),
                &SecretRef::for_app(&app.config.secret_prefix, entry.id.as_str()),
                "client",
                &SecretString::from("secret".to_owned()),
            )
            .await
            .unwrap();
            app_secrets += 1;
        }
    }
    for i in 0..sample {
        let entry = &platforms[i % platforms.len()];
        *by_platform.entry(entry.id.to_string()).or_insert(0) += 1;
        let ws = WorkspaceId::parse(&format!("ws_{}", i / per_workspace)).unwrap();
        // Spread over the day as real grants are: tokens part-way through
        // their lifetime, syncs part-way through their interval.
        // Independent draws for each salt (SplitMix64's finaliser): a plain
        // multiplicative sequence made the two draws of a connection move
        // together, so that whole platforms refreshed in step.
        let unit = |salt: u64| {
            let mut z = (i as u64).wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        };
        let (spread, phase) = (unit(1), unit(0x5851_F42D));
        let params: BTreeMap<String, String> =
            entry.params.iter().map(|p| (p.name.clone(), p.example.clone().unwrap_or_else(|| "sim".into()))).collect();
        let credential = match (&entry.oauth, entry.method) {
            (Some(spec), AuthMethod::Oauth2 | AuthMethod::Oauth1) => {
                let id = AuthorizationId::generate();
                let secret = shared::flows::secrets::grant_secret(&app, &ws, &id, entry).await.unwrap();
                let lifetime = spec
                    .token_lifetime_seconds
                    .map(|s| chrono::Duration::seconds((s as f64 * (0.05 + 0.95 * spread)) as i64));
                let tokens = TokenSet {
                    access_token: format!("at-seed-{i}"),
                    refresh_token: spec.refresh.kind.is_refreshable().then(|| format!("rt-seed-{i}")),
                    expires_at: lifetime.map(|l| now + l),
                    refresh_expires_at: None,
                    scopes: vec![],
                    obtained_at: now,
                    token_secret: (entry.method == AuthMethod::Oauth1).then(|| "ts".to_owned()),
                };
                // As a connect stores them: a renewable access token sealed
                // in the item, the rest in the vault.
                let (copy, sealed) = shared::flows::refresh::vault_copy(&app, &id, &tokens).await;
                app.vault.put(&secret.0, &copy.to_secret()).await.unwrap();
                let expiry = policy::expiry_facts(spec, &tokens, now);
                let next_check = Some(policy::next_check(spec, &expiry, now));
                let mut auth = Authorization::new(
                    id.clone(),
                    ws.clone(),
                    entry.id.clone(),
                    format!("Grant {i}"),
                    None,
                    vec![],
                    params,
                    expiry,
                    next_check,
                    secret,
                    UserId::parse("sim").unwrap(),
                    now,
                );
                auth.status = Status::Connected;
                auth.access = sealed;
                app.repo.create(&auth).await.unwrap();
                Credential::Authorization { authorization_id: id }
            }
            _ => {
                let secret = app.packs.allocate(&app.config.secret_prefix, &ws, &format!("conn_key{i}")).await.unwrap();
                app.vault.put(&secret.0, &SecretString::from(r#"{"api_key":"k"}"#.to_owned())).await.unwrap();
                Credential::ApiKey { secret, hint: "k".into(), last_verified_at: now, fingerprint: String::new() }
            }
        };
        let streams = entry.streams.iter().map(|s| StreamSelection { name: s.name.clone(), selected: true }).collect();
        let mut c = Connection::new(
            ws,
            entry.id.clone(),
            format!("Source {i}"),
            ConnectionRole::Source,
            None,
            credential,
            streams,
            UserId::parse("sim").unwrap(),
            now - chrono::Duration::days(30),
        );
        c.status = Status::Connected;
        c.initial_sync_done = true;
        c.last_synced_at = Some(now - chrono::Duration::minutes(5));
        let interval = shared::flows::schedule::interval_minutes(&app, &c);
        c.next_sync_at = Some(now + chrono::Duration::seconds((f64::from(interval) * 60.0 * phase) as i64));
        app.repo.create(&c).await.unwrap();
    }
    // Seeding is not the day's work.
    for m in &meter.counts {
        for c in m {
            c.store(0, Ordering::Relaxed);
        }
    }
    meter.partitions.lock().unwrap().clear();
    Setup { app, meter, clock, ports, app_secrets, by_platform }
}

/// Runs every queued sync job that is visible now.
async fn drain_sync(s: &Setup) -> u64 {
    let mut runs = 0;
    loop {
        let got = s.ports.queue.receive(QueueKind::Sync, 10, 900).await.unwrap();
        if got.is_empty() {
            return runs;
        }
        for m in got {
            let job: SyncJob = serde_json::from_str(&m.body).unwrap();
            let budget = shared::flows::sync::Budget::until(Instant::now() + Duration::from_secs(600));
            s.meter.add(K::SyncRun, 1);
            runs += 1;
            let _ = shared::flows::sync::handle_job(&s.app, job, budget).await;
            s.ports.queue.ack(QueueKind::Sync, &m.receipt).await.unwrap();
        }
    }
}

// AWS list prices, us-east-1, on demand, no free tier (2026). DynamoDB's
// on-demand request prices are those since November 2024, when they were
// halved (from $1.25 and $0.25 a million).
const SECRET_MONTH: f64 = 0.40;
const SECRET_PER_10K_CALLS: f64 = 0.05;
const DDB_PER_MILLION_WRITES: f64 = 0.625;
const DDB_PER_MILLION_READS: f64 = 0.125;
const DDB_GB_MONTH: f64 = 0.25;
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4; // arm64
const LAMBDA_PER_MILLION: f64 = 0.20;
const SQS_PER_MILLION: f64 = 0.40;
// Lambda time per piece of work (measured in the local stack's logs; a sync
// run of a page or two is dominated by the platform's answer time).
const SYNC_RUN_SECONDS: f64 = 1.0;
const SYNC_WORKER_GB: f64 = 0.5;
const SWEEP_SECONDS: f64 = 1.0;
const SCHEDULER_SECONDS: f64 = 0.5;
const SMALL_GB: f64 = 0.25;
const ITEM_KB_PER_CONNECTION: f64 = 6.0;

fn main() {
    let n: f64 = std::env::var("SCALE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000.0);
    let sample: usize = std::env::var("SCALE_SAMPLE").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let per_workspace: usize = std::env::var("SCALE_PER_WORKSPACE").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let s = setup(sample, per_workspace).await;
        let started = Instant::now();
        let mut sweeps = 0u64;
        for minute in 0..MINUTES {
            s.meter.minute.store(minute, Ordering::Relaxed);
            if minute > 0 {
                s.clock.advance(chrono::Duration::minutes(1));
            }
            if minute % 5 == 0 {
                s.meter.phase.store(1, Ordering::Relaxed);
                shared::flows::sweep::sweep(&s.app).await.unwrap();
                sweeps += 1;
            }
            s.meter.phase.store(2, Ordering::Relaxed);
            shared::flows::schedule::tick(&s.app).await.unwrap();
            s.meter.phase.store(3, Ordering::Relaxed);
            drain_sync(&s).await;
        }
        let scale = n / sample as f64;
        let day = 86_400.0;
        let m = &s.meter;
        let per_s = |k: K| (m.total(k) as f64 * scale / day, m.peak(k) * scale / 60.0);
        println!(
            "{} connections modelled from a sample of {sample} over 24 h simulated ({:.0} s); {} per workspace",
            n as u64,
            started.elapsed().as_secs_f64(),
            per_workspace
        );
        println!("sample by platform: {:?}", s.by_platform);
        println!("{:<34} {:>12} {:>12}", "per second", "mean", format!("peak {PEAK_WINDOW} min"));
        for (name, k) in [
            ("Secrets Manager writes", K::VaultWrite),
            ("Secrets Manager reads", K::VaultRead),
            ("DynamoDB read units", K::DbRead),
            ("DynamoDB write units", K::DbWrite),
            ("SQS messages sent", K::QueueSend),
            ("sync runs (worker invocations)", K::SyncRun),
            ("token requests (refreshes)", K::TokenRequest),
            ("other platform requests", K::PlatformRequest),
        ] {
            let (mean, peak) = per_s(k);
            println!("{name:<34} {mean:>12.1} {peak:>12.1}");
        }
        let (refreshes, _) = per_s(K::TokenRequest);
        let (writes, _) = per_s(K::VaultWrite);
        println!(
            "refreshes that wrote only the state item (access token sealed): {:.1}/s; before, each was a vault write ({:.1}/s in all)",
            (refreshes - writes).max(0.0),
            writes + (refreshes - writes).max(0.0)
        );
        let hottest = m.partitions.lock().unwrap().values().copied().max().unwrap_or(0);
        println!(
            "{:<34} {:>12.3} {:>12}",
            "hottest partition write units",
            hottest as f64 / day,
            format!("(of 1,000/s)")
        );
        println!("sweeps {sweeps}, scheduler ticks {MINUTES}");
        if std::env::var("SCALE_MINUTES").is_ok() {
            for (i, c) in m.counts.iter().enumerate() {
                println!("minute {i:>4}: vault writes {:>5} refreshes {:>5} sync runs {:>5}", c[K::VaultWrite as usize].load(Ordering::Relaxed), c[K::TokenRequest as usize].load(Ordering::Relaxed), c[K::SyncRun as usize].load(Ordering::Relaxed));
            }
        }
        if std::env::var("SCALE_READS").is_ok() {
            for ((phase, kind), n) in m.reads.lock().unwrap().iter() {
                println!("vault reads, {phase:<11} of {kind:<14} {:>10.1}/s", *n as f64 * scale / day);
            }
        }
        if std::env::var("SCALE_HOURLY").is_ok() {
            for h in 0..24 {
                let sum = |k: K| -> u64 { (h * 60..h * 60 + 60).map(|i| m.counts[i][k as usize].load(Ordering::Relaxed)).sum() };
                println!(
                    "hour {h:>2}: vault writes {:>8.1}/s refreshes {:>8.1}/s sync runs {:>8.1}/s",
                    sum(K::VaultWrite) as f64 * scale / 3600.0,
                    sum(K::TokenRequest) as f64 * scale / 3600.0,
                    sum(K::SyncRun) as f64 * scale / 3600.0
                );
            }
        }

        // Monthly cost at N.
        let month = 30.0;
        let total = |k: K| m.total(k) as f64 * scale * month;
        // The secrets the vault holds: credential packs (and anything
        // spilled from them) grow with the connections; the apps' and the
        // deployment's keys do not.
        let names = s.ports.vault.names();
        let packs = names.iter().filter(|n| n.contains("/packs/") && !n.contains("/ws/")).count() as f64;
        let own = names.iter().filter(|n| n.contains("/ws/")).count() as f64;
        let fixed = (names.len() as f64 - packs - own).max(s.app_secrets as f64);
        let secrets = (packs + own) * scale + fixed;
        println!(
            "secrets: {packs} packs ({} a pack at most) and {own} secrets of their own for the {sample} credentials of the sample, {fixed} of the apps and keys; {secrets:.0} at {}",
            s.app.config.vault_pack_size,
            n as u64
        );
        let lines = [
            ("Secrets Manager: secrets", secrets * SECRET_MONTH),
            (
                "Secrets Manager: API calls",
                (total(K::VaultRead) + total(K::VaultWrite)) / 10_000.0 * SECRET_PER_10K_CALLS,
            ),
            (
                "DynamoDB: requests",
                total(K::DbWrite) / 1e6 * DDB_PER_MILLION_WRITES + total(K::DbRead) / 1e6 * DDB_PER_MILLION_READS,
            ),
            ("DynamoDB: storage", n * ITEM_KB_PER_CONNECTION / 1e6 * DDB_GB_MONTH),
            (
                "Lambda",
                total(K::SyncRun) * (SYNC_RUN_SECONDS * SYNC_WORKER_GB * LAMBDA_GB_SECOND + LAMBDA_PER_MILLION / 1e6)
                    + (sweeps as f64 * SWEEP_SECONDS + MINUTES as f64 * SCHEDULER_SECONDS)
                        * month
                        * SMALL_GB
                        * LAMBDA_GB_SECOND,
            ),
            ("SQS", total(K::QueueSend) * 3.0 / 1e6 * SQS_PER_MILLION),
        ];
        let sum: f64 = lines.iter().map(|(_, d)| d).sum();
        println!("{:<34} {:>14} {:>16}", "monthly cost", "USD", "per 1,000 conn.");
        for (what, dollars) in lines {
            println!("{what:<34} {dollars:>14.0} {:>16.2}", dollars / n * 1000.0);
        }
        println!("{:<34} {sum:>14.0} {:>16.2}", "total", sum / n * 1000.0);
        // Before packing: a secret a credential.
        let unpacked = (n + s.app_secrets as f64) * SECRET_MONTH + sum - lines[0].1;
        println!("{:<34} {unpacked:>14.0} {:>16.2}", "before packing (a secret each)", unpacked / n * 1000.0);
    });
}
