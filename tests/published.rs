//! Events for the deployer's backend: every change of a journey reaches the
//! event bus (embedded: the JSON-lines bus; moto: EventBridge, read through
//! a rule's SQS target) and the webhook, signed the Standard Webhooks way
//! and checked by the receiver with the vault's secret; each is valid
//! against `docs/events.schema.json` and carries no secret. A webhook that
//! refuses is offered again with backoff, then kept as a failed delivery.

use chrono::Duration;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use secrecy::ExposeSecret;
use shared::domain::events::ServiceEvent;
use shared::domain::messages::QueueKind;

use crate::harness::{bus_tap, spawn_app_on, tapped, Backend, FakePlatform, Recorded, Reply, TestApp};

/// A webhook receiver on loopback answering `status`.
struct Hook {
    fake: FakePlatform,
    status: Arc<AtomicU16>,
}

impl Hook {
    async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(200));
        let s = status.clone();
        let fake = FakePlatform::start(move |_r: &Recorded| Reply::Json(s.load(Ordering::SeqCst), json!({}))).await;
        Self { fake, status }
    }

    fn url(&self) -> String {
        format!("{}/hook", self.fake.base)
    }

    fn received(&self) -> Vec<Recorded> {
        self.fake.requests_to("/hook")
    }
}

/// What a receiver does: check the signature with the shared secret, then read the event.
fn verified(secret: &str, r: &Recorded) -> ServiceEvent {
    let webhook = standardwebhooks::Webhook::new(secret).unwrap();
    webhook.verify(r.body.as_bytes(), &r.headers).expect("a valid signature");
    // Another secret does not verify it: it was signed with this one.
    let other = shared::flows::events::new_webhook_secret();
    assert!(standardwebhooks::Webhook::new(other.expose_secret())
        .unwrap()
        .verify(r.body.as_bytes(), &r.headers)
        .is_err());
    serde_json::from_str(&r.body).unwrap()
}

/// The types of the events among notification-queue messages, each checked
/// against the schema (for other test files' journeys).
pub(crate) fn published_types(messages: &[shared::domain::messages::AlertEvent]) -> Vec<String> {
    let schema = schema();
    messages
        .iter()
        .filter_map(|m| match m {
            shared::domain::messages::AlertEvent::Publish { event, .. } => {
                assert_valid(&schema, &serde_json::to_value(event).unwrap());
                Some(event.type_name().to_owned())
            }
            _ => None,
        })
        .collect()
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn assert_valid(schema: &jsonschema::Validator, event: &Value) {
    let errors: Vec<String> = schema.iter_errors(event).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{event:#}\n{errors:#?}");
}

/// What reached the bus, as the events themselves.
async fn on_bus(app: &TestApp, tap: Option<&str>) -> Vec<Value> {
    match (&app.bus, tap) {
        (Some(bus), _) => bus.published().iter().map(|e| serde_json::to_value(e).unwrap()).collect(),
        (None, Some(url)) => {
            let envelopes = tapped(url).await;
            for e in &envelopes {
                assert_eq!(e["source"], app.stack.app.config.event_source);
                assert_eq!(e["detail-type"], e["detail"]["type"], "detail-type is the event's type");
            }
            envelopes.into_iter().map(|e| e["detail"].clone()).collect()
        }
        (None, None) => unreachable!(),
    }
}

both!(a_journey_publishes_signed_events_that_match_their_schema);

async fn a_journey_publishes_signed_events_that_match_their_schema(backend: Backend) {
    let hook = Hook::start().await;
    let app = spawn_app_on(backend, &[("WEBHOOK_URL", hook.url().as_str())]).await;
    let tap = match backend {
        Backend::Moto => Some(bus_tap(&app.stack.app).await),
        Backend::Embedded => None,
    };
    let secret = shared::flows::events::ensure_webhook_secret(&app.stack.app).await.unwrap().unwrap();
    let stack = &app.stack;
    let admin = app.token("ws_ev", "u_admin", "admin").await;
    // Connect (OAuth, through the browser flow), sync, lose the grant, remove.
    let (auth, c) = crate::lifecycle::connect_sandbox(&app, "ws_ev", "acct_ev").await;
    let tokens = shared::flows::refresh::tokens_of(&stack.app, &auth).await.unwrap();
    local_stack::workers::drain(stack, QueueKind::Sync).await.unwrap();
    assert_eq!(app.sandbox().revoke_account("acct_ev"), 1);
    app.clock.advance(Duration::minutes(2));
    shared::flows::sweep::sweep(&stack.app).await.unwrap();
    let removed =
        app.http.delete(app.url(&format!("/v1/connections/{}", c.id))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(removed.status(), 204);
    // The notifier delivers.
    local_stack::workers::drain(stack, QueueKind::Notify).await.unwrap();

    let schema = schema();
    let received: Vec<(Recorded, ServiceEvent)> =
        hook.received().into_iter().map(|r| (r.clone(), verified(secret.expose_secret(), &r))).collect();
    let bus = on_bus(&app, tap.as_deref()).await;
    let mut types: Vec<String> = Vec::new();
    for (r, event) in &received {
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_valid(&schema, &body);
        assert_eq!(r.headers["webhook-id"], event.id.as_str());
        assert_eq!(event.workspace_id.as_str(), "ws_ev");
        types.push(event.type_name().to_owned());
    }
    for event in &bus {
        assert_valid(&schema, event);
    }
    let hook_ids: BTreeSet<String> = received.iter().map(|(_, e)| e.id.clone()).collect();
    let bus_ids: BTreeSet<String> = bus.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(hook_ids, bus_ids, "the bus and the webhook get the same events");
    assert_eq!(hook_ids.len(), received.len(), "each event once");
    types.sort();
    assert_eq!(
        types,
        [
            "authorization.disconnected",
            "connection.removed",
            "connection.status_changed",
            "connection.status_changed",
            "connection.status_changed",
            "sync.completed",
        ],
        "created, connected and disconnected; the run; the grant; the removal"
    );
    let statuses: BTreeSet<(String, String)> = received
        .iter()
        .map(|(r, _)| serde_json::from_str::<Value>(&r.body).unwrap())
        .filter(|b| b["type"] == "connection.status_changed")
        .map(|b| (b["data"]["previous_status"].to_string(), b["data"]["connection"]["status"].to_string()))
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from([
            ("null".into(), "\"initial_sync_in_progress\"".into()),
            ("\"initial_sync_in_progress\"".into(), "\"connected\"".into()),
            ("\"connected\"".into(), "\"disconnected\"".into()),
        ])
    );
    let completed = received.iter().find(|(_, e)| e.type_name() == "sync.completed").unwrap();
    let completed: Value = serde_json::from_str(&completed.0.body).unwrap();
    assert!(completed["data"]["run"]["records"].as_u64().unwrap() > 0, "{completed}");
    // No secret in any event.
    let everything: String = received.iter().map(|(r, _)| r.body.clone()).collect::<Vec<_>>().join("\n");
    for secret in [
        tokens.access_token.as_str(),
        tokens.refresh_token.as_deref().unwrap(),
        local_stack::sandbox::CLIENT_SECRET,
        secret.expose_secret(),
    ] {
        assert!(!everything.contains(secret), "a secret in an event");
    }
}

#[tokio::test]
async fn a_refused_webhook_is_retried_with_backoff_then_kept_as_a_failed_delivery() {
    let hook = Hook::start().await;
    let app =
        spawn_app_on(Backend::Embedded, &[("WEBHOOK_URL", hook.url().as_str()), ("WEBHOOK_MAX_ATTEMPTS", "3")]).await;
    shared::flows::events::ensure_webhook_secret(&app.stack.app).await.unwrap();
    let (stack, ws) = (&app.stack, shared::domain::ids::WorkspaceId::parse("ws_wh").unwrap());
    let staff = app.token("ws_wh", "u", "staff").await;
    let create = |name: &'static str| {
        let (app, staff) = (&app, staff.clone());
        async move {
            let r = app
                .http
                .post(app.url("/v1/connections/file-upload"))
                .bearer_auth(&staff)
                .json(&json!({"platform": "custom_costs", "name": name}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }
    };
    // The receiver is down: attempt 1 fails at once, 2 after 30 s, 3 after 60 s more.
    hook.status.store(500, Ordering::SeqCst);
    create("Costs").await;
    local_stack::workers::drain(stack, QueueKind::Notify).await.unwrap();
    assert_eq!(hook.received().len(), 1);
    app.clock.advance(Duration::seconds(29));
    local_stack::workers::drain(stack, QueueKind::Notify).await.unwrap();
    assert_eq!(hook.received().len(), 1, "not before its backoff");
    app.clock.advance(Duration::seconds(1));
    local_stack::workers::drain(stack, QueueKind::Notify).await.unwrap();
    assert_eq!(hook.received().len(), 2);
    assert!(stack.app.repo.failed_deliveries(&ws, 10).await.unwrap().is_empty());
    app.clock.advance(Duration::seconds(60));
    local_stack::workers::drain(stack, QueueKind::Notify).await.unwrap();
    let attempts = hook.received();
    assert_eq!(attempts.len(), 3);
    let ids: BTreeSet<_> = attempts.iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(ids.len(), 1, "every attempt is the same event");
    let failed = stack.app.repo.failed_deliveries(&ws, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].attempts, failed[0].last_error.as_str()), (3, "HTTP 500"));
    assert_eq!(failed[0].event.id, ids.into_iter().next().unwrap().to_str().unwrap());
    assert_eq!(app.bus.as_ref().unwrap().published().len(), 1, "the bus got it once");
    // Nothing more is tried.
    app.clock.advance(Duration::minutes(30));
    local_stack::workers::drain(stack, QueueKind::Notify).await.unwrap();
    assert_eq!(hook.received().len(), 3);
    // The receiver is back: the next event lands at once, nothing is dead-lettered.
    hook.status.store(204, Ordering::SeqCst);
    create("Costs 2").await;
    local_stack::workers::drain(stack, QueueKind::Notify).await.unwrap();
    assert_eq!(hook.received().len(), 4);
    assert_eq!(stack.app.repo.failed_deliveries(&ws, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_webhook_events_still_reach_the_bus_uploads_included() {
    let app = spawn_app_on(Backend::Embedded, &[]).await;
    assert!(shared::flows::events::ensure_webhook_secret(&app.stack.app).await.unwrap().is_none());
    let staff = app.token("ws_nb", "u", "staff").await;
    let r = app
        .http
        .post(app.url("/v1/connections/file-upload"))
        .bearer_auth(&staff)
        .json(&json!({"platform": "custom_costs", "name": "Costs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let csv = "date,category,description,amount,currency\n2026-11-01,shipping,Courier,12.50,EUR\n2026-11-02,tools,Saw,oops,EUR\n";
    let r = app
        .http
        .post(app.url(&format!("/v1/connections/{id}/uploads?import_valid_rows=true")))
        .bearer_auth(&staff)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    local_stack::workers::drain(&app.stack, QueueKind::Notify).await.unwrap();
    let published = app.bus.as_ref().unwrap().published();
    let types: Vec<&str> = published.iter().map(|e| e.type_name()).collect();
    assert_eq!(types, ["connection.status_changed", "connection.status_changed", "upload.processed"]);
    for e in &published {
        assert_valid(&schema(), &serde_json::to_value(e).unwrap());
    }
    let upload = serde_json::to_value(&published[2]).unwrap();
    assert_eq!(upload["data"]["upload"]["state"], "ingested");
    assert_eq!(
        (upload["data"]["upload"]["valid_rows"].as_u64(), upload["data"]["upload"]["error_rows"].as_u64()),
        (Some(1), Some(1))
    );
}

/// A queue that refuses notification messages while it is down.
struct Flaky {
    inner: Arc<dyn shared::ports::JobQueue>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl shared::ports::JobQueue for Flaky {
    async fn send(
        &self,
        queue: QueueKind,
        body: &str,
        delay: u32,
    ) -> Result<String, shared::domain::error::QueueError> {
        if queue == QueueKind::Notify && self.down.load(Ordering::SeqCst) {
            return Err(shared::domain::error::QueueError::Unavailable("down".into()));
        }
        self.inner.send(queue, body, delay).await
    }
    async fn receive(
        &self,
        queue: QueueKind,
        max: u32,
        visibility: u32,
    ) -> Result<Vec<shared::ports::Received>, shared::domain::error::QueueError> {
        self.inner.receive(queue, max, visibility).await
    }
    async fn ack(&self, queue: QueueKind, receipt: &str) -> Result<(), shared::domain::error::QueueError> {
        self.inner.ack(queue, receipt).await
    }
}

#[tokio::test]
async fn an_event_the_queue_refuses_is_kept_and_queued_by_the_next_sweep() {
    use shared::domain::events::{EventBody, ServiceEvent};
    let config = crate::harness::config(&[]);
    let clock: Arc<dyn shared::ports::Clock> = Arc::new(shared::adapters::clock::SystemClock);
    let embedded = shared::wiring::EmbeddedPorts::open(&config, None, clock.clone()).unwrap();
    let mut ports = embedded.ports(clock);
    let flaky = Arc::new(Flaky { inner: ports.queue.clone(), down: true.into() });
    ports.queue = flaky.clone();
    let app = shared::wiring::App::assemble(config, ports).unwrap();
    let ws = shared::domain::ids::WorkspaceId::parse("ws_outbox").unwrap();
    let connection = shared::domain::Connection::new(
        ws.clone(),
        shared::domain::ids::PlatformId::parse("custom_costs").unwrap(),
        "Costs".into(),
        shared::domain::ConnectionRole::Source,
        None,
        shared::domain::Credential::FileUpload,
        vec![],
        shared::domain::ids::UserId::parse("u").unwrap(),
        app.clock.now(),
    );
    let event =
        ServiceEvent::new(&ws, EventBody::ConnectionRemoved { connection: (&connection).into() }, app.clock.now());
    let id = event.id.clone();
    // The queue is down: the event waits in the table, not lost.
    shared::flows::events::publish(&app, event).await;
    assert!(crate::harness::drain_notify(&app).await.1.is_empty());
    // Still down at the next sweep: it stays.
    assert_eq!(shared::flows::sweep::sweep(&app).await.unwrap().events_requeued, 0);
    // Back up: the sweep queues it once, and forgets it.
    flaky.down.store(false, Ordering::SeqCst);
    assert_eq!(shared::flows::sweep::sweep(&app).await.unwrap().events_requeued, 1);
    let (_, events) = crate::harness::drain_notify(&app).await;
    assert_eq!(events.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), [id]);
    assert_eq!(shared::flows::sweep::sweep(&app).await.unwrap().events_requeued, 0);
}
