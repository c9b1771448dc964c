//! The typed repository over the [`StateStore`] port: entities by id,
//! lists of a workspace, optimistic concurrency, and the small control items
//! of the journeys (OAuth state, sync leases, incidents and mail claims,
//! upload claims and tokens). Every key is built in [`keys`]; nothing above
//! this layer sees an [`Item`].

pub mod accounts;
pub mod alerts;
pub mod api_keys;
pub mod installs;
pub mod keys;
pub mod listing;
pub mod oauth_state;
pub mod outbox;
pub mod queues;
pub mod secret_intents;
pub mod suppressions;
pub mod sync_lease;
pub mod uploads;
pub mod vault_packs;

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;

use crate::domain::error::{Error, StoreError};
use crate::domain::ids::*;
use crate::domain::{Authorization, Connection, Member};
use crate::ports::{Due, Item, Precondition, StateStore};

pub use keys::{workspace_pk, DUE_SHARDS};

/// How many times a read-change-write is tried against concurrent writers.
pub const WRITE_ATTEMPTS: u32 = 5;

/// A value with the version it was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// A kind of entity and where it lives (the impls are in [`keys`]).
pub trait Entity: Serialize + DeserializeOwned {
    const KIND: &'static str;
    const SK_PREFIX: &'static str;
    fn workspace(&self) -> &WorkspaceId;
    fn sk(&self) -> String;
    /// Where it sits in the due-work index, if anywhere.
    fn due(&self) -> Option<Due> {
        None
    }
    /// When the store drops it (epoch seconds), if ever.
    fn expires_at(&self) -> Option<i64> {
        None
    }
    /// Where it sits in its partition's list index (the order its list
    /// route pages in), if anywhere.
    fn list_key(&self) -> Option<String> {
        None
    }
}

/// What a change decided, in [`Repo::update_with_retry`].
pub enum Change<R> {
    /// Save the changed value and return this.
    Save(R),
    /// Save nothing and return this.
    Keep(R),
}

/// The typed repository.
#[derive(Clone)]
pub struct Repo {
    store: Arc<dyn StateStore>,
}

impl Repo {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    fn to_item<T: Entity>(value: &T, version: u64) -> Result<Item, Error> {
        let body = serde_json::to_value(value)
            .map_err(|e| StoreError::Corrupt(format!("{} does not serialize: {e}", T::KIND)))?;
        Ok(Item {
            pk: workspace_pk(value.workspace()),
            sk: value.sk(),
            version,
            body,
            due: value.due(),
            expires_at: value.expires_at(),
            list_key: value.list_key(),
        })
    }

    fn from_item<T: Entity>(item: Item) -> Result<Versioned<T>, Error> {
        let value = serde_json::from_value(item.body)
            .map_err(|e| StoreError::Corrupt(format!("{} {}: {e}", T::KIND, item.sk)))?;
        Ok(Versioned { value, version: item.version })
    }

    /// Creates a new entity; fails with `Conflict` if it exists.
    pub async fn create<T: Entity + Clone>(&self, value: &T) -> Result<Versioned<T>, Error> {
        let item = Self::to_item(value, 1)?;
        match self.store.put(&item, Precondition::Absent).await {
            Ok(()) => Ok(Versioned { value: value.clone(), version: 1 }),
            Err(StoreError::ConditionFailed) => Err(Error::Conflict { kind: T::KIND }),
            // The write may have happened with its answer lost (a timeout, a
            // reset): read it back, and it is created if it is there as
            // written (found by the fault harness: a grant stored "connected"
            // whose secret its caller then removed).
            Err(e @ StoreError::Unavailable(_)) => match self.store.get(&item.pk, &item.sk).await {
                Ok(Some(found)) if found.version == 1 && found.body == item.body => {
                    Ok(Versioned { value: value.clone(), version: 1 })
                }
                _ => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Takes back an entity this caller just created (version 1), tried
    /// again while the store fails; `true` once it is gone (or never was).
    pub async fn remove_new<T: Entity>(&self, value: &T) -> bool {
        for _ in 0..3 {
            match self.delete(value, 1).await {
                Ok(()) | Err(Error::Conflict { .. }) => return true,
                Err(_) => continue,
            }
        }
        false
    }

    /// Saves a changed entity read at `version`; `Conflict` if someone else
    /// saved it in between. Returns the new version.
    pub async fn save<T: Entity>(&self, value: &T, version: u64) -> Result<u64, Error> {
        let item = Self::to_item(value, version + 1)?;
        match self.store.put(&item, Precondition::Version(version)).await {
            Ok(()) => Ok(version + 1),
            Err(StoreError::ConditionFailed) => Err(Error::Conflict { kind: T::KIND }),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates or replaces, whatever is there (members: upsert).
    pub async fn upsert<T: Entity>(&self, value: &T) -> Result<(), Error> {
        let current = self.store.get(&workspace_pk(value.workspace()), &value.sk()).await?;
        let version = current.map(|i| i.version).unwrap_or(0);
        let item = Self::to_item(value, version + 1)?;
        let pre = if version == 0 { Precondition::Absent } else { Precondition::Version(version) };
        match self.store.put(&item, pre).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed) => Err(Error::Conflict { kind: T::KIND }),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_sk<T: Entity>(&self, ws: &WorkspaceId, sk: &str) -> Result<Versioned<T>, Error> {
        match self.store.get(&workspace_pk(ws), sk).await? {
            Some(item) => Self::from_item(item),
            None => Err(Error::NotFound { kind: T::KIND }),
        }
    }

    pub async fn connection(&self, ws: &WorkspaceId, id: &ConnectionId) -> Result<Versioned<Connection>, Error> {
        self.get_sk(ws, &keys::connection_sk(id)).await
    }

    pub async fn authorization(
        &self,
        ws: &WorkspaceId,
        id: &AuthorizationId,
    ) -> Result<Versioned<Authorization>, Error> {
        self.get_sk(ws, &format!("{}{id}", Authorization::SK_PREFIX)).await
    }

    pub async fn member(&self, ws: &WorkspaceId, id: &UserId) -> Result<Versioned<Member>, Error> {
        self.get_sk(ws, &keys::member_sk(id)).await
    }

    /// Deletes an entity read at `version`.
    pub async fn delete<T: Entity>(&self, value: &T, version: u64) -> Result<(), Error> {
        match self.store.delete(&workspace_pk(value.workspace()), &value.sk(), Precondition::Version(version)).await {
            Ok(_) => Ok(()),
            Err(StoreError::ConditionFailed) => Err(Error::Conflict { kind: T::KIND }),
            Err(e) => Err(e.into()),
        }
    }

    /// Every entity of a kind in a workspace (pages through the store).
    pub async fn list<T: Entity>(&self, ws: &WorkspaceId) -> Result<Vec<Versioned<T>>, Error> {
        self.list_prefix(ws, T::SK_PREFIX).await
    }

    async fn list_prefix<T: Entity>(&self, ws: &WorkspaceId, prefix: &str) -> Result<Vec<Versioned<T>>, Error> {
        let pk = workspace_pk(ws);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.query(&pk, prefix, after.as_deref(), 200).await?;
            for item in page.items {
                out.push(Self::from_item(item)?);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Changes and saves an entity read at some version, again from a
    /// fresh read when a concurrent writer saved it in between (optimistic
    /// concurrency): the one retry loop of the service. `change` sees the
    /// latest value each time (a clone: a failed attempt leaves nothing
    /// behind); an error from it ends the loop with nothing saved.
    pub async fn update_from<T, R>(
        &self,
        mut current: Versioned<T>,
        mut change: impl FnMut(&mut T) -> Result<Change<R>, Error>,
    ) -> Result<(R, Versioned<T>), Error>
    where
        T: Entity + Clone,
    {
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 0 {
                current = self.get_sk(current.value.workspace(), &current.value.sk()).await?;
            }
            let mut value = current.value.clone();
            match change(&mut value)? {
                Change::Keep(r) => return Ok((r, Versioned { value, version: current.version })),
                Change::Save(r) => match self.save(&value, current.version).await {
                    Ok(version) => return Ok((r, Versioned { value, version })),
                    Err(Error::Conflict { .. }) => continue,
                    Err(e) => return Err(e),
                },
            }
        }
        Err(Error::Conflict { kind: T::KIND })
    }

    /// [`Self::update_from`] a fresh read.
    pub async fn update_with_retry<T, R>(
        &self,
        ws: &WorkspaceId,
        sk: &str,
        change: impl FnMut(&mut T) -> Result<Change<R>, Error>,
    ) -> Result<(R, Versioned<T>), Error>
    where
        T: Entity + Clone,
    {
        let current = self.get_sk(ws, sk).await?;
        self.update_from(current, change).await
    }

    /// [`Self::update_with_retry`] of a connection.
    pub async fn update_connection<R>(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
        change: impl FnMut(&mut Connection) -> Result<Change<R>, Error>,
    ) -> Result<(R, Versioned<Connection>), Error> {
        self.update_with_retry(ws, &keys::connection_sk(id), change).await
    }

    /// [`Self::update_with_retry`] of an authorization.
    pub async fn update_authorization<R>(
        &self,
        ws: &WorkspaceId,
        id: &AuthorizationId,
        change: impl FnMut(&mut Authorization) -> Result<Change<R>, Error>,
    ) -> Result<(R, Versioned<Authorization>), Error> {
        self.update_with_retry(ws, &format!("{}{id}", Authorization::SK_PREFIX), change).await
    }

    /// The connections of a workspace that use an authorization.
    pub async fn connections_of(
        &self,
        ws: &WorkspaceId,
        id: &AuthorizationId,
    ) -> Result<Vec<Versioned<Connection>>, Error> {
        Ok(self.list::<Connection>(ws).await?.into_iter().filter(|c| c.value.authorization_id() == Some(id)).collect())
    }

    /// One page of a connection's sync runs, newest first, after `after`
    /// (the cursor the previous page gave).
    /// The cursor is opaque to callers: it names the last run read.
    pub async fn runs_page(
        &self,
        ws: &WorkspaceId,
        connection: &ConnectionId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<crate::domain::SyncRun>, Option<String>), Error> {
        self.page_of(ws, &keys::runs_of(connection), cursor, limit).await
    }

    /// One page of the items under a sort-key prefix (stored newest first),
    /// after the opaque `cursor` the previous page gave.
    async fn page_of<T: Entity>(
        &self,
        ws: &WorkspaceId,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<T>, Option<String>), Error> {
        // The list is its prefix: a cursor names the sort key it ended at.
        let after = crate::domain::paging::position_of(prefix, cursor)?;
        let page = self.store.query(&workspace_pk(ws), prefix, after.as_deref(), limit).await?;
        let next = page.next.map(|sk| crate::domain::paging::cursor_after(prefix, &sk));
        let values = page
            .items
            .into_iter()
            .map(|i| Self::from_item(i).map(|v: Versioned<T>| v.value))
            .collect::<Result<_, _>>()?;
        Ok((values, next))
    }

    /// Records one service call.
    pub async fn put_audit(&self, record: &crate::domain::audit::AuditRecord) -> Result<(), Error> {
        let item = Self::to_item(record, 1)?;
        self.store.put(&item, Precondition::Absent).await?;
        Ok(())
    }

    /// One page of a workspace's audit log, newest first.
    pub async fn audit_page(
        &self,
        ws: &WorkspaceId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<crate::domain::audit::AuditRecord>, Option<String>), Error> {
        use crate::domain::audit::AuditRecord;
        self.page_of(ws, AuditRecord::SK_PREFIX, cursor, limit).await
    }

    /// Writes a run as it stands (only its worker writes it).
    pub async fn put_run(&self, run: &crate::domain::SyncRun) -> Result<(), Error> {
        let item = Self::to_item(run, 1)?;
        self.store.put(&item, Precondition::None).await?;
        Ok(())
    }

    /// Keeps an event the webhook never took (a redelivery rewrites it).
    pub async fn put_failed_delivery(&self, failed: &crate::domain::events::FailedDelivery) -> Result<(), Error> {
        let item = Self::to_item(failed, 1)?;
        self.store.put(&item, Precondition::None).await?;
        Ok(())
    }

    /// A workspace's failed deliveries, newest first.
    pub async fn failed_deliveries(
        &self,
        ws: &WorkspaceId,
        limit: usize,
    ) -> Result<Vec<crate::domain::events::FailedDelivery>, Error> {
        use crate::domain::events::FailedDelivery;
        let page = self.store.query(&workspace_pk(ws), FailedDelivery::SK_PREFIX, None, limit).await?;
        page.items.into_iter().map(|i| Self::from_item(i).map(|v: Versioned<FailedDelivery>| v.value)).collect()
    }

    /// The uploads of a file connection.
    pub async fn uploads(
        &self,
        ws: &WorkspaceId,
        connection: &ConnectionId,
    ) -> Result<Vec<Versioned<crate::domain::upload::Upload>>, Error> {
        self.list_prefix(ws, &keys::uploads_of(connection)).await
    }

    /// One upload of a file connection.
    pub async fn upload(
        &self,
        ws: &WorkspaceId,
        connection: &ConnectionId,
        id: &UploadId,
    ) -> Result<Versioned<crate::domain::upload::Upload>, Error> {
        self.get_sk(ws, &keys::upload_sk(connection, id.as_str())).await
    }

    /// Connections due by `until` (a sync to start, or a run that saved no
    /// progress for a stall window), across every connection shard.
    pub async fn due_connections(
        &self,
        until: DateTime<Utc>,
        per_shard: usize,
    ) -> Result<Vec<Versioned<Connection>>, Error> {
        let mut out = Vec::new();
        for shard in keys::RUN_SHARDS_FROM..keys::RUN_SHARDS_FROM + keys::DUE_SHARDS {
            for item in self.store.due(shard, until.timestamp(), per_shard).await? {
                out.push(Self::from_item(item)?);
            }
        }
        Ok(out)
    }

    /// Uploads whose wait for their file is over by `until`.
    pub async fn overdue_uploads(
        &self,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Versioned<crate::domain::upload::Upload>>, Error> {
        let items = self.store.due(keys::UPLOAD_SHARD, until.timestamp(), limit).await?;
        items.into_iter().map(Self::from_item).collect()
    }

    /// Authorizations due for a look by `until`, across every shard.
    pub async fn due_authorizations(
        &self,
        until: DateTime<Utc>,
        per_shard: usize,
    ) -> Result<Vec<Versioned<Authorization>>, Error> {
        let mut out = Vec::new();
        for shard in 0..keys::DUE_SHARDS {
            for item in self.store.due(shard, until.timestamp(), per_shard).await? {
                out.push(Self::from_item(item)?);
            }
        }
        Ok(out)
    }
}
