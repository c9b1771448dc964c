//! Connecting by OAuth 1.0a (RFC 5849; X Ads): the two steps that differ
//! from OAuth 2.0. Start gets temporary credentials for the exact callback
//! URL and keeps their secret in the vault until the callback; the
//! temporary token is the flow's state (single use, expiring, bound to the
//! browser by the launch, like an OAuth 2.0 state). The callback trades the
//! temporary credentials and the verifier for token credentials. The rest
//! (start's checks, the launch, storing the grant, reconnect) is
//! `connect_oauth`'s.

use std::collections::BTreeMap;

use super::connect_oauth::{sha256_hex, within, CallbackError, Granted, PendingGrant};
use super::App;
use crate::catalog::{OAuthSpec, PlatformEntry};
use crate::domain::error::{Error, HttpError};
use crate::domain::tokens::TokenSet;
use crate::domain::{ExternalAccount, SecretRef};
use crate::platform::{self, oauth1};

/// OAuth 1.0a (RFC 5849 §2.1): temporary credentials for the exact callback
/// URL, their secret to the vault until the callback, and the authorize URL
/// with the temporary token, which is the flow's state.
pub(super) async fn authorize_url(
    app: &App,
    entry: &PlatformEntry,
    spec: &OAuthSpec,
    app_creds: &crate::platform::AppCredentials,
    params: &BTreeMap<String, String>,
) -> Result<(String, url::Url, Option<String>), Error> {
    use secrecy::ExposeSecret;
    let request_url = spec
        .request_token_url
        .as_deref()
        .ok_or_else(|| Error::Config(format!("{}: an OAuth 1.0a entry needs request_token_url", entry.id)))?;
    let keys = oauth1::Keys {
        consumer_key: &app_creds.client_id,
        consumer_secret: app_creds.client_secret.expose_secret(),
        token: None,
    };
    let callback = app.config.callback_url();
    let extra = oauth1::Extra { callback: Some(&callback), version: true, ..oauth1::Extra::default() };
    let unavailable = |why: &str| Error::Http(HttpError::Other(format!("{}: {why}", entry.name)));
    let temp = match oauth1::step(app.http.as_ref(), &platform::fill(request_url, params)?, &keys, &extra).await {
        Ok(t) => t,
        Err(oauth1::StepError::Refused) => {
            return Err(Error::AppNotConfigured {
                platform: entry.name.clone(),
                byo: entry.credentials == crate::catalog::CredentialSource::Byo,
            })
        }
        Err(oauth1::StepError::Unavailable) => return Err(unavailable("no temporary credentials")),
    };
    if temp.values.get("oauth_callback_confirmed").map(String::as_str) != Some("true") {
        return Err(unavailable("the callback was not confirmed"));
    }
    let secret = SecretRef::for_oauth1_flow(&app.config.secret_prefix, &sha256_hex(&temp.token));
    app.vault.put(&secret.0, &temp.secret).await?;
    let mut url = url::Url::parse(&platform::fill(&spec.authorize_url, params)?)
        .map_err(|_| Error::Config(format!("{}: bad authorize_url", entry.id)))?;
    url.query_pairs_mut().append_pair("oauth_token", &temp.token);
    Ok((temp.token, url, None))
}

/// OAuth 1.0a (RFC 5849 §2.3): the temporary credentials (their secret
/// from the vault, once) and the verifier buy the token credentials; the
/// account is the user the platform names.
pub(super) async fn exchange(
    app: &App,
    entry: &PlatformEntry,
    creds: crate::platform::AppCredentials,
    pending: &PendingGrant,
    query: &BTreeMap<String, String>,
    deadline: tokio::time::Instant,
) -> Result<Granted, CallbackError> {
    use secrecy::ExposeSecret;
    let spec = entry.oauth.as_ref().ok_or(CallbackError::Internal)?;
    let denied = query.get("denied");
    let temp_token = denied.or_else(|| query.get("oauth_token")).ok_or(CallbackError::InvalidCallback)?;
    let secret_ref = SecretRef::for_oauth1_flow(&app.config.secret_prefix, &sha256_hex(temp_token));
    let temp_secret = app.vault.get(&secret_ref.0).await.map_err(|_| CallbackError::Internal)?;
    // Single use, whatever comes next.
    if let Err(e) = app.vault.delete(&secret_ref.0).await {
        tracing::warn!(error = %e, "a temporary OAuth 1.0a secret was not deleted");
    }
    if denied.is_some() {
        return Err(CallbackError::PermissionsDenied);
    }
    let temp_secret = temp_secret.ok_or(CallbackError::InvalidState)?;
    let verifier = query.get("oauth_verifier").filter(|v| !v.is_empty()).ok_or(CallbackError::InvalidCallback)?;
    let keys = oauth1::Keys {
        consumer_key: &creds.client_id,
        consumer_secret: creds.client_secret.expose_secret(),
        token: Some((temp_token.as_str(), temp_secret.expose_secret())),
    };
    let extra = oauth1::Extra { verifier: Some(verifier), version: true, ..oauth1::Extra::default() };
    let url = platform::fill(&spec.token_url, &pending.params).map_err(|_| CallbackError::Internal)?;
    let answered =
        within(deadline, oauth1::step(app.http.as_ref(), &url, &keys, &extra)).await?.map_err(|e| match e {
            oauth1::StepError::Refused => CallbackError::TokenExpired,
            oauth1::StepError::Unavailable => CallbackError::PlatformUnavailable,
        })?;
    let account = answered
        .values
        .get("user_id")
        .map(|id| ExternalAccount { id: id.clone(), name: answered.values.get("screen_name").cloned() });
    let tokens = TokenSet {
        access_token: answered.token,
        refresh_token: None,
        expires_at: None,
        refresh_expires_at: None,
        scopes: Vec::new(),
        obtained_at: app.clock.now(),
        token_secret: Some(answered.secret.expose_secret().to_owned()),
    };
    Ok(Granted { vars: pending.params.clone(), account, tokens })
}
