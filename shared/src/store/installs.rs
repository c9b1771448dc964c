//! Installs waiting for a workspace, under the hash of their claim: taken
//! once (deleted atomically), and found by the sweep when they expire.

use chrono::{DateTime, Utc};

use super::{keys, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::install::PendingInstall;
use crate::ports::{Due, Item, Precondition};

impl Repo {
    /// Stores an install under the hash of its new claim.
    pub async fn put_install(&self, claim: &str, install: &PendingInstall) -> Result<(), Error> {
        let (pk, sk) = keys::install(claim);
        let body = serde_json::to_value(install).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let due = Some(Due { shard: keys::INSTALL_SHARD, at: install.expires_at.timestamp() });
        let item = Item { pk, sk, version: 1, body, due, expires_at: None, list_key: None };
        self.store().put(&item, Precondition::Absent).await?;
        Ok(())
    }

    /// Takes an install once; `None` when unknown or already taken.
    pub async fn take_install(&self, claim: &str) -> Result<Option<PendingInstall>, Error> {
        let (pk, sk) = keys::install(claim);
        match self.store().delete(&pk, &sk, Precondition::Exists).await {
            Ok(Some(item)) => {
                Ok(Some(serde_json::from_value(item.body).map_err(|e| StoreError::Corrupt(e.to_string()))?))
            }
            Ok(None) | Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Installs whose claim time ran out by `until`, with what deletes them.
    pub async fn expired_installs(
        &self,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(ExpiredInstall, PendingInstall)>, Error> {
        let items = self.store().due(keys::INSTALL_SHARD, until.timestamp(), limit).await?;
        items
            .into_iter()
            .map(|i| {
                let install = serde_json::from_value(i.body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((ExpiredInstall { pk: i.pk, sk: i.sk }, install))
            })
            .collect()
    }

    /// Drops an expired install's item (its secret is deleted first).
    pub async fn drop_install(&self, expired: &ExpiredInstall) -> Result<(), Error> {
        match self.store().delete(&expired.pk, &expired.sk, Precondition::Exists).await {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The key of an expired install (opaque to the flows).
pub struct ExpiredInstall {
    pk: String,
    sk: String,
}
