//! The connections of a workspace: listed (filtered and sorted), read,
//! changed (name, streams, upload schedule, the authorization it uses) and
//! removed. Moving a disconnected connection to a working authorization
//! brings it back and resumes its sync.

use serde::Deserialize;

use super::App;
use crate::domain::error::Error;
use crate::domain::ids::*;
use crate::domain::input::{check_name, select_streams};
use crate::domain::messages::SyncJob;
use crate::domain::paging;
use crate::domain::*;

/// Filters and order of `GET /v1/connections`.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub status: Option<String>,
    pub platform: Option<String>,
    pub client: Option<String>,
    /// `status` (default), `platform`, `client` or `last_synced`.
    pub sort: Option<String>,
}

impl ListQuery {
    /// What names this list for paging: its filters and order.
    pub fn shape(&self) -> String {
        let part = |v: &Option<String>| v.as_deref().unwrap_or("").to_owned();
        let sort = self.sort.as_deref().unwrap_or("status");
        format!("connections|{}|{}|{}|{sort}", part(&self.status), part(&self.platform), part(&self.client))
    }
}

/// The connections of the caller's workspace that the caller may see (a
/// client viewer: those of their clients).
pub async fn visible(app: &App, caller: &Caller) -> Result<Vec<Connection>, Error> {
    let all = app.repo.list::<Connection>(&caller.workspace_id).await?;
    Ok(all.into_iter().map(|v| v.value).filter(|c| caller.may_see(c)).collect())
}

/// How many connections out of place in the list index one listing puts
/// into it (a workspace of more takes a few listings).
const REINDEX_PER_LISTING: usize = 1_000;
/// How long after the first rewrite a second one runs before the list index
/// is trusted: a function of the version before may still be running (and
/// writing connections without their place) for up to its timeout.
const REINDEX_SETTLE_MINUTES: i64 = 15;

/// A page of the connections of the caller's workspace. Default order:
/// disconnected first, then errors, then waiting for consent, then the
/// first sync, then the rest; newest first within. That order (filtered by
/// status or not) is read a page at a time from the list index, however
/// many connections there are; other orders and filters, and a client
/// viewer's list, are read whole, then paged.
pub async fn list(
    app: &App,
    caller: &Caller,
    query: &ListQuery,
    ask: &paging::PageAsk,
) -> Result<(Vec<Connection>, Option<String>), Error> {
    let ws = &caller.workspace_id;
    let shape = query.shape();
    let default_order = caller.clients.is_none()
        && query.platform.is_none()
        && query.client.is_none()
        && query.sort.as_deref().is_none_or(|s| s == "status");
    let rank = match query.status.as_deref() {
        None => Some(None),
        Some(state) => Connection::rank_of_state(state).map(Some),
    };
    // A cursor of the list read whole goes on read whole (the index may
    // have become trusted between two pages).
    let after = paging::position_of(&shape, ask.cursor.as_deref());
    if let (true, Some(rank), Ok(after)) = (default_order, rank, after) {
        if list_index_ready(app, ws).await {
            let paging_on = after.is_some();
            match app.repo.connections_listed(ws, rank, after, ask.limit).await {
                Ok((page, next)) => return Ok((page, next.map(|n| paging::cursor_after(&shape, &n)))),
                // A later page's cursor names a place in the index: that
                // page is the index's to give (try again), not the whole list's.
                Err(e) if paging_on => return Err(e),
                Err(e) => tracing::warn!(error = %e, "the list index could not be read; the list is read whole"),
            }
        }
    }
    paging::page(list_whole(app, caller, query).await?, &shape, ask.cursor.as_deref(), ask.limit)
}

/// Whether the workspace's connections can be paged from the list index.
/// Connections stored by the version before the index are not in it until
/// rewritten: the first listing rewrites them (a thousand at a time), and
/// once a rewrite finds none left a settling time after the first, the
/// index is trusted.
async fn list_index_ready(app: &App, ws: &WorkspaceId) -> bool {
    let trusted = || app.lists_trusted.lock().map(|mut t| t.insert(ws.clone())).ok();
    if app.lists_trusted.lock().is_ok_and(|t| t.contains(ws)) {
        return true;
    }
    let ready = async {
        let state = app.repo.list_index_state(ws).await?;
        if state.as_ref().is_some_and(|s| s.ready) {
            trusted();
            return Ok::<_, Error>(true);
        }
        let now = app.clock.now();
        let out_of_place = app.repo.reindex_connections(ws, REINDEX_PER_LISTING).await?;
        match state {
            None => {
                let first = crate::store::listing::ListIndexState { since: now, ready: false };
                app.repo.set_list_index_state(ws, &first).await?;
                Ok(false)
            }
            Some(s) if out_of_place == 0 && now - s.since >= chrono::Duration::minutes(REINDEX_SETTLE_MINUTES) => {
                // The index answers (DynamoDB builds a new one for a while).
                app.repo.connections_listed(ws, None, None, 1).await?;
                app.repo.set_list_index_state(ws, &crate::store::listing::ListIndexState { ready: true, ..s }).await?;
                tracing::info!(workspace = %ws, "connections are paged from the list index from now on");
                trusted();
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    };
    ready.await.unwrap_or_else(|e| {
        tracing::warn!(workspace = %ws, error = %e, "the list index is not trusted yet");
        false
    })
}

/// The connections of the caller's workspace, filtered and sorted, read
/// whole.
async fn list_whole(app: &App, caller: &Caller, query: &ListQuery) -> Result<Vec<Connection>, Error> {
    let mut list: Vec<Connection> = visible(app, caller)
        .await?
        .into_iter()
        .filter(|c| query.status.as_deref().is_none_or(|s| c.status.state_name() == s))
        .filter(|c| query.platform.as_deref().is_none_or(|p| c.platform.as_str() == p))
        .filter(|c| query.client.as_deref().is_none_or(|id| c.client.as_ref().is_some_and(|cl| cl.id.as_str() == id)))
        .collect();
    match query.sort.as_deref().unwrap_or("status") {
        "status" => list.sort_by(|a, b| a.list_order().cmp(&b.list_order())),
        "platform" => list.sort_by(|a, b| a.platform.cmp(&b.platform).then(a.name.cmp(&b.name))),
        "client" => list.sort_by(|a, b| {
            let name = |c: &Connection| c.client.as_ref().map(|cl| cl.name.to_lowercase());
            name(a).is_none().cmp(&name(b).is_none()).then(name(a).cmp(&name(b)))
        }),
        "last_synced" => list.sort_by_key(|c| c.last_synced_at),
        _ => return Err(Error::invalid("sort", "must be status, platform, client or last_synced")),
    }
    Ok(list)
}

pub async fn get(app: &App, caller: &Caller, id: &ConnectionId) -> Result<Connection, Error> {
    let c = app.repo.connection(&caller.workspace_id, id).await?.value;
    if !caller.may_see(&c) {
        return Err(Error::NotFound { kind: "connection" });
    }
    Ok(c)
}

/// The most runs a page of history holds (the default is 20).
pub const MAX_RUNS_PAGE: usize = 100;

/// A page of a connection's sync runs, newest first.
pub async fn runs(
    app: &App,
    caller: &Caller,
    id: &ConnectionId,
    cursor: Option<&str>,
    limit: Option<usize>,
) -> Result<(Vec<SyncRun>, Option<String>), Error> {
    get(app, caller, id).await?;
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_RUNS_PAGE).contains(&limit) {
        return Err(Error::invalid("limit", format!("must be from 1 to {MAX_RUNS_PAGE}")));
    }
    app.repo.runs_page(&caller.workspace_id, id, cursor, limit).await
}

/// The body of `PATCH /v1/connections/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub name: Option<String>,
    /// Names of the streams to sync.
    pub selected_streams: Option<Vec<String>>,
    /// File connections: `daily`, `weekly`, `monthly`, or null for none.
    #[serde(default, deserialize_with = "present")]
    pub upload_schedule: Option<serde_json::Value>,
    /// OAuth connections: use another authorization of the same platform
    /// (after one was removed); a disconnected connection resumes.
    #[serde(default)]
    pub authorization_id: Option<String>,
    /// Its own sync interval in minutes (from the deployment's floor to a
    /// week), or null for its platform's.
    #[serde(default, deserialize_with = "present")]
    pub sync_interval_minutes: Option<serde_json::Value>,
}

/// A field that is there, even as `null` (which clears it), as opposed to
/// one that is absent (which changes nothing).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// `PATCH /v1/connections/{id}`.
pub async fn patch(app: &App, caller: &Caller, id: &ConnectionId, patch: Patch) -> Result<Connection, Error> {
    caller.require(Role::Staff)?;
    let current = app.repo.connection(&caller.workspace_id, id).await?;
    let previous = current.value.status;
    let mut c = current.value;
    if let Some(name) = &patch.name {
        c.name = check_name(name)?;
    }
    if let Some(selected) = &patch.selected_streams {
        select_streams(&mut c.streams, selected, "this connection")?;
    }
    let mut resume = false;
    if let Some(auth_id) = &patch.authorization_id {
        if !matches!(c.credential, Credential::Authorization { .. }) {
            return Err(Error::invalid("authorization_id", "only OAuth connections use an authorization"));
        }
        let auth = app.repo.authorization(&caller.workspace_id, &AuthorizationId::parse(auth_id)?).await?.value;
        if auth.platform != c.platform {
            return Err(Error::invalid(
                "authorization_id",
                format!("the authorization is for {}, not {}", auth.platform, c.platform),
            ));
        }
        if !auth.status.has_credentials() && auth.status != Status::Connected {
            return Err(Error::invalid("authorization_id", "that authorization is disconnected; reconnect it first"));
        }
        c.credential = Credential::Authorization { authorization_id: auth.id.clone() };
        if matches!(c.status, Status::Disconnected { .. }) {
            c.apply(Event::Reconnected { initial_sync_done: c.initial_sync_done }, app.clock.now())?;
            resume = c.role == ConnectionRole::Source;
        }
    }
    if let Some(value) = patch.sync_interval_minutes {
        let floor = app.config.sync_interval_floor_minutes;
        let max = crate::domain::policy::MAX_SYNC_INTERVAL_MINUTES;
        c.sync_interval_minutes = match value {
            serde_json::Value::Null => None,
            v => match v.as_u64().map(|n| n as u32).filter(|n| (floor..=max).contains(n)) {
                Some(n) => Some(n),
                None => {
                    return Err(Error::invalid(
                        "sync_interval_minutes",
                        format!("must be a whole number of minutes from {floor} to {max}, or null for the platform's"),
                    ))
                }
            },
        };
        // The next run moves with the interval (from the last one); before
        // the first sync, its slot is the safety net that starts it if its
        // job is lost, and stays (found by the fault harness, seed 138: a
        // new interval pushed it a day out, and a lost first job left the
        // connection "initial sync in progress" that long).
        if c.next_sync_at.is_some() && c.running.is_none() && c.initial_sync_done {
            let from = c.last_synced_at.unwrap_or(app.clock.now());
            let next = from + chrono::Duration::minutes(i64::from(super::schedule::interval_minutes(app, &c)));
            c.next_sync_at = Some(next.max(app.clock.now()));
        }
    }
    if let Some(schedule) = patch.upload_schedule {
        if !matches!(c.credential, Credential::FileUpload) {
            return Err(Error::invalid("upload_schedule", "only file connections have an upload schedule"));
        }
        c.upload_schedule = serde_json::from_value(schedule)
            .map_err(|_| Error::invalid("upload_schedule", "must be daily, weekly, monthly or null"))?;
    }
    c.updated_at = app.clock.now();
    app.repo.save(&c, current.version).await?;
    if resume {
        app.send(&SyncJob::start(&c), 0).await?;
    }
    super::events::status_changed(app, Some(&previous), &c).await;
    Ok(c)
}

/// `DELETE /v1/connections/{id}`: its own key dies with it; a shared
/// authorization stays.
pub async fn remove(app: &App, caller: &Caller, id: &ConnectionId) -> Result<(), Error> {
    caller.require(Role::Staff)?;
    let current = app.repo.connection(&caller.workspace_id, id).await?;
    app.repo.delete(&current.value, current.version).await?;
    if matches!(current.value.credential, Credential::FileUpload) {
        // Its upload tokens die with it.
        app.repo.delete_upload_tokens(&caller.workspace_id, id).await?;
    }
    if let Credential::ApiKey { secret, fingerprint, .. } = &current.value.credential {
        app.vault.delete(&secret.0).await?;
        app.repo.release_api_key(&caller.workspace_id, current.value.platform.as_str(), fingerprint, id).await;
    }
    let removed = crate::domain::events::EventBody::ConnectionRemoved { connection: (&current.value).into() };
    super::events::emit(app, &caller.workspace_id, removed).await;
    Ok(())
}
