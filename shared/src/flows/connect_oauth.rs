//! OAuth connect, by the OAuth 2.0 Security BCP (RFC 9700): single-use,
//! high-entropy state bound server side to the workspace, user, platform,
//! return origin and PKCE verifier; PKCE S256 whenever the catalog allows it
//! (never `plain`); the exact redirect URI of the deployment; allowlisted
//! return origins; a platform HTTP client that follows no redirects.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use super::{reconnect, App};
use crate::catalog::{AuthMethod, OAuthSpec, PlatformEntry};
use crate::domain::error::{Error, HttpError};
use crate::domain::ids::*;
use crate::domain::input::{check_client, check_name, ClientInput};
use crate::domain::messages::SyncJob;
use crate::domain::policy;
use crate::domain::tokens::TokenSet;
use crate::domain::*;
use crate::platform::discovery;
use crate::platform::identity::{self, IdentityError};
use crate::platform::token_client::{verify_query_hmac, Grant, TokenError};
use crate::platform::{self, Credentials};

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
    /// The authorization server the flow went to, and whether it sends
    /// `iss` with its answer (RFC 9207): checked before any token request.
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub iss_required: bool,
    /// SHA-256 of the nonce the launch put in the starting browser's cookie.
    #[serde(default)]
    pub browser_binding: Option<String>,
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

/// The answer of `start`: where the browser goes to begin (on this API's
/// own origin; it binds the flow to that browser, then sends it on to the
/// platform).
#[derive(Debug, Serialize)]
pub struct Started {
    pub launch_url: String,
    pub expires_at: DateTime<Utc>,
}

/// How long a launch URL may wait to be opened: the frontend opens it at
/// once; a link that travels (to a victim) goes stale.
pub const LAUNCH_TTL_SECONDS: i64 = 120;

/// What a launch needs, kept under the hash of its single-use token.
#[derive(Serialize, Deserialize)]
struct PendingLaunch {
    authorize_url: String,
    cookie_name: String,
    nonce: String,
    expires_at: DateTime<Utc>,
}

/// A launch as the browser gets it: a cookie, then the platform.
pub struct Launched {
    pub authorize_url: String,
    pub cookie_name: String,
    pub nonce: String,
    pub max_age_seconds: i64,
}

/// The cookie that binds a flow to its browser: one per flow (flows in two
/// tabs do not collide), named after its state.
pub fn cookie_name(state: &str) -> String {
    use sha2::Digest;
    format!("oauthflow_{}", &hex::encode(sha2::Sha256::digest(state.as_bytes()))[..16])
}

pub(super) fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `GET /v1/oauth/launch`: takes a launch once, within its time.
pub async fn launch(app: &App, token: &str) -> Result<Launched, CallbackError> {
    if token.len() < 16 || token.len() > 256 {
        return Err(CallbackError::InvalidState);
    }
    let pending: PendingLaunch = match app.repo.take_oauth_launch(token).await {
        Ok(Some(p)) => p,
        Ok(None) | Err(crate::domain::error::StoreError::Corrupt(_)) => return Err(CallbackError::InvalidState),
        Err(e) => {
            tracing::error!(error = %e, "state store unavailable in launch");
            return Err(CallbackError::PlatformUnavailable);
        }
    };
    let now = app.clock.now();
    if pending.expires_at <= now {
        return Err(CallbackError::InvalidState);
    }
    Ok(Launched {
        authorize_url: pending.authorize_url,
        cookie_name: pending.cookie_name,
        nonce: pending.nonce,
        max_age_seconds: STATE_TTL_SECONDS,
    })
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
        AuthMethod::Oauth2 | AuthMethod::Oauth1 => {
            entry.oauth.as_ref().ok_or_else(|| Error::Config(format!("{}: no oauth", entry.id)))
        }
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

/// An OAuth 2.0 authorize URL with a new state (and PKCE challenge):
/// (state, URL, PKCE verifier).
fn oauth2_authorize_url(
    app: &App,
    entry: &PlatformEntry,
    spec: &OAuthSpec,
    app_creds: &crate::platform::AppCredentials,
    params: &BTreeMap<String, String>,
) -> Result<(String, url::Url, Option<String>), Error> {
    let state = oauth2::CsrfToken::new_random_len(32);
    let (challenge, verifier) = if spec.pkce {
        let (c, v) = oauth2::PkceCodeChallenge::new_random_sha256();
        (Some(c), Some(v.secret().to_owned()))
    } else {
        (None, None)
    };

    let mut url = url::Url::parse(&platform::fill(&spec.authorize_url, params)?)
        .map_err(|_| Error::Config(format!("{}: bad authorize_url", entry.id)))?;
    {
        let mut q = url.query_pairs_mut();
        // SP-API's consent page takes the app's id, LWA the client id.
        let client_id = match &spec.authorize_client_id_field {
            Some(field) => app_creds.extra.get(field).map(|v| {
                use secrecy::ExposeSecret;
                v.expose_secret().to_owned()
            }),
            None => Some(app_creds.client_id.clone()),
        }
        .ok_or_else(|| Error::AppNotConfigured {
            platform: entry.name.clone(),
            byo: entry.credentials == crate::catalog::CredentialSource::Byo,
        })?;
        q.append_pair(&spec.client_id_param, &client_id);
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
    Ok((state.secret().to_owned(), url, verifier))
}

/// `POST /v1/connect/start`.
pub async fn start(app: &App, caller: &Caller, request: StartRequest) -> Result<Started, Error> {
    caller.require(Role::Staff)?;
    let entry = app.catalog.get(&request.platform)?;
    oauth_spec(entry)?;
    // Endpoints from the issuer's metadata where the catalog gives only it.
    let resolved = discovery::resolve(app.http.as_ref(), entry).await?;
    let (entry, spec) = (resolved.as_ref(), oauth_spec(resolved.as_ref())?);
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
    let name = check_name(&name)?;
    entry.check_params(&params)?;
    // What the parameters imply (a region's hosts and marketplace).
    entry.expand_params(&mut params);
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
    let client = check_client(request.client.as_ref())?;
    let app_creds = app.app_credentials(entry, &caller.workspace_id).await?;

    let nonce = oauth2::CsrfToken::new_random_len(32);
    let now = app.clock.now();
    let expires_at = now + Duration::seconds(STATE_TTL_SECONDS);
    let (state, url, verifier) = match entry.method {
        AuthMethod::Oauth1 => super::connect_oauth1::authorize_url(app, entry, spec, &app_creds, &params).await?,
        _ => oauth2_authorize_url(app, entry, spec, &app_creds, &params)?,
    };

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
        issuer: spec.issuer.clone(),
        iss_required: spec.iss_parameter,
        browser_binding: Some(sha256_hex(nonce.secret())),
        expires_at,
    };
    app.repo.put_oauth_state(&state, &pending, expires_at).await?;
    let launch_token = oauth2::CsrfToken::new_random_len(32);
    let launch_expires = now + Duration::seconds(LAUNCH_TTL_SECONDS);
    let launch = PendingLaunch {
        authorize_url: url.to_string(),
        cookie_name: cookie_name(&state),
        nonce: nonce.secret().to_owned(),
        expires_at: launch_expires,
    };
    app.repo.put_oauth_launch(launch_token.secret(), &launch, launch_expires).await?;
    let mut launch_url = url::Url::parse(&format!("{}/v1/oauth/launch", app.config.base_url()))
        .map_err(|_| Error::Config("PUBLIC_BASE_URL is not a URL".into()))?;
    launch_url.query_pairs_mut().append_pair("l", launch_token.secret());
    tracing::info!(platform = %entry.id, workspace = %caller.workspace_id, "oauth flow started");
    Ok(Started { launch_url: launch_url.to_string(), expires_at: launch_expires })
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
    #[error("platform_timeout")]
    PlatformTimeout,
    #[error("issuer_mismatch")]
    IssuerMismatch,
    #[error("browser_mismatch")]
    BrowserMismatch,
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
            CallbackError::PlatformTimeout => "platform_timeout",
            CallbackError::IssuerMismatch => "issuer_mismatch",
            CallbackError::BrowserMismatch => "browser_mismatch",
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
            CallbackError::PlatformTimeout => "The platform took too long to answer; nothing was saved.",
            CallbackError::IssuerMismatch => {
                "The answer did not come from the authorization server this connection was started with; nothing was sent to it."
            }
            CallbackError::BrowserMismatch => {
                "This authorization was finished in another browser than the one that started it; nothing was saved."
            }
        }
    }

    pub fn action(self) -> &'static str {
        match self {
            CallbackError::InvalidState | CallbackError::TokenExpired | CallbackError::IssuerMismatch => {
                "Start the connection again from the app."
            }
            CallbackError::BrowserMismatch => {
                "Start the connection again from the app, and approve it in the window it opens."
            }
            CallbackError::PermissionsDenied | CallbackError::InsufficientPermissions => {
                "Start again, approve every requested permission, with an account that has the required role."
            }
            CallbackError::PlatformUnavailable | CallbackError::Internal | CallbackError::PlatformTimeout => {
                "Try again in a few minutes."
            }
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
    /// On a reconnect: whether the platform said which account signed in,
    /// so that it could be checked against the one the grant belongs to.
    /// `false` when the platform gives no identity: the answer says so.
    pub account_checked: bool,
}

fn map_identity_error(e: IdentityError) -> CallbackError {
    match e {
        IdentityError::Unavailable => CallbackError::PlatformUnavailable,
        IdentityError::Forbidden => CallbackError::InsufficientPermissions,
        IdentityError::Failed => CallbackError::ConnectionTestFailed,
        IdentityError::Internal => CallbackError::Internal,
    }
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
    let pending: PendingGrant = match app.repo.take_oauth_state(state).await {
        Ok(Some(p)) => p,
        Ok(None) | Err(crate::domain::error::StoreError::Corrupt(_)) => return Err(CallbackError::InvalidState),
        Err(e) => {
            tracing::error!(error = %e, "state store unavailable in callback");
            return Err(CallbackError::PlatformUnavailable);
        }
    };
    if pending.expires_at <= app.clock.now() {
        return Err(CallbackError::InvalidState);
    }
    Ok(pending)
}

/// `GET /v1/oauth/callback`.
pub async fn callback(
    app: &App,
    query: &BTreeMap<String, String>,
    cookies: &BTreeMap<String, String>,
) -> CallbackResult {
    // OAuth 1.0a names the flow by its temporary token (`denied` when the
    // person declined).
    let state = query.get("state").or_else(|| query.get("oauth_token")).or_else(|| query.get("denied"));
    let Some(state) = state else {
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
    // The flow must end in the browser that started it (RFC 9700 §4.7.1):
    // a link minted in one workspace and approved in another person's
    // browser puts nothing anywhere.
    if let Some(binding) = &pending.browser_binding {
        let given = cookies.get(&cookie_name(state)).map(|nonce| sha256_hex(nonce));
        if given.as_ref() != Some(binding) {
            tracing::warn!(platform = %pending.platform, "oauth callback in another browser than the one that started it");
            return CallbackResult {
                return_origin: Some(pending.return_origin.clone()),
                return_to: Some(pending.return_to.clone()),
                mode: pending.mode,
                outcome: Err(CallbackError::BrowserMismatch),
            };
        }
    }
    // One deadline for every request to the platform, so the function
    // always has time left to store the grant (or to say why not).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(app.config.callback_budget_seconds);
    let outcome = complete(app, &pending, query, deadline).await;
    // What the grant reaches, asked now (within the same deadline; it can
    // be asked again on demand).
    if let Ok(c) = &outcome {
        let has_discovery = app.catalog.get(pending.platform.as_str()).is_ok_and(|e| e.discovery.is_some());
        if has_discovery {
            // No page asked for in its last two seconds: what was read is kept.
            let last_page = deadline.checked_sub(std::time::Duration::from_secs(2)).unwrap_or(deadline);
            let asked = super::accounts::discover(app, &pending.workspace_id, &c.authorization_id, last_page);
            match tokio::time::timeout_at(deadline, asked).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "accounts not discovered at connect; ask again on demand"),
                Err(_) => tracing::warn!("accounts not discovered at connect in time; ask again on demand"),
            }
        }
    }
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

/// A platform request within the callback's deadline.
pub(super) async fn within<T>(
    deadline: tokio::time::Instant,
    request: impl std::future::Future<Output = T>,
) -> Result<T, CallbackError> {
    tokio::time::timeout_at(deadline, request).await.map_err(|_| CallbackError::PlatformTimeout)
}

async fn complete(
    app: &App,
    pending: &PendingGrant,
    query: &BTreeMap<String, String>,
    deadline: tokio::time::Instant,
) -> Result<Connected, CallbackError> {
    // The answer must come from the server the flow went to (RFC 9207),
    // checked before anything else is done with it.
    if let Some(expected) = &pending.issuer {
        match query.get("iss") {
            Some(iss) if iss != expected => return Err(CallbackError::IssuerMismatch),
            None if pending.iss_required => return Err(CallbackError::IssuerMismatch),
            _ => {}
        }
    }
    let entry = app.catalog.get(pending.platform.as_str()).map_err(|_| CallbackError::Internal)?;
    let resolved =
        discovery::resolve(app.http.as_ref(), entry).await.map_err(|_| CallbackError::PlatformUnavailable)?;
    let entry = resolved.as_ref();
    if let Some(error) = query.get("error") {
        return Err(match error.as_str() {
            "access_denied" | "user_denied" | "consent_required" => CallbackError::PermissionsDenied,
            "invalid_scope" => CallbackError::InsufficientPermissions,
            "server_error" | "temporarily_unavailable" => CallbackError::PlatformUnavailable,
            _ => CallbackError::PermissionsDenied,
        });
    }
    let creds = app.app_credentials(entry, &pending.workspace_id).await.map_err(|_| CallbackError::AppNotConfigured)?;
    // Params the flow was started with must come back unchanged (Shopify `shop`).
    for (k, v) in &pending.params {
        if query.get(k).is_some_and(|given| given != v) {
            return Err(CallbackError::InvalidCallback);
        }
    }
    let granted = match entry.method {
        AuthMethod::Oauth1 => super::connect_oauth1::exchange(app, entry, creds, pending, query, deadline).await?,
        _ => {
            exchange(app, entry, creds, pending.params.clone(), query, pending.pkce_verifier.as_deref(), deadline)
                .await?
        }
    };
    let Granted { vars, account, tokens } = granted;
    if let Some(auth_id) = &pending.reconnect {
        if let (Some(expected), Some(got)) = (&pending.expected_account, &account) {
            if expected != &got.id && !pending.switch_account {
                return Err(CallbackError::AccountMismatch);
            }
        }
        // Without an identity from the platform (or a known account before)
        // the account cannot be checked: the answer says so.
        let account_checked = account.is_some() && pending.expected_account.is_some();
        if !account_checked {
            tracing::warn!(platform = %pending.platform, "reconnect: the platform names no account; not checked");
        }
        let grant = reconnect::NewTokens { vars, account, tokens };
        return reconnect::restore(app, entry, &pending.workspace_id, auth_id, grant)
            .await
            .map(|restored| Connected {
                connection_id: pending.from_connection.clone().or(restored.first_connection),
                authorization_id: auth_id.clone(),
                account_checked,
            })
            .map_err(|e| {
                tracing::error!(error = %e, "storing a reconnected authorization failed");
                CallbackError::Internal
            });
    }
    store_new(app, entry, &pending.into(), vars, account, tokens).await.map_err(|e| {
        tracing::error!(error = %e, "storing a new authorization failed");
        CallbackError::Internal
    })
}

/// What a code exchange gave: the callback's values, the account, the tokens.
pub(super) struct Granted {
    pub vars: BTreeMap<String, String>,
    pub account: Option<ExternalAccount>,
    pub tokens: TokenSet,
}

/// The callback's checks and requests, within one deadline: its HMAC where
/// the platform signs it, the code, the callback values (each whole, by its
/// pattern), the token request, the required scopes, and the identity.
pub(super) async fn exchange(
    app: &App,
    entry: &PlatformEntry,
    creds: crate::platform::AppCredentials,
    params: BTreeMap<String, String>,
    query: &BTreeMap<String, String>,
    verifier: Option<&str>,
    deadline: tokio::time::Instant,
) -> Result<Granted, CallbackError> {
    let spec = entry.oauth.as_ref().ok_or(CallbackError::Internal)?;
    if spec.callback_hmac && !verify_query_hmac(query, &creds.client_secret) {
        return Err(CallbackError::InvalidCallback);
    }
    let code = query
        .get(&spec.code_param)
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or(CallbackError::InvalidCallback)?;
    let mut vars = params;
    for name in &spec.callback_params {
        if let Some(v) = query.get(name) {
            if name != "hmac" && name != "signature" {
                // A value that reaches a URL template must be what the
                // platform sends, whole (no path, host or query tricks).
                if let Some(pattern) = spec.callback_param_patterns.get(name) {
                    let re =
                        regex_lite::Regex::new(&format!("^(?:{pattern})$")).map_err(|_| CallbackError::Internal)?;
                    if !re.is_match(v) {
                        return Err(CallbackError::InvalidCallback);
                    }
                }
                vars.insert(name.clone(), v.clone());
            }
        }
    }
    let token_client = app.token_client();
    let grant = Grant::Code { code, verifier };
    let tokens = within(deadline, token_client.request(entry, &vars, &creds, grant)).await?.map_err(map_token_error)?;
    if spec.required_scopes.iter().any(|s| !tokens.scopes.contains(s)) {
        return Err(CallbackError::InsufficientPermissions);
    }
    let id_creds = Credentials::for_grant(&tokens, Some(creds));
    // The account the callback names (SP-API's selling partner, BigCommerce's
    // store) with the name the identity request gives, else the identity's.
    let callback_account = spec
        .callback_params
        .iter()
        .find_map(|p| query.get(p).filter(|_| p == "selling_partner_id" || p == "context").cloned());
    let identified = identity::identify(app.http.as_ref(), entry, &vars, &id_creds, callback_account.as_deref());
    let account = within(deadline, identified).await?.map_err(map_identity_error)?;
    let account = account.or_else(|| callback_account.map(|id| ExternalAccount { id, name: None }));
    Ok(Granted { vars, account, tokens })
}

/// Who a new grant belongs to and what its connection is called.
pub(super) struct GrantOwner<'a> {
    pub workspace_id: &'a WorkspaceId,
    pub user_id: &'a UserId,
    pub platform: &'a PlatformId,
    pub name: &'a str,
    pub role: ConnectionRole,
    pub client: Option<&'a ClientRef>,
}

impl<'a> From<&'a PendingGrant> for GrantOwner<'a> {
    fn from(p: &'a PendingGrant) -> Self {
        Self {
            workspace_id: &p.workspace_id,
            user_id: &p.user_id,
            platform: &p.platform,
            name: &p.name,
            role: p.role,
            client: p.client.as_ref(),
        }
    }
}

/// Vault first, then the authorization and connection, then the sync job.
/// A failure after the vault write removes the secret again, so nothing is
/// left half-written.
pub(super) async fn store_new(
    app: &App,
    entry: &PlatformEntry,
    pending: &GrantOwner<'_>,
    vars: BTreeMap<String, String>,
    account: Option<ExternalAccount>,
    tokens: TokenSet,
) -> Result<Connected, Error> {
    let now = app.clock.now();
    let auth_id = AuthorizationId::generate();
    let secret = super::secrets::grant_secret(app, pending.workspace_id, &auth_id, entry).await?;
    let spec = entry.oauth.as_ref().ok_or_else(|| Error::Config("no oauth".into()))?;
    let expiry = policy::expiry_facts(spec, &tokens, now);
    let next_check = policy::next_check(spec, &expiry, now);
    let mut auth = Authorization::new(
        auth_id.clone(),
        pending.workspace_id.clone(),
        pending.platform.clone(),
        pending.name.to_owned(),
        account,
        tokens.scopes.clone(),
        vars,
        expiry,
        Some(next_check),
        secret.clone(),
        pending.user_id.clone(),
        now,
    );
    auth.apply(Event::CredentialsAccepted, now)?;
    // The access token, when renewable, goes into the item sealed.
    let (copy, sealed) = super::refresh::vault_copy(app, &auth_id, &tokens).await;
    auth.access = sealed;
    let mut connection = Connection::new(
        pending.workspace_id.clone(),
        pending.platform.clone(),
        pending.name.to_owned(),
        pending.role,
        pending.client.cloned(),
        Credential::Authorization { authorization_id: auth_id.clone() },
        entry.default_streams(),
        pending.user_id.clone(),
        now,
    );
    connection.apply(Event::CredentialsAccepted, now)?;
    let write = async {
        app.repo.create(&auth).await?;
        app.repo.create(&connection).await?;
        Ok(())
    };
    // The connection first: it points at the grant.
    let undo = async { app.repo.remove_new(&connection).await && app.repo.remove_new(&auth).await };
    app.vault_first(&secret, &copy.to_secret(), write, undo).await?;
    // If this is lost the connection stays "initial sync in progress" and
    // "sync now" starts it.
    app.send_or_log(&SyncJob::start(&connection), "initial sync").await;
    super::events::status_changed(app, None, &connection).await;
    Ok(Connected { connection_id: Some(connection.id), authorization_id: auth_id, account_checked: true })
}

impl From<HttpError> for CallbackError {
    fn from(_: HttpError) -> Self {
        CallbackError::PlatformUnavailable
    }
}
