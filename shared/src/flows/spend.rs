//! The daily spend table, read back: the facts every ad platform's report
//! streams wrote for a range of days, across the connections the caller may
//! see, with each day's spend summed by currency (a profit dashboard's
//! tiles). The facts sit at deterministic keys (a day of a connection's
//! stream), so nothing is listed: every key of the range is read, a few at
//! a time.

use futures::stream::{self, StreamExt};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::str::FromStr;

use super::App;
use crate::domain::error::Error;
use crate::domain::ids::ConnectionId;
use crate::domain::Caller;
use crate::store::keys;

/// The most days one request reads.
pub const MAX_DAYS: i64 = 31;

/// A day's spend in one currency, over the facts read.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Total {
    pub date: String,
    pub currency: Option<String>,
    pub spend: String,
    pub connections: usize,
}

pub struct DailySpend {
    pub facts: Vec<serde_json::Value>,
    pub totals: Vec<Total>,
}

/// `GET /v1/spend?from=&to=[&connection_id=]`.
pub async fn daily(
    app: &App,
    caller: &Caller,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    connection: Option<&ConnectionId>,
) -> Result<DailySpend, Error> {
    if to < from {
        return Err(Error::invalid("to", "is before `from`"));
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(Error::invalid(
            "to",
            format!("is more than {MAX_DAYS} days after `from`; ask for the range in parts"),
        ));
    }
    let mut visible = super::connections::visible(app, caller).await?;
    if let Some(id) = connection {
        visible.retain(|c| &c.id == id);
        if visible.is_empty() {
            return Err(Error::NotFound { kind: "connection" });
        }
    }
    let mut wanted = Vec::new();
    for c in &visible {
        let Ok(entry) = app.catalog.get(c.platform.as_str()) else { continue };
        let reports = entry.streams.iter().filter(|s| s.report.is_some());
        for stream in reports.filter(|s| c.streams.iter().any(|sel| sel.name == s.name && sel.selected)) {
            let mut day = from;
            while day <= to {
                let text = day.format("%Y-%m-%d").to_string();
                wanted.push(keys::spend_day(&c.workspace_id, &c.id, &stream.name, &text));
                day = day.succ_opt().expect("a next day");
            }
        }
    }
    let files: Vec<_> =
        stream::iter(wanted).map(|key| async move { app.sink.get(&key).await }).buffered(16).collect().await;
    let mut facts = Vec::new();
    for file in files {
        let Some(bytes) = file? else { continue };
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(fact) = serde_json::from_slice::<serde_json::Value>(line) {
                facts.push(fact);
            }
        }
    }
    let text = |f: &serde_json::Value, k: &str| f[k].as_str().unwrap_or_default().to_owned();
    facts.sort_by_key(|f| (text(f, "date"), text(f, "connection_id"), text(f, "campaign_id"), text(f, "source")));
    Ok(DailySpend { totals: totals(&facts), facts })
}

/// Each day's spend by currency.
fn totals(facts: &[serde_json::Value]) -> Vec<Total> {
    let mut sums: BTreeMap<(String, Option<String>), (Decimal, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for f in facts {
        let Some(spend) = f["spend"].as_str().and_then(|s| Decimal::from_str(s).ok()) else { continue };
        let key = (f["date"].as_str().unwrap_or_default().to_owned(), f["currency"].as_str().map(str::to_owned));
        let entry = sums.entry(key).or_default();
        entry.0 += spend;
        entry.1.insert(f["connection_id"].as_str().unwrap_or_default().to_owned());
    }
    sums.into_iter()
        .map(|((date, currency), (spend, connections))| Total {
            date,
            currency,
            spend: spend.normalize().to_string(),
            connections: connections.len(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn totals_are_exact_per_day_and_currency() {
        let facts = [
            json!({"date": "2026-11-20", "currency": "EUR", "spend": "0.10", "connection_id": "a"}),
            json!({"date": "2026-11-20", "currency": "EUR", "spend": "0.20", "connection_id": "b"}),
            json!({"date": "2026-11-20", "currency": "USD", "spend": "1", "connection_id": "a"}),
            json!({"date": "2026-11-20", "currency": "USD", "spend": null, "connection_id": "c"}),
        ];
        let t = totals(&facts);
        assert_eq!((t[0].spend.as_str(), t[0].connections), ("0.3", 2), "exact, not 0.30000000000000004");
        assert_eq!((t[1].currency.as_deref(), t[1].spend.as_str(), t[1].connections), (Some("USD"), "1", 1));
    }
}
