//! The credentials a connection calls its platform with: the grant's access
//! token (with what the catalog's headers may use of the OAuth app), or the
//! API key; and the values the catalog's URL templates need (the grant's
//! and the connection's params). Used by the sync engine and the proxy.

use secrecy::SecretString;
use std::collections::BTreeMap;

use super::refresh as tokens;
use super::App;
use crate::domain::error::Error;
use crate::domain::ids::AuthorizationId;
use crate::domain::*;
use crate::platform::{api_key, Credentials};

/// What a request authenticates with.
pub enum Creds {
    OAuth { authorization: AuthorizationId, access: SecretString },
    Key(Credentials),
}

impl Creds {
    /// The values the catalog's templates may use, `extra` (the app's) last.
    pub fn as_credentials(&self, extra: &BTreeMap<String, SecretString>) -> Credentials {
        let mut values = match self {
            Creds::OAuth { access, .. } => Credentials::access_token(access).values,
            Creds::Key(c) => c.values.clone(),
        };
        for (k, v) in extra {
            values.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Credentials { values }
    }
}

/// Why there are no credentials.
pub enum CredError {
    /// The grant is disconnected.
    Lost(DisconnectReason),
    Other(Error),
}

/// A connection's credentials, its URL-template values and the app's extra
/// values.
pub async fn credentials(
    app: &App,
    c: &Connection,
) -> Result<(Creds, BTreeMap<String, String>, BTreeMap<String, SecretString>), CredError> {
    use CredError::{Lost, Other};
    let (creds, mut vars, extra) = match &c.credential {
        Credential::Authorization { authorization_id } => {
            let auth = app.repo.authorization(&c.workspace_id, authorization_id).await.map_err(Other)?.value;
            if let Status::Disconnected { reason } = auth.status {
                return Err(Lost(reason));
            }
            let tokens = match tokens::for_use(app, &auth).await.map_err(Other)? {
                // Not renewed yet: the current token is tried (a 401
                // refreshes again).
                tokens::ForUse::Ready(t) | tokens::ForUse::Expiring(t) => t,
                tokens::ForUse::Lost(reason) => return Err(Lost(reason)),
            };
            with_tokens(app, &auth, tokens).await.map_err(Other)?
        }
        Credential::ApiKey { secret, .. } => {
            let key = api_key::load_key(app.vault.as_ref(), secret).await.map_err(Other)?;
            (Creds::Key(key), BTreeMap::new(), BTreeMap::new())
        }
        Credential::FileUpload => {
            return Err(Other(Error::invalid("connection", "file connections have no platform credentials")))
        }
    };
    vars.extend(c.params.clone());
    Ok((creds, vars, extra))
}

/// A grant's credentials, its URL-template values and the app's extra values.
pub async fn of_authorization(
    app: &App,
    auth: &Authorization,
) -> Result<(Creds, BTreeMap<String, String>, BTreeMap<String, SecretString>), Error> {
    let tokens = tokens::tokens_of(app, auth).await?;
    with_tokens(app, auth, tokens).await
}

/// A grant's credentials from tokens already read.
async fn with_tokens(
    app: &App,
    auth: &Authorization,
    tokens: crate::domain::tokens::TokenSet,
) -> Result<(Creds, BTreeMap<String, String>, BTreeMap<String, SecretString>), Error> {
    let entry = app.catalog.get(auth.platform.as_str())?;
    let extra = Credentials::grant_extras(&tokens, app.app_credentials(entry, &auth.workspace_id).await.ok());
    // The authorizing account's id at the platform (Microsoft's
    // SearchAccounts asks for the accounts of that user).
    let mut vars = auth.params.clone();
    if let Some(account) = &auth.account {
        vars.insert("user_id".into(), account.id.clone());
    }
    Ok((Creds::OAuth { authorization: auth.id.clone(), access: SecretString::from(tokens.access_token) }, vars, extra))
}
