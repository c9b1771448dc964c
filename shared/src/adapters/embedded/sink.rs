use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::SinkError;
use crate::ports::RecordSink;

/// The embedded record sink: files under `records/` in the data folder, or
/// memory when there is none.
pub struct FileSink {
    root: Option<PathBuf>,
    memory: Mutex<BTreeMap<String, Bytes>>,
}

impl FileSink {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        let root = dir.map(|d| d.join("records"));
        if let Some(r) = &root {
            std::fs::create_dir_all(r)?;
        }
        Ok(Self {
            root,
            memory: Mutex::new(BTreeMap::new()),
        })
    }
}

/// Keys are relative paths of safe segments: no `..`, no empty segment.
pub(crate) fn check_key(key: &str) -> Result<(), SinkError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.=-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(SinkError::InvalidKey)
    }
}

fn io(e: std::io::Error) -> SinkError {
    SinkError::Unavailable(e.to_string())
}

#[async_trait]
impl RecordSink for FileSink {
    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<(), SinkError> {
        check_key(key)?;
        let Some(root) = &self.root else {
            self.memory
                .lock()
                .expect("sink lock")
                .insert(key.to_owned(), body);
            return Ok(());
        };
        let path = root.join(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, &body).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, SinkError> {
        check_key(key)?;
        let Some(root) = &self.root else {
            return Ok(self.memory.lock().expect("sink lock").get(key).cloned());
        };
        match tokio::fs::read(root.join(key)).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let Some(root) = &self.root else {
            let m = self.memory.lock().expect("sink lock");
            return Ok(m
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect());
        };
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let mut rd = match tokio::fs::read_dir(&dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            while let Some(entry) = rd.next_entry().await.map_err(io)? {
                let path = entry.path();
                if entry.file_type().await.map_err(io)?.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(prefix) && !key.ends_with(".part") {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
