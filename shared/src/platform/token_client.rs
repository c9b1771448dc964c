//! The token endpoint of every OAuth 2.0 platform, as the catalog describes
//! it: code exchange (with the PKCE verifier and the exact redirect URI),
//! refresh, Meta's long-lived exchange, RFC 7009 revocation, the client
//! authentication styles, and Shopify's callback HMAC.

use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

use super::{self as platform, AppCredentials};
use crate::catalog::{ClientAuth, OAuthSpec, PlatformEntry, RefreshKind};
use crate::domain::error::{Error, HttpError};
use crate::domain::tokens::TokenSet;
use crate::ports::{Clock, PlatformHttp};

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
        token_secret: None,
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

/// The one client of every platform's token endpoint: the callback's code
/// exchange, the sweep's and the sync worker's refreshes, and revocation.
/// It follows no redirects (the HTTP port does not).
pub struct TokenClient<'a> {
    pub http: &'a dyn PlatformHttp,
    pub clock: &'a dyn Clock,
    /// The deployment's exact redirect URI (sent with a code).
    pub redirect_uri: String,
}

/// The client's authentication: HTTP Basic, or in the body (form or JSON).
fn authenticate_client(
    spec: &OAuthSpec,
    creds: &AppCredentials,
    req: http::request::Builder,
    fields: &mut Vec<(String, String)>,
) -> Result<http::request::Builder, Error> {
    if spec.client_auth == ClientAuth::Basic {
        Ok(req.header("authorization", platform::basic_auth(&creds.client_id, creds.client_secret.expose_secret())?))
    } else {
        fields.push((spec.client_id_param.clone(), creds.client_id.clone()));
        fields.push((spec.client_secret_param.clone(), creds.client_secret.expose_secret().to_owned()));
        Ok(req)
    }
}

impl TokenClient<'_> {
    /// One request to the token endpoint, as the entry describes it.
    pub async fn request(
        &self,
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
                fields.push(("redirect_uri".into(), self.redirect_uri.clone()));
                if let Some(v) = verifier {
                    fields.push(("code_verifier".into(), v.into()));
                }
            }
            Grant::Refresh { refresh_token } => {
                fields.push(("grant_type".into(), "refresh_token".into()));
                fields.push(("refresh_token".into(), refresh_token.into()));
                if spec.scope_on_refresh && !spec.default_scopes.is_empty() {
                    fields.push(("scope".into(), spec.default_scopes.join(&spec.scope_separator)));
                }
            }
        }
        for (k, v) in &spec.extra_token_params {
            // A value may name a parameter of the flow; one the flow lacks
            // is left out rather than sent half-built.
            match platform::fill(v, vars) {
                Ok(value) => fields.push((k.clone(), value)),
                Err(_) => tracing::debug!(platform = %entry.id, field = %k, "token field without a value left out"),
            }
        }
        let req = http::Request::builder().method(http::Method::POST).uri(&url).header("accept", "application/json");
        let mut req = authenticate_client(spec, creds, req, &mut fields).map_err(|_| TokenError::InvalidClient)?;
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
        let now = self.clock.now();
        let response = self.http.send(req).await.map_err(|e| {
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
            tokens = self.long_lived_exchange(entry, spec, vars, creds, &tokens).await?;
        }
        Ok(tokens)
    }

    /// Meta: swap the short-lived token for the long-lived one.
    async fn long_lived_exchange(
        &self,
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
        let now = self.clock.now();
        let response = self.http.send(req).await.map_err(|_| TokenError::Unavailable)?;
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

    /// RFC 7009 revocation of a grant's token, where the catalog has a revoke
    /// URL (nothing to do otherwise).
    pub async fn revoke(
        &self,
        entry: &PlatformEntry,
        vars: &BTreeMap<String, String>,
        creds: &AppCredentials,
        token: &str,
        account_id: Option<&str>,
    ) -> Result<(), Error> {
        let Some(revoke_url) = entry.oauth.as_ref().and_then(|s| s.revoke_url.as_ref()) else { return Ok(()) };
        let spec = entry.oauth.as_ref().expect("checked above");
        let mut values = vars.clone();
        values.insert("token".into(), token.to_owned());
        values.insert("client_id".into(), creds.client_id.clone());
        if let Some(account) = account_id {
            values.insert("account_id".into(), account.to_owned());
        }
        let mut fields = Vec::new();
        match &spec.revoke_fields {
            Some(templates) => {
                for (k, v) in templates {
                    fields.push((k.clone(), platform::fill(v, &values)?));
                }
            }
            None => fields.push(("token".to_owned(), token.to_owned())),
        }
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri(platform::fill(revoke_url, vars)?)
            .header("content-type", "application/x-www-form-urlencoded");
        let req = if spec.revoke_bearer_secret {
            let mut bearer = http::HeaderValue::from_str(&format!("Bearer {}", creds.client_secret.expose_secret()))
                .map_err(|_| Error::Config("the client secret cannot be a header".into()))?;
            bearer.set_sensitive(true);
            req.header("authorization", bearer)
        } else {
            authenticate_client(spec, creds, req, &mut fields)?
        };
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let response =
            self.http.send(req.body(bytes::Bytes::from(body)).map_err(|e| Error::Config(e.to_string()))?).await?;
        if !response.status().is_success() {
            return Err(Error::Http(HttpError::Other(format!("revocation answered {}", response.status()))));
        }
        Ok(())
    }
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

#[cfg(test)]
mod request_tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogOptions};
    use std::sync::Mutex;

    /// Answers every request with tokens and keeps what it was sent.
    #[derive(Default)]
    struct Recording(Mutex<Vec<http::Request<bytes::Bytes>>>);

    #[async_trait::async_trait]
    impl PlatformHttp for Recording {
        async fn send(&self, request: http::Request<bytes::Bytes>) -> Result<http::Response<bytes::Bytes>, HttpError> {
            self.0.lock().unwrap().push(request);
            let body = r#"{"access_token":"a","refresh_token":"r","expires_in":3600}"#;
            Ok(http::Response::builder().status(200).body(bytes::Bytes::from(body)).unwrap())
        }
    }

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp(1_800_000_000, 0).unwrap()
        }
    }

    fn form(r: &http::Request<bytes::Bytes>) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(r.body()).into_owned().collect()
    }

    fn creds() -> AppCredentials {
        AppCredentials {
            client_id: "id".into(),
            client_secret: SecretString::from("s".to_owned()),
            extra: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn bigcommerce_sends_the_callbacks_context_and_scope_with_the_code() {
        let catalog = Catalog::load(&CatalogOptions::default()).unwrap();
        let http = Recording::default();
        let client = TokenClient { http: &http, clock: &Fixed, redirect_uri: "https://x/cb".into() };
        let vars = BTreeMap::from([
            ("context".to_owned(), "stores/abc123".to_owned()),
            ("scope".to_owned(), "store_v2_orders_read_only".to_owned()),
        ]);
        let entry = catalog.get("bigcommerce").unwrap();
        client.request(entry, &vars, &creds(), Grant::Code { code: "c", verifier: None }).await.unwrap();
        let sent = form(&http.0.lock().unwrap()[0]);
        assert_eq!(sent["context"], "stores/abc123");
        assert_eq!(sent["scope"], "store_v2_orders_read_only");
        assert_eq!(sent["grant_type"], "authorization_code");
    }

    #[tokio::test]
    async fn microsoft_sends_its_scopes_with_a_refresh_and_others_do_not() {
        let catalog = Catalog::load(&CatalogOptions::default()).unwrap();
        let http = Recording::default();
        let client = TokenClient { http: &http, clock: &Fixed, redirect_uri: "https://x/cb".into() };
        let grant = || Grant::Refresh { refresh_token: "rt" };
        client.request(catalog.get("microsoft_ads").unwrap(), &BTreeMap::new(), &creds(), grant()).await.unwrap();
        client.request(catalog.get("google_ads").unwrap(), &BTreeMap::new(), &creds(), grant()).await.unwrap();
        let sent = http.0.lock().unwrap();
        assert_eq!(form(&sent[0])["scope"], "https://ads.microsoft.com/msads.manage offline_access");
        assert!(!form(&sent[1]).contains_key("scope"));
    }

    #[tokio::test]
    async fn stripe_is_deauthorized_by_account_with_the_secret_key_and_others_by_token() {
        let catalog = Catalog::load(&CatalogOptions::default()).unwrap();
        let http = Recording::default();
        let client = TokenClient { http: &http, clock: &Fixed, redirect_uri: "https://x/cb".into() };
        let stripe = catalog.get("stripe").unwrap();
        let creds = AppCredentials {
            client_id: "ca_demo".into(),
            client_secret: SecretString::from("sk_test_demo".to_owned()),
            extra: BTreeMap::new(),
        };
        client.revoke(stripe, &BTreeMap::new(), &creds, "rt_x", Some("acct_123")).await.unwrap();
        client.revoke(catalog.get("google_ads").unwrap(), &BTreeMap::new(), &creds, "rt_y", None).await.unwrap();
        let sent = http.0.lock().unwrap();
        assert_eq!(sent[0].uri().to_string(), "https://connect.stripe.com/oauth/deauthorize");
        let f = form(&sent[0]);
        assert_eq!((f["client_id"].as_str(), f["stripe_user_id"].as_str()), ("ca_demo", "acct_123"));
        assert!(!f.contains_key("token") && !f.contains_key("client_secret"), "{f:?}");
        assert_eq!(sent[0].headers()["authorization"], "Bearer sk_test_demo");
        // RFC 7009 elsewhere: the token.
        assert_eq!(form(&sent[1])["token"], "rt_y");
    }
}
