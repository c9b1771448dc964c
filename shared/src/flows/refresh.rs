//! Using and renewing grants. Every refresh (sweep, sync worker on a 401,
//! API) goes through [`refresh`]: a conditional lease on the authorization
//! makes concurrent refreshers send exactly one token request; the others
//! wait briefly and read the result. The new tokens reach the vault before
//! anything else changes, so a crash in between leaves tokens that work.

use chrono::Duration;

use super::disconnect::disconnect_authorization;
use super::App;
use crate::catalog::RefreshKind;
use crate::domain::error::Error;
use crate::domain::ids::*;
use crate::domain::policy;
use crate::domain::tokens::TokenSet;
use crate::domain::*;
use crate::platform::token_client::{Grant, TokenError};

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
    let resolved =
        crate::platform::discovery::resolve(app.http.as_ref(), entry).await.map_err(|_| RefreshError::Transient)?;
    let entry = resolved.as_ref();
    let spec = entry.oauth.as_ref().ok_or(RefreshError::Transient)?;
    let Some(refresh_token) = tokens.refresh_token.clone().filter(|_| spec.refresh.kind.is_refreshable()) else {
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
    let creds = app.app_credentials(entry, &auth.workspace_id).await.map_err(|_| RefreshError::Transient)?;
    let grant = Grant::Refresh { refresh_token: &refresh_token };
    match app.token_client().request(entry, &auth.params, &creds, grant).await {
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
            let mut expiry = policy::expiry_facts(spec, &fresh, now);
            // A refresh does not restart a yearly consent.
            expiry.reauthorize_by = auth.expiry.reauthorize_by;
            auth.next_check_at = Some(policy::next_check(spec, &expiry, now));
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
