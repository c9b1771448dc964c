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

use crate::app::App;
use crate::domain::*;
use crate::error::{Error, MailError, StoreError};
use crate::ids::*;
use crate::jobs::{self, AlertEvent};
use crate::ports::{Email, Item, Precondition, QueueKind};
use crate::repo::workspace_pk;

/// An open (or closed) problem.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Incident {
    id: String,
    kind: AlertKind,
    reason: String,
    connection_ids: Vec<ConnectionId>,
    authorization_id: Option<AuthorizationId>,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

/// An email waiting for the next flush of its workspace.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    incident: String,
    kind: AlertKind,
    lines: Vec<String>,
    links: Vec<String>,
    subject_hint: String,
}

fn item(ws: &WorkspaceId, sk: String, version: u64, body: serde_json::Value) -> Item {
    Item { pk: workspace_pk(ws), sk, version, body, due: None, expires_at: None }
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
        AlertEvent::ConnectionDisconnected { workspace_id, connection_id, reason } => {
            open(app, &workspace_id, AlertKind::Disconnected, &reason, vec![connection_id], None).await
        }
        AlertEvent::AuthorizationDisconnected { workspace_id, authorization_id, connection_ids, reason } => {
            open(app, &workspace_id, AlertKind::Disconnected, &reason, connection_ids, Some(authorization_id)).await
        }
        AlertEvent::SyncFailed { workspace_id, connection_id, reason } => {
            open(app, &workspace_id, AlertKind::SyncFailed, &reason, vec![connection_id], None).await
        }
        AlertEvent::ExpiringSoon { workspace_id, authorization_id, expires_at } => {
            let reason = format!("expires {}", expires_at.format("%Y-%m-%d"));
            open(app, &workspace_id, AlertKind::ExpiringSoon, &reason, vec![], Some(authorization_id)).await
        }
        AlertEvent::Recovered { workspace_id, connection_id } => {
            recover(app, &workspace_id, Some(&connection_id), None).await
        }
        AlertEvent::AuthorizationRecovered { workspace_id, authorization_id } => {
            recover(app, &workspace_id, None, Some(&authorization_id)).await
        }
        AlertEvent::Flush { workspace_id, flush_id } => flush(app, &workspace_id, &flush_id).await,
    }
}

fn subject_of(connections: &[ConnectionId], authorization: Option<&AuthorizationId>) -> String {
    authorization.map(|a| a.to_string()).or_else(|| connections.first().map(|c| c.to_string())).unwrap_or_default()
}

async fn open(
    app: &App,
    ws: &WorkspaceId,
    kind: AlertKind,
    reason: &str,
    connections: Vec<ConnectionId>,
    authorization: Option<AuthorizationId>,
) -> Result<(), Error> {
    let store = app.repo.store();
    let now = app.clock.now();
    let subject = subject_of(&connections, authorization.as_ref());
    let sk = format!(
        "INCIDENT#{subject}#{}",
        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    );
    let existing = store.get(&workspace_pk(ws), &sk).await?;
    let incident = match &existing {
        // Open already: a retry of the same problem alerts nobody again.
        Some(i) if i.body["closed_at"].is_null() => {
            let incident: Incident =
                serde_json::from_value(i.body.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // Notifications of a redelivered first event are rewritten idempotently.
            notify_in_app(app, ws, &incident).await?;
            return Ok(());
        }
        _ => Incident {
            id: format!("inc_{}", uuid::Uuid::new_v4().simple()),
            kind,
            reason: reason.to_owned(),
            connection_ids: connections,
            authorization_id: authorization,
            opened_at: now,
            closed_at: None,
        },
    };
    let (version, pre) = match &existing {
        Some(i) => (i.version + 1, Precondition::Version(i.version)),
        None => (1, Precondition::Absent),
    };
    let body = serde_json::to_value(&incident).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match store.put(&item(ws, sk, version, body), pre).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Ok(()), // opened by a concurrent delivery
        Err(e) => return Err(e.into()),
    }
    tracing::info!(workspace = %ws, incident = %incident.id, ?kind, "incident opened");
    notify_in_app(app, ws, &incident).await?;
    queue_email(app, ws, &incident, false).await
}

/// One notification per affected connection (or one for the grant).
async fn notify_in_app(app: &App, ws: &WorkspaceId, incident: &Incident) -> Result<(), Error> {
    let (lines, _) = describe(app, ws, incident).await?;
    for (n, line) in lines.into_iter().enumerate() {
        let key = format!("{}#{n}", incident.id);
        let id = NotificationId::parse(&format!("ntf_{}", &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..32]))?;
        let notification = Notification {
            id,
            workspace_id: ws.clone(),
            kind: incident.kind,
            connection_id: line.connection.as_ref().map(|c| c.id.clone()),
            authorization_id: incident.authorization_id.clone(),
            platform: line.platform.clone(),
            data_source: line.data_source.clone(),
            client_name: line.client.clone(),
            reason_code: Some(incident.reason.clone()),
            message: line.message.clone(),
            action: line.action.clone(),
            created_at: incident.opened_at,
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
    let sk = format!("PENDINGMAIL#{}", pending.incident);
    let body = serde_json::to_value(&pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match app.repo.store().put(&item(ws, sk, 1, body), Precondition::Absent).await {
        Ok(()) | Err(StoreError::ConditionFailed) => {}
        Err(e) => return Err(e.into()),
    }
    let flush = AlertEvent::Flush { workspace_id: ws.clone(), flush_id: uuid::Uuid::new_v4().simple().to_string() };
    jobs::enqueue(app, QueueKind::Notify, &flush, app.config.digest_window_seconds).await?;
    Ok(())
}

async fn recover(
    app: &App,
    ws: &WorkspaceId,
    connection: Option<&ConnectionId>,
    authorization: Option<&AuthorizationId>,
) -> Result<(), Error> {
    let store = app.repo.store();
    let subjects: Vec<String> =
        connection.map(|c| c.to_string()).into_iter().chain(authorization.map(|a| a.to_string())).collect();
    for subject in subjects {
        let page = store.query(&workspace_pk(ws), &format!("INCIDENT#{subject}#"), None, 10).await?;
        for i in page.items.into_iter().filter(|i| i.body["closed_at"].is_null()) {
            let mut incident: Incident =
                serde_json::from_value(i.body.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            incident.closed_at = Some(app.clock.now());
            let body = serde_json::to_value(&incident).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            match store.put(&item(ws, i.sk.clone(), i.version + 1, body), Precondition::Version(i.version)).await {
                Ok(()) => {}
                Err(StoreError::ConditionFailed) => continue, // closed by a concurrent delivery
                Err(e) => return Err(e.into()),
            }
            tracing::info!(incident = %incident.id, "incident closed");
            let mut notice = incident.clone();
            notice.kind = AlertKind::Recovered;
            notice.id = format!("{}-recovered", incident.id);
            notify_in_app_recovered(app, ws, &notice).await?;
            queue_email(app, ws, &incident, true).await?;
        }
    }
    Ok(())
}

async fn notify_in_app_recovered(app: &App, ws: &WorkspaceId, notice: &Incident) -> Result<(), Error> {
    let mut n = notice.clone();
    n.reason = "recovered".into();
    let (lines, _) = describe(app, ws, &n).await?;
    for (i, line) in lines.into_iter().enumerate() {
        let key = format!("{}#{i}", n.id);
        let notification = Notification {
            id: NotificationId::parse(&format!("ntf_{}", &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..32]))?,
            workspace_id: ws.clone(),
            kind: AlertKind::Recovered,
            connection_id: line.connection.as_ref().map(|c| c.id.clone()),
            authorization_id: n.authorization_id.clone(),
            platform: line.platform,
            data_source: line.data_source,
            client_name: line.client,
            reason_code: None,
            message: "Connected again; data is flowing.".into(),
            action: NotificationAction::None,
            created_at: app.clock.now(),
            read_at: None,
        };
        match app.repo.create(&notification).await {
            Ok(_) | Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
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
    let store = app.repo.store();
    let batch_sk = format!("MAILBATCH#{flush_id}");
    let batch: Vec<Pending> = match store.get(&workspace_pk(ws), &batch_sk).await? {
        Some(b) => serde_json::from_value(b.body["pending"].clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => {
            let page = store.query(&workspace_pk(ws), "PENDINGMAIL#", None, 200).await?;
            if page.items.is_empty() {
                return Ok(()); // an earlier flush of this window took them
            }
            let pending: Vec<Pending> =
                page.items.iter().filter_map(|i| serde_json::from_value(i.body.clone()).ok()).collect();
            let body = serde_json::json!({"pending": pending});
            match store.put(&item(ws, batch_sk.clone(), 1, body), Precondition::Absent).await {
                Ok(()) | Err(StoreError::ConditionFailed) => {}
                Err(e) => return Err(e.into()),
            }
            let mut mine = Vec::new();
            for (i, p) in page.items.iter().zip(pending) {
                // Only what this flush takes is its to send.
                if store.delete(&i.pk, &i.sk, Precondition::Exists).await.is_ok() {
                    mine.push(p);
                }
            }
            let body = serde_json::json!({"pending": mine});
            store.put(&item(ws, batch_sk, 2, body), Precondition::Version(1)).await.ok();
            mine
        }
    };
    if batch.is_empty() {
        return Ok(());
    }
    for kind in [AlertKind::Disconnected, AlertKind::SyncFailed, AlertKind::ExpiringSoon, AlertKind::Recovered] {
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
    let store = app.repo.store();
    let claim = format!("MAILSENT#{batch}#{}", member.user_id);
    match store.put(&item(ws, claim.clone(), 1, serde_json::json!({"state": "sending"})), Precondition::Absent).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Ok(()), // sent (or being sent) already
        Err(e) => return Err(e.into()),
    }
    let mut email = email.clone();
    email.to = vec![member.email.clone()];
    let mut attempt = 0u32;
    loop {
        match app.mailer.send(&email).await {
            Ok(message_id) => {
                let body = serde_json::json!({"state": "sent", "message_id": message_id});
                store.put(&item(ws, claim, 2, body), Precondition::Version(1)).await.ok();
                return Ok(());
            }
            Err(MailError::Throttled) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => {
                // Known not sent: release the claim so the retry may send.
                store.delete(&workspace_pk(ws), &claim, Precondition::Version(1)).await.ok();
                return Err(e.into());
            }
        }
    }
}
