//! The audit log of the service routes: who (the deployer's service, by
//! its IAM identity or the local service token) used which connection,
//! how, when, and what came of it. Never a token, a query or a body.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::WorkspaceId;

/// How long audit records are kept unless the deployment says otherwise.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;

/// Which service route was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceRoute {
    Proxy,
    Credentials,
}

/// One service call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub workspace_id: WorkspaceId,
    /// The caller: an IAM ARN, or `local-service-token`.
    pub caller: String,
    /// As the caller gave it (it may name no connection).
    pub connection_id: String,
    pub route: ServiceRoute,
    /// `METHOD /path` sent to the platform (proxy), without the query.
    pub request: Option<String>,
    /// The status answered to the caller.
    pub status: u16,
    /// The error code answered, if any.
    pub error_code: Option<String>,
    pub at: DateTime<Utc>,
    pub kept_until: DateTime<Utc>,
}

impl AuditRecord {
    pub fn new_id() -> String {
        format!("aud_{}", uuid::Uuid::new_v4().simple())
    }
}
