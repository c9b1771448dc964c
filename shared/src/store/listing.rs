//! A workspace's connections in the list index (the default order of
//! `GET /v1/connections`), a page at a time, and the rewrite that puts
//! connections stored before the index into it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keys::{connection_list_key, connections_ranked, CONNECTIONS_LISTED, LIST_INDEX_STATE};
use super::{workspace_pk, Entity, Repo};
use crate::domain::error::{Error, StoreError};
use crate::domain::ids::WorkspaceId;
use crate::domain::Connection;
use crate::ports::{Item, Precondition};

/// Whether a workspace's connections are all in the list index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListIndexState {
    /// When the first rewrite ran.
    pub since: DateTime<Utc>,
    /// Every connection is in the index: its pages can be read from it.
    pub ready: bool,
}

impl Repo {
    /// Up to `limit` of a workspace's connections in the list index's order
    /// (of one rank, with `rank`), after `after` (where the page before
    /// ended), and where this page ends when there is more.
    pub async fn connections_listed(
        &self,
        ws: &WorkspaceId,
        rank: Option<u8>,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Connection>, Option<String>), Error> {
        let prefix = rank.map_or_else(|| CONNECTIONS_LISTED.to_owned(), connections_ranked);
        let pk = workspace_pk(ws);
        let mut out = Vec::new();
        let mut after = after;
        loop {
            // The store may answer fewer than asked (DynamoDB reads a hundred
            // at a time, and drops what left the list meanwhile): on to fill.
            let page = self.store().listed(&pk, &prefix, after.as_deref(), limit - out.len()).await?;
            for item in page.items {
                out.push(Self::from_item::<Connection>(item)?.value);
            }
            match page.next {
                Some(next) if out.len() < limit => after = Some(next),
                next => return Ok((out, next)),
            }
        }
    }

    pub async fn list_index_state(&self, ws: &WorkspaceId) -> Result<Option<ListIndexState>, Error> {
        match self.store().get(&workspace_pk(ws), LIST_INDEX_STATE).await? {
            Some(item) => Ok(serde_json::from_value(item.body).ok()),
            None => Ok(None),
        }
    }

    pub async fn set_list_index_state(&self, ws: &WorkspaceId, state: &ListIndexState) -> Result<(), Error> {
        let body = serde_json::to_value(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item = Item {
            pk: workspace_pk(ws),
            sk: LIST_INDEX_STATE.to_owned(),
            version: 1,
            body,
            due: None,
            expires_at: None,
            list_key: None,
        };
        self.store().put(&item, Precondition::None).await?;
        Ok(())
    }

    /// Puts up to `max` of the workspace's connections that are not in the
    /// list index where they belong into it (rewritten as they are, one
    /// version on; one a concurrent writer saved meanwhile has its place
    /// already). Returns how many were out of place.
    pub async fn reindex_connections(&self, ws: &WorkspaceId, max: usize) -> Result<usize, Error> {
        let pk = workspace_pk(ws);
        let (mut stale, mut rewritten) = (0, 0);
        let mut after: Option<String> = None;
        loop {
            let page = self.store().query(&pk, Connection::SK_PREFIX, after.as_deref(), 200).await?;
            for item in page.items {
                let c = Self::from_item::<Connection>(item.clone())?.value;
                let place = connection_list_key(&c);
                if item.list_key.as_deref() == Some(place.as_str()) {
                    continue;
                }
                stale += 1;
                if rewritten < max {
                    let moved = Item { version: item.version + 1, list_key: Some(place), ..item.clone() };
                    match self.store().put(&moved, Precondition::Version(item.version)).await {
                        Ok(()) | Err(StoreError::ConditionFailed) => rewritten += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(stale),
            }
        }
    }
}
