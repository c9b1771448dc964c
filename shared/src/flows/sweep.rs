//! The scheduled expiry sweep. It reads only the authorizations that are
//! due (the sparse, sharded due index; never a scan), handles them with
//! bounded concurrency, and applies the catalog's refresh policy:
//!
//! * refreshable tokens are refreshed ahead of expiry, and refresh tokens
//!   that die when idle are exercised before they do;
//! * tokens that cannot be refreshed raise an "expiring soon" alert days
//!   ahead, then are disconnected at expiry;
//! * grants with no known expiry are probed with the cheap identity request;
//! * transient failures are retried with a growing cooldown, and only a
//!   long run of them (days) disconnects.
//!
//! It also re-queues sync runs that stalled (their worker died and their
//! message is gone): see `flows::sync::requeue_stalled_runs`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::disconnect::disconnect_authorization;
use super::refresh::{self as tokens, RefreshError};
use super::App;
use crate::catalog::{OAuthSpec, PlatformEntry, RefreshKind};
use crate::domain::error::Error;
use crate::domain::ids::{AuthorizationId, WorkspaceId};
use crate::domain::messages::AlertEvent;
use crate::domain::policy::{self, EXPIRING_SOON_DAYS, REFRESH_MARGIN_MINUTES};
use crate::domain::*;
use crate::platform::{identity, Credentials};
use crate::store::Versioned;

/// Authorizations handled at once.
pub const CONCURRENCY: usize = 8;
/// Due items read per shard per sweep (the rest wait for the next sweep).
pub const PER_SHARD: usize = 500;
/// Consecutive transient failures after which a grant whose access token
/// has been expired for [`GIVE_UP_AFTER_DAYS`] is disconnected.
pub const MAX_TRANSIENT_FAILURES: u32 = 12;
pub const GIVE_UP_AFTER_DAYS: i64 = 3;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Items read from the due index (the due count; never a scan).
    pub items_read: usize,
    pub refreshed: usize,
    pub probed: usize,
    pub expiring_alerts: usize,
    pub disconnected: usize,
    pub transient_failures: usize,
    pub unchanged: usize,
    /// Sync runs that had stalled (their worker died) and were re-queued.
    #[serde(default)]
    pub stalled_runs_requeued: usize,
    /// Incremental runs the scheduler queued.
    #[serde(default)]
    pub syncs_scheduled: usize,
    /// Installs nobody claimed in time, whose tokens were deleted.
    #[serde(default)]
    pub installs_expired: usize,
    /// Uploads that waited too long for their file, ended.
    pub uploads_expired: usize,
    /// Workspaces whose pending alert emails no flush took in time.
    pub mail_flushes_requeued: usize,
    /// Secrets written ahead of their items whose intent came due (those
    /// no item holds are deleted).
    #[serde(default)]
    pub secret_intents_checked: usize,
    /// Events the queue had refused, queued now.
    #[serde(default)]
    pub events_requeued: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    Refreshed,
    Probed,
    ExpiringAlert,
    Disconnected,
    Transient,
    Unchanged,
}

/// Runs one sweep.
pub async fn sweep(app: &App) -> Result<SweepReport, Error> {
    let now = app.clock.now();
    let due = app.repo.due_authorizations(now, PER_SHARD).await?;
    let mut report = SweepReport { items_read: due.len(), ..SweepReport::default() };
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for auth in due {
        let (app, limit) = (app.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let (ws, id) = (auth.value.workspace_id.clone(), auth.value.id.clone());
            let unpacked = super::secrets::grant_unpacked(&app, &auth.value);
            let done = match check(&app, auth).await {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(authorization = %id, error = %e, "sweep could not check an authorization");
                    Done::Transient
                }
            };
            // Tokens stored before credential packs move into one.
            if unpacked {
                if let Err(e) = super::secrets::pack_grant(&app, &ws, &id).await {
                    tracing::warn!(authorization = %id, error = %e, "tokens not moved into a pack yet");
                }
            }
            done
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done.unwrap_or(Done::Transient) {
            Done::Refreshed => report.refreshed += 1,
            Done::Probed => report.probed += 1,
            Done::ExpiringAlert => report.expiring_alerts += 1,
            Done::Disconnected => report.disconnected += 1,
            Done::Transient => report.transient_failures += 1,
            Done::Unchanged => report.unchanged += 1,
        }
    }
    // The scheduler: the next incremental runs, and runs whose worker died
    // and whose message is gone.
    match super::schedule::tick(app).await {
        Ok(s) => {
            report.stalled_runs_requeued = s.stalled_requeued;
            report.syncs_scheduled = s.scheduled;
        }
        Err(e) => tracing::error!(error = %e, "the scheduler could not run"),
    }
    match super::events::flush_outbox(app).await {
        Ok(n) => report.events_requeued = n,
        Err(e) => tracing::error!(error = %e, "kept events could not be queued yet"),
    }
    match super::installs::expire(app).await {
        Ok(n) => report.installs_expired = n,
        Err(e) => tracing::error!(error = %e, "expired installs could not be removed"),
    }
    match super::secrets::forget_orphans(app).await {
        Ok(n) => report.secret_intents_checked = n,
        Err(e) => tracing::error!(error = %e, "secrets written ahead of their items could not be checked yet"),
    }
    match super::alerts::flush_stranded(app).await {
        Ok(n) => report.mail_flushes_requeued = n,
        Err(e) => tracing::error!(error = %e, "stranded alert emails could not be flushed yet"),
    }
    // Last: processing files whose event was lost is the longest step.
    match super::file_uploads::expire_waiting(app, super::file_uploads::LANDED_FILES_BUDGET).await {
        Ok(n) => report.uploads_expired = n,
        Err(e) => tracing::error!(error = %e, "uploads waiting too long could not be ended"),
    }
    tracing::info!(?report, "expiry sweep");
    Ok(report)
}

/// The policy for one due authorization.
async fn check(app: &App, auth: Versioned<Authorization>) -> Result<Done, Error> {
    let a = &auth.value;
    if !a.status.has_credentials() && a.status != Status::Connected {
        return reschedule(app, auth, None).await.map(|_| Done::Unchanged);
    }
    let entry = app.catalog.get(a.platform.as_str())?;
    let spec = entry.oauth.as_ref().ok_or_else(|| Error::Config(format!("{}: no oauth", entry.id)))?;
    let now = app.clock.now();
    let refreshable = spec.refresh.kind.is_refreshable();

    // A grant past the platform's end of life.
    let end = if refreshable {
        a.expiry.reauthorize_by.or(a.expiry.refresh_expires_at)
    } else {
        a.expiry.reauthorize_by.or(a.expiry.access_expires_at)
    };
    if let Some(end) = end.filter(|e| *e <= now) {
        let reason = if spec.refresh.kind == RefreshKind::LongLivedExchange || a.expiry.reauthorize_by == Some(end) {
            DisconnectReason::ReauthorizationRequired
        } else {
            DisconnectReason::TokenExpired
        };
        disconnect_authorization(app, &a.workspace_id, &a.id, reason).await?;
        return Ok(Done::Disconnected);
    }
    // Warn ahead of an end that refreshing cannot push back.
    if let Some(end) = end.filter(|e| *e - Duration::days(EXPIRING_SOON_DAYS) <= now) {
        if a.expiring_alert_at.is_none() {
            let event = AlertEvent::ExpiringSoon {
                workspace_id: a.workspace_id.clone(),
                authorization_id: a.id.clone(),
                expires_at: end,
            };
            app.send(&event, 0).await?;
            let mut warned = auth.clone();
            warned.value.expiring_alert_at = Some(now);
            reschedule(app, warned, Some(end)).await?;
            return Ok(Done::ExpiringAlert);
        }
    }
    if refreshable {
        let access_due =
            a.expiry.access_expires_at.is_some_and(|e| e - Duration::minutes(REFRESH_MARGIN_MINUTES) <= now);
        let idle_due = a.expiry.idle_expires_at.is_some_and(|e| e - Duration::days(EXPIRING_SOON_DAYS) <= now);
        // A refresher that died holding the lease may have left a refresh
        // token the platform has already replaced: refreshing now finds out.
        let abandoned = a.refresh_lease.as_ref().is_some_and(|l| l.until <= now);
        if access_due || idle_due || abandoned {
            return refresh(app, auth, spec).await;
        }
    }
    // Otherwise: is the grant still alive?
    probe(app, auth, entry, spec).await
}

async fn refresh(app: &App, auth: Versioned<Authorization>, spec: &OAuthSpec) -> Result<Done, Error> {
    let a = &auth.value;
    match tokens::refresh(app, &a.workspace_id, &a.id, None).await {
        Ok(_) => Ok(Done::Refreshed),
        Err(RefreshError::Lost(_)) => Ok(Done::Disconnected),
        Err(RefreshError::Transient) => transient(app, &a.workspace_id, &a.id, spec).await,
    }
}

/// A transient failure: back off (a cooldown that grows), and disconnect
/// only once failures have gone on for days.
async fn transient(app: &App, ws: &WorkspaceId, id: &AuthorizationId, spec: &OAuthSpec) -> Result<Done, Error> {
    let now = app.clock.now();
    let current = app.repo.authorization(ws, id).await?;
    let a = &current.value;
    let failures = a.refresh_failures.max(1);
    let expired_long_ago = a.expiry.access_expires_at.is_some_and(|e| e + Duration::days(GIVE_UP_AFTER_DAYS) <= now);
    if failures >= MAX_TRANSIENT_FAILURES && expired_long_ago {
        disconnect_authorization(app, ws, id, DisconnectReason::RefreshFailed).await?;
        return Ok(Done::Disconnected);
    }
    // 15 minutes, doubling, at most 6 hours: no refresh storms.
    let cooldown = Duration::minutes(15 * (1i64 << failures.min(5))).min(Duration::hours(6));
    let _ = spec;
    reschedule(app, current, Some(now + cooldown)).await?;
    Ok(Done::Transient)
}

/// The identity request with the current token: alive, revoked, or unknown.
async fn probe(
    app: &App,
    auth: Versioned<Authorization>,
    entry: &PlatformEntry,
    spec: &OAuthSpec,
) -> Result<Done, Error> {
    let a = auth.value.clone();
    if entry.identity.is_none() {
        return reschedule(app, auth, None).await.map(|_| Done::Unchanged);
    }
    let tokens = tokens::tokens_of(app, &a).await?;
    let app_creds = app.app_credentials(entry, &a.workspace_id).await.ok();
    let creds = Credentials::for_grant(&tokens, app_creds);
    let Some(request) = identity::request(entry, &a.params, &creds)? else {
        return reschedule(app, auth, None).await.map(|_| Done::Unchanged);
    };
    let answer = app.http.send(request).await.ok();
    // An error in the body counts as its status would (TikTok answers 200).
    let status = answer.as_ref().map(|r| match crate::platform::envelope(entry, r.body()) {
        crate::platform::Envelope::Revoked(_) => http::StatusCode::UNAUTHORIZED,
        crate::platform::Envelope::Throttled(_) => http::StatusCode::TOO_MANY_REQUESTS,
        crate::platform::Envelope::Denied(_) => http::StatusCode::FORBIDDEN,
        crate::platform::Envelope::Failed(_) => http::StatusCode::BAD_GATEWAY,
        crate::platform::Envelope::Clear => r.status(),
    });
    match status {
        Some(s) if s.is_success() => {
            reschedule(app, auth, None).await?;
            Ok(Done::Probed)
        }
        Some(http::StatusCode::UNAUTHORIZED) => {
            // The access token is refused: a refresh tells revoked from expired.
            if spec.refresh.kind.is_refreshable() {
                return match tokens::refresh(app, &a.workspace_id, &a.id, Some(&tokens.access_token)).await {
                    Ok(_) => Ok(Done::Refreshed),
                    Err(RefreshError::Lost(_)) => Ok(Done::Disconnected),
                    Err(RefreshError::Transient) => transient(app, &a.workspace_id, &a.id, spec).await,
                };
            }
            disconnect_authorization(app, &a.workspace_id, &a.id, DisconnectReason::TokenRevoked).await?;
            Ok(Done::Disconnected)
        }
        _ => {
            let mut failed = auth;
            failed.value.refresh_failures += 1;
            let (ws, id) = (failed.value.workspace_id.clone(), failed.value.id.clone());
            let version = app.repo.save(&failed.value, failed.version).await?;
            let _ = version;
            transient(app, &ws, &id, spec).await
        }
    }
}

/// Saves the authorization with its next check: `at`, or the policy's.
async fn reschedule(app: &App, mut auth: Versioned<Authorization>, at: Option<DateTime<Utc>>) -> Result<(), Error> {
    let now = app.clock.now();
    let spec = app.catalog.get(auth.value.platform.as_str()).ok().and_then(|e| e.oauth.clone());
    let next = match (at, spec) {
        (Some(at), _) => Some(at.max(now + Duration::minutes(1))),
        (None, Some(spec)) if auth.value.status.has_credentials() => {
            let a = &auth.value;
            Some(match a.expiring_alert_at {
                None => policy::next_check(&spec, &a.expiry, now),
                Some(_) => {
                    // Warned already: keep refreshing or probing, and look
                    // again at the end itself.
                    let mut rest = a.expiry.clone();
                    let end = rest.reauthorize_by.take().or(rest.refresh_expires_at.take());
                    let end =
                        end.or(if spec.refresh.kind.is_refreshable() { None } else { rest.access_expires_at.take() });
                    let next = policy::next_check(&spec, &rest, now);
                    end.map_or(next, |e| next.min(e.max(now + Duration::minutes(1))))
                }
            })
        }
        _ => None,
    };
    auth.value.next_check_at = next;
    auth.value.updated_at = now;
    match app.repo.save(&auth.value, auth.version).await {
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
