//! The platform HTTP client: follows no redirects (a redirect is answered to
//! the caller, never followed with credentials attached), with connect and
//! total timeouts, and a body size cap.

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

use crate::domain::error::HttpError;
use crate::ports::PlatformHttp;

/// The largest platform response body read (larger ones are an error).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl ReqwestHttp {
    pub fn new(timeout: Duration) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("connections-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Other(e.to_string()))?;
        Ok(Self { client })
    }
}

fn classify(e: reqwest::Error) -> HttpError {
    // reqwest's Display may include the URL; URLs we build carry no secrets
    // (tokens go in headers or bodies), but strip it anyway.
    let e = e.without_url();
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
        let mut response = self.client.execute(request).await.map_err(classify)?;
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
