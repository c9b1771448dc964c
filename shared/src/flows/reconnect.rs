//! Reconnect: new tokens for an existing grant. The authorization keeps its
//! id, name and history; every connection that uses it is restored and
//! resumes from its cursors (a run the disconnection interrupted continues
//! from its saved page), and the incidents of the grant and of each
//! connection close with a recovery notice.

use std::collections::BTreeMap;

use super::{events, App};
use crate::catalog::PlatformEntry;
use crate::domain::error::Error;
use crate::domain::events::EventBody;
use crate::domain::ids::*;
use crate::domain::messages::{AlertEvent, SyncJob};
use crate::domain::policy;
use crate::domain::tokens::TokenSet;
use crate::domain::*;
use crate::store::Change;

/// What the callback obtained for the grant.
pub struct NewTokens {
    pub vars: BTreeMap<String, String>,
    pub account: Option<ExternalAccount>,
    pub tokens: TokenSet,
}

/// What a reconnect restored.
pub struct Restored {
    /// The first connection of the grant, if it has any.
    pub first_connection: Option<ConnectionId>,
}

/// Stores the new tokens (a new version of the same secret), marks the
/// grant connected, and brings back every connection that uses it.
pub async fn restore(
    app: &App,
    entry: &PlatformEntry,
    ws: &WorkspaceId,
    auth_id: &AuthorizationId,
    grant: NewTokens,
) -> Result<Restored, Error> {
    let spec = entry.oauth.as_ref().ok_or_else(|| Error::Config("no oauth".into()))?;
    let secret = app.repo.authorization(ws, auth_id).await?.value.secret;
    let (copy, sealed) = super::refresh::vault_copy(app, auth_id, &grant.tokens).await;
    app.vault.put(&secret.0, &copy.to_secret()).await?;
    let (_, auth) = app
        .repo
        .update_authorization(ws, auth_id, |a| {
            let now = app.clock.now();
            a.apply(Event::Reconnected { initial_sync_done: true }, now)?;
            a.expiry = policy::expiry_facts(spec, &grant.tokens, now);
            a.next_check_at = Some(policy::next_check(spec, &a.expiry, now));
            a.scopes = grant.tokens.scopes.clone();
            a.params.extend(grant.vars.clone());
            if grant.account.is_some() {
                a.account = grant.account.clone();
            }
            a.last_refreshed_at = Some(now);
            a.refresh_lease = None;
            a.expiring_alert_at = None;
            a.access = sealed.clone();
            Ok(Change::Save(()))
        })
        .await?;
    let mut first = None;
    let mut connection_ids = Vec::new();
    for c in app.repo.connections_of(ws, auth_id).await? {
        first.get_or_insert(c.value.id.clone());
        connection_ids.push(c.value.id.clone());
        resume_connection(app, c.value, c.version).await?;
    }
    let recovered = AlertEvent::AuthorizationRecovered { workspace_id: ws.clone(), authorization_id: auth_id.clone() };
    app.alert(&recovered, "recovery alert").await;
    events::emit(app, ws, EventBody::AuthorizationReconnected { authorization: (&auth.value).into(), connection_ids })
        .await;
    Ok(Restored { first_connection: first })
}

/// Brings one broken connection back (a no-op for a healthy one): it
/// resumes its interrupted run or starts the next, and its incident closes.
/// A save that fails is read again and retried: a concurrent change, or a
/// save that happened with its answer lost, finds the connection restored,
/// and what follows the change (its event, its run, its recovery notice) is
/// still done (found by the fault harness: a lost save answer left the
/// connection disconnected behind a grant said to be reconnected, and a
/// recovery notice never sent kept its incident open).
pub async fn resume_connection(app: &App, mut conn: Connection, mut version: u64) -> Result<(), Error> {
    if !conn.is_broken() {
        return Ok(());
    }
    let previous = conn.status;
    let mut tries = 0;
    while conn.is_broken() {
        conn.apply(Event::Reconnected { initial_sync_done: conn.initial_sync_done }, app.clock.now())?;
        match app.repo.save(&conn, version).await {
            Ok(_) => break,
            Err(e) if tries >= 3 => return Err(e),
            Err(_) => {
                tries += 1;
                let fresh = app.repo.connection(&conn.workspace_id, &conn.id).await?;
                (conn, version) = (fresh.value, fresh.version);
            }
        }
    }
    events::status_changed(app, Some(&previous), &conn).await;
    app.send_or_log(&SyncJob::resume(&conn).triggered(SyncTrigger::Resumed), "resumed sync").await;
    let recovered = AlertEvent::Recovered { workspace_id: conn.workspace_id.clone(), connection_id: conn.id.clone() };
    app.alert(&recovered, "recovery alert").await;
    Ok(())
}
