use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::domain::error::SinkError;
use crate::ports::RecordSink;

/// The embedded record sink: files under `records/` in the data folder, or
/// memory when there is none.
pub struct FileSink {
    root: Option<PathBuf>,
    memory: Mutex<BTreeMap<String, Bytes>>,
    /// Where presigned uploads go (the local stack) and the key that signs them.
    presign_base: String,
    presign_key: [u8; 32],
}

impl FileSink {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        let root = dir.map(|d| d.join("records"));
        if let Some(r) = &root {
            std::fs::create_dir_all(r)?;
        }
        let mut presign_key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut presign_key);
        Ok(Self {
            root,
            memory: Mutex::new(BTreeMap::new()),
            presign_base: "http://127.0.0.1:3000".into(),
            presign_key,
        })
    }

    /// Presigned URLs point at `{base}/local/uploads/{key}` (the local stack).
    pub fn with_presign_base(mut self, base: &str) -> Self {
        self.presign_base = base.trim_end_matches('/').to_owned();
        self
    }

    fn mac(&self, key: &str, expires: i64) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.presign_key).expect("any key length");
        mac.update(format!("PUT\n{key}\n{expires}").as_bytes());
        mac
    }

    /// Checks a presigned URL's expiry (epoch seconds) and signature.
    pub fn verify_presigned(&self, key: &str, expires: i64, signature: &str, now: i64) -> bool {
        use hmac::Mac;
        let Ok(given) = hex::decode(signature) else { return false };
        expires >= now && check_key(key).is_ok() && self.mac(key, expires).verify_slice(&given).is_ok()
    }

    /// Where a key is written on disk (the local stack streams uploads there).
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        check_key(key).ok()?;
        self.root.as_ref().map(|r| r.join(key))
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
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.=-".contains(&b))
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
            self.memory.lock().expect("sink lock").insert(key.to_owned(), body);
            return Ok(());
        };
        let path = root.join(key);
        // One trip to the blocking pool for the folder, the write and the
        // rename (readers never see a part-written object).
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("part");
            std::fs::write(&tmp, &body)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| SinkError::Unavailable(e.to_string()))?
        .map_err(io)
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

    async fn size(&self, key: &str) -> Result<Option<u64>, SinkError> {
        check_key(key)?;
        let Some(root) = &self.root else {
            return Ok(self.memory.lock().expect("sink lock").get(key).map(|b| b.len() as u64));
        };
        match tokio::fs::metadata(root.join(key)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        check_key(key)?;
        let Some(root) = &self.root else {
            self.memory.lock().expect("sink lock").remove(key);
            return Ok(());
        };
        match tokio::fs::remove_file(root.join(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn open(&self, key: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError> {
        check_key(key)?;
        let Some(root) = &self.root else {
            let bytes = self.memory.lock().expect("sink lock").get(key).cloned();
            return Ok(bytes.map(|b| Box::new(std::io::Cursor::new(b)) as Box<dyn tokio::io::AsyncRead + Send + Unpin>));
        };
        match tokio::fs::File::open(root.join(key)).await {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn presign_put(&self, key: &str, expires_in: std::time::Duration) -> Result<String, SinkError> {
        use hmac::Mac;
        check_key(key)?;
        let expires = chrono::Utc::now().timestamp() + expires_in.as_secs() as i64;
        let signature = hex::encode(self.mac(key, expires).finalize().into_bytes());
        Ok(format!("{}/local/uploads/{key}?expires={expires}&signature={signature}", self.presign_base))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let Some(root) = &self.root else {
            let m = self.memory.lock().expect("sink lock");
            return Ok(m.keys().filter(|k| k.starts_with(prefix)).cloned().collect());
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
