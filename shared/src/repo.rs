//! Typed, workspace-scoped persistence on top of [`StateStore`].
//!
//! Keys: every item of a workspace lives in the partition `WS#{workspace}`,
//! so no read or write can reach another workspace's items. Items that
//! arrive without a workspace (OAuth state) live in their own partition and
//! carry the workspace they are bound to.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;

use crate::domain::{Authorization, Connection, Member, Notification, SyncRun};
use crate::error::{Error, StoreError};
use crate::ids::*;
use crate::ports::{Due, Item, Precondition, StateStore};

/// How many shards the due-work index is spread over.
pub const DUE_SHARDS: u16 = 8;

/// A value with the version it was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

pub fn workspace_pk(ws: &WorkspaceId) -> String {
    format!("WS#{}", ws.as_str())
}

/// A kind of entity and where it lives.
pub trait Entity: Serialize + DeserializeOwned {
    const KIND: &'static str;
    const SK_PREFIX: &'static str;
    fn workspace(&self) -> &WorkspaceId;
    fn sk(&self) -> String;
    /// Where it sits in the due-work index, if anywhere.
    fn due(&self) -> Option<Due> {
        None
    }
}

fn shard_of(key: &str) -> u16 {
    // FNV-1a: stable across builds and platforms.
    let mut h: u32 = 0x811c9dc5;
    for b in key.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    (h % DUE_SHARDS as u32) as u16
}

impl Entity for Connection {
    const KIND: &'static str = "connection";
    const SK_PREFIX: &'static str = "CONN#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        format!("CONN#{}", self.id)
    }
}

impl Entity for Authorization {
    const KIND: &'static str = "authorization";
    const SK_PREFIX: &'static str = "AUTH#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        format!("AUTH#{}", self.id)
    }
    fn due(&self) -> Option<Due> {
        self.next_check_at.map(|at| Due { shard: shard_of(self.id.as_str()), at: at.timestamp() })
    }
}

impl Entity for Member {
    const KIND: &'static str = "member";
    const SK_PREFIX: &'static str = "MEMBER#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        format!("MEMBER#{}", self.user_id)
    }
}

impl Entity for SyncRun {
    const KIND: &'static str = "sync run";
    const SK_PREFIX: &'static str = "RUN#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        format!("RUN#{}#{}", self.connection_id, self.id)
    }
}

impl Entity for Notification {
    const KIND: &'static str = "notification";
    const SK_PREFIX: &'static str = "NTF#";
    fn workspace(&self) -> &WorkspaceId {
        &self.workspace_id
    }
    fn sk(&self) -> String {
        // Newest first when read in reverse; ids break ties.
        format!("NTF#{}#{}", self.created_at.format("%Y%m%dT%H%M%S%.6fZ"), self.id)
    }
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
            expires_at: None,
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
            Err(e) => Err(e.into()),
        }
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
        self.get_sk(ws, &format!("CONN#{id}")).await
    }

    pub async fn authorization(
        &self,
        ws: &WorkspaceId,
        id: &AuthorizationId,
    ) -> Result<Versioned<Authorization>, Error> {
        self.get_sk(ws, &format!("AUTH#{id}")).await
    }

    pub async fn member(&self, ws: &WorkspaceId, id: &UserId) -> Result<Versioned<Member>, Error> {
        self.get_sk(ws, &format!("MEMBER#{id}")).await
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

    pub async fn list_prefix<T: Entity>(&self, ws: &WorkspaceId, prefix: &str) -> Result<Vec<Versioned<T>>, Error> {
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

    /// The sync runs of one connection, oldest first.
    pub async fn sync_runs(&self, ws: &WorkspaceId, id: &ConnectionId) -> Result<Vec<Versioned<SyncRun>>, Error> {
        self.list_prefix(ws, &format!("RUN#{id}#")).await
    }

    /// Authorizations due for a look by `until`, across every shard.
    pub async fn due_authorizations(
        &self,
        until: DateTime<Utc>,
        per_shard: usize,
    ) -> Result<Vec<Versioned<Authorization>>, Error> {
        let mut out = Vec::new();
        for shard in 0..DUE_SHARDS {
            for item in self.store.due(shard, until.timestamp(), per_shard).await? {
                out.push(Self::from_item(item)?);
            }
        }
        Ok(out)
    }
}
