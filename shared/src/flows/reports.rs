//! Report streams (ad spend, analytics by day): read in date windows, newest
//! first, so the last days appear first and progress counts windows. The
//! first run reads the declared history; every later run starts
//! `lookback_days` back (platforms restate recent days: conversions arrive
//! late). Each day of a window is written whole, its raw rows and its
//! normalised spend facts, only once the window is read entirely: a
//! restated day replaces the day, never duplicates it, and a worker that
//! dies mid-window leaves nothing half-written (the window is read again).
//!
//! A report the platform builds in the background (Amazon Ads reporting
//! v3) is created, its id saved in the stream's progress, polled on a
//! delayed continuation (never waited for in a worker), then downloaded
//! from a declared host without credentials and read row by row.

use bytes::Bytes;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

use super::accounts::{ACCOUNT_CURRENCY_PARAM, ACCOUNT_NAME_PARAM, ACCOUNT_PARAM, ACCOUNT_TIME_ZONE_PARAM};
use super::sync::{
    fetch, malformed, next_state, platform_error, save_cursor, with_page, Ask, Budget, Fetched, Outcome, PageState,
    Run, StreamEnd,
};
use crate::catalog::{ReportJob, ReportSpec, SpendMapping, StreamSpec};
use crate::domain::error::Error;
use crate::domain::FailureReason;
use crate::platform::{self, reports, reports::Row};
use crate::store::keys;

/// Where a report stream's run stands, kept in its cursor's `page`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Progress {
    /// The run's first day (the history, or the lookback).
    start: NaiveDate,
    /// The last day of the next window to read (windows go newest first).
    next_to: NaiveDate,
    /// The background report of that window, when one was created.
    #[serde(default)]
    job: Option<PendingJob>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingJob {
    id: String,
    polls: u32,
}

/// One window's rows, per day: the raw lines and the facts' lines.
#[derive(Default)]
struct Day {
    raw: Vec<u8>,
    facts: Vec<u8>,
    rows: u64,
}

fn windows(start: NaiveDate, end: NaiveDate, width: u64) -> u64 {
    let days = (end - start).num_days() + 1;
    if days <= 0 {
        0
    } else {
        (days as u64).div_ceil(width)
    }
}

pub(super) async fn sync_report(
    run: &mut Run<'_>,
    stream: &StreamSpec,
    spec: &ReportSpec,
    budget: Budget,
) -> Result<StreamEnd, Error> {
    let today = run.app.clock.now().date_naive();
    let width = u64::from(spec.window_days.max(1));
    let cursor = run.connection.cursors.get(&stream.name).cloned().unwrap_or_default();
    let mut progress = match cursor.page.as_deref().and_then(|p| serde_json::from_str::<Progress>(p).ok()) {
        Some(p) => p,
        None => {
            let first = today - Days::new(u64::from(spec.history_days.unwrap_or(run.app.config.history_days)));
            let last = cursor.cursor.as_deref().and_then(|c| NaiveDate::parse_from_str(c, "%Y-%m-%d").ok());
            let start = match last {
                Some(last) => (last + Days::new(1)).min(today - Days::new(u64::from(spec.lookback_days))).max(first),
                None => first,
            };
            let p = Progress { start, next_to: today, job: None };
            let (planned, page) = (windows(start, today, width), serde_json::to_string(&p).expect("progress"));
            save_cursor(run, &stream.name, |c| {
                c.windows_planned = Some(planned);
                c.windows_done = 0;
                c.page = Some(page.clone());
            })
            .await?;
            p
        }
    };
    while progress.next_to >= progress.start {
        if budget.exhausted(run.pages) {
            return Ok(StreamEnd::Stop(Outcome::Continued { delay_seconds: 0 }));
        }
        let to = progress.next_to;
        let from = to.checked_sub_days(Days::new(width - 1)).unwrap_or(progress.start).max(progress.start);
        let vars = reports::window_vars(spec, &run.vars, from, to);
        let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
        let mut day = from;
        while day <= to {
            days.insert(day, Day::default());
            day = day + Days::new(1);
        }
        let read = match &spec.job {
            None => read_pages(run, stream, spec, &vars, &mut days, budget).await?,
            Some(job) => read_job(run, stream, spec, job, &vars, &mut progress, &mut days, budget).await?,
        };
        if let Some(stop) = read {
            return Ok(stop);
        }
        let (ws, id) = (run.connection.workspace_id.clone(), run.connection.id.clone());
        let mut count = 0;
        for (day, lines) in days {
            let day = day.format("%Y-%m-%d").to_string();
            count += lines.rows;
            let sink = &run.app.sink;
            sink.put(&keys::report_day(&ws, &id, &stream.name, &day), Bytes::from(lines.raw), "application/x-ndjson")
                .await?;
            sink.put(&keys::spend_day(&ws, &id, &stream.name, &day), Bytes::from(lines.facts), "application/x-ndjson")
                .await?;
        }
        run.pages += 1;
        progress = Progress { start: progress.start, next_to: from - Days::new(1), job: None };
        let (now, page) = (run.app.clock.now(), serde_json::to_string(&progress).expect("progress"));
        save_cursor(run, &stream.name, |c| {
            c.pages += 1;
            c.pages_this_run += 1;
            c.windows_done += 1;
            c.records += count;
            c.records_this_run += count;
            c.page = Some(page.clone());
            c.updated_at = Some(now);
        })
        .await?;
    }
    // Today is partial: the last complete day is yesterday, read again
    // (with the lookback) next time.
    let last = (today - Days::new(1)).format("%Y-%m-%d").to_string();
    save_cursor(run, &stream.name, |c| {
        c.complete = true;
        c.page = None;
        c.cursor = Some(last.clone());
    })
    .await?;
    Ok(StreamEnd::Done)
}

/// Fetches one request, retried and refreshed as any page.
async fn fetch_doc(
    run: &mut Run<'_>,
    ask: Ask,
    what: &str,
    budget: Budget,
) -> Result<Result<serde_json::Value, StreamEnd>, Error> {
    let response = loop {
        match fetch(run, &ask, budget).await? {
            Fetched::Page(r) => break r,
            Fetched::Retry => continue,
            Fetched::Stop(outcome) => return Ok(Err(StreamEnd::Stop(outcome))),
        }
    };
    platform::document(response.body()).map(Ok).ok_or_else(|| malformed(what, "is not JSON"))
}

/// A window read directly: its pages, each row filed under its day.
async fn read_pages(
    run: &mut Run<'_>,
    stream: &StreamSpec,
    spec: &ReportSpec,
    vars: &BTreeMap<String, String>,
    days: &mut BTreeMap<NaiveDate, Day>,
    budget: Budget,
) -> Result<Option<StreamEnd>, Error> {
    let base = reports::call(run.entry, stream, spec, vars)?;
    let from = *days.keys().next().expect("a window has days");
    let mut state: Option<PageState> = None;
    loop {
        let mut call = base.clone();
        call.url = with_page(base.url.clone(), stream.paged(), state.as_ref())?;
        let what = format!("{} {}", stream.name, vars["from"]);
        let doc = match fetch_doc(run, Ask::Call(call), &what, budget).await? {
            Ok(doc) => doc,
            Err(stop) => return Ok(Some(stop)),
        };
        let found = reports::rows(&doc, &stream.records_pointer);
        for row in &found {
            match &spec.series {
                None => file_row(run, stream, spec, row, days)?,
                Some(series) => {
                    for day in reports::series_rows(row, &series.metrics_pointer, from) {
                        file_row(run, stream, spec, &Row::of(&day), days)?;
                    }
                }
            }
        }
        let count = found.len();
        let last = found.last();
        match next_state(stream.paged(), state.as_ref(), &doc, &http::HeaderMap::new(), count, |p| {
            last.and_then(|l| crate::platform::pointer_str(l.value, p))
        }) {
            Some(next) if count > 0 => state = Some(next),
            _ => return Ok(None),
        }
        // A window is read whole (its pages are few): only the deadline
        // stops it (in `fetch`), and the continuation reads it again, as
        // nothing of it was written.
        run.pages += 1;
    }
}

/// A window built in the background: created, then polled on delayed
/// continuations, then downloaded. `None` once its rows are filed.
#[allow(clippy::too_many_arguments)]
async fn read_job(
    run: &mut Run<'_>,
    stream: &StreamSpec,
    spec: &ReportSpec,
    job: &ReportJob,
    vars: &BTreeMap<String, String>,
    progress: &mut Progress,
    days: &mut BTreeMap<NaiveDate, Day>,
    budget: Budget,
) -> Result<Option<StreamEnd>, Error> {
    let what = format!("{} report of {}", stream.name, vars["from"]);
    let Some(pending) = progress.job.clone() else {
        // Create it, and save its id before anything else: a worker that
        // dies now polls the same report next time.
        let call = reports::call(run.entry, stream, spec, vars)?;
        let doc = match fetch_doc(run, Ask::Call(call), &what, budget).await? {
            Ok(doc) => doc,
            Err(stop) => return Ok(Some(stop)),
        };
        let id = platform::pointer_str(&doc, &job.id_pointer).ok_or_else(|| malformed(&what, "names no report id"))?;
        progress.job = Some(PendingJob { id, polls: 0 });
        save_progress(run, stream, progress).await?;
        return Ok(Some(StreamEnd::Stop(Outcome::Continued { delay_seconds: job.poll_seconds })));
    };
    let mut poll_vars = vars.clone();
    poll_vars.insert("job_id".into(), pending.id.clone());
    let poll = ReportSpec {
        method: job.poll_method.clone(),
        body: job.poll_body.clone(),
        headers: job.poll_headers.clone().unwrap_or_else(|| spec.headers.clone()),
        query: BTreeMap::new(),
        ..spec.clone()
    };
    let mut call = reports::call(run.entry, stream, &poll, &poll_vars)?;
    call.url = platform::api_url(run.entry, &job.poll_path, &poll_vars)?;
    let doc = match fetch_doc(run, Ask::Call(call), &what, budget).await? {
        Ok(doc) => doc,
        Err(stop) => return Ok(Some(stop)),
    };
    let status = platform::pointer_str(&doc, &job.status_pointer).unwrap_or_default();
    if job.failed.contains(&status) {
        // Created again by the next run.
        progress.job = None;
        save_progress(run, stream, progress).await?;
        return Err(platform_error(format!("the platform's {what} ended {status}")));
    }
    if !job.done.contains(&status) {
        let polls = pending.polls + 1;
        // A report that never finishes is asked for again, not waited on forever.
        progress.job = (polls < job.max_polls).then(|| PendingJob { id: pending.id.clone(), polls });
        save_progress(run, stream, progress).await?;
        return Ok(Some(StreamEnd::Stop(Outcome::Continued { delay_seconds: job.poll_seconds })));
    }
    // Done, and no file: the window has no data (Microsoft answers so).
    let Some(location) = platform::pointer_str(&doc, &job.url_pointer) else { return Ok(None) };
    let url = url::Url::parse(&location).map_err(|_| malformed(&what, "names a file that is not a URL"))?;
    if !reports::download_allowed(&url, &job.download_hosts) {
        return Err(Error::PlatformFault {
            reason: FailureReason::AddressNotAllowed,
            detail: format!("the {what} is on a host the catalog does not name; it was not downloaded"),
        });
    }
    // The file's URL is signed: no credentials go with it.
    let request = http::Request::get(url.as_str()).body(Bytes::new()).map_err(|e| Error::Config(e.to_string()))?;
    let response = run.app.http.send(request).await.map_err(Error::from)?;
    if !response.status().is_success() {
        // An expired link: poll again for a fresh one.
        return Err(platform_error(format!("the {what} file answered {}", response.status())));
    }
    reports::read_file(job.file, &job.file_rows_pointer, response.body(), |value| {
        file_row(run, stream, spec, &Row::of(&value), days)
    })?;
    Ok(None)
}

async fn save_progress(run: &mut Run<'_>, stream: &StreamSpec, progress: &Progress) -> Result<(), Error> {
    let page = serde_json::to_string(progress).expect("progress");
    save_cursor(run, &stream.name, |c| c.page = Some(page.clone())).await
}

/// Files one row under its day (rows of other days are not this window's).
fn file_row(
    run: &Run<'_>,
    stream: &StreamSpec,
    spec: &ReportSpec,
    row: &Row<'_>,
    days: &mut BTreeMap<NaiveDate, Day>,
) -> Result<(), Error> {
    let Some(day) = reports::day(spec, row) else { return Ok(()) };
    let Some(lines) = days.get_mut(&day) else { return Ok(()) };
    let text = day.format("%Y-%m-%d").to_string();
    serde_json::to_writer(&mut lines.raw, &row.raw()).map_err(|e| Error::Config(e.to_string()))?;
    lines.raw.push(b'\n');
    serde_json::to_writer(&mut lines.facts, &spend_fact(run, stream, &spec.spend, &text, row))
        .map_err(|e| Error::Config(e.to_string()))?;
    lines.facts.push(b'\n');
    lines.rows += 1;
    Ok(())
}

/// One row's normalised daily fact (`docs/spend.schema.json`), borrowed
/// from the row where it can be (it is written at once).
#[derive(Serialize)]
struct Fact<'a> {
    date: &'a str,
    platform: &'a str,
    connection_id: &'a str,
    stream: &'a str,
    account_id: Option<Cow<'a, str>>,
    account_name: Option<Cow<'a, str>>,
    time_zone: Option<Cow<'a, str>>,
    campaign_id: Option<Cow<'a, str>>,
    campaign_name: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    currency: Option<Cow<'a, str>>,
    spend: Option<String>,
    impressions: Option<Count>,
    clicks: Option<Count>,
    conversions: Option<Count>,
    conversion_value: Option<String>,
    sessions: Option<Count>,
    users: Option<Count>,
}

/// Counts stay whole where they are (conversions may be fractional).
#[derive(Serialize)]
#[serde(untagged)]
enum Count {
    Whole(u64),
    Fraction(f64),
}

fn spend_fact<'a>(
    run: &'a Run<'_>,
    stream: &'a StreamSpec,
    map: &SpendMapping,
    day: &'a str,
    row: &Row<'a>,
) -> Fact<'a> {
    use std::str::FromStr;
    let param = |name: &str| run.connection.params.get(name).map(|v| Cow::Borrowed(v.as_str()));
    let text = |p: &Option<String>| p.as_deref().and_then(|p| row.text_ref(p));
    let decimal = |p: &Option<String>, micros: bool| {
        let v = text(p)?;
        let d = rust_decimal::Decimal::from_str(&v).ok().or_else(|| rust_decimal::Decimal::from_scientific(&v).ok())?;
        let d = if micros { d / rust_decimal::Decimal::from(1_000_000) } else { d };
        Some(d.normalize().to_string())
    };
    let count = |p: &Option<String>| {
        text(p).and_then(|v| {
            v.parse::<u64>().map(Count::Whole).ok().or_else(|| v.parse::<f64>().ok().map(Count::Fraction))
        })
    };
    Fact {
        date: day,
        platform: run.connection.platform.as_str(),
        connection_id: run.connection.id.as_str(),
        stream: &stream.name,
        account_id: text(&map.account_id).or_else(|| param(ACCOUNT_PARAM)),
        account_name: text(&map.account_name).or_else(|| param(ACCOUNT_NAME_PARAM)),
        time_zone: text(&map.time_zone).or_else(|| param(ACCOUNT_TIME_ZONE_PARAM)),
        campaign_id: text(&map.campaign_id),
        campaign_name: text(&map.campaign_name),
        source: text(&map.source),
        currency: text(&map.currency).or_else(|| param(ACCOUNT_CURRENCY_PARAM)),
        spend: decimal(&map.spend, map.spend_micros),
        impressions: count(&map.impressions),
        clicks: count(&map.clicks),
        conversions: count(&map.conversions),
        conversion_value: decimal(&map.conversion_value, map.conversion_value_micros),
        sessions: count(&map.sessions),
        users: count(&map.users),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_and_the_last_may_be_short() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(windows(d("2025-01-01"), d("2025-01-01"), 7), 1);
        assert_eq!(windows(d("2025-01-01"), d("2025-01-07"), 7), 1);
        assert_eq!(windows(d("2025-01-01"), d("2025-01-08"), 7), 2);
        assert_eq!(windows(d("2025-01-02"), d("2025-01-01"), 7), 0);
    }
}
