//! Test harness: a moto server shared by the whole binary, started on a free
//! loopback port and stopped when the binary exits; apps on embedded or AWS
//! adapters; the local stack on port 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use local_stack::{devtoken::DevTokens, sandbox::Sandbox, LocalStack};

use shared::adapters::{
    aws,
    clock::{ManualClock, SystemClock},
};
use shared::config::Config;
use shared::domain::error::StoreError;
use shared::ports::Clock;
use shared::wiring::{App, EmbeddedPorts, Ports};

/// The moto server of this test binary: its endpoint.
/// An HTTP client that acts as a browser: no redirect followed by itself,
/// and a cookie jar (the OAuth flow is bound to the browser that launched it).
pub fn browser() -> reqwest::Client {
    shared::adapters::tls::install_default_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().expect("client")
}

/// A plain HTTP client (the process's TLS provider installed first).
pub fn client() -> reqwest::Client {
    shared::adapters::tls::install_default_provider();
    reqwest::Client::new()
}

pub fn moto() -> &'static str {
    static MOTO: OnceLock<String> = OnceLock::new();
    MOTO.get_or_init(start_moto)
}

fn start_moto() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
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

/// The service token of test apps (the service routes' local stand-in for AWS IAM).
pub const SERVICE_TOKEN: &str = "svc_test_service_token_of_the_harness";

pub fn config(pairs: &[(&str, &str)]) -> Config {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
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
    let resources = aws::provision(&sdk, &prefix, 2).await.expect("provision on moto");
    config.table_name = resources.table;
    config.bucket_name = resources.bucket;
    config.queue_urls = resources.queue_urls;
    config.event_bus_name = Some(resources.event_bus);
    verify_sender(&sdk, &config.alert_sender).await;
    App::aws_ports(config, &sdk, Arc::new(SystemClock))
}

/// moto (like SES in the sandbox) sends only from verified identities.
pub async fn verify_sender(sdk: &aws_config::SdkConfig, address: &str) {
    let ses = aws_sdk_sesv2::Client::new(sdk);
    let _ = ses.create_email_identity().email_identity(address).send().await;
}

/// Which adapters a test app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Moto,
}

enum StateDump {
    Embedded(Arc<shared::adapters::embedded::MemoryStore>),
    Moto { client: aws_sdk_dynamodb::Client, table: String },
}

/// The local stack on a port of its own, sandbox on, with a clock the test
/// moves.
pub struct TestApp {
    pub base: String,
    pub stack: Arc<LocalStack>,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    /// The embedded mailer (None on moto: read moto's SES messages instead).
    pub mailer: Option<Arc<shared::adapters::embedded::MemoryMailer>>,
    /// The embedded event bus (None on moto: read [`bus_tap`]'s queue instead).
    pub bus: Option<Arc<shared::adapters::embedded::FileEventBus>>,
    dump: StateDump,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Embedded, &[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_on(Backend::Embedded, extra).await
}

pub async fn spawn_app_on(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    spawn_app_wrapped(backend, extra, |s| s).await
}

/// As `spawn_app_on`, with the state store wrapped (fault injection).
pub async fn spawn_app_wrapped(
    backend: Backend,
    extra: &[(&str, &str)],
    wrap: impl FnOnce(Arc<dyn shared::ports::StateStore>) -> Arc<dyn shared::ports::StateStore>,
) -> TestApp {
    spawn_app_ports(backend, extra, |p| p.store = wrap(p.store.clone())).await
}

/// As `spawn_app_on`, with any of the ports wrapped (fault injection).
pub async fn spawn_app_ports(
    backend: Backend,
    extra: &[(&str, &str)],
    wrap: impl FnOnce(&mut shared::wiring::Ports),
) -> TestApp {
    spawn_app_wrapped_http(backend, extra, wrap, |http| http).await
}

/// [`spawn_app_ports`], with the platform HTTP client wrapped too (faults
/// between the service and the platforms).
pub async fn spawn_app_wrapped_http(
    backend: Backend,
    extra: &[(&str, &str)],
    wrap: impl FnOnce(&mut shared::wiring::Ports),
    wrap_http: impl FnOnce(Arc<dyn shared::ports::PlatformHttp>) -> Arc<dyn shared::ports::PlatformHttp>,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let mut pairs = vec![
        ("SANDBOX_PLATFORMS", "true"),
        ("ALLOW_LOOPBACK_PLATFORMS", "true"),
        ("PUBLIC_BASE_URL", base.as_str()),
        ("ALLOWED_ORIGINS", "https://app.example.com"),
        ("HTTP_TIMEOUT_SECONDS", "2"),
    ];
    pairs.extend_from_slice(extra);
    let mut config = config(&pairs);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut mailer = None;
    let mut bus = None;
    let (app, queue, dump) = match backend {
        Backend::Embedded => {
            let ports = EmbeddedPorts::open(&config, None, clock.clone()).expect("embedded ports");
            let mut p = ports.ports(clock.clone());
            wrap(&mut p);
            let app = App::assemble(config, p).expect("app");
            mailer = Some(ports.mailer.clone());
            bus = Some(ports.events.clone());
            (app, Some((ports.queue.clone(), ports.sink.clone())), StateDump::Embedded(ports.store.clone()))
        }
        Backend::Moto => {
            let mut ports = aws_ports(&mut config).await;
            ports.clock = clock.clone();
            wrap(&mut ports);
            let sdk = aws::sdk_config_for_endpoint(moto(), "us-east-1").await;
            let dump =
                StateDump::Moto { client: aws_sdk_dynamodb::Client::new(&sdk), table: config.table_name.clone() };
            (App::assemble(config, ports).expect("app"), None, dump)
        }
    };
    let mut app = app;
    app.http = wrap_http(app.http.clone());
    local_stack::seed_sandbox_app(&app).await.expect("seed sandbox app");
    let sandbox = Some(Arc::new(Sandbox::new(app.clock.clone(), format!("{}/sandbox", app.config.public_base_url))));
    let stack = Arc::new(LocalStack {
        tokens: DevTokens::with_key(b"test-key-test-key-test-key-test-key".to_vec()),
        service_token: local_stack::devtoken::ServiceToken::new(SERVICE_TOKEN),
        sandbox,
        embedded_queue: queue.as_ref().map(|(q, _)| q.clone()),
        embedded_sink: queue.map(|(_, s)| s),
        app,
    });
    tokio::spawn(local_stack::serve(listener, stack.clone()));
    // A browser: no redirect followed by itself, and a cookie jar (the
    // OAuth flow is bound to the browser that launched it).
    let http = browser();
    TestApp { base, stack, http, clock, mailer, bus, dump }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs a route as the bearer of `token`: its JSON answer, whatever the status.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap().json().await.unwrap()
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
        r.json::<serde_json::Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
    }

    /// Every item of the state store, as text (to scan for secrets).
    pub async fn dump_state(&self) -> String {
        match &self.dump {
            StateDump::Embedded(store) => store.dump(),
            StateDump::Moto { client, table } => {
                let mut out = String::new();
                let mut pages = client.scan().table_name(table).into_paginator().items().send();
                while let Some(item) = pages.next().await {
                    out.push_str(&format!("{:?}\n", item.expect("scan")));
                }
                out
            }
        }
    }

    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use shared::ports::Clock;
        self.clock.now()
    }

    pub fn sandbox(&self) -> &Sandbox {
        self.stack.sandbox.as_deref().expect("sandbox on")
    }
}

/// Asserts the one error shape and returns the code.
pub fn error_code(body: &serde_json::Value) -> String {
    let e = &body["error"];
    for field in ["code", "message", "action"] {
        assert!(e[field].as_str().is_some_and(|s| !s.is_empty()), "error.{field} missing in {body}");
    }
    e["code"].as_str().unwrap_or_default().to_owned()
}

/// Runs the OAuth flow (start, approve as `account`, callback); returns the posted message.
/// Opens a flow's launch URL in `browser` (a client with a cookie jar), as
/// the popup does: the browser gets the flow's cookie and is sent on to the
/// platform. Returns the platform's authorize URL.
pub async fn launch(browser: &reqwest::Client, started: &serde_json::Value) -> String {
    let url = started["launch_url"].as_str().unwrap_or_else(|| panic!("no launch_url: {started}"));
    let r = browser.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302, "launch: {}", r.text().await.unwrap_or_default());
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    r.headers()["location"].to_str().unwrap().to_owned()
}

pub async fn oauth_flow(app: &TestApp, token: &str, body: serde_json::Value, account: &str) -> serde_json::Value {
    let (status, started) = {
        let r = app.http.post(app.url("/v1/connect/start")).bearer_auth(token).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{started}");
    let authorize_url = launch(&app.http, &started).await;
    let r = app.http.get(format!("{authorize_url}&auto_approve={account}")).send().await.unwrap();
    let page = app.http.get(r.headers()["location"].to_str().unwrap()).send().await.unwrap().text().await.unwrap();
    let start = page.find(r#"id="result">"#).unwrap() + r#"id="result">"#.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str::<serde_json::Value>(&page[start..end]).unwrap()["message"].clone()
}

// ------------------------------------------------------------ fake platform

/// A request the fake platform received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: std::collections::BTreeMap<String, String>,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn form(&self) -> std::collections::BTreeMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }
}

/// What the fake platform answers.
pub enum Reply {
    Json(u16, serde_json::Value),
    /// JSON with extra headers.
    JsonWith(u16, Vec<(&'static str, String)>, serde_json::Value),
    Redirect(String),
    /// Never answers (the client's timeout fires).
    Hang,
    /// A status with no body at all (204 No Content).
    Empty(u16),
    /// Another content type (XML for SOAP services).
    Text(u16, &'static str, String),
    /// Bytes of any kind (a gzipped report file).
    Bytes(u16, &'static str, Vec<u8>),
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A programmable platform on a loopback port, driven through the same HTTP
/// client as production.
pub struct FakePlatform {
    pub base: String,
    requests: Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl FakePlatform {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (handler, log) = (handler.clone(), log.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let recorded = Recorded {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                query: url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                                    .into_owned()
                                    .collect(),
                                headers: parts.headers.clone(),
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            log.lock().unwrap().push(recorded.clone());
                            let reply = handler(&recorded);
                            let response = match reply {
                                Reply::Json(status, v) => http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(v.to_string()))),
                                Reply::JsonWith(status, headers, v) => {
                                    let mut b = http::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json");
                                    for (k, v) in headers {
                                        b = b.header(k, v);
                                    }
                                    b.body(http_body_util::Full::new(bytes::Bytes::from(v.to_string())))
                                }
                                Reply::Redirect(to) => http::Response::builder()
                                    .status(302)
                                    .header("location", to)
                                    .body(http_body_util::Full::new(bytes::Bytes::new())),
                                Reply::Text(status, content_type, text) => http::Response::builder()
                                    .status(status)
                                    .header("content-type", content_type)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(text))),
                                Reply::Bytes(status, content_type, bytes) => http::Response::builder()
                                    .status(status)
                                    .header("content-type", content_type)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(bytes))),
                                Reply::Empty(status) => http::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::new())),
                                Reply::Hang => {
                                    std::future::pending::<()>().await;
                                    unreachable!()
                                }
                            };
                            Ok::<_, std::convert::Infallible>(response.expect("response"))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { base, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

/// Takes every message of the notification queue: the alerts (as JSON) and
/// the events published for the deployer's backend.
pub async fn drain_notify(app: &App) -> (Vec<serde_json::Value>, Vec<shared::domain::events::ServiceEvent>) {
    use shared::domain::messages::{AlertEvent, QueueKind};
    let (mut alerts, mut events) = (Vec::new(), Vec::new());
    loop {
        let batch = app.queue.receive(QueueKind::Notify, 10, 60).await.unwrap();
        if batch.is_empty() {
            return (alerts, events);
        }
        for m in batch {
            match serde_json::from_str::<AlertEvent>(&m.body).unwrap() {
                AlertEvent::Publish { event, .. } => events.push(*event),
                _ => alerts.push(serde_json::from_str(&m.body).unwrap()),
            }
            app.queue.ack(QueueKind::Notify, &m.receipt).await.unwrap();
        }
    }
}

/// A queue that receives everything published on the app's EventBridge bus
/// (a rule on the service's source with an SQS target), on moto.
pub async fn bus_tap(app: &App) -> String {
    let sdk = aws::sdk_config_for_endpoint(moto(), "us-east-1").await;
    let bus = app.config.event_bus_name.clone().expect("a bus on moto");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs.create_queue().queue_name(format!("{bus}-tap")).send().await.unwrap().queue_url.unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let pattern = serde_json::json!({"source": [app.config.event_source]}).to_string();
    events.put_rule().name("tap").event_bus_name(&bus).event_pattern(pattern).send().await.unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("tap").arn(arn).build().unwrap();
    events.put_targets().rule("tap").event_bus_name(&bus).targets(target).send().await.unwrap();
    url
}

/// What reached the bus tap: EventBridge envelopes (`detail-type`, `source`, `detail`).
pub async fn tapped(url: &str) -> Vec<serde_json::Value> {
    let sdk = aws::sdk_config_for_endpoint(moto(), "us-east-1").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut out = Vec::new();
    loop {
        let got = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

/// Stores `value` under `secret` the way a connect does (`vault_first`),
/// with the item's write failing and taking it back failing too: the secret
/// stays, with no item that holds it.
pub async fn leave_orphan_secret(app: &TestApp, secret: &shared::domain::SecretRef, value: &str) {
    let a = &app.stack.app;
    let failed = a
        .vault_first(
            secret,
            &secrecy::SecretString::from(value.to_owned()),
            async { Err::<(), _>(shared::domain::error::Error::Config("item not written".into())) },
            async { false },
        )
        .await;
    assert!(failed.is_err());
    assert!(a.vault.get(&secret.0).await.unwrap().is_some());
}

/// What a [`HookedStore`] runs before a call: the inner store, and what the
/// call is about (the item put, the sort key read). An error fails the call
/// without it reaching the store.
pub type Hook<T> = Arc<
    dyn Fn(
            Arc<dyn shared::ports::StateStore>,
            T,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>
        + Send
        + Sync,
>;

/// A state store that passes every call through, where a test may step in:
/// work of its own before a put or a read (a rival writer, a crash), or
/// the list index made unreadable.
pub struct HookedStore {
    pub inner: Arc<dyn shared::ports::StateStore>,
    pub before_put: Option<Hook<shared::ports::Item>>,
    pub before_get: Option<Hook<String>>,
    pub listed_fails: std::sync::atomic::AtomicBool,
}

impl HookedStore {
    pub fn new(inner: Arc<dyn shared::ports::StateStore>) -> Self {
        Self { inner, before_put: None, before_get: None, listed_fails: Default::default() }
    }
}

#[async_trait::async_trait]
impl shared::ports::StateStore for HookedStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<shared::ports::Item>, StoreError> {
        if let Some(hook) = &self.before_get {
            hook(self.inner.clone(), sk.to_owned()).await?;
        }
        self.inner.get(pk, sk).await
    }
    async fn put(&self, item: &shared::ports::Item, pre: shared::ports::Precondition) -> Result<(), StoreError> {
        if let Some(hook) = &self.before_put {
            hook(self.inner.clone(), item.clone()).await?;
        }
        self.inner.put(item, pre).await
    }
    async fn delete(
        &self,
        pk: &str,
        sk: &str,
        pre: shared::ports::Precondition,
    ) -> Result<Option<shared::ports::Item>, StoreError> {
        self.inner.delete(pk, sk, pre).await
    }
    async fn query(
        &self,
        pk: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<shared::ports::Page, StoreError> {
        self.inner.query(pk, prefix, after, limit).await
    }
    async fn due(&self, shard: u16, until: i64, limit: usize) -> Result<Vec<shared::ports::Item>, StoreError> {
        self.inner.due(shard, until, limit).await
    }
    async fn listed(
        &self,
        pk: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<shared::ports::Page, StoreError> {
        if self.listed_fails.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected: the list index is throttled".into()));
        }
        self.inner.listed(pk, prefix, after, limit).await
    }
}

/// moto's whole state (`/moto-api/data.json`). moto builds it by walking
/// its backends while other tests write to them, and now and then answers
/// a 500 ("dictionary changed size during iteration"): asked again then.
pub async fn moto_data() -> serde_json::Value {
    let url = format!("{}/moto-api/data.json", moto());
    let mut last = String::new();
    for _ in 0..5 {
        let r = client().get(&url).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        match serde_json::from_str(&text) {
            Ok(v) if status.is_success() => return v,
            _ => last = format!("{status}: {}", text.chars().take(200).collect::<String>()),
        }
    }
    panic!("moto's data.json answered no state five times; the last: {last}");
}
