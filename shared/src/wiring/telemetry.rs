//! Logging: `tracing`, JSON lines in Lambda, honoring `AWS_LAMBDA_LOG_LEVEL`
//! then `RUST_LOG` (default `info`). Secrets never reach a log line: they
//! are `SecretString`s (which print as `[REDACTED]`) and handlers log ids,
//! not bodies.
//!
//! The filter is `tracing_subscriber`'s `Targets` (`level` or
//! `target=level`, comma-separated), not `EnvFilter`: span and field filters
//! are the only syntax it lacks, and `EnvFilter` links a regex engine (about
//! 250 KB of the function binary) for them.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The filter from Lambda's log level (`TRACE` … `FATAL`, set by the
/// function's logging configuration), else from `RUST_LOG`, else `info`.
/// A setting that does not parse gives `info` and the reason, to be logged
/// once logging works.
pub fn filter_from(lambda_level: Option<&str>, rust_log: Option<&str>) -> (Targets, Option<String>) {
    fn set(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let (name, setting, parsed) = match (set(lambda_level), set(rust_log)) {
        (Some(level), _) => {
            // Lambda's FATAL has no tracing level of its own: errors are
            // the most severe events there are. (A bare word would parse
            // as a target: a level is parsed as a level.)
            let as_level = if level.eq_ignore_ascii_case("fatal") { "error" } else { level };
            let parsed =
                as_level.parse::<LevelFilter>().map(|l| Targets::new().with_default(l)).map_err(|e| e.to_string());
            ("AWS_LAMBDA_LOG_LEVEL", level, parsed)
        }
        (None, Some(directives)) => ("RUST_LOG", directives, directives.parse::<Targets>().map_err(|e| e.to_string())),
        (None, None) => return (Targets::new().with_default(LevelFilter::INFO), None),
    };
    match parsed {
        Ok(targets) => (targets, None),
        Err(e) => (
            Targets::new().with_default(LevelFilter::INFO),
            Some(format!("{name}={setting:?} is not a log filter ({e}); logging at info. Use a level (error, warn, info, debug, trace) or target=level pairs, comma-separated")),
        ),
    }
}

/// Installs `output` behind the environment's filter, and says so if the
/// filter's setting did not parse.
fn install(output: impl Layer<Registry> + Send + Sync + 'static) {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let (targets, problem) = filter_from(lambda_level.as_deref(), rust_log.as_deref());
    let _ = tracing_subscriber::registry().with(output.with_filter(targets)).try_init();
    if let Some(problem) = problem {
        tracing::warn!(code = "log_filter_invalid", "{problem}");
    }
}

/// JSON logs for Lambda (CloudWatch), without ANSI colours or time (Lambda
/// stamps each line).
pub fn init_lambda() {
    install(
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_ansi(false)
            .without_time()
            .with_target(false),
    );
}

/// Human-readable logs for the local stack.
pub fn init_local() {
    install(tracing_subscriber::fmt::layer().with_target(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn allows(targets: &Targets, target: &str, level: Level) -> bool {
        targets.would_enable(target, &level)
    }

    #[test]
    fn lambdas_level_wins_and_its_fatal_means_errors_only() {
        let (t, problem) = filter_from(Some("FATAL"), Some("debug"));
        assert!(problem.is_none());
        assert!(allows(&t, "shared", Level::ERROR));
        assert!(!allows(&t, "shared", Level::WARN));
        let (t, _) = filter_from(Some("DEBUG"), None);
        assert!(allows(&t, "shared::flows", Level::DEBUG));
        assert!(!allows(&t, "shared::flows", Level::TRACE));
    }

    #[test]
    fn rust_log_directives_filter_by_target() {
        let (t, problem) = filter_from(None, Some("warn,shared::flows=debug"));
        assert!(problem.is_none());
        assert!(allows(&t, "shared::flows::sync", Level::DEBUG));
        assert!(!allows(&t, "shared::store", Level::INFO));
        assert!(allows(&t, "hyper", Level::WARN));
    }

    #[test]
    fn no_setting_logs_at_info_and_a_bad_one_says_why() {
        let (t, problem) = filter_from(None, None);
        assert!(problem.is_none());
        assert!(allows(&t, "x", Level::INFO) && !allows(&t, "x", Level::DEBUG));
        let (t, problem) = filter_from(Some("LOUD"), None);
        assert!(allows(&t, "x", Level::INFO) && !allows(&t, "x", Level::DEBUG));
        let problem = problem.expect("a reason");
        assert!(problem.contains("AWS_LAMBDA_LOG_LEVEL") && problem.contains("LOUD"), "{problem}");
        assert!(filter_from(None, Some("shared=noisy")).1.is_some());
    }
}
