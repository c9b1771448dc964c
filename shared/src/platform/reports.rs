//! Report streams, as the catalog declares them: the request for one date
//! window, the rows of an answer (`*` for every element of an array, each
//! row with the elements around it), a row's day and values, and the files
//! of asynchronous reports (gzip, JSON, JSON lines, CSV) read row by row.

use bytes::Bytes;
use chrono::NaiveDate;
use serde_json::Value;
use std::collections::BTreeMap;

use super::{api_call, api_url, fill, Credentials};
use crate::catalog::{PlatformEntry, ReportFile, ReportSpec, StreamSpec};
use crate::domain::error::Error;

/// A report request's variables: the entry's and the connection's, with the
/// window's first and last day in the request's format.
pub fn window_vars(
    spec: &ReportSpec,
    vars: &BTreeMap<String, String>,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<String, String> {
    let mut all = vars.clone();
    all.insert("from".into(), from.format(&spec.date_format).to_string());
    all.insert("to".into(), to.format(&spec.date_format).to_string());
    // The day after the window (an exclusive end: Snapchat, X), and each
    // part of the days alone (Microsoft's Day, Month and Year elements).
    all.insert("after".into(), (to + chrono::Days::new(1)).format(&spec.date_format).to_string());
    for (name, day) in [("from", from), ("to", to)] {
        use chrono::Datelike;
        all.insert(format!("{name}_year"), day.year().to_string());
        all.insert(format!("{name}_month"), day.month().to_string());
        all.insert(format!("{name}_day"), day.day().to_string());
    }
    all
}

/// Fills every string of a JSON template.
pub fn fill_json(template: &Value, vars: &BTreeMap<String, String>) -> Result<Value, Error> {
    Ok(match template {
        Value::String(s) => Value::String(fill(s, vars)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_json(v, vars)).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), fill_json(v, vars)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// One report request, before authentication: what the sync engine sends
/// (and the conformance test holds to the vendor's description).
#[derive(Clone, Debug)]
pub struct Call {
    pub method: http::Method,
    pub url: url::Url,
    pub body: Option<Bytes>,
    /// A SOAP envelope and its variables: filled when sent, with the
    /// credentials (never kept in the call).
    pub envelope: Option<(String, BTreeMap<String, String>)>,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
}

/// The request for one window (`vars` from [`window_vars`]).
pub fn call(
    entry: &PlatformEntry,
    stream: &StreamSpec,
    spec: &ReportSpec,
    vars: &BTreeMap<String, String>,
) -> Result<Call, Error> {
    let method = http::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Error::Config(format!("{} {}: bad report method", entry.id, stream.name)))?;
    let mut url = api_url(entry, &stream.path, vars)?;
    let mut pairs = Vec::new();
    for (name, template) in &spec.query {
        let value = match template {
            Value::String(s) => fill(s, vars)?,
            other => fill_json(other, vars)?.to_string(),
        };
        pairs.push((name.clone(), value));
    }
    if let (Some(param), Some(size)) = (&stream.page_size_param, stream.page_size) {
        pairs.push((param.clone(), size.to_string()));
    }
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    let (body, envelope) = match &spec.body {
        Some(Value::String(xml)) => (None, Some((xml.clone(), vars.clone()))),
        Some(template) => (Some(Bytes::from(fill_json(template, vars)?.to_string())), None),
        None => (None, None),
    };
    let headers =
        spec.headers.iter().map(|(k, v)| Ok((k.clone(), fill(v, vars)?))).collect::<Result<Vec<_>, Error>>()?;
    Ok(Call {
        method,
        url,
        body,
        envelope,
        content_type: spec.content_type.clone().unwrap_or_else(|| "application/json".into()),
        headers,
    })
}

/// The call as an authenticated request.
pub fn request(
    entry: &PlatformEntry,
    call: &Call,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
) -> Result<http::Request<Bytes>, Error> {
    let filled = match &call.envelope {
        Some((template, window)) => Some(Bytes::from(super::fill_xml(template, window, creds)?)),
        None => call.body.clone(),
    };
    let body = match filled {
        Some(b) => Some((
            b,
            http::HeaderValue::from_str(&call.content_type)
                .map_err(|_| Error::Config(format!("{}: bad report content type", entry.id)))?,
        )),
        None => None,
    };
    let mut request = api_call(entry, call.method.clone(), call.url.clone(), vars, creds, body)?;
    for (name, value) in &call.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::Config(format!("{}: bad report header name", entry.id)))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| Error::invalid("account_id", "contains characters a header cannot carry"))?;
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

/// A row of a report, with the elements a `*` matched around it (nearest
/// first): Snapchat's campaign around each of its days.
#[derive(Clone, Copy, Debug)]
pub struct Row<'d> {
    pub value: &'d Value,
    up: [Option<&'d Value>; 4],
}

/// The rows at `pointer` (`""`: the document itself, a list), where `*`
/// is every element of an array.
pub fn rows<'d>(doc: &'d Value, pointer: &str) -> Vec<Row<'d>> {
    fn walk<'d>(at: &'d Value, rest: &[&str], up: [Option<&'d Value>; 4], out: &mut Vec<Row<'d>>) {
        let Some((head, tail)) = rest.split_first() else {
            match at {
                Value::Array(items) => out.extend(items.iter().map(|value| Row { value, up })),
                Value::Null => {}
                value => out.push(Row { value, up }),
            }
            return;
        };
        if *head == "*" {
            // Every element of a list, or every value of an object
            // (Pinterest's report: a list of days per campaign id).
            let items: Vec<&'d Value> = match at {
                Value::Array(items) => items.iter().collect(),
                Value::Object(map) => map.values().collect(),
                _ => Vec::new(),
            };
            for item in items {
                if tail.is_empty() {
                    // `…/*` at the end: every element is a row.
                    out.push(Row { value: item, up });
                    continue;
                }
                // An object is the context of the rows under it (a list is not).
                let mut deeper = up;
                if item.is_object() {
                    deeper = [Some(item), None, None, None];
                    deeper[1..].copy_from_slice(&up[..3]);
                }
                walk(item, tail, deeper, out);
            }
            return;
        }
        if let Some(next) = step(at, head) {
            walk(next, tail, up, out);
        }
    }
    let segments: Vec<&str> = if pointer.is_empty() { Vec::new() } else { pointer[1..].split('/').collect() };
    let mut out = Vec::new();
    walk(doc, &segments, [None; 4], &mut out);
    out
}

/// One pointer segment: an object's member, an array's index, or the
/// element `[key=value]` of an array.
fn step<'d>(at: &'d Value, segment: &str) -> Option<&'d Value> {
    let segment = segment.replace("~1", "/").replace("~0", "~");
    match at {
        Value::Object(map) => map.get(&segment),
        Value::Array(items) => {
            if let Some((key, want)) = segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')?.split_once('=')) {
                items.iter().find(|i| i.get(key).and_then(Value::as_str) == Some(want))
            } else {
                items.get(segment.parse::<usize>().ok()?)
            }
        }
        _ => None,
    }
}

impl<'d> Row<'d> {
    /// A row on its own (a line of a downloaded file).
    pub fn of(value: &'d Value) -> Self {
        Row { value, up: [None; 4] }
    }

    /// The value at `pointer`: from the row, or after `../` from the
    /// element around it.
    pub fn at(&self, pointer: &str) -> Option<&'d Value> {
        let mut base = self.value;
        let mut rest = pointer;
        let mut level = 0;
        while let Some(r) = rest.strip_prefix("../") {
            base = self.up.get(level).copied().flatten()?;
            level += 1;
            rest = r;
        }
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Some(base);
        }
        rest.split('/').try_fold(base, step)
    }

    /// A string or a number, as text.
    pub fn text(&self, pointer: &str) -> Option<String> {
        self.text_ref(pointer).map(std::borrow::Cow::into_owned)
    }

    /// A string (borrowed) or a number (as text).
    pub fn text_ref(&self, pointer: &str) -> Option<std::borrow::Cow<'d, str>> {
        match self.at(pointer)? {
            Value::String(s) if !s.is_empty() => Some(std::borrow::Cow::Borrowed(s.as_str())),
            Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// The row as written to the raw report table: itself, with the plain
    /// values of the elements around it (`_parents`, nearest first) when
    /// there are any, so each raw row stands on its own.
    pub fn raw(&self) -> std::borrow::Cow<'d, Value> {
        if self.up[0].is_none() {
            return std::borrow::Cow::Borrowed(self.value);
        }
        let parents: Vec<Value> = self
            .up
            .iter()
            .flatten()
            .map(|p| match p {
                Value::Object(map) => Value::Object(
                    map.iter()
                        .filter(|(_, v)| !v.is_object() && !v.is_array())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                other => (*other).clone(),
            })
            .collect();
        match self.value {
            Value::Object(map) => {
                let mut map = map.clone();
                map.insert("_parents".into(), Value::Array(parents));
                std::borrow::Cow::Owned(Value::Object(map))
            }
            v => std::borrow::Cow::Borrowed(v),
        }
    }
}

/// A row's day: `row_date_format` when declared, else `YYYY-MM-DD` at the
/// start of the value.
pub fn day(spec: &ReportSpec, row: &Row<'_>) -> Option<NaiveDate> {
    let text = row.text_ref(&spec.date_pointer)?;
    match &spec.row_date_format {
        Some(format) => NaiveDate::parse_from_str(&text, format).ok(),
        None => NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok(),
    }
}

/// A downloaded report file's rows, whatever its format, as JSON values
/// (CSV rows as objects keyed by the header). Read from a stream of bytes,
/// decompressed as it goes; `on_row` sees each row once.
pub fn read_file(
    file: ReportFile,
    rows_pointer: &str,
    bytes: &[u8],
    mut on_row: impl FnMut(Value) -> Result<(), Error>,
) -> Result<(), Error> {
    use std::io::Read;
    let bad = |why: String| Error::MalformedPage(format!("the report file: {why}"));
    if file == ReportFile::ZipCsv {
        // The archive's first file, decompressed as it is read.
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(e.to_string()))?;
        let inner = archive.by_index(0).map_err(|e| bad(e.to_string()))?;
        return read_csv(inner, on_row);
    }
    let reader: Box<dyn Read + '_> = match file {
        ReportFile::GzipJson | ReportFile::GzipJsonLines | ReportFile::GzipCsv => {
            Box::new(flate2::read::GzDecoder::new(bytes))
        }
        _ => Box::new(bytes),
    };
    let reader = std::io::BufReader::new(reader);
    match file {
        ReportFile::Json | ReportFile::GzipJson => {
            let doc: Value = serde_json::from_reader(reader).map_err(|e| bad(e.to_string()))?;
            for row in rows(&doc, rows_pointer) {
                on_row(row.raw().into_owned())?;
            }
        }
        ReportFile::JsonLines | ReportFile::GzipJsonLines => {
            use std::io::BufRead;
            for line in reader.lines() {
                let line = line.map_err(|e| bad(e.to_string()))?;
                if line.trim().is_empty() {
                    continue;
                }
                on_row(serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?)?;
            }
        }
        ReportFile::Csv | ReportFile::GzipCsv | ReportFile::ZipCsv => return read_csv(reader, on_row),
    }
    Ok(())
}

/// CSV rows as objects keyed by the header (a byte-order mark dropped).
fn read_csv(reader: impl std::io::Read, mut on_row: impl FnMut(Value) -> Result<(), Error>) -> Result<(), Error> {
    let bad = |why: String| Error::MalformedPage(format!("the report file: {why}"));
    let mut csv = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_owned())
        .collect();
    for record in csv.records() {
        let record = record.map_err(|e| bad(e.to_string()))?;
        let row: serde_json::Map<String, Value> =
            header.iter().zip(record.iter()).map(|(k, v)| (k.clone(), Value::String(v.to_owned()))).collect();
        on_row(Value::Object(row))?;
    }
    Ok(())
}

/// Turns each row of daily series (every metric an array from `from`, a
/// value a day) into one row a day: the row's plain values, `date`, and
/// the day's value of each metric under `metrics`.
pub fn series_rows(row: &Row<'_>, metrics_pointer: &str, from: NaiveDate) -> Vec<Value> {
    let Some(Value::Object(metrics)) = row.at(metrics_pointer) else { return Vec::new() };
    let days = metrics.values().filter_map(Value::as_array).map(Vec::len).max().unwrap_or(0);
    let plain: serde_json::Map<String, Value> = match row.value {
        Value::Object(map) => {
            map.iter().filter(|(_, v)| !v.is_object() && !v.is_array()).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        _ => serde_json::Map::new(),
    };
    (0..days)
        .map(|i| {
            let mut out = plain.clone();
            let day = from + chrono::Days::new(i as u64);
            out.insert("date".into(), Value::String(day.format("%Y-%m-%d").to_string()));
            let values = metrics
                .iter()
                .map(|(k, v)| (k.clone(), v.as_array().and_then(|a| a.get(i)).cloned().unwrap_or(Value::Null)))
                .collect();
            out.insert("metrics".into(), Value::Object(values));
            Value::Object(out)
        })
        .collect()
}

/// Whether a report file may be downloaded from `url`: HTTPS (or the
/// loopback HTTP a test uses) on one of the declared hosts.
pub fn download_allowed(url: &url::Url, hosts: &[String]) -> bool {
    let Some(host) = url.host_str() else { return false };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && hosts.iter().any(|h| h == host));
    scheme_ok
        && hosts.iter().any(|allowed| match allowed.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == allowed,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_under_stars_keep_the_elements_around_them() {
        let doc = json!({"timeseries_stats": [{"timeseries_stat": {"breakdown_stats": {"campaign": [
            {"id": "c1", "timeseries": [{"start_time": "2025-01-01T00:00:00.000-08:00", "stats": {"spend": 1}},
                                         {"start_time": "2025-01-02T00:00:00.000-08:00", "stats": {"spend": 2}}]},
            {"id": "c2", "timeseries": [{"start_time": "2025-01-01T00:00:00.000-08:00", "stats": {"spend": 3}}]}
        ]}}}]});
        let found = rows(&doc, "/timeseries_stats/*/timeseries_stat/breakdown_stats/campaign/*/timeseries");
        let ids: Vec<_> = found.iter().map(|r| (r.text("../id").unwrap(), r.text("/stats/spend").unwrap())).collect();
        assert_eq!(ids, [("c1".into(), "1".into()), ("c1".into(), "2".into()), ("c2".into(), "3".into())]);
        assert_eq!(found[0].raw()["_parents"][0]["id"], "c1", "a raw row names its campaign");
        // Pinterest: days per campaign id, no context from the lists.
        let by_id = json!({"111": [{"DATE": "2025-01-01"}, {"DATE": "2025-01-02"}], "222": [{"DATE": "2025-01-01"}]});
        let days = rows(&by_id, "/*/*");
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].raw().as_ref(), &json!({"DATE": "2025-01-01"}));
        // Google Ads: a stream of batches.
        let batches = json!([{"results": [{"a": 1}]}, {"results": [{"a": 2}, {"a": 3}]}]);
        assert_eq!(rows(&batches, "/*/results").len(), 3);
        assert_eq!(rows(&json!({"data": [1, 2]}), "/data").len(), 2);
        assert!(rows(&json!({}), "/data").is_empty());
    }

    #[test]
    fn a_selector_picks_the_element_of_a_kind() {
        let doc = json!({"actions": [{"action_type": "link_click", "value": "9"}, {"action_type": "purchase", "value": "2"}]});
        let row = Row::of(&doc);
        assert_eq!(row.text("/actions/[action_type=purchase]/value").as_deref(), Some("2"));
        assert_eq!(row.text("/actions/[action_type=lead]/value"), None);
        assert_eq!(row.text("../id"), None, "no element around a top-level row");
    }

    #[test]
    fn report_files_are_read_in_every_declared_format() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"[{"date":"2025-01-01","cost":1.5},{"date":"2025-01-02","cost":2}]"#).unwrap();
        let gz = gz.finish().unwrap();
        let all = |file, bytes: &[u8]| {
            let mut seen = Vec::new();
            read_file(file, "", bytes, |r| {
                seen.push(r);
                Ok(())
            })
            .map(|()| seen)
        };
        assert_eq!(all(ReportFile::GzipJson, &gz).unwrap().len(), 2);
        let csv_rows = all(ReportFile::Csv, b"Date,Spend\n2025-01-01,1.50\n").unwrap();
        assert_eq!(csv_rows, [json!({"Date": "2025-01-01", "Spend": "1.50"})]);
        assert_eq!(all(ReportFile::JsonLines, b"{\"a\":1}\n\n{\"a\":2}\n").unwrap().len(), 2);
        assert!(read_file(ReportFile::GzipJson, "", b"not gzip", |_| Ok(())).is_err());
    }

    #[test]
    fn downloads_go_only_to_the_declared_hosts_over_https() {
        let hosts = vec!["*.s3.amazonaws.com".to_owned()];
        let ok = url::Url::parse("https://offline-report-storage-us-east-1-prod.s3.amazonaws.com/r.json.gz").unwrap();
        assert!(download_allowed(&ok, &hosts));
        for bad in
            ["http://x.s3.amazonaws.com/r", "https://s3.amazonaws.com.evil.example/r", "https://169.254.169.254/"]
        {
            assert!(!download_allowed(&url::Url::parse(bad).unwrap(), &hosts), "{bad}");
        }
    }
}
