//! Report throughput: `cargo bench -p local-stack --bench report_throughput`.
//!
//! A fake ad platform on loopback serves a daily campaign report: for each
//! requested window (`since`..`until`), one row a day for each of
//! `REPORT_BENCH_CAMPAIGNS` campaigns (default 500). The real engine reads
//! two years of it (`history_days` 730, 30-day windows, newest first) with
//! the embedded adapters, writing each day's raw rows and spend facts.
//! Reports rows per second and the process's peak memory (which a window's
//! rows bound, not the history's).

use std::fmt::Write;

mod support;
use support::peak_rss_mb;

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

async fn sync_history(campaigns: usize, days: u32) -> (f64, u64, u64) {
    let base = support::serve(move |query| {
        let q: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let day = |k: &str| chrono::NaiveDate::parse_from_str(&q[k], "%Y-%m-%d").unwrap();
        window(day("since"), day("until"), campaigns)
    })
    .await;
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
    let (seconds, cursor) = support::sync_once(&overrides, "spend", &dir).await;
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
