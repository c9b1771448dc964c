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
pub(crate) const LEASE_SECONDS: i64 = 30;

/// Tries of the vault write that keeps a refreshed (perhaps rotated) grant.
const VAULT_WRITE_ATTEMPTS: u32 = 4;

/// Why a refresh did not produce tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshError {
    /// The grant is gone; the authorization is now disconnected.
    Lost(DisconnectReason),
    /// Try again later (platform down, lease contention).
    Transient,
}

/// The tokens of an authorization: the vault's, with the access token
/// sealed in the item when it is the newer.
pub async fn tokens_of(app: &App, auth: &Authorization) -> Result<TokenSet, Error> {
    vault_tokens(app, auth, true).await
}

/// The vault's tokens, with the item's sealed access token if `sealed` and
/// it is the newer and opens.
async fn vault_tokens(app: &App, auth: &Authorization, sealed: bool) -> Result<TokenSet, Error> {
    let secret = app.vault.get(&auth.secret.0).await?.ok_or(Error::NotFound { kind: "tokens" })?;
    let mut tokens = TokenSet::from_secret(&secret)?;
    if sealed && auth.access.as_ref().is_some_and(|s| s.obtained_at >= tokens.obtained_at) {
        if let Some((sealed, access)) = open_sealed(app, auth).await {
            tokens.access_token = access;
            tokens.expires_at = sealed.expires_at;
            tokens.obtained_at = sealed.obtained_at;
        }
    }
    if tokens.access_token.is_empty() {
        // The vault keeps no renewable access token and the item's did not
        // serve: as good as expired, so its use renews it first.
        tokens.expires_at = Some(tokens.obtained_at);
    }
    Ok(tokens)
}

/// An authorization's tokens for use now.
pub enum ForUse {
    /// Good for at least the use margin (renewed first if they were not).
    Ready(TokenSet),
    /// They expire within the margin and could not be renewed yet (the
    /// platform or another refresher is busy): the current ones.
    Expiring(TokenSet),
    /// The grant is gone; the authorization is now disconnected.
    Lost(DisconnectReason),
}

/// The tokens of an authorization, refreshed first when the access token
/// expires within the use margin ([`policy::use_margin`]: a rotating
/// grant's, refreshed only when used, is the shorter): every use of a
/// grant's token goes through here or through [`refresh`] on a 401.
pub async fn for_use(app: &App, auth: &Authorization) -> Result<ForUse, Error> {
    let kind = app.catalog.get(auth.platform.as_str())?.oauth.as_ref().map(|s| s.refresh.kind);
    let margin = kind.map_or(Duration::minutes(policy::REFRESH_MARGIN_MINUTES), policy::use_margin);
    let good =
        |expires_at: Option<chrono::DateTime<chrono::Utc>>| expires_at.is_none_or(|at| at - margin > app.clock.now());
    // The item's sealed access token serves without a vault read (a use
    // needs no refresh token): one vault read and one head read fewer for
    // each sync run; a due one goes straight to the refresh, which reads
    // the vault itself (one read, not two). Were the vault's copy newer (an
    // item write lost after a refresh), the older token gets a 401 and the
    // refresh that follows reads the vault.
    let tokens = match open_sealed(app, auth).await {
        Some((sealed, access)) => {
            let tokens = TokenSet {
                access_token: access,
                refresh_token: None,
                expires_at: sealed.expires_at,
                refresh_expires_at: auth.expiry.refresh_expires_at,
                scopes: auth.scopes.clone(),
                obtained_at: sealed.obtained_at,
                token_secret: None,
            };
            if good(sealed.expires_at) {
                return Ok(ForUse::Ready(tokens));
            }
            tokens
        }
        None => {
            if auth.access.is_some() {
                tracing::warn!(authorization = %auth.id, "a sealed access token did not open; the vault's copy serves, renewed if due");
            }
            // The sealed one is not tried again: the vault's copy serves,
            // or (empty) counts as expired and is renewed.
            let tokens = vault_tokens(app, auth, false).await?;
            if good(tokens.expires_at) {
                return Ok(ForUse::Ready(tokens));
            }
            tokens
        }
    };
    Ok(match refresh(app, &auth.workspace_id, &auth.id, Some(&tokens.access_token)).await {
        Ok(fresh) => ForUse::Ready(fresh),
        Err(RefreshError::Lost(reason)) => ForUse::Lost(reason),
        Err(RefreshError::Transient) => ForUse::Expiring(tokens),
    })
}

/// The access token sealed in the item, opened. `None` when there is none,
/// or it does not open: another key (replaced in the vault) or an altered
/// item; the vault's token serves, or a refresh replaces it. A use says so
/// once ([`for_use`]).
async fn open_sealed<'a>(
    app: &App,
    auth: &'a Authorization,
) -> Option<(&'a crate::domain::sealed::SealedToken, String)> {
    let sealed = auth.access.as_ref()?;
    let opened = token_key(app).await.ok().and_then(|k| k.open(auth.id.as_str(), sealed))?;
    Some((sealed, opened))
}

/// What the vault keeps of freshly obtained tokens, and the access token
/// sealed for the item ([`crate::domain::sealed::split_for_vault`], under
/// this process's token key).
pub async fn vault_copy(
    app: &App,
    id: &AuthorizationId,
    tokens: &TokenSet,
) -> (TokenSet, Option<crate::domain::sealed::SealedToken>) {
    crate::domain::sealed::split_for_vault(token_key(app).await.ok(), id.as_str(), tokens)
}

/// The key access tokens are sealed with: read from the vault once per
/// process (the template's `TokenKey`, or created on first use). Two
/// processes creating it at once end with the same key; a token one of
/// them sealed in between does not open and is refreshed again.
pub async fn token_key(app: &App) -> Result<&crate::domain::sealed::TokenKey, Error> {
    use crate::domain::sealed::TokenKey;
    app.token_key
        .get_or_try_init(|| async {
            let name = SecretRef::token_key(&app.config.secret_prefix);
            let value = app.vault.get_or_create(&name.0, TokenKey::generate()).await?;
            TokenKey::from_secret(&value)
                .ok_or_else(|| Error::Config("the token key in the vault is not readable".into()))
        })
        .await
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
        // (An empty one is none: the vault keeps no renewable access token,
        // and the item's was older than the vault's copy.)
        if stale.is_some_and(|s| s != tokens.access_token) && !tokens.access_token.is_empty() {
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
            // Non-rotating platforms send no new refresh token (or the same
            // one again): keep the old.
            let rotated = fresh.refresh_token.as_ref().is_some_and(|r| *r != refresh_token);
            if !rotated {
                fresh.refresh_token = Some(refresh_token);
                fresh.refresh_expires_at = fresh.refresh_expires_at.or(tokens.refresh_expires_at);
            }
            // Only a changed long-lived credential goes to the vault (first:
            // a rotated refresh token is never lost); the new access token
            // is sealed into the item below. Without a key to seal with,
            // the vault takes it as before.
            let key = token_key(app).await.ok();
            match key.filter(|_| !rotated) {
                Some(key) => {
                    let sealed = key.seal(auth.id.as_str(), &fresh.access_token, fresh.expires_at, fresh.obtained_at);
                    auth.access = Some(sealed);
                }
                None => {
                    // What the vault keeps: the access token only if it is
                    // itself the credential.
                    let (copy, sealed) = crate::domain::sealed::split_for_vault(key, auth.id.as_str(), &fresh);
                    store_tokens(app, &auth, &copy).await?;
                    auth.access = sealed;
                }
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
                // The vault holds a working refresh token either way; a sealed
                // access token not saved only costs another refresh.
                tracing::error!(authorization = %auth.id, error = %e, "refresh not recorded; the next use refreshes again");
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

/// Writes refreshed tokens to the vault. The platform may have rotated the
/// refresh token: this write is all that keeps the grant, so a failure is
/// tried again before giving up (a platform that detects reuse revokes the
/// grant when the old token comes back).
async fn store_tokens(app: &App, auth: &Authorization, fresh: &TokenSet) -> Result<(), RefreshError> {
    let secret = fresh.to_secret();
    for attempt in 0..VAULT_WRITE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50 << (attempt - 1))).await;
        }
        pace_vault_writes(app.config.vault_writes_per_second).await;
        match app.vault.put(&auth.secret.0, &secret).await {
            Ok(()) => return Ok(()),
            Err(e) => tracing::warn!(authorization = %auth.id, error = %e, attempt, "refreshed tokens not stored"),
        }
    }
    tracing::error!(authorization = %auth.id, "refreshed tokens not stored after every try; the lease will expire");
    Err(RefreshError::Transient)
}

/// Spaces vault writes so a refresh storm stays under Secrets Manager's
/// write quota (50 per second per account and region, shared by every
/// function): each writer of this process takes the next free slot and
/// waits for it.
async fn pace_vault_writes(per_second: u32) {
    static NEXT: std::sync::Mutex<Option<tokio::time::Instant>> = std::sync::Mutex::new(None);
    let gap = std::time::Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
    let now = tokio::time::Instant::now();
    let slot = reserve_slot(&mut NEXT.lock().expect("pace lock"), now, gap);
    if slot > now {
        tokio::time::sleep_until(slot).await;
    }
}

/// The slot a write takes: the next free one, or now when the writer comes
/// after it. Slots follow the schedule, not the moment a timer fired, so a
/// coarse timer (tokio's is 1 ms) delays writes but never lowers the rate.
fn reserve_slot<I: Copy + Ord + std::ops::Add<std::time::Duration, Output = I>>(
    next: &mut Option<I>,
    now: I,
    gap: std::time::Duration,
) -> I {
    let slot = next.map_or(now, |n| n.max(now));
    *next = Some(slot + gap);
    slot
}

pub(crate) async fn release(app: &App, auth: &mut Authorization, version: u64) {
    auth.refresh_lease = None;
    if let Err(e) = app.repo.save(auth, version).await {
        tracing::warn!(authorization = %auth.id, error = %e, "lease not released; it will expire");
    }
}

#[cfg(test)]
mod tests {
    use super::reserve_slot;
    use std::time::{Duration, Instant};

    #[test]
    fn vault_write_slots_keep_the_rate_whatever_the_timer_does() {
        let gap = Duration::from_millis(1); // 1,000 writes a second
        let start = Instant::now();
        let mut next = None;
        // A thousand writers arrive at once: their slots are a gap apart.
        let slots: Vec<Instant> = (0..1000).map(|_| reserve_slot(&mut next, start, gap)).collect();
        assert_eq!(slots[0], start);
        assert_eq!(slots[999], start + gap * 999, "a second for a thousand writes, not two");
        // A writer coming after an idle spell goes at once, and the next one gap later.
        let later = start + Duration::from_secs(10);
        assert_eq!(reserve_slot(&mut next, later, gap), later);
        assert_eq!(reserve_slot(&mut next, later, gap), later + gap);
    }
}
