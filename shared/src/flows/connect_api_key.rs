//! API-key connect: a key is checked with the platform's cheap validation
//! request (from the catalog) before anything is stored; a valid key goes
//! to the vault only, and the connection shows a 4-character hint.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;

use super::App;
use crate::catalog::{AuthMethod, PlatformEntry};
use crate::domain::error::Error;
use crate::domain::ids::*;
use crate::domain::input::{check_client, check_name, ClientInput};
use crate::domain::messages::SyncJob;
use crate::domain::*;
use crate::platform::api_key::{check_fields, fingerprint_key, secret_json, validate};
use crate::store::api_keys::KeyClaim;

/// The body of `POST /v1/connections/api-key`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    pub platform: String,
    pub name: String,
    /// Field name → value, as the catalog's `key_fields` list them.
    pub credentials: BTreeMap<String, SecretString>,
    #[serde(default)]
    pub client: Option<ClientInput>,
    /// Create a second connection even if this key is already connected.
    #[serde(default)]
    pub allow_duplicate: bool,
}

/// The body of `PUT /v1/connections/{id}/api-key`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRequest {
    pub credentials: BTreeMap<String, SecretString>,
}

fn api_key_entry<'a>(app: &'a App, platform: &str) -> Result<&'a PlatformEntry, Error> {
    let entry = app.catalog.get(platform)?;
    if entry.method != AuthMethod::ApiKey || entry.api_key.is_none() {
        let method = if matches!(entry.method, AuthMethod::Oauth2 | AuthMethod::Oauth1) {
            "an API key (it uses OAuth)"
        } else {
            "an API key (it takes file uploads)"
        };
        return Err(Error::WrongAuthMethod { platform: entry.name.clone(), method });
    }
    Ok(entry)
}

/// What `connect` did.
pub struct Outcome {
    pub connection: Connection,
    /// True when the same key was already connected and nothing was created.
    pub existing: bool,
}

/// `POST /v1/connections/api-key`.
pub async fn connect(app: &App, caller: &Caller, request: ConnectRequest) -> Result<Outcome, Error> {
    caller.require(Role::Staff)?;
    let entry = api_key_entry(app, &request.platform)?;
    let name = check_name(&request.name)?;
    let client = check_client(request.client.as_ref())?;
    let fp_key = fingerprint_key(app.vault.as_ref(), &app.config.secret_prefix).await?;
    let key = check_fields(entry, &caller.workspace_id, &request.credentials, &fp_key)?;
    let now = app.clock.now();
    let mut connection = Connection::new(
        caller.workspace_id.clone(),
        entry.id.clone(),
        name,
        ConnectionRole::Source,
        client,
        Credential::FileUpload,
        entry.default_streams(),
        caller.user_id.clone(),
        now,
    );
    let (ws, platform) = (&caller.workspace_id, entry.id.as_str());
    // The same key connects once: a uniqueness claim, not a look at the list
    // (which concurrent requests would all pass).
    if !request.allow_duplicate {
        if let Some(existing) = claim_key(app, ws, platform, &key.fingerprint, &connection.id).await? {
            return Ok(Outcome { connection: existing, existing: true });
        }
    }
    let created = async {
        let account = validate(app.http.as_ref(), entry, &key).await?;
        let secret = app.packs.allocate(&app.config.secret_prefix, ws, connection.id.as_str()).await?;
        connection.credential = Credential::ApiKey {
            secret: secret.clone(),
            hint: key.hint.clone(),
            last_verified_at: now,
            fingerprint: key.fingerprint.clone(),
        };
        connection.account = account;
        connection.params = key.params.clone();
        connection.apply(Event::CredentialsAccepted, now)?;
        app.vault_first(&secret, &secret_json(&key), app.repo.create(&connection), app.repo.remove_new(&connection))
            .await
    }
    .await;
    if let Err(e) = created {
        app.repo.release_api_key(ws, platform, &key.fingerprint, &connection.id).await;
        return Err(e);
    }
    if request.allow_duplicate {
        // The first connection of a key holds its claim; a duplicate does not.
        app.repo.claim_api_key(ws, platform, &key.fingerprint, &connection.id, now).await.ok();
    }
    app.send_or_log(&SyncJob::start(&connection), "initial sync").await;
    super::events::status_changed(app, None, &connection).await;
    tracing::info!(platform = %entry.id, connection = %connection.id, "api key connected");
    Ok(Outcome { connection, existing: false })
}

/// Claims a key for `conn`, or finds the connection that holds it. A claim
/// whose connection does not exist yet is one whose key is being checked
/// with the platform: wait for it (at most one validation's time), then
/// take over a claim its request left behind when it died.
async fn claim_key(
    app: &App,
    ws: &WorkspaceId,
    platform: &str,
    fingerprint: &str,
    conn: &ConnectionId,
) -> Result<Option<Connection>, Error> {
    const POLL: std::time::Duration = std::time::Duration::from_millis(50);
    let patience = std::time::Duration::from_secs(app.config.http_timeout_seconds + 5);
    let started = std::time::Instant::now();
    while started.elapsed() < patience * 2 {
        let now = app.clock.now();
        let KeyClaim::HeldBy { connection, claimed_at, version } =
            app.repo.claim_api_key(ws, platform, fingerprint, conn, now).await?
        else {
            return Ok(None);
        };
        match app.repo.connection(ws, &connection).await {
            Ok(holder) => return Ok(Some(holder.value)),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let stale = chrono::Duration::from_std(patience * 2).unwrap_or_default();
        let abandoned = started.elapsed() >= patience || claimed_at.is_some_and(|at| now - at > stale);
        if abandoned && version > 0 && app.repo.retake_api_key(ws, platform, fingerprint, conn, version, now).await? {
            tracing::warn!(connection = %connection, "took over the claim of an API key whose request died");
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
    Err(Error::Conflict { kind: "API key (it is being connected by another request)" })
}

/// `PUT /v1/connections/{id}/api-key`: validates the new key first; the old
/// one stays in force until the new one passes. History and cursors stay;
/// a connection disconnected for its key is reconnected.
pub async fn replace(
    app: &App,
    caller: &Caller,
    id: &ConnectionId,
    request: ReplaceRequest,
) -> Result<Connection, Error> {
    caller.require(Role::Staff)?;
    let current = app.repo.connection(&caller.workspace_id, id).await?;
    let entry = api_key_entry(app, current.value.platform.as_str())?;
    let Credential::ApiKey { secret, .. } = &current.value.credential else {
        return Err(Error::invalid("connection", "this connection does not use an API key"));
    };
    let secret = secret.clone();
    let fp_key = fingerprint_key(app.vault.as_ref(), &app.config.secret_prefix).await?;
    let key = check_fields(entry, &caller.workspace_id, &request.credentials, &fp_key)?;
    let account = validate(app.http.as_ref(), entry, &key).await?;
    let now: DateTime<Utc> = app.clock.now();
    let mut c = current.value.clone();
    c.credential = Credential::ApiKey {
        secret: secret.clone(),
        hint: key.hint.clone(),
        last_verified_at: now,
        fingerprint: key.fingerprint.clone(),
    };
    c.params = key.params.clone();
    if account.is_some() {
        c.account = account;
    }
    if c.is_broken() {
        c.apply(Event::Reconnected { initial_sync_done: c.initial_sync_done }, now)?;
    }
    c.updated_at = now;
    // The new key replaces the old only now that it has passed.
    app.vault.put(&secret.0, &secret_json(&key)).await?;
    app.repo.save(&c, current.version).await?;
    // The claim follows the key (best effort: a duplicate may hold the new one).
    if let Credential::ApiKey { fingerprint: old, .. } = &current.value.credential {
        if old != &key.fingerprint {
            app.repo.release_api_key(&c.workspace_id, c.platform.as_str(), old, &c.id).await;
            app.repo.claim_api_key(&c.workspace_id, c.platform.as_str(), &key.fingerprint, &c.id, now).await.ok();
        }
    }
    if c.status == Status::InitialSyncInProgress || current.value.status != c.status {
        app.send_or_log(&SyncJob::start(&c), "sync after a key replacement").await;
    }
    super::events::status_changed(app, Some(&current.value.status), &c).await;
    tracing::info!(connection = %c.id, "api key replaced");
    Ok(c)
}
