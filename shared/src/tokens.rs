//! Using and renewing grants. Every refresh (sweep, sync worker on a 401,
//! API) goes through [`refresh`]: a conditional lease on the authorization
//! makes concurrent refreshers send exactly one token request; the others
//! wait briefly and read the result. The new tokens reach the vault before
//! anything else changes, so a crash in between leaves tokens that work.

use chrono::Duration;
use std::collections::BTreeMap;

use crate::app::App;
use crate::catalog::RefreshKind;
use crate::domain::*;
use crate::error::Error;
use crate::ids::*;
use crate::jobs::{self, AlertEvent};
use crate::lifecycle;
use crate::oauth::{self, Grant, TokenError, TokenSet};
use crate::platform::AppCredentials;
use crate::ports::QueueKind;

/// How long a refresher may hold the lease.
const LEASE_SECONDS: i64 = 30;

/// Why a refresh did not produce tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshError {
    /// The grant is gone; the authorization is now disconnected.
    Lost(DisconnectReason),
    /// Try again later (platform down, lease contention).
    Transient,
}

/// The tokens of an authorization, from the vault.
pub async fn tokens_of(app: &App, auth: &Authorization) -> Result<TokenSet, Error> {
    let secret = app.vault.get(&auth.secret.0).await?.ok_or(Error::NotFound { kind: "tokens" })?;
    TokenSet::from_secret(&secret)
}

/// Renews the tokens of an authorization. `stale` is the access token the
/// caller saw fail: if the vault already holds another, someone refreshed
/// in the meantime and that result is returned without a token request.
pub async fn refresh(
    app: &App,
    ws: &WorkspaceId,
    id: &AuthorizationId,
    stale: Option<&str>,
) -> Result<TokenSet, RefreshError> {
    let me = uuid::Uuid::new_v4().to_string();
    for attempt in 0..20u32 {
        let current = app.repo.authorization(ws, id).await.map_err(|_| RefreshError::Transient)?;
        let auth = current.value.clone();
        if let Status::Disconnected { reason } = auth.status {
            return Err(RefreshError::Lost(reason));
        }
        let tokens = tokens_of(app, &auth).await.map_err(|_| RefreshError::Transient)?;
        if stale.is_some_and(|s| s != tokens.access_token) {
            return Ok(tokens);
        }
        let now = app.clock.now();
        if Lease::held_by_other(&auth.refresh_lease, &me, now) {
            // Another refresher is at work: wait briefly, then read its result.
            tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt + 1))).await;
            continue;
        }
        let mut leased = auth.clone();
        leased.refresh_lease = Some(Lease { owner: me.clone(), until: now + Duration::seconds(LEASE_SECONDS) });
        let Ok(version) = app.repo.save(&leased, current.version).await else { continue };
        return refresh_holding_lease(app, leased, version, tokens).await;
    }
    Err(RefreshError::Transient)
}

async fn refresh_holding_lease(
    app: &App,
    mut auth: Authorization,
    version: u64,
    tokens: TokenSet,
) -> Result<TokenSet, RefreshError> {
    let entry = app.catalog.get(auth.platform.as_str()).map_err(|_| RefreshError::Transient)?;
    let spec = entry.oauth.as_ref().ok_or(RefreshError::Transient)?;
    let refreshable = matches!(spec.refresh.kind, RefreshKind::Rotating | RefreshKind::NonRotating);
    let Some(refresh_token) = tokens.refresh_token.clone().filter(|_| refreshable) else {
        // Nothing to renew with: the grant is over.
        let reason = if spec.refresh.kind == RefreshKind::LongLivedExchange {
            DisconnectReason::ReauthorizationRequired
        } else {
            DisconnectReason::TokenRevoked
        };
        release(app, &mut auth, version).await;
        disconnect_authorization(app, &auth.workspace_id, &auth.id, reason)
            .await
            .map_err(|_| RefreshError::Transient)?;
        return Err(RefreshError::Lost(reason));
    };
    let creds = AppCredentials::load(app, entry, &auth.workspace_id).await.map_err(|_| RefreshError::Transient)?;
    let vars: BTreeMap<String, String> = auth.params.clone();
    match oauth::token_request(app, entry, &vars, &creds, Grant::Refresh { refresh_token: &refresh_token }).await {
        Ok(mut fresh) => {
            // Non-rotating platforms send no new refresh token: keep the old.
            if fresh.refresh_token.is_none() {
                fresh.refresh_token = Some(refresh_token);
                fresh.refresh_expires_at = tokens.refresh_expires_at;
            }
            // The vault first: the rotated refresh token is never lost.
            pace_vault_writes(app.config.vault_writes_per_second).await;
            if let Err(e) = app.vault.put(&auth.secret.0, &fresh.to_secret()).await {
                tracing::error!(authorization = %auth.id, error = %e, "refreshed tokens not stored; the lease will expire");
                return Err(RefreshError::Transient);
            }
            let now = app.clock.now();
            let mut expiry = lifecycle::expiry_facts(spec, &fresh, now);
            // A refresh does not restart a yearly consent.
            expiry.reauthorize_by = auth.expiry.reauthorize_by;
            auth.next_check_at = Some(lifecycle::next_check(spec, &expiry, now));
            auth.expiry = expiry;
            auth.last_refreshed_at = Some(now);
            auth.refresh_failures = 0;
            auth.refresh_lease = None;
            auth.updated_at = now;
            if let Err(e) = app.repo.save(&auth, version).await {
                tracing::error!(authorization = %auth.id, error = %e, "refresh recorded late; tokens are stored");
            }
            tracing::info!(authorization = %auth.id, "tokens refreshed");
            Ok(fresh)
        }
        Err(TokenError::InvalidGrant) | Err(TokenError::Scope) => {
            release(app, &mut auth, version).await;
            disconnect_authorization(app, &auth.workspace_id, &auth.id, DisconnectReason::TokenRevoked)
                .await
                .map_err(|_| RefreshError::Transient)?;
            Err(RefreshError::Lost(DisconnectReason::TokenRevoked))
        }
        Err(e) => {
            tracing::warn!(authorization = %auth.id, error = ?e, "refresh failed; will retry");
            auth.refresh_failures += 1;
            release(app, &mut auth, version).await;
            Err(RefreshError::Transient)
        }
    }
}

/// Spaces vault writes so a refresh storm stays under Secrets Manager's
/// write quota (50 per second per account and region, shared by every
/// function): writers of this process queue for their turn.
async fn pace_vault_writes(per_second: u32) {
    static LAST: tokio::sync::Mutex<Option<tokio::time::Instant>> = tokio::sync::Mutex::const_new(None);
    let gap = std::time::Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
    let mut last = LAST.lock().await;
    if let Some(previous) = *last {
        tokio::time::sleep_until(previous + gap).await;
    }
    *last = Some(tokio::time::Instant::now());
}

async fn release(app: &App, auth: &mut Authorization, version: u64) {
    auth.refresh_lease = None;
    if let Err(e) = app.repo.save(auth, version).await {
        tracing::warn!(authorization = %auth.id, error = %e, "lease not released; it will expire");
    }
}

/// Disconnects an authorization and every connection that uses it, each
/// once (a second call changes nothing and raises no second alert).
pub async fn disconnect_authorization(
    app: &App,
    ws: &WorkspaceId,
    id: &AuthorizationId,
    reason: DisconnectReason,
) -> Result<(), Error> {
    let now = app.clock.now();
    let mut was_connected = false;
    for _ in 0..5 {
        let current = app.repo.authorization(ws, id).await?;
        if matches!(current.value.status, Status::Disconnected { .. }) {
            break;
        }
        was_connected = true;
        let mut auth = current.value;
        auth.apply(Event::CredentialsLost(reason), now)?;
        auth.next_check_at = None;
        auth.refresh_lease = None;
        match app.repo.save(&auth, current.version).await {
            Ok(_) => break,
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    let connections = app.repo.list::<Connection>(ws).await?;
    let mut newly = Vec::new();
    for c in connections.into_iter().filter(|c| c.value.authorization_id() == Some(id)) {
        let id_of = c.value.id.clone();
        if mark_disconnected(app, c.value, c.version, reason).await? {
            newly.push(id_of);
        }
    }
    if was_connected || !newly.is_empty() {
        // One alert for the grant, naming every connection it took down.
        let event = AlertEvent::AuthorizationDisconnected {
            workspace_id: ws.clone(),
            authorization_id: id.clone(),
            connection_ids: newly,
            reason: reason.code().to_owned(),
        };
        if let Err(e) = jobs::enqueue(app, QueueKind::Notify, &event, 0).await {
            tracing::error!(authorization = %id, error = %e, "disconnection alert not queued");
        }
    }
    Ok(())
}

/// Disconnects one connection (if it is not already) and raises its alert.
pub async fn disconnect_connection(
    app: &App,
    c: Connection,
    version: u64,
    reason: DisconnectReason,
) -> Result<(), Error> {
    let (ws, id) = (c.workspace_id.clone(), c.id.clone());
    if mark_disconnected(app, c, version, reason).await? {
        let event = AlertEvent::ConnectionDisconnected {
            workspace_id: ws,
            connection_id: id.clone(),
            reason: reason.code().to_owned(),
        };
        if let Err(e) = jobs::enqueue(app, QueueKind::Notify, &event, 0).await {
            tracing::error!(connection = %id, error = %e, "disconnection alert not queued");
        }
    }
    Ok(())
}

/// Moves a connection to disconnected; false if it already was.
async fn mark_disconnected(
    app: &App,
    mut c: Connection,
    mut version: u64,
    reason: DisconnectReason,
) -> Result<bool, Error> {
    for _ in 0..5 {
        if matches!(c.status, Status::Disconnected { .. }) {
            return Ok(false);
        }
        c.apply(Event::CredentialsLost(reason), app.clock.now())?;
        match app.repo.save(&c, version).await {
            Ok(_) => {
                tracing::warn!(connection = %c.id, reason = reason.code(), "connection disconnected");
                return Ok(true);
            }
            Err(Error::Conflict { .. }) => {
                let fresh = app.repo.connection(&c.workspace_id, &c.id).await?;
                c = fresh.value;
                version = fresh.version;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict { kind: "connection" })
}
