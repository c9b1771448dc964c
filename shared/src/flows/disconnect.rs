//! Losing a grant or a key: the authorization and every connection that
//! uses it move to disconnected (with the reason) once; one alert names
//! every connection it took down, and a second call changes nothing.

use super::{events, App};
use crate::domain::error::Error;
use crate::domain::events::{EventBody, Reason};
use crate::domain::ids::*;
use crate::domain::messages::AlertEvent;
use crate::domain::*;
use crate::store::Change;

/// Disconnects an authorization and every connection that uses it, each
/// once (a second call changes nothing and raises no second alert).
pub async fn disconnect_authorization(
    app: &App,
    ws: &WorkspaceId,
    id: &AuthorizationId,
    reason: DisconnectReason,
) -> Result<(), Error> {
    let now = app.clock.now();
    // The alert is kept before anything changes (a worker that dies between
    // the change and the alert would lose it: a second call changes nothing
    // and alerts nobody). The notifier tells it only if the change happened.
    let current = app.repo.authorization(ws, id).await?;
    let others = app.repo.connections_of(ws, id).await?;
    // What this disconnection takes down: the connections still up, and
    // those a first call that died before the grant changed took down.
    let up: Vec<ConnectionId> = others
        .iter()
        .filter(|c| {
            !matches!(
                c.value.status,
                Status::Disconnected { reason: DisconnectReason::SubAccountGone | DisconnectReason::UserDisconnected }
            )
        })
        .map(|c| c.value.id.clone())
        .collect();
    let intent = if !matches!(current.value.status, Status::Disconnected { .. }) || !up.is_empty() {
        let event = AlertEvent::AuthorizationDisconnected {
            workspace_id: ws.clone(),
            authorization_id: id.clone(),
            connection_ids: up.clone(),
            reason: reason.code().to_owned(),
        };
        Some(app.intend_alert(&event).await?)
    } else {
        None
    };
    // The connections first, then the grant: a worker that dies between
    // leaves the grant connected and due, so the sweep finds it dead again
    // and finishes (found by the fault harness: the grant first left its
    // connections "syncing" behind a disconnected grant, for good).
    let mut newly = Vec::new();
    for c in others {
        let id_of = c.value.id.clone();
        if mark_disconnected(app, &c.value, reason).await? {
            newly.push(id_of);
        }
    }
    let (was_connected, auth) = app
        .repo
        .update_authorization(ws, id, |auth| {
            if matches!(auth.status, Status::Disconnected { .. }) {
                return Ok(Change::Keep(false));
            }
            auth.apply(Event::CredentialsLost(reason), now)?;
            auth.next_check_at = None;
            auth.refresh_lease = None;
            Ok(Change::Save(true))
        })
        .await?;
    if was_connected {
        // Every connection this disconnection took down, in this call or
        // in one that died before the grant changed.
        newly = up.clone();
    }
    if was_connected || !newly.is_empty() {
        // One alert for the grant, naming every connection it took down.
        let event = AlertEvent::AuthorizationDisconnected {
            workspace_id: ws.clone(),
            authorization_id: id.clone(),
            connection_ids: newly.clone(),
            reason: reason.code().to_owned(),
        };
        match &intent {
            Some(key) => app.alert_intended(key, &event, "disconnection alert").await,
            None => app.alert(&event, "disconnection alert").await,
        }
        let body = EventBody::AuthorizationDisconnected {
            authorization: (&auth.value).into(),
            reason: Reason::new(reason.code(), reason.message()),
            connection_ids: newly,
        };
        events::emit(app, ws, body).await;
    } else if let Some(key) = &intent {
        // Nothing changed here (another worker got there): its alert is its own.
        let _ = app.repo.forget_key(key).await;
    }
    Ok(())
}

/// Disconnects one connection (if it is not already) and raises its alert.
pub async fn disconnect_connection(app: &App, c: &Connection, reason: DisconnectReason) -> Result<(), Error> {
    let (ws, id) = (c.workspace_id.clone(), c.id.clone());
    let event =
        AlertEvent::ConnectionDisconnected { workspace_id: ws, connection_id: id, reason: reason.code().to_owned() };
    let key = app.intend_alert(&event).await?;
    if mark_disconnected(app, c, reason).await? {
        app.alert_intended(&key, &event, "disconnection alert").await;
    } else {
        let _ = app.repo.forget_key(&key).await;
    }
    Ok(())
}

/// Moves a connection to disconnected; false if it already was.
async fn mark_disconnected(app: &App, c: &Connection, reason: DisconnectReason) -> Result<bool, Error> {
    let (previous, saved) = app
        .repo
        .update_connection(&c.workspace_id, &c.id, |c| {
            if matches!(c.status, Status::Disconnected { .. }) {
                return Ok(Change::Keep(None));
            }
            let previous = c.status;
            c.apply(Event::CredentialsLost(reason), app.clock.now())?;
            Ok(Change::Save(Some(previous)))
        })
        .await?;
    if let Some(previous) = previous {
        tracing::warn!(connection = %c.id, reason = reason.code(), "connection disconnected");
        events::status_changed(app, Some(&previous), &saved.value).await;
    }
    Ok(previous.is_some())
}
