//! Alerts: events become incidents; incidents become in-app notifications
//! and emails, once.
//!
//! An incident is one problem of one connection or authorization, keyed by
//! its subject: it opens on the first failure, stays open through retries
//! (no new alert), and a recovery closes it with a short "recovered" notice.
//! In-app notifications are written when an incident opens (deterministic
//! keys: a redelivered event writes nothing new). Emails wait a short window
//! in a pending list; a flush (a delayed queue message with a stable id)
//! sends each admin and staff member one email, or one digest when several
//! broke at once. Every send is claimed by a conditional write before SES
//! is called, so a redelivered flush or a retried send never mails twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::App;
use crate::domain::error::{Error, MailError};
use crate::domain::ids::*;
use crate::domain::messages::AlertEvent;
use crate::domain::*;
use crate::ports::Email;

/// An email waiting for the next flush of its workspace.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    incident: String,
    kind: AlertKind,
    lines: Vec<String>,
    links: Vec<String>,
    subject_hint: String,
}

/// Where the frontend's reconnect flow starts for a connection or grant.
pub fn reconnect_link(app: &App, connection: Option<&ConnectionId>, authorization: Option<&AuthorizationId>) -> String {
    let mut url = url::Url::parse(&app.config.app_base_url)
        .unwrap_or_else(|_| url::Url::parse("http://localhost/").expect("static URL"));
    url.set_path("/reconnect");
    {
        let mut q = url.query_pairs_mut();
        if let Some(c) = connection {
            q.append_pair("connection_id", c.as_str());
        }
        if let Some(a) = authorization {
            q.append_pair("authorization_id", a.as_str());
        }
    }
    url.to_string()
}

/// Handles one alert event (the notifier's job).
pub async fn handle(app: &App, event: AlertEvent) -> Result<(), Error> {
    match event {
        // A disconnection alert may come from an intent kept before the
        // change (its worker died): it is told only if the change happened.
        AlertEvent::ConnectionDisconnected { workspace_id, connection_id, reason } => {
            match app.repo.connection(&workspace_id, &connection_id).await {
                Ok(c) if matches!(c.value.status, Status::Disconnected { .. }) => {}
                Ok(_) | Err(Error::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
            open(app, &workspace_id, AlertKind::Disconnected, &reason, vec![connection_id], None).await
        }
        AlertEvent::AuthorizationDisconnected { workspace_id, authorization_id, connection_ids, reason } => {
            match app.repo.authorization(&workspace_id, &authorization_id).await {
                Ok(a) if matches!(a.value.status, Status::Disconnected { .. }) => {}
                Ok(_) | Err(Error::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
            open(app, &workspace_id, AlertKind::Disconnected, &reason, connection_ids, Some(authorization_id)).await
        }
        AlertEvent::SyncFailed { workspace_id, connection_id, reason } => {
            open(app, &workspace_id, AlertKind::SyncFailed, &reason, vec![connection_id], None).await
        }
        AlertEvent::ExpiringSoon { workspace_id, authorization_id, expires_at } => {
            let reason = format!("expires {}", expires_at.format("%Y-%m-%d"));
            open(app, &workspace_id, AlertKind::ExpiringSoon, &reason, vec![], Some(authorization_id)).await
        }
        AlertEvent::DataNotSyncing { workspace_id, connection_id, reason } => {
            // Data flowed again before this was delivered: nothing to say.
            match app.repo.connection(&workspace_id, &connection_id).await {
                Ok(c) if c.value.stale.is_some() => {}
                _ => return Ok(()),
            }
            open(app, &workspace_id, AlertKind::DataNotSyncing, &reason, vec![connection_id], None).await
        }
        AlertEvent::Recovered { workspace_id, connection_id } => {
            recover(app, &workspace_id, Some(&connection_id), None).await
        }
        AlertEvent::AuthorizationRecovered { workspace_id, authorization_id } => {
            recover(app, &workspace_id, None, Some(&authorization_id)).await
        }
        AlertEvent::Flush { workspace_id, flush_id } => flush(app, &workspace_id, &flush_id).await,
        AlertEvent::EmailFeedback { event, bounce_type, addresses } => {
            super::members::email_feedback(app, &event, bounce_type.as_deref(), &addresses).await
        }
        AlertEvent::Publish { event, attempt } => super::events::deliver(app, *event, attempt).await,
    }
}

async fn open(
    app: &App,
    ws: &WorkspaceId,
    kind: AlertKind,
    reason: &str,
    connections: Vec<ConnectionId>,
    authorization: Option<AuthorizationId>,
) -> Result<(), Error> {
    let now = app.clock.now();
    let subject = Incident::subject_of(&connections, authorization.as_ref());
    let existing = app.repo.incident(ws, &subject, kind).await?;
    if let Some(open) = existing.as_ref().filter(|i| i.value.is_open()) {
        // Open already: a retry of the same problem alerts nobody again;
        // notifications of a redelivered first event are rewritten
        // idempotently, and its email queued if the delivery that opened it
        // died before that (found by the fault harness: the email was lost).
        notify_in_app(app, ws, &open.value, None, open.value.opened_at).await?;
        if !open.value.email_queued {
            queue_email(app, ws, &open.value, false).await?;
            mark_email_queued(app, ws, open.value.clone(), open.version).await?;
        }
        return Ok(());
    }
    let incident = Incident {
        id: format!("inc_{}", uuid::Uuid::new_v4().simple()),
        kind,
        reason: reason.to_owned(),
        connection_ids: connections,
        authorization_id: authorization,
        opened_at: now,
        closed_at: None,
        email_queued: false,
    };
    let read_at = existing.as_ref().map(|e| e.version);
    if !app.repo.put_incident(ws, &incident, read_at).await? {
        return Ok(()); // opened by a concurrent delivery
    }
    tracing::info!(workspace = %ws, incident = %incident.id, ?kind, "incident opened");
    notify_in_app(app, ws, &incident, None, incident.opened_at).await?;
    queue_email(app, ws, &incident, false).await?;
    mark_email_queued(app, ws, incident, read_at.map_or(1, |v| v + 1)).await
}

/// Notes on the incident that its email is queued (a lost race means a
/// concurrent delivery noted it, or closed the incident: either is fine).
async fn mark_email_queued(app: &App, ws: &WorkspaceId, mut incident: Incident, version: u64) -> Result<(), Error> {
    incident.email_queued = true;
    app.repo.put_incident(ws, &incident, Some(version)).await?;
    Ok(())
}

/// One notification per affected connection (or one for the grant), with
/// deterministic ids: a redelivered event writes nothing new. A recovery
/// notice (`recovered`: its message) is a notification of its own.
async fn notify_in_app(
    app: &App,
    ws: &WorkspaceId,
    incident: &Incident,
    recovered: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let mut described = incident.clone();
    let key_base = match recovered {
        Some(_) => {
            described.kind = AlertKind::Recovered;
            described.reason = "recovered".into();
            format!("{}-recovered", incident.id)
        }
        None => incident.id.clone(),
    };
    let (lines, _) = describe(app, ws, &described).await?;
    for (n, line) in lines.into_iter().enumerate() {
        let key = format!("{key_base}#{n}");
        let id = NotificationId::parse(&format!("ntf_{}", &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..32]))?;
        let notification = Notification {
            id,
            workspace_id: ws.clone(),
            kind: described.kind,
            connection_id: line.connection.as_ref().map(|c| c.id.clone()),
            authorization_id: incident.authorization_id.clone(),
            platform: line.platform,
            data_source: line.data_source,
            client_name: line.client,
            reason_code: recovered.is_none().then(|| incident.reason.clone()),
            message: recovered.map(str::to_owned).unwrap_or(line.message),
            action: if recovered.is_some() { NotificationAction::None } else { line.action },
            created_at: at,
            read_at: None,
        };
        match app.repo.create(&notification).await {
            Ok(_) | Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What an incident says about each thing it concerns.
struct Line {
    connection: Option<Connection>,
    platform: PlatformId,
    data_source: String,
    client: Option<String>,
    message: String,
    action: NotificationAction,
    link: String,
}

async fn describe(app: &App, ws: &WorkspaceId, incident: &Incident) -> Result<(Vec<Line>, String), Error> {
    let reason_text = |code: &str| -> String {
        let d = serde_json::from_value::<DisconnectReason>(serde_json::Value::String(code.to_owned()));
        match (incident.kind, d) {
            (AlertKind::Disconnected, Ok(r)) => format!("{} {}", r.message(), r.action()),
            (AlertKind::SyncFailed, _) => format!("The last sync failed ({code}); it is being retried."),
            (AlertKind::DataNotSyncing, _) => {
                match serde_json::from_value::<crate::domain::StaleReason>(serde_json::Value::String(code.to_owned())) {
                    Ok(r) => format!("Data is not syncing: {} {}", r.message(), r.action()),
                    Err(_) => format!("Data is not syncing ({code})."),
                }
            }
            (AlertKind::ExpiringSoon, _) => {
                format!("The authorization {code}; reconnect before then to keep data flowing.")
            }
            _ => code.to_owned(),
        }
    };
    let mut lines = Vec::new();
    for id in &incident.connection_ids {
        let Ok(c) = app.repo.connection(ws, id).await.map(|v| v.value) else { continue };
        let action = match (&c.credential, incident.kind) {
            (Credential::ApiKey { .. }, AlertKind::Disconnected) => {
                NotificationAction::ReplaceKey { connection_id: c.id.clone() }
            }
            (_, AlertKind::Disconnected | AlertKind::ExpiringSoon) => NotificationAction::Reconnect {
                connection_id: Some(c.id.clone()),
                authorization_id: c.authorization_id().cloned(),
            },
            _ => NotificationAction::None,
        };
        lines.push(Line {
            link: reconnect_link(app, Some(&c.id), c.authorization_id()),
            platform: c.platform.clone(),
            data_source: c.name.clone(),
            client: c.client.as_ref().map(|cl| cl.name.clone()),
            message: reason_text(&incident.reason),
            action,
            connection: Some(c),
        });
    }
    if lines.is_empty() {
        if let Some(auth_id) = &incident.authorization_id {
            if let Ok(a) = app.repo.authorization(ws, auth_id).await.map(|v| v.value) {
                lines.push(Line {
                    connection: None,
                    platform: a.platform.clone(),
                    data_source: a.name.clone(),
                    client: None,
                    message: reason_text(&incident.reason),
                    action: NotificationAction::Reconnect { connection_id: None, authorization_id: Some(a.id.clone()) },
                    link: reconnect_link(app, None, Some(&a.id)),
                });
            }
        }
    }
    let title = match incident.kind {
        AlertKind::Disconnected => "disconnected",
        AlertKind::SyncFailed => "sync failed",
        AlertKind::ExpiringSoon => "authorization expiring soon",
        AlertKind::Recovered => "recovered",
        AlertKind::DataNotSyncing => "data not syncing",
    };
    Ok((lines, title.to_owned()))
}

/// Adds the incident to the workspace's pending emails and schedules a flush.
async fn queue_email(app: &App, ws: &WorkspaceId, incident: &Incident, recovered: bool) -> Result<(), Error> {
    let (lines, title) = describe(app, ws, incident).await?;
    if lines.is_empty() {
        return Ok(());
    }
    let kind = if recovered { AlertKind::Recovered } else { incident.kind };
    let pending = Pending {
        incident: format!("{}{}", incident.id, if recovered { "-recovered" } else { "" }),
        kind,
        lines: lines
            .iter()
            .map(|l| {
                let who = l.client.as_ref().map(|c| format!(" ({c})")).unwrap_or_default();
                if recovered {
                    format!("{}{} on {} is connected again.", l.data_source, who, l.platform)
                } else {
                    format!("{}{} on {}: {}", l.data_source, who, l.platform, l.message)
                }
            })
            .collect(),
        links: if recovered { vec![] } else { lines.iter().map(|l| l.link.clone()).collect() },
        subject_hint: {
            let l = &lines[0];
            let who = l.client.as_ref().map(|c| format!(" for {c}")).unwrap_or_default();
            let more = if lines.len() > 1 { format!(" and {} more", lines.len() - 1) } else { String::new() };
            format!("{}{who}{more}: {}", l.data_source, if recovered { "recovered" } else { &title })
        },
    };
    app.repo.queue_mail(ws, &pending.incident, &pending).await?;
    let flush = AlertEvent::Flush { workspace_id: ws.clone(), flush_id: uuid::Uuid::new_v4().simple().to_string() };
    app.send(&flush, app.config.digest_window_seconds).await?;
    Ok(())
}

async fn recover(
    app: &App,
    ws: &WorkspaceId,
    connection: Option<&ConnectionId>,
    authorization: Option<&AuthorizationId>,
) -> Result<(), Error> {
    let subjects: Vec<String> =
        connection.map(|c| c.to_string()).into_iter().chain(authorization.map(|a| a.to_string())).collect();
    for subject in subjects {
        for open in app.repo.open_incidents(ws, &subject).await? {
            let mut incident = open.value;
            incident.closed_at = Some(app.clock.now());
            if !app.repo.put_incident(ws, &incident, Some(open.version)).await? {
                continue; // closed by a concurrent delivery
            }
            tracing::info!(incident = %incident.id, "incident closed");
            notify_in_app(app, ws, &incident, Some("Connected again; data is flowing."), app.clock.now()).await?;
            queue_email(app, ws, &incident, true).await?;
        }
    }
    Ok(())
}

/// Who gets email of a kind: admin and staff members with an address who
/// did not turn that kind off.
async fn recipients(app: &App, ws: &WorkspaceId, kind: AlertKind) -> Result<Vec<Member>, Error> {
    Ok(app
        .repo
        .list::<Member>(ws)
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|m| m.role >= Role::Staff && !m.email.is_empty() && !m.email_opt_out.contains(&kind))
        .collect())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Sends the workspace's pending emails: one per member, a digest when
/// several incidents wait.
async fn flush(app: &App, ws: &WorkspaceId, flush_id: &str) -> Result<(), Error> {
    let batch: Vec<Pending> = app.repo.take_mail_batch(ws, flush_id).await?;
    if batch.is_empty() {
        return Ok(());
    }
    for kind in [
        AlertKind::Disconnected,
        AlertKind::SyncFailed,
        AlertKind::DataNotSyncing,
        AlertKind::ExpiringSoon,
        AlertKind::Recovered,
    ] {
        let items: Vec<&Pending> = batch.iter().filter(|p| p.kind == kind).collect();
        if items.is_empty() {
            continue;
        }
        let email = compose(app, &items);
        for member in recipients(app, ws, kind).await? {
            send_once(app, ws, &format!("{flush_id}-{kind:?}"), &member, &email).await?;
        }
    }
    Ok(())
}

fn compose(app: &App, items: &[&Pending]) -> Email {
    let subject = if items.len() == 1 {
        items[0].subject_hint.clone()
    } else {
        format!("{} data sources need attention", items.iter().map(|p| p.lines.len()).sum::<usize>())
    };
    let mut text = String::new();
    let mut html = String::from("<!doctype html><html><body style=\"font-family:sans-serif\">");
    for p in items {
        for (i, line) in p.lines.iter().enumerate() {
            text.push_str(&format!("- {line}\n"));
            html.push_str(&format!("<p>{}</p>", escape(line)));
            if let Some(link) = p.links.get(i) {
                text.push_str(&format!("  Reconnect: {link}\n"));
                html.push_str(&format!("<p><a href=\"{}\">Reconnect</a></p>", escape(link)));
            }
        }
    }
    html.push_str("</body></html>");
    Email { from: app.config.alert_sender.clone(), to: vec![], subject, text, html }
}

/// Claims the send by a conditional write, then sends; a throttled or
/// failed send releases the claim and is retried by the queue.
async fn send_once(app: &App, ws: &WorkspaceId, batch: &str, member: &Member, email: &Email) -> Result<(), Error> {
    // A suppressed address (a hard bounce, a complaint) gets no email; the
    // in-app notification still reaches the member.
    if app.repo.email_suppression(&member.email).await?.is_some() {
        tracing::info!(member = %member.user_id, "email suppressed; not sent");
        return Ok(());
    }
    if !app.repo.claim_send(ws, batch, &member.user_id).await? {
        return Ok(()); // sent (or being sent) already
    }
    let mut email = email.clone();
    email.to = vec![member.email.clone()];
    let mut attempt = 0u32;
    loop {
        match app.mailer.send(&email).await {
            Ok(message_id) => {
                app.repo.mark_sent(ws, batch, &member.user_id, &message_id).await;
                return Ok(());
            }
            Err(MailError::Throttled) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => {
                // Known not sent: release the claim so the retry may send.
                app.repo.release_send(ws, batch, &member.user_id).await;
                return Err(e.into());
            }
        }
    }
}
