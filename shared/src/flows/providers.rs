//! The catalog as the API shows it, and a workspace's own OAuth app for
//! platforms where each workspace brings one (BYO): the secret goes to the
//! vault only.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::App;
use crate::catalog::{CredentialSource, PlatformEntry};
use crate::domain::error::Error;
use crate::domain::*;
use crate::platform::AppCredentials;

/// The body of `PUT /v1/providers/{id}/credentials`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCredentialsInput {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Stores a workspace's own OAuth app of a BYO platform (admin).
pub async fn store_app_credentials<'a>(
    app: &'a App,
    caller: &Caller,
    platform: &str,
    input: AppCredentialsInput,
) -> Result<&'a PlatformEntry, Error> {
    caller.require(Role::Admin)?;
    let entry = app.catalog.get(platform)?;
    if entry.credentials != CredentialSource::Byo {
        return Err(Error::invalid(
            "platform",
            format!("{} uses this deployment's own app; there is nothing to enter", entry.name),
        ));
    }
    let printable = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_graphic());
    if !printable(&input.client_id, 256) {
        return Err(Error::invalid("client_id", "must be 1 to 256 printable characters"));
    }
    if !printable(input.client_secret.expose_secret(), 1024) {
        return Err(Error::invalid("client_secret", "must be 1 to 1024 printable characters"));
    }
    let secret = AppCredentials::secret_ref(&app.config.secret_prefix, entry, &caller.workspace_id);
    AppCredentials::store(app.vault.as_ref(), &secret, &input.client_id, &input.client_secret).await?;
    Ok(entry)
}
