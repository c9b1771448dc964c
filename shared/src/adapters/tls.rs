//! One TLS trust configuration for every HTTPS client of a process: the
//! platform client, the AWS SDK's client and the S3 sink (all reqwest)
//! share one rustls configuration with ring and the root certificates
//! compiled into the binary (Mozilla's list as trust anchors, the
//! `webpki-roots` crate: the names and keys rustls checks against, ready to
//! use, 44 KB of the zip where the whole certificates were 95 KB and had to
//! be parsed), so a cold start reads no certificate file: the system store held 146 certificates,
//! read and parsed twice (once per client) before the first request. The
//! configuration is built once, on the first connection.

use std::sync::{Arc, LazyLock};

/// Makes ring the process's default rustls provider, for HTTP clients built
/// outside this module (tests, benches); idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client builder with what every client of the process shares:
/// this TLS configuration, and no redirect followed (a redirect is answered
/// to the caller, never followed with credentials attached).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).tls_backend_preconfigured(rustls_config())
}

/// The rustls configuration of every HTTPS client, built on first use.
fn rustls_config() -> rustls::ClientConfig {
    static CONFIG: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default protocol versions")
            .with_root_certificates(roots())
            .with_no_client_auth()
    });
    CONFIG.clone()
}

/// Mozilla's roots, as trust anchors.
fn roots() -> rustls::RootCertStore {
    rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_root_is_trusted() {
        assert!(roots().len() > 100, "Mozilla's list, every root taken");
        assert_eq!(roots().len(), webpki_roots::TLS_SERVER_ROOTS.len());
        let config = rustls_config();
        assert!(config.alpn_protocols.is_empty(), "HTTP/1.1 only: neither client links HTTP/2");
        assert!(client_builder().build().is_ok(), "reqwest takes the configuration");
    }
}
