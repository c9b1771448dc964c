//! The sync engine. A job pages through each selected stream of a
//! connection as the catalog declares it, writes each page's records to the
//! record sink under a deterministic key (a redelivered job rewrites the
//! same objects), and saves the stream's cursor after every page. Before its
//! deadline it stops and queues its own continuation, so no progress is lost
//! and no page is fetched twice without need.
//!
//! A worker may die at any instruction. A short lease (a conditional write
//! with an expiry, renewed before a page attempt it might not cover) keeps two workers off
//! one connection and frees it soon after its holder dies; the interrupted
//! run stays on the connection (`running`) with its saved pages. Whatever
//! comes next continues that run from its saved page: the redelivered
//! message, "sync now", or the sweep, which re-queues runs that made no
//! progress for [`crate::domain::policy::RUN_STALL_MINUTES`]. A job that meets a live lease
//! is not acknowledged, so SQS delivers it again later.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::disconnect::{disconnect_authorization, disconnect_connection};
use super::grants::{credentials, CredError::*, Creds};
use super::refresh::{self as tokens, RefreshError};
use super::{events, App};
use crate::catalog::{Paged, Pagination, PlatformEntry, StreamSpec};
use crate::domain::error::{Error, HttpError};
use crate::domain::events::{EventBody, Reason};
use crate::domain::ids::*;
use crate::domain::messages::{AlertEvent, SyncJob};
use crate::domain::policy;
use crate::domain::*;
use crate::platform;
use crate::store::{keys, Change, Versioned};

/// Retries of one page on 429/5xx/timeouts before the job gives up.
const MAX_ATTEMPTS: u32 = 5;
/// Waits up to this long inline; longer waits become a delayed continuation.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);
/// Stop this long before the deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);
/// Time kept for writing a page and saving its cursor after the request.
const SAVE_MARGIN: Duration = Duration::from_secs(5);

/// How long a job may run.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub deadline: Instant,
    /// Stop after this many pages (tests simulate a deadline with it).
    pub max_pages: Option<u64>,
}

impl Budget {
    pub fn until(deadline: Instant) -> Self {
        Self { deadline, max_pages: None }
    }

    pub(super) fn exhausted(&self, pages: u64) -> bool {
        self.max_pages.is_some_and(|m| pages >= m) || Instant::now() + DEADLINE_MARGIN >= self.deadline
    }

    /// Whether an attempt that may take `worst` (the request's timeout, an
    /// inline wait, writing the page) still ends before the deadline.
    pub fn allows(&self, worst: Duration) -> bool {
        Instant::now() + worst < self.deadline
    }
}

/// The longest one page attempt can take: the HTTP timeout, the longest
/// inline wait, and writing the page with its cursor.
pub fn attempt_worst(http_timeout: Duration) -> Duration {
    http_timeout + MAX_INLINE_WAIT + SAVE_MARGIN
}

/// How long a sync lease lasts without renewal: two attempts' worth, so a
/// live worker (which renews before every attempt) never loses it, and a
/// dead worker's lease is free a minute or two after it died.
pub fn lease_ttl(http_timeout: Duration) -> chrono::Duration {
    chrono::Duration::from_std(attempt_worst(http_timeout) * 2).unwrap_or_default() + chrono::Duration::seconds(30)
}

/// What a job did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every selected stream is done.
    Completed,
    /// Stopped before the deadline (or a long Retry-After); continuation queued.
    Continued { delay_seconds: u32 },
    /// Another worker holds a live lease on the connection: the job is
    /// not done and must come again later (the message is not acknowledged).
    Busy,
    /// There is nothing to do (deleted, no credentials, a stale continuation).
    Skipped(&'static str),
    /// The credentials are gone; the connection is disconnected.
    Disconnected(DisconnectReason),
    /// A failure a person must look at (403); the connection shows it.
    Failed(FailureReason),
}

/// Where a stream's paging stands, kept in its cursor between pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub(super) enum PageState {
    Url(String),
    Token(String),
    Number(u64),
    Offset(u64),
    SinceId(String),
}

// ------------------------------------------------------------------- engine

pub(super) struct Run<'a> {
    pub(super) app: &'a App,
    pub(super) entry: &'a PlatformEntry,
    lease: Lease,
    pub(super) connection: Connection,
    version: u64,
    pub(super) vars: BTreeMap<String, String>,
    creds: Creds,
    extra: BTreeMap<String, SecretString>,
    pub(super) pages: u64,
    refreshed: bool,
    /// No request before then: the platform's announced rate.
    not_before: Option<Instant>,
}

/// Runs one sync job within its budget.
pub async fn run_job(app: &App, job: &SyncJob, budget: Budget) -> Result<Outcome, Error> {
    let SyncJob::Sync { workspace_id, connection_id, run_id, trigger, kind } = job;
    let current = match app.repo.connection(workspace_id, connection_id).await {
        Ok(c) => c,
        Err(Error::NotFound { .. }) => return Ok(Outcome::Skipped("the connection was deleted")),
        Err(e) => return Err(e),
    };
    if !current.value.status.has_credentials() {
        return Ok(Outcome::Skipped("the connection has no usable credentials"));
    }
    if matches!(current.value.credential, Credential::FileUpload) {
        return Ok(Outcome::Skipped("file connections are not synced"));
    }
    let owner = uuid::Uuid::new_v4().to_string();
    let http_timeout = Duration::from_secs(app.config.http_timeout_seconds);
    let ttl = lease_ttl(http_timeout);
    let now = app.clock.now();
    let Some(version) = app.repo.acquire_sync_lease(workspace_id, connection_id, &owner, now, ttl).await? else {
        return Ok(Outcome::Busy);
    };
    let mut lease = Lease { owner, version, ttl, attempt_worst: attempt_worst(http_timeout), until: now + ttl };
    let start = Start { run_id: run_id.clone(), trigger: *trigger, kind: *kind };
    let result = run_leased(app, current.value, current.version, start, budget, &mut lease).await;
    app.repo.release_sync_lease(workspace_id, connection_id, lease.version).await;
    result
}

/// The lease this worker holds, renewed before a page attempt it might not
/// cover.
#[derive(Clone)]
struct Lease {
    owner: String,
    version: u64,
    ttl: chrono::Duration,
    attempt_worst: Duration,
    /// When the lease this worker last wrote ends.
    until: DateTime<Utc>,
}

impl Lease {
    /// Whether the lease must be renewed before an attempt starting `now`:
    /// when what is left of it might not outlast the attempt (with a
    /// margin), or the clock says it already ended. A lease with time left
    /// is this worker's alone, so renewing it before every page would only
    /// cost a read and a write each.
    fn needs_renewal(&self, now: DateTime<Utc>) -> bool {
        let need = chrono::Duration::from_std(self.attempt_worst).unwrap_or_default() + chrono::Duration::seconds(30);
        self.until - now < need
    }
}

/// What a job asks of a run.
struct Start {
    run_id: Option<SyncRunId>,
    trigger: Option<SyncTrigger>,
    /// The kind the connection was due for when the job was sent.
    kind: SyncKind,
}

async fn run_leased(
    app: &App,
    mut connection: Connection,
    mut version: u64,
    start: Start,
    budget: Budget,
    lease: &mut Lease,
) -> Result<Outcome, Error> {
    let Start { run_id, trigger, kind } = start;
    let entry = app.catalog.get(connection.platform.as_str())?;
    let now = app.clock.now();
    // A continuation of a run that is over (a redelivered message) does nothing.
    if run_id.is_some() && connection.running.as_ref().map(|r| &r.id) != run_id.as_ref() {
        return Ok(Outcome::Skipped("a continuation of a run that is over"));
    }
    // A first sync's start that was served already does nothing: its
    // message came again after the run it started finished (the
    // acknowledgement was lost). Without this, the redelivery syncs again
    // and writes every full-refresh stream twice.
    if run_id.is_none() && connection.running.is_none() && kind == SyncKind::Initial && connection.initial_sync_done {
        return Ok(Outcome::Skipped("a first sync that is done already"));
    }
    // A run that was interrupted (its worker died, or failed) continues from
    // its saved pages, whatever job comes: starting over would fetch and
    // write its pages again.
    let continuing = match (&run_id, &connection.running) {
        (Some(_), _) => true,
        (None, Some(interrupted)) => {
            tracing::warn!(connection = %connection.id, run = %interrupted.id, "continuing an interrupted run");
            true
        }
        (None, None) => false,
    };
    // A new run starts every stream from its incremental cursor; it is the
    // initial sync until that has completed once (a first job that comes
    // late, after the scheduler sent it again, reads only what is new).
    if !continuing {
        let kind = connection.next_sync_kind();
        let trigger = trigger.or((kind == SyncKind::Initial).then_some(SyncTrigger::Initial));
        connection.running = Some(RunInfo { id: SyncRunId::generate(), kind, started_at: now, trigger });
        for cursor in connection.cursors.values_mut() {
            cursor.page = None;
            cursor.complete = false;
            cursor.pages_this_run = 0;
            cursor.records_this_run = 0;
            cursor.run_max = None;
        }
        version = app.repo.save(&connection, version).await?;
        record_run(app, &connection, RunOutcome::Running, None).await;
    }
    let (creds, vars, extra) = match credentials(app, &connection).await {
        Ok(c) => c,
        Err(Lost(reason)) => return Ok(Outcome::Disconnected(reason)),
        Err(Other(e)) => return Err(e),
    };
    let mut run = Run {
        app,
        entry,
        lease: lease.clone(),
        connection,
        version,
        vars,
        creds,
        extra,
        pages: 0,
        refreshed: false,
        not_before: None,
    };
    let selected: Vec<StreamSpec> = entry
        .streams
        .iter()
        .filter(|s| run.connection.streams.iter().any(|sel| sel.name == s.name && sel.selected))
        .cloned()
        .collect();
    for stream in &selected {
        if run.connection.cursors.get(&stream.name).is_some_and(|c| c.complete) {
            continue;
        }
        // A stream of one sub-account (a report, X's campaigns) has nothing
        // to ask until the connection chose one (its account list says how).
        if stream.names_var(super::accounts::ACCOUNT_PARAM) && !run.vars.contains_key(super::accounts::ACCOUNT_PARAM) {
            tracing::warn!(connection = %run.connection.id, stream = %stream.name, "no account chosen: the stream is not read");
            save_cursor(&mut run, &stream.name, |c| {
                c.complete = true;
                c.page = None;
                c.windows_planned = stream.report.as_ref().map(|_| 0);
            })
            .await?;
            continue;
        }
        let end = match &stream.report {
            Some(spec) => super::reports::sync_report(&mut run, stream, spec, budget).await,
            None => sync_stream(&mut run, stream, budget).await,
        };
        lease.version = run.lease.version;
        match end? {
            StreamEnd::Done => {}
            StreamEnd::Stop(outcome) => {
                if let Outcome::Continued { delay_seconds } = outcome {
                    continue_later(app, &run.connection, delay_seconds).await?;
                }
                return Ok(outcome);
            }
        }
    }
    finish(run).await
}

pub(super) enum StreamEnd {
    Done,
    Stop(Outcome),
}

fn pointer_of(field: &str) -> String {
    if field.starts_with('/') {
        field.to_owned()
    } else {
        format!("/{}", field.replace('.', "/"))
    }
}

/// Where a run of a stream starts: its saved cursor, else (for a stream
/// that needs a start) the history window.
fn run_cursor(run: &Run<'_>, stream: &StreamSpec) -> Option<String> {
    let cursor = run.connection.cursors.get(&stream.name).and_then(|c| c.cursor.clone());
    if cursor.is_none() && stream.initial_window {
        let start = run.app.clock.now() - chrono::Duration::days(i64::from(run.app.config.history_days));
        return Some(start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    cursor
}

fn first_url(run: &Run<'_>, stream: &StreamSpec) -> Result<url::Url, Error> {
    platform::stream_first_url(run.entry, stream, &run.vars, run_cursor(run, stream).as_deref())
}

/// What one page asks: a GET, or a GraphQL query (its page cursor in the
/// variables).
pub(super) enum Ask {
    Get(url::Url),
    Graphql {
        url: url::Url,
        query: String,
        variables: serde_json::Value,
    },
    /// A report's request (any method, a body, its own headers).
    Call(platform::reports::Call),
}

fn page_url(run: &Run<'_>, stream: &StreamSpec, state: Option<&PageState>) -> Result<url::Url, Error> {
    with_page(first_url(run, stream)?, stream.paged(), state)
}

/// A stream's request URL for the page `state` says (the first without).
pub(super) fn with_page(base: url::Url, list: Paged<'_>, state: Option<&PageState>) -> Result<url::Url, Error> {
    let Some(state) = state else {
        if let Pagination::PageNumber { param, start } = list.pagination {
            let mut url = base;
            url.query_pairs_mut().append_pair(param, &start.to_string());
            return Ok(url);
        }
        return Ok(base);
    };
    let mut url = base.clone();
    match (state, list.pagination) {
        (PageState::Url(next), _) => {
            let next = base.join(next).map_err(|_| Error::invalid("next", "not a URL"))?;
            // Credentials go only to the platform's own origin.
            if next.origin() != base.origin() {
                return Err(Error::PlatformFault {
                    reason: FailureReason::NextPageOnAnotherHost,
                    detail: format!("the next page of {} is on another host; it was not fetched", list.name),
                });
            }
            return Ok(next);
        }
        // A GraphQL page's cursor goes in its variables, not its URL.
        (PageState::Token(_), Pagination::GraphqlCursor { .. }) => {}
        (PageState::Token(t), Pagination::CursorInBody { param, alone, .. }) => {
            if *alone {
                url.set_query(None);
            }
            url.query_pairs_mut().append_pair(param, t);
        }
        (PageState::Number(n), Pagination::PageNumber { param, .. })
        | (PageState::Offset(n), Pagination::Offset { param }) => {
            url.query_pairs_mut().append_pair(param, &n.to_string());
        }
        (PageState::SinceId(id), Pagination::SinceId { param, .. }) => {
            url.query_pairs_mut().append_pair(param, id);
        }
        _ => return Err(Error::invalid("cursor", "the saved page does not match the stream's pagination")),
    }
    Ok(url)
}

pub(super) fn next_state(
    list: Paged<'_>,
    state: Option<&PageState>,
    doc: &serde_json::Value,
    headers: &http::HeaderMap,
    count: usize,
    last_id: impl FnOnce(&str) -> Option<String>,
) -> Option<PageState> {
    let full_page = list.page_size.is_none_or(|size| count >= size as usize) && count > 0;
    match list.pagination {
        Pagination::None => None,
        Pagination::GraphqlCursor { end_cursor_pointer, has_next_pointer } => {
            let more = doc.pointer(has_next_pointer).and_then(|v| v.as_bool()).unwrap_or(false);
            let end = doc.pointer(end_cursor_pointer).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
            end.filter(|_| more).map(|e| PageState::Token(e.to_owned()))
        }
        Pagination::LinkHeader => platform::page::next_link(headers).map(PageState::Url),
        Pagination::CursorInBody { next_pointer, .. } => match doc.pointer(next_pointer) {
            Some(serde_json::Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
                Some(PageState::Url(s.clone()))
            }
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(PageState::Token(s.clone())),
            Some(serde_json::Value::Number(n)) => Some(PageState::Token(n.to_string())),
            _ => None,
        },
        Pagination::PageNumber { start, .. } => {
            let current = match state {
                Some(PageState::Number(n)) => *n,
                _ => u64::from(*start),
            };
            full_page.then_some(PageState::Number(current + 1))
        }
        Pagination::Offset { .. } => {
            let current = match state {
                Some(PageState::Offset(n)) => *n,
                _ => 0,
            };
            full_page.then_some(PageState::Offset(current + count as u64))
        }
        Pagination::SinceId { id_field, .. } => {
            if full_page {
                last_id(&pointer_of(id_field)).map(PageState::SinceId)
            } else {
                None
            }
        }
    }
}

/// The record itself, where the platform wraps each one.
fn record_of<'a>(stream: &StreamSpec, item: &'a serde_json::value::RawValue) -> &'a serde_json::value::RawValue {
    match &stream.record_pointer {
        Some(p) => platform::page::raw_at(item, p).unwrap_or(item),
        None => item,
    }
}

/// What fetching a page came to.
pub(super) enum Fetched {
    Page(http::Response<Bytes>),
    /// The token was refreshed: fetch the same page again.
    Retry,
    Stop(Outcome),
}

/// Sends a page request: waits out short 429/5xx backoffs, asks for a
/// continuation on long ones, refreshes once on a 401.
pub(super) async fn fetch(run: &mut Run<'_>, ask: &Ask, budget: Budget) -> Result<Fetched, Error> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        // Only an attempt that can finish before the deadline is started;
        // the page is fetched again by the continuation.
        if !budget.allows(run.lease.attempt_worst) {
            return Ok(Fetched::Stop(Outcome::Continued { delay_seconds: 0 }));
        }
        // Renew the lease; a worker that lost it (it stalled past the lease
        // and another took over) stops at once.
        let (ws, conn) = (&run.connection.workspace_id, &run.connection.id);
        let now = run.app.clock.now();
        if run.lease.needs_renewal(now) {
            match run.app.repo.acquire_sync_lease(ws, conn, &run.lease.owner, now, run.lease.ttl).await? {
                Some(version) => {
                    run.lease.version = version;
                    run.lease.until = now + run.lease.ttl;
                }
                None => return Ok(Fetched::Stop(Outcome::Skipped("the lease was taken over by another worker"))),
            }
        }
        // The platform's pace: wait inline when it is short, else go on later.
        if let Some(at) = run.not_before {
            let wait = at.saturating_duration_since(Instant::now());
            if wait > MAX_INLINE_WAIT {
                return Ok(Fetched::Stop(Outcome::Continued { delay_seconds: wait.as_secs().clamp(1, 900) as u32 }));
            }
            tokio::time::sleep(wait).await;
        }
        let creds = run.creds.as_credentials(&run.extra);
        let request = match ask {
            Ask::Get(url) => platform::api_get(run.entry, url.clone(), &run.vars, &creds)?,
            Ask::Graphql { url, query, variables } => {
                platform::graphql_post(run.entry, url.clone(), &run.vars, &creds, query, variables.clone())?
            }
            Ask::Call(call) => platform::reports::request(run.entry, call, &run.vars, &creds)?,
        };
        let response = run.app.http.send(request).await;
        if let (Ok(r), Some(header)) = (&response, run.entry.api.as_ref().and_then(|a| a.rate_limit_header.as_ref())) {
            let per_second = r
                .headers()
                .get(header.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            if let Some(rate) = per_second.filter(|r| *r > 0.0) {
                run.not_before = Some(Instant::now() + Duration::from_secs_f64((1.0 / rate).min(900.0)));
            }
        }
        if let Err(HttpError::ForbiddenAddress(host)) = &response {
            return Err(Error::PlatformFault {
                reason: FailureReason::AddressNotAllowed,
                detail: format!("{host} is not a public address; nothing was sent to it"),
            });
        }
        let status = response.as_ref().map(|r| r.status()).ok();
        // Errors some platforms answer in the body, whatever the status
        // (TikTok: 200 with a code; Meta: OAuthException 190 over 400).
        let said =
            response.as_ref().map(|r| platform::envelope(run.entry, r.body())).unwrap_or(platform::Envelope::Clear);
        let throttled =
            matches!(said, platform::Envelope::Throttled(_)) || status == Some(http::StatusCode::TOO_MANY_REQUESTS);
        let retry_after = response
            .as_ref()
            .ok()
            .and_then(|r| r.headers().get(http::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let refresh_on_forbidden = run.entry.api.as_ref().is_some_and(|a| a.refresh_on_forbidden);
        // A GraphQL cost budget (Shopify): exactly how long until it covers
        // the next query.
        let cost_wait = response.as_ref().ok().and_then(|r| platform::cost_wait(run.entry, r.body()));
        let wait = match (status, said) {
            (_, platform::Envelope::Revoked(_)) => return unauthorized(run).await,
            (_, platform::Envelope::Denied(_)) => {
                return Ok(Fetched::Stop(Outcome::Failed(FailureReason::PermissionDenied)))
            }
            (_, platform::Envelope::Failed(code)) => {
                return Err(platform_error(format!("the platform answered error code {code} for a page")))
            }
            _ if throttled => retry_after.or(cost_wait).unwrap_or_else(|| backoff(attempt)),
            (Some(s), _) if s.is_success() => {
                // The budget is spent: the next page waits until it refills.
                if let Some(w) = cost_wait.filter(|w| !w.is_zero()) {
                    run.not_before = Some(Instant::now() + w);
                }
                return Ok(Fetched::Page(response.expect("checked")));
            }
            (Some(http::StatusCode::UNAUTHORIZED), _) => return unauthorized(run).await,
            // SP-API answers 403 for an expired token: refresh once first.
            (Some(http::StatusCode::FORBIDDEN), _) if refresh_on_forbidden && !run.refreshed => {
                match refresh_once(run).await? {
                    Some(stop) => return Ok(stop),
                    None => return Ok(Fetched::Retry),
                }
            }
            (Some(http::StatusCode::FORBIDDEN), _) => {
                return Ok(Fetched::Stop(Outcome::Failed(FailureReason::PermissionDenied)))
            }
            (Some(s), _) if s.is_server_error() || s.is_redirection() => {
                retry_after.unwrap_or_else(|| backoff(attempt))
            }
            (Some(s), _) => return Err(platform_error(format!("the platform answered {s} for a page"))),
            (None, _) => backoff(attempt),
        };
        if attempt >= MAX_ATTEMPTS {
            if throttled {
                // Rate limiting is no failure: the run goes on, later, at
                // the platform's pace (SP-API getOrders: one call a minute).
                let delay = wait.max(Duration::from_secs(60)).as_secs().min(900) as u32;
                return Ok(Fetched::Stop(Outcome::Continued { delay_seconds: delay }));
            }
            return Err(platform_error(format!("the platform stayed unavailable after {MAX_ATTEMPTS} attempts")));
        }
        if wait > MAX_INLINE_WAIT {
            return Ok(Fetched::Stop(Outcome::Continued { delay_seconds: wait.as_secs().min(900) as u32 }));
        }
        tokio::time::sleep(wait).await;
    }
}

pub(super) fn platform_error(message: String) -> Error {
    Error::Http(HttpError::Other(message))
}

/// Exponential backoff with full jitter: up to 100 ms × 2^attempt, and
/// never past the inline bound (only a platform's Retry-After defers a job).
fn backoff(attempt: u32) -> Duration {
    policy::full_jitter(Duration::from_millis(100), attempt.min(6), MAX_INLINE_WAIT)
}

/// A 401: one refresh through the shared path, then the grant is revoked.
async fn unauthorized(run: &mut Run<'_>) -> Result<Fetched, Error> {
    match &run.creds {
        Creds::Key(_) => {
            disconnect_connection(run.app, &run.connection, DisconnectReason::ApiKeyInvalid).await?;
            Ok(Fetched::Stop(Outcome::Disconnected(DisconnectReason::ApiKeyInvalid)))
        }
        Creds::OAuth { .. } if !run.refreshed => Ok(refresh_once(run).await?.unwrap_or(Fetched::Retry)),
        Creds::OAuth { authorization, .. } => {
            // Refreshed and still refused: the grant is revoked.
            let id = authorization.clone();
            disconnect_authorization(run.app, &run.connection.workspace_id, &id, DisconnectReason::TokenRevoked)
                .await?;
            Ok(Fetched::Stop(Outcome::Disconnected(DisconnectReason::TokenRevoked)))
        }
    }
}

/// One refresh through the shared single-flight path: `None` when the
/// page can be asked again with the new token.
async fn refresh_once(run: &mut Run<'_>) -> Result<Option<Fetched>, Error> {
    use secrecy::ExposeSecret;
    let Creds::OAuth { authorization, access } = &run.creds else {
        return Ok(Some(Fetched::Stop(Outcome::Failed(FailureReason::PermissionDenied))));
    };
    run.refreshed = true;
    let (id, stale) = (authorization.clone(), access.expose_secret().to_owned());
    match tokens::refresh(run.app, &run.connection.workspace_id, &id, Some(&stale)).await {
        Ok(fresh) => {
            run.creds = Creds::OAuth { authorization: id, access: SecretString::from(fresh.access_token) };
            Ok(None)
        }
        Err(RefreshError::Lost(reason)) => Ok(Some(Fetched::Stop(Outcome::Disconnected(reason)))),
        Err(RefreshError::Transient) => Err(platform_error("the token could not be refreshed yet".into())),
    }
}

async fn sync_stream(run: &mut Run<'_>, stream: &StreamSpec, budget: Budget) -> Result<StreamEnd, Error> {
    loop {
        if budget.exhausted(run.pages) {
            return Ok(StreamEnd::Stop(Outcome::Continued { delay_seconds: 0 }));
        }
        let cursor = run.connection.cursors.get(&stream.name).cloned().unwrap_or_default();
        let state: Option<PageState> = cursor.page.as_deref().and_then(|p| serde_json::from_str(p).ok());
        let url = page_url(run, stream, state.as_ref())?;
        let url = platform::with_credential_query(stream, url, &run.vars, &run.creds.as_credentials(&run.extra))?;
        let ask = match &stream.graphql {
            Some(q) => {
                let after = match &state {
                    Some(PageState::Token(t)) => Some(t.as_str()),
                    _ => None,
                };
                let cursor = run_cursor(run, stream);
                let variables = platform::graphql_variables(q, stream.page_size, after, cursor.as_deref());
                Ask::Graphql { url, query: q.query.clone(), variables }
            }
            None => Ask::Get(url),
        };
        let response = loop {
            match fetch(run, &ask, budget).await? {
                Fetched::Page(r) => break r,
                Fetched::Retry => continue,
                Fetched::Stop(outcome) => return Ok(StreamEnd::Stop(outcome)),
            }
        };
        let page_name = format!("{} page {}", stream.name, cursor.pages_this_run + 1);
        // No content (204, or an empty body): the stream has no more data.
        let no_content = response.status() == http::StatusCode::NO_CONTENT
            || response.body().iter().all(|b| b.is_ascii_whitespace());
        // Records pass through as sent: only the paging fields and each
        // record's cursor are parsed.
        let (doc, records) = if no_content {
            (serde_json::Value::Null, Vec::new())
        } else {
            let page = platform::page::split(response.body(), &stream.records_pointer)
                .map_err(|_| malformed(&page_name, "is not JSON"))?;
            match page.records {
                Some(r) => (page.skeleton, r),
                None => return Err(malformed(&page_name, "has no record list where the catalog says")),
            }
        };
        let next = if no_content {
            None
        } else {
            let last = records.last().map(|l| record_of(stream, l));
            next_state(stream.paged(), state.as_ref(), &doc, response.headers(), records.len(), |p| {
                last.and_then(|l| platform::page::raw_str(l, p))
            })
        };
        let mut lines = Vec::with_capacity(response.body().len() + records.len());
        // The greatest cursor of the whole run (not of this page only),
        // compared as the stream's type says.
        let kind = stream.cursor_type;
        let mut max_cursor = policy::later_cursor(kind, cursor.cursor.clone(), cursor.run_max.clone());
        let cursor_pointer = stream.cursor_field.as_deref().map(pointer_of);
        for item in &records {
            // The record itself, where the platform wraps each one.
            let record = record_of(stream, item);
            platform::page::push_line(&mut lines, record);
            if let Some(p) = &cursor_pointer {
                if let Some(v) = platform::page::raw_str(record, p) {
                    if max_cursor.as_ref().is_none_or(|m| policy::cursor_later(kind, &v, m)) {
                        max_cursor = Some(v);
                    }
                }
            }
        }
        let total = stream.total_pointer.as_deref().and_then(|p| doc.pointer(p)).and_then(|t| t.as_u64());
        // Deterministic key: a redelivered job rewrites the same object.
        let key = keys::record_batch(&run.connection.workspace_id, &run.connection.id, &stream.name, cursor.pages);
        if !records.is_empty() {
            run.app.sink.put(&key, Bytes::from(lines), "application/x-ndjson").await?;
        }
        run.pages += 1;
        let now = run.app.clock.now();
        let count = records.len() as u64;
        let done = next.is_none();
        save_cursor(run, &stream.name, |c| {
            c.pages += 1;
            c.pages_this_run += 1;
            c.records += count;
            c.records_this_run += count;
            c.total = total.or(c.total);
            c.page = next.as_ref().map(|s| serde_json::to_string(s).expect("page state serializes"));
            c.updated_at = Some(now);
            c.run_max = max_cursor.clone();
            if done {
                c.complete = true;
                c.cursor = max_cursor.clone();
                c.run_max = None;
            }
        })
        .await?;
        if done {
            return Ok(StreamEnd::Done);
        }
    }
}

pub(super) fn malformed(page: &str, why: &str) -> Error {
    Error::MalformedPage(format!("{page} {why}"))
}

/// Saves one stream's cursor (we hold the lease; a concurrent API edit only
/// costs a re-read, and keeps the cursors this run wrote).
pub(super) async fn save_cursor(
    run: &mut Run<'_>,
    stream: &str,
    change: impl Fn(&mut StreamCursor),
) -> Result<(), Error> {
    let mine = run.connection.cursors.clone();
    let now = run.app.clock.now();
    let held = Versioned { value: run.connection.clone(), version: run.version };
    let ((), saved) = run
        .app
        .repo
        .update_from(held, |c| {
            c.cursors = mine.clone();
            change(c.cursors.entry(stream.to_owned()).or_default());
            c.updated_at = now;
            Ok(Change::Save(()))
        })
        .await?;
    run.connection = saved.value;
    run.version = saved.version;
    Ok(())
}

async fn continue_later(app: &App, c: &Connection, delay_seconds: u32) -> Result<(), Error> {
    let job = SyncJob::resume(c);
    app.send(&job, delay_seconds).await?;
    tracing::info!(connection = %c.id, delay_seconds, "sync continues in a new job");
    Ok(())
}

/// Writes a run's record in the connection's history, as the connection
/// shows it (a history that cannot be written never stops a sync).
async fn record_run(app: &App, c: &Connection, outcome: RunOutcome, error_code: Option<String>) -> Option<SyncRun> {
    let record = run_record(app, c, outcome, error_code)?;
    if let Err(e) = app.repo.put_run(&record).await {
        tracing::warn!(connection = %c.id, error = %e, "the run's history was not written");
    }
    count_finished(c, outcome);
    Some(record)
}

/// The record of the connection's run under way, as it stands.
fn run_record(app: &App, c: &Connection, outcome: RunOutcome, error_code: Option<String>) -> Option<SyncRun> {
    let info = c.running.as_ref()?;
    let now = app.clock.now();
    let record = SyncRun {
        id: info.id.clone(),
        workspace_id: c.workspace_id.clone(),
        connection_id: c.id.clone(),
        kind: info.kind,
        trigger: info.trigger,
        started_at: info.started_at,
        finished_at: (outcome != RunOutcome::Running).then_some(now),
        streams: c
            .cursors
            .iter()
            .map(|(name, cur)| (name.clone(), StreamRun { records: cur.records_this_run, pages: cur.pages_this_run }))
            .collect(),
        outcome,
        error_code,
        kept_until: info.started_at + chrono::Duration::days(i64::from(app.config.run_retention_days)),
    };
    Some(record)
}

fn count_finished(c: &Connection, outcome: RunOutcome) {
    if outcome != RunOutcome::Running {
        // Counted by the template's metric filters (sync failure rate).
        let outcome = match outcome {
            RunOutcome::Failed => "failed",
            RunOutcome::Disconnected => "disconnected",
            _ => "succeeded",
        };
        tracing::info!(metric = "sync_run", outcome, connection = %c.id, "sync run finished");
    }
}

/// `sync.completed` or `sync.failed` for a run that ended.
async fn announce_run(app: &App, c: &Connection, run: Option<SyncRun>, failure: Option<Reason>) {
    let Some(run) = run else { return };
    let (connection, run) = (c.into(), (&run).into());
    let body = match failure {
        None => EventBody::SyncCompleted { connection, run },
        Some(reason) => EventBody::SyncFailed { connection, run, reason },
    };
    events::emit(app, &c.workspace_id, body).await;
}

async fn finish(run: Run<'_>) -> Result<Outcome, Error> {
    let app = run.app;
    let finished_run = run.connection.clone();
    let cursors = &finished_run.cursors;
    // The history says the run succeeded before the connection does: were
    // the connection's save lost, the run is continued and recorded again
    // (same id); the other way round, a lost history write would leave the
    // run "running" in the history forever (found by the fault harness).
    let record = run_record(app, &finished_run, RunOutcome::Succeeded, None);
    if let Some(record) = &record {
        app.repo.put_run(record).await?;
    }
    let held = Versioned { value: run.connection, version: run.version };
    let ((was_error, previous, stale), saved) = app
        .repo
        .update_from(held, |c| {
            let previous = c.status;
            let stale = c.stale.take();
            // Recovered: from an error, or from data that had stopped flowing.
            let was_error = matches!(c.status, Status::Error { .. }) || stale.is_some();
            c.cursors = cursors.clone();
            let now = app.clock.now();
            if c.status.has_credentials() {
                let event = if c.initial_sync_done { Event::SyncSucceeded } else { Event::InitialSyncCompleted };
                c.apply(event, now)?;
            }
            c.running = None;
            // The next run, at the connection's interval.
            c.next_sync_at = super::schedule::next_after_success(app, c, now);
            Ok(Change::Save((was_error, previous, stale)))
        })
        .await?;
    let c = saved.value;
    count_finished(&finished_run, RunOutcome::Succeeded);
    if was_error {
        let e = AlertEvent::Recovered { workspace_id: c.workspace_id.clone(), connection_id: c.id.clone() };
        app.alert(&e, "recovery alert").await;
    }
    announce_run(app, &c, record, None).await;
    events::status_changed(app, Some(&previous), &c).await;
    if let Some(stale) = stale {
        events::emit(
            app,
            &c.workspace_id,
            EventBody::ConnectionFresh { connection: (&c).into(), stale_since: stale.since },
        )
        .await;
    }
    tracing::info!(connection = %c.id, "sync completed");
    Ok(Outcome::Completed)
}

/// Marks a connection in error after a failed job and raises the alert.
pub async fn record_failure(
    app: &App,
    ws: &WorkspaceId,
    id: &ConnectionId,
    reason: FailureReason,
    message: String,
) -> Result<(), Error> {
    let (previous, saved) = app
        .repo
        .update_connection(ws, id, |c| {
            if !c.status.has_credentials() {
                return Ok(Change::Keep(None));
            }
            let previous = c.status;
            let now = app.clock.now();
            c.apply(Event::SyncFailed(reason), now)?;
            if let Some(e) = c.last_error.as_mut() {
                e.message = message.clone();
            }
            // Tried again soon, within its interval.
            if c.running.is_none() {
                c.next_sync_at = super::schedule::next_after_failure(app, c, now);
            }
            Ok(Change::Save(Some(previous)))
        })
        .await?;
    if let Some(previous) = previous {
        let record = record_run(app, &saved.value, RunOutcome::Failed, Some(reason.code().to_owned())).await;
        announce_run(app, &saved.value, record, Reason::of_status(&saved.value.status)).await;
        events::status_changed(app, Some(&previous), &saved.value).await;
        let event = AlertEvent::SyncFailed {
            workspace_id: ws.clone(),
            connection_id: id.clone(),
            reason: reason.code().to_owned(),
        };
        app.send(&event, 0).await?;
    }
    Ok(())
}

/// One job of the sync worker: run it within the budget; a failure marks
/// the connection in error (and raises its alert) and is returned, so SQS
/// retries it and dead-letters it after its last receive.
pub async fn handle_job(app: &App, job: SyncJob, budget: Budget) -> Result<(), Error> {
    let SyncJob::Sync { workspace_id, connection_id, .. } = &job;
    match run_job(app, &job, budget).await {
        Ok(Outcome::Busy) => {
            // Not acknowledged: SQS delivers it again after its visibility
            // timeout, when the lease has been released or has expired.
            tracing::info!(connection = %connection_id, "another worker holds the connection; the job comes again later");
            Err(Error::SyncInProgress)
        }
        Ok(Outcome::Disconnected(reason)) => {
            if let Ok(c) = app.repo.connection(workspace_id, connection_id).await {
                let record = record_run(app, &c.value, RunOutcome::Disconnected, Some(reason.code().to_owned())).await;
                announce_run(app, &c.value, record, Some(Reason::new(reason.code(), reason.message()))).await;
            }
            tracing::info!(connection = %connection_id, reason = reason.code(), "sync job ended: disconnected");
            Ok(())
        }
        Ok(outcome) => {
            tracing::info!(connection = %connection_id, ?outcome, "sync job done");
            if let Outcome::Failed(reason) = outcome {
                let message = format!("The platform refused access to the data ({}).", reason.code());
                record_failure(app, workspace_id, connection_id, reason, message).await?;
            }
            Ok(())
        }
        Err(Error::PlatformFault { reason, detail }) => {
            // The platform's fault, and retrying cannot fix it: recorded, not retried.
            tracing::warn!(connection = %connection_id, reason = reason.code(), "sync stopped: {detail}");
            let message = format!("The platform's answer cannot be used: {detail}.");
            record_failure(app, workspace_id, connection_id, reason, message).await
        }
        // Our own storage failed (throttled, timed out): SQS delivers the
        // job again and nothing is marked. A hiccup is not a failed sync to
        // alert anyone about (found by the fault harness: a duplicate
        // delivery whose lease read failed marked "error", and alerted, a
        // connection whose run had just succeeded). A failure that lasts
        // dead-letters the job, and the connection then shows as stale.
        Err(e @ (Error::Store(_) | Error::Vault(_) | Error::Queue(_))) => {
            tracing::warn!(connection = %connection_id, error = %e, "sync job failed on our storage; it comes again");
            Err(e)
        }
        Err(e) => {
            let reason = match &e {
                Error::MalformedPage(_) => FailureReason::MalformedResponse,
                Error::Http(_) => FailureReason::PlatformUnavailable,
                _ => FailureReason::Internal,
            };
            let message = match &e {
                Error::MalformedPage(page) => format!("The platform sent a malformed page: {page}."),
                Error::Http(h) => format!("The platform could not be read: {h}."),
                _ => "The sync failed on our side; it will be retried.".to_owned(),
            };
            if let Err(record) = record_failure(app, workspace_id, connection_id, reason, message).await {
                tracing::error!(connection = %connection_id, error = %record, "sync failure not recorded");
            }
            Err(e)
        }
    }
}

/// `POST /v1/connections/{id}/sync`: runs a connection again from its cursors.
pub async fn sync_now(app: &App, caller: &Caller, id: &ConnectionId) -> Result<(), Error> {
    caller.require(Role::Staff)?;
    let c = app.repo.connection(&caller.workspace_id, id).await?.value;
    if matches!(c.credential, Credential::FileUpload) {
        return Err(Error::invalid("connection", "file connections are updated by uploads, not synced"));
    }
    if !c.status.has_credentials() {
        return Err(Error::invalid("connection", "reconnect it first: it has no usable credentials"));
    }
    if c.running.is_some() {
        if app.repo.sync_lease_live(&c.workspace_id, &c.id, app.clock.now()).await? {
            return Err(Error::SyncInProgress);
        }
        // The run's worker died or failed: continue it from its saved page.
        tracing::warn!(connection = %c.id, "sync now continues an interrupted run");
    }
    app.send(&SyncJob::resume(&c).triggered(SyncTrigger::Manual), 0).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_starts_only_if_its_worst_case_ends_before_the_deadline() {
        // At the production timeout (20 s) one attempt may take 27 s.
        let worst = attempt_worst(Duration::from_secs(20));
        assert!(worst >= Duration::from_secs(27));
        let close = Budget::until(Instant::now() + Duration::from_secs(25));
        assert!(!close.exhausted(0), "the page margin alone would start it");
        assert!(!close.allows(worst), "but the attempt could not end in time");
        assert!(Budget::until(Instant::now() + Duration::from_secs(60)).allows(worst));
    }

    #[test]
    fn a_live_workers_lease_outlasts_its_attempts_and_a_dead_ones_expires_before_redelivery() {
        let ttl = lease_ttl(Duration::from_secs(20));
        // Renewed before an attempt it might not cover, it outlasts two of them.
        assert!(ttl > chrono::Duration::from_std(attempt_worst(Duration::from_secs(20)) * 2).unwrap());
        // The sync queue's visibility timeout (template.yaml) is 960 s: the
        // redelivered message finds the dead worker's lease expired.
        assert!(ttl < chrono::Duration::seconds(960));
        assert!(ttl < chrono::Duration::minutes(crate::domain::policy::RUN_STALL_MINUTES));
    }

    #[test]
    fn a_lease_is_renewed_only_when_what_is_left_might_not_cover_an_attempt() {
        let http = Duration::from_secs(20);
        let now = Utc::now();
        let lease = Lease {
            owner: "w".into(),
            version: 1,
            ttl: lease_ttl(http),
            attempt_worst: attempt_worst(http),
            until: now + lease_ttl(http),
        };
        assert!(!lease.needs_renewal(now), "fresh: pages go on without a write");
        let worst = chrono::Duration::from_std(attempt_worst(http)).unwrap();
        assert!(!lease.needs_renewal(lease.until - worst - chrono::Duration::seconds(31)));
        assert!(lease.needs_renewal(lease.until - worst - chrono::Duration::seconds(29)), "too little left");
        assert!(lease.needs_renewal(lease.until + chrono::Duration::seconds(1)), "ended (a stalled worker)");
    }
}
