//! Credential packs: many grants' tokens or API keys in one Secrets Manager
//! secret, so a million connections cost tens of thousands of secrets, not a
//! million (issue 19; `scale_model` prints how many, and the bill).
//!
//! A packed credential's name says where it lives:
//! `{prefix}/packs/{kind}-s{size}-{n}/ws/{workspace}/{owner}`: the secret
//! `{prefix}/packs/{kind}-s{size}-{n}` holds it under the key
//! `ws/{workspace}/{owner}`. Each pack size has its own packs and slot
//! counter, so a deployment that changes `VAULT_PACK_SIZE` starts new packs
//! instead of filling old ones past their size.
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
//! Each write is a new version of the pack's secret, and Secrets Manager
//! keeps every version younger than 24 hours: a secret written more than
//! about once every 10 minutes, day in day out, runs into its quota of
//! versions (its documentation says so; moto does not enforce it). So the
//! head counts the pack's writes of the last 24 hours, and a credential
//! written when the pack has had [`PACK_DAILY_WRITES`] is kept in a secret
//! of its own from then on (spilled): the credentials written most often
//! (refresh tokens that rotate on every use) leave their pack by
//! themselves, and the pack stays under the quota. A credential that would
//! take the pack past [`PACK_MAX_BYTES`] is spilled too. The head item, not
//! the pack, lists what is spilled, so a spill costs the pack no version.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::keys;
use crate::domain::error::{StoreError, VaultError};
use crate::domain::ids::WorkspaceId;
use crate::domain::SecretRef;
use crate::ports::{Clock, Item, Precondition, SecretVault, StateStore};

/// The largest pack written (Secrets Manager's limit is 65,536 bytes).
pub const PACK_MAX_BYTES: usize = 60_000;
/// The writes a pack takes in 24 hours before the credential being written
/// is kept on its own (one every 20 minutes; Secrets Manager keeps every
/// version younger than a day, and asks for no more than one write every
/// 10 minutes).
pub const PACK_DAILY_WRITES: usize = 72;
/// How many times a write re-reads a pack another writer changed first.
const CAS_ATTEMPTS: usize = 16;
const SEGMENT: &str = "/packs/";

/// One pack as stored: entries by key.
/// (Read with serde; written by [`Pack::to_secret`], since a secret never
/// serializes by itself.)
#[derive(Default, Deserialize)]
struct Pack {
    #[serde(default)]
    entries: BTreeMap<String, SecretString>,
}

impl Pack {
    fn to_secret(&self) -> SecretString {
        let entries: BTreeMap<&str, &str> = self.entries.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        SecretString::from(serde_json::json!({ "entries": entries }).to_string())
    }
}

/// A pack's head item: the version of its secret that holds it, its writes
/// of the last 24 hours (epoch seconds) and the keys kept on their own.
#[derive(Clone, Default)]
struct Head {
    item_version: u64,
    version: Option<String>,
    writes: Vec<i64>,
    spilled: BTreeSet<String>,
}

impl Head {
    fn from_item(item: Option<Item>) -> Self {
        let Some(item) = item else { return Head::default() };
        let b = &item.body;
        Head {
            item_version: item.version,
            version: b["version"].as_str().map(str::to_owned),
            writes: b["writes"].as_array().map(|w| w.iter().filter_map(|x| x.as_i64()).collect()).unwrap_or_default(),
            spilled: b["spilled"]
                .as_array()
                .map(|w| w.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        }
    }

    /// The writes of the 24 hours before `now`: those that count against
    /// the pack's versions (older ones are forgotten at the next commit).
    fn recent_writes(&self, now: i64) -> impl Iterator<Item = i64> + '_ {
        self.writes.iter().copied().filter(move |t| *t > now - 86_400)
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
    clock: Arc<dyn Clock>,
    pack_size: u64,
}

impl PackedVault {
    /// `pack_size` credentials a pack; 1 or less stores each in a secret of
    /// its own (as before packing).
    pub fn new(inner: Arc<dyn SecretVault>, store: Arc<dyn StateStore>, clock: Arc<dyn Clock>, pack_size: u64) -> Self {
        Self { inner, store, clock, pack_size }
    }

    /// The name a new credential of `owner` (an `auth_…` grant or a
    /// `conn_…` key) is stored under: the next free slot of its kind's
    /// packs. A slot taken by a writer that then failed stays empty.
    pub async fn allocate(&self, prefix: &str, ws: &WorkspaceId, owner: &str) -> Result<SecretRef, StoreError> {
        self.allocate_for(prefix, ws, owner, 0).await
    }

    /// How many credentials that change `writes_per_day` times a day share
    /// a pack (1: each keeps a secret of its own): enough to use three
    /// quarters of a pack's daily writes, the rest left for connects,
    /// removals and days busier than the estimate.
    pub fn pack_size_for(&self, writes_per_day: u32) -> u64 {
        match writes_per_day {
            0 => self.pack_size,
            w => (PACK_DAILY_WRITES as u64 * 3 / 4 / u64::from(w)).min(self.pack_size),
        }
    }

    /// As [`Self::allocate`], for a credential expected to change
    /// `writes_per_day` times a day (a refresh token that rotates on every
    /// use): such credentials share packs of their own, few enough that a
    /// pack's writes stay within [`PACK_DAILY_WRITES`]
    /// (`{kind}-r{how many}-{n}`), or keep a secret each when even two
    /// would not fit.
    pub async fn allocate_for(
        &self,
        prefix: &str,
        ws: &WorkspaceId,
        owner: &str,
        writes_per_day: u32,
    ) -> Result<SecretRef, StoreError> {
        let own = SecretRef::for_owner(prefix, ws, owner);
        let Some(kind) = owner.split_once('_').map(|(k, _)| k).filter(|k| matches!(*k, "auth" | "conn")) else {
            return Ok(own);
        };
        let size = self.pack_size_for(writes_per_day);
        if size <= 1 {
            return Ok(own);
        }
        let family = match writes_per_day {
            0 => format!("{kind}-s{size}"),
            _ => format!("{kind}-r{size}"),
        };
        let (pk, sk) = keys::vault_pack_counter(&family);
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
                list_key: None,
            };
            match self.store.put(&item, pre).await {
                Ok(()) => {
                    let pack = slot / size;
                    return Ok(SecretRef(format!("{prefix}{SEGMENT}{family}-{pack}/ws/{}/{owner}", ws.as_str())));
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("the pack counter kept changing".into()))
    }

    async fn head(&self, pack: &str) -> Result<Head, VaultError> {
        let (pk, sk) = keys::vault_pack_head(pack);
        Ok(Head::from_item(self.store.get(&pk, &sk).await.map_err(store_down)?))
    }

    async fn read(&self, pack: &str, head: &Head) -> Result<Pack, VaultError> {
        let Some(version) = &head.version else { return Ok(Pack::default()) };
        let stored =
            self.inner.get_version(pack, version).await?.ok_or_else(|| {
                VaultError::Unavailable(format!("pack {pack}: the version its head names is missing"))
            })?;
        serde_json::from_str(stored.expose_secret())
            .map_err(|_| VaultError::Unavailable(format!("pack {pack}: stored value is not a pack")))
    }

    /// Moves the head from `head` to `next` on the condition that nobody
    /// moved it first; `Ok(false)` when someone did.
    async fn commit(&self, pack: &str, head: &Head, next: &Head) -> Result<bool, VaultError> {
        let (pk, sk) = keys::vault_pack_head(pack);
        let now = self.clock.now().timestamp();
        let writes: Vec<i64> = next.recent_writes(now).collect();
        let item = Item {
            pk,
            sk,
            version: head.item_version + 1,
            body: serde_json::json!({"version": next.version, "writes": writes, "spilled": next.spilled}),
            due: None,
            expires_at: None,
            list_key: None,
        };
        let pre = if head.item_version == 0 { Precondition::Absent } else { Precondition::Version(head.item_version) };
        match self.store.put(&item, pre).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(store_down(e)),
        }
    }

    /// Applies `change` to the pack and its head and stores them, retrying
    /// from a fresh read when another writer moved the head first.
    async fn update(
        &self,
        pack: &str,
        mut change: impl FnMut(&mut Head, &mut Pack) -> Change,
    ) -> Result<(), VaultError> {
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let head = self.head(pack).await?;
            let mut next = head.clone();
            let mut body = self.read(pack, &head).await?;
            let secret = match change(&mut next, &mut body) {
                Change::Nothing => return Ok(()),
                Change::Head => None,
                Change::Pack => {
                    // Spilled keys leave the pack with its next version.
                    body.entries.retain(|k, _| !next.spilled.contains(k));
                    Some(body.to_secret())
                }
                Change::Written(secret) => Some(secret),
            };
            if let Some(secret) = secret {
                let version = uuid::Uuid::new_v4().to_string();
                self.inner.put_version(pack, &version, &secret).await?;
                next.version = Some(version);
                next.writes.push(self.clock.now().timestamp());
            }
            if self.commit(pack, &head, &next).await? {
                return Ok(());
            }
        }
        Err(VaultError::Unavailable(format!("pack {pack} kept changing")))
    }

    /// The names of the credentials a pack holds (the fault harness checks
    /// that each is held by an item).
    pub async fn names_in(&self, pack: &str) -> Result<Vec<String>, VaultError> {
        let head = self.head(pack).await?;
        let body = self.read(pack, &head).await?;
        let keys: BTreeSet<&String> = body.entries.keys().chain(head.spilled.iter()).collect();
        Ok(keys.into_iter().map(|k| format!("{pack}/{k}")).collect())
    }
}

/// What a change to a pack needs written.
enum Change {
    Nothing,
    /// Only the head (what is spilled).
    Head,
    /// A new version of the pack (and its head).
    Pack,
    /// A new version of the pack, already serialized (without the spilled
    /// keys), and its head.
    Written(SecretString),
}

/// A writer that lost a race waits a random while, longer each time (full
/// jitter), so writers that collided do not collide again.
async fn backoff(attempt: usize) {
    let first = std::time::Duration::from_millis(10);
    tokio::time::sleep(crate::domain::policy::full_jitter(first, attempt.min(5) as u32, std::time::Duration::MAX))
        .await;
}

fn store_down(e: StoreError) -> VaultError {
    VaultError::Unavailable(format!("pack head: {e}"))
}

#[async_trait]
impl SecretVault for PackedVault {
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), VaultError> {
        let Some((pack, key)) = split(name) else { return self.inner.put(name, value).await };
        let now = self.clock.now().timestamp();
        let mut spill = false;
        self.update(pack, |head, body| {
            spill = head.spilled.contains(key) || head.recent_writes(now).count() >= PACK_DAILY_WRITES;
            if spill {
                return Change::Nothing;
            }
            body.entries.retain(|k, _| !head.spilled.contains(k));
            body.entries.insert(key.to_owned(), value.clone());
            // Serialized once: measured, then written as it is.
            let secret = body.to_secret();
            spill = secret.expose_secret().len() > PACK_MAX_BYTES;
            if spill {
                Change::Nothing
            } else {
                Change::Written(secret)
            }
        })
        .await?;
        if spill {
            // The secret of its own first, then the mark in the head: a
            // crash between leaves the pack as it was (and the caller, told
            // nothing was stored, tries again).
            self.inner.put(name, value).await?;
            self.update(
                pack,
                |head, _| if head.spilled.insert(key.to_owned()) { Change::Head } else { Change::Nothing },
            )
            .await?;
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<SecretString>, VaultError> {
        let Some((pack, key)) = split(name) else { return self.inner.get(name).await };
        let head = self.head(pack).await?;
        if head.spilled.contains(key) {
            return self.inner.get(name).await;
        }
        Ok(self.read(pack, &head).await?.entries.remove(key))
    }

    async fn delete(&self, name: &str) -> Result<(), VaultError> {
        let Some((pack, key)) = split(name) else { return self.inner.delete(name).await };
        // A secret of its own goes first (a crash after leaves a mark that
        // reads as missing), then the mark, then the entry, if any.
        if self.head(pack).await?.spilled.contains(key) {
            self.inner.delete(name).await?;
        }
        self.update(pack, |head, body| {
            let unmarked = head.spilled.remove(key);
            if body.entries.contains_key(key) {
                body.entries.remove(key);
                Change::Pack
            } else if unmarked {
                Change::Head
            } else {
                Change::Nothing
            }
        })
        .await
    }

    async fn put_version(&self, name: &str, version: &str, value: &SecretString) -> Result<(), VaultError> {
        self.inner.put_version(name, version, value).await
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<Option<SecretString>, VaultError> {
        self.inner.get_version(name, version).await
    }
}
