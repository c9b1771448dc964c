//! Suppressed email addresses (SES said a hard bounce or a complaint),
//! kept under the address's hash: one item for every workspace the address
//! is a member of.

use super::{keys, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::EmailSuppression;
use crate::ports::{Item, Precondition};

impl Repo {
    /// Suppresses an address (again: the newest word stands).
    pub async fn suppress_email(&self, email: &str, s: &EmailSuppression) -> Result<(), Error> {
        let (pk, sk) = keys::suppression(email);
        let body = serde_json::to_value(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store()
            .put(&Item { pk, sk, version: 1, body, due: None, expires_at: None, list_key: None }, Precondition::None)
            .await?;
        Ok(())
    }

    pub async fn email_suppression(&self, email: &str) -> Result<Option<EmailSuppression>, Error> {
        let (pk, sk) = keys::suppression(email);
        match self.store().get(&pk, &sk).await? {
            Some(item) => Ok(Some(serde_json::from_value(item.body).map_err(|e| StoreError::Corrupt(e.to_string()))?)),
            None => Ok(None),
        }
    }

    /// Lifts a suppression (lifting none is fine).
    pub async fn lift_suppression(&self, email: &str) -> Result<(), Error> {
        let (pk, sk) = keys::suppression(email);
        match self.store().delete(&pk, &sk, Precondition::None).await {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
