//! Events the notification queue refused when they were published: kept in
//! the table, due at once, until the sweep queues them (at least once).

use chrono::{DateTime, Utc};

use super::{keys, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::messages::AlertEvent;
use crate::ports::{Due, Item, Precondition};

/// A kept message and what deletes it.
pub struct Kept {
    pub message: AlertEvent,
    pk: String,
    sk: String,
}

impl Repo {
    /// Keeps a message the queue refused (`key`: the event's id, so a retry
    /// of the same keep writes one item).
    pub async fn keep_in_outbox(&self, key: &str, message: &AlertEvent, now: DateTime<Utc>) -> Result<(), Error> {
        let (pk, sk) = keys::outbox(key);
        let body = serde_json::to_value(message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let due = Some(Due { shard: keys::OUTBOX_SHARD, at: now.timestamp() });
        self.store()
            .put(&Item { pk, sk, version: 1, body, due, expires_at: None, list_key: None }, Precondition::None)
            .await?;
        Ok(())
    }

    /// Kept messages, oldest first.
    pub async fn outbox(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<Kept>, Error> {
        let items = self.store().due(keys::OUTBOX_SHARD, until.timestamp(), limit).await?;
        items
            .into_iter()
            .map(|i| {
                let message = serde_json::from_value(i.body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(Kept { message, pk: i.pk, sk: i.sk })
            })
            .collect()
    }

    /// Forgets the message kept under `key` (an alert's intent, once queued).
    pub async fn forget_key(&self, key: &str) -> Result<(), Error> {
        let (pk, sk) = keys::outbox(key);
        self.drop_kept(&pk, &sk).await
    }

    /// Forgets a kept message once it is queued.
    pub async fn forget(&self, kept: &Kept) -> Result<(), Error> {
        self.drop_kept(&kept.pk, &kept.sk).await
    }

    async fn drop_kept(&self, pk: &str, sk: &str) -> Result<(), Error> {
        match self.store().delete(pk, sk, Precondition::None).await {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
