//! Embedded adapters: in-process, each optionally persisted under a data
//! folder (written atomically on every change), so that a restart of the
//! local stack loses nothing. Without a folder they live in memory (tests).

mod events;
mod mailer;
mod queue;
mod sink;
mod store;
mod vault;

pub use events::FileEventBus;
pub use mailer::MemoryMailer;
pub use queue::MemoryQueue;
pub(crate) use queue::MAX_MESSAGE_BYTES;
pub(crate) use sink::check_key as check_sink_key;
pub use sink::FileSink;
pub use store::MemoryStore;
pub(crate) use vault::check_name as check_secret_name;
pub use vault::MemoryVault;

use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};

/// A JSON file written whole and atomically (write to a temporary file,
/// then rename), with owner-only permissions.
#[derive(Clone, Debug)]
pub(crate) struct JsonFile {
    path: Option<PathBuf>,
}

impl JsonFile {
    pub(crate) fn new(dir: Option<&Path>, name: &str) -> Self {
        Self { path: dir.map(|d| d.join(name)) }
    }

    pub(crate) fn load<T: DeserializeOwned + Default>(&self) -> std::io::Result<T> {
        let Some(path) = &self.path else {
            return Ok(T::default());
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn save<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Writes a file only its owner can read (the local stack's webhook secret).
pub fn write_secret_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, text.as_bytes())
}
