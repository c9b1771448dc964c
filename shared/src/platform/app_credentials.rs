//! The OAuth app of a platform: the deployment's, or a workspace's own
//! (BYO). Kept in the vault as `{client_id, client_secret, ...}`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::catalog::{CredentialSource, PlatformEntry};
use crate::domain::error::Error;
use crate::domain::ids::WorkspaceId;
use crate::domain::SecretRef;
use crate::ports::SecretVault;

/// An OAuth app: the deployment's, or a workspace's own (BYO).
#[derive(Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Further values the catalog's headers may use (`developer_token`).
    pub extra: BTreeMap<String, SecretString>,
}

#[derive(Deserialize)]
struct StoredApp {
    client_id: String,
    client_secret: String,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

impl AppCredentials {
    /// Where the app credentials of a platform live for a workspace.
    pub fn secret_ref(prefix: &str, entry: &PlatformEntry, workspace: &WorkspaceId) -> SecretRef {
        match entry.credentials {
            CredentialSource::Preconfigured => SecretRef::for_app(prefix, entry.id.as_str()),
            CredentialSource::Byo => SecretRef::for_workspace_app(prefix, workspace, entry.id.as_str()),
        }
    }

    /// The app of a platform for a workspace, from the vault.
    pub async fn load(
        vault: &dyn SecretVault,
        prefix: &str,
        entry: &PlatformEntry,
        workspace: &WorkspaceId,
    ) -> Result<Self, Error> {
        Self::load_at(vault, &Self::secret_ref(prefix, entry, workspace), entry).await
    }

    /// The deployment's own app of a platform (installs the platform starts
    /// arrive before any workspace).
    pub async fn load_deployment(vault: &dyn SecretVault, prefix: &str, entry: &PlatformEntry) -> Result<Self, Error> {
        Self::load_at(vault, &SecretRef::for_app(prefix, entry.id.as_str()), entry).await
    }

    async fn load_at(vault: &dyn SecretVault, secret: &SecretRef, entry: &PlatformEntry) -> Result<Self, Error> {
        let stored = vault.get(&secret.0).await?.ok_or(Error::AppNotConfigured {
            platform: entry.name.clone(),
            byo: entry.credentials == CredentialSource::Byo,
        })?;
        let parsed: StoredApp = serde_json::from_str(stored.expose_secret()).map_err(|_| {
            Error::Config(format!("the app credentials of {} are not {{client_id, client_secret}}", entry.id))
        })?;
        let extra = parsed
            .extra
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, SecretString::from(s.to_owned()))))
            .collect();
        Ok(Self { client_id: parsed.client_id, client_secret: SecretString::from(parsed.client_secret), extra })
    }

    /// Stores app credentials (JSON in the vault).
    pub async fn store(
        vault: &dyn SecretVault,
        secret: &SecretRef,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<(), Error> {
        let json =
            serde_json::json!({"client_id": client_id, "client_secret": client_secret.expose_secret()}).to_string();
        vault.put(&secret.0, &SecretString::from(json)).await?;
        Ok(())
    }

    /// What the catalog's request templates may use of the app: its extra
    /// values (a developer token), its client id, and its secret (only a
    /// template that names it sends it: TikTok's `advertiser/get`).
    pub fn api_values(self) -> BTreeMap<String, SecretString> {
        let mut values = self.extra;
        values.insert("client_id".into(), SecretString::from(self.client_id));
        values.insert("client_secret".into(), self.client_secret);
        values
    }
}
