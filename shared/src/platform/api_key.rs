//! API keys as the catalog describes them: the fields a key has (checked
//! for presence, length and character set, never echoed), the platform's
//! cheap validation request, and the key as the vault keeps it.

use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

use super::{self as platform, Credentials};
use crate::catalog::PlatformEntry;
use crate::domain::error::{Error, KeyProblem};
use crate::domain::ids::WorkspaceId;
use crate::domain::{ExternalAccount, SecretRef};
use crate::ports::{PlatformHttp, SecretVault};

/// The longest value of a key field.
pub const MAX_FIELD_LEN: usize = 512;

/// A key checked against the entry: secret fields and plain params.
pub struct CheckedKey {
    pub secrets: BTreeMap<String, SecretString>,
    pub params: BTreeMap<String, String>,
    pub hint: String,
    pub fingerprint: String,
}

/// Checks the fields' presence, length and character set. Messages name
/// the field and the expected shape, never the value.
pub fn check_fields(
    entry: &PlatformEntry,
    workspace: &WorkspaceId,
    given: &BTreeMap<String, SecretString>,
    fingerprint_key: &SecretString,
) -> Result<CheckedKey, Error> {
    let spec = entry.api_key.as_ref().ok_or_else(|| Error::Config(format!("{}: no api_key", entry.id)))?;
    for name in given.keys() {
        if !spec.fields.iter().any(|f| &f.name == name) {
            return Err(Error::invalid(format!("credentials.{name}"), format!("{} takes no such field", entry.name)));
        }
    }
    let mut secrets = BTreeMap::new();
    let mut params = BTreeMap::new();
    let mut fingerprint = hmac::Hmac::<sha2::Sha256>::new_from_slice(fingerprint_key.expose_secret().as_bytes())
        .map_err(|_| Error::Config("the fingerprint key is unusable".into()))?;
    fingerprint.update(entry.id.as_str().as_bytes());
    fingerprint.update(&[0]);
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
        fingerprint.update(&[0]);
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
    Ok(CheckedKey { secrets, params, hint, fingerprint: hex::encode(fingerprint.finalize().into_bytes()) })
}

/// The platform's cheap validation request. Returns the account it names.
pub async fn validate(
    http: &dyn PlatformHttp,
    entry: &PlatformEntry,
    key: &CheckedKey,
) -> Result<Option<ExternalAccount>, Error> {
    let spec = entry.api_key.as_ref().ok_or_else(|| Error::Config(format!("{}: no api_key", entry.id)))?;
    let url = platform::api_url(entry, &spec.validate.path, &key.params)?;
    let creds = Credentials { values: key.secrets.clone() };
    let request = platform::api_get(entry, url, &key.params, &creds)?;
    let response = match http.send(request).await {
        Ok(r) => r,
        Err(crate::domain::error::HttpError::ForbiddenAddress(host)) => {
            return Err(Error::AddressNotAllowed { host });
        }
        Err(e) => {
            tracing::warn!(platform = %entry.id, error = %e, "key validation request failed");
            return Err(Error::ApiKeyRejected(KeyProblem::PlatformUnavailable));
        }
    };
    // Errors in the body, whatever the status.
    match platform::envelope(entry, response.body()) {
        platform::Envelope::Revoked(_) => return Err(Error::ApiKeyRejected(KeyProblem::Invalid)),
        platform::Envelope::Throttled(_) => {
            return Err(Error::ApiKeyRejected(KeyProblem::RateLimited { retry_after: None }))
        }
        platform::Envelope::Denied(_) => return Err(Error::ApiKeyRejected(KeyProblem::InsufficientScope)),
        platform::Envelope::Failed(_) => return Err(Error::ApiKeyRejected(KeyProblem::PlatformUnavailable)),
        platform::Envelope::Clear => {}
    }
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

/// The key's secret fields as the vault keeps them (JSON).
pub fn secret_json(key: &CheckedKey) -> SecretString {
    let map: BTreeMap<&str, &str> = key.secrets.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
    SecretString::from(serde_json::to_string(&map).expect("strings serialize"))
}

/// The deployment's fingerprint key, from the vault. The template creates
/// it; a deployment without one (the local stack, the tests) gets a random
/// one on first use.
pub async fn fingerprint_key(vault: &dyn SecretVault, prefix: &str) -> Result<SecretString, Error> {
    let fresh = SecretString::from(format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()));
    Ok(vault.get_or_create(&SecretRef::fingerprint_key(prefix).0, fresh).await?)
}

/// Reads the key fields of a connection back from the vault.
pub async fn load_key(vault: &dyn SecretVault, secret: &SecretRef) -> Result<Credentials, Error> {
    let stored = vault.get(&secret.0).await?.ok_or(Error::NotFound { kind: "API key" })?;
    let map: BTreeMap<String, String> = serde_json::from_str(stored.expose_secret())
        .map_err(|_| Error::Config("a stored API key is not readable".into()))?;
    Ok(Credentials { values: map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect() })
}
