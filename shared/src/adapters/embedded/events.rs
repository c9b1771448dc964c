use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::domain::error::BusError;
use crate::domain::events::ServiceEvent;
use crate::ports::EventBus;

/// The embedded event bus: keeps what it was given and appends each event,
/// one JSON object a line, to `events.jsonl` in the data folder (`tail -f`
/// it to watch the service).
pub struct FileEventBus {
    published: Mutex<Vec<ServiceEvent>>,
    file: Option<PathBuf>,
}

impl FileEventBus {
    pub const FILE_NAME: &'static str = "events.jsonl";

    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d)?;
        }
        Ok(Self { published: Mutex::new(Vec::new()), file: dir.map(|d| d.join(Self::FILE_NAME)) })
    }

    /// What was published since start.
    pub fn published(&self) -> Vec<ServiceEvent> {
        self.published.lock().expect("bus lock").clone()
    }

    /// The JSON-lines file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

#[async_trait]
impl EventBus for FileEventBus {
    async fn publish(&self, event: &ServiceEvent) -> Result<(), BusError> {
        let mut published = self.published.lock().expect("bus lock");
        if let Some(path) = &self.file {
            let mut line = serde_json::to_vec(event).map_err(|e| BusError::Rejected(e.to_string()))?;
            line.push(b'\n');
            let io = |e: std::io::Error| BusError::Unavailable(format!("{}: {e}", path.display()));
            // One write of a whole line in append mode: lines never interleave.
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
            f.write_all(&line).map_err(io)?;
        }
        published.push(event.clone());
        Ok(())
    }
}
