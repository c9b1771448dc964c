//! The deployer's backend using a connection: the proxy forwards a request
//! to the platform's API with the connection's credentials applied the way
//! the catalog declares (refreshing once on a 401 through the shared
//! single-flight path), and only ever to the platform's own API host; the
//! credentials route (off unless the deployment turns it on) hands out a
//! fresh access token. Every call is recorded in the workspace's audit log.

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};

use super::grants::{credentials, CredError, Creds};
use super::refresh::{self, RefreshError};
use super::App;
use crate::catalog::PlatformEntry;
use crate::domain::audit::{AuditRecord, ServiceRoute};
use crate::domain::error::Error;
use crate::domain::ids::{ConnectionId, WorkspaceId};
use crate::domain::{Caller, Connection, Credential, Role, Status};
use crate::platform::{self, Envelope};

/// The longest platform wait the proxy sits out for its caller.
const MAX_THROTTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How many throttled answers the proxy waits out for one call.
const MAX_THROTTLE_WAITS: u32 = 2;

/// A service calling for a workspace.
#[derive(Clone, Debug)]
pub struct ServiceCaller {
    /// Its verified identity (an IAM ARN, or the local service token's name).
    pub id: String,
    pub workspace_id: WorkspaceId,
}

/// A request to forward.
pub struct Forward {
    pub method: http::Method,
    /// Below the platform's API base, as sent (percent-encoded), no leading `/`.
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<http::HeaderValue>,
    pub accept: Option<http::HeaderValue>,
    pub body: Bytes,
}

impl Forward {
    /// `METHOD /path` for the audit log (never the query: it may carry data).
    pub fn request_line(&self) -> String {
        format!("{} /{}", self.method, self.path)
    }
}

/// Headers of the platform's answer that reach the caller: its type, its
/// paging and its rate-limit state (so the caller can pace itself).
fn passes_back(name: &http::HeaderName) -> bool {
    let n = name.as_str();
    matches!(n, "content-type" | "retry-after" | "link" | "etag" | "last-modified" | "x-request-id")
        || n.starts_with("x-ratelimit")
        || n.starts_with("x-rate-limit")
        || n.starts_with("ratelimit")
        || n.starts_with("x-amzn-ratelimit")
        || n == "x-shopify-shop-api-call-limit"
        || n.starts_with("x-business-use-case-usage")
        || n.starts_with("x-app-usage")
}

/// Forwards one request; the platform's answer comes back as it is (status,
/// body, the headers above), whatever its status.
pub async fn proxy(
    app: &App,
    caller: &ServiceCaller,
    id: &ConnectionId,
    forward: Forward,
) -> Result<http::Response<Bytes>, Error> {
    let c = usable(app, caller, id).await?;
    let entry = app.catalog.get(c.platform.as_str())?;
    let (mut creds, vars, extra) = credentials(app, &c).await.map_err(lost)?;
    let url = target(entry, &vars, &forward.path, forward.query.as_deref())?;
    let body = (!forward.body.is_empty() || forward.method != http::Method::GET).then(|| {
        let content_type =
            forward.content_type.clone().unwrap_or_else(|| http::HeaderValue::from_static("application/json"));
        (forward.body.clone(), content_type)
    });
    let (mut refreshed, mut waited) = (false, 0);
    loop {
        let mut request = platform::api_call(
            entry,
            forward.method.clone(),
            url.clone(),
            &vars,
            &creds.as_credentials(&extra),
            body.clone(),
        )?;
        if let Some(accept) = &forward.accept {
            request.headers_mut().insert(http::header::ACCEPT, accept.clone());
        }
        let response = app.http.send(request).await?;
        // Only a grant that can be renewed is renewed on a 401: for one that
        // cannot (OAuth 1.0a, BigCommerce), a proxied request's 401 says
        // nothing of the grant as a whole; the sweep's probe judges it.
        let renewable = entry.oauth.as_ref().is_some_and(|o| o.refresh.kind.is_refreshable());
        let refused = renewable
            && (response.status() == http::StatusCode::UNAUTHORIZED
                || matches!(platform::envelope(entry, response.body()), Envelope::Revoked(_)));
        if let (true, false, Creds::OAuth { authorization, access }) = (refused, refreshed, &creds) {
            refreshed = true;
            let (auth, stale) = (authorization.clone(), access.expose_secret().to_owned());
            match refresh::refresh(app, &c.workspace_id, &auth, Some(&stale)).await {
                Ok(fresh) => {
                    creds = Creds::OAuth { authorization: auth, access: SecretString::from(fresh.access_token) };
                    continue;
                }
                Err(RefreshError::Lost(reason)) => return Err(Error::ConnectionDisconnected { reason }),
                Err(RefreshError::Transient) => return Err(Error::RefreshPending),
            }
        }
        // Throttled with a short wait (`Retry-After`, or the GraphQL cost
        // budget): waited out here, at most twice; a longer wait goes back
        // to the caller with the platform's `Retry-After`.
        let throttled = response.status() == http::StatusCode::TOO_MANY_REQUESTS
            || matches!(platform::envelope(entry, response.body()), Envelope::Throttled(_));
        if throttled && waited < MAX_THROTTLE_WAITS {
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_secs);
            if let Some(wait) = retry_after.or_else(|| platform::cost_wait(entry, response.body())) {
                if wait <= MAX_THROTTLE_WAIT {
                    waited += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
        }
        let (parts, body) = response.into_parts();
        let mut answer = http::Response::builder().status(parts.status);
        for (name, value) in parts.headers.iter().filter(|(n, _)| passes_back(n)) {
            answer = answer.header(name, value);
        }
        return answer.body(body).map_err(|e| Error::Config(format!("proxy answer: {e}")));
    }
}

/// A fresh access token of an OAuth connection and when it expires
/// (renewed first when it is within the refresh margin).
pub struct IssuedToken {
    pub access_token: SecretString,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub platform: String,
    pub scopes: Vec<String>,
}

pub async fn access_token(app: &App, caller: &ServiceCaller, id: &ConnectionId) -> Result<IssuedToken, Error> {
    if !app.config.enable_credentials_route {
        return Err(Error::CredentialsRouteDisabled);
    }
    let c = usable(app, caller, id).await?;
    let Credential::Authorization { authorization_id } = &c.credential else {
        return Err(Error::NotAnOAuthConnection);
    };
    let auth = app.repo.authorization(&c.workspace_id, authorization_id).await?.value;
    if let Status::Disconnected { reason } = auth.status {
        return Err(Error::ConnectionDisconnected { reason });
    }
    let tokens = match refresh::for_use(app, &auth).await? {
        refresh::ForUse::Ready(tokens) => tokens,
        refresh::ForUse::Lost(reason) => return Err(Error::ConnectionDisconnected { reason }),
        refresh::ForUse::Expiring(_) => return Err(Error::RefreshPending),
    };
    Ok(IssuedToken {
        expires_at: tokens.expires_at,
        scopes: tokens.scopes.clone(),
        access_token: SecretString::from(tokens.access_token),
        platform: c.platform.to_string(),
    })
}

/// A connection of the caller's workspace that has credentials to use.
async fn usable(app: &App, caller: &ServiceCaller, id: &ConnectionId) -> Result<Connection, Error> {
    let c = app.repo.connection(&caller.workspace_id, id).await?.value;
    if let Status::Disconnected { reason } = c.status {
        return Err(Error::ConnectionDisconnected { reason });
    }
    let entry = app.catalog.get(c.platform.as_str())?;
    if entry.api.is_none() || matches!(c.credential, Credential::FileUpload) {
        return Err(Error::NoPlatformApi);
    }
    Ok(c)
}

fn lost(e: CredError) -> Error {
    match e {
        CredError::Lost(reason) => Error::ConnectionDisconnected { reason },
        CredError::Other(e) => e,
    }
}

/// The platform URL of `path` below the API base: no dot segments, no
/// encoded separators, and the result must still be on the base's scheme,
/// host and port, under its path.
pub fn target(
    entry: &PlatformEntry,
    vars: &std::collections::BTreeMap<String, String>,
    path: &str,
    query: Option<&str>,
) -> Result<url::Url, Error> {
    let base = platform::api_url(entry, "", vars)?;
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        if segment.is_empty() && i + 1 < segments.len() {
            return Err(Error::PathNotAllowed("an empty segment (`//`)"));
        }
        if decoded == "." || decoded == ".." {
            return Err(Error::PathNotAllowed("a `.` or `..` segment"));
        }
        if decoded.contains(['/', '\\', '?', '#', '@']) || segment.contains(['\\', '@']) {
            return Err(Error::PathNotAllowed("an encoded separator"));
        }
    }
    let raw = format!("{}/{}", base.as_str().trim_end_matches('/'), path);
    let mut url = url::Url::parse(&raw).map_err(|_| Error::PathNotAllowed("not a URL path"))?;
    let same_place = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.path().starts_with(base.path().trim_end_matches('/'));
    if !same_place {
        return Err(Error::PathNotAllowed("it leaves the platform's API"));
    }
    url.set_query(query.filter(|q| !q.is_empty()));
    Ok(url)
}

/// Records one service call (what was answered, never a token).
pub async fn audit(
    app: &App,
    caller: &ServiceCaller,
    connection: &str,
    route: ServiceRoute,
    request: Option<String>,
    status: u16,
    error_code: Option<String>,
) -> Result<(), Error> {
    let now = app.clock.now();
    let record = AuditRecord {
        id: AuditRecord::new_id(),
        workspace_id: caller.workspace_id.clone(),
        caller: caller.id.clone(),
        connection_id: connection.chars().take(64).collect(),
        route,
        request: request.map(|r| r.chars().take(512).collect()),
        status,
        error_code,
        at: now,
        kept_until: now + chrono::Duration::days(i64::from(app.config.audit_retention_days)),
    };
    app.repo.put_audit(&record).await.inspect_err(|e| {
        tracing::error!(error = %e, connection, "a service call was not audited");
    })
}

/// `GET /v1/audit`: the workspace's service calls, newest first (admins).
pub async fn audit_log(
    app: &App,
    caller: &Caller,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<AuditRecord>, Option<String>), Error> {
    caller.require(Role::Admin)?;
    app.repo.audit_page(&caller.workspace_id, cursor, limit.clamp(1, 100)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogOptions};

    #[test]
    fn a_path_stays_below_the_platforms_api_base() {
        let catalog = Catalog::load(&CatalogOptions::default()).unwrap();
        let stripe = catalog.get("stripe").unwrap();
        let vars = Default::default();
        // Below the catalog's base (Stripe's is https://api.stripe.com/v1).
        let ok = target(stripe, &vars, "charges/ch_1", Some("limit=3")).unwrap();
        assert_eq!(ok.as_str(), "https://api.stripe.com/v1/charges/ch_1?limit=3");
        let slash = target(stripe, &vars, "charges/", None).unwrap();
        assert_eq!(slash.as_str(), "https://api.stripe.com/v1/charges/", "a trailing slash is kept");
        for bad in
            ["../x", "v1/../../x", "./v1", "v1/%2e%2e/x", "v1//x", "%2f%2fevil.example/x", "v1/a%5Cb", "@evil.example"]
        {
            assert!(matches!(target(stripe, &vars, bad, None), Err(Error::PathNotAllowed(_))), "{bad}");
        }
    }
}
