//! Queue messages and the handlers of the queue- and schedule-driven
//! functions. SQS delivers at least once: every handler is idempotent and
//! reports partial batch failures, so one bad message never re-runs the
//! others; a message that keeps failing reaches the DLQ by redrive policy.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use std::future::Future;

use crate::app::App;
use crate::domain::SyncKind;
use crate::error::Error;
use crate::ids::{AuthorizationId, ConnectionId, WorkspaceId};
use crate::ports::QueueKind;

/// A message of the sync queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncJob {
    Sync {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        kind: SyncKind,
        /// A continuation carries the run it continues.
        #[serde(default)]
        run_id: Option<crate::ids::SyncRunId>,
    },
}

impl SyncJob {
    /// A new run of a connection (not a continuation).
    pub fn start(connection: &crate::domain::Connection, kind: SyncKind) -> Self {
        SyncJob::Sync {
            workspace_id: connection.workspace_id.clone(),
            connection_id: connection.id.clone(),
            kind,
            run_id: None,
        }
    }
}

/// A message of the notification queue: something people should hear of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertEvent {
    ConnectionDisconnected {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        reason: String,
    },
    /// A grant was lost: every connection that uses it is disconnected (one alert).
    AuthorizationDisconnected {
        workspace_id: WorkspaceId,
        authorization_id: AuthorizationId,
        connection_ids: Vec<ConnectionId>,
        reason: String,
    },
    SyncFailed {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        reason: String,
    },
    ExpiringSoon {
        workspace_id: WorkspaceId,
        authorization_id: AuthorizationId,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// A grant works again (reconnected).
    AuthorizationRecovered {
        workspace_id: WorkspaceId,
        authorization_id: AuthorizationId,
    },
    /// Send the workspace's pending emails (a delayed message: the digest window).
    Flush {
        workspace_id: WorkspaceId,
        flush_id: String,
    },
    Recovered {
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
    },
}

/// Sends a message as JSON.
pub async fn enqueue<T: Serialize>(
    app: &App,
    queue: QueueKind,
    message: &T,
    delay_seconds: u32,
) -> Result<String, Error> {
    let body = serde_json::to_string(message).map_err(|e| Error::Config(format!("unserializable message: {e}")))?;
    Ok(app.queue.send(queue, &body, delay_seconds).await?)
}

/// Runs `f` on every record of a batch and reports the ones that failed.
/// A body that does not parse fails too: it is retried, then dead-lettered,
/// and the DLQ alarm tells a person.
pub async fn for_each_record<T, F, Fut>(event: SqsEvent, f: F) -> SqsBatchResponse
where
    T: serde::de::DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let outcome = match serde_json::from_str::<T>(record.body.as_deref().unwrap_or("")) {
            Ok(message) => f(message).await,
            Err(e) => Err(Error::MalformedBody(format!("queue message: {}", e.classify_str()))),
        };
        if let Err(e) = outcome {
            tracing::error!(message_id = %id, error = %e, "message failed; it will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "unknown type or wrong fields",
            _ => "not valid JSON",
        }
    }
}

/// The sync worker's handling of one job: run it within the budget; a
/// failure marks the connection in error (and raises its alert) and is
/// reported, so SQS retries it and dead-letters it after its last receive.
pub async fn run_sync_job(app: &App, job: SyncJob, budget: crate::sync::Budget) -> Result<(), Error> {
    let SyncJob::Sync { workspace_id, connection_id, .. } = &job;
    match crate::sync::run_job(app, &job, budget).await {
        Ok(outcome) => {
            tracing::info!(connection = %connection_id, ?outcome, "sync job done");
            if let crate::sync::Outcome::Failed(reason) = outcome {
                let message = format!("The platform refused access to the data ({}).", reason.code());
                crate::sync::record_failure(app, workspace_id, connection_id, reason, message).await?;
            }
            Ok(())
        }
        Err(e) => {
            let reason = match &e {
                Error::MalformedPage(_) => crate::domain::FailureReason::MalformedResponse,
                Error::Http(_) => crate::domain::FailureReason::PlatformUnavailable,
                _ => crate::domain::FailureReason::Internal,
            };
            let message = match &e {
                Error::MalformedPage(page) => format!("The platform sent a malformed page: {page}."),
                Error::Http(h) => format!("The platform could not be read: {h}."),
                _ => "The sync failed on our side; it will be retried.".to_owned(),
            };
            if let Err(record) = crate::sync::record_failure(app, workspace_id, connection_id, reason, message).await {
                tracing::error!(connection = %connection_id, error = %record, "sync failure not recorded");
            }
            Err(e)
        }
    }
}

/// The notifier's handling of one alert event.
pub async fn deliver_alert(app: &App, event: AlertEvent) -> Result<(), Error> {
    crate::alerts::handle(app, event).await
}

/// The sync worker: one batch from the sync queue, within the budget.
pub async fn sync_worker(app: &App, event: SqsEvent, budget: crate::sync::Budget) -> SqsBatchResponse {
    for_each_record(event, |job: SyncJob| run_sync_job(app, job, budget)).await
}

/// The time left before a Lambda invocation's deadline (epoch ms).
pub fn budget_from_deadline(deadline_ms: u64) -> crate::sync::Budget {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    crate::sync::Budget::until(
        std::time::Instant::now() + std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms)),
    )
}

/// The notifier: one batch from the notification queue.
pub async fn notifier(app: &App, event: SqsEvent) -> SqsBatchResponse {
    for_each_record(event, |e: AlertEvent| deliver_alert(app, e)).await
}

/// A `lambda_runtime` service for an SQS-driven function.
pub fn sqs_service<F, Fut>(
    app: App,
    handler: F,
) -> impl lambda_runtime::Service<
    lambda_runtime::LambdaEvent<SqsEvent>,
    Response = SqsBatchResponse,
    Error = lambda_runtime::Error,
    Future: Send,
>
where
    F: Fn(App, SqsEvent, u64) -> Fut + Clone + Send,
    Fut: Future<Output = SqsBatchResponse> + Send,
{
    lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let (app, handler) = (app.clone(), handler.clone());
        let deadline = event.context.deadline;
        async move { Ok::<_, lambda_runtime::Error>(handler(app, event.payload, deadline).await) }
    })
}

/// A `lambda_runtime` service for the scheduled sweep (the EventBridge
/// Scheduler payload is not needed).
pub fn sweep_service(
    app: App,
) -> impl lambda_runtime::Service<
    lambda_runtime::LambdaEvent<serde_json::Value>,
    Response = crate::sweep::SweepReport,
    Error = lambda_runtime::Error,
    Future: Send,
> {
    lambda_runtime::service_fn(move |_event: lambda_runtime::LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move { crate::sweep::sweep(&app).await.map_err(lambda_runtime::Error::from) }
    })
}

/// An S3 "Object Created" event (EventBridge): the key of the object.
pub fn landed_key(event: &serde_json::Value) -> Option<String> {
    let key = event.pointer("/detail/object/key")?.as_str()?;
    // EventBridge S3 keys are URL-encoded like S3 notifications.
    Some(url::form_urlencoded::parse(format!("k={key}").as_bytes()).next()?.1.into_owned())
}

/// The upload processor: one landed file. A redelivered event finds the
/// upload already taken and does nothing.
pub async fn upload_landed(app: &App, event: serde_json::Value) -> Result<serde_json::Value, Error> {
    let key = landed_key(&event).ok_or_else(|| Error::MalformedBody("not an S3 Object Created event".into()))?;
    match crate::uploads::process_landed(app, &key).await? {
        Some(upload) => Ok(serde_json::json!({"upload_id": upload.id, "state": upload.state})),
        None => {
            tracing::warn!(key = %key, "an object landed that no upload expects");
            Ok(serde_json::json!({"ignored": key}))
        }
    }
}

/// A `lambda_runtime` service for the upload processor.
pub fn upload_landed_service(
    app: App,
) -> impl lambda_runtime::Service<
    lambda_runtime::LambdaEvent<serde_json::Value>,
    Response = serde_json::Value,
    Error = lambda_runtime::Error,
    Future: Send,
> {
    lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move { upload_landed(&app, event.payload).await.map_err(lambda_runtime::Error::from) }
    })
}
