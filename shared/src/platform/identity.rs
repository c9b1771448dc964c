//! The identity request of a platform: who the granted account is. It
//! doubles as the connection test at connect, and as the sweep's probe of
//! grants with no known expiry.

use bytes::Bytes;
use std::collections::BTreeMap;

use super::{self as platform, Credentials};
use crate::catalog::PlatformEntry;
use crate::domain::error::Error;
use crate::domain::ExternalAccount;
use crate::ports::PlatformHttp;

/// Why the identity request did not name an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// 5xx, 429, a redirect, or no answer: try again later.
    Unavailable,
    /// 403: the account lacks a role or permission.
    Forbidden,
    /// Another refusal, or an answer that is not JSON.
    Failed,
    /// The catalog entry could not build the request.
    Internal,
}

/// The identity request, when the entry has one.
pub fn request(
    entry: &PlatformEntry,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
) -> Result<Option<http::Request<Bytes>>, Error> {
    let Some(spec) = &entry.identity else { return Ok(None) };
    let url = platform::api_url(entry, &spec.path, vars)?;
    match (&spec.graphql, &spec.soap) {
        (Some(q), _) => platform::graphql_post(entry, url, vars, creds, &q.query, serde_json::json!({})).map(Some),
        (None, Some(soap)) => platform::soap_post(entry, url, vars, creds, soap).map(Some),
        (None, None) => platform::api_get(entry, url, vars, creds).map(Some),
    }
}

/// The account the credentials belong to (`None` when the entry has no
/// identity request, or the answer names no account).
/// `known_id` is the account id the flow already knows (from the callback),
/// for entries whose identity answer gives only a name.
pub async fn identify(
    http: &dyn PlatformHttp,
    entry: &PlatformEntry,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
    known_id: Option<&str>,
) -> Result<Option<ExternalAccount>, IdentityError> {
    let Some(spec) = &entry.identity else { return Ok(None) };
    let Some(request) = request(entry, vars, creds).map_err(|_| IdentityError::Internal)? else { return Ok(None) };
    let response = http.send(request).await.map_err(|e| {
        tracing::warn!(platform = %entry.id, error = %e, "identity request failed");
        IdentityError::Unavailable
    })?;
    let status = response.status();
    match platform::envelope(entry, response.body()) {
        platform::Envelope::Throttled(_) => return Err(IdentityError::Unavailable),
        platform::Envelope::Revoked(_) | platform::Envelope::Denied(_) | platform::Envelope::Failed(_) => {
            return Err(IdentityError::Failed)
        }
        platform::Envelope::Clear => {}
    }
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS || status.is_redirection() {
        return Err(IdentityError::Unavailable);
    }
    if status == http::StatusCode::FORBIDDEN {
        return Err(IdentityError::Forbidden);
    }
    if !status.is_success() {
        return Err(IdentityError::Failed);
    }
    let doc = platform::document(response.body()).ok_or(IdentityError::Failed)?;
    let id =
        spec.account_id_pointer.as_deref().and_then(|p| platform::pointer_str(&doc, p)).or(known_id.map(str::to_owned));
    let name = spec.account_name_pointer.as_deref().and_then(|p| platform::pointer_str(&doc, p));
    Ok(id.map(|id| ExternalAccount { id, name }))
}
