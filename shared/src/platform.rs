//! Talking to platforms, as the catalog describes them: URL templates,
//! authentication headers, JSON pointers, and the OAuth app credentials
//! of the deployment (or of a workspace that brings its own).

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::app::App;
use crate::catalog::{CredentialSource, PlatformEntry};
use crate::domain::SecretRef;
use crate::error::Error;
use crate::ids::WorkspaceId;

/// Fills `{name}` placeholders; a placeholder with no value is an error
/// (a request must never go out half-built).
pub fn fill(template: &str, vars: &BTreeMap<String, String>) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let value =
            vars.get(name).ok_or_else(|| Error::Config(format!("no value for {{{name}}} in a catalog template")))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A URL for `path`: absolute as is, else relative to the API base URL.
pub fn api_url(entry: &PlatformEntry, path: &str, vars: &BTreeMap<String, String>) -> Result<url::Url, Error> {
    let raw = if path.starts_with("http://") || path.starts_with("https://") {
        fill(path, vars)?
    } else {
        let base = entry.api.as_ref().ok_or_else(|| Error::Config(format!("{}: no api.base_url", entry.id)))?;
        format!("{}{}", fill(&base.base_url, vars)?.trim_end_matches('/'), fill(path, vars)?)
    };
    url::Url::parse(&raw).map_err(|_| Error::Config(format!("{}: bad URL from the catalog", entry.id)))
}

/// The credentials a request authenticates with. Values are secrets.
#[derive(Default)]
pub struct Credentials {
    pub values: BTreeMap<String, SecretString>,
}

impl Credentials {
    pub fn access_token(token: &SecretString) -> Self {
        Self { values: BTreeMap::from([("access_token".to_owned(), token.clone())]) }
    }
}

fn fill_secret(template: &str, vars: &BTreeMap<String, String>, creds: &Credentials) -> Result<String, Error> {
    let mut all = vars.clone();
    for (k, v) in &creds.values {
        all.insert(k.clone(), v.expose_secret().to_owned());
    }
    fill(template, &all)
}

fn sensitive(value: &str) -> Result<http::HeaderValue, Error> {
    let mut v = http::HeaderValue::from_str(value)
        .map_err(|_| Error::invalid("credentials", "contain characters a header cannot carry"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// A GET of the platform's API with its authentication and fixed headers.
pub fn api_get(
    entry: &PlatformEntry,
    url: url::Url,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
) -> Result<http::Request<Bytes>, Error> {
    let mut req =
        http::Request::builder().method(http::Method::GET).uri(url.as_str()).header("accept", "application/json");
    if let Some(api) = &entry.api {
        if let Some((name, template)) = &api.auth_header {
            req = req.header(name.as_str(), sensitive(&fill_secret(template, vars, creds)?)?);
        }
        if let Some((user, pass)) = &api.basic_auth {
            use base64::Engine;
            let get = |k: &str| creds.values.get(k).map(|v| v.expose_secret().to_owned()).unwrap_or_default();
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", get(user), get(pass)));
            req = req.header("authorization", sensitive(&format!("Basic {pair}"))?);
        }
        for (name, template) in &api.headers {
            req = req.header(name.as_str(), sensitive(&fill_secret(template, vars, creds)?)?);
        }
    }
    req.body(Bytes::new()).map_err(|e| Error::Config(format!("{}: {e}", entry.id)))
}

/// A string (or number, as text) at a JSON pointer.
pub fn pointer_str(value: &serde_json::Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An OAuth app: the deployment's, or a workspace's own (BYO).
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
    pub fn secret_ref(app: &App, entry: &PlatformEntry, workspace: &WorkspaceId) -> SecretRef {
        match entry.credentials {
            CredentialSource::Preconfigured => SecretRef::for_app(&app.config.secret_prefix, entry.id.as_str()),
            CredentialSource::Byo => {
                SecretRef::for_workspace_app(&app.config.secret_prefix, workspace, entry.id.as_str())
            }
        }
    }

    pub async fn load(app: &App, entry: &PlatformEntry, workspace: &WorkspaceId) -> Result<Self, Error> {
        let secret = Self::secret_ref(app, entry, workspace);
        let stored = app.vault.get(&secret.0).await?.ok_or(Error::AppNotConfigured {
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
        app: &App,
        secret: &SecretRef,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<(), Error> {
        let json =
            serde_json::json!({"client_id": client_id, "client_secret": client_secret.expose_secret()}).to_string();
        app.vault.put(&secret.0, &SecretString::from(json)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_every_placeholder_or_fails() {
        let vars = BTreeMap::from([("shop".to_owned(), "a.myshopify.com".to_owned())]);
        assert_eq!(fill("https://{shop}/admin", &vars).unwrap(), "https://a.myshopify.com/admin");
        assert!(fill("https://{store}/x", &vars).is_err());
        assert_eq!(fill("no placeholders", &vars).unwrap(), "no placeholders");
    }

    #[test]
    fn pointers_read_strings_and_numbers() {
        let v = serde_json::json!({"shop": {"id": 42, "name": "A"}, "empty": ""});
        assert_eq!(pointer_str(&v, "/shop/id").as_deref(), Some("42"));
        assert_eq!(pointer_str(&v, "/shop/name").as_deref(), Some("A"));
        assert_eq!(pointer_str(&v, "/empty"), None);
        assert_eq!(pointer_str(&v, "/missing"), None);
    }
}
