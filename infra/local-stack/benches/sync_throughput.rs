//! Sync throughput: `cargo bench -p local-stack --bench sync_throughput`.
//!
//! A fake platform on loopback serves `SYNC_BENCH_RECORDS` records (default
//! 1,000,000; 100,000 first, to show memory does not grow with the count) in
//! pages of 1,000; the real sync engine pages through them with the
//! embedded adapters (records written as JSON Lines under a temporary
//! folder). Reports records per second and the process's peak memory.
//!
//! The records are written under the temporary folder (`TMPDIR`), and again
//! under `/dev/shm` where it exists: on a disk, creating a file a page
//! costs the kernel more than the engine spends on the page, so the memory
//! file system shows what the engine itself does.

use std::fmt::Write;

mod support;
use support::peak_rss_mb;

const PAGE: usize = 1000;

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

async fn sync_once(total: usize, root: &std::path::Path) -> (f64, u64) {
    let base = support::serve(move |query| {
        let start = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "cursor")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        page(start, total)
    })
    .await;
    let dir = root.join(format!("sync-bench-{}-{total}", std::process::id()));
    let overrides = serde_json::json!({"platforms": {"sandbox_api_key": {
        "api": {"base_url": base, "auth_header": ["Authorization", "Bearer {api_key}"]},
        "streams": [{"name": "orders", "path": "/orders", "records_pointer": "/data",
                     "pagination": {"style": "cursor_in_body", "next_pointer": "/next", "param": "cursor"},
                     "cursor_field": "updated_at", "page_size_param": "limit", "page_size": PAGE, "total_pointer": "/total"}]}}})
    .to_string();
    let (seconds, cursor) = support::sync_once(&overrides, "orders", &dir).await;
    (cursor.records as f64 / seconds, cursor.records)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let total: usize = std::env::var("SYNC_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut roots = vec![std::env::temp_dir()];
    let shm = std::path::PathBuf::from("/dev/shm");
    if shm.is_dir() && !roots.contains(&shm) {
        roots.push(shm);
    }
    println!("{:<12} {:>10} {:>14} {:>14}", "folder", "records", "records/s", "peak RSS MB");
    for root in &roots {
        for n in [total / 10, total] {
            let (rate, records) = runtime.block_on(sync_once(n, root));
            assert_eq!(records as usize, n);
            println!("{:<12} {records:>10} {rate:>14.0} {:>14.1}", root.display(), peak_rss_mb());
        }
    }
}
