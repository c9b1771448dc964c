//! Events for the deployer's backend. A flow publishes an event by queueing
//! it on the notification queue (a change never waits on the bus or on the
//! deployer's webhook); the notifier delivers it to the event bus and, when
//! one is configured, POSTs it to the webhook signed the Standard Webhooks
//! way (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`:
//! HMAC-SHA256 of `id.timestamp.body`). A webhook that refuses it is offered
//! again with backoff, through the queue; after the last attempt the event
//! is kept as a failed delivery. Delivery is at least once: consumers drop
//! repeats by the event's `id`.

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};

use super::App;
use crate::domain::error::Error;
use crate::domain::events::{
    webhook_backoff_seconds, EventBody, FailedDelivery, ServiceEvent, FAILED_DELIVERY_RETENTION_DAYS,
};
use crate::domain::messages::AlertEvent;
use crate::domain::{Connection, Status};

/// Queues an event for delivery. A queue that refuses it gets it later:
/// the event is kept in the table and the sweep queues it. Only when both
/// refuse is it lost (logged); the change it describes stands either way.
pub async fn publish(app: &App, event: ServiceEvent) {
    // Kept under the event's id: a retry of the same keep writes one item.
    let key = event.id.clone();
    app.send_or_keep(&AlertEvent::Publish { event: Box::new(event), attempt: 0 }, &key, "event").await;
}

/// The sweep's part: queues the events the queue refused before.
pub async fn flush_outbox(app: &App) -> Result<usize, Error> {
    let kept = app.repo.outbox(app.clock.now(), 100).await?;
    Ok(super::each_of(
        "kept events",
        kept,
        |i, _| format!("#{i}"),
        |kept| async move {
            app.send(&kept.message, 0).await?;
            app.repo.forget(&kept).await?;
            Ok(())
        },
    )
    .await)
}

/// Publishes an event of this workspace, made now.
pub async fn emit(app: &App, ws: &crate::domain::ids::WorkspaceId, body: EventBody) {
    publish(app, ServiceEvent::new(ws, body, app.clock.now())).await;
}

/// `connection.status_changed`, when the state moved (`previous`: None for
/// a new connection).
pub async fn status_changed(app: &App, previous: Option<&Status>, connection: &Connection) {
    if let Some(event) = ServiceEvent::status_changed(previous, connection, app.clock.now()) {
        publish(app, event).await;
    }
}

/// The notifier's delivery of one event: the bus first (only on the first
/// attempt), then the webhook.
pub async fn deliver(app: &App, event: ServiceEvent, attempt: u32) -> Result<(), Error> {
    if attempt == 0 {
        // A bus error fails the message: the queue offers it again.
        app.events.publish(&event).await?;
    }
    let Some(url) = app.config.webhook_url.clone() else { return Ok(()) };
    let failed = match post(app, &url, &event).await {
        Ok(()) => return Ok(()),
        Err(why) => why,
    };
    let attempts = attempt + 1;
    if attempts >= app.config.webhook_max_attempts {
        tracing::error!(event = %event.id, kind = event.type_name(), attempts, error = %failed, "webhook never took the event; kept as a failed delivery");
        let now = app.clock.now();
        let record = FailedDelivery {
            event,
            attempts,
            last_error: failed,
            failed_at: now,
            kept_until: now + chrono::Duration::days(FAILED_DELIVERY_RETENTION_DAYS),
        };
        return app.repo.put_failed_delivery(&record).await;
    }
    let wait = webhook_backoff_seconds(attempts);
    tracing::warn!(event = %event.id, attempts, retry_in_seconds = wait, error = %failed, "webhook refused the event; offered again later");
    app.send(&AlertEvent::Publish { event: Box::new(event), attempt: attempts }, wait).await?;
    Ok(())
}

/// One signed POST; Err says why it did not land (for the log and the
/// failed-delivery record, never a secret).
async fn post(app: &App, url: &str, event: &ServiceEvent) -> Result<(), String> {
    let secret = match app.vault.get(&app.config.webhook_secret_name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("the webhook secret {} is not in the vault", app.config.webhook_secret_name)),
        Err(e) => return Err(format!("vault: {e}")),
    };
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let timestamp = app.clock.now().timestamp();
    let signature = sign(&secret, &event.id, timestamp, &body)?;
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "connections-service-webhooks/1")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &event.id)
        .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
        .body(Bytes::from(body))
        .map_err(|e| e.to_string())?;
    match app.http.send(request).await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
        Err(e) => Err(e.to_string()),
    }
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(secret: &SecretString, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let webhook = standardwebhooks::Webhook::new(secret.expose_secret())
        .map_err(|_| "the webhook secret is not a whsec_ base64 secret".to_owned())?;
    webhook.sign(id, timestamp, body).map_err(|e| e.to_string())
}

/// A new signing secret (`whsec_` and 32 random bytes in base64).
pub fn new_webhook_secret() -> SecretString {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// The webhook secret, created in the vault if the deployment has a webhook
/// and no secret yet (the local stack; the template creates it in AWS).
pub async fn ensure_webhook_secret(app: &App) -> Result<Option<SecretString>, Error> {
    if app.config.webhook_url.is_none() {
        return Ok(None);
    }
    let name = &app.config.webhook_secret_name;
    if let Some(s) = app.vault.get(name).await? {
        return Ok(Some(s));
    }
    let secret = new_webhook_secret();
    app.vault.put(name, &secret).await?;
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_sign_in_both_shapes_the_template_and_the_local_stack_make() {
        // The template's generated secret: 48 alphanumerics (valid base64, no prefix).
        let template = SecretString::from("a".repeat(24) + &"Z9".repeat(12));
        let local = new_webhook_secret();
        for secret in [template, local] {
            let signature = sign(&secret, "evt_1", 1_700_000_000, b"{}").unwrap();
            assert!(signature.starts_with("v1,"), "{signature}");
        }
        assert!(sign(&SecretString::from("not base64!"), "evt_1", 0, b"{}").is_err());
    }
}
