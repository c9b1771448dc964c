//! One TLS trust configuration for every HTTPS client of a process: the
//! platform client (reqwest) and the AWS SDK's client trust the same root
//! certificates, compiled into the binary (Mozilla's list, as published by
//! the `webpki-root-certs` crate), so a cold start reads no certificate
//! file: the system store held 146 certificates, read and parsed twice (once
//! per client) before the first request. Each client builds its
//! configuration once, on its first connection.

use std::sync::{Arc, LazyLock, OnceLock};

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine;

/// Makes ring the process's default rustls provider, for HTTP clients built
/// outside this module (tests, benches); idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The rustls configuration of the platform client, built on first use.
pub fn rustls_config() -> rustls::ClientConfig {
    static CONFIG: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    });
    CONFIG.clone()
}

/// The same certificates as PEM, as the AWS SDK's trust store takes them
/// (it parses them when it opens its first connection, not at start).
fn roots_pem() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2200);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let text = b64.encode(cert.as_ref());
        for line in text.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// The AWS SDK's HTTPS client (rustls with ring, the provider every client
/// of the process shares: AWS-LC, the SDK's default, was a quarter of a clean
/// build's CPU time and 1.5 MB of the zip),
/// trusting the compiled-in roots instead of the system store, and building
/// its connector on the first request: the SDK's own client builds one (and
/// its root store) as each service client is created, six times at start.
pub fn aws_http_client() -> SharedHttpClient {
    SharedHttpClient::new(OnFirstRequest(OnceLock::new()))
}

fn sdk_https_client() -> SharedHttpClient {
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(roots_pem());
    let context = TlsContext::builder().with_trust_store(trust).build().expect("a trust store of PEM certificates");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// The SDK's HTTP client, built when the first request needs a connector,
/// minus the connector it builds to validate each client's configuration
/// (connectors are still built once per setting, when a request needs one).
#[derive(Debug)]
struct OnFirstRequest(OnceLock<SharedHttpClient>);

impl HttpClient for OnFirstRequest {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.get_or_init(sdk_https_client).http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(std::borrow::Cow::Borrowed("1.x"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clients_trust_the_same_compiled_in_roots() {
        let pem = roots_pem();
        let parsed: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
            .collect::<Result<Vec<rustls_pki_types::CertificateDer>, _>>()
            .unwrap();
        assert_eq!(parsed.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(parsed.len() > 100, "Mozilla's list");
        assert_eq!(parsed[0].as_ref(), webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref());
        // Every root the SDK gets is one the platform client trusts too.
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(parsed);
        assert!(added > 100);
    }
}
