//! Installs a platform starts itself (BigCommerce's control panel and
//! marketplace: the callback arrives with a code but no state of ours, so
//! no workspace and no browser to bind it to). The code is exchanged at
//! once (codes live minutes), the tokens wait in the vault, and the page in
//! the platform's iframe shows the merchant a single-use claim link to the
//! frontend, where a member of a workspace claims the install: it becomes
//! an authorization and a connection of that workspace (or reconnects the
//! store's existing authorization there). Unclaimed installs expire, and the
//! sweep deletes their tokens.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::connect_oauth::{exchange, store_new, CallbackError, GrantOwner, Granted};
use super::reconnect::{self, NewTokens};
use super::App;
use crate::catalog::{CredentialSource, PlatformEntry};
use crate::domain::error::Error;
use crate::domain::ids::{AuthorizationId, ConnectionId};
use crate::domain::input::{check_client, check_name, ClientInput};
use crate::domain::install::{PendingInstall, INSTALL_CLAIM_HOURS};
use crate::domain::tokens::TokenSet;
use crate::domain::*;

/// The platform a stateless callback comes from: one whose installs start
/// on its side and whose callback values are all there.
pub fn install_platform<'a>(app: &'a App, query: &BTreeMap<String, String>) -> Option<&'a PlatformEntry> {
    app.catalog.entries().find(|e| {
        e.oauth.as_ref().is_some_and(|o| {
            o.install_without_state
                && e.credentials == CredentialSource::Preconfigured
                && query.contains_key(&o.code_param)
                && o.callback_params.iter().all(|p| query.contains_key(p))
        })
    })
}

/// A received install: the claim to show, and the account installed.
pub struct Received {
    pub claim: String,
    pub platform: String,
    pub account: Option<ExternalAccount>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The callback of an install: the same checks and requests as a flow's
/// (code, callback values by pattern, token request, scopes, identity),
/// then the tokens to the vault and the install under its claim.
pub async fn receive(
    app: &App,
    entry: &PlatformEntry,
    query: &BTreeMap<String, String>,
) -> Result<Received, CallbackError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(app.config.callback_budget_seconds);
    let creds = crate::platform::AppCredentials::load_deployment(app.vault.as_ref(), &app.config.secret_prefix, entry)
        .await
        .map_err(|_| CallbackError::AppNotConfigured)?;
    let Granted { vars, account, tokens } = exchange(app, entry, creds, BTreeMap::new(), query, None, deadline).await?;
    let now = app.clock.now();
    let id = PendingInstall::new_id();
    let install = PendingInstall {
        secret: SecretRef::for_install(&app.config.secret_prefix, &id),
        id,
        platform: entry.id.clone(),
        account: account.clone(),
        scopes: tokens.scopes.clone(),
        params: vars,
        created_at: now,
        expires_at: now + chrono::Duration::hours(INSTALL_CLAIM_HOURS),
    };
    let claim = PendingInstall::new_claim();
    let stored = app
        .vault_first(&install.secret, &tokens.to_secret(), app.repo.put_install(&claim, &install), async {
            app.repo.take_install(&claim).await.is_ok()
        })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, platform = %entry.id, "an install was not stored");
        return Err(CallbackError::Internal);
    }
    tracing::info!(platform = %entry.id, install = %install.id, "install received; waiting for its workspace");
    Ok(Received { claim, platform: entry.name.clone(), account, expires_at: install.expires_at })
}

/// `POST /v1/installs/claim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub claim: String,
    /// The data source's name (default: the account's name).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub client: Option<ClientInput>,
}

/// What a claim made.
pub struct Claimed {
    pub connection_id: Option<ConnectionId>,
    pub authorization_id: AuthorizationId,
    /// The store was already connected in this workspace: its authorization
    /// was reconnected instead of a second one being made.
    pub reconnected: bool,
}

/// Claims an install for the caller's workspace, once.
pub async fn claim(app: &App, caller: &Caller, request: ClaimRequest) -> Result<Claimed, Error> {
    caller.require(Role::Staff)?;
    if !request.claim.starts_with("clm_") || request.claim.len() > 128 {
        return Err(Error::NotFound { kind: "install" });
    }
    let name = request.name.as_deref().map(check_name).transpose()?;
    let client = check_client(request.client.as_ref())?;
    let install = app.repo.take_install(&request.claim).await?.ok_or(Error::NotFound { kind: "install" })?;
    if install.expires_at <= app.clock.now() {
        return Err(Error::NotFound { kind: "install" });
    }
    let done = settle(app, caller, &install, name, client).await;
    match &done {
        // Its tokens now live with the authorization.
        Ok(_) => app.vault.delete(&install.secret.0).await.unwrap_or_else(
            |e| tracing::warn!(error = %e, install = %install.id, "a claimed install's secret was not deleted"),
        ),
        // Put it back for another try (the claim is still the merchant's).
        Err(e) => {
            tracing::error!(error = %e, install = %install.id, "claiming an install failed; it waits again");
            let _ = app.repo.put_install(&request.claim, &install).await;
        }
    }
    done
}

async fn settle(
    app: &App,
    caller: &Caller,
    install: &PendingInstall,
    name: Option<String>,
    client: Option<ClientRef>,
) -> Result<Claimed, Error> {
    let entry = app.catalog.get(install.platform.as_str())?;
    let secret = app.vault.get(&install.secret.0).await?.ok_or(Error::NotFound { kind: "install" })?;
    let tokens = TokenSet::from_secret(&secret)?;
    // The same store already connected here: reconnect it (history kept).
    let existing = app.repo.list::<Authorization>(&caller.workspace_id).await?.into_iter().find(|a| {
        a.value.platform == install.platform
            && a.value.account.as_ref().map(|x| &x.id) == install.account.as_ref().map(|x| &x.id)
            && install.account.is_some()
    });
    if let Some(auth) = existing {
        let grant = NewTokens { vars: install.params.clone(), account: install.account.clone(), tokens };
        let restored = reconnect::restore(app, entry, &caller.workspace_id, &auth.value.id, grant).await?;
        return Ok(Claimed {
            connection_id: restored.first_connection,
            authorization_id: auth.value.id,
            reconnected: true,
        });
    }
    let name =
        name.or_else(|| install.account.as_ref().and_then(|a| a.name.clone())).unwrap_or_else(|| entry.name.clone());
    let name = check_name(&name)?;
    let owner = GrantOwner {
        workspace_id: &caller.workspace_id,
        user_id: &caller.user_id,
        platform: &install.platform,
        name: &name,
        role: ConnectionRole::Source,
        client: client.as_ref(),
    };
    let connected = store_new(app, entry, &owner, install.params.clone(), install.account.clone(), tokens).await?;
    Ok(Claimed {
        connection_id: connected.connection_id,
        authorization_id: connected.authorization_id,
        reconnected: false,
    })
}

/// The sweep's part: installs nobody claimed in time lose their tokens.
pub async fn expire(app: &App) -> Result<usize, Error> {
    let expired = app.repo.expired_installs(app.clock.now(), 100).await?;
    let id = |_, (_, install): &(_, crate::domain::install::PendingInstall)| install.id.to_string();
    Ok(super::each_of("unclaimed installs", expired, id, |(key, install)| async move {
        app.vault.delete(&install.secret.0).await?;
        app.repo.drop_install(&key).await?;
        tracing::info!(install = %install.id, platform = %install.platform, "an unclaimed install expired");
        Ok(())
    })
    .await)
}
