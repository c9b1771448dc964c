//! Token lifecycle policy: what is known of a grant's lifetime, and when the
//! sweep should next look at it. Grants without a known expiry are never
//! assumed eternal: they are probed now and then.

use chrono::{DateTime, Duration, Utc};

use super::model::{Connection, StaleReason, TokenExpiry};
use super::tokens::TokenSet;
use crate::catalog::{CursorType, OAuthSpec, RefreshKind};

/// Refresh this long before an access token expires.
pub const REFRESH_MARGIN_MINUTES: i64 = 15;
/// A rotating grant, refreshed only when used, is renewed this long before
/// its access token expires: each renewal writes a new refresh token to the
/// vault, so the shorter margin lets an hour-long token serve four
/// 15-minute syncs instead of three (24 writes a day, not 32). A run that
/// outlasts the token gets a 401, refreshes once and goes on.
pub const ROTATING_USE_MARGIN_MINUTES: i64 = 5;

/// The wait before a retry, with full jitter: anywhere from nothing to
/// `first` doubled `doublings` times, and never past `cap`, so callers that
/// collided (or met the same throttling) spread out.
pub fn full_jitter(first: std::time::Duration, doublings: u32, cap: std::time::Duration) -> std::time::Duration {
    let ceiling = first.saturating_mul(1u32 << doublings.min(16)).min(cap);
    std::time::Duration::from_millis(rand::random_range(0..=ceiling.as_millis() as u64))
}

/// How long before its end a grant's access token is renewed when used.
pub fn use_margin(kind: RefreshKind) -> Duration {
    Duration::minutes(match kind {
        RefreshKind::Rotating => ROTATING_USE_MARGIN_MINUTES,
        _ => REFRESH_MARGIN_MINUTES,
    })
}
/// Warn this long before a grant that cannot be refreshed runs out.
pub const EXPIRING_SOON_DAYS: i64 = 7;
/// Probe grants with no known expiry this often.
pub const PROBE_HOURS: i64 = 24;
/// A sync run that saved no progress for this long, and whose lease is
/// free, is re-queued by the sweep (longer than the sync queue's
/// visibility timeout and the longest delayed continuation, so SQS's own
/// redelivery comes first).
pub const RUN_STALL_MINUTES: i64 = 20;

/// The expiry facts of freshly obtained tokens, by the entry's policy.
pub fn expiry_facts(spec: &OAuthSpec, tokens: &TokenSet, now: DateTime<Utc>) -> TokenExpiry {
    let policy = &spec.refresh;
    TokenExpiry {
        access_expires_at: tokens.expires_at,
        refresh_expires_at: tokens.refresh_expires_at,
        idle_expires_at: policy.idle_expiry_days.map(|d| now + Duration::days(d.into())),
        reauthorize_by: match policy.kind {
            RefreshKind::LongLivedExchange => tokens.expires_at,
            _ => policy.reauthorize_days.map(|d| now + Duration::days(d.into())),
        },
    }
}

/// When the sweep should next look at a grant.
pub fn next_check(spec: &OAuthSpec, expiry: &TokenExpiry, now: DateTime<Utc>) -> DateTime<Utc> {
    let refreshable = spec.refresh.kind.is_refreshable();
    let probe = spec.probe_minutes.map(|m| Duration::minutes(m.into())).unwrap_or(Duration::hours(PROBE_HOURS));
    let mut candidates = vec![now + probe];
    if refreshable {
        // A rotating grant's access token is refreshed when it is used (a
        // sync, a service call): refreshing it ahead, every hour, would
        // write a new refresh token to the vault each time whether or not
        // anything needs the token. The sweep still exercises it daily
        // (`probe`), which keeps the rotation going and finds it dead.
        if let Some(at) = expiry.access_expires_at.filter(|_| spec.refresh.kind != RefreshKind::Rotating) {
            candidates.push(at - Duration::minutes(REFRESH_MARGIN_MINUTES));
        }
        // Exercise idle-expiring refresh tokens well before they die.
        if let Some(at) = expiry.idle_expires_at {
            candidates.push(at - Duration::days(EXPIRING_SOON_DAYS));
        }
    }
    for at in [expiry.reauthorize_by, expiry.refresh_expires_at].into_iter().flatten() {
        candidates.push(at - Duration::days(EXPIRING_SOON_DAYS));
    }
    let earliest = candidates.into_iter().min().unwrap_or(now);
    earliest.max(now + Duration::minutes(1))
}

/// How many times a day a grant's vault copy changes: a refresh token that
/// rotates is written at each refresh, which comes when the access token
/// is used within [`use_margin`] of its end, so at most once per
/// (lifetime − margin) and, used by syncs alone, once per sync interval
/// (`fastest_sync_minutes`: the platform's quickest stream), and once more
/// for the sweep's daily look. Other grants change only when connected
/// again.
pub fn vault_writes_per_day(spec: &OAuthSpec, fastest_sync_minutes: u32) -> u32 {
    if spec.refresh.kind != RefreshKind::Rotating {
        return 0;
    }
    let lifetime = spec.token_lifetime_seconds.map_or(60, |s| (s / 60) as i64);
    let every =
        (lifetime - use_margin(RefreshKind::Rotating).num_minutes()).max(i64::from(fastest_sync_minutes)).max(1);
    (24 * 60 / every).max(1) as u32 + 1
}

/// A connection syncs this often when its platform says nothing.
pub const DEFAULT_SYNC_INTERVAL_MINUTES: u32 = 60;
/// The longest interval a connection may ask for (a week).
pub const MAX_SYNC_INTERVAL_MINUTES: u32 = 7 * 24 * 60;
/// A failed run is tried again within this, or its interval if shorter.
pub const RETRY_AFTER_FAILURE_MINUTES: i64 = 15;

/// The interval a connection syncs at: its own, else its platform's, never
/// below the deployment's floor nor above a week.
pub fn sync_interval(own: Option<u32>, platform: u32, floor: u32) -> u32 {
    own.unwrap_or(platform).clamp(floor.clamp(1, MAX_SYNC_INTERVAL_MINUTES), MAX_SYNC_INTERVAL_MINUTES)
}

/// An initial sync that has written nothing this long after it started
/// (or after its connection was accepted) makes the connection stale.
pub const INITIAL_SYNC_QUIET_MINUTES: i64 = 15;
/// A connection whose last successful run is this many intervals old is stale.
pub const STALE_AFTER_INTERVALS: i64 = 3;

/// Whether a connection's data has stopped flowing, and why: only for a
/// source the scheduler syncs (a disconnected one has its own incident).
pub fn staleness(c: &Connection, interval_minutes: u32, now: DateTime<Utc>) -> Option<StaleReason> {
    if !c.is_scheduled_source() {
        return None;
    }
    if !c.initial_sync_done {
        if c.records_written() > 0 {
            return None; // a long first sync that is writing: flowing
        }
        let started = c.running.as_ref().map_or(c.created_at, |r| r.started_at);
        return (now - started >= Duration::minutes(INITIAL_SYNC_QUIET_MINUTES))
            .then_some(StaleReason::InitialSyncWroteNothing);
    }
    let fresh = c.last_synced_at.unwrap_or(c.created_at);
    (now - fresh >= Duration::minutes(i64::from(interval_minutes) * STALE_AFTER_INTERVALS))
        .then_some(StaleReason::NoSuccessfulSync)
}

/// A connection's own delay within its slot, so that a thousand connections
/// created together do not sync in the same second: spread over a tenth of
/// the interval (at most five minutes), stable for a connection.
pub fn jitter_seconds(connection_id: &str, interval_minutes: u32) -> u32 {
    let span = (interval_minutes.saturating_mul(6)).clamp(1, 300);
    let mut h: u32 = 0x811c9dc5;
    for b in connection_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    h % span
}

/// A cursor value as it compares.
#[derive(Debug, PartialEq, PartialOrd)]
enum Ordered {
    Time(DateTime<Utc>),
    Number(f64),
    Text(String),
}

fn ordered(kind: CursorType, v: &str) -> Ordered {
    let time = |v: &str| DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&Utc));
    let mail = |v: &str| DateTime::parse_from_rfc2822(v).ok().map(|t| t.with_timezone(&Utc));
    let number = |v: &str| v.trim().parse::<f64>().ok();
    match kind {
        CursorType::Iso8601 => time(v).map(Ordered::Time),
        CursorType::Rfc2822 => mail(v).map(Ordered::Time),
        CursorType::Epoch => number(v).map(Ordered::Number),
        CursorType::Text => None,
        CursorType::Auto => time(v).or_else(|| mail(v)).map(Ordered::Time).or_else(|| number(v).map(Ordered::Number)),
    }
    .unwrap_or_else(|| Ordered::Text(v.to_owned()))
}

/// Whether cursor value `candidate` is later than `current`, compared as
/// the stream's type says (a date with its offset, a number), never as
/// text when they parse: `2026-11-05T10:00:00-05:00` is later than
/// `2026-11-05T14:00:00Z`.
pub fn cursor_later(kind: CursorType, candidate: &str, current: &str) -> bool {
    match (ordered(kind, candidate), ordered(kind, current)) {
        (Ordered::Time(a), Ordered::Time(b)) => a > b,
        (Ordered::Number(a), Ordered::Number(b)) => a > b,
        _ => candidate > current,
    }
}

/// The later of two optional cursor values (the first when they tie).
pub fn later_cursor(kind: CursorType, a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if cursor_later(kind, &b, &a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogOptions};

    fn spec(id: &str) -> OAuthSpec {
        let c = Catalog::load(&CatalogOptions { include_sandbox: true, ..Default::default() }).unwrap();
        c.get(id).unwrap().oauth.clone().unwrap()
    }

    #[test]
    fn a_retry_waits_up_to_its_doubled_ceiling_and_never_past_the_cap() {
        use std::time::Duration as Wait;
        let waits: Vec<Wait> =
            (0..2_000).map(|_| full_jitter(Wait::from_millis(100), 3, Wait::from_secs(60))).collect();
        assert!(waits.iter().all(|w| *w <= Wait::from_millis(800)));
        assert!(waits.iter().any(|w| *w > Wait::from_millis(400)), "the whole range is used");
        assert!(waits.iter().any(|w| *w < Wait::from_millis(100)), "from nothing up");
        assert!((0..200).all(|_| full_jitter(Wait::from_secs(1), 10, Wait::from_secs(20)) <= Wait::from_secs(20)));
        assert_eq!(full_jitter(Wait::from_secs(1), 40, Wait::ZERO), Wait::ZERO);
    }

    #[test]
    fn a_rotating_grant_is_written_at_each_refresh_and_others_only_when_connected() {
        // An hour's token, renewed 5 minutes before its end when used: at
        // most every 55 minutes when synced every 15 (26 a day), twice a
        // day when synced every 12 hours; and the sweep's daily look.
        assert_eq!(vault_writes_per_day(&spec("shopify"), 15), 27);
        assert_eq!(vault_writes_per_day(&spec("microsoft_ads"), 720), 3);
        assert_eq!(vault_writes_per_day(&spec("google_ads"), 15), 0);
    }

    fn tokens(now: DateTime<Utc>, expires_in: Option<i64>) -> TokenSet {
        TokenSet {
            access_token: "t".into(),
            refresh_token: Some("r".into()),
            expires_at: expires_in.map(|s| now + Duration::seconds(s)),
            refresh_expires_at: None,
            scopes: vec![],
            obtained_at: now,
            token_secret: None,
        }
    }

    #[test]
    fn intervals_keep_within_the_floor_and_a_week_and_jitter_spreads_connections() {
        assert_eq!(sync_interval(None, 15, 30), 30, "the deployment's floor");
        assert_eq!(sync_interval(Some(120), 15, 15), 120, "the connection's own");
        assert_eq!(sync_interval(Some(100_000), 15, 15), MAX_SYNC_INTERVAL_MINUTES);
        let spread: std::collections::BTreeSet<u32> =
            (0..1000).map(|i| jitter_seconds(&format!("conn_{i:032x}"), 15)).collect();
        assert!(spread.iter().all(|s| *s < 90), "within a tenth of 15 minutes");
        assert!(spread.len() > 60, "a thousand connections spread over the span: {}", spread.len());
        assert_eq!(jitter_seconds("conn_x", 60), jitter_seconds("conn_x", 60), "stable");
    }

    #[test]
    fn cursors_compare_as_what_they_are() {
        use CursorType::*;
        // An offset makes the text order wrong.
        assert!(cursor_later(Auto, "2026-11-05T10:00:00-05:00", "2026-11-05T14:00:00Z"));
        assert!(cursor_later(Iso8601, "2026-11-05T10:00:00-05:00", "2026-11-05T14:00:00Z"));
        assert!(cursor_later(Rfc2822, "Thu, 05 Nov 2026 10:00:00 -0500", "Thu, 05 Nov 2026 14:00:00 +0000"));
        assert!(cursor_later(Epoch, "1000", "999"), "numbers, not text");
        assert!(cursor_later(Auto, "1000", "999"));
        assert!(!cursor_later(Text, "1000", "999"), "text when declared so");
        assert_eq!(later_cursor(Auto, Some("5".into()), None), Some("5".into()));
        assert_eq!(later_cursor(Auto, Some("5".into()), Some("10".into())), Some("10".into()));
    }

    #[test]
    fn refreshable_tokens_are_checked_before_they_expire() {
        let now = Utc::now();
        let s = spec("google_ads");
        let e = expiry_facts(&s, &tokens(now, Some(3600)), now);
        assert_eq!(next_check(&s, &e, now), now + Duration::minutes(45));
        assert_eq!(e.idle_expires_at, Some(now + Duration::days(180)));
    }

    #[test]
    fn meta_long_lived_tokens_must_be_reauthorized_and_warned_ahead() {
        let now = Utc::now();
        let s = spec("meta_ads");
        let e = expiry_facts(&s, &tokens(now, Some(60 * 86400)), now);
        assert_eq!(e.reauthorize_by, Some(now + Duration::days(60)));
        // Not refreshable: probed daily until the warning window.
        assert_eq!(next_check(&s, &e, now), now + Duration::hours(PROBE_HOURS));
        let late = now + Duration::days(54);
        assert_eq!(next_check(&s, &e, late), late + Duration::minutes(1));
    }

    #[test]
    fn grants_without_expiry_are_probed() {
        let now = Utc::now();
        let s = spec("stripe");
        let e = expiry_facts(&s, &tokens(now, None), now);
        assert_eq!(next_check(&s, &e, now), now + Duration::hours(PROBE_HOURS));
    }
}
