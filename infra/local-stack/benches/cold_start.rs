//! Cold start of each function: `cargo build --release --bins` first, then
//! `cargo bench -p local-stack --bench cold_start`.
//!
//! Starts the release binary of `functions/` as Lambda would for each job
//! (`_HANDLER` names it), with a fake
//! Runtime API on loopback, and measures the time from process start to its
//! first `GET /runtime/invocation/next` (configuration read, clients built,
//! catalog loaded: everything before the first event). Runs each function
//! `COLD_START_RUNS` times (default 9), alternating with a bare
//! `lambda_runtime` function (`hello-lambda`, the baseline), and reports the
//! median time, the ratio to the baseline (min, median, max) and the
//! binary's size. The AWS adapters are configured against a closed
//! loopback endpoint: clients are built, no request is made.

use bytes::Bytes;
use http_body_util::Full;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FUNCTIONS: [&str; 10] = [
    "connect-start",
    "oauth-callback",
    "api-key-connect",
    "csv-upload",
    "connections-api",
    "service-api",
    "sync-worker",
    "expiry-sweep",
    "notifier",
    "upload-processor",
];

/// A Runtime API that reports the first poll for the next invocation.
async fn runtime_api() -> (String, tokio::sync::mpsc::Receiver<Instant>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        if req.uri().path().ends_with("/invocation/next") {
                            let _ = tx.send(Instant::now()).await;
                            // Hold the poll: the function waits for an event.
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// Milliseconds from starting `binary` as Lambda would to its first poll.
fn cold_start_ms(runtime: &tokio::runtime::Runtime, binary: &std::path::Path, name: &str, closed: u16) -> f64 {
    runtime.block_on(async {
        let (api, mut polls) = runtime_api().await;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .env_clear()
            .env("_HANDLER", name)
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_LEVEL", "error")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}"))
            .env("CONNECTIONS_BACKEND", "aws")
            .env("SYNC_QUEUE_URL", "http://127.0.0.1/sync")
            .env("NOTIFY_QUEUE_URL", "http://127.0.0.1/notify")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the function");
        let ready = tokio::time::timeout(Duration::from_secs(10), polls.recv()).await.ok().flatten();
        let _ = child.kill().await;
        ready.map(|t| (t - started).as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
    })
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    let runs: usize = std::env::var("COLD_START_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(9);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hello = target.join("release/hello-lambda");
    if !hello.exists() {
        println!("build the functions and the baseline first: cargo build --release --bins");
        return;
    }
    println!("baseline: hello-lambda (a bare lambda_runtime function); {runs} runs each, alternating");
    println!(
        "{:>18} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "function", "median ms", "ratio min", "median", "max", "size MB"
    );
    let binary = target.join("release/functions");
    if !binary.exists() {
        println!("build the functions first: cargo build --release --bins");
        return;
    }
    for name in FUNCTIONS {
        let size = std::fs::metadata(&binary).unwrap().len() as f64 / 1e6;
        let mut times = Vec::new();
        let mut ratios = Vec::new();
        for _ in 0..runs {
            // Alternating, so a noisy moment weighs on both sides.
            let base = cold_start_ms(&runtime, &hello, "hello-lambda", closed);
            let own = cold_start_ms(&runtime, &binary, name, closed);
            times.push(own);
            ratios.push(own / base);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        ratios.sort_by(|a, b| a.total_cmp(b));
        let median = |v: &[f64]| v[v.len() / 2];
        println!(
            "{name:>18} {:>10.1} {:>10.2} {:>10.2} {:>10.2} {size:>9.1}",
            median(&times),
            ratios[0],
            median(&ratios),
            ratios[ratios.len() - 1]
        );
    }
}
