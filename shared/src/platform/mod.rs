//! Talking to platforms, as the catalog describes them: URL templates,
//! authentication headers and JSON pointers here; the OAuth app credentials
//! ([`app_credentials`]), the one token-endpoint client ([`token_client`]),
//! the identity request ([`identity`]) and API-key checks ([`api_key`]).

pub mod accounts;
pub mod api_key;
pub mod app_credentials;
pub mod discovery;
pub mod identity;
pub mod oauth1;
pub mod page;
pub mod reports;
pub mod token_client;

pub use app_credentials::AppCredentials;

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

use crate::catalog::PlatformEntry;
use crate::domain::error::Error;

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

/// The first page of a stream: its path, the page size, and the
/// incremental cursor when there is one (what the sync engine requests).
pub fn stream_first_url(
    entry: &PlatformEntry,
    stream: &crate::catalog::StreamSpec,
    vars: &BTreeMap<String, String>,
    cursor: Option<&str>,
) -> Result<url::Url, Error> {
    let mut url = api_url(entry, &stream.path, vars)?;
    {
        let mut q = url.query_pairs_mut();
        if let (Some(param), Some(size)) = (&stream.page_size_param, stream.page_size) {
            q.append_pair(param, &size.to_string());
        }
        if let (Some(param), Some(value)) = (&stream.cursor_param, cursor) {
            match &stream.cursor_format {
                Some(format) => q.append_pair(param, &format.replace("{cursor}", value)),
                None => q.append_pair(param, value),
            };
        }
    }
    // No query at all rather than an empty `?`.
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url)
}

/// Adds a stream's query parameters that come from credentials (filled from
/// secrets; the URL is sent, never stored or logged).
pub fn with_credential_query(
    stream: &crate::catalog::StreamSpec,
    url: url::Url,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
) -> Result<url::Url, Error> {
    with_query_templates(&stream.credential_query, url, vars, creds)
}

/// Adds query parameters filled from the variables and the credentials.
pub fn with_query_templates(
    templates: &BTreeMap<String, String>,
    mut url: url::Url,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
) -> Result<url::Url, Error> {
    if templates.is_empty() {
        return Ok(url);
    }
    let mut pairs = Vec::new();
    for (name, template) in templates {
        pairs.push((name.clone(), fill_secret(template, vars, creds)?));
    }
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
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

    /// A grant's tokens with what the catalog's headers may use of the app
    /// (its client id, a developer token): the values of every request made
    /// with a grant.
    pub fn for_grant(tokens: &crate::domain::tokens::TokenSet, app: Option<AppCredentials>) -> Self {
        let mut c = Self::access_token(&SecretString::from(tokens.access_token.clone()));
        c.values.extend(Self::grant_extras(tokens, app));
        c
    }

    /// What a grant's requests carry besides its access token: the app's
    /// values, and the token's secret (OAuth 1.0a signs with it).
    pub fn grant_extras(
        tokens: &crate::domain::tokens::TokenSet,
        app: Option<AppCredentials>,
    ) -> BTreeMap<String, SecretString> {
        let mut values = app.map(AppCredentials::api_values).unwrap_or_default();
        if let Some(secret) = &tokens.token_secret {
            values.insert("token_secret".into(), SecretString::from(secret.clone()));
        }
        values
    }
}

/// HTTP Basic authentication of a client (RFC 7617), marked sensitive so
/// it never prints.
pub fn basic_auth(user: &str, password: &str) -> Result<http::HeaderValue, Error> {
    use base64::Engine;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    sensitive(&format!("Basic {pair}"))
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
    api_call(entry, http::Method::GET, url, vars, creds, None)
}

/// A GraphQL query to the platform's API: POST `{"query", "variables"}`,
/// with the same authentication and headers as a GET.
pub fn graphql_post(
    entry: &PlatformEntry,
    url: url::Url,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
    query: &str,
    variables: serde_json::Value,
) -> Result<http::Request<Bytes>, Error> {
    let body = serde_json::json!({"query": query, "variables": variables});
    let json = http::HeaderValue::from_static("application/json");
    api_call(entry, http::Method::POST, url, vars, creds, Some((Bytes::from(body.to_string()), json)))
}

/// The variables of a GraphQL page: the page size, the page cursor, and the
/// incremental filter when there is a cursor value.
pub fn graphql_variables(
    spec: &crate::catalog::GraphqlSpec,
    page_size: Option<u32>,
    after: Option<&str>,
    cursor: Option<&str>,
) -> serde_json::Value {
    let filter = match (&spec.filter, cursor) {
        (Some(f), Some(c)) => serde_json::Value::String(f.replace("{cursor}", c)),
        _ => serde_json::Value::Null,
    };
    serde_json::json!({"first": page_size.unwrap_or(100), "after": after, "query": filter})
}

/// A request to the platform's API with its authentication and fixed
/// headers: any method, and a body with its content type.
pub fn api_call(
    entry: &PlatformEntry,
    method: http::Method,
    url: url::Url,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
    body: Option<(Bytes, http::HeaderValue)>,
) -> Result<http::Request<Bytes>, Error> {
    let method_name = method.as_str().to_owned();
    let mut req = http::Request::builder().method(method).uri(url.as_str());
    let body = match body {
        Some((bytes, content_type)) => {
            req = req.header(http::header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Bytes::new(),
    };
    // One Accept: the entry's own (Klaviyo's JSON:API type), else JSON.
    let own_accept = entry.api.as_ref().is_some_and(|a| a.headers.keys().any(|k| k.eq_ignore_ascii_case("accept")));
    if !own_accept {
        req = req.header("accept", "application/json");
    }
    // OAuth 1.0a: every request signed (RFC 5849) with the app's and the
    // token's keys.
    if entry.method == crate::catalog::AuthMethod::Oauth1 {
        let get = |k: &str| creds.values.get(k).map(|v| v.expose_secret().to_owned()).unwrap_or_default();
        let (access, token_secret) = (get("access_token"), get("token_secret"));
        let (consumer_key, consumer_secret) = (get("client_id"), get("client_secret"));
        let keys = oauth1::Keys {
            consumer_key: &consumer_key,
            consumer_secret: &consumer_secret,
            token: Some((&access, &token_secret)),
        };
        let header = oauth1::authorization(
            &method_name,
            &url,
            &[],
            &keys,
            &oauth1::Extra { version: true, ..oauth1::Extra::default() },
        );
        req = req.header(http::header::AUTHORIZATION, sensitive(&header)?);
    }
    if let Some(api) = &entry.api {
        if let Some((name, template)) = &api.auth_header {
            req = req.header(name.as_str(), sensitive(&fill_secret(template, vars, creds)?)?);
        }
        if let Some((user, pass)) = &api.basic_auth {
            let get = |k: &str| creds.values.get(k).map(|v| v.expose_secret().to_owned()).unwrap_or_default();
            req = req.header("authorization", basic_auth(&get(user), &get(pass))?);
        }
        for (name, template) in &api.headers {
            req = req.header(name.as_str(), sensitive(&fill_secret(template, vars, creds)?)?);
        }
    }
    req.body(body).map_err(|e| Error::Config(format!("{}: {e}", entry.id)))
}

/// A SOAP call to the platform's API: the envelope POSTed as `text/xml`
/// with its `SOAPAction`, the catalog's headers applied as for any request.
pub fn soap_post(
    entry: &PlatformEntry,
    url: url::Url,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
    spec: &crate::catalog::SoapSpec,
) -> Result<http::Request<Bytes>, Error> {
    let body = Bytes::from(fill_xml(&spec.envelope, vars, creds)?);
    let xml = http::HeaderValue::from_static("text/xml; charset=utf-8");
    let mut request = api_call(entry, http::Method::POST, url, vars, creds, Some((body, xml)))?;
    let action = http::HeaderValue::from_str(&format!("\"{}\"", spec.action))
        .map_err(|_| Error::Config(format!("{}: a SOAP action must be a header value", entry.id)))?;
    request.headers_mut().insert("soapaction", action);
    Ok(request)
}

/// Fills a SOAP envelope: the variables and the credentials, XML-escaped.
pub fn fill_xml(template: &str, vars: &BTreeMap<String, String>, creds: &Credentials) -> Result<String, Error> {
    let mut all = vars.iter().map(|(k, v)| (k.clone(), xml_escape(v))).collect::<BTreeMap<_, _>>();
    for (k, v) in &creds.values {
        all.insert(k.clone(), xml_escape(v.expose_secret()));
    }
    fill(template, &all)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// An answer's body as a JSON tree: JSON as is; XML (a SOAP answer) as
/// nested objects of element local names, text leaves as strings, the
/// first of repeated elements kept. `None` when it is neither.
pub fn document(body: &[u8]) -> Option<serde_json::Value> {
    xml_or_json(body, false)
}

/// As [`document`], but an element that repeats is a list of them (a SOAP
/// answer's accounts); one alone stays an object.
pub fn document_with_lists(body: &[u8]) -> Option<serde_json::Value> {
    xml_or_json(body, true)
}

fn xml_or_json(body: &[u8], lists: bool) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Some(v);
    }
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_start().starts_with('<') {
        return None;
    }
    let doc = roxmltree::Document::parse(text).ok()?;
    fn tree(node: roxmltree::Node<'_, '_>, lists: bool) -> serde_json::Value {
        let children: Vec<_> = node.children().filter(|c| c.is_element()).collect();
        if children.is_empty() {
            return serde_json::Value::String(node.text().unwrap_or("").trim().to_owned());
        }
        let mut map = serde_json::Map::new();
        for child in children {
            let name = child.tag_name().name().to_owned();
            match map.get_mut(&name) {
                None => {
                    map.insert(name, tree(child, lists));
                }
                Some(serde_json::Value::Array(items)) if lists => items.push(tree(child, lists)),
                Some(first) if lists => {
                    let one = first.take();
                    *first = serde_json::Value::Array(vec![one, tree(child, lists)]);
                }
                Some(_) => {}
            }
        }
        serde_json::Value::Object(map)
    }
    let root = doc.root_element();
    Some(serde_json::json!({ root.tag_name().name(): tree(root, lists) }))
}

/// What a platform's answer says in its error envelope, if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// No error in the body (or the entry declares no envelope).
    Clear,
    /// The grant is revoked or expired: as a 401.
    Revoked(String),
    /// Rate limited: as a 429.
    Throttled(String),
    /// A permission is missing: as a 403.
    Denied(String),
    /// Another error: the platform refused.
    Failed(String),
}

/// Reads the entry's error envelope from an answer's body.
pub fn envelope(entry: &PlatformEntry, body: &[u8]) -> Envelope {
    let Some(spec) = entry.api.as_ref().and_then(|a| a.error_envelope.as_ref()) else { return Envelope::Clear };
    let Some(doc) = document(body) else { return Envelope::Clear };
    let code = match doc.pointer(&spec.code_pointer) {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => return Envelope::Clear,
    };
    let listed = |codes: &[crate::catalog::Code]| codes.iter().any(|c| c.text() == code);
    if listed(&spec.ok_codes) {
        Envelope::Clear
    } else if listed(&spec.revoked_codes) {
        Envelope::Revoked(code)
    } else if listed(&spec.throttled_codes) {
        Envelope::Throttled(code)
    } else if listed(&spec.denied_codes) {
        Envelope::Denied(code)
    } else {
        Envelope::Failed(code)
    }
}

/// How long until a GraphQL cost budget covers a query of the answer's
/// requested cost (zero when it already does), from what the answer reports.
pub fn cost_wait(entry: &PlatformEntry, body: &[u8]) -> Option<std::time::Duration> {
    let spec = entry.api.as_ref()?.query_cost.as_ref()?;
    let doc = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let number = |p: &str| doc.pointer(p).and_then(serde_json::Value::as_f64);
    let (requested, available, rate) =
        (number(&spec.requested_pointer)?, number(&spec.available_pointer)?, number(&spec.restore_rate_pointer)?);
    if rate <= 0.0 {
        return None;
    }
    let missing = (requested - available).max(0.0);
    Some(std::time::Duration::from_secs_f64((missing / rate).min(900.0)))
}

/// A string (or number, as text) at a JSON pointer.
pub fn pointer_str(value: &serde_json::Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
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
    fn klaviyo_profiles_page_incrementally_with_one_accept_header() {
        use crate::catalog::{Catalog, CatalogOptions};
        let catalog = Catalog::load(&CatalogOptions::default()).unwrap();
        let entry = catalog.get("klaviyo").unwrap();
        let profiles = entry.streams.iter().find(|s| s.name == "profiles").unwrap();
        let vars = BTreeMap::new();
        let url = stream_first_url(entry, profiles, &vars, Some("2026-11-01T00:00:00+00:00")).unwrap();
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["page[size]"], "100");
        assert_eq!(q["filter"], "greater-than(updated,2026-11-01T00:00:00+00:00)");
        // The first run has no cursor: no filter.
        let first = stream_first_url(entry, profiles, &vars, None).unwrap();
        assert!(!first.query_pairs().any(|(k, _)| k == "filter"));
        let creds =
            Credentials { values: BTreeMap::from([("api_key".to_owned(), SecretString::from("pk_x".to_owned()))]) };
        let request = api_get(entry, url, &vars, &creds).unwrap();
        let accepts: Vec<_> = request.headers().get_all("accept").iter().collect();
        assert_eq!(accepts, vec!["application/vnd.api+json"], "one Accept header");
        assert_eq!(request.headers()["revision"], "2026-07-15");
    }

    #[test]
    fn error_envelopes_read_as_the_catalog_declares() {
        use crate::catalog::{Catalog, CatalogOptions};
        let catalog = Catalog::load(&CatalogOptions::default()).unwrap();
        let (tiktok, meta, stripe) =
            (catalog.get("tiktok_ads").unwrap(), catalog.get("meta_ads").unwrap(), catalog.get("stripe").unwrap());
        assert_eq!(envelope(tiktok, br#"{"code":0,"data":{}}"#), Envelope::Clear);
        assert_eq!(envelope(tiktok, br#"{"code":40100,"message":"x"}"#), Envelope::Throttled("40100".into()));
        assert_eq!(envelope(tiktok, br#"{"code":40105}"#), Envelope::Revoked("40105".into()));
        assert_eq!(envelope(tiktok, br#"{"code":40002}"#), Envelope::Failed("40002".into()));
        let revoked = br#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}"#;
        assert_eq!(envelope(meta, revoked), Envelope::Revoked("190".into()));
        assert_eq!(envelope(meta, br#"{"error":{"code":17}}"#), Envelope::Throttled("17".into()));
        assert_eq!(envelope(meta, br#"{"data":[]}"#), Envelope::Clear);
        assert_eq!(envelope(stripe, br#"{"code":5}"#), Envelope::Clear, "no envelope declared");
        // Shopify GraphQL: text codes in a 200 body; REST's plain `errors` string is no code.
        let shopify = catalog.get("shopify").unwrap();
        let throttled = br#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],"extensions":{"cost":{"requestedQueryCost":752,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":352,"restoreRate":100.0}}}}"#;
        assert_eq!(envelope(shopify, throttled), Envelope::Throttled("THROTTLED".into()));
        assert_eq!(cost_wait(shopify, throttled), Some(std::time::Duration::from_secs(4)));
        let denied = br#"{"errors":[{"message":"Access denied","extensions":{"code":"ACCESS_DENIED"}}]}"#;
        assert_eq!(envelope(shopify, denied), Envelope::Denied("ACCESS_DENIED".into()));
        assert_eq!(envelope(shopify, br#"{"errors":"[API] Invalid API key or access token"}"#), Envelope::Clear);
        assert_eq!(envelope(shopify, br#"{"data":{"orders":{"nodes":[]}}}"#), Envelope::Clear);
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
