//! A secret about to be stored for an item not written yet. The writer
//! drops it once the item is there (or the secret is gone); if the writer
//! died in between, or could neither write the item nor take the secret
//! back, the sweep finds the intent when it is due and deletes a secret no
//! item holds (`flows::secrets::forget_orphans`).

use chrono::{DateTime, Utc};

use super::{keys, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::SecretRef;
use crate::ports::{Due, Item, Precondition};

/// An intent found due: the secret, and what drops the intent.
pub struct DueIntent {
    pub secret: SecretRef,
    pk: String,
    sk: String,
}

impl Repo {
    /// Records that `secret` is about to be written, due for the sweep at `due_at`.
    pub async fn put_secret_intent(&self, secret: &SecretRef, due_at: DateTime<Utc>) -> Result<(), Error> {
        let (pk, sk) = keys::secret_intent(&secret.0);
        let item = Item {
            pk,
            sk,
            version: 1,
            body: serde_json::json!({"secret": secret.0}),
            due: Some(Due { shard: keys::SECRET_INTENT_SHARD, at: due_at.timestamp() }),
            expires_at: None,
            list_key: None,
        };
        // Written again by a retry of the same write: the newer stands.
        self.store().put(&item, Precondition::None).await?;
        Ok(())
    }

    /// Drops the intent of a secret (an intent left behind only costs the
    /// sweep a look).
    pub async fn drop_secret_intent(&self, secret: &SecretRef) -> Result<(), Error> {
        let (pk, sk) = keys::secret_intent(&secret.0);
        match self.store().delete(&pk, &sk, Precondition::None).await {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Intents due by `until`.
    pub async fn due_secret_intents(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<DueIntent>, Error> {
        let items = self.store().due(keys::SECRET_INTENT_SHARD, until.timestamp(), limit).await?;
        items
            .into_iter()
            .map(|i| {
                let secret = i.body["secret"]
                    .as_str()
                    .ok_or_else(|| StoreError::Corrupt("a secret intent without its secret".into()))?;
                Ok(DueIntent { secret: SecretRef(secret.to_owned()), pk: i.pk, sk: i.sk })
            })
            .collect()
    }

    /// Drops an intent the sweep has dealt with.
    pub async fn drop_due_intent(&self, intent: &DueIntent) -> Result<(), Error> {
        match self.store().delete(&intent.pk, &intent.sk, Precondition::Exists).await {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
