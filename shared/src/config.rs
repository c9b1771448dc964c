//! Typed configuration, read once at cold start from the environment.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::domain::error::Error;
use crate::domain::messages::QueueKind;

/// The API's URL learnt from API Gateway's request context (one API a process).
static LEARNT_BASE_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Which adapter set backs the ports.
/// The default of `CALLBACK_BUDGET_SECONDS`: the callback function's timeout
/// (25 s in template.yaml) less 7 s for the state, vault and queue writes.
pub const DEFAULT_CALLBACK_BUDGET_SECONDS: u64 = 18;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// In-process adapters, persisted under `data_dir` (memory if `None`).
    Embedded { data_dir: Option<PathBuf> },
    /// AWS adapters; `endpoint` overrides the AWS endpoint (moto, LocalStack).
    Aws { endpoint: Option<String> },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub stage: String,
    pub backend: Backend,
    pub table_name: String,
    pub bucket_name: String,
    pub queue_urls: HashMap<QueueKind, String>,
    /// Secrets are named `{secret_prefix}/{workspace}/{owner}`.
    pub secret_prefix: String,
    /// The public base URL of the API (`https://api.example.com`); the OAuth
    /// redirect URI is exactly `{public_base_url}/v1/oauth/callback`.
    pub public_base_url: String,
    /// The customer-managed KMS key of the secrets the service creates.
    pub secrets_kms_key_id: Option<String>,
    /// The SES configuration set alert emails are sent with.
    pub ses_configuration_set: Option<String>,
    /// Origins allowed for CORS and for `return_to`, compared exactly.
    pub allowed_origins: Vec<String>,
    pub alert_sender: String,
    /// The deployer's brand on alert emails (`BRAND_*`).
    pub brand: crate::domain::email::Brand,
    pub catalog_overrides: Option<String>,
    pub sandbox_platforms: bool,
    /// Receives before a message goes to the DLQ (embedded queue; SQS uses
    /// the redrive policy of the template).
    pub max_receives: u32,
    /// Claim names in the JWT (a Cognito pool uses `custom:workspace_id`).
    pub claim_workspace: String,
    pub claim_role: String,
    /// Platform HTTP timeout.
    pub http_timeout_seconds: u64,
    /// Vault writes per second this process allows itself (refresh storms).
    pub vault_writes_per_second: u32,
    /// How many credentials share one Secrets Manager secret (a pack;
    /// 1 stores each in its own, as before packing).
    pub vault_pack_size: u64,
    /// The frontend's base URL, for links in emails (reconnect).
    pub app_base_url: String,
    /// Alerts that arrive within this window go out as one digest email.
    pub digest_window_seconds: u32,
    /// The largest file a presigned upload takes (checked before it is read).
    pub max_upload_bytes: u64,
    /// How long an automation upload token works.
    pub upload_token_days: u32,
    /// Whether platform requests may go to this machine (loopback): on for
    /// the local stack's sandboxes and the tests' fakes, off in AWS. No
    /// other internal address is ever reached.
    pub allow_loopback_platforms: bool,
    /// The time the OAuth callback gives the platform, all its requests
    /// together (token, long-lived exchange, identity); the callback
    /// function's timeout leaves room after it for storing the grant.
    pub callback_budget_seconds: u64,
    /// A caller must be a member of the workspace its token names, and the
    /// member's role is the one that counts (not the token's).
    pub require_membership: bool,
    /// How far back a first sync reads where the platform needs a start.
    pub history_days: u32,
    /// No connection syncs more often than this.
    pub sync_interval_floor_minutes: u32,
    /// How long sync runs are kept in a connection's history.
    pub run_retention_days: u32,
    /// The EventBridge bus events go to (aws backend; none: no bus).
    pub event_bus_name: Option<String>,
    /// The `source` of the service's events on the bus.
    pub event_source: String,
    /// The deployer's webhook, if events should also be POSTed there.
    pub webhook_url: Option<String>,
    /// The vault secret holding the webhook signing secret (`whsec_…`).
    pub webhook_secret_name: String,
    /// Deliveries of one event to the webhook before it is dead-lettered.
    pub webhook_max_attempts: u32,
    /// Whether `GET /v1/service/connections/{id}/credentials` hands out tokens.
    pub enable_credentials_route: bool,
    /// How long service calls stay in the audit log.
    pub audit_retention_days: u32,
}

impl Config {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let stage = get("STAGE").unwrap_or_else(|| "dev".into());
        let backend = match get("CONNECTIONS_BACKEND").as_deref() {
            None | Some("embedded") => Backend::Embedded { data_dir: get("DATA_DIR").map(PathBuf::from) },
            Some("aws") => Backend::Aws { endpoint: get("AWS_ENDPOINT_URL") },
            Some(other) => {
                return Err(Error::Config(format!("CONNECTIONS_BACKEND must be embedded or aws, not {other}")))
            }
        };
        let mut queue_urls = HashMap::new();
        for (kind, var) in [(QueueKind::Sync, "SYNC_QUEUE_URL"), (QueueKind::Notify, "NOTIFY_QUEUE_URL")] {
            if let Some(url) = get(var) {
                queue_urls.insert(kind, url);
            }
        }
        let number = |k: &str, default: u64| -> Result<u64, Error> {
            match get(k) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| Error::Config(format!("{k} must be a whole number"))),
            }
        };
        let flag = |k: &str, default: bool| -> Result<bool, Error> {
            match get(k).as_deref() {
                None => Ok(default),
                Some("1" | "true" | "yes") => Ok(true),
                Some("0" | "false" | "no") => Ok(false),
                Some(_) => Err(Error::Config(format!("{k} must be true or false"))),
            }
        };
        // On AWS, no PUBLIC_BASE_URL means the API's own URL, learnt from
        // the requests API Gateway passes (see `base_url`).
        let public_base_url = match (get("PUBLIC_BASE_URL"), &backend) {
            (Some(url), _) => url,
            (None, Backend::Aws { .. }) => String::new(),
            (None, Backend::Embedded { .. }) => "http://127.0.0.1:3000".into(),
        };
        if !public_base_url.is_empty() {
            url::Url::parse(&public_base_url)
                .map_err(|_| Error::Config("PUBLIC_BASE_URL must be an absolute URL".into()))?;
        }
        let secrets_kms_key_id = get("SECRETS_KMS_KEY_ID");
        let allowed_origins: Vec<String> = get("ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for o in &allowed_origins {
            let parsed =
                url::Url::parse(o).map_err(|_| Error::Config(format!("ALLOWED_ORIGINS: {o} is not an origin")))?;
            if parsed.origin().ascii_serialization() != *o {
                return Err(Error::Config(format!("ALLOWED_ORIGINS: {o} is not an origin (scheme://host[:port])")));
            }
        }
        let allow_loopback_platforms = flag("ALLOW_LOOPBACK_PLATFORMS", false)?;
        let webhook_url = get("WEBHOOK_URL");
        if let Some(w) = &webhook_url {
            let parsed = url::Url::parse(w).map_err(|_| Error::Config("WEBHOOK_URL must be an absolute URL".into()))?;
            let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if parsed.scheme() != "https" && !(allow_loopback_platforms && loopback && parsed.scheme() == "http") {
                return Err(Error::Config("WEBHOOK_URL must be an https URL".into()));
            }
        }
        let app_base_url =
            get("APP_BASE_URL").or_else(|| allowed_origins.first().cloned()).unwrap_or_else(|| public_base_url.clone());
        let brand = {
            let default = crate::domain::email::Brand::default();
            let product_name = get("BRAND_PRODUCT_NAME").unwrap_or(default.product_name);
            let logo_url = get("BRAND_LOGO_URL");
            if let Some(logo) = &logo_url {
                if url::Url::parse(logo).map(|u| u.scheme() != "https").unwrap_or(true) {
                    return Err(Error::Config(
                        "BRAND_LOGO_URL must be an https URL (mail clients block others)".into(),
                    ));
                }
            }
            let accent = get("BRAND_ACCENT_COLOR").unwrap_or(default.accent);
            if !crate::domain::email::valid_accent(&accent) {
                return Err(Error::Config(format!("BRAND_ACCENT_COLOR must be #rrggbb, not {accent}")));
            }
            crate::domain::email::Brand {
                sender_name: get("BRAND_SENDER_NAME").unwrap_or_else(|| format!("{product_name} alerts")),
                product_name,
                logo_url,
                accent,
                footer_address: get("BRAND_FOOTER_ADDRESS").unwrap_or_default(),
            }
        };
        let config = Config {
            brand,
            app_base_url,
            table_name: get("TABLE_NAME").unwrap_or_else(|| format!("connections-{stage}-state")),
            bucket_name: get("BUCKET_NAME").unwrap_or_else(|| format!("connections-{stage}-records")),
            secret_prefix: get("SECRET_PREFIX").unwrap_or_else(|| format!("connections/{stage}")),
            queue_urls,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            secrets_kms_key_id,
            ses_configuration_set: get("SES_CONFIGURATION_SET"),
            allowed_origins,
            alert_sender: get("ALERT_SENDER").unwrap_or_else(|| "alerts@example.com".into()),
            catalog_overrides: get("CATALOG_OVERRIDES"),
            sandbox_platforms: flag("SANDBOX_PLATFORMS", false)?,
            max_receives: number("MAX_RECEIVES", 5)? as u32,
            claim_workspace: get("CLAIM_WORKSPACE").unwrap_or_else(|| "workspace_id".into()),
            claim_role: get("CLAIM_ROLE").unwrap_or_else(|| "role".into()),
            http_timeout_seconds: number("HTTP_TIMEOUT_SECONDS", 20)?,
            vault_writes_per_second: number("VAULT_WRITES_PER_SECOND", 20)? as u32,
            vault_pack_size: number("VAULT_PACK_SIZE", 64)?.clamp(1, 500),
            digest_window_seconds: number("DIGEST_WINDOW_SECONDS", 60)?.min(900) as u32,
            max_upload_bytes: number("MAX_UPLOAD_BYTES", crate::domain::upload::LARGE_LIMITS.max_bytes)?
                .min(crate::domain::upload::LARGE_LIMITS.max_bytes),
            upload_token_days: number("UPLOAD_TOKEN_DAYS", 365)?.clamp(1, 3650) as u32,
            allow_loopback_platforms,
            event_bus_name: get("EVENT_BUS_NAME"),
            event_source: get("EVENT_SOURCE").unwrap_or_else(|| "connections-service".into()),
            webhook_secret_name: get("WEBHOOK_SECRET_NAME").unwrap_or_else(|| {
                format!("{}/webhook", get("SECRET_PREFIX").unwrap_or_else(|| format!("connections/{stage}")))
            }),
            webhook_url,
            webhook_max_attempts: number("WEBHOOK_MAX_ATTEMPTS", 8)?.clamp(1, 20) as u32,
            enable_credentials_route: flag("ENABLE_CREDENTIALS_ROUTE", false)?,
            audit_retention_days: number(
                "AUDIT_RETENTION_DAYS",
                u64::from(crate::domain::audit::DEFAULT_AUDIT_RETENTION_DAYS),
            )?
            .clamp(1, 3650) as u32,
            require_membership: flag("REQUIRE_MEMBERSHIP", false)?,
            history_days: number("HISTORY_DAYS", 730)?.clamp(1, 3650) as u32,
            run_retention_days: number("RUN_RETENTION_DAYS", 90)?.clamp(1, 3650) as u32,
            sync_interval_floor_minutes: number("SYNC_INTERVAL_FLOOR_MINUTES", 15)?.clamp(1, 1440) as u32,
            callback_budget_seconds: number("CALLBACK_BUDGET_SECONDS", DEFAULT_CALLBACK_BUDGET_SECONDS)?.clamp(1, 60),
            stage,
            backend,
        };
        if matches!(config.backend, Backend::Aws { .. }) {
            for kind in QueueKind::ALL {
                if !config.queue_urls.contains_key(&kind) {
                    return Err(Error::Config(format!(
                        "the aws backend needs {}_QUEUE_URL",
                        kind.as_str().to_uppercase()
                    )));
                }
            }
        }
        Ok(config)
    }

    /// The exact OAuth redirect URI of this deployment.
    pub fn callback_url(&self) -> String {
        format!("{}/v1/oauth/callback", self.base_url())
    }

    /// The API's public URL: PUBLIC_BASE_URL, else the one API Gateway
    /// serves this process from (learnt from the first request).
    pub fn base_url(&self) -> String {
        if self.public_base_url.is_empty() {
            LEARNT_BASE_URL.get().cloned().unwrap_or_default()
        } else {
            self.public_base_url.clone()
        }
    }

    /// Learns the API's URL from a request's context (the domain API
    /// Gateway served it on, never a header the client chose), when
    /// PUBLIC_BASE_URL is not set.
    pub fn learn_base_url(&self, domain_name: &str) {
        let plain =
            !domain_name.is_empty() && domain_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if self.public_base_url.is_empty() && plain {
            let _ = LEARNT_BASE_URL.set(format!("https://{domain_name}"));
        }
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, Error> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_embedded_and_in_memory() {
        let c = with(&[]).unwrap();
        assert_eq!(c.backend, Backend::Embedded { data_dir: None });
        assert_eq!(c.callback_url(), "http://127.0.0.1:3000/v1/oauth/callback");
        // On AWS without PUBLIC_BASE_URL: learnt from API Gateway's domain,
        // once, and only a plain host name.
        let aws = Config::from_lookup(|k| match k {
            "CONNECTIONS_BACKEND" => Some("aws".to_owned()),
            "SYNC_QUEUE_URL" | "NOTIFY_QUEUE_URL" => Some("https://sqs.example/q".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(aws.public_base_url, "");
        aws.learn_base_url("evil.example/path?");
        assert_eq!(aws.base_url(), "", "not a host name: not learnt");
        aws.learn_base_url("abc123.execute-api.eu-west-1.amazonaws.com");
        aws.learn_base_url("other.example.com");
        assert_eq!(aws.callback_url(), "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/oauth/callback");
        assert!(!c.sandbox_platforms);
    }

    #[test]
    fn a_webhook_is_https_or_loopback_where_loopback_is_allowed() {
        assert!(with(&[("WEBHOOK_URL", "https://hooks.example.com/x")]).is_ok());
        let plain = with(&[("WEBHOOK_URL", "http://hooks.example.com/x")]).unwrap_err();
        assert!(plain.to_string().contains("WEBHOOK_URL must be an https URL"), "{plain}");
        assert!(with(&[("WEBHOOK_URL", "http://127.0.0.1:9/x")]).is_err());
        assert!(with(&[("WEBHOOK_URL", "http://127.0.0.1:9/x"), ("ALLOW_LOOPBACK_PLATFORMS", "true")]).is_ok());
        assert!(with(&[("WEBHOOK_URL", "not a url")]).is_err());
        let c = with(&[("SECRET_PREFIX", "p")]).unwrap();
        assert_eq!((c.webhook_secret_name.as_str(), c.webhook_max_attempts), ("p/webhook", 8));
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, needle) in [
            (vec![("CONNECTIONS_BACKEND", "dynamo")], "CONNECTIONS_BACKEND"),
            (vec![("CONNECTIONS_BACKEND", "aws")], "SYNC_QUEUE_URL"),
            (vec![("ALLOWED_ORIGINS", "https://app.example.com/path")], "ALLOWED_ORIGINS"),
            (vec![("MAX_RECEIVES", "many")], "MAX_RECEIVES"),
            (vec![("SANDBOX_PLATFORMS", "maybe")], "SANDBOX_PLATFORMS"),
        ] {
            let err = with(&pairs).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn origins_compare_exactly() {
        let c = with(&[("ALLOWED_ORIGINS", "https://app.example.com, http://localhost:5173/")]).unwrap();
        assert!(c.origin_allowed("https://app.example.com"));
        assert!(c.origin_allowed("http://localhost:5173"));
        assert!(!c.origin_allowed("https://app.example.com.evil.com"));
        assert!(!c.origin_allowed("http://app.example.com"));
    }
}
