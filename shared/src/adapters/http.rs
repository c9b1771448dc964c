//! The platform HTTP client: follows no redirects (a redirect is answered to
//! the caller, never followed with credentials attached), with connect and
//! total timeouts, and a body size cap. It connects only to addresses the
//! network policy allows (`domain::network`): a host written as an address
//! is checked before the request, and a name is resolved by a resolver that
//! drops every address the policy refuses, so the check is on the address
//! the client connects to (DNS rebinding cannot slip past it).

use async_trait::async_trait;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::error::HttpError;
use crate::domain::network::{address_allowed, literal_address};
use crate::ports::PlatformHttp;

/// A name that resolved to no allowed address.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no address this service may connect to")]
struct ForbiddenHost(String);

/// Resolves with the system resolver and keeps only allowed addresses.
struct FilteringResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|a| address_allowed(a.ip(), allow_loopback)).collect();
            if allowed.is_empty() {
                return Err(Box::new(ForbiddenHost(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The largest platform response body read (larger ones are an error).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct ReqwestHttp {
    /// Built on the first request (its TLS roots with it): a function that
    /// never calls a platform never builds it.
    client: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    timeout: Duration,
    allow_loopback: bool,
}

impl ReqwestHttp {
    /// `allow_loopback`: whether platforms on this machine may be reached
    /// (the local stack's sandboxes, the tests' fake platforms); no other
    /// internal address ever is.
    pub fn new(timeout: Duration, allow_loopback: bool) -> Result<Self, HttpError> {
        Ok(Self { client: Arc::new(std::sync::OnceLock::new()), timeout, allow_loopback })
    }

    fn client(&self) -> Result<&reqwest::Client, HttpError> {
        let (timeout, allow_loopback) = (self.timeout, self.allow_loopback);
        self.client
            .get_or_init(|| Self::build(timeout, allow_loopback).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HttpError::Other(e.clone()))
    }

    fn build(timeout: Duration, allow_loopback: bool) -> Result<reqwest::Client, reqwest::Error> {
        super::tls::client_builder()
            .dns_resolver(Arc::new(FilteringResolver { allow_loopback }))
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("connections-service/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

fn classify(e: reqwest::Error) -> HttpError {
    // reqwest's Display may include the URL, and a URL may carry an app's
    // credentials where a platform demands them in the query (TikTok's
    // advertiser/get): never keep it.
    let e = e.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(forbidden) = s.downcast_ref::<ForbiddenHost>() {
            return HttpError::ForbiddenAddress(forbidden.0.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_connect() {
        HttpError::Connect(e.to_string())
    } else {
        HttpError::Other(e.to_string())
    }
}

#[async_trait]
impl PlatformHttp for ReqwestHttp {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request).map_err(classify)?;
        // A host written as an address is connected to as is: check it here
        // (the URL parser has normalised `2130706433`, `0x7f.1` and the like).
        if let Some(ip) = literal_address(request.url()) {
            if !address_allowed(ip, self.allow_loopback) {
                return Err(HttpError::ForbiddenAddress(ip.to_string()));
            }
        }
        let mut response = self.client()?.execute(request).await.map_err(classify)?;
        let mut builder = http::Response::builder().status(response.status());
        if let Some(headers) = builder.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::Other(format!("response larger than {MAX_RESPONSE_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(Bytes::from(body)).map_err(|e| HttpError::Other(e.to_string()))
    }
}
