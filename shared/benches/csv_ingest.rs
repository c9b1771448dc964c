//! CSV throughput: `cargo bench -p shared --bench csv_ingest`.
//!
//! Generates custom-costs files of 10 MB and 100 MB on disk (streamed, never
//! in memory), then for each: validation alone, and the full ingestion
//! (validate, stage parts, commit) through the embedded adapters. Reports
//! MB/s and the process's peak resident memory after each run: memory that
//! does not grow with file size shows as the same peak for both sizes.
//! `CSV_BENCH_MB=500` adds a size.

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Instant;

use shared::adapters::clock::SystemClock;
use shared::costs::{self, Options};
use shared::domain::ids::{UserId, WorkspaceId};
use shared::domain::upload::{UploadOptions, UploadSource, UploadState};
use shared::domain::{Caller, Role};
use shared::flows::file_uploads as uploads;
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

fn generate(path: &std::path::Path, megabytes: u64) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    writeln!(out, "date,category,description,amount,currency,sku,channel,recurrence").unwrap();
    let (mut written, mut n) = (0u64, 0u64);
    let target = megabytes * 1024 * 1024;
    let categories = ["shipping", "agency fees", "tools", "cogs adjustment", "payment fees"];
    while written < target {
        let line = format!(
            "2026-{:02}-{:02},{},Cost line number {n} with a description,{}.{:02},EUR,SKU-{:06},online,one_off\n",
            n % 12 + 1,
            n % 28 + 1,
            categories[(n % 5) as usize],
            n % 10_000,
            n % 100,
            n % 1_000_000
        );
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        n += 1;
    }
    out.flush().unwrap();
    n
}

fn main() {
    let dir = std::env::temp_dir().join(format!("csv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut sizes = vec![10u64, 100];
    if let Some(extra) = std::env::var("CSV_BENCH_MB").ok().and_then(|v| v.parse().ok()) {
        sizes.push(extra);
    }
    println!("{:>8} {:>10} {:>16} {:>16} {:>14}", "size MB", "rows", "validate MB/s", "ingest MB/s", "peak RSS MB");
    for mb in sizes {
        let file = dir.join(format!("costs-{mb}.csv"));
        let rows = generate(&file, mb);
        let bytes = std::fs::metadata(&file).unwrap().len();
        let limits = costs::Limits { max_bytes: u64::MAX, max_rows: u64::MAX };

        let started = Instant::now();
        let reader = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&file).unwrap());
        let report = costs::validate(reader, limits, &Options::default(), |_| Ok(())).expect("valid file");
        let validate = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
        assert_eq!(report.valid_rows, rows);

        let data = dir.join(format!("data-{mb}"));
        let ingest = runtime.block_on(async {
            let config = shared::Config::from_lookup(|_| None).unwrap();
            let clock = Arc::new(SystemClock);
            let ports = EmbeddedPorts::open(&config, Some(&data), clock.clone()).unwrap();
            let app = App::assemble(config, ports.ports(clock)).unwrap();
            let caller = Caller {
                clients: None,
                workspace_id: WorkspaceId::parse("ws_bench").unwrap(),
                user_id: UserId::parse("bench").unwrap(),
                role: Role::Admin,
                email: None,
            };
            let request =
                serde_json::from_value(serde_json::json!({"platform": "custom_costs", "name": "Bench"})).unwrap();
            let connection = uploads::create(&app, &caller, request).await.unwrap();
            let upload = uploads::begin(
                &app,
                &caller.workspace_id,
                &connection.id,
                UploadSource::Presigned,
                &UploadOptions::default(),
                None,
            )
            .await
            .unwrap();
            let started = Instant::now();
            let reader = tokio::fs::File::open(&file).await.unwrap();
            let done =
                uploads::ingest(&app, upload, 1, Box::new(reader), shared::domain::upload::LARGE_LIMITS).await.unwrap();
            assert_eq!(done.state, UploadState::Ingested);
            bytes as f64 / 1e6 / started.elapsed().as_secs_f64()
        });
        println!("{mb:>8} {rows:>10} {validate:>16.1} {ingest:>16.1} {:>14.1}", peak_rss_mb());
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir_all(&data);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
