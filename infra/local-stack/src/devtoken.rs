//! Development tokens: HS256 JWTs signed by a local key, standing in for the
//! identity provider whose tokens API Gateway verifies in AWS. Only the local
//! stack has this; the Lambda builds do not.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::HashMap;
use std::path::Path;

use shared::domain::ids::{UserId, WorkspaceId};
use shared::domain::Role;
use shared::Error;

pub const ISSUER: &str = "connections-local";
pub const AUDIENCE: &str = "connections";
const LIFETIME_SECONDS: i64 = 12 * 3600;

/// The body of `POST /dev/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub workspace_id: String,
    pub user_id: String,
    pub role: String,
    pub email: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    workspace_id: String,
    role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    iat: i64,
    /// Not before: a token is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    exp: i64,
}

pub struct DevTokens {
    key: Vec<u8>,
}

impl DevTokens {
    /// The key from `LOCAL_JWT_SECRET`, else `dev-jwt.key` in the data folder
    /// (created on first run), else a fresh random one.
    pub fn load_or_create(data_dir: Option<&Path>) -> std::io::Result<Self> {
        if let Ok(secret) = std::env::var("LOCAL_JWT_SECRET") {
            if secret.len() >= 32 {
                return Ok(Self { key: secret.into_bytes() });
            }
            return Err(std::io::Error::other("LOCAL_JWT_SECRET must be at least 32 characters"));
        }
        let fresh = || {
            use rand::RngCore;
            let mut key = vec![0u8; 32];
            rand::rng().fill_bytes(&mut key);
            key
        };
        let Some(dir) = data_dir else {
            return Ok(Self { key: fresh() });
        };
        let path = dir.join("dev-jwt.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // Only its owner may read the signing key.
                restrict_to_owner(&path)?;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| std::io::Error::other(format!("{} is not base64", path.display())))?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let key = fresh();
                write_owner_only(&path, base64::engine::general_purpose::STANDARD.encode(&key).as_bytes())?;
                Ok(Self { key })
            }
            Err(e) => Err(e),
        }
    }

    pub fn with_key(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// Mints a token for a member; returns it with its expiry (epoch seconds).
    pub fn mint(&self, request: &TokenRequest, now: i64) -> Result<(String, i64), Error> {
        let workspace = WorkspaceId::parse(&request.workspace_id)?;
        let user = UserId::parse(&request.user_id)?;
        let role = Role::parse(&request.role)?;
        let email = request.email.as_deref().map(shared::domain::input::check_email).transpose()?;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            workspace_id: workspace.to_string(),
            role: role.as_str().into(),
            email,
            iat: now,
            nbf: Some(now),
            exp: now + LIFETIME_SECONDS,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.key))
            .map_err(|e| Error::Config(format!("signing: {e}")))?;
        Ok((token, claims.exp))
    }

    /// Verifies signature, issuer, audience and expiry; returns the claims
    /// as API Gateway passes them (strings).
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, &'static str> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.key), &validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token expired",
                    jsonwebtoken::errors::ErrorKind::ImmatureSignature => "the token is not valid yet",
                    _ => "the token is not valid",
                }
            })?;
        let c = data.claims;
        let mut claims = HashMap::from([
            ("iss".to_owned(), c.iss),
            ("aud".to_owned(), c.aud),
            ("sub".to_owned(), c.sub),
            ("workspace_id".to_owned(), c.workspace_id),
            ("role".to_owned(), c.role),
            ("exp".to_owned(), c.exp.to_string()),
            ("iat".to_owned(), c.iat.to_string()),
        ]);
        if let Some(email) = c.email {
            claims.insert("email".into(), email);
        }
        Ok(claims)
    }
}

/// Creates a file only its owner can read and write (0600 on Unix).
fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// Makes an existing key file readable by its owner only.
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _ = path;
    Ok(())
}

/// The local stand-in for AWS IAM on the service routes: one bearer token
/// for the deployer's backend, kept in the data folder (`service-token`,
/// owner-only) or given as `LOCAL_SERVICE_TOKEN`.
pub struct ServiceToken {
    digest: [u8; 32],
}

impl ServiceToken {
    /// The name the audit log gives callers with this token.
    pub const CALLER: &'static str = "local-service-token";

    pub fn new(token: &str) -> Self {
        Self { digest: sha2::Sha256::digest(token.as_bytes()).into() }
    }

    pub fn load_or_create(data_dir: Option<&Path>) -> std::io::Result<(Self, Option<std::path::PathBuf>)> {
        if let Ok(token) = std::env::var("LOCAL_SERVICE_TOKEN") {
            if token.len() >= 32 {
                return Ok((Self::new(&token), None));
            }
            return Err(std::io::Error::other("LOCAL_SERVICE_TOKEN must be at least 32 characters"));
        }
        let fresh = || {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            format!("svc_{}", hex_of(&bytes))
        };
        let Some(dir) = data_dir else {
            return Ok((Self::new(&fresh()), None));
        };
        let path = dir.join("service-token");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                restrict_to_owner(&path)?;
                Ok((Self::new(text.trim()), Some(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let token = fresh();
                write_owner_only(&path, token.as_bytes())?;
                Ok((Self::new(&token), Some(path)))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a presented token is this one (compared as digests, so the
    /// comparison's time says nothing about the token).
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
        digest == self.digest
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TokenRequest {
        serde_json::from_value(serde_json::json!({"workspace_id": "ws", "user_id": "u", "role": "staff"})).unwrap()
    }

    #[test]
    fn the_key_file_is_readable_by_its_owner_only() {
        let dir = std::env::temp_dir().join(format!("devtoken-{}", uuid::Uuid::new_v4().simple()));
        let tokens = DevTokens::load_or_create(Some(&dir)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("dev-jwt.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // A key file left readable by all is tightened when loaded.
            std::fs::set_permissions(dir.join("dev-jwt.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
            let again = DevTokens::load_or_create(Some(&dir)).unwrap();
            assert_eq!(again.key, tokens.key);
            let mode = std::fs::metadata(dir.join("dev-jwt.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_token_is_refused_before_its_not_before() {
        let tokens = DevTokens::with_key(vec![7; 32]);
        let now = chrono::Utc::now().timestamp();
        let (ok, _) = tokens.mint(&request(), now).unwrap();
        assert!(tokens.verify(&ok).is_ok());
        let (early, _) = tokens.mint(&request(), now + 3600).unwrap();
        assert_eq!(tokens.verify(&early).unwrap_err(), "the token is not valid yet");
    }

    #[test]
    fn the_service_token_is_checked_whole_and_kept_owner_only() {
        let dir = std::env::temp_dir().join(format!("svc-token-{}", uuid::Uuid::new_v4().simple()));
        let (token, path) = ServiceToken::load_or_create(Some(&dir)).unwrap();
        let path = path.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(token.verify(&text) && text.starts_with("svc_") && text.len() == 68);
        assert!(!token.verify(&text[..67]) && !token.verify("") && !token.verify(&format!("{text}x")));
        let (again, _) = ServiceToken::load_or_create(Some(&dir)).unwrap();
        assert!(again.verify(&text), "the same token after a restart");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
