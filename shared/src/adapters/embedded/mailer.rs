use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::domain::error::MailError;
use crate::ports::{Email, Mailer};

/// The embedded mailer: keeps what it sends, and writes each email to
/// `outbox/` under the data folder (an `.eml` file and its HTML part) so a
/// person can open it.
pub struct MemoryMailer {
    sent: Mutex<Vec<(String, Email)>>,
    outbox: Option<PathBuf>,
}

impl MemoryMailer {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d)?;
        }
        Ok(Self { sent: Mutex::new(Vec::new()), outbox: dir.map(|d| d.join("outbox")) })
    }

    /// What was sent since start, with message ids.
    pub fn sent(&self) -> Vec<(String, Email)> {
        self.sent.lock().expect("mailer lock").clone()
    }

    /// The folder emails are written to, if any.
    pub fn outbox(&self) -> Option<&Path> {
        self.outbox.as_deref()
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        if email.to.is_empty() {
            return Err(MailError::Rejected("no recipient".into()));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        if let Some(dir) = &self.outbox {
            let io = |e: std::io::Error| MailError::Unavailable(e.to_string());
            std::fs::create_dir_all(dir).map_err(io)?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
            let boundary = format!("b-{id}");
            let headers: String = email.headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
            let eml = format!(
                "Message-ID: <{id}@local>\r\nFrom: {}\r\nTo: {}\r\nSubject: {}\r\n{headers}MIME-Version: 1.0\r\n\
                 Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
                 --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n\
                 --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{}\r\n--{boundary}--\r\n",
                email.from,
                email.to.join(", "),
                crate::domain::email::encode_words(&email.subject),
                email.text,
                email.html
            );
            std::fs::write(dir.join(format!("{stamp}-{id}.eml")), eml).map_err(io)?;
            std::fs::write(dir.join(format!("{stamp}-{id}.html")), &email.html).map_err(io)?;
        }
        self.sent.lock().expect("mailer lock").push((id.clone(), email.clone()));
        Ok(id)
    }
}
