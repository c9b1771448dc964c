use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::MailError;
use crate::ports::{Email, Mailer};

/// The embedded mailer: keeps what it sends, and appends it to
/// `outbox.jsonl` under the data folder so a person can read it.
pub struct MemoryMailer {
    sent: Mutex<Vec<(String, Email)>>,
    outbox: Option<PathBuf>,
}

impl MemoryMailer {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d)?;
        }
        Ok(Self { sent: Mutex::new(Vec::new()), outbox: dir.map(|d| d.join("outbox.jsonl")) })
    }

    /// What was sent since start, with message ids.
    pub fn sent(&self) -> Vec<(String, Email)> {
        self.sent.lock().expect("mailer lock").clone()
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        if email.to.is_empty() {
            return Err(MailError::Rejected("no recipient".into()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        if let Some(path) = &self.outbox {
            use std::io::Write;
            let line = serde_json::json!({"message_id": id, "email": email}).to_string();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| MailError::Unavailable(e.to_string()))?;
            writeln!(f, "{line}").map_err(|e| MailError::Unavailable(e.to_string()))?;
        }
        self.sent.lock().expect("mailer lock").push((id.clone(), email.clone()));
        Ok(id)
    }
}
