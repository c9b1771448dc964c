//! Secrets that pass through handlers and adapters reach no log line, at
//! any level, including the AWS SDK's and the HTTP stack's own logs.

use secrecy::SecretString;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

use shared::entry::http::{self as api, Function};

use crate::harness::{config, embedded_app, spawn_app};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` on a single-threaded runtime with every log line, at TRACE, of
/// that thread captured as JSON (the Lambda format).
pub(crate) fn captured<T, F: std::future::Future<Output = T>>(f: F) -> (String, T) {
    let capture = Capture::default();
    let subscriber =
        tracing_subscriber::fmt().json().with_max_level(tracing::Level::TRACE).with_writer(capture.clone()).finish();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = tracing::subscriber::with_default(subscriber, || runtime.block_on(f));
    (capture.text(), out)
}

#[test]
fn api_keys_and_bearer_tokens_reach_no_log_line() {
    const KEY: &str = "pk_live_SECRETVALUE0123456789abcdef";
    let (logs, token) = captured(async {
        // An API key in a request body, through the handler.
        let (app, _) = embedded_app(config(&[]));
        let event = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/api-key-connect/connect-klaviyo.json"
        ))
        .unwrap();
        assert!(event.contains(KEY));
        let _ = api::handle(&app, Function::ApiKeyConnect, lambda_http::request::from_str(&event).unwrap()).await;
        // A bearer token through the gateway and a handler.
        let test_app = spawn_app().await;
        let token = test_app.token("ws_log", "u", "admin").await;
        let r = test_app.http.get(test_app.url("/v1/connections")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        token
    });
    assert!(logs.contains("\"request\""), "the capture works: {logs}");
    assert!(!logs.contains(KEY), "the API key leaked into a log line");
    assert!(!token.is_empty() && !logs.contains(&token), "the bearer token leaked into a log line");
}

#[test]
fn secrets_written_to_secrets_manager_reach_no_log_line() {
    const VALUE: &str = "rt_SECRET_REFRESH_TOKEN_abcdef0123456789";
    let (logs, ()) = captured(async {
        let mut config = config(&[]);
        let ports = crate::harness::aws_ports(&mut config).await;
        ports.vault.put("connections/test/ws_log/auth_1", &SecretString::from(VALUE)).await.unwrap();
        let got = ports.vault.get("connections/test/ws_log/auth_1").await.unwrap();
        assert!(got.is_some());
        assert_eq!(format!("{:?}", got.unwrap()), "SecretBox<str>([REDACTED])");
    });
    assert!(
        logs.contains("secretsmanager") || logs.contains("Secrets"),
        "the SDK logged something: {}",
        &logs[..logs.len().min(500)]
    );
    assert!(!logs.contains(VALUE), "the secret leaked into a log line");
}
