//! OAuth 1.0a request signing (RFC 5849, HMAC-SHA1), with the
//! `oauth1-request` crate: the signature base string covers the method, the
//! URL without its query, the query parameters, a form body's parameters and
//! the protocol parameters. Used for X Ads: its temporary-credentials and
//! token requests and every API request.

use std::num::NonZeroU64;

/// The keys a request is signed with. Secrets are borrowed for the call
/// only and end up in no log: the header value is marked sensitive.
pub struct Keys<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    /// The temporary or token credentials, once there are some.
    pub token: Option<(&'a str, &'a str)>,
}

/// The protocol parameters a step of the flow adds.
#[derive(Default)]
pub struct Extra<'a> {
    /// `oauth_callback` (the temporary-credentials request).
    pub callback: Option<&'a str>,
    /// `oauth_verifier` (the token request).
    pub verifier: Option<&'a str>,
    /// Fixed for tests; fresh per request otherwise.
    pub nonce: Option<&'a str>,
    pub timestamp: Option<u64>,
    /// Send `oauth_version="1.0"` (optional in RFC 5849; X sends it).
    pub version: bool,
}

/// The `Authorization: OAuth …` value for a request: `url` with its query,
/// and the parameters of an `application/x-www-form-urlencoded` body.
pub fn authorization(
    method: &str,
    url: &url::Url,
    form: &[(String, String)],
    keys: &Keys<'_>,
    extra: &Extra<'_>,
) -> String {
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    let params: Vec<(String, String)> = url.query_pairs().into_owned().chain(form.iter().cloned()).collect();
    let list = oauth1::ParameterList::new(params);
    let client = oauth1::Credentials::new(keys.consumer_key, keys.consumer_secret);
    let mut builder = oauth1::Builder::<_, _, &str>::new(client, oauth1::HMAC_SHA1);
    builder.token(keys.token.map(|(t, s)| oauth1::Credentials::new(t, s)));
    builder.callback(extra.callback);
    builder.verifier(extra.verifier);
    builder.nonce(extra.nonce);
    builder.timestamp(extra.timestamp.and_then(NonZeroU64::new));
    builder.version(extra.version);
    builder.authorize(method, base.as_str(), &list)
}

/// The `oauth_*` parameters of an `Authorization: OAuth …` value, decoded.
pub fn parameters(header: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let list = header.strip_prefix("OAuth ")?;
    Some(
        list.split(',')
            .filter_map(|kv| kv.trim().split_once('='))
            .map(|(k, v)| {
                let v = v.trim_matches('"');
                (k.to_owned(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
            })
            .collect(),
    )
}

/// The server's side (the sandbox platform, the tests' fakes of X): the
/// protocol parameters of a request whose HMAC-SHA1 signature holds for the
/// consumer `(key, secret)` and the secret of the token it names
/// (`token_secret`; none for the temporary-credentials request), recomputed
/// from the request as RFC 5849 §3.4 says.
pub fn verify(
    method: &str,
    url: &url::Url,
    header: &str,
    consumer: (&str, &str),
    token_secret: impl Fn(&str) -> Option<String>,
) -> Option<std::collections::BTreeMap<String, String>> {
    let p = parameters(header)?;
    if p.get("oauth_consumer_key")? != consumer.0 || p.get("oauth_signature_method")? != "HMAC-SHA1" {
        return None;
    }
    let secret = match p.get("oauth_token") {
        Some(t) => Some(token_secret(t)?),
        None => None,
    };
    let keys = Keys {
        consumer_key: consumer.0,
        consumer_secret: consumer.1,
        token: p.get("oauth_token").map(|t| (t.as_str(), secret.as_deref().unwrap_or_default())),
    };
    let extra = Extra {
        callback: p.get("oauth_callback").map(String::as_str),
        verifier: p.get("oauth_verifier").map(String::as_str),
        nonce: p.get("oauth_nonce").map(String::as_str),
        timestamp: p.get("oauth_timestamp").and_then(|t| t.parse().ok()),
        version: p.contains_key("oauth_version"),
    };
    let expected = parameters(&authorization(method, url, &[], &keys, &extra))?;
    (expected.get("oauth_signature") == p.get("oauth_signature")).then_some(p)
}

/// Temporary or token credentials as the platform answered them
/// (`application/x-www-form-urlencoded`), with the other values it sent
/// (X: `user_id`, `screen_name`).
pub struct Answered {
    pub token: String,
    pub secret: secrecy::SecretString,
    pub values: std::collections::BTreeMap<String, String>,
}

/// Why a step of the flow did not give credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum StepError {
    /// The platform refused (a 401: wrong app keys, a used or expired token or verifier).
    Refused,
    /// No answer, a 5xx, or an answer without the credentials.
    Unavailable,
}

/// One signed POST of the flow (RFC 5849 §2.1 and §2.3).
pub async fn step(
    http: &dyn crate::ports::PlatformHttp,
    url: &str,
    keys: &Keys<'_>,
    extra: &Extra<'_>,
) -> Result<Answered, StepError> {
    let parsed = url::Url::parse(url).map_err(|_| StepError::Unavailable)?;
    let header = authorization("POST", &parsed, &[], keys, extra);
    let mut value = http::HeaderValue::from_str(&header).map_err(|_| StepError::Unavailable)?;
    value.set_sensitive(true);
    let request = http::Request::post(parsed.as_str())
        .header(http::header::AUTHORIZATION, value)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(bytes::Bytes::new())
        .map_err(|_| StepError::Unavailable)?;
    let response = http.send(request).await.map_err(|_| StepError::Unavailable)?;
    if response.status() == http::StatusCode::UNAUTHORIZED || response.status() == http::StatusCode::FORBIDDEN {
        return Err(StepError::Refused);
    }
    if !response.status().is_success() {
        return Err(StepError::Unavailable);
    }
    let mut values: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(response.body()).into_owned().collect();
    let token = values.remove("oauth_token").ok_or(StepError::Unavailable)?;
    let secret = values.remove("oauth_token_secret").ok_or(StepError::Unavailable)?;
    Ok(Answered { token, secret: secrecy::SecretString::from(secret), values })
}

/// A signed POST whose answer matters only by its status (X's
/// `oauth/invalidate_token`).
pub async fn signed_post(
    http: &dyn crate::ports::PlatformHttp,
    url: &str,
    keys: &Keys<'_>,
) -> Result<(), crate::domain::error::Error> {
    use crate::domain::error::{Error, HttpError};
    let parsed = url::Url::parse(url).map_err(|_| Error::Config(format!("not a URL: {url}")))?;
    let header = authorization("POST", &parsed, &[], keys, &Extra { version: true, ..Extra::default() });
    let mut value = http::HeaderValue::from_str(&header).map_err(|e| Error::Config(e.to_string()))?;
    value.set_sensitive(true);
    let request = http::Request::post(parsed.as_str())
        .header(http::header::AUTHORIZATION, value)
        .body(bytes::Bytes::new())
        .map_err(|e| Error::Config(e.to_string()))?;
    let response = http.send(request).await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(Error::Http(HttpError::Other(format!("the platform answered {}", response.status()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(header: &str) -> String {
        parameters(header).expect("an OAuth header")["oauth_signature"].clone()
    }

    #[test]
    fn a_server_verifies_what_was_signed_and_nothing_else() {
        let url = url::Url::parse("https://api.x.com/1.1/account/verify_credentials.json?a=b").unwrap();
        let keys = Keys { consumer_key: "ck", consumer_secret: "cs", token: Some(("tok", "ts")) };
        let header = authorization("GET", &url, &[], &keys, &Extra { version: true, ..Extra::default() });
        let secret = |t: &str| (t == "tok").then(|| "ts".to_owned());
        assert!(verify("GET", &url, &header, ("ck", "cs"), secret).is_some());
        assert!(verify("POST", &url, &header, ("ck", "cs"), secret).is_none(), "another method");
        let other = url::Url::parse("https://api.x.com/1.1/account/verify_credentials.json?a=c").unwrap();
        assert!(verify("GET", &other, &header, ("ck", "cs"), secret).is_none(), "another query");
        assert!(verify("GET", &url, &header, ("ck", "other"), secret).is_none(), "another consumer secret");
        assert!(verify("GET", &url, &header, ("ck", "cs"), |_| Some("x".into())).is_none(), "another token secret");
        assert!(verify("GET", &url, &header, ("ck", "cs"), |_| None).is_none(), "an unknown token");
    }

    /// RFC 5849 §1.2: the photo request of the example, token credentials.
    #[test]
    fn the_rfc_5849_example_signs_as_the_rfc_says() {
        let url = url::Url::parse("http://photos.example.net/photos?file=vacation.jpg&size=original").unwrap();
        let keys = Keys {
            consumer_key: "dpf43f3p2l4k3l03",
            consumer_secret: "kd94hf93k423kf44",
            token: Some(("nnch734d00sl2jdk", "pfkkdhi9sl3r4s00")),
        };
        let extra = Extra { nonce: Some("chapoH"), timestamp: Some(137131202), ..Extra::default() };
        let header = authorization("GET", &url, &[], &keys, &extra);
        assert_eq!(signature(&header), "MdpQcU8iPSUjWoN/UDMsK2sui9I=", "{header}");
        assert!(header.starts_with("OAuth ") && header.contains("oauth_token=\"nnch734d00sl2jdk\""));
        assert!(
            !header.contains("pfkkdhi9sl3r4s00") && !header.contains("kd94hf93k423kf44"),
            "no secret in the header"
        );
    }

    /// X's "Creating a signature" example: a query parameter, a form body
    /// with characters that need encoding, and token credentials.
    #[test]
    fn the_x_developer_example_signs_as_x_publishes() {
        let url = url::Url::parse("https://api.twitter.com/1.1/statuses/update.json?include_entities=true").unwrap();
        let form = vec![("status".to_owned(), "Hello Ladies + Gentlemen, a signed OAuth request!".to_owned())];
        let keys = Keys {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog",
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            token: Some((
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
                "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
            )),
        };
        let extra = Extra {
            nonce: Some("kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            timestamp: Some(1318622958),
            version: true,
            ..Extra::default()
        };
        let header = authorization("POST", &url, &form, &keys, &extra);
        assert_eq!(signature(&header), "hCtSmYh+iHYCEqBWrE7C7hYmtUk=", "{header}");
    }

    #[test]
    fn flow_steps_carry_their_callback_and_verifier_and_fresh_nonces() {
        let url = url::Url::parse("https://api.x.com/oauth/request_token").unwrap();
        let keys = Keys { consumer_key: "ck", consumer_secret: "cs", token: None };
        let callback = "https://connections.example.com/v1/oauth/callback";
        let a = authorization("POST", &url, &[], &keys, &Extra { callback: Some(callback), ..Extra::default() });
        assert!(a.contains("oauth_callback=\"https%3A%2F%2Fconnections.example.com%2Fv1%2Foauth%2Fcallback\""), "{a}");
        let b = authorization("POST", &url, &[], &keys, &Extra { callback: Some(callback), ..Extra::default() });
        assert_ne!(signature(&a), signature(&b), "a fresh nonce each time");
        let keys = Keys { token: Some(("temp", "temp-secret")), ..keys };
        let c = authorization("POST", &url, &[], &keys, &Extra { verifier: Some("v123"), ..Extra::default() });
        assert!(c.contains("oauth_verifier=\"v123\"") && c.contains("oauth_token=\"temp\""), "{c}");
    }
}
