use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use super::JsonFile;
use crate::domain::error::StoreError;
use crate::ports::{Due, Item, Page, Precondition, StateStore};

#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    version: u64,
    body: serde_json::Value,
    due: Option<(u16, i64)>,
    expires_at: Option<i64>,
}

type Table = BTreeMap<String, BTreeMap<String, Stored>>;

/// The embedded state store: a sorted map of partitions, persisted to
/// `state.json` under the data folder.
pub struct MemoryStore {
    table: Mutex<Table>,
    file: JsonFile,
}

impl MemoryStore {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        let file = JsonFile::new(dir, "state.json");
        Ok(Self { table: Mutex::new(file.load()?), file })
    }

    /// Everything stored, as JSON text (tests scan it for secrets).
    pub fn dump(&self) -> String {
        serde_json::to_string(&*self.table.lock().expect("store lock")).unwrap_or_default()
    }

    fn item(pk: &str, sk: &str, s: &Stored) -> Item {
        Item {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            version: s.version,
            body: s.body.clone(),
            due: s.due.map(|(shard, at)| Due { shard, at }),
            expires_at: s.expires_at,
        }
    }

    fn holds(current: Option<&Stored>, pre: Precondition) -> bool {
        match pre {
            Precondition::None => true,
            Precondition::Absent => current.is_none(),
            Precondition::Exists => current.is_some(),
            Precondition::Version(v) => current.is_some_and(|c| c.version == v),
        }
    }

    fn persist(&self, table: &Table) -> Result<(), StoreError> {
        self.file.save(table).map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

/// Puts back what a key held (`None`: nothing).
fn restore(table: &mut Table, pk: &str, sk: &str, value: Option<Stored>) {
    match value {
        Some(v) => {
            table.entry(pk.to_owned()).or_default().insert(sk.to_owned(), v);
        }
        None => {
            if let Some(p) = table.get_mut(pk) {
                p.remove(sk);
                if p.is_empty() {
                    table.remove(pk);
                }
            }
        }
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let table = self.table.lock().expect("store lock");
        Ok(table.get(pk).and_then(|p| p.get(sk)).map(|s| Self::item(pk, sk, s)))
    }

    async fn put(&self, item: &Item, pre: Precondition) -> Result<(), StoreError> {
        let mut table = self.table.lock().expect("store lock");
        let current = table.get(&item.pk).and_then(|p| p.get(&item.sk));
        if !Self::holds(current, pre) {
            return Err(StoreError::ConditionFailed);
        }
        let previous = table.entry(item.pk.clone()).or_default().insert(
            item.sk.clone(),
            Stored {
                version: item.version,
                body: item.body.clone(),
                due: item.due.map(|d| (d.shard, d.at)),
                expires_at: item.expires_at,
            },
        );
        if let Err(e) = self.persist(&table) {
            restore(&mut table, &item.pk, &item.sk, previous);
            return Err(e);
        }
        Ok(())
    }

    async fn delete(&self, pk: &str, sk: &str, pre: Precondition) -> Result<Option<Item>, StoreError> {
        let mut table = self.table.lock().expect("store lock");
        let current = table.get(pk).and_then(|p| p.get(sk));
        if !Self::holds(current, pre) {
            return Err(StoreError::ConditionFailed);
        }
        let Some(old) = current.cloned() else {
            return Ok(None);
        };
        let removed = Self::item(pk, sk, &old);
        restore(&mut table, pk, sk, None);
        if let Err(e) = self.persist(&table) {
            restore(&mut table, pk, sk, Some(old));
            return Err(e);
        }
        Ok(Some(removed))
    }

    async fn query(&self, pk: &str, sk_prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let table = self.table.lock().expect("store lock");
        let Some(p) = table.get(pk) else {
            return Ok(Page::default());
        };
        let mut items: Vec<Item> = p
            .iter()
            .filter(|(sk, _)| sk.starts_with(sk_prefix) && after.is_none_or(|a| sk.as_str() > a))
            .take(limit + 1)
            .map(|(sk, s)| Self::item(pk, sk, s))
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| i.sk.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn due(&self, shard: u16, until: i64, limit: usize) -> Result<Vec<Item>, StoreError> {
        let table = self.table.lock().expect("store lock");
        let mut items: Vec<Item> = table
            .iter()
            .flat_map(|(pk, p)| p.iter().map(move |(sk, s)| (pk, sk, s)))
            .filter(|(_, _, s)| s.due.is_some_and(|(sh, at)| sh == shard && at <= until))
            .map(|(pk, sk, s)| Self::item(pk, sk, s))
            .collect();
        items.sort_by_key(|i| i.due.map(|d| d.at));
        items.truncate(limit);
        Ok(items)
    }
}
