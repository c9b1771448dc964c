//! The Lambda glue of the queue-, schedule- and S3-driven functions (the
//! messages themselves are `domain::messages`). SQS delivers at least once: every handler is idempotent and
//! reports partial batch failures, so one bad message never re-runs the
//! others; a message that keeps failing reaches the DLQ by redrive policy.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use std::future::Future;

use crate::domain::error::Error;
use crate::domain::messages::{AlertEvent, SyncJob};
use crate::flows::sync::Budget;
use crate::flows::{alerts, file_uploads, sweep, sync, App};

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

/// The sync worker's handling of one job (see [`sync::handle_job`]).
pub async fn run_sync_job(app: &App, job: SyncJob, budget: Budget) -> Result<(), Error> {
    sync::handle_job(app, job, budget).await
}

/// The notifier's handling of one alert event.
pub async fn deliver_alert(app: &App, event: AlertEvent) -> Result<(), Error> {
    alerts::handle(app, event).await
}

/// The sync worker: one batch from the sync queue, within the budget.
pub async fn sync_worker(app: &App, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    for_each_record(event, |job: SyncJob| run_sync_job(app, job, budget)).await
}

/// The time left before a Lambda invocation's deadline (epoch ms).
pub fn budget_from_deadline(deadline_ms: u64) -> Budget {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Budget::until(std::time::Instant::now() + std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
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
    Response = sweep::SweepReport,
    Error = lambda_runtime::Error,
    Future: Send,
> {
    lambda_runtime::service_fn(move |_event: lambda_runtime::LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move { sweep::sweep(&app).await.map_err(lambda_runtime::Error::from) }
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
    match file_uploads::process_landed(app, &key).await? {
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
