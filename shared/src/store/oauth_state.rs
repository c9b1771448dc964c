//! Started OAuth flows, stored under the hash of their state (single use,
//! dropped by TTL when never completed).

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};

use super::{keys, Repo};
use crate::domain::error::{Error, StoreError};
use crate::ports::{Item, Precondition};

impl Repo {
    /// Stores what the callback needs under the hash of a new state.
    pub async fn put_oauth_state<T: Serialize>(
        &self,
        state: &str,
        value: &T,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (pk, sk) = keys::oauth_state(state);
        let body = serde_json::to_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item =
            Item { pk, sk, version: 1, body, due: None, expires_at: Some(expires_at.timestamp()), list_key: None };
        self.store().put(&item, Precondition::Absent).await?;
        Ok(())
    }

    /// Takes the value of a state: deleted atomically, so only one caller
    /// ever gets it. `None` when unknown or already taken.
    pub async fn take_oauth_state<T: DeserializeOwned>(&self, state: &str) -> Result<Option<T>, StoreError> {
        let (pk, sk) = keys::oauth_state(state);
        match self.store().delete(&pk, &sk, Precondition::Exists).await {
            Ok(Some(item)) => {
                serde_json::from_value(item.body).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
            }
            Ok(None) | Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a flow's launch under the hash of its single-use token.
    pub async fn put_oauth_launch<T: Serialize>(
        &self,
        token: &str,
        value: &T,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (pk, sk) = keys::oauth_launch(token);
        let body = serde_json::to_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item =
            Item { pk, sk, version: 1, body, due: None, expires_at: Some(expires_at.timestamp()), list_key: None };
        self.store().put(&item, Precondition::Absent).await?;
        Ok(())
    }

    /// Takes a launch once (deleted atomically); `None` when unknown or used.
    pub async fn take_oauth_launch<T: DeserializeOwned>(&self, token: &str) -> Result<Option<T>, StoreError> {
        let (pk, sk) = keys::oauth_launch(token);
        match self.store().delete(&pk, &sk, Precondition::Exists).await {
            Ok(Some(item)) => {
                serde_json::from_value(item.body).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
            }
            Ok(None) | Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
