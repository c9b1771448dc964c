//! Development tokens: HS256 JWTs signed by a local key, standing in for the
//! identity provider whose tokens API Gateway verifies in AWS. Only the local
//! stack has this; the Lambda builds do not.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
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
                let key = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| std::io::Error::other(format!("{} is not base64", path.display())))?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let key = fresh();
                std::fs::write(&path, base64::engine::general_purpose::STANDARD.encode(&key))?;
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
        if let Some(email) = &request.email {
            let ok = email.len() <= 254 && email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
            if !ok {
                return Err(Error::invalid("email", "must be an email address"));
            }
        }
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            workspace_id: workspace.to_string(),
            role: role.as_str().into(),
            email: request.email.clone(),
            iat: now,
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
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.key), &validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token expired",
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
