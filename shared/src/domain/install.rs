//! Installs a platform starts on its own side (BigCommerce's control panel
//! and marketplace): the authorization arrives with no flow of ours, so no
//! workspace. Its tokens wait in the vault under a single-use claim that
//! only the installing merchant sees, until a member of a workspace claims
//! it (or it expires and is removed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::ids::PlatformId;
use super::model::{ExternalAccount, SecretRef};

/// How long an unclaimed install waits.
pub const INSTALL_CLAIM_HOURS: i64 = 24;

/// An install waiting for its workspace. Carries no secret: the tokens are
/// in the vault at `secret`, and the claim exists only as a hash (the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInstall {
    pub id: String,
    pub platform: PlatformId,
    pub account: Option<ExternalAccount>,
    pub scopes: Vec<String>,
    /// The values the callback gave (BigCommerce `context`, `scope`).
    pub params: BTreeMap<String, String>,
    pub secret: SecretRef,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl PendingInstall {
    pub fn new_id() -> String {
        format!("inst_{}", uuid::Uuid::new_v4().simple())
    }

    /// A claim: 256 random bits, shown once to the installing merchant.
    pub fn new_claim() -> String {
        let bytes: [u8; 32] = rand::random();
        format!("clm_{}", hex::encode(bytes))
    }
}
