//! Named authorizations: several per platform in a workspace, shared by the
//! connections (data sources and export destinations) that choose them.

use serde::Deserialize;

use super::disconnect::disconnect_connection;
use super::refresh::tokens_of;
use super::App;
use crate::catalog::AuthMethod;
use crate::domain::error::Error;
use crate::domain::ids::*;
use crate::domain::input::{check_client, check_name, select_streams, ClientInput};
use crate::domain::messages::SyncJob;
use crate::domain::*;

/// The body of `POST /v1/connections`: a data source or destination on an
/// existing authorization. The member needs no platform permission of their
/// own: the connection uses the grant of the member who authorized.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub authorization_id: String,
    pub name: String,
    #[serde(default)]
    pub role: Option<ConnectionRole>,
    #[serde(default)]
    pub client: Option<ClientInput>,
    #[serde(default)]
    pub selected_streams: Option<Vec<String>>,
    /// The sub-account it syncs, one the grant reaches (see
    /// `GET /v1/authorizations/{id}/accounts`).
    #[serde(default)]
    pub account_id: Option<String>,
}

pub async fn create_connection(app: &App, caller: &Caller, request: CreateRequest) -> Result<Connection, Error> {
    caller.require(Role::Staff)?;
    let auth =
        app.repo.authorization(&caller.workspace_id, &AuthorizationId::parse(&request.authorization_id)?).await?.value;
    let entry = app.catalog.get(auth.platform.as_str())?;
    let role = request.role.unwrap_or(ConnectionRole::Source);
    if !entry.roles.contains(&role) {
        return Err(Error::invalid("role", format!("{} does not take this role", entry.name)));
    }
    let mut streams = entry.default_streams();
    if let Some(selected) = &request.selected_streams {
        select_streams(&mut streams, selected, &entry.name)?;
    }
    let now = app.clock.now();
    let client = check_client(request.client.as_ref())?;
    // Destinations receive exports; they have nothing to sync.
    let streams = if role == ConnectionRole::Source { streams } else { vec![] };
    let name = check_name(&request.name)?;
    let credential = Credential::Authorization { authorization_id: auth.id.clone() };
    let mut c = Connection::new(
        caller.workspace_id.clone(),
        auth.platform.clone(),
        name,
        role,
        client,
        credential,
        streams,
        caller.user_id.clone(),
        now,
    );
    match auth.status {
        Status::Connected => {
            c.apply(Event::CredentialsAccepted, now)?;
            if role == ConnectionRole::Destination {
                c.apply(Event::InitialSyncCompleted, now)?;
            }
        }
        Status::Disconnected { reason } => {
            c.apply(Event::CredentialsLost(reason), now)?;
        }
        _ => {}
    }
    if let Some(account) = &request.account_id {
        let chosen = super::accounts::check_choice(app, &auth, account).await?;
        c.params.extend(super::accounts::account_params(&chosen));
    }
    app.repo.create(&c).await?;
    if c.status == Status::InitialSyncInProgress {
        app.send(&SyncJob::start(&c), 0).await?;
    }
    super::events::status_changed(app, None, &c).await;
    Ok(c)
}

/// The authorizations of the workspace, each with the connections that use
/// it. A client viewer sees only those behind the connections they may see.
pub async fn list(app: &App, caller: &Caller) -> Result<Vec<(Authorization, Vec<Connection>)>, Error> {
    let connections = super::connections::visible(app, caller).await?;
    let mut out = Vec::new();
    for a in app.repo.list::<Authorization>(&caller.workspace_id).await? {
        let used: Vec<Connection> =
            connections.iter().filter(|c| c.authorization_id() == Some(&a.value.id)).cloned().collect();
        if caller.clients.is_some() && used.is_empty() {
            continue;
        }
        out.push((a.value, used));
    }
    Ok(out)
}

/// `PATCH /v1/authorizations/{id}`: rename in place.
pub async fn rename(app: &App, caller: &Caller, id: &AuthorizationId, name: &str) -> Result<Authorization, Error> {
    caller.require(Role::Staff)?;
    let current = app.repo.authorization(&caller.workspace_id, id).await?;
    let mut a = current.value;
    a.name = check_name(name)?;
    a.updated_at = app.clock.now();
    app.repo.save(&a, current.version).await?;
    Ok(a)
}

/// `DELETE /v1/authorizations/{id}` (admin): disconnects what used it
/// (`authorization_removed`), revokes it at the platform where it can be,
/// deletes its secret, then the authorization.
pub async fn remove(app: &App, caller: &Caller, id: &AuthorizationId) -> Result<usize, Error> {
    caller.require(Role::Admin)?;
    let current = app.repo.authorization(&caller.workspace_id, id).await?;
    let auth = current.value.clone();
    let mut disconnected = 0;
    for c in app.repo.connections_of(&caller.workspace_id, id).await? {
        let was = c.value.status;
        disconnect_connection(app, &c.value, DisconnectReason::AuthorizationRemoved).await?;
        if !matches!(was, Status::Disconnected { .. }) {
            disconnected += 1;
        }
    }
    match revoke_at_platform(app, &auth).await {
        Ok(()) => {}
        // Our own store or vault failed before the platform was asked: the
        // tokens are kept and the removal fails, to be tried again (found by
        // the fault harness: a vault read that failed skipped revocation and
        // the secret was deleted, leaving the grant alive at the platform).
        Err(e @ (Error::Vault(_) | Error::Store(_))) => return Err(e),
        Err(e) => {
            tracing::warn!(authorization = %id, error = %e, "revocation at the platform failed; the grant is removed here")
        }
    }
    app.vault.delete(&auth.secret.0).await?;
    // Its accounts lists before the item that names them (a removal that
    // dies in between is asked again; the lists are never left unnamed).
    app.repo.drop_account_lists(&caller.workspace_id, id, None).await?;
    let latest = app.repo.authorization(&caller.workspace_id, id).await?;
    app.repo.delete(&latest.value, latest.version).await?;
    tracing::info!(authorization = %id, disconnected, "authorization removed");
    Ok(disconnected)
}

/// RFC 7009 revocation, where the catalog has a revoke URL.
async fn revoke_at_platform(app: &App, auth: &Authorization) -> Result<(), Error> {
    let entry = app.catalog.get(auth.platform.as_str())?;
    let resolved = crate::platform::discovery::resolve(app.http.as_ref(), entry).await?;
    let entry = resolved.as_ref();
    let Some(spec) = &entry.oauth else { return Ok(()) };
    let Some(revoke_url) = &spec.revoke_url else { return Ok(()) };
    // No tokens left (a removal that died after deleting them): revoked then.
    let tokens = match tokens_of(app, auth).await {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let creds = app.app_credentials(entry, &auth.workspace_id).await?;
    if entry.method == AuthMethod::Oauth1 {
        // X: a POST to oauth/invalidate_token, signed with the token itself.
        use secrecy::ExposeSecret;
        let secret = tokens.token_secret.clone().unwrap_or_default();
        let keys = crate::platform::oauth1::Keys {
            consumer_key: &creds.client_id,
            consumer_secret: creds.client_secret.expose_secret(),
            token: Some((&tokens.access_token, &secret)),
        };
        let url = crate::platform::fill(revoke_url, &auth.params)?;
        return crate::platform::oauth1::signed_post(app.http.as_ref(), &url, &keys).await;
    }
    if entry.method != AuthMethod::Oauth2 {
        return Ok(());
    }
    let token = tokens.refresh_token.clone().unwrap_or(tokens.access_token.clone());
    let account = auth.account.as_ref().map(|a| a.id.as_str());
    app.token_client().revoke(entry, &auth.params, &creds, &token, account).await
}
