//! Short-lived access tokens kept out of the vault: sealed (AES-256-GCM)
//! under a key the vault holds, and stored in the authorization's item.
//!
//! A refresh that does not rotate the refresh token writes only the item,
//! so the vault is written when a long-lived credential changes (a grant, a
//! rotated refresh token, a key), never once an hour per grant. A sealed
//! token is bound to its authorization (the associated data), so it opens
//! nowhere else; one that does not open (another key, a tampered item) is
//! as good as absent: the vault's copy or a refresh takes its place.

use base64::Engine;
use chrono::{DateTime, Utc};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// An access token as the state store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedToken {
    /// The id of the key it was sealed with.
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the platform issued it (the newer of this and the vault's copy wins).
    pub obtained_at: DateTime<Utc>,
}

/// The key access tokens are sealed with (kept in the vault).
pub struct TokenKey {
    pub id: String,
    key: LessSafeKey,
    /// Signs links that act without a sign-in (email unsubscribe).
    links: ring::hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A new random vault value (the template generates one the same way:
    /// 64 letters and digits).
    pub fn generate() -> SecretString {
        SecretString::from(format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
    }

    /// The key from its vault value: the AES key is the value's SHA-256, the
    /// id a hash of it under another label (so a replaced value is a new
    /// key, and the id says nothing of the key). A value too short to hold
    /// a key's worth of chance is refused.
    pub fn from_secret(secret: &SecretString) -> Option<Self> {
        use ring::digest::{digest, SHA256};
        let value = secret.expose_secret().trim();
        if value.len() < 32 {
            return None;
        }
        let key = digest(&SHA256, value.as_bytes());
        let id = digest(&SHA256, format!("token-key-id:{value}").as_bytes());
        let id = format!("k{}", &hex::encode(id.as_ref())[..12]);
        let links = digest(&SHA256, format!("link-signing:{value}").as_bytes());
        Some(Self::from_bytes(id, key.as_ref(), links.as_ref()))
    }

    fn from_bytes(id: String, bytes: &[u8], links: &[u8]) -> Self {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte key"));
        Self { id, key, links: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, links) }
    }

    /// A signature of `message` for a link (HMAC-SHA256 under a key derived
    /// from the vault value under its own label, so it opens no token).
    pub fn sign_link(&self, message: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::hmac::sign(&self.links, message))
    }

    /// Whether `signature` is this key's signature of `message` (in constant time).
    pub fn verify_link(&self, message: &[u8], signature: &str) -> bool {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|tag| ring::hmac::verify(&self.links, message, &tag).is_ok())
    }

    /// Seals `access` for the authorization `bound_to`.
    pub fn seal(
        &self,
        bound_to: &str,
        access: &str,
        expires_at: Option<DateTime<Utc>>,
        obtained_at: DateTime<Utc>,
    ) -> SealedToken {
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let mut data = access.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(bound_to.as_bytes()), &mut data)
            .expect("sealing a token cannot fail");
        SealedToken {
            key_id: self.id.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(data),
            expires_at,
            obtained_at,
        }
    }

    /// Opens a token sealed for `bound_to` with this key; `None` when it was
    /// sealed with another key, for another authorization, or altered.
    pub fn open(&self, bound_to: &str, sealed: &SealedToken) -> Option<String> {
        if sealed.key_id != self.id {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = B64.decode(&sealed.nonce).ok()?.try_into().ok()?;
        let mut data = B64.decode(&sealed.ciphertext).ok()?;
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(bound_to.as_bytes()), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// What the vault keeps of freshly obtained tokens, and the access token
/// sealed for the item. An access token that expires and can be renewed is
/// not a long-lived credential: the vault's copy leaves it out (credential
/// packs hold more, and a 3 KB Microsoft JWT stays out of them) and the
/// item carries it sealed. A token that is itself the long-lived credential
/// (no expiry, or nothing to renew it with: Stripe, OAuth 1.0a, Meta's
/// exchanged token), or no key to seal with, stays whole in the vault.
pub fn split_for_vault(
    key: Option<&TokenKey>,
    bound_to: &str,
    tokens: &super::tokens::TokenSet,
) -> (super::tokens::TokenSet, Option<SealedToken>) {
    let renewable = tokens.expires_at.is_some() && tokens.refresh_token.is_some() && tokens.token_secret.is_none();
    match key.filter(|_| renewable) {
        Some(key) => {
            let sealed = key.seal(bound_to, &tokens.access_token, tokens.expires_at, tokens.obtained_at);
            (super::tokens::TokenSet { access_token: String::new(), ..tokens.clone() }, Some(sealed))
        }
        None => (tokens.clone(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vault_keeps_a_renewable_access_token_only_sealed_in_the_item() {
        let key = TokenKey::from_secret(&TokenKey::generate()).unwrap();
        let now = Utc::now();
        let tokens = crate::domain::tokens::TokenSet {
            access_token: "at-1".into(),
            refresh_token: Some("rt-1".into()),
            expires_at: Some(now + chrono::Duration::hours(1)),
            refresh_expires_at: None,
            scopes: vec!["read".into()],
            obtained_at: now,
            token_secret: None,
        };
        let (copy, sealed) = split_for_vault(Some(&key), "auth_1", &tokens);
        assert_eq!(copy.access_token, "");
        assert_eq!((copy.refresh_token.as_deref(), copy.expires_at), (Some("rt-1"), tokens.expires_at));
        let sealed = sealed.unwrap();
        assert_eq!(key.open("auth_1", &sealed).as_deref(), Some("at-1"));
        assert_eq!((sealed.expires_at, sealed.obtained_at), (tokens.expires_at, now));
        // The access token is the credential: kept whole.
        let forever = crate::domain::tokens::TokenSet { expires_at: None, ..tokens.clone() };
        assert_eq!(split_for_vault(Some(&key), "auth_1", &forever), (forever.clone(), None));
        let no_refresh = crate::domain::tokens::TokenSet { refresh_token: None, ..tokens.clone() };
        assert_eq!(split_for_vault(Some(&key), "auth_1", &no_refresh), (no_refresh.clone(), None));
        let oauth1 = crate::domain::tokens::TokenSet { token_secret: Some("ts".into()), ..tokens.clone() };
        assert_eq!(split_for_vault(Some(&key), "auth_1", &oauth1).1, None);
        // No key to seal with: the vault keeps it all.
        assert_eq!(split_for_vault(None, "auth_1", &tokens), (tokens.clone(), None));
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_authorization_with_its_key() {
        let stored = TokenKey::generate();
        let key = TokenKey::from_secret(&stored).unwrap();
        let now = Utc::now();
        let sealed = key.seal("auth_1", "ya29.secret-access", Some(now), now);
        assert!(!serde_json::to_string(&sealed).unwrap().contains("secret-access"), "never in the clear");
        let again = TokenKey::from_secret(&stored).unwrap();
        assert_eq!(again.open("auth_1", &sealed).as_deref(), Some("ya29.secret-access"));
        assert_eq!(again.open("auth_2", &sealed), None, "moved to another authorization");
        let other = TokenKey::from_secret(&TokenKey::generate()).unwrap();
        assert_ne!(other.id, key.id);
        assert!(TokenKey::from_secret(&SecretString::from("short".to_owned())).is_none(), "too short to be a key");
        assert_eq!(other.open("auth_1", &sealed), None, "another key");
        let mut altered = sealed.clone();
        let mut bytes = B64.decode(&altered.ciphertext).unwrap();
        bytes[0] ^= 1;
        altered.ciphertext = B64.encode(bytes);
        assert_eq!(key.open("auth_1", &altered), None, "tampered");
        assert_ne!(key.seal("auth_1", "x", None, now).nonce, key.seal("auth_1", "x", None, now).nonce);
    }

    #[test]
    fn link_signatures_verify_only_their_message_under_their_key() {
        let key = TokenKey::from_secret(&TokenKey::generate()).unwrap();
        let sig = key.sign_link(b"ws_1.user_1.disconnected");
        assert!(key.verify_link(b"ws_1.user_1.disconnected", &sig));
        assert!(!key.verify_link(b"ws_1.user_2.disconnected", &sig));
        assert!(!key.verify_link(b"ws_1.user_1.disconnected", "not base64!"));
        let other = TokenKey::from_secret(&TokenKey::generate()).unwrap();
        assert!(!other.verify_link(b"ws_1.user_1.disconnected", &sig));
    }
}
