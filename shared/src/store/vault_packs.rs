//! Credential packs: many grants' tokens or API keys in one Secrets Manager
//! secret, so a million connections cost 25,000 secrets, not a million
//! (issue 19; `scale_model` prints the bill).
//!
//! A packed credential's name says where it lives:
//! `{prefix}/packs/{kind}-{n}/ws/{workspace}/{owner}`: the secret
//! `{prefix}/packs/{kind}-{n}` holds it under the key `ws/{workspace}/{owner}`.
//! Grants (`auth`) and API keys (`conn`) have packs of their own, so each
//! function's IAM policy still reaches only the kind it handles. Slots are
//! handed out in order ([`PackedVault::allocate`]): pack 0 fills with
//! `pack_size` credentials, then pack 1, so a small deployment pays for few
//! secrets. Names without `/packs/` (app credentials, keys, secrets stored
//! before packing) are secrets of their own, read and written as before.
//!
//! Writes never lose each other: every change writes a new version of the
//! pack (`put_version`, the version id a fresh UUID) and then moves the
//! pack's head item in the table from the version it read to the new one,
//! on the condition that the head still names the version it read. A writer
//! that lost the race reads again and retries; a writer that dies before the
//! head moves leaves only an unread version (Secrets Manager drops old
//! versions itself). Reads follow the head (a consistent read), never the
//! secret's `AWSCURRENT` label, which a losing writer may have moved.
//!
//! A credential that would take the pack past [`PACK_MAX_BYTES`] is kept in
//! a secret of its own, named by its packed name, and the pack marks it
//! spilled, so nothing is refused for its size.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::keys;
use crate::domain::error::{StoreError, VaultError};
use crate::domain::ids::WorkspaceId;
use crate::domain::SecretRef;
use crate::ports::{Item, Precondition, SecretVault, StateStore};

/// The largest pack written (Secrets Manager's limit is 65,536 bytes).
pub const PACK_MAX_BYTES: usize = 60_000;
/// How many times a write re-reads a pack another writer changed first.
const CAS_ATTEMPTS: usize = 16;
const SEGMENT: &str = "/packs/";

/// One pack as stored: entries by key, and the keys kept in secrets of
/// their own.
/// (Read with serde; written by [`Pack::to_secret`], since a secret never
/// serializes by itself.)
#[derive(Default, Deserialize)]
struct Pack {
    #[serde(default)]
    entries: BTreeMap<String, SecretString>,
    #[serde(default)]
    spilled: BTreeSet<String>,
}

impl Pack {
    fn to_secret(&self) -> SecretString {
        let entries: BTreeMap<&str, &str> = self.entries.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        SecretString::from(serde_json::json!({"entries": entries, "spilled": self.spilled}).to_string())
    }
}

/// Where a packed name lives: the pack's secret and the key in it.
pub fn split(name: &str) -> Option<(&str, &str)> {
    let at = name.find(SEGMENT)?;
    let end = at + SEGMENT.len() + name[at + SEGMENT.len()..].find('/')?;
    Some((&name[..end], &name[end + 1..]))
}

/// The secret vault the app uses: packed names go to their pack, every
/// other name to the vault underneath.
pub struct PackedVault {
    inner: Arc<dyn SecretVault>,
    store: Arc<dyn StateStore>,
    pack_size: u64,
}

impl PackedVault {
    /// `pack_size` credentials a pack; 1 or less stores each in a secret of
    /// its own (as before packing).
    pub fn new(inner: Arc<dyn SecretVault>, store: Arc<dyn StateStore>, pack_size: u64) -> Self {
        Self { inner, store, pack_size }
    }

    /// The name a new credential of `owner` (an `auth_…` grant or a
    /// `conn_…` key) is stored under: the next free slot of its kind's
    /// packs. A slot taken by a writer that then failed stays empty.
    pub async fn allocate(&self, prefix: &str, ws: &WorkspaceId, owner: &str) -> Result<SecretRef, StoreError> {
        let own = SecretRef::for_owner(prefix, ws, owner);
        let Some(kind) = owner.split_once('_').map(|(k, _)| k).filter(|k| matches!(*k, "auth" | "conn")) else {
            return Ok(own);
        };
        if self.pack_size <= 1 {
            return Ok(own);
        }
        let (pk, sk) = keys::vault_pack_counter(kind);
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let current = self.store.get(&pk, &sk).await?;
            let (slot, version, pre) = match &current {
                None => (0, 1, Precondition::Absent),
                Some(item) => {
                    (item.body["next"].as_u64().unwrap_or(0), item.version + 1, Precondition::Version(item.version))
                }
            };
            let item = Item {
                pk: pk.clone(),
                sk: sk.clone(),
                version,
                body: serde_json::json!({"next": slot + 1}),
                due: None,
                expires_at: None,
            };
            match self.store.put(&item, pre).await {
                Ok(()) => {
                    let pack = slot / self.pack_size;
                    return Ok(SecretRef(format!("{prefix}{SEGMENT}{kind}-{pack}/ws/{}/{owner}", ws.as_str())));
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("the pack counter kept changing".into()))
    }

    /// The pack's head: (item version, secret version), `None` before its first write.
    async fn head(&self, pack: &str) -> Result<Option<(u64, String)>, VaultError> {
        let (pk, sk) = keys::vault_pack_head(pack);
        let item = self.store.get(&pk, &sk).await.map_err(store_down)?;
        Ok(item.and_then(|i| Some((i.version, i.body["version"].as_str()?.to_owned()))))
    }

    async fn read(&self, pack: &str, head: &Option<(u64, String)>) -> Result<Pack, VaultError> {
        let Some((_, version)) = head else { return Ok(Pack::default()) };
        let stored =
            self.inner.get_version(pack, version).await?.ok_or_else(|| {
                VaultError::Unavailable(format!("pack {pack}: the version its head names is missing"))
            })?;
        serde_json::from_str(stored.expose_secret())
            .map_err(|_| VaultError::Unavailable(format!("pack {pack}: stored value is not a pack")))
    }

    /// Applies `change` to the pack and stores it, retrying from a fresh
    /// read when another writer moved the head first. `change` returns
    /// whether there is anything to write.
    async fn update(&self, pack: &str, mut change: impl FnMut(&mut Pack) -> bool) -> Result<(), VaultError> {
        let (pk, sk) = keys::vault_pack_head(pack);
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let head = self.head(pack).await?;
            let mut body = self.read(pack, &head).await?;
            if !change(&mut body) {
                return Ok(());
            }
            let next = uuid::Uuid::new_v4().to_string();
            self.inner.put_version(pack, &next, &body.to_secret()).await?;
            let (version, pre) = match &head {
                None => (1, Precondition::Absent),
                Some((v, _)) => (v + 1, Precondition::Version(*v)),
            };
            let item = Item {
                pk: pk.clone(),
                sk: sk.clone(),
                version,
                body: serde_json::json!({"version": next}),
                due: None,
                expires_at: None,
            };
            match self.store.put(&item, pre).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(store_down(e)),
            }
        }
        Err(VaultError::Unavailable(format!("pack {pack} kept changing")))
    }

    /// The names of the credentials a pack holds (the fault harness checks
    /// that each is held by an item).
    pub async fn names_in(&self, pack: &str) -> Result<Vec<String>, VaultError> {
        let body = self.read(pack, &self.head(pack).await?).await?;
        Ok(body.entries.keys().chain(body.spilled.iter()).map(|k| format!("{pack}/{k}")).collect())
    }
}

/// A writer that lost a race waits a random while, longer each time (full
/// jitter), so writers that collided do not collide again.
async fn backoff(attempt: usize) {
    let cap = 10u64 << attempt.min(5);
    let wait = rand::random_range(0..=cap);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

fn store_down(e: StoreError) -> VaultError {
    VaultError::Unavailable(format!("pack head: {e}"))
}

#[async_trait]
impl SecretVault for PackedVault {
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), VaultError> {
        let Some((pack, key)) = split(name) else { return self.inner.put(name, value).await };
        let mut spill = false;
        self.update(pack, |body| {
            spill = body.spilled.contains(key);
            if spill {
                return false;
            }
            body.entries.insert(key.to_owned(), value.clone());
            spill = body.to_secret().expose_secret().len() > PACK_MAX_BYTES;
            !spill
        })
        .await?;
        if spill {
            // The secret of its own first, then the mark: a crash between
            // leaves the pack as it was (and the caller, told nothing was
            // stored, tries again).
            self.inner.put(name, value).await?;
            self.update(pack, |body| {
                let moved = body.entries.remove(key).is_some();
                body.spilled.insert(key.to_owned()) || moved
            })
            .await?;
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<SecretString>, VaultError> {
        let Some((pack, key)) = split(name) else { return self.inner.get(name).await };
        let mut body = self.read(pack, &self.head(pack).await?).await?;
        if body.spilled.contains(key) {
            return self.inner.get(name).await;
        }
        Ok(body.entries.remove(key))
    }

    async fn delete(&self, name: &str) -> Result<(), VaultError> {
        let Some((pack, key)) = split(name) else { return self.inner.delete(name).await };
        let mut was_spilled = false;
        self.update(pack, |body| {
            was_spilled |= body.spilled.remove(key);
            body.entries.remove(key).is_some() || was_spilled
        })
        .await?;
        if was_spilled {
            self.inner.delete(name).await?;
        }
        Ok(())
    }

    async fn put_version(&self, name: &str, version: &str, value: &SecretString) -> Result<(), VaultError> {
        self.inner.put_version(name, version, value).await
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<Option<SecretString>, VaultError> {
        self.inner.get_version(name, version).await
    }
}
