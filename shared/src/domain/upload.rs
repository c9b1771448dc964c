//! Uploaded files of file connections (custom costs) and what became of
//! them. Where their bytes and rows are stored is the store's business
//! (`store::keys`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::Error;
use super::ids::{ConnectionId, UploadId, UserId, WorkspaceId};
use crate::costs::{FileError, Limits, Period, Report};

/// Through the API (Lambda takes 6 MB synchronously).
pub const DIRECT_LIMITS: Limits = Limits { max_bytes: 5 * 1024 * 1024, max_rows: 100_000 };
/// Through a presigned URL.
pub const LARGE_LIMITS: Limits = Limits { max_bytes: 1024 * 1024 * 1024, max_rows: 20_000_000 };
/// Rows per staged part.
pub const PART_ROWS: usize = 10_000;
/// How long a presigned URL takes a file.
pub const PRESIGN_SECONDS: u64 = 900;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// A presigned URL was handed out; the file has not landed.
    AwaitingFile,
    Ingested,
    Rejected,
    /// The same content was already ingested: nothing new was stored.
    Duplicate,
    /// A later upload for the same period replaced it.
    Replaced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSource {
    Direct,
    Presigned,
    Automation,
}

/// One uploaded file and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub id: UploadId,
    pub workspace_id: WorkspaceId,
    pub connection_id: ConnectionId,
    pub state: UploadState,
    pub source: UploadSource,
    pub period: Option<Period>,
    pub import_valid_rows: bool,
    pub report: Option<Report>,
    pub file_error: Option<FileError>,
    #[serde(default)]
    pub parts: Vec<String>,
    pub duplicate_of: Option<UploadId>,
    pub replaced_by: Option<UploadId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Options of one upload, from the query string.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    pub period: Option<Period>,
    pub import_valid_rows: bool,
}

impl UploadOptions {
    pub fn from_query(period: Option<&str>, import_valid_rows: Option<&str>) -> Result<Self, Error> {
        let period = match period {
            Some(p) => Some(Period::parse(p).ok_or_else(|| Error::invalid("period", "must be a month, YYYY-MM"))?),
            None => None,
        };
        let import_valid_rows = match import_valid_rows {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::invalid("import_valid_rows", "must be true or false")),
        };
        Ok(Self { period, import_valid_rows })
    }
}
