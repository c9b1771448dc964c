//! API-key connect: a key is checked with the platform's cheap validation
//! request (from the catalog) before anything is stored; a valid key goes
//! to the vault only, and the connection shows a 4-character hint.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Digest;
use std::collections::BTreeMap;

use crate::app::App;
use crate::catalog::{AuthMethod, PlatformEntry};
use crate::domain::*;
use crate::error::Error;
use crate::ids::*;
use crate::jobs::{self, SyncJob};
use crate::oauth::ClientInput;
use crate::platform::{self, Credentials};
use crate::ports::QueueKind;

/// The longest value of a key field.
pub const MAX_FIELD_LEN: usize = 512;

/// Why the platform did not accept a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    Invalid,
    InsufficientScope,
    Expired,
    /// 5xx, timeout, refused connection, redirect: retryable, never "invalid".
    PlatformUnavailable,
    RateLimited {
        retry_after: Option<u64>,
    },
    /// The platform answered 404: the store URL (or base URL) is wrong.
    NotFound,
}

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

/// A key checked against the entry: secret fields and plain params.
pub struct CheckedKey {
    pub secrets: BTreeMap<String, SecretString>,
    pub params: BTreeMap<String, String>,
    pub hint: String,
    pub fingerprint: String,
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

/// Checks the fields' presence, length and character set. Messages name
/// the field and the expected shape, never the value.
pub fn check_fields(
    entry: &PlatformEntry,
    workspace: &WorkspaceId,
    given: &BTreeMap<String, SecretString>,
) -> Result<CheckedKey, Error> {
    let spec = entry.api_key.as_ref().ok_or_else(|| Error::Config(format!("{}: no api_key", entry.id)))?;
    for name in given.keys() {
        if !spec.fields.iter().any(|f| &f.name == name) {
            return Err(Error::invalid(format!("credentials.{name}"), format!("{} takes no such field", entry.name)));
        }
    }
    let mut secrets = BTreeMap::new();
    let mut params = BTreeMap::new();
    let mut fingerprint = sha2::Sha256::new();
    fingerprint.update(entry.id.as_str().as_bytes());
    fingerprint.update(workspace.as_str().as_bytes());
    for f in &spec.fields {
        let field = format!("credentials.{}", f.name);
        let value = given.get(&f.name).ok_or_else(|| Error::invalid(&field, format!("{} is required", f.label)))?;
        let raw = value.expose_secret().trim();
        let re = regex_lite::Regex::new(&format!("^(?:{})$", f.pattern))
            .map_err(|e| Error::Config(format!("{}: {e}", entry.id)))?;
        if raw.is_empty() || raw.len() > MAX_FIELD_LEN || !re.is_match(raw) {
            return Err(Error::invalid(
                field,
                format!("does not look like a {} {}; copy it again from {}", entry.name, f.label, entry.name),
            ));
        }
        fingerprint.update([0]);
        fingerprint.update(raw.as_bytes());
        if f.secret {
            secrets.insert(f.name.clone(), SecretString::from(raw.to_owned()));
        } else {
            params.insert(f.name.clone(), raw.trim_end_matches('/').to_owned());
        }
    }
    let first = spec
        .fields
        .iter()
        .find(|f| f.secret)
        .and_then(|f| secrets.get(&f.name))
        .ok_or_else(|| Error::Config(format!("{}: no secret field", entry.id)))?;
    let chars: Vec<char> = first.expose_secret().chars().collect();
    let hint: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    Ok(CheckedKey { secrets, params, hint, fingerprint: hex::encode(fingerprint.finalize()) })
}

/// The platform's cheap validation request. Returns the account it names.
pub async fn validate(app: &App, entry: &PlatformEntry, key: &CheckedKey) -> Result<Option<ExternalAccount>, Error> {
    let spec = entry.api_key.as_ref().ok_or_else(|| Error::Config(format!("{}: no api_key", entry.id)))?;
    let url = platform::api_url(entry, &spec.validate.path, &key.params)?;
    let creds = Credentials { values: key.secrets.clone() };
    let request = platform::api_get(entry, url, &key.params, &creds)?;
    let response = match app.http.send(request).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(platform = %entry.id, error = %e, "key validation request failed");
            return Err(Error::ApiKeyRejected(KeyProblem::PlatformUnavailable));
        }
    };
    let status = response.status();
    let problem = match status.as_u16() {
        200..=299 => None,
        401 => {
            let body = String::from_utf8_lossy(response.body()).to_lowercase();
            Some(if body.contains("expired") { KeyProblem::Expired } else { KeyProblem::Invalid })
        }
        403 => Some(KeyProblem::InsufficientScope),
        404 => Some(KeyProblem::NotFound),
        429 => Some(KeyProblem::RateLimited {
            retry_after: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        }),
        _ => Some(KeyProblem::PlatformUnavailable),
    };
    if let Some(problem) = problem {
        tracing::info!(platform = %entry.id, status = status.as_u16(), ?problem, "key refused");
        return Err(Error::ApiKeyRejected(problem));
    }
    let doc: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
    if let Some(pointer) = &spec.validate.scopes_pointer {
        let granted: Vec<String> = match doc.pointer(pointer) {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
            Some(serde_json::Value::String(s)) => {
                s.split([' ', ',']).filter(|x| !x.is_empty()).map(str::to_owned).collect()
            }
            _ => Vec::new(),
        };
        if spec.required_scopes.iter().any(|s| !granted.contains(s)) {
            return Err(Error::ApiKeyRejected(KeyProblem::InsufficientScope));
        }
    }
    let id = spec.validate.account_id_pointer.as_deref().and_then(|p| platform::pointer_str(&doc, p));
    let name = spec.validate.account_name_pointer.as_deref().and_then(|p| platform::pointer_str(&doc, p));
    Ok(match (id, name) {
        (Some(id), name) => Some(ExternalAccount { id, name }),
        (None, Some(name)) => Some(ExternalAccount { id: name.clone(), name: Some(name) }),
        (None, None) => None,
    })
}

fn secret_json(key: &CheckedKey) -> SecretString {
    let map: BTreeMap<&str, &str> = key.secrets.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
    SecretString::from(serde_json::to_string(&map).expect("strings serialize"))
}

/// Reads the key fields of a connection back from the vault.
pub async fn load_key(app: &App, secret: &SecretRef) -> Result<Credentials, Error> {
    let stored = app.vault.get(&secret.0).await?.ok_or(Error::NotFound { kind: "API key" })?;
    let map: BTreeMap<String, String> = serde_json::from_str(stored.expose_secret())
        .map_err(|_| Error::Config("a stored API key is not readable".into()))?;
    Ok(Credentials { values: map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect() })
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
    let name = crate::api::check_name(&request.name)?;
    let client = match request.client {
        Some(c) => Some(ClientRef { id: ClientId::parse(&c.id)?, name: crate::api::check_name(&c.name)? }),
        None => None,
    };
    let key = check_fields(entry, &caller.workspace_id, &request.credentials)?;
    if !request.allow_duplicate {
        let existing = app.repo.list::<Connection>(&caller.workspace_id).await?.into_iter().map(|v| v.value).find(|c| {
            c.platform == entry.id && matches!(&c.credential, Credential::ApiKey { fingerprint, .. } if fingerprint == &key.fingerprint)
        });
        if let Some(connection) = existing {
            return Ok(Outcome { connection, existing: true });
        }
    }
    let account = validate(app, entry, &key).await?;
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
    let secret = SecretRef::for_owner(&app.config.secret_prefix, &caller.workspace_id, connection.id.as_str());
    connection.credential = Credential::ApiKey {
        secret: secret.clone(),
        hint: key.hint.clone(),
        last_verified_at: now,
        fingerprint: key.fingerprint.clone(),
    };
    connection.account = account;
    connection.params = key.params.clone();
    connection.apply(Event::CredentialsAccepted, now)?;
    app.vault.put(&secret.0, &secret_json(&key)).await?;
    if let Err(e) = app.repo.create(&connection).await {
        if let Err(cleanup) = app.vault.delete(&secret.0).await {
            tracing::error!(error = %cleanup, "could not remove the key of a connection that was not created");
        }
        return Err(e);
    }
    let job = SyncJob::start(&connection, SyncKind::Initial);
    if let Err(e) = jobs::enqueue(app, QueueKind::Sync, &job, 0).await {
        tracing::error!(connection = %connection.id, error = %e, "initial sync not queued");
    }
    tracing::info!(platform = %entry.id, connection = %connection.id, "api key connected");
    Ok(Outcome { connection, existing: false })
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
    let key = check_fields(entry, &caller.workspace_id, &request.credentials)?;
    let account = validate(app, entry, &key).await?;
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
    if matches!(c.status, Status::Disconnected { .. } | Status::Error { .. }) {
        c.apply(Event::Reconnected { initial_sync_done: c.initial_sync_done }, now)?;
    }
    c.updated_at = now;
    // The new key replaces the old only now that it has passed.
    app.vault.put(&secret.0, &secret_json(&key)).await?;
    app.repo.save(&c, current.version).await?;
    if c.status == Status::InitialSyncInProgress || current.value.status != c.status {
        let kind = if c.initial_sync_done { SyncKind::Incremental } else { SyncKind::Initial };
        let job = SyncJob::start(&c, kind);
        if let Err(e) = jobs::enqueue(app, QueueKind::Sync, &job, 0).await {
            tracing::error!(connection = %c.id, error = %e, "sync after a key replacement not queued");
        }
    }
    tracing::info!(connection = %c.id, "api key replaced");
    Ok(c)
}
