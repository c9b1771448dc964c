//! The sync lease of a connection: a conditional write with an expiry that
//! keeps two workers off one connection.

use chrono::{DateTime, Utc};

use super::{keys, workspace_pk, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::ids::{ConnectionId, WorkspaceId};
use crate::ports::{Item, Precondition};

impl Repo {
    /// Takes (or, for its holder, renews) the lease for `owner` until
    /// `now + ttl`, unless another owner holds it unexpired. Returns the
    /// lease's version (to release it); `None` when another holds it.
    pub async fn acquire_sync_lease(
        &self,
        ws: &WorkspaceId,
        conn: &ConnectionId,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Option<u64>, Error> {
        let (pk, sk) = (workspace_pk(ws), keys::sync_lease(conn));
        let current = self.store().get(&pk, &sk).await?;
        let (version, pre) = match &current {
            None => (1, Precondition::Absent),
            Some(item) => {
                let until = item.body["until"]
                    .as_str()
                    .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
                    .map(|u| u.with_timezone(&Utc));
                if until.is_some_and(|u| u > now) && item.body["owner"].as_str() != Some(owner) {
                    return Ok(None);
                }
                (item.version + 1, Precondition::Version(item.version))
            }
        };
        let until = now + ttl;
        let item = Item {
            pk,
            sk,
            version,
            body: serde_json::json!({"owner": owner, "until": until.to_rfc3339()}),
            due: None,
            expires_at: Some(until.timestamp() + 3600),
            list_key: None,
        };
        match self.store().put(&item, pre).await {
            Ok(()) => Ok(Some(version)),
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether someone holds the connection's lease unexpired.
    pub async fn sync_lease_live(
        &self,
        ws: &WorkspaceId,
        conn: &ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let current = self.store().get(&workspace_pk(ws), &keys::sync_lease(conn)).await?;
        Ok(current.is_some_and(|item| {
            item.body["until"]
                .as_str()
                .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
                .is_some_and(|u| u.with_timezone(&Utc) > now)
        }))
    }

    /// Releases a lease taken at `version` (it expires anyway).
    pub async fn release_sync_lease(&self, ws: &WorkspaceId, conn: &ConnectionId, version: u64) {
        let deleted =
            self.store().delete(&workspace_pk(ws), &keys::sync_lease(conn), Precondition::Version(version)).await;
        if let Err(e) = deleted {
            tracing::warn!(connection = %conn, error = %e, "sync lease not released; it will expire");
        }
    }
}
