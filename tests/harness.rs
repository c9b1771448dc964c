//! Test harness: a moto server shared by the whole binary, started on a free
//! loopback port and stopped when the binary exits; apps on embedded or AWS
//! adapters; the local stack on port 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use local_stack::{devtoken::DevTokens, sandbox::Sandbox, LocalStack};
use shared::adapters::{aws, clock::SystemClock};
use shared::app::{App, EmbeddedPorts, Ports};
use shared::config::Config;
use shared::ports::Clock;

/// The moto server of this test binary: its endpoint.
pub fn moto() -> &'static str {
    static MOTO: OnceLock<String> = OnceLock::new();
    MOTO.get_or_init(start_moto)
}

fn start_moto() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // The shell keeps moto alive while our end of its stdin is open: when
    // this process exits (however it exits), `read` returns and moto is
    // stopped.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"$2 -H 127.0.0.1 -p "$1" & pid=$!; trap 'kill $pid 2>/dev/null' EXIT; read -r _ || true"#)
        .arg("sh")
        .arg(port.to_string())
        // `MOTO_SERVER` overrides the command (for example `python3 -m moto.server`).
        .arg(std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if line.contains("Running on") {
                    break;
                }
                seen.push(line);
            }
            _ => panic!(
                "moto_server did not start (is it installed? run ./infra/test, or pip install \"moto[server]\"):\n{}",
                seen.join("\n")
            ),
        }
    }
    // Keep reading its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    // Keep the child (and its stdin) for the life of the process.
    Box::leak(Box::new(child));
    format!("http://127.0.0.1:{port}")
}

pub fn config(pairs: &[(&str, &str)]) -> Config {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).expect("test config")
}

/// An app on in-memory embedded adapters, with its concrete ports.
pub fn embedded_app(config: Config) -> (App, EmbeddedPorts) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ports = EmbeddedPorts::open(&config, None, clock.clone()).expect("embedded ports");
    let app = App::assemble(config, ports.ports(clock)).expect("app");
    (app, ports)
}

/// The AWS adapters on fresh resources of the shared moto server.
pub async fn aws_ports(config: &mut Config) -> Ports {
    let sdk = aws::sdk_config_for_endpoint(moto(), "us-east-1").await;
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let resources = aws::provision(&sdk, &prefix, 2)
        .await
        .expect("provision on moto");
    config.table_name = resources.table;
    config.bucket_name = resources.bucket;
    config.queue_urls = resources.queue_urls;
    verify_sender(&sdk, &config.alert_sender).await;
    App::aws_ports(config, &sdk, Arc::new(SystemClock))
}

/// moto (like SES in the sandbox) sends only from verified identities.
pub async fn verify_sender(sdk: &aws_config::SdkConfig, address: &str) {
    let ses = aws_sdk_sesv2::Client::new(sdk);
    let _ = ses
        .create_email_identity()
        .email_identity(address)
        .send()
        .await;
}

/// The local stack on a port of its own, embedded in memory, sandbox on.
pub struct TestApp {
    pub base: String,
    pub stack: Arc<LocalStack>,
    pub http: reqwest::Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let mut pairs = vec![
        ("SANDBOX_PLATFORMS", "true"),
        ("PUBLIC_BASE_URL", base.as_str()),
        ("ALLOWED_ORIGINS", "https://app.example.com"),
    ];
    pairs.extend_from_slice(extra);
    let (app, ports) = embedded_app(config(&pairs));
    let sandbox = Some(Arc::new(Sandbox::new(app.clock.clone())));
    let stack = Arc::new(LocalStack {
        tokens: DevTokens::with_key(b"test-key-test-key-test-key-test-key".to_vec()),
        sandbox,
        embedded_queue: Some(ports.queue.clone()),
        app,
    });
    tokio::spawn(local_stack::serve(listener, stack.clone()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp { base, stack, http }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A development token for a member.
    pub async fn token(&self, workspace: &str, user: &str, role: &str) -> String {
        let r = self
            .http
            .post(self.url("/dev/token"))
            .json(&serde_json::json!({"workspace_id": workspace, "user_id": user, "role": role, "email": format!("{user}@example.com")}))
            .send()
            .await
            .expect("dev token");
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.expect("json")["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

/// Asserts the one error shape and returns the code.
pub fn error_code(body: &serde_json::Value) -> String {
    let e = &body["error"];
    for field in ["code", "message", "action"] {
        assert!(
            e[field].as_str().is_some_and(|s| !s.is_empty()),
            "error.{field} missing in {body}"
        );
    }
    e["code"].as_str().unwrap_or_default().to_owned()
}
