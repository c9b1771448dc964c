//! The tokens of a grant, as kept in the vault (JSON). `Debug` never shows
//! them; they leave the vault only as a `SecretString`.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::error::Error;

/// Tokens as kept in the vault (JSON). `Debug` never shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub obtained_at: DateTime<Utc>,
    /// OAuth 1.0a: the token's secret (the access token is `oauth_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
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
