//! The AWS SDK's HTTP client: reqwest, the client the platform adapter uses,
//! with the same TLS configuration (`adapters::tls`: rustls, ring, roots
//! compiled in). The SDK's own hyper client would link a second HTTP stack
//! with HTTP/2 (about 500 KB of the function binary and a dozen crates of
//! the build) for services this service reaches over HTTP/1.1.
//!
//! What it keeps of the SDK's client: a connection pool per timeout setting
//! the SDK asks for, built on the first request (a client that is created
//! and never used builds nothing), no redirects followed, streaming bodies
//! both ways, and errors sorted the way the SDK's retry policy reads them
//! (a timeout or an I/O failure is retried, a request that could not be
//! built is not).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The HTTP client every AWS SDK client of the process shares.
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestSdkClient::default())
}

type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct ReqwestSdkClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for ReqwestSdkClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(timeouts)
            .or_insert_with(|| SharedHttpConnector::new(Connector { timeouts, client: OnceLock::new() }))
            .clone()
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("reqwest", Some(Cow::Borrowed("0.13"))))
    }
}

#[derive(Debug)]
struct Connector {
    timeouts: Timeouts,
    client: OnceLock<Result<reqwest::Client, String>>,
}

/// A reqwest client that could not be built (its TLS configuration).
#[derive(Debug, thiserror::Error)]
#[error("the AWS SDK's HTTP client could not be built: {0}")]
struct BuildFailed(String);

impl Connector {
    fn client(&self) -> Result<&reqwest::Client, BuildFailed> {
        let (connect, read) = self.timeouts;
        self.client
            .get_or_init(|| {
                let mut builder = crate::adapters::tls::client_builder();
                if let Some(connect) = connect {
                    builder = builder.connect_timeout(connect);
                }
                if let Some(read) = read {
                    builder = builder.read_timeout(read);
                }
                builder.build().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| BuildFailed(e.clone()))
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match self.client() {
            Ok(client) => client.clone(),
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::other(Box::new(e), None))),
        };
        let request = match request.try_into_http1x() {
            Ok(request) => request.map(reqwest::Body::wrap),
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(e)))),
        };
        let request = match reqwest::Request::try_from(request) {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(e)))),
        };
        HttpConnectorFuture::new(async move {
            let response: http::Response<reqwest::Body> = client.execute(request).await.map_err(sorted)?.into();
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}

/// A reqwest error as the SDK's retry policy reads it. reqwest reports a
/// connection closed or reset while the request was sent as a "request"
/// error: that is an I/O failure the SDK retries (an idle pooled connection
/// the service closed is the common case), not a mistake in the request.
fn sorted(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(Box::new(e))
    } else if e.is_connect() {
        ConnectorError::io(Box::new(e)).never_connected()
    } else if e.is_builder() {
        ConnectorError::user(Box::new(e))
    } else if e.is_request() || e.is_body() || e.is_decode() {
        ConnectorError::io(Box::new(e))
    } else {
        ConnectorError::other(Box::new(e), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::loopback;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;

    fn connector(connect: Duration, read: Duration) -> SharedHttpConnector {
        crate::adapters::tls::install_default_provider();
        let settings = HttpConnectorSettings::builder().connect_timeout(connect).read_timeout(read).build();
        let components = RuntimeComponentsBuilder::for_tests().build().unwrap();
        sdk_http_client().http_connector(&settings, &components)
    }

    fn request(url: String, body: &'static str) -> HttpRequest {
        HttpRequest::try_from(http::Request::builder().method("PUT").uri(url).body(SdkBody::from(body)).unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn a_request_and_its_response_pass_through_whole_and_a_redirect_is_not_followed() {
        let redirect = "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/\r\nx-amz-request-id: r1\r\nContent-Length: 4\r\n\r\npong";
        let (base, server) = loopback::scripted(vec![Some(redirect.into())]).await;
        let response = connector(Duration::from_secs(1), Duration::from_secs(5))
            .call(request(format!("{base}/bucket/key?x-id=PutObject"), "ping"))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 307, "answered as is, not followed");
        assert_eq!(response.headers().get("x-amz-request-id"), Some("r1"));
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        assert_eq!(&body[..], b"pong");
        let seen = &server.await.unwrap()[0];
        assert!(seen.starts_with("PUT /bucket/key?x-id=PutObject HTTP/1.1\r\n"), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("content-length: 4\r\n"), "{seen}");
        assert!(seen.ends_with("\r\n\r\nping"), "the body whole: {seen}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let e = connector(Duration::from_secs(1), Duration::from_secs(1))
            .call(request(format!("http://{address}/"), ""))
            .await
            .unwrap_err();
        assert!(e.is_io(), "{e:?}");
    }

    #[tokio::test]
    async fn a_service_that_does_not_answer_is_a_timeout_the_sdk_retries() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (done, wait) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            let _ = wait.await;
        });
        let e = connector(Duration::from_secs(1), Duration::from_millis(50))
            .call(request(format!("http://{address}/"), "ping"))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        done.send(()).unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_an_io_error_the_sdk_retries() {
        let (base, server) = loopback::scripted(vec![None]).await;
        let e = connector(Duration::from_secs(1), Duration::from_secs(5))
            .call(request(format!("{base}/"), "ping"))
            .await
            .unwrap_err();
        assert!(e.is_io(), "{e:?}");
        server.await.unwrap();
    }
}
