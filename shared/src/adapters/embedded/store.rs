use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    list_key: Option<String>,
}

type Table = BTreeMap<String, BTreeMap<String, Stored>>;

/// The list index: each partition's (list key, sort key) pairs, in order.
type Lists = BTreeMap<String, std::collections::BTreeSet<(String, String)>>;

fn lists_of(table: &Table) -> Lists {
    let mut lists = Lists::new();
    for (pk, p) in table {
        for (sk, s) in p {
            if let Some(lk) = &s.list_key {
                lists.entry(pk.clone()).or_default().insert((lk.clone(), sk.clone()));
            }
        }
    }
    lists
}

/// One change, as a line of `state.log`: what a key holds now (`None`:
/// nothing). Written from borrowed parts, read back owned.
#[derive(Serialize)]
struct ChangeRef<'a> {
    pk: &'a str,
    sk: &'a str,
    value: Option<&'a Stored>,
}

#[derive(Deserialize)]
struct Change {
    pk: String,
    sk: String,
    value: Option<Stored>,
}

/// The log of changes since the last snapshot.
struct Log {
    file: std::fs::File,
    lines: usize,
    /// The log's length after its last whole line.
    len: u64,
    /// A failed append may have left part of a line: the next change folds
    /// the table into a snapshot (and empties the log) first.
    torn: bool,
}

struct State {
    table: Table,
    lists: Lists,
    log: Option<Log>,
}

/// The embedded state store: a sorted map of partitions, persisted under
/// the data folder as a snapshot (`state.json`) and a log of the changes
/// since (`state.log`, one line a change, synced before the change is
/// acknowledged). A change writes only itself, never the whole table; the
/// log is folded into a new snapshot once it outgrows the table.
pub struct MemoryStore {
    state: Mutex<State>,
    snapshot: JsonFile,
}

/// The log is folded into the snapshot past this many lines (or the
/// table's size, whichever is larger).
const COMPACT_AFTER: usize = 4096;

fn count(table: &Table) -> usize {
    table.values().map(BTreeMap::len).sum()
}

impl MemoryStore {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        let snapshot = JsonFile::new(dir, "state.json");
        let mut table: Table = snapshot.load()?;
        let log = match dir {
            None => None,
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let path = dir.join("state.log");
                // Replayed in order, every line sets a key to its value then,
                // so a log already folded into the snapshot (a crash between
                // the two) replays to the same table. A torn last line was
                // never acknowledged: it is dropped.
                let mut lines = 0;
                let mut len = 0;
                if let Ok(text) = std::fs::read(&path) {
                    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let Ok(change) = serde_json::from_slice::<Change>(line) else { break };
                        restore(&mut table, &mut Lists::new(), &change.pk, &change.sk, change.value);
                        lines += 1;
                        len += line.len() as u64 + 1;
                    }
                }
                let file = open_log(&path)?;
                Some(Log { file, lines, len, torn: false })
            }
        };
        let lists = lists_of(&table);
        let store = Self { state: Mutex::new(State { table, lists, log }), snapshot };
        let mut state = store.state.lock().expect("store lock");
        // A torn tail (or anything after it) is cut off by folding now.
        let on_disk = state.log.as_ref().and_then(|l| l.file.metadata().ok()).map_or(0, |m| m.len());
        if state.log.as_ref().is_some_and(|l| l.lines > 0 || on_disk > l.len) {
            store.compact(&mut state)?;
        }
        drop(state);
        Ok(store)
    }

    /// Everything stored, as JSON text (tests scan it for secrets).
    pub fn dump(&self) -> String {
        serde_json::to_string(&self.state.lock().expect("store lock").table).unwrap_or_default()
    }

    fn item(pk: &str, sk: &str, s: &Stored) -> Item {
        Item {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            version: s.version,
            body: s.body.clone(),
            due: s.due.map(|(shard, at)| Due { shard, at }),
            expires_at: s.expires_at,
            list_key: s.list_key.clone(),
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

    /// Writes the table as the new snapshot, then empties the log.
    fn compact(&self, state: &mut State) -> std::io::Result<()> {
        self.snapshot.save(&state.table)?;
        if let Some(log) = &mut state.log {
            // Appends go to the end, wherever that is: emptying is enough.
            log.file.set_len(0)?;
            log.file.sync_all()?;
            log.lines = 0;
            log.len = 0;
            log.torn = false;
        }
        Ok(())
    }

    /// Makes one change durable: a line appended to the log and synced.
    fn persist(&self, state: &mut State, pk: &str, sk: &str) -> Result<(), StoreError> {
        let unavailable = |e: std::io::Error| StoreError::Unavailable(e.to_string());
        if state.log.as_ref().is_some_and(|l| l.torn) {
            self.compact(state).map_err(unavailable)?;
            // The snapshot holds the change too: it is durable.
            return Ok(());
        }
        let Some(log) = &mut state.log else {
            return Ok(());
        };
        let value = state.table.get(pk).and_then(|p| p.get(sk));
        let mut line =
            serde_json::to_vec(&ChangeRef { pk, sk, value }).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        line.push(b'\n');
        if let Err(e) = log.file.write_all(&line).and_then(|()| log.file.sync_data()) {
            // Cut what was written of the line, or fold before the next one.
            log.torn = log.file.set_len(log.len).and_then(|()| log.file.sync_data()).is_err();
            return Err(unavailable(e));
        }
        log.lines += 1;
        log.len += line.len() as u64;
        if log.lines > COMPACT_AFTER && log.lines > count(&state.table) {
            // The change is already durable in the log; a failed fold is
            // retried by the next change or the next start.
            if let Err(e) = self.compact(state) {
                tracing::warn!(error = %e, "the state log could not be folded into a snapshot yet");
            }
        }
        Ok(())
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Sets what a key holds (`None`: nothing), its place in the list index
/// with it, and returns what it held.
fn restore(table: &mut Table, lists: &mut Lists, pk: &str, sk: &str, value: Option<Stored>) -> Option<Stored> {
    let listed = value.as_ref().and_then(|v| v.list_key.clone());
    let previous = match value {
        Some(v) => table.entry(pk.to_owned()).or_default().insert(sk.to_owned(), v),
        None => {
            let previous = table.get_mut(pk).and_then(|p| p.remove(sk));
            if table.get(pk).is_some_and(BTreeMap::is_empty) {
                table.remove(pk);
            }
            previous
        }
    };
    if let Some(lk) = previous.as_ref().and_then(|p| p.list_key.clone()) {
        if let Some(set) = lists.get_mut(pk) {
            set.remove(&(lk, sk.to_owned()));
            if set.is_empty() {
                lists.remove(pk);
            }
        }
    }
    if let Some(lk) = listed {
        lists.entry(pk.to_owned()).or_default().insert((lk, sk.to_owned()));
    }
    previous
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let state = self.state.lock().expect("store lock");
        let table = &state.table;
        Ok(table.get(pk).and_then(|p| p.get(sk)).map(|s| Self::item(pk, sk, s)))
    }

    async fn put(&self, item: &Item, pre: Precondition) -> Result<(), StoreError> {
        let size = item.size();
        if size > crate::ports::MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(size));
        }
        let mut guard = self.state.lock().expect("store lock");
        let state = &mut *guard;
        let current = state.table.get(&item.pk).and_then(|p| p.get(&item.sk));
        if !Self::holds(current, pre) {
            return Err(StoreError::ConditionFailed);
        }
        let stored = Stored {
            version: item.version,
            body: item.body.clone(),
            due: item.due.map(|d| (d.shard, d.at)),
            expires_at: item.expires_at,
            list_key: item.list_key.clone(),
        };
        let previous = restore(&mut state.table, &mut state.lists, &item.pk, &item.sk, Some(stored));
        if let Err(e) = self.persist(state, &item.pk, &item.sk) {
            restore(&mut state.table, &mut state.lists, &item.pk, &item.sk, previous);
            return Err(e);
        }
        Ok(())
    }

    async fn delete(&self, pk: &str, sk: &str, pre: Precondition) -> Result<Option<Item>, StoreError> {
        let mut guard = self.state.lock().expect("store lock");
        let state = &mut *guard;
        let current = state.table.get(pk).and_then(|p| p.get(sk));
        if !Self::holds(current, pre) {
            return Err(StoreError::ConditionFailed);
        }
        let Some(old) = current.cloned() else {
            return Ok(None);
        };
        let removed = Self::item(pk, sk, &old);
        restore(&mut state.table, &mut state.lists, pk, sk, None);
        if let Err(e) = self.persist(state, pk, sk) {
            restore(&mut state.table, &mut state.lists, pk, sk, Some(old));
            return Err(e);
        }
        Ok(Some(removed))
    }

    async fn query(&self, pk: &str, sk_prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let state = self.state.lock().expect("store lock");
        let table = &state.table;
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
        let state = self.state.lock().expect("store lock");
        let table = &state.table;
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

    async fn listed(&self, pk: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let state = self.state.lock().expect("store lock");
        let (Some(set), Some(p)) = (state.lists.get(pk), state.table.get(pk)) else {
            return Ok(Page::default());
        };
        let from = match after.and_then(crate::ports::split_list_position) {
            Some((lk, sk)) => std::ops::Bound::Excluded((lk.to_owned(), sk.to_owned())),
            None => std::ops::Bound::Included((prefix.to_owned(), String::new())),
        };
        let mut found: Vec<&(String, String)> = set
            .range((from, std::ops::Bound::Unbounded))
            .take_while(|(lk, _)| lk.starts_with(prefix))
            .take(limit + 1)
            .collect();
        let more = found.len() > limit;
        found.truncate(limit);
        let next = found.last().filter(|_| more).map(|(lk, sk)| crate::ports::list_position(lk, sk));
        let items = found.iter().filter_map(|(_, sk)| p.get(sk).map(|s| Self::item(pk, sk, s))).collect();
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: &str, n: u64) -> Item {
        Item {
            pk: pk.into(),
            sk: sk.into(),
            version: n,
            body: serde_json::json!({ "n": n }),
            due: None,
            expires_at: None,
            list_key: None,
        }
    }

    fn folder(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("store-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn every_acknowledged_change_survives_a_restart_and_a_torn_tail_is_dropped() {
        let dir = folder("restart");
        let store = MemoryStore::open(Some(&dir)).unwrap();
        store.put(&item("p", "a", 1), Precondition::Absent).await.unwrap();
        store.put(&item("p", "b", 1), Precondition::Absent).await.unwrap();
        store.put(&item("p", "a", 2), Precondition::Version(1)).await.unwrap();
        store.delete("p", "b", Precondition::Exists).await.unwrap();
        let logged = std::fs::read_to_string(dir.join("state.log")).unwrap();
        assert_eq!(logged.lines().count(), 4, "one line a change, not the table each time");
        drop(store);
        // A worker died halfway through a line: that change was never acknowledged.
        let mut log = std::fs::OpenOptions::new().append(true).open(dir.join("state.log")).unwrap();
        log.write_all(br#"{"pk":"p","sk":"c","val"#).unwrap();
        drop(log);
        let store = MemoryStore::open(Some(&dir)).unwrap();
        assert_eq!(store.get("p", "a").await.unwrap().unwrap().version, 2);
        assert!(store.get("p", "b").await.unwrap().is_none());
        assert!(store.get("p", "c").await.unwrap().is_none());
        // Opening folded the log into the snapshot; later changes go on.
        assert_eq!(std::fs::read(dir.join("state.log")).unwrap().len(), 0);
        store.put(&item("p", "c", 1), Precondition::Absent).await.unwrap();
        drop(store);
        let store = MemoryStore::open(Some(&dir)).unwrap();
        assert_eq!(store.get("p", "c").await.unwrap().unwrap().version, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_log_is_folded_into_a_snapshot_once_it_outgrows_the_table() {
        let dir = folder("compact");
        let store = MemoryStore::open(Some(&dir)).unwrap();
        store.put(&item("p", "a", 0), Precondition::None).await.unwrap();
        for n in 1..=(COMPACT_AFTER as u64 + 10) {
            store.put(&item("p", "a", n), Precondition::Version(n - 1)).await.unwrap();
        }
        let lines = std::fs::read_to_string(dir.join("state.log")).unwrap().lines().count();
        assert!(lines < 20, "the log was folded: {lines} lines left");
        drop(store);
        let store = MemoryStore::open(Some(&dir)).unwrap();
        assert_eq!(store.get("p", "a").await.unwrap().unwrap().version, COMPACT_AFTER as u64 + 10);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
