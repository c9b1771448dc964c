//! Data keeps flowing: the scheduler. It reads only the connections that
//! are due (their shards of the due index; nothing is scanned) and:
//!
//! * starts the next incremental run of a connection whose `next_sync_at`
//!   has come, once (the slot is claimed by a conditional write before the
//!   job is queued), with a small per-connection delay so that connections
//!   created together do not sync in the same second;
//! * takes a disconnected or no longer syncable connection off the schedule
//!   (a reconnect's run puts it back);
//! * re-queues a run that saved no progress for a stall window and whose
//!   lease is free (its worker died and its message is gone): it continues
//!   from its saved page.
//!
//! A finished run schedules the next one at its interval; a failed run is
//! tried again sooner (`sync::record_failure`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::App;
use crate::domain::error::Error;
use crate::domain::messages::{AlertEvent, SyncJob};
use crate::domain::policy;
use crate::domain::{Connection, Staleness};
use crate::store::Versioned;

/// What one tick of the scheduler did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleReport {
    /// Connections read from the due index.
    pub items_read: usize,
    /// Incremental runs queued.
    pub scheduled: usize,
    /// Stalled runs re-queued.
    pub stalled_requeued: usize,
    /// Connections taken off the schedule (disconnected, no longer synced).
    pub unscheduled: usize,
    /// Connections found stale (one `data_not_syncing` alert each).
    pub stale: usize,
}

/// Due connections read per shard per tick (the rest wait for the next).
pub const PER_SHARD: usize = 500;

/// The interval a connection syncs at.
pub fn interval_minutes(app: &App, c: &Connection) -> u32 {
    let platform = app
        .catalog
        .get(c.platform.as_str())
        .map(|e| e.sync_interval(&c.streams))
        .unwrap_or(policy::DEFAULT_SYNC_INTERVAL_MINUTES);
    policy::sync_interval(c.sync_interval_minutes, platform, app.config.sync_interval_floor_minutes)
}

/// When a connection that just synced at `now` syncs next.
pub fn next_after_success(app: &App, c: &Connection, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    c.is_scheduled_source().then(|| now + Duration::minutes(i64::from(interval_minutes(app, c))))
}

/// When a connection whose run just failed at `now` is tried again: within
/// its interval, and soon.
pub fn next_after_failure(app: &App, c: &Connection, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let retry = Duration::minutes(i64::from(interval_minutes(app, c)).min(policy::RETRY_AFTER_FAILURE_MINUTES));
    c.is_scheduled_source().then(|| now + retry)
}

/// Marks a connection whose data stopped flowing (no success for three
/// intervals; an initial sync quiet for a quarter of an hour) and raises one
/// `data_not_syncing` alert: once, by the conditional write. The next
/// successful run clears it and sends the recovery notice.
async fn mark_stale(
    app: &App,
    item: &Versioned<Connection>,
    now: DateTime<Utc>,
) -> Result<Option<Versioned<Connection>>, Error> {
    let c = &item.value;
    let Some(reason) = policy::staleness(c, interval_minutes(app, c), now).filter(|_| c.stale.is_none()) else {
        return Ok(None);
    };
    let mut marked = c.clone();
    marked.stale = Some(Staleness { reason, since: now });
    let Ok(version) = app.repo.save(&marked, item.version).await else {
        return Ok(None); // changed meanwhile: looked at again next tick
    };
    tracing::warn!(connection = %c.id, reason = reason.code(), "data is not syncing");
    let alert = AlertEvent::DataNotSyncing {
        workspace_id: c.workspace_id.clone(),
        connection_id: c.id.clone(),
        reason: reason.code().to_owned(),
    };
    if let Err(e) = app.send(&alert, 0).await {
        // Not alerted: unmark, so that the next tick tries again.
        let _ = app.repo.save(c, version).await;
        return Err(e);
    }
    let body = crate::domain::events::EventBody::ConnectionStale {
        connection: (&marked).into(),
        reason: crate::domain::events::Reason::new(reason.code(), reason.message()),
        since: now,
    };
    super::events::emit(app, &c.workspace_id, body).await;
    Ok(Some(Versioned { value: marked, version }))
}

/// One tick of the scheduler.
pub async fn tick(app: &App) -> Result<ScheduleReport, Error> {
    let now = app.clock.now();
    let due = app.repo.due_connections(now, PER_SHARD).await?;
    let mut report = ScheduleReport { items_read: due.len(), ..ScheduleReport::default() };
    for mut item in due {
        if let Some(marked) = mark_stale(app, &item, now).await? {
            item = marked;
            report.stale += 1;
        }
        let c = item.value.clone();
        if c.running.is_some() {
            if app.repo.sync_lease_live(&c.workspace_id, &c.id, now).await? {
                continue;
            }
            // Look again in a stall window, whatever happens next.
            let mut touched = c.clone();
            touched.updated_at = now;
            if app.repo.save(&touched, item.version).await.is_err() {
                continue; // changed meanwhile: it is moving
            }
            if c.status.has_credentials() {
                app.send(&SyncJob::resume(&c), 0).await?;
                tracing::warn!(connection = %c.id, "a stalled sync run was re-queued");
                report.stalled_requeued += 1;
            }
            continue;
        }
        if c.next_sync_at.is_none_or(|at| at > now) {
            continue;
        }
        let mut claimed = c.clone();
        if !c.is_scheduled_source() {
            claimed.next_sync_at = None;
            if app.repo.save(&claimed, item.version).await.is_ok() {
                report.unscheduled += 1;
            }
            continue;
        }
        // Claim the slot first: a concurrent tick finds the next one. The
        // claim holds only until the job should have started its run (the
        // run then sets the real next slot): a job whose send failed, or a
        // claim whose answer was lost, is tried again then, not an interval
        // later (found by the fault harness: scheduled runs went missing a
        // whole day).
        let interval = interval_minutes(app, &c);
        let hold = Duration::minutes(policy::RUN_STALL_MINUTES) + Duration::seconds(900);
        claimed.next_sync_at = Some(now + Duration::minutes(i64::from(interval)).min(hold));
        if app.repo.save(&claimed, item.version).await.is_err() {
            continue;
        }
        // An API key stored before credential packs moves into one (before
        // the job is sent: the run then reads it from its pack).
        if super::secrets::unpacked_key(&c).is_some() {
            if let Err(e) = super::secrets::pack_key(app, &c.workspace_id, &c.id).await {
                tracing::warn!(connection = %c.id, error = %e, "API key not moved into a pack yet");
            }
        }
        let delay = policy::jitter_seconds(c.id.as_str(), interval).min(900);
        app.send(&SyncJob::start(&c).triggered(crate::domain::SyncTrigger::Scheduled), delay).await?;
        report.scheduled += 1;
    }
    if report.scheduled + report.stalled_requeued + report.unscheduled + report.stale > 0 {
        // `stale` is counted by the template's metric filter (newly stale connections).
        tracing::info!(metric = "scheduler", stale = report.stale, scheduled = report.scheduled, ?report, "scheduler");
    }
    Ok(report)
}
