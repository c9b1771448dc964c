//! The template's IAM policies, held to the calls the functions make.
//!
//! `iam` holds each policy to a table written by hand; this runs journeys
//! through the functions with every port noting the AWS action and
//! resource each call would need (as the AWS adapters call them), labelled
//! with the function that would make it in a deployment: an HTTP request
//! by its route's function, a queue's messages by their consumer, the
//! sweep by the sweep. Every call must be allowed by that function's
//! policy in `template.yaml`. moto checks no IAM, so without this a
//! permission the code needs and the template lacks shows only on AWS (the
//! sweep looked at uploads left waiting with no S3 permission at all).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use secrecy::SecretString;
use serde_json::{json, Value};

use shared::domain::error::{BusError, MailError, QueueError, SinkError, StoreError, VaultError};
use shared::domain::events::ServiceEvent;
use shared::ports::{
    Email, EventBus, Item, JobQueue, Mailer, Page, Precondition, QueueKind, Received, RecordSink, SecretVault,
    StateStore,
};

use crate::harness::{spawn_app_ports, Backend, FakePlatform, Reply, TestApp, SERVICE_TOKEN};

const ORIGIN: &str = "https://app.example.com";

/// The calls noted, by function: (function, action, resource), resources
/// in `iam`'s spelling with concrete names (`secret:ws/ws_1/auth_x-AbCdEf`,
/// `bucket/uploads/…`).
#[derive(Default)]
pub struct Calls {
    function: Mutex<Option<String>>,
    seen: Mutex<BTreeSet<(String, &'static str, String)>>,
    secret_prefix: Mutex<String>,
}

impl Calls {
    fn note(&self, action: &'static str, resource: String) {
        if let Some(function) = self.function.lock().unwrap().clone() {
            self.seen.lock().unwrap().insert((function, action, resource));
        }
    }

    /// A Secrets Manager ARN's tail: the name under the deployment's prefix
    /// and the six random characters AWS appends.
    fn secret(&self, name: &str) -> String {
        let prefix = format!("{}/", self.secret_prefix.lock().unwrap());
        format!("secret:{}-AbCdEf", name.strip_prefix(&prefix).unwrap_or(name))
    }

    /// Runs `work` as the template's function `function` (its logical id).
    async fn as_function<T>(&self, function: &str, work: impl std::future::Future<Output = T>) -> T {
        *self.function.lock().unwrap() = Some(function.to_owned());
        let out = work.await;
        *self.function.lock().unwrap() = None;
        out
    }
}

/// The template's logical id of a function named in kebab case.
fn logical_id(name: &str) -> String {
    let pascal: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    format!("{pascal}Function")
}

/// A port noting its calls.
struct Noted<T: ?Sized> {
    inner: Arc<T>,
    calls: Arc<Calls>,
}

fn noted<T: ?Sized>(inner: Arc<T>, calls: &Arc<Calls>) -> Arc<Noted<T>> {
    Arc::new(Noted { inner, calls: calls.clone() })
}

#[async_trait]
impl StateStore for Noted<dyn StateStore> {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.calls.note("dynamodb:GetItem", "table".into());
        self.inner.get(pk, sk).await
    }
    async fn put(&self, item: &Item, pre: Precondition) -> Result<(), StoreError> {
        self.calls.note("dynamodb:PutItem", "table".into());
        self.inner.put(item, pre).await
    }
    async fn delete(&self, pk: &str, sk: &str, pre: Precondition) -> Result<Option<Item>, StoreError> {
        self.calls.note("dynamodb:DeleteItem", "table".into());
        self.inner.delete(pk, sk, pre).await
    }
    async fn query(&self, pk: &str, sk_prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.calls.note("dynamodb:Query", "table".into());
        self.inner.query(pk, sk_prefix, after, limit).await
    }
    async fn due(&self, shard: u16, until: i64, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.calls.note("dynamodb:Query", "table/index/due".into());
        self.inner.due(shard, until, limit).await
    }
    /// A query of the list index, then `BatchGetItem` of the page's items.
    async fn listed(&self, pk: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.calls.note("dynamodb:Query", "table/index/list".into());
        self.calls.note("dynamodb:BatchGetItem", "table".into());
        self.inner.listed(pk, prefix, after, limit).await
    }
}

impl Noted<dyn SecretVault> {
    /// `PutSecretValue` first, `CreateSecret` when the secret is missing
    /// (`SecretsManagerVault::store`).
    async fn note_store(&self, name: &str) -> Result<(), VaultError> {
        self.calls.note("secretsmanager:PutSecretValue", self.calls.secret(name));
        if self.inner.get(name).await?.is_none() {
            self.calls.note("secretsmanager:CreateSecret", self.calls.secret(name));
        }
        Ok(())
    }
}

#[async_trait]
impl SecretVault for Noted<dyn SecretVault> {
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), VaultError> {
        self.note_store(name).await?;
        self.inner.put(name, value).await
    }
    async fn get(&self, name: &str) -> Result<Option<SecretString>, VaultError> {
        self.calls.note("secretsmanager:GetSecretValue", self.calls.secret(name));
        self.inner.get(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), VaultError> {
        self.calls.note("secretsmanager:DeleteSecret", self.calls.secret(name));
        self.inner.delete(name).await
    }
    async fn put_version(&self, name: &str, version: &str, value: &SecretString) -> Result<(), VaultError> {
        self.note_store(name).await?;
        self.inner.put_version(name, version, value).await
    }
    async fn get_version(&self, name: &str, version: &str) -> Result<Option<SecretString>, VaultError> {
        self.calls.note("secretsmanager:GetSecretValue", self.calls.secret(name));
        self.inner.get_version(name, version).await
    }
}

#[async_trait]
impl JobQueue for Noted<dyn JobQueue> {
    async fn send(&self, queue: QueueKind, body: &str, delay_seconds: u32) -> Result<String, QueueError> {
        self.calls.note("sqs:SendMessage", format!("queue/{}", queue.as_str()));
        self.inner.send(queue, body, delay_seconds).await
    }
    /// Receiving and deleting are the event source mapping's (SAM grants
    /// them with the SQS event), not the function's code.
    async fn receive(&self, queue: QueueKind, max: u32, visibility_seconds: u32) -> Result<Vec<Received>, QueueError> {
        self.inner.receive(queue, max, visibility_seconds).await
    }
    async fn ack(&self, queue: QueueKind, receipt: &str) -> Result<(), QueueError> {
        self.inner.ack(queue, receipt).await
    }
}

impl Noted<dyn RecordSink> {
    /// A read of an object: `GetObject`, and `ListBucket` when it is
    /// missing (S3 says "no such key" only to a role that may list the
    /// bucket; to the others it answers 403).
    fn read<T>(&self, key: &str, got: Result<Option<T>, SinkError>) -> Result<Option<T>, SinkError> {
        self.calls.note("s3:GetObject", format!("bucket/{key}"));
        if matches!(got, Ok(None)) {
            self.calls.note("s3:ListBucket", "bucket".into());
        }
        got
    }
}

#[async_trait]
impl RecordSink for Noted<dyn RecordSink> {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), SinkError> {
        self.calls.note("s3:PutObject", format!("bucket/{key}"));
        self.inner.put(key, body, content_type).await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, SinkError> {
        self.read(key, self.inner.get(key).await)
    }
    async fn size(&self, key: &str) -> Result<Option<u64>, SinkError> {
        self.read(key, self.inner.size(key).await)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        self.calls.note("s3:ListBucket", "bucket".into());
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        self.calls.note("s3:DeleteObject", format!("bucket/{key}"));
        self.inner.delete(key).await
    }
    async fn open(&self, key: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError> {
        self.read(key, self.inner.open(key).await)
    }
    /// A presigned URL carries the signer's permission: its role must be
    /// allowed the `PUT` the URL makes.
    async fn presign_put(&self, key: &str, expires_in: std::time::Duration) -> Result<String, SinkError> {
        self.calls.note("s3:PutObject", format!("bucket/{key}"));
        self.inner.presign_put(key, expires_in).await
    }
}

#[async_trait]
impl Mailer for Noted<dyn Mailer> {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        self.calls.note("ses:SendEmail", "ses:identity/example.com".into());
        self.inner.send(email).await
    }
}

#[async_trait]
impl EventBus for Noted<dyn EventBus> {
    async fn publish(&self, event: &ServiceEvent) -> Result<(), BusError> {
        self.calls.note("events:PutEvents", "bus".into());
        self.inner.publish(event).await
    }
}

/// An app whose every port notes its calls.
async fn noted_app(extra: &[(&str, &str)]) -> (TestApp, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let c = calls.clone();
    let app = spawn_app_ports(Backend::Embedded, extra, move |p| {
        p.store = noted(p.store.clone(), &c);
        p.vault = noted(p.vault.clone(), &c);
        p.queue = noted(p.queue.clone(), &c);
        p.sink = noted(p.sink.clone(), &c);
        p.mailer = noted(p.mailer.clone(), &c);
        p.events = noted(p.events.clone(), &c);
    })
    .await;
    *calls.secret_prefix.lock().unwrap() = app.stack.app.config.secret_prefix.clone();
    // The deployment's own keys, which the template creates (locally their
    // first use does).
    let a = &app.stack.app;
    shared::flows::refresh::token_key(a).await.unwrap();
    shared::platform::api_key::fingerprint_key(a.vault.as_ref(), &a.config.secret_prefix).await.unwrap();
    (app, calls)
}

/// Sends a request to the local gateway as the function its route belongs
/// to (a path that is not a route, the sandbox platform's, notes nothing).
async fn call(calls: &Calls, request: reqwest::RequestBuilder) -> reqwest::Response {
    let (client, request) = request.build_split();
    let request = request.unwrap();
    let route = shared::entry::http::find_route(request.method(), request.url().path());
    match route {
        Ok((route, _)) => calls.as_function(&logical_id(route.function.name()), client.execute(request)).await,
        Err(_) => client.execute(request).await,
    }
    .unwrap()
}

/// Connects through the browser flow (start, launch, the sandbox's consent,
/// callback), each step as its function; answers the callback page's message.
async fn connect(app: &TestApp, calls: &Calls, token: &str, body: Value, account: &str) -> Value {
    let start = call(calls, app.http.post(app.url("/v1/connect/start")).bearer_auth(token).json(&body)).await;
    assert_eq!(start.status(), 200);
    let started: Value = start.json().await.unwrap();
    let launched = call(calls, app.http.get(started["launch_url"].as_str().unwrap())).await;
    assert_eq!(launched.status(), 302);
    let authorize = launched.headers()["location"].to_str().unwrap().to_owned();
    let consent = app.http.get(format!("{authorize}&auto_approve={account}")).send().await.unwrap();
    let callback = consent.headers()["location"].to_str().unwrap().to_owned();
    let page = call(calls, app.http.get(callback)).await.text().await.unwrap();
    let start = page.find(r#"id="result">"#).unwrap() + r#"id="result">"#.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str::<Value>(&page[start..end]).unwrap()["message"].clone()
}

/// A custom costs connection, as the CSV upload function makes it.
async fn file_connection(app: &TestApp, calls: &Calls, token: &str) -> String {
    let body = json!({"platform": "custom_costs", "name": "Costs"});
    let created =
        call(calls, app.http.post(app.url("/v1/connections/file-upload")).bearer_auth(token).json(&body)).await;
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// A sandbox API-key connection, as the API-key function makes it.
async fn api_key_connection(app: &TestApp, calls: &Calls, token: &str, key: &str) -> String {
    let body = json!({"platform": "sandbox_api_key", "name": "Shop", "credentials": {"api_key": key}});
    let keyed = call(calls, app.http.post(app.url("/v1/connections/api-key")).bearer_auth(token).json(&body)).await;
    assert_eq!(keyed.status(), 201);
    keyed.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Runs what the queue holds as its consumer function would.
async fn consume(app: &TestApp, calls: &Calls, queue: QueueKind) {
    let function = match queue {
        QueueKind::Sync => "SyncWorkerFunction",
        QueueKind::Notify => "NotifierFunction",
    };
    calls.as_function(function, local_stack::workers::drain(&app.stack, queue)).await.unwrap();
}

/// IAM's wildcard match: `*` is any run of characters, `/` included, and
/// `?` any one character.
fn matches(pattern: &str, resource: &str) -> bool {
    let regex: String = pattern
        .chars()
        .map(|c| match c {
            '*' => ".*".to_owned(),
            '?' => ".".to_owned(),
            c => regex_lite::escape(&c.to_string()),
        })
        .collect();
    regex_lite::Regex::new(&format!("^{regex}$")).unwrap().is_match(resource)
}

#[test]
fn wildcards_match_as_iam_matches_them() {
    assert!(matches("secret:ws/*/auth_*", "secret:ws/ws_1/auth_x-AbCdEf"));
    assert!(matches("bucket/uploads/*", "bucket/uploads/ws/c/u.csv"));
    assert!(!matches("bucket/uploads/*", "bucket/costs/ws/c/u.jsonl"));
    assert!(matches("table", "table"));
    assert!(!matches("table", "table/index/due"));
    assert!(!matches("secret:token-key-*", "secret:ws/ws_1/auth_x-AbCdEf"));
    assert!(matches("ses:configuration-set/connections-?", "ses:configuration-set/connections-x"));
    assert!(!matches("bucket/a.b", "bucket/aXb"), "a dot is a dot");
}

/// Every call noted is allowed to the function that made it.
fn assert_allowed(calls: &Calls) {
    let template =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    let seen = calls.seen.lock().unwrap().clone();
    let functions: BTreeSet<&String> = seen.iter().map(|(f, _, _)| f).collect();
    let mut refused = Vec::new();
    for function in &functions {
        let granted = crate::iam::granted(&template, function);
        for (_, action, resource) in seen.iter().filter(|(f, _, _)| f == *function) {
            if !granted.iter().any(|(a, pattern)| a == action && matches(pattern, resource)) {
                refused.push(format!("{function}: {action} on {resource}"));
            }
        }
    }
    let shown = refused.iter().take(20).cloned().collect::<Vec<_>>().join("\n  ");
    assert!(refused.is_empty(), "{} calls the template does not allow:\n  {shown}", refused.len());
}

/// The journeys: a grant connected by OAuth and synced, its alerts and
/// events delivered; files uploaded directly and by presigned URL, one
/// processed on landing, two left waiting for the sweep, the costs
/// exported; the daily spend read for days without files; the sweep run
/// when the grant's token is due, and again when the user revoked it on
/// the platform; the alert emailed; the connections and the grant removed.
#[tokio::test]
async fn every_call_a_journey_makes_is_allowed_to_its_function() {
    let (app, calls) = noted_app(&[("DIGEST_WINDOW_SECONDS", "0"), ("APP_BASE_URL", "https://app.example.com")]).await;
    let t = app.token("ws_iam", "u_admin", "admin").await;
    let member = app
        .http
        .put(app.url("/v1/members/u_admin"))
        .bearer_auth(&t)
        .json(&json!({"email": "admin@iam.example.com", "role": "admin"}));
    assert_eq!(call(&calls, member).await.status(), 200);

    // Connect by OAuth (the sandbox platform), then run the queues'
    // consumers as their functions.
    let body = json!({"platform": "sandbox_oauth", "name": "Shop", "return_to": ORIGIN});
    assert_eq!(connect(&app, &calls, &t, body, "acct_iam").await["status"], "connected");
    consume(&app, &calls, QueueKind::Sync).await;
    consume(&app, &calls, QueueKind::Notify).await;

    let list: Value =
        call(&calls, app.http.get(app.url("/v1/connections")).bearer_auth(&t)).await.json().await.unwrap();
    let oauth_id = list["connections"][0]["id"].as_str().expect("the connection").to_owned();

    // Connect by API key, sync it; the deployer's backend calls both
    // connections through the service routes.
    let key_id = api_key_connection(&app, &calls, &t, "sandbox-valid-iam").await;
    consume(&app, &calls, QueueKind::Sync).await;
    for id in [&key_id, &oauth_id] {
        let service = app
            .http
            .get(app.url(&format!("/v1/service/connections/{id}/proxy/orders?limit=2")))
            .bearer_auth(SERVICE_TOKEN)
            .header("x-workspace-id", "ws_iam");
        assert_eq!(call(&calls, service).await.status(), 200);
    }
    let spend = app.url(&format!("/v1/spend?from=2025-01-01&to=2025-01-03&connection_id={oauth_id}"));
    assert_eq!(call(&calls, app.http.get(spend).bearer_auth(&t)).await.status(), 200);

    // Files: a connection, a direct upload, three presigned ones.
    let file_id = file_connection(&app, &calls, &t).await;
    let csv = "date,category,amount,currency\n2026-11-01,shipping,10,EUR\n";
    let direct = call(
        &calls,
        app.http
            .post(app.url(&format!("/v1/connections/{file_id}/uploads")))
            .bearer_auth(&t)
            .header("content-type", "text/csv")
            .body(csv),
    )
    .await;
    assert_eq!(direct.status(), 201);
    let mut presigned = Vec::new();
    for _ in 0..3 {
        let r = call(
            &calls,
            app.http.post(app.url(&format!("/v1/connections/{file_id}/uploads/presigned"))).bearer_auth(&t),
        )
        .await;
        assert_eq!(r.status(), 201);
        presigned.push(r.json::<Value>().await.unwrap()["upload"]["id"].as_str().unwrap().to_owned());
    }
    // One lands and its event arrives; one lands and its event is lost; one
    // never lands.
    let key = |upload: &str| format!("uploads/ws_iam/{file_id}/{upload}.csv");
    for upload in &presigned[..2] {
        app.stack.app.sink.put(&key(upload), Bytes::from(csv), "text/csv").await.unwrap();
    }
    let first = key(&presigned[0]);
    let landed = shared::flows::file_uploads::process_landed(&app.stack.app, &first);
    calls.as_function("UploadProcessorFunction", landed).await.unwrap();
    let export = app.url(&format!("/v1/connections/{file_id}/costs/export"));
    assert_eq!(call(&calls, app.http.get(export).bearer_auth(&t)).await.status(), 200);

    // A day on: the grant's token is due, the two uploads overdue.
    app.clock.advance(chrono::Duration::days(1));
    let report = calls.as_function("ExpirySweepFunction", shared::flows::sweep::sweep(&app.stack.app)).await.unwrap();
    assert_eq!(report.uploads_expired, 2, "{report:?}");
    // The user revokes the app on the platform: the next sweep's probe
    // finds it, and the alert goes out by email.
    assert_eq!(app.sandbox().revoke_account("acct_iam"), 1);
    app.clock.advance(chrono::Duration::minutes(2));
    calls.as_function("ExpirySweepFunction", shared::flows::sweep::sweep(&app.stack.app)).await.unwrap();
    consume(&app, &calls, QueueKind::Notify).await;

    for id in [&oauth_id, &key_id] {
        let removed = call(&calls, app.http.delete(app.url(&format!("/v1/connections/{id}"))).bearer_auth(&t)).await;
        assert_eq!(removed.status(), 204);
    }
    let grants: Value =
        call(&calls, app.http.get(app.url("/v1/authorizations")).bearer_auth(&t)).await.json().await.unwrap();
    let grant = grants["authorizations"][0]["id"].as_str().expect("the grant").to_owned();
    let removed = call(&calls, app.http.delete(app.url(&format!("/v1/authorizations/{grant}"))).bearer_auth(&t)).await;
    assert!(removed.status().is_success(), "{}", removed.status());

    let seen = calls.seen.lock().unwrap().clone();
    for function in [
        "ConnectStartFunction",
        "OauthCallbackFunction",
        "ApiKeyConnectFunction",
        "ServiceApiFunction",
        "SyncWorkerFunction",
        "NotifierFunction",
        "ConnectionsApiFunction",
        "CsvUploadFunction",
        "UploadProcessorFunction",
        "ExpirySweepFunction",
    ] {
        assert!(seen.iter().any(|(f, _, _)| f == function), "{function} made no call: the journey missed it");
    }
    for needed in [
        ("ExpirySweepFunction", "s3:GetObject"),
        ("ExpirySweepFunction", "s3:ListBucket"),
        ("ConnectionsApiFunction", "s3:ListBucket"),
        ("NotifierFunction", "ses:SendEmail"),
    ] {
        assert!(seen.iter().any(|(f, a, _)| (f.as_str(), *a) == needed), "{needed:?} was not exercised: {seen:#?}");
    }
    assert_allowed(&calls);
}

/// The other journeys: events delivered to the deployer's webhook; what a
/// grant reaches discovered; the grant revoked, found by the sweep and
/// reconnected; an OAuth 1.0a platform connected and synced; a sync asked
/// for; a file pushed by an automation token; notifications read.
#[tokio::test]
async fn every_call_of_the_other_journeys_is_allowed_to_its_function() {
    let hook = FakePlatform::start(|_| Reply::Empty(204)).await;
    let (app, calls) = noted_app(&[
        ("DIGEST_WINDOW_SECONDS", "0"),
        ("APP_BASE_URL", ORIGIN),
        ("WEBHOOK_URL", &format!("{}/hook", hook.base)),
    ])
    .await;
    // The template creates the webhook's signing secret.
    shared::flows::events::ensure_webhook_secret(&app.stack.app).await.unwrap();
    let t = app.token("ws_iam2", "u_admin", "admin").await;
    let member = app.http.put(app.url("/v1/members/u_admin")).bearer_auth(&t).json(&json!({
        "email": "admin@iam2.example.com", "role": "admin"
    }));
    assert_eq!(call(&calls, member).await.status(), 200);

    let body = json!({"platform": "sandbox_oauth", "name": "Ads", "return_to": ORIGIN});
    let connected = connect(&app, &calls, &t, body, "acct_one").await;
    assert_eq!(connected["status"], "connected", "{connected}");
    let id = connected["connection_id"].as_str().unwrap().to_owned();
    consume(&app, &calls, QueueKind::Sync).await;
    consume(&app, &calls, QueueKind::Notify).await;
    assert!(!hook.requests().is_empty(), "events reached the webhook");

    let grants: Value =
        call(&calls, app.http.get(app.url("/v1/authorizations")).bearer_auth(&t)).await.json().await.unwrap();
    let grant = grants["authorizations"][0]["id"].as_str().unwrap().to_owned();
    let discover =
        app.http.post(app.url(&format!("/v1/authorizations/{grant}/discover"))).bearer_auth(&t).json(&json!({}));
    assert_eq!(call(&calls, discover).await.status(), 200);
    let reach = app.http.get(app.url(&format!("/v1/authorizations/{grant}/accounts"))).bearer_auth(&t);
    assert_eq!(call(&calls, reach).await.status(), 200);
    let rename =
        app.http.patch(app.url(&format!("/v1/connections/{id}"))).bearer_auth(&t).json(&json!({"name": "Ads EU"}));
    assert_eq!(call(&calls, rename).await.status(), 200);
    let sync_now = app.http.post(app.url(&format!("/v1/connections/{id}/sync"))).bearer_auth(&t);
    assert!(call(&calls, sync_now).await.status().is_success());
    consume(&app, &calls, QueueKind::Sync).await;

    // Revoked on the platform, found by the sweep, alerted, reconnected.
    assert_eq!(app.sandbox().revoke_account("acct_one"), 1);
    app.clock.advance(chrono::Duration::minutes(2));
    calls.as_function("ExpirySweepFunction", shared::flows::sweep::sweep(&app.stack.app)).await.unwrap();
    consume(&app, &calls, QueueKind::Notify).await;
    let body = json!({"platform": "sandbox_oauth", "return_to": ORIGIN, "reconnect": {"authorization_id": grant}});
    let reconnected = connect(&app, &calls, &t, body, "acct_one").await;
    assert_eq!(reconnected["status"], "connected", "{reconnected}");
    consume(&app, &calls, QueueKind::Sync).await;
    consume(&app, &calls, QueueKind::Notify).await;
    let notifications: Value =
        call(&calls, app.http.get(app.url("/v1/notifications")).bearer_auth(&t)).await.json().await.unwrap();
    assert!(!notifications["notifications"].as_array().unwrap().is_empty(), "{notifications}");
    let read = app.http.post(app.url("/v1/notifications/read-all")).bearer_auth(&t);
    assert!(call(&calls, read).await.status().is_success());

    // OAuth 1.0a.
    let body = json!({"platform": "sandbox_oauth1", "name": "Posts", "return_to": ORIGIN});
    assert_eq!(connect(&app, &calls, &t, body, "acct_x").await["status"], "connected");
    consume(&app, &calls, QueueKind::Sync).await;

    // A file pushed by an automation token.
    let file_id = file_connection(&app, &calls, &t).await;
    let issued =
        call(&calls, app.http.post(app.url(&format!("/v1/connections/{file_id}/upload-tokens"))).bearer_auth(&t)).await;
    assert_eq!(issued.status(), 201);
    let upload_token = issued.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let push = app
        .http
        .post(app.url("/v1/automation/uploads"))
        .bearer_auth(upload_token)
        .header("content-type", "text/csv")
        .body("date,category,amount,currency\n2026-11-01,shipping,10,EUR\n");
    assert_eq!(call(&calls, push).await.status(), 201);
    let revoke = app.http.delete(app.url(&format!("/v1/connections/{file_id}/upload-tokens"))).bearer_auth(&t);
    assert!(call(&calls, revoke).await.status().is_success());
    consume(&app, &calls, QueueKind::Notify).await;

    let seen = calls.seen.lock().unwrap().clone();
    for (function, action) in [
        ("NotifierFunction", "ses:SendEmail"),
        ("OauthCallbackFunction", "secretsmanager:PutSecretValue"),
        ("ConnectStartFunction", "secretsmanager:CreateSecret"),
        ("CsvUploadFunction", "s3:PutObject"),
    ] {
        assert!(seen.iter().any(|(f, a, _)| (f.as_str(), *a) == (function, action)), "{function} {action}: {seen:#?}");
    }
    assert!(
        seen.iter().any(|(f, a, r)| f == "NotifierFunction"
            && *a == "secretsmanager:GetSecretValue"
            && r.starts_with("secret:webhook")),
        "the webhook's secret was read"
    );
    assert_allowed(&calls);
}

/// Installs a platform starts (BigCommerce's control panel): one claimed by
/// a workspace, one left to expire and swept; an API key replaced; an
/// email suppression lifted.
#[tokio::test]
async fn every_call_of_installs_and_replacements_is_allowed_to_its_function() {
    let (fake, _) = crate::oauth::bigcommerce_fake().await;
    let patch = json!({"oauth": {"token_url": "{fake}/oauth2/token"}, "api": {"base_url": "{fake}/{context}/v3"},
                       "identity": {"path": "{fake}/{context}/v2/store"}});
    let overrides = json!({"platforms": {"bigcommerce": patch}}).to_string().replace("{fake}", &fake.base);
    let (app, calls) = noted_app(&[("CATALOG_OVERRIDES", overrides.as_str())]).await;
    let a = &app.stack.app;
    let secret = shared::domain::SecretRef::for_app(&a.config.secret_prefix, "bigcommerce");
    let client_secret = SecretString::from("bc_secret".to_owned());
    shared::platform::AppCredentials::store(a.vault.as_ref(), &secret, "client-123", &client_secret).await.unwrap();
    let t = app.token("ws_iam3", "u_admin", "admin").await;

    let install = |code: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", code)
            .append_pair("scope", crate::oauth::BC_SCOPES)
            .append_pair("context", "stores/abc123")
            .finish();
        app.http.get(app.url(&format!("/v1/oauth/callback?{q}")))
    };
    let claim_of = |page: &str| -> String {
        let at = page.find("#install=").unwrap_or_else(|| panic!("no claim link: {page}")) + "#install=".len();
        page[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    let page = call(&calls, install("good-1")).await.text().await.unwrap();
    let claim = app.http.post(app.url("/v1/installs/claim")).bearer_auth(&t).json(&json!({"claim": claim_of(&page)}));
    assert_eq!(call(&calls, claim).await.status(), 201);
    // (Its sync against this fake is not the point: the other journeys sync.)
    let queued = a.queue.receive(QueueKind::Sync, 10, 60).await.unwrap();
    assert_eq!(queued.len(), 1, "the claimed install's initial sync is queued");
    a.queue.ack(QueueKind::Sync, &queued[0].receipt).await.unwrap();
    // A second install nobody claims: the sweep deletes its tokens.
    call(&calls, install("good-2")).await;
    app.clock.advance(chrono::Duration::hours(25));
    let report = calls.as_function("ExpirySweepFunction", shared::flows::sweep::sweep(a)).await.unwrap();
    assert_eq!(report.installs_expired, 1, "{report:?}");

    // An API key connection whose key is replaced.
    let key_id = api_key_connection(&app, &calls, &t, "sandbox-valid-one").await;
    let replace = app
        .http
        .put(app.url(&format!("/v1/connections/{key_id}/api-key")))
        .bearer_auth(&t)
        .json(&json!({"credentials": {"api_key": "sandbox-valid-two"}}));
    let replaced = call(&calls, replace).await;
    assert!(replaced.status().is_success(), "{}", replaced.status());
    consume(&app, &calls, QueueKind::Sync).await;
    consume(&app, &calls, QueueKind::Notify).await;

    let lift = app.http.delete(app.url("/v1/members/u_admin/email-suppression")).bearer_auth(&t);
    assert!(call(&calls, lift).await.status().as_u16() < 500);

    let seen = calls.seen.lock().unwrap().clone();
    for (function, action, resource) in [
        ("OauthCallbackFunction", "secretsmanager:CreateSecret", "secret:installs/"),
        ("ConnectStartFunction", "secretsmanager:GetSecretValue", "secret:installs/"),
        ("ExpirySweepFunction", "secretsmanager:DeleteSecret", "secret:installs/"),
        ("ApiKeyConnectFunction", "secretsmanager:PutSecretValue", "secret:packs/conn-"),
    ] {
        assert!(
            seen.iter().any(|(f, a, r)| f == function && *a == action && r.starts_with(resource)),
            "{function} {action} {resource}: {seen:#?}"
        );
    }
    assert_allowed(&calls);
}
