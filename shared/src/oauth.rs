//! OAuth connect, by the OAuth 2.0 Security BCP (RFC 9700): single-use,
//! high-entropy state bound server side to the workspace, user, platform,
//! return origin and PKCE verifier; PKCE S256 whenever the catalog allows it
//! (never `plain`); the exact redirect URI of the deployment; allowlisted
//! return origins; a platform HTTP client that follows no redirects.

use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;
use std::fmt;

use crate::app::App;
use crate::catalog::{AuthMethod, ClientAuth, OAuthSpec, PlatformEntry, RefreshKind};
use crate::domain::*;
use crate::error::{Error, HttpError, StoreError};
use crate::ids::*;
use crate::jobs::{self, SyncJob};
use crate::lifecycle;
use crate::platform::{self, AppCredentials, Credentials};
use crate::ports::{Item, Precondition, QueueKind};

/// How long a started authorization may take.
pub const STATE_TTL_SECONDS: i64 = 600;

/// How the callback reports back to the frontend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnMode {
    /// An HTML page posts the result to the opener and closes.
    #[default]
    Popup,
    /// A redirect to `return_to` with the result in the query.
    Redirect,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    pub id: String,
    pub name: String,
}

/// The body of `POST /v1/connect/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub platform: String,
    /// The human name of the authorization (and of the data source);
    /// a reconnect keeps the authorization's name when this is empty.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    pub return_to: String,
    #[serde(default)]
    pub mode: ReturnMode,
    #[serde(default)]
    pub role: Option<ConnectionRole>,
    #[serde(default)]
    pub client: Option<ClientInput>,
    /// Reconnect: the same flow, bound to an existing authorization.
    #[serde(default)]
    pub reconnect: Option<ReconnectTarget>,
    /// With `reconnect`: accept another platform account than before.
    #[serde(default)]
    pub switch_account: bool,
}

/// What a reconnect repairs: an authorization, or the one a connection uses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectTarget {
    pub authorization_id: Option<String>,
    pub connection_id: Option<String>,
}

/// What `start` stores under the hash of the state, for the callback.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingGrant {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub platform: PlatformId,
    pub name: String,
    pub params: BTreeMap<String, String>,
    pub return_to: String,
    pub return_origin: String,
    pub mode: ReturnMode,
    pub role: ConnectionRole,
    pub client: Option<ClientRef>,
    /// PKCE verifier (short-lived, single use, never leaves the store).
    pub pkce_verifier: Option<String>,
    /// Reconnect: the authorization to repair, the account it must stay
    /// with (unless `switch_account`), and the connection it started from.
    #[serde(default)]
    pub reconnect: Option<AuthorizationId>,
    #[serde(default)]
    pub expected_account: Option<String>,
    #[serde(default)]
    pub switch_account: bool,
    #[serde(default)]
    pub from_connection: Option<ConnectionId>,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for PendingGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingGrant")
            .field("workspace_id", &self.workspace_id)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// The answer of `start`.
#[derive(Debug, Serialize)]
pub struct Started {
    pub authorize_url: String,
    pub expires_at: DateTime<Utc>,
}

fn state_key(state: &str) -> (String, String) {
    (format!("OAUTH#{}", hex::encode(sha2::Sha256::digest(state.as_bytes()))), "STATE".to_owned())
}

/// Checks `return_to`: an absolute http(s) URL without credentials whose
/// origin is exactly one of the allowed origins. Returns the origin.
pub fn check_return_to(app: &App, return_to: &str) -> Result<String, Error> {
    let url = url::Url::parse(return_to).map_err(|_| Error::ReturnToNotAllowed)?;
    if return_to.len() > 2048
        || !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(Error::ReturnToNotAllowed);
    }
    let origin = url.origin().ascii_serialization();
    if app.config.origin_allowed(&origin) {
        Ok(origin)
    } else {
        Err(Error::ReturnToNotAllowed)
    }
}

fn oauth_spec(entry: &PlatformEntry) -> Result<&OAuthSpec, Error> {
    match entry.method {
        AuthMethod::Oauth2 => entry.oauth.as_ref().ok_or_else(|| Error::Config(format!("{}: no oauth", entry.id))),
        AuthMethod::Oauth1 => Err(Error::UnsupportedAuthMethod { platform: entry.name.clone() }),
        other => Err(Error::WrongAuthMethod {
            platform: entry.name.clone(),
            method: if other == AuthMethod::ApiKey {
                "OAuth (it takes an API key)"
            } else {
                "OAuth (it takes file uploads)"
            },
        }),
    }
}

/// `POST /v1/connect/start`.
pub async fn start(app: &App, caller: &Caller, request: StartRequest) -> Result<Started, Error> {
    caller.require(Role::Staff)?;
    let entry = app.catalog.get(&request.platform)?;
    let spec = oauth_spec(entry)?;
    // A reconnect is bound to an authorization of the caller's workspace.
    let mut params = request.params.clone();
    let mut name = request.name.clone();
    let (mut reconnect, mut expected_account, mut from_connection) = (None, None, None);
    if let Some(target) = &request.reconnect {
        let auth_id = match (&target.authorization_id, &target.connection_id) {
            (Some(a), _) => AuthorizationId::parse(a)?,
            (None, Some(c)) => {
                let c = app.repo.connection(&caller.workspace_id, &ConnectionId::parse(c)?).await?.value;
                from_connection = Some(c.id.clone());
                c.authorization_id().cloned().ok_or_else(|| {
                    Error::invalid(
                        "reconnect.connection_id",
                        "this connection does not use OAuth; replace its key instead",
                    )
                })?
            }
            (None, None) => return Err(Error::invalid("reconnect", "name an authorization_id or a connection_id")),
        };
        let auth = app.repo.authorization(&caller.workspace_id, &auth_id).await?.value;
        if auth.platform != entry.id {
            return Err(Error::invalid("platform", format!("the authorization is for {}", auth.platform)));
        }
        if params.is_empty() {
            params = auth
                .params
                .iter()
                .filter(|(k, _)| entry.params.iter().any(|p| &p.name == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        if name.trim().is_empty() {
            name = auth.name.clone();
        }
        expected_account = auth.account.as_ref().map(|a| a.id.clone());
        reconnect = Some(auth.id);
    }
    let name = crate::api::check_name(&name)?;
    entry.check_params(&params)?;
    let return_origin = check_return_to(app, &request.return_to)?;
    let role = request.role.unwrap_or(ConnectionRole::Source);
    if !entry.roles.contains(&role) {
        return Err(Error::invalid(
            "role",
            format!(
                "{} cannot be a {}",
                entry.name,
                if role == ConnectionRole::Source { "data source" } else { "destination" }
            ),
        ));
    }
    let client = match request.client {
        Some(c) => Some(ClientRef { id: ClientId::parse(&c.id)?, name: crate::api::check_name(&c.name)? }),
        None => None,
    };
    let app_creds = AppCredentials::load(app, entry, &caller.workspace_id).await?;

    let state = oauth2::CsrfToken::new_random_len(32);
    let (challenge, verifier) = if spec.pkce {
        let (c, v) = oauth2::PkceCodeChallenge::new_random_sha256();
        (Some(c), Some(v.secret().to_owned()))
    } else {
        (None, None)
    };
    let now = app.clock.now();
    let expires_at = now + Duration::seconds(STATE_TTL_SECONDS);

    let mut url = url::Url::parse(&platform::fill(&spec.authorize_url, &params)?)
        .map_err(|_| Error::Config(format!("{}: bad authorize_url", entry.id)))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair(&spec.client_id_param, &app_creds.client_id);
        q.append_pair("redirect_uri", &app.config.callback_url());
        q.append_pair("state", state.secret());
        if !spec.extra_authorize_params.contains_key("response_type") {
            q.append_pair("response_type", "code");
        }
        if !spec.default_scopes.is_empty() {
            q.append_pair("scope", &spec.default_scopes.join(&spec.scope_separator));
        }
        if let Some(c) = &challenge {
            q.append_pair("code_challenge", c.as_str());
            q.append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &spec.extra_authorize_params {
            q.append_pair(k, v);
        }
    }

    let pending = PendingGrant {
        workspace_id: caller.workspace_id.clone(),
        user_id: caller.user_id.clone(),
        platform: entry.id.clone(),
        name,
        params,
        return_to: request.return_to,
        return_origin,
        mode: request.mode,
        role,
        client,
        pkce_verifier: verifier,
        reconnect,
        expected_account,
        switch_account: request.switch_account,
        from_connection,
        expires_at,
    };
    let (pk, sk) = state_key(state.secret());
    let item = Item {
        pk,
        sk,
        version: 1,
        body: serde_json::to_value(&pending).map_err(|e| Error::Config(e.to_string()))?,
        due: None,
        expires_at: Some(expires_at.timestamp()),
    };
    app.repo.store().put(&item, Precondition::Absent).await?;
    tracing::info!(platform = %entry.id, workspace = %caller.workspace_id, "oauth flow started");
    Ok(Started { authorize_url: url.to_string(), expires_at })
}

// ------------------------------------------------------------------ callback

/// Why a callback failed, in the codes the help center's troubleshooting
/// uses. Never carries a token or code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("invalid_state")]
    InvalidState,
    #[error("permissions_denied")]
    PermissionsDenied,
    #[error("insufficient_permissions")]
    InsufficientPermissions,
    #[error("token_expired")]
    TokenExpired,
    #[error("platform_unavailable")]
    PlatformUnavailable,
    #[error("invalid_callback")]
    InvalidCallback,
    #[error("app_not_configured")]
    AppNotConfigured,
    #[error("connection_test_failed")]
    ConnectionTestFailed,
    #[error("account_mismatch")]
    AccountMismatch,
    #[error("internal_error")]
    Internal,
}

impl CallbackError {
    pub fn code(self) -> &'static str {
        match self {
            CallbackError::InvalidState => "invalid_state",
            CallbackError::PermissionsDenied => "permissions_denied",
            CallbackError::InsufficientPermissions => "insufficient_permissions",
            CallbackError::TokenExpired => "token_expired",
            CallbackError::PlatformUnavailable => "platform_unavailable",
            CallbackError::InvalidCallback => "invalid_callback",
            CallbackError::AppNotConfigured => "app_not_configured",
            CallbackError::ConnectionTestFailed => "connection_test_failed",
            CallbackError::AccountMismatch => "account_mismatch",
            CallbackError::Internal => "internal_error",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CallbackError::InvalidState => "This authorization link is invalid, expired or was already used.",
            CallbackError::PermissionsDenied => "The authorization was declined on the platform.",
            CallbackError::InsufficientPermissions => {
                "Not every requested permission was granted, or the account lacks the required role."
            }
            CallbackError::TokenExpired => "The authorization expired before it could be completed.",
            CallbackError::PlatformUnavailable => "The platform could not be reached or answered with an error.",
            CallbackError::InvalidCallback => "The platform's answer could not be verified.",
            CallbackError::AppNotConfigured => "The app credentials for this platform are missing or were rejected.",
            CallbackError::ConnectionTestFailed => "The connection test with the new authorization failed.",
            CallbackError::AccountMismatch => {
                "You signed in with another account than the one this authorization belongs to; nothing was changed."
            }
            CallbackError::Internal => "Something went wrong on our side; nothing was saved.",
        }
    }

    pub fn action(self) -> &'static str {
        match self {
            CallbackError::InvalidState | CallbackError::TokenExpired => "Start the connection again from the app.",
            CallbackError::PermissionsDenied | CallbackError::InsufficientPermissions => {
                "Start again, approve every requested permission, with an account that has the required role."
            }
            CallbackError::PlatformUnavailable | CallbackError::Internal => "Try again in a few minutes.",
            CallbackError::InvalidCallback => "Start the connection again; if it keeps failing, contact support.",
            CallbackError::AppNotConfigured => "Ask an admin to check the platform's app credentials.",
            CallbackError::AccountMismatch => {
                "Sign in to the platform with the account you used before, or reconnect choosing to switch accounts."
            }
            CallbackError::ConnectionTestFailed => {
                "Check that the account has the required role on the platform, then start again."
            }
        }
    }
}

/// What the callback did; rendered as a page or a redirect by the API.
#[derive(Clone, Debug)]
pub struct CallbackResult {
    /// Known when the state was valid.
    pub return_origin: Option<String>,
    pub return_to: Option<String>,
    pub mode: ReturnMode,
    pub outcome: Result<Connected, CallbackError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The connection the flow created or started from (none when a
    /// reconnected grant has no connection yet).
    pub connection_id: Option<ConnectionId>,
    pub authorization_id: AuthorizationId,
}

/// Tokens as kept in the vault (JSON). `Debug` never shows them.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub obtained_at: DateTime<Utc>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

impl TokenSet {
    pub fn to_secret(&self) -> SecretString {
        SecretString::from(serde_json::to_string(self).expect("tokens serialize"))
    }

    pub fn from_secret(secret: &SecretString) -> Result<Self, Error> {
        serde_json::from_str(secret.expose_secret()).map_err(|_| Error::Config("stored tokens are not readable".into()))
    }
}

/// What the token endpoint said.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// `invalid_grant`: the code or refresh token is expired, used or revoked.
    InvalidGrant,
    /// The app credentials were rejected.
    InvalidClient,
    /// `invalid_scope` or a consent problem.
    Scope,
    /// 5xx, 429, timeout, refused connection, a redirect (never followed).
    Unavailable,
    /// 2xx without a usable token.
    Malformed,
}

/// The grants the token endpoint takes.
pub enum Grant<'a> {
    Code { code: &'a str, verifier: Option<&'a str> },
    Refresh { refresh_token: &'a str },
}

fn expires_in(v: &serde_json::Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
}

fn scopes_of(v: &serde_json::Value) -> Option<Vec<String>> {
    match v.get("scope")? {
        serde_json::Value::String(s) => {
            Some(s.split([' ', ',']).filter(|x| !x.is_empty()).map(str::to_owned).collect())
        }
        serde_json::Value::Array(a) => Some(a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()),
        _ => None,
    }
}

/// Reads a token response: the body (or the object at the entry's
/// `token_pointer`) must carry an `access_token`.
fn parse_tokens(
    spec: &OAuthSpec,
    body: &[u8],
    now: DateTime<Utc>,
    requested: &[String],
) -> Result<TokenSet, TokenError> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| TokenError::Malformed)?;
    // TikTok answers 200 with a non-zero `code` on errors.
    if doc.get("code").and_then(|c| c.as_i64()).is_some_and(|c| c != 0) {
        return Err(TokenError::InvalidGrant);
    }
    let v = match &spec.token_pointer {
        Some(p) => doc.pointer(p).ok_or(TokenError::Malformed)?,
        None => &doc,
    };
    let access_token =
        v.get("access_token").and_then(|t| t.as_str()).filter(|t| !t.is_empty()).ok_or(TokenError::Malformed)?;
    let expires_at = expires_in(v, "expires_in")
        .or(spec.token_lifetime_seconds.map(|s| s as i64))
        .map(|s| now + Duration::seconds(s));
    let refresh_expires_at = expires_in(v, "refresh_token_expires_in")
        .map(|s| now + Duration::seconds(s))
        .or(spec.refresh.refresh_token_days.map(|d| now + Duration::days(d.into())));
    Ok(TokenSet {
        access_token: access_token.to_owned(),
        refresh_token: v.get("refresh_token").and_then(|t| t.as_str()).map(str::to_owned),
        expires_at,
        refresh_expires_at,
        // No scope in the answer: the requested ones were granted.
        scopes: scopes_of(v).unwrap_or_else(|| requested.to_vec()),
        obtained_at: now,
    })
}

fn classify_error_body(status: http::StatusCode, body: &[u8]) -> TokenError {
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS || status.is_redirection() {
        return TokenError::Unavailable;
    }
    let error = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_default();
    match error.as_str() {
        "invalid_client" | "unauthorized_client" => TokenError::InvalidClient,
        "invalid_scope" | "access_denied" => TokenError::Scope,
        _ if status == http::StatusCode::UNAUTHORIZED && error.is_empty() => TokenError::InvalidClient,
        _ => TokenError::InvalidGrant,
    }
}

/// One request to the token endpoint, as the entry describes it.
pub async fn token_request(
    app: &App,
    entry: &PlatformEntry,
    vars: &BTreeMap<String, String>,
    creds: &AppCredentials,
    grant: Grant<'_>,
) -> Result<TokenSet, TokenError> {
    let spec = entry.oauth.as_ref().ok_or(TokenError::Malformed)?;
    let url = platform::fill(&spec.token_url, vars).map_err(|_| TokenError::Malformed)?;
    let mut fields: Vec<(String, String)> = Vec::new();
    let is_code_grant = matches!(grant, Grant::Code { .. });
    match grant {
        Grant::Code { code, verifier } => {
            fields.push(("grant_type".into(), "authorization_code".into()));
            let code_field =
                if spec.client_auth == ClientAuth::JsonBody { spec.code_param.clone() } else { "code".into() };
            fields.push((code_field, code.into()));
            fields.push(("redirect_uri".into(), app.config.callback_url()));
            if let Some(v) = verifier {
                fields.push(("code_verifier".into(), v.into()));
            }
        }
        Grant::Refresh { refresh_token } => {
            fields.push(("grant_type".into(), "refresh_token".into()));
            fields.push(("refresh_token".into(), refresh_token.into()));
        }
    }
    for (k, v) in &spec.extra_token_params {
        fields.push((k.clone(), v.clone()));
    }
    let mut req = http::Request::builder().method(http::Method::POST).uri(&url).header("accept", "application/json");
    if spec.client_auth == ClientAuth::Basic {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            creds.client_id,
            creds.client_secret.expose_secret()
        ));
        let mut v = http::HeaderValue::from_str(&format!("Basic {pair}")).map_err(|_| TokenError::InvalidClient)?;
        v.set_sensitive(true);
        req = req.header("authorization", v);
    } else {
        fields.push((spec.client_id_param.clone(), creds.client_id.clone()));
        fields.push((spec.client_secret_param.clone(), creds.client_secret.expose_secret().to_owned()));
    }
    let body = if spec.client_auth == ClientAuth::JsonBody {
        req = req.header("content-type", "application/json");
        let map: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        serde_json::Value::Object(map).to_string()
    } else {
        req = req.header("content-type", "application/x-www-form-urlencoded");
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
    };
    let req = req.body(bytes::Bytes::from(body)).map_err(|_| TokenError::Malformed)?;
    let now = app.clock.now();
    let response = app.http.send(req).await.map_err(|e| {
        tracing::warn!(platform = %entry.id, error = %e, "token endpoint unreachable");
        TokenError::Unavailable
    })?;
    if !response.status().is_success() {
        let e = classify_error_body(response.status(), response.body());
        tracing::warn!(platform = %entry.id, status = response.status().as_u16(), error = ?e, "token endpoint refused");
        return Err(e);
    }
    let mut tokens = parse_tokens(spec, response.body(), now, &spec.default_scopes)?;
    if spec.refresh.kind == RefreshKind::LongLivedExchange && is_code_grant {
        tokens = long_lived_exchange(app, entry, spec, vars, creds, &tokens).await?;
    }
    Ok(tokens)
}

/// Meta: swap the short-lived token for the long-lived one.
async fn long_lived_exchange(
    app: &App,
    entry: &PlatformEntry,
    spec: &OAuthSpec,
    vars: &BTreeMap<String, String>,
    creds: &AppCredentials,
    short: &TokenSet,
) -> Result<TokenSet, TokenError> {
    let mut url = url::Url::parse(&platform::fill(&spec.token_url, vars).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    url.query_pairs_mut()
        .append_pair("grant_type", "fb_exchange_token")
        .append_pair(&spec.client_id_param, &creds.client_id)
        .append_pair(&spec.client_secret_param, creds.client_secret.expose_secret())
        .append_pair("fb_exchange_token", &short.access_token);
    let req = http::Request::builder()
        .method(http::Method::GET)
        .uri(url.as_str())
        .body(bytes::Bytes::new())
        .map_err(|_| TokenError::Malformed)?;
    let now = app.clock.now();
    let response = app.http.send(req).await.map_err(|_| TokenError::Unavailable)?;
    if !response.status().is_success() {
        return Err(classify_error_body(response.status(), response.body()));
    }
    let mut long = parse_tokens(spec, response.body(), now, &short.scopes)?;
    if long.expires_at.is_none() || long.expires_at == short.expires_at {
        long.expires_at = spec.refresh.long_lived_seconds.map(|s| now + Duration::seconds(s as i64));
    }
    long.scopes = short.scopes.clone();
    tracing::info!(platform = %entry.id, "short-lived token exchanged for a long-lived one");
    Ok(long)
}

/// Verifies Shopify's callback HMAC: SHA-256 HMAC, keyed by the client
/// secret, of the other query parameters sorted and joined as `k=v&...`.
pub fn verify_query_hmac(query: &BTreeMap<String, String>, secret: &SecretString) -> bool {
    let Some(given) = query.get("hmac").and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    let message = query
        .iter()
        .filter(|(k, _)| k.as_str() != "hmac" && k.as_str() != "signature")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(message.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The identity of the granted account, which doubles as the connection test.
async fn identify(
    app: &App,
    entry: &PlatformEntry,
    vars: &BTreeMap<String, String>,
    creds: &AppCredentials,
    tokens: &TokenSet,
) -> Result<Option<ExternalAccount>, CallbackError> {
    let Some(spec) = &entry.identity else {
        return Ok(None);
    };
    let url = platform::api_url(entry, &spec.path, vars).map_err(|_| CallbackError::Internal)?;
    let mut c = Credentials::access_token(&SecretString::from(tokens.access_token.clone()));
    for (k, v) in &creds.extra {
        c.values.insert(k.clone(), v.clone());
    }
    c.values.insert("client_id".into(), SecretString::from(creds.client_id.clone()));
    let request = platform::api_get(entry, url, vars, &c).map_err(|_| CallbackError::Internal)?;
    let response = app.http.send(request).await.map_err(|e| {
        tracing::warn!(platform = %entry.id, error = %e, "identity request failed");
        CallbackError::PlatformUnavailable
    })?;
    let status = response.status();
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS || status.is_redirection() {
        return Err(CallbackError::PlatformUnavailable);
    }
    if status == http::StatusCode::FORBIDDEN {
        return Err(CallbackError::InsufficientPermissions);
    }
    if !status.is_success() {
        return Err(CallbackError::ConnectionTestFailed);
    }
    let doc: serde_json::Value =
        serde_json::from_slice(response.body()).map_err(|_| CallbackError::ConnectionTestFailed)?;
    let id = spec.account_id_pointer.as_deref().and_then(|p| platform::pointer_str(&doc, p));
    let name = spec.account_name_pointer.as_deref().and_then(|p| platform::pointer_str(&doc, p));
    Ok(id.map(|id| ExternalAccount { id, name }))
}

fn map_token_error(e: TokenError) -> CallbackError {
    match e {
        TokenError::InvalidGrant => CallbackError::TokenExpired,
        TokenError::InvalidClient => CallbackError::AppNotConfigured,
        TokenError::Scope => CallbackError::InsufficientPermissions,
        TokenError::Unavailable | TokenError::Malformed => CallbackError::PlatformUnavailable,
    }
}

/// Takes the pending grant of a state: atomically deleted (single use),
/// and refused when expired.
async fn take_state(app: &App, state: &str) -> Result<PendingGrant, CallbackError> {
    if state.len() < 16 || state.len() > 256 {
        return Err(CallbackError::InvalidState);
    }
    let (pk, sk) = state_key(state);
    let item = match app.repo.store().delete(&pk, &sk, Precondition::Exists).await {
        Ok(Some(item)) => item,
        Ok(None) | Err(StoreError::ConditionFailed) => return Err(CallbackError::InvalidState),
        Err(e) => {
            tracing::error!(error = %e, "state store unavailable in callback");
            return Err(CallbackError::PlatformUnavailable);
        }
    };
    let pending: PendingGrant = serde_json::from_value(item.body).map_err(|_| CallbackError::InvalidState)?;
    if pending.expires_at <= app.clock.now() {
        return Err(CallbackError::InvalidState);
    }
    Ok(pending)
}

/// `GET /v1/oauth/callback`.
pub async fn callback(app: &App, query: &BTreeMap<String, String>) -> CallbackResult {
    let Some(state) = query.get("state") else {
        return CallbackResult {
            return_origin: None,
            return_to: None,
            mode: ReturnMode::Popup,
            outcome: Err(CallbackError::InvalidState),
        };
    };
    let pending = match take_state(app, state).await {
        Ok(p) => p,
        Err(e) => {
            return CallbackResult { return_origin: None, return_to: None, mode: ReturnMode::Popup, outcome: Err(e) }
        }
    };
    let outcome = complete(app, &pending, query).await;
    match &outcome {
        Ok(c) => {
            tracing::info!(platform = %pending.platform, connection = ?c.connection_id, reconnect = pending.reconnect.is_some(), "oauth connected")
        }
        Err(e) => {
            tracing::warn!(platform = %pending.platform, code = e.code(), "oauth callback failed")
        }
    }
    CallbackResult {
        return_origin: Some(pending.return_origin.clone()),
        return_to: Some(pending.return_to.clone()),
        mode: pending.mode,
        outcome,
    }
}

async fn complete(
    app: &App,
    pending: &PendingGrant,
    query: &BTreeMap<String, String>,
) -> Result<Connected, CallbackError> {
    let entry = app.catalog.get(pending.platform.as_str()).map_err(|_| CallbackError::Internal)?;
    let spec = entry.oauth.as_ref().ok_or(CallbackError::Internal)?;
    if let Some(error) = query.get("error") {
        return Err(match error.as_str() {
            "access_denied" | "user_denied" | "consent_required" => CallbackError::PermissionsDenied,
            "invalid_scope" => CallbackError::InsufficientPermissions,
            "server_error" | "temporarily_unavailable" => CallbackError::PlatformUnavailable,
            _ => CallbackError::PermissionsDenied,
        });
    }
    let creds =
        AppCredentials::load(app, entry, &pending.workspace_id).await.map_err(|_| CallbackError::AppNotConfigured)?;
    if spec.callback_hmac && !verify_query_hmac(query, &creds.client_secret) {
        return Err(CallbackError::InvalidCallback);
    }
    // Params the flow was started with must come back unchanged (Shopify `shop`).
    for (k, v) in &pending.params {
        if query.get(k).is_some_and(|given| given != v) {
            return Err(CallbackError::InvalidCallback);
        }
    }
    let code = query
        .get(&spec.code_param)
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or(CallbackError::InvalidCallback)?;
    let mut vars = pending.params.clone();
    for name in &spec.callback_params {
        if let Some(v) = query.get(name) {
            if name != "hmac" && name != "signature" {
                vars.insert(name.clone(), v.clone());
            }
        }
    }
    let tokens =
        token_request(app, entry, &vars, &creds, Grant::Code { code, verifier: pending.pkce_verifier.as_deref() })
            .await
            .map_err(map_token_error)?;
    if spec.required_scopes.iter().any(|s| !tokens.scopes.contains(s)) {
        return Err(CallbackError::InsufficientPermissions);
    }
    let account = identify(app, entry, &vars, &creds, &tokens).await?;
    let account = account.or_else(|| {
        spec.callback_params.iter().find_map(|p| {
            query
                .get(p)
                .filter(|_| p == "selling_partner_id" || p == "context")
                .map(|id| ExternalAccount { id: id.clone(), name: None })
        })
    });
    if let Some(auth_id) = &pending.reconnect {
        if let (Some(expected), Some(got)) = (&pending.expected_account, &account) {
            if expected != &got.id && !pending.switch_account {
                return Err(CallbackError::AccountMismatch);
            }
        }
        return store_reconnect(app, entry, pending, auth_id, vars, account, tokens).await.map_err(|e| {
            tracing::error!(error = %e, "storing a reconnected authorization failed");
            CallbackError::Internal
        });
    }
    store_new(app, entry, pending, vars, account, tokens).await.map_err(|e| {
        tracing::error!(error = %e, "storing a new authorization failed");
        CallbackError::Internal
    })
}

/// Vault first, then the authorization and connection, then the sync job.
/// A failure after the vault write removes the secret again, so nothing is
/// left half-written.
async fn store_new(
    app: &App,
    entry: &PlatformEntry,
    pending: &PendingGrant,
    vars: BTreeMap<String, String>,
    account: Option<ExternalAccount>,
    tokens: TokenSet,
) -> Result<Connected, Error> {
    let now = app.clock.now();
    let auth_id = AuthorizationId::generate();
    let secret = SecretRef::for_owner(&app.config.secret_prefix, &pending.workspace_id, auth_id.as_str());
    app.vault.put(&secret.0, &tokens.to_secret()).await?;
    let result = async {
        let spec = entry.oauth.as_ref().ok_or_else(|| Error::Config("no oauth".into()))?;
        let expiry = lifecycle::expiry_facts(spec, &tokens, now);
        let mut auth = Authorization {
            id: auth_id.clone(),
            workspace_id: pending.workspace_id.clone(),
            platform: pending.platform.clone(),
            name: pending.name.clone(),
            account,
            scopes: tokens.scopes.clone(),
            params: vars,
            status: Status::PendingAuthorization,
            next_check_at: Some(lifecycle::next_check(spec, &expiry, now)),
            expiry,
            secret: secret.clone(),
            created_by: pending.user_id.clone(),
            created_at: now,
            updated_at: now,
            last_refreshed_at: Some(now),
            refresh_failures: 0,
            refresh_lease: None,
            expiring_alert_at: None,
        };
        auth.apply(Event::CredentialsAccepted, now)?;
        let mut connection = Connection::new(
            pending.workspace_id.clone(),
            pending.platform.clone(),
            pending.name.clone(),
            pending.role,
            pending.client.clone(),
            Credential::Authorization { authorization_id: auth_id.clone() },
            entry.default_streams(),
            pending.user_id.clone(),
            now,
        );
        connection.apply(Event::CredentialsAccepted, now)?;
        app.repo.create(&auth).await?;
        if let Err(e) = app.repo.create(&connection).await {
            let _ = app.repo.delete(&auth, 1).await;
            return Err(e);
        }
        Ok(connection)
    }
    .await;
    let connection = match result {
        Ok(c) => c,
        Err(e) => {
            if let Err(cleanup) = app.vault.delete(&secret.0).await {
                tracing::error!(error = %cleanup, "could not remove the secret of a failed authorization");
            }
            return Err(e);
        }
    };
    let job = SyncJob::start(&connection, SyncKind::Initial);
    if let Err(e) = jobs::enqueue(app, QueueKind::Sync, &job, 0).await {
        // The connection stays "initial sync in progress"; the sweep
        // re-queues initial syncs that never started.
        tracing::error!(connection = %connection.id, error = %e, "initial sync not queued");
    }
    Ok(Connected { connection_id: Some(connection.id), authorization_id: auth_id })
}

/// A reconnect: new tokens for the same authorization; every connection
/// that uses it is restored, resumes from its cursors, and its incidents
/// close.
async fn store_reconnect(
    app: &App,
    entry: &PlatformEntry,
    pending: &PendingGrant,
    auth_id: &AuthorizationId,
    vars: BTreeMap<String, String>,
    account: Option<ExternalAccount>,
    tokens: TokenSet,
) -> Result<Connected, Error> {
    let ws = &pending.workspace_id;
    let spec = entry.oauth.as_ref().ok_or_else(|| Error::Config("no oauth".into()))?;
    let secret = app.repo.authorization(ws, auth_id).await?.value.secret;
    // The new tokens replace the old (a new version of the same secret).
    app.vault.put(&secret.0, &tokens.to_secret()).await?;
    for attempt in 0..5 {
        let current = app.repo.authorization(ws, auth_id).await?;
        let now = app.clock.now();
        let mut a = current.value;
        a.apply(Event::Reconnected { initial_sync_done: true }, now)?;
        a.expiry = lifecycle::expiry_facts(spec, &tokens, now);
        a.next_check_at = Some(lifecycle::next_check(spec, &a.expiry, now));
        a.scopes = tokens.scopes.clone();
        a.params.extend(vars.clone());
        if account.is_some() {
            a.account = account.clone();
        }
        a.last_refreshed_at = Some(now);
        a.refresh_lease = None;
        a.expiring_alert_at = None;
        match app.repo.save(&a, current.version).await {
            Ok(_) => break,
            Err(Error::Conflict { .. }) if attempt < 4 => continue,
            Err(e) => return Err(e),
        }
    }
    let mut first = None;
    for c in app.repo.list::<Connection>(ws).await?.into_iter().filter(|c| c.value.authorization_id() == Some(auth_id))
    {
        let mut conn = c.value;
        first.get_or_insert(conn.id.clone());
        if matches!(conn.status, Status::Disconnected { .. } | Status::Error { .. }) {
            conn.apply(Event::Reconnected { initial_sync_done: conn.initial_sync_done }, app.clock.now())?;
            if app.repo.save(&conn, c.version).await.is_ok() {
                // A run the disconnection interrupted continues from its saved
                // page; otherwise a new run starts from the cursors.
                let job = match &conn.running {
                    Some(run) => SyncJob::Sync {
                        workspace_id: conn.workspace_id.clone(),
                        connection_id: conn.id.clone(),
                        kind: run.kind,
                        run_id: Some(run.id.clone()),
                    },
                    None => {
                        let kind = if conn.initial_sync_done { SyncKind::Incremental } else { SyncKind::Initial };
                        SyncJob::start(&conn, kind)
                    }
                };
                let _ = jobs::enqueue(app, QueueKind::Sync, &job, 0).await;
                let recovered =
                    jobs::AlertEvent::Recovered { workspace_id: ws.clone(), connection_id: conn.id.clone() };
                let _ = jobs::enqueue(app, QueueKind::Notify, &recovered, 0).await;
            }
        }
    }
    let recovered =
        jobs::AlertEvent::AuthorizationRecovered { workspace_id: ws.clone(), authorization_id: auth_id.clone() };
    let _ = jobs::enqueue(app, QueueKind::Notify, &recovered, 0).await;
    Ok(Connected { connection_id: pending.from_connection.clone().or(first), authorization_id: auth_id.clone() })
}

impl From<HttpError> for CallbackError {
    fn from(_: HttpError) -> Self {
        CallbackError::PlatformUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_hmac_is_checked_over_the_sorted_query() {
        let secret = SecretString::from("hush".to_owned());
        let mut q = BTreeMap::from([
            ("code".to_owned(), "abc".to_owned()),
            ("shop".to_owned(), "a.myshopify.com".to_owned()),
            ("state".to_owned(), "s".to_owned()),
            ("timestamp".to_owned(), "1700000000".to_owned()),
        ]);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hush").unwrap();
        mac.update(b"code=abc&shop=a.myshopify.com&state=s&timestamp=1700000000");
        q.insert("hmac".into(), hex::encode(mac.finalize().into_bytes()));
        assert!(verify_query_hmac(&q, &secret));
        q.insert("shop".into(), "evil.myshopify.com".into());
        assert!(!verify_query_hmac(&q, &secret));
        q.remove("hmac");
        assert!(!verify_query_hmac(&q, &secret));
    }

    #[test]
    fn token_errors_are_classified() {
        use http::StatusCode as S;
        assert_eq!(classify_error_body(S::BAD_REQUEST, br#"{"error":"invalid_grant"}"#), TokenError::InvalidGrant);
        assert_eq!(classify_error_body(S::UNAUTHORIZED, br#"{"error":"invalid_client"}"#), TokenError::InvalidClient);
        assert_eq!(classify_error_body(S::INTERNAL_SERVER_ERROR, b"oops"), TokenError::Unavailable);
        assert_eq!(classify_error_body(S::FOUND, b""), TokenError::Unavailable);
        assert_eq!(classify_error_body(S::TOO_MANY_REQUESTS, b""), TokenError::Unavailable);
    }
}
