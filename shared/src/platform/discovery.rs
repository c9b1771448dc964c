//! Authorization server metadata (RFC 8414, and OpenID Connect discovery as
//! the fallback): a deployment may declare an OAuth provider by its issuer
//! alone, and its endpoints are read from what it publishes, cached.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::catalog::PlatformEntry;
use crate::domain::error::Error;
use crate::ports::PlatformHttp;

/// How long published metadata is trusted before it is read again.
pub const CACHE_FOR: Duration = Duration::from_secs(3600);

/// What this service reads of an authorization server's metadata.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

static CACHE: Mutex<Option<HashMap<String, (Instant, Metadata)>>> = Mutex::new(None);

/// Where an issuer publishes its metadata: RFC 8414 inserts the well-known
/// name between the host and the issuer's path; OpenID Connect appends it.
pub fn metadata_urls(issuer: &str) -> Result<Vec<url::Url>, Error> {
    let base = url::Url::parse(issuer).map_err(|_| Error::Config(format!("issuer {issuer} is not a URL")))?;
    let path = base.path().trim_end_matches('/');
    let mut rfc8414 = base.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut oidc = base.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    Ok(vec![rfc8414, oidc])
}

/// The issuer's metadata, from the cache or its well-known addresses. The
/// metadata must name the same issuer (RFC 8414 §3.3), else it is refused.
pub async fn metadata(http: &dyn PlatformHttp, issuer: &str) -> Result<Metadata, Error> {
    if let Some((at, m)) = CACHE.lock().expect("metadata cache").as_ref().and_then(|c| c.get(issuer).cloned()) {
        if at.elapsed() < CACHE_FOR {
            return Ok(m);
        }
    }
    let mut last = String::from("no answer");
    for url in metadata_urls(issuer)? {
        let request = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .header("accept", "application/json")
            .body(bytes::Bytes::new())
            .map_err(|e| Error::Config(e.to_string()))?;
        let response = match http.send(request).await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                last = format!("{url} answered {}", r.status());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let m: Metadata = serde_json::from_slice(response.body())
            .map_err(|_| Error::Config(format!("the metadata of {issuer} is not readable")))?;
        if m.issuer != issuer {
            return Err(Error::Config(format!("the metadata at {url} names another issuer")));
        }
        CACHE
            .lock()
            .expect("metadata cache")
            .get_or_insert_with(HashMap::new)
            .insert(issuer.to_owned(), (Instant::now(), m.clone()));
        return Ok(m);
    }
    Err(Error::Config(format!("no metadata for issuer {issuer}: {last}")))
}

/// The entry with its OAuth endpoints filled in from the issuer's metadata
/// when the catalog gives only the issuer (as is otherwise).
pub async fn resolve<'a>(http: &dyn PlatformHttp, entry: &'a PlatformEntry) -> Result<Cow<'a, PlatformEntry>, Error> {
    let Some(spec) = &entry.oauth else { return Ok(Cow::Borrowed(entry)) };
    let Some(issuer) = spec.issuer.as_deref().filter(|_| spec.authorize_url.is_empty() || spec.token_url.is_empty())
    else {
        return Ok(Cow::Borrowed(entry));
    };
    let m = metadata(http, issuer).await?;
    let mut resolved = entry.clone();
    let o = resolved.oauth.as_mut().expect("checked above");
    o.authorize_url = m.authorization_endpoint;
    o.token_url = m.token_endpoint;
    if o.revoke_url.is_none() {
        o.revoke_url = m.revocation_endpoint;
    }
    o.iss_parameter |= m.authorization_response_iss_parameter_supported;
    Ok(Cow::Owned(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_addresses_follow_rfc_8414_then_openid_connect() {
        let urls = metadata_urls("https://auth.example.com/tenant1").unwrap();
        assert_eq!(urls[0].as_str(), "https://auth.example.com/.well-known/oauth-authorization-server/tenant1");
        assert_eq!(urls[1].as_str(), "https://auth.example.com/tenant1/.well-known/openid-configuration");
        let urls = metadata_urls("https://auth.example.com").unwrap();
        assert_eq!(urls[0].as_str(), "https://auth.example.com/.well-known/oauth-authorization-server");
    }
}
