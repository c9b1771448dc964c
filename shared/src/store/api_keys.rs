//! The uniqueness claim of an API key in a workspace: a conditional write
//! keyed by the key's fingerprint, naming the connection that holds it, so
//! the same key connects once however many requests race.

use chrono::{DateTime, Utc};

use super::{keys, workspace_pk, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::ids::{ConnectionId, WorkspaceId};
use crate::ports::{Item, Precondition};

/// Who holds a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The connection this claim was made for holds it now.
    Taken,
    /// Another connection claimed it first, at `claimed_at`.
    HeldBy { connection: ConnectionId, claimed_at: Option<DateTime<Utc>>, version: u64 },
}

fn claim_item(
    ws: &WorkspaceId,
    platform: &str,
    fingerprint: &str,
    conn: &ConnectionId,
    version: u64,
    now: DateTime<Utc>,
) -> Item {
    Item {
        pk: workspace_pk(ws),
        sk: keys::api_key_claim(platform, fingerprint),
        version,
        body: serde_json::json!({"connection_id": conn, "claimed_at": now}),
        due: None,
        expires_at: None,
        list_key: None,
    }
}

impl Repo {
    /// Claims a key for `conn` unless another connection holds it.
    pub async fn claim_api_key(
        &self,
        ws: &WorkspaceId,
        platform: &str,
        fingerprint: &str,
        conn: &ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<KeyClaim, Error> {
        match self.store().put(&claim_item(ws, platform, fingerprint, conn, 1, now), Precondition::Absent).await {
            Ok(()) => Ok(KeyClaim::Taken),
            Err(StoreError::ConditionFailed) => {
                let sk = keys::api_key_claim(platform, fingerprint);
                let Some(item) = self.store().get(&workspace_pk(ws), &sk).await? else {
                    return Ok(KeyClaim::HeldBy { connection: conn.clone(), claimed_at: None, version: 0 });
                };
                let connection = ConnectionId::parse(item.body["connection_id"].as_str().unwrap_or_default())?;
                if &connection == conn {
                    return Ok(KeyClaim::Taken);
                }
                let claimed_at = item.body["claimed_at"].as_str().and_then(|t| t.parse().ok());
                Ok(KeyClaim::HeldBy { connection, claimed_at, version: item.version })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes over a claim read at `version` whose holder is gone. `false`
    /// when someone else changed it first.
    pub async fn retake_api_key(
        &self,
        ws: &WorkspaceId,
        platform: &str,
        fingerprint: &str,
        conn: &ConnectionId,
        version: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let item = claim_item(ws, platform, fingerprint, conn, version + 1, now);
        match self.store().put(&item, Precondition::Version(version)).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Releases the claim of a key if `conn` holds it.
    pub async fn release_api_key(&self, ws: &WorkspaceId, platform: &str, fingerprint: &str, conn: &ConnectionId) {
        let (pk, sk) = (workspace_pk(ws), keys::api_key_claim(platform, fingerprint));
        let Ok(Some(item)) = self.store().get(&pk, &sk).await else { return };
        if item.body["connection_id"].as_str() == Some(conn.as_str()) {
            if let Err(e) = self.store().delete(&pk, &sk, Precondition::Version(item.version)).await {
                tracing::warn!(connection = %conn, error = %e, "API key claim not released");
            }
        }
    }
}
