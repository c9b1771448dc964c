//! Logging: `tracing`, JSON lines in Lambda, honoring `AWS_LAMBDA_LOG_LEVEL`
//! then `RUST_LOG` (default `info`). Secrets never reach a log line: they
//! are `SecretString`s (which print as `[REDACTED]`) and handlers log ids,
//! not bodies.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|l| l.to_lowercase())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON logs for Lambda (CloudWatch), without ANSI colours or time (Lambda
/// stamps each line).
pub fn init_lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// Human-readable logs for the local stack.
pub fn init_local() {
    let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_target(false).try_init();
}
