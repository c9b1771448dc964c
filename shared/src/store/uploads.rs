//! The control items of file uploads: which upload holds some content (so
//! the same bytes are ingested once), which holds a month (so a month is
//! replaced whole), and the automation tokens (kept as hashes only).

use chrono::{DateTime, Utc};

use super::{keys, workspace_pk, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::ids::{ConnectionId, UploadId, UserId, WorkspaceId};
use crate::ports::{Item, Precondition};

fn control(ws: &WorkspaceId, sk: String, version: u64, body: serde_json::Value) -> Item {
    Item { pk: workspace_pk(ws), sk, version, body, due: None, expires_at: None, list_key: None }
}

fn conflict(e: StoreError) -> Error {
    if e == StoreError::ConditionFailed {
        Error::Conflict { kind: "upload" }
    } else {
        e.into()
    }
}

/// Who holds some content of a connection.
pub enum ContentClaim {
    /// This upload holds it now.
    Taken,
    /// Another upload held it first (it may since have been replaced).
    HeldBy { holder: String, version: u64 },
}

impl Repo {
    /// Claims `sha256` for `upload` unless an upload claimed it before.
    pub async fn claim_content(
        &self,
        ws: &WorkspaceId,
        connection: &ConnectionId,
        sha256: &str,
        upload: &UploadId,
    ) -> Result<ContentClaim, Error> {
        let sk = keys::upload_hash(connection, sha256);
        let claim = control(ws, sk.clone(), 1, serde_json::json!({"upload_id": upload}));
        match self.store().put(&claim, Precondition::Absent).await {
            Ok(()) => Ok(ContentClaim::Taken),
            Err(StoreError::ConditionFailed) => {
                let existing =
                    self.store().get(&workspace_pk(ws), &sk).await?.ok_or(Error::Conflict { kind: "upload" })?;
                let holder = existing.body["upload_id"].as_str().unwrap_or_default().to_owned();
                Ok(ContentClaim::HeldBy { holder, version: existing.version })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes over a claim read at `version` (its holder is no longer live).
    pub async fn retake_content(
        &self,
        ws: &WorkspaceId,
        connection: &ConnectionId,
        sha256: &str,
        upload: &UploadId,
        version: u64,
    ) -> Result<(), Error> {
        let retake =
            control(ws, keys::upload_hash(connection, sha256), version + 1, serde_json::json!({"upload_id": upload}));
        self.store().put(&retake, Precondition::Version(version)).await.map_err(conflict)
    }

    /// Points a month at `upload`; returns the upload it pointed at before.
    pub async fn point_period(
        &self,
        ws: &WorkspaceId,
        connection: &ConnectionId,
        period: &str,
        upload: &UploadId,
    ) -> Result<Option<String>, Error> {
        let sk = keys::upload_period(connection, period);
        let current = self.store().get(&workspace_pk(ws), &sk).await?;
        let (next_version, pre) = match &current {
            Some(item) => (item.version + 1, Precondition::Version(item.version)),
            None => (1, Precondition::Absent),
        };
        let pointer = control(ws, sk, next_version, serde_json::json!({"upload_id": upload}));
        self.store().put(&pointer, pre).await.map_err(conflict)?;
        Ok(current.and_then(|i| i.body["upload_id"].as_str().map(str::to_owned)))
    }

    /// Stores an upload token (by its hash) and the connection's reference to it.
    pub async fn put_upload_token(
        &self,
        token: &str,
        ws: &WorkspaceId,
        connection: &ConnectionId,
        created_by: &UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (pk, sk) = keys::upload_token(token);
        let body = serde_json::json!({"workspace_id": ws, "connection_id": connection, "created_by": created_by,
            "created_at": now, "expires_at": expires_at});
        // The store drops it a day after it expires.
        let ttl = Some(expires_at.timestamp() + 86_400);
        self.store()
            .put(
                &Item { pk: pk.clone(), sk, version: 1, body, due: None, expires_at: ttl, list_key: None },
                Precondition::Absent,
            )
            .await?;
        let reference = control(ws, keys::upload_token_ref(connection, &pk), 1, serde_json::json!({}));
        self.store().put(&reference, Precondition::Absent).await?;
        Ok(())
    }

    /// Deletes every upload token of a connection; returns how many.
    pub async fn delete_upload_tokens(&self, ws: &WorkspaceId, connection: &ConnectionId) -> Result<usize, Error> {
        let store = self.store();
        let page = store.query(&workspace_pk(ws), &keys::upload_token_refs(connection), None, 1000).await?;
        for item in &page.items {
            if let Some((pk, sk)) = keys::upload_token_of_ref(&item.sk) {
                store.delete(&pk, &sk, Precondition::None).await?;
            }
            store.delete(&item.pk, &item.sk, Precondition::None).await?;
        }
        Ok(page.items.len())
    }

    /// The workspace and connection an upload token is for, and when it
    /// expires, if it is known.
    pub async fn upload_token(
        &self,
        token: &str,
    ) -> Result<Option<(WorkspaceId, ConnectionId, Option<DateTime<Utc>>)>, Error> {
        let (pk, sk) = keys::upload_token(token);
        let Some(item) = self.store().get(&pk, &sk).await? else { return Ok(None) };
        let ws = WorkspaceId::parse(item.body["workspace_id"].as_str().unwrap_or_default())?;
        let conn = ConnectionId::parse(item.body["connection_id"].as_str().unwrap_or_default())?;
        let expires_at = item.body["expires_at"].as_str().and_then(|t| t.parse().ok());
        Ok(Some((ws, conn, expires_at)))
    }
}
