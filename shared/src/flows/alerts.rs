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
use crate::domain::email::{self, Button, FooterLinks, MailItem, Reader, Unsubscribe, UNSUBSCRIBE_DAYS};
use crate::domain::error::{Error, MailError};
use crate::domain::ids::*;
use crate::domain::messages::AlertEvent;
use crate::domain::*;
use crate::ports::Email;
use crate::store::alerts::SendClaim;

/// An email waiting for the next flush of its workspace.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    incident: String,
    kind: AlertKind,
    items: Vec<MailItem>,
}

/// A page of the frontend an email's button leads to, with the ids it acts
/// on: `{APP_BASE_URL}/{page}?connection_id=…&authorization_id=…`.
pub fn app_link(
    app: &App,
    page: &str,
    connection: Option<&ConnectionId>,
    authorization: Option<&AuthorizationId>,
) -> String {
    let mut url = url::Url::parse(&app.config.app_base_url)
        .unwrap_or_else(|_| url::Url::parse("http://localhost/").expect("static URL"));
    url.set_path(&format!("/{page}"));
    if connection.is_some() || authorization.is_some() {
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

/// The frontend's email preferences, where every email's footer leads.
pub fn preferences_link(app: &App) -> String {
    app_link(app, "settings/email", None, None)
}

/// Where the frontend's reconnect flow starts for a connection or grant.
pub fn reconnect_link(app: &App, connection: Option<&ConnectionId>, authorization: Option<&AuthorizationId>) -> String {
    app_link(app, "reconnect", connection, authorization)
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
            format!("{}-recovered", incident.id)
        }
        None => incident.id.clone(),
    };
    let lines = describe(app, ws, &described).await?;
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
            data_source: line.item.data_source,
            client_name: line.item.client,
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
    message: String,
    action: NotificationAction,
    /// The facts as an email shows them.
    item: MailItem,
}

/// A member as an email names them: "Dana Smith (dana@acme.com)".
async fn person(app: &App, ws: &WorkspaceId, user: &UserId) -> Option<String> {
    let m = app.repo.member(ws, user).await.ok()?.value;
    Some(match m.display_name {
        Some(name) => format!("{name} ({})", m.email),
        None => m.email,
    })
}

fn account_words(account: Option<&ExternalAccount>) -> Option<String> {
    account.map(|a| match &a.name {
        Some(name) if name != &a.id => format!("{name} ({})", a.id),
        _ => a.id.clone(),
    })
}

/// The reason of an incident in plain words, and what to do about it.
fn reason_words(kind: AlertKind, code: &str, credential: Option<&Credential>) -> (String, String) {
    let as_enum = |code: &str| serde_json::Value::String(code.to_owned());
    match kind {
        AlertKind::Disconnected => match serde_json::from_value::<DisconnectReason>(as_enum(code)) {
            Ok(r) => (r.message().to_owned(), r.action().to_owned()),
            Err(_) => (format!("It was disconnected ({code})."), "Reconnect it.".to_owned()),
        },
        AlertKind::SyncFailed => {
            let why = match serde_json::from_value::<FailureReason>(as_enum(code)) {
                Ok(FailureReason::PlatformUnavailable) => "the platform did not answer",
                Ok(FailureReason::RateLimited) => "the platform kept limiting requests",
                Ok(FailureReason::MalformedResponse) => "the platform sent data that could not be read",
                Ok(FailureReason::PermissionDenied) => "the platform refused access to some of the data",
                Ok(FailureReason::RetriesExhausted) => "it kept failing after several tries",
                _ => "of an error on our side",
            };
            (
                format!("The last sync failed because {why} ({code})."),
                "It is retried on its own; if the next syncs fail too, look at the sync history.".to_owned(),
            )
        }
        AlertKind::DataNotSyncing => match serde_json::from_value::<crate::domain::StaleReason>(as_enum(code)) {
            Ok(r) if matches!(credential, Some(Credential::FileUpload)) => {
                (r.message().to_owned(), "Upload this period's file.".to_owned())
            }
            Ok(r) => (r.message().to_owned(), r.action().to_owned()),
            Err(_) => (format!("Data is not syncing ({code})."), "Look at the sync history.".to_owned()),
        },
        AlertKind::ExpiringSoon => (
            format!("The platform's authorization {code}."),
            "Reconnect before then to keep data flowing; history and sync progress are kept.".to_owned(),
        ),
        AlertKind::Recovered => ("It is connected again and data is flowing.".to_owned(), "Nothing to do.".to_owned()),
    }
}

async fn describe(app: &App, ws: &WorkspaceId, incident: &Incident) -> Result<Vec<Line>, Error> {
    let recovered = incident.kind == AlertKind::Recovered;
    let happened_at = if recovered { incident.closed_at.unwrap_or(incident.opened_at) } else { incident.opened_at };
    let missing_minutes = (recovered && incident.reason != "expiring_soon")
        .then(|| incident.closed_at.map(|c| (c - incident.opened_at).num_minutes()))
        .flatten();
    let platform_name =
        |id: &PlatformId| app.catalog.get(id.as_str()).map(|e| e.name.clone()).unwrap_or(id.to_string());
    let anyone = "Any admin or staff member of the workspace";
    let mut lines = Vec::new();
    for id in &incident.connection_ids {
        // A connection removed since is left out; a read that failed fails
        // the delivery, to be tried again (found by the fault harness: a
        // failed read sent the grant's line alone, naming no data source).
        let c = match app.repo.connection(ws, id).await {
            Ok(v) => v.value,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let (reason, todo) = reason_words(incident.kind, &incident.reason, Some(&c.credential));
        let platform = platform_name(&c.platform);
        // The grant and the person only add detail: an email goes without them.
        let grant = match c.authorization_id() {
            Some(a) => app.repo.authorization(ws, a).await.ok().map(|v| v.value),
            None => None,
        };
        let authorized_by = person(app, ws, grant.as_ref().map_or(&c.created_by, |g| &g.created_by)).await;
        let account = account_words(c.account.as_ref().or(grant.as_ref().and_then(|g| g.account.as_ref())));
        let (action, button, who_can_fix) = match (&c.credential, incident.kind) {
            (Credential::ApiKey { .. }, AlertKind::Disconnected) => (
                NotificationAction::ReplaceKey { connection_id: c.id.clone() },
                ("Replace key", app_link(app, "replace-key", Some(&c.id), None)),
                Some(format!("{anyone} can replace the key.")),
            ),
            (_, AlertKind::Disconnected | AlertKind::ExpiringSoon) => (
                NotificationAction::Reconnect {
                    connection_id: Some(c.id.clone()),
                    authorization_id: c.authorization_id().cloned(),
                },
                ("Reconnect", reconnect_link(app, Some(&c.id), c.authorization_id())),
                Some(match &account {
                    Some(a) => {
                        format!("{anyone} can reconnect it, signing in to {platform} as someone with access to {a}.")
                    }
                    None => format!("{anyone} can reconnect it, signing in to {platform}."),
                }),
            ),
            (Credential::FileUpload, AlertKind::DataNotSyncing) => (
                NotificationAction::None,
                ("Upload the file", app_link(app, "upload", Some(&c.id), None)),
                Some(format!("{anyone} can upload it.")),
            ),
            _ => (NotificationAction::None, ("See the sync", app_link(app, "sync", Some(&c.id), None)), None),
        };
        lines.push(Line {
            platform: c.platform.clone(),
            message: format!("{reason} {todo}"),
            action,
            item: MailItem {
                platform,
                data_source: c.name.clone(),
                client: c.client.as_ref().map(|cl| cl.name.clone()),
                account,
                happened_at,
                reason,
                todo: if recovered { String::new() } else { todo },
                authorized_by: if recovered { None } else { authorized_by },
                who_can_fix: if recovered { None } else { who_can_fix },
                button: Some(Button { label: button.0.to_owned(), url: button.1 }),
                missing_minutes,
            },
            connection: Some(c),
        });
    }
    if lines.is_empty() {
        if let Some(auth_id) = &incident.authorization_id {
            let found = match app.repo.authorization(ws, auth_id).await {
                Ok(v) => Some(v.value),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            if let Some(a) = found {
                let (reason, todo) = reason_words(incident.kind, &incident.reason, None);
                let platform = platform_name(&a.platform);
                let account = account_words(a.account.as_ref());
                lines.push(Line {
                    connection: None,
                    platform: a.platform.clone(),
                    message: format!("{reason} {todo}"),
                    action: NotificationAction::Reconnect { connection_id: None, authorization_id: Some(a.id.clone()) },
                    item: MailItem {
                        data_source: a.name.clone(),
                        client: None,
                        who_can_fix: (!recovered).then(|| match &account {
                            Some(acc) => format!(
                                "{anyone} can reconnect it, signing in to {platform} as someone with access to {acc}."
                            ),
                            None => format!("{anyone} can reconnect it, signing in to {platform}."),
                        }),
                        platform,
                        account,
                        happened_at,
                        reason,
                        todo: if recovered { String::new() } else { todo },
                        authorized_by: if recovered { None } else { person(app, ws, &a.created_by).await },
                        button: (!recovered)
                            .then(|| Button { label: "Reconnect".into(), url: reconnect_link(app, None, Some(&a.id)) }),
                        missing_minutes,
                    },
                });
            }
        }
    }
    Ok(lines)
}

/// Adds the incident to the workspace's pending emails and schedules a flush.
async fn queue_email(app: &App, ws: &WorkspaceId, incident: &Incident, recovered: bool) -> Result<(), Error> {
    let mut described = incident.clone();
    if recovered {
        // The recovery notice says what recovered from (its reason), and
        // when it ended.
        described.kind = AlertKind::Recovered;
        described.reason = match incident.kind {
            AlertKind::ExpiringSoon => "expiring_soon".into(),
            _ => incident.reason.clone(),
        };
    }
    let lines = describe(app, ws, &described).await?;
    if lines.is_empty() {
        return Ok(());
    }
    let pending = Pending {
        incident: format!("{}{}", incident.id, if recovered { "-recovered" } else { "" }),
        kind: described.kind,
        items: lines.into_iter().map(|l| l.item).collect(),
    };
    let due = app.clock.now()
        + chrono::Duration::seconds(i64::from(app.config.digest_window_seconds))
        + chrono::Duration::minutes(crate::store::keys::PENDING_MAIL_GRACE_MINUTES);
    app.repo.queue_mail(ws, &pending.incident, &pending, due).await?;
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

/// Sends the workspace's pending emails: per kind, one email per member,
/// a digest when several incidents wait, each rendered for its reader
/// (their time zone, their unsubscribe link).
async fn flush(app: &App, ws: &WorkspaceId, flush_id: &str) -> Result<(), Error> {
    // The key of the unsubscribe links first: a vault that fails now fails
    // the flush before it takes the pending emails.
    super::refresh::token_key(app).await?;
    let batch: Vec<Pending> = app.repo.take_mail_batch(ws, flush_id, app.clock.now()).await?;
    if batch.is_empty() {
        return Ok(());
    }
    let mut retry = None;
    for kind in [
        AlertKind::Disconnected,
        AlertKind::SyncFailed,
        AlertKind::DataNotSyncing,
        AlertKind::ExpiringSoon,
        AlertKind::Recovered,
    ] {
        let items = once_each(batch.iter().filter(|p| p.kind == kind).flat_map(|p| p.items.iter()));
        if items.is_empty() {
            continue;
        }
        for member in recipients(app, ws, kind).await? {
            let email = compose(app, ws, kind, &items, &member).await?;
            // One member's send that must wait holds back no one else's.
            if let Err(e) = send_once(app, ws, &format!("{flush_id}-{kind:?}"), &member, &email).await {
                retry.get_or_insert(e);
            }
        }
    }
    match retry {
        Some(e) => Err(e),
        None => app.repo.finish_mail_batch(ws, flush_id).await,
    }
}

/// Asks for a flush of each workspace whose pending emails no flush took
/// in time, and again for each batch a flush took and did not finish (its
/// message lost, or dead-lettered after failing): found by the fault
/// harness, where such emails waited for good. Returns how many.
pub async fn flush_stranded(app: &App) -> Result<usize, Error> {
    let stranded = app.repo.stranded_mail(app.clock.now(), 100).await?;
    for (ws, flush_id) in &stranded {
        // A batch taken and not finished is flushed again under its own id
        // (its sends done are claimed, so nobody gets one twice).
        let flush_id = flush_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        app.send(&AlertEvent::Flush { workspace_id: ws.clone(), flush_id }, 0).await?;
    }
    Ok(stranded.len())
}

/// Each data source once: two incidents of one kind may name the same one
/// (its own and its grant's; a recovery closes a failed sync and stale data
/// at once). The longest gap is the one told.
fn once_each<'a>(all: impl Iterator<Item = &'a MailItem>) -> Vec<MailItem> {
    let mut items: Vec<MailItem> = Vec::new();
    for item in all {
        let same = |i: &&mut MailItem| {
            (&i.platform, &i.data_source, &i.client, &i.button)
                == (&item.platform, &item.data_source, &item.client, &item.button)
        };
        match items.iter_mut().find(same) {
            Some(kept) => kept.missing_minutes = kept.missing_minutes.max(item.missing_minutes),
            None => items.push(item.clone()),
        }
    }
    items
}

/// The one-click unsubscribe link of a member for a kind (RFC 8058): a
/// POST to it turns that kind of email off, with no sign-in.
pub async fn unsubscribe_link(app: &App, ws: &WorkspaceId, member: &UserId, kind: AlertKind) -> Result<String, Error> {
    let key = super::refresh::token_key(app).await?;
    let claim = Unsubscribe {
        workspace_id: ws.clone(),
        user_id: member.clone(),
        kind,
        expires_at: app.clock.now() + chrono::Duration::days(UNSUBSCRIBE_DAYS),
    };
    Ok(format!("{}/v1/email/unsubscribe?token={}", app.config.base_url(), claim.token(key)))
}

async fn compose(
    app: &App,
    ws: &WorkspaceId,
    kind: AlertKind,
    items: &[MailItem],
    member: &Member,
) -> Result<Email, Error> {
    let unsubscribe = unsubscribe_link(app, ws, &member.user_id, kind).await?;
    let links = FooterLinks { preferences: preferences_link(app), unsubscribe };
    let reader = Reader { name: member.display_name.clone(), time_zone: email::time_zone(member.time_zone.as_deref()) };
    let brand = &app.config.brand;
    let rendered = email::render(brand, kind, items, &reader, &links);
    Ok(Email {
        from: email::from_header(&brand.sender_name, &app.config.alert_sender),
        to: vec![],
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        headers: vec![
            ("List-Unsubscribe".into(), format!("<{}>", links.unsubscribe)),
            ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
        ],
    })
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
    let version = match app.repo.claim_send(ws, batch, &member.user_id, app.clock.now()).await? {
        SendClaim::Mine(version) => version,
        SendClaim::Sent => return Ok(()),
        // Redelivered until it is sent, or the claim is old enough to take.
        SendClaim::Busy => return Err(Error::Conflict { kind: "email being sent by another worker" }),
    };
    let mut email = email.clone();
    email.to = vec![member.email.clone()];
    let mut attempt = 0u32;
    loop {
        match app.mailer.send(&email).await {
            Ok(message_id) => {
                app.repo.mark_sent(ws, batch, &member.user_id, version, &message_id).await;
                return Ok(());
            }
            Err(MailError::Throttled) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => {
                // Known not sent: release the claim so the retry may send.
                app.repo.release_send(ws, batch, &member.user_id, version).await;
                return Err(e.into());
            }
        }
    }
}
