//! The accounts a grant reaches, kept a chunk at a time in items of their
//! own (see [`AccountsIndex`]): written whole before the authorization
//! names the list, and a list is dropped only once a later one is named,
//! so a reader never finds the list it was told of half-written.

use super::{keys, workspace_pk, Repo};
use crate::domain::error::Error;
use crate::domain::ids::{AuthorizationId, WorkspaceId};
use crate::domain::{AccountChunk, AccountsIndex, SubAccount};
use crate::ports::Precondition;

/// Chunks read a page at a time when lists are dropped (each up to
/// [`crate::domain::ACCOUNT_CHUNK_BYTES`]).
const DROP_PAGE: usize = 16;

impl Repo {
    /// Writes a discovered list's chunks (again, if a retry writes them
    /// twice: the same list, the same items).
    pub async fn put_account_chunks(
        &self,
        ws: &WorkspaceId,
        auth: &AuthorizationId,
        list: &str,
        chunks: Vec<Vec<SubAccount>>,
    ) -> Result<(), Error> {
        for (index, accounts) in chunks.into_iter().enumerate() {
            let chunk = AccountChunk {
                workspace_id: ws.clone(),
                authorization_id: auth.clone(),
                list: list.to_owned(),
                index: index as u32,
                accounts,
            };
            let item = Self::to_item(&chunk, 1)?;
            self.store().put(&item, Precondition::None).await?;
        }
        Ok(())
    }

    /// One chunk of a list (`None` when it is not there: the list was
    /// dropped, or never finished).
    pub async fn account_chunk(
        &self,
        ws: &WorkspaceId,
        auth: &AuthorizationId,
        list: &str,
        index: u32,
    ) -> Result<Option<Vec<SubAccount>>, Error> {
        let sk = keys::account_chunk_sk(auth, list, index);
        match self.store().get(&workspace_pk(ws), &sk).await? {
            Some(item) => Ok(Some(Self::from_item::<AccountChunk>(item)?.value.accounts)),
            None => Ok(None),
        }
    }

    /// Deletes every list of a grant's accounts that `keep` supersedes
    /// (every list, without it): lists of earlier discoveries, and of a
    /// discovery that lost to `keep` or died before naming its own. Lists of
    /// later generations (discoveries still at work) are left.
    pub async fn drop_account_lists(
        &self,
        ws: &WorkspaceId,
        auth: &AuthorizationId,
        keep: Option<&AccountsIndex>,
    ) -> Result<(), Error> {
        let pk = workspace_pk(ws);
        let prefix = keys::account_lists_of(auth);
        let mut after: Option<String> = None;
        loop {
            let page = self.store().query(&pk, &prefix, after.as_deref(), DROP_PAGE).await?;
            for item in &page.items {
                let list = keys::list_of_account_chunk(auth, &item.sk).unwrap_or_default();
                if keep.is_none_or(|keep| keep.supersedes(list)) {
                    self.store().delete(&pk, &item.sk, Precondition::None).await?;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }
}
