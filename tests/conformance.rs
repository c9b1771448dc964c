//! Every request the catalog can make, held to the API description its
//! vendor publishes (the facts `infra/conformance/generate.py` extracts
//! from `../shared/vendor-api` into `tests/conformance/facts.json`): the
//! operation exists for that method and path, its required query parameters
//! and headers are sent, a success status we treat as success is one it
//! returns, and the record list and paging fields we read are in its
//! response. The requests are built by the production code
//! (`platform::api_url`, `platform::stream_first_url`, `platform::api_get`).
//!
//! A platform either has facts or is listed below with the reason it has
//! none; a request the descriptions do not cover is listed with the reason.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

use shared::catalog::{Catalog, CatalogOptions, Pagination, PlatformEntry};
use shared::platform::{self, Credentials};

#[derive(Deserialize)]
struct Facts {
    platforms: BTreeMap<String, PlatformFacts>,
}

#[derive(Deserialize)]
struct PlatformFacts {
    sources: Vec<String>,
    operations: Vec<Operation>,
    /// A GraphQL API: each query root field and the fields of what it
    /// returns (of its nodes, for a connection).
    #[serde(default)]
    graphql: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Deserialize)]
struct Operation {
    method: String,
    url: String,
    required_query: Vec<String>,
    /// The most a numeric query parameter takes, where the description
    /// says (page sizes).
    #[serde(default)]
    query_maxima: BTreeMap<String, u64>,
    required_headers: Vec<String>,
    success: Vec<u16>,
    response_pointers: Vec<String>,
    source: String,
    /// A SOAP operation's SOAPAction.
    #[serde(default)]
    action: Option<String>,
    /// The SOAP headers a SOAP operation's input declares.
    #[serde(default)]
    soap_headers: Vec<String>,
    /// The fields of a POST's JSON body the description gives.
    #[serde(default)]
    body_fields: Vec<String>,
    /// The lists a GET answers with: pointer -> each item's fields (their
    /// type, or [type, the description's example]).
    #[serde(default)]
    record_lists: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// Platforms no published machine-readable description covers (see
/// ../shared/vendor-api/SOURCES.md), or whose description does not cover
/// the API style the catalog uses.
const UNDESCRIBED: &[(&str, &str)] = &[
    ("woocommerce", "no official description is published"),
    ("recharge", "no official description is published"),
    ("snapchat_ads", "no official description is published"),
    ("google_ads", "no discovery document is published; the REST bindings live in protos"),
    ("custom_costs", "file uploads: no API"),
];

/// Required query parameters a description lists that the vendor documents
/// (and the catalog sends) as headers.
const QUERY_AS_HEADER: &[(&str, &str, &str)] = &[(
    "tiktok_ads",
    "Access-Token",
    "TikTok's SDK descriptions list the Access-Token header as a query parameter; TikTok documents and takes it as a header",
)];

/// Requests of a described platform that its descriptions do not cover.
const UNCOVERED: &[(&str, &str, &str)] = &[(
    "tiktok_ads",
    "/oauth2/advertiser/get/",
    "TikTok's published descriptions do not cover oauth2/advertiser/get (SOURCES.md)",
)];

/// Hosts the same API answers on under another name.
const HOST_ALIASES: &[(&str, &str)] = &[("ads-api.twitter.com", "ads-api.x.com")];

fn facts() -> Facts {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/facts.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("tests/conformance/facts.json")).expect("facts parse")
}

pub(crate) fn catalog() -> Catalog {
    Catalog::load(&CatalogOptions {
        public_base_url: "https://connections.example.com".into(),
        include_sandbox: false,
        overrides: None,
    })
    .expect("the catalog loads")
}

/// Values for the templates of a request, as a real connection has them.
pub(crate) fn vars(entry: &PlatformEntry) -> BTreeMap<String, String> {
    let mut v: BTreeMap<String, String> =
        entry.params.iter().map(|p| (p.name.clone(), p.example.clone().unwrap_or_else(|| "na".into()))).collect();
    v.insert("context".into(), "stores/abc123".into());
    // The sub-account a connection chose (discovery), as each platform names it.
    let account = match entry.id.as_str() {
        "google_ads" => "customers/1234567890",
        "google_analytics" => "properties/400500600",
        "meta_ads" => "act_1020304050",
        "amazon_ads" => "3141592653589793",
        "tiktok_ads" => "7001000000000000001",
        "pinterest_ads" => "549755885175",
        "snapchat_ads" => "8adc3db7-8148-4fbf-999c-8d2266369d74",
        "microsoft_ads" => "149000123",
        _ => "18ce54d4x5t",
    };
    v.insert("account_id".into(), account.into());
    // More of the account (Microsoft's parent customer) and the grant's user.
    v.insert("customer_id".into(), "251000456".into());
    v.insert("user_id".into(), "6253282".into());
    v.insert("store_url".into(), "https://store.example.com".into());
    entry.expand_params(&mut v);
    v
}

fn normalise_host(host: &str) -> &str {
    HOST_ALIASES.iter().find(|(from, _)| *from == host).map(|(_, to)| *to).unwrap_or(host)
}

/// `https://host/a/{b}/c` → (host, segments); a `{...}` segment matches any.
fn split(url: &str) -> (String, Vec<String>) {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or(rest);
    let mut parts = rest.split('/');
    let host = normalise_host(parts.next().unwrap_or_default()).to_owned();
    let segments: Vec<String> = parts.filter(|s| !s.is_empty()).map(str::to_owned).collect();
    (host, segments)
}

fn matches(described: &str, requested: &url::Url) -> bool {
    let (dh, ds) = split(described);
    let (rh, rs) = split(requested.as_str());
    // A segment is literal, a variable (`{id}`, Postman's `:id`), or a
    // variable with literal text around it (GA4's `{propertiesId}:runReport`).
    let segment = |d: &str, r: &str| match (d.find('{'), d.rfind('}')) {
        _ if d.starts_with(':') => !r.is_empty(),
        (Some(open), Some(close)) if open < close => {
            let (before, after) = (&d[..open], &d[close + 1..]);
            r.len() > before.len() + after.len() && r.starts_with(before) && r.ends_with(after)
        }
        _ => d == r,
    };
    // A description's server may itself hold a variable (BigCommerce's
    // `stores/{store_hash}`): compare host, then segments.
    let var = |s: &str| s.starts_with('{') && s.ends_with('}');
    (dh == rh || var(&dh)) && ds.len() == rs.len() && ds.iter().zip(&rs).all(|(d, r)| segment(d, r))
}

/// The fields a GraphQL query selects at the first level under `within`
/// (`nodes {` for a connection, `shop {` for an object).
fn selected_fields(query: &str, within: &str) -> Vec<String> {
    let Some(start) = query.find(within) else { return Vec::new() };
    let (mut depth, mut args) = (1, 0);
    let mut fields = Vec::new();
    let mut word = String::new();
    for c in query[start + within.len()..].chars() {
        let in_word = args == 0 && (c.is_ascii_alphanumeric() || c == '_');
        if in_word {
            word.push(c);
            continue;
        }
        if depth == 1 && !word.is_empty() {
            fields.push(std::mem::take(&mut word));
        }
        word.clear();
        match c {
            '(' => args += 1,
            ')' => args -= 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    fields
}

/// The GraphQL requests of an entry (its streams, its identity), held to
/// the published schema: the query root field, and the fields selected of
/// what it returns.
fn graphql_problems(entry: &PlatformEntry, facts: &PlatformFacts) -> Vec<String> {
    let mut problems = Vec::new();
    let mut queries: Vec<(String, &shared::catalog::GraphqlSpec)> =
        entry.streams.iter().filter_map(|s| s.graphql.as_ref().map(|q| (format!("stream {}", s.name), q))).collect();
    if let Some(q) = entry.identity.as_ref().and_then(|i| i.graphql.as_ref()) {
        queries.push(("identity".into(), q));
    }
    for (what, q) in queries {
        let Some(known) = facts.graphql.get(&q.root_field) else {
            problems.push(format!(
                "{} {what}: the query root field {} is not in the published schema",
                entry.id, q.root_field
            ));
            continue;
        };
        let within = if q.query.contains("nodes {") { "nodes {".to_owned() } else { format!("{} {{", q.root_field) };
        let selected = selected_fields(&q.query, &within);
        if selected.is_empty() {
            problems.push(format!("{} {what}: no fields selected under {within}", entry.id));
        }
        for field in selected {
            if !known.contains(&field) {
                problems.push(format!("{} {what}: {}.{field} is not in the published schema", entry.id, q.root_field));
            }
        }
    }
    problems
}

/// The SOAP requests of an entry (its identity), held to the WSDL: the
/// operation exists at that address, every SOAP header sent is one the
/// operation declares, the body is the operation's request element, and
/// the fields read are in its response element.
fn soap_problems(entry: &PlatformEntry, facts: &PlatformFacts) -> Vec<String> {
    let vars = vars(entry);
    let mut calls = Vec::new();
    if let Some((identity, soap)) = entry.identity.as_ref().and_then(|i| i.soap.as_ref().map(|s| (i, s))) {
        let url = platform::api_url(entry, &identity.path, &vars).expect("identity URL");
        let pointers = [&identity.account_id_pointer, &identity.account_name_pointer].into_iter().flatten().cloned();
        calls.push(("identity".to_owned(), url, soap.action.clone(), soap.envelope.clone(), pointers.collect()));
    }
    if let Some((discovery, soap)) = entry.discovery.as_ref().and_then(|d| d.soap.as_ref().map(|s| (d, s))) {
        let url = platform::api_url(entry, &discovery.path, &vars).expect("discovery URL");
        let list = discovery.list_pointer.clone();
        let mut pointers = vec![list.clone()];
        for field in [Some(&discovery.id_pointer), discovery.name_pointer.as_ref(), discovery.currency_pointer.as_ref()]
            .into_iter()
            .flatten()
            .chain(discovery.params.values())
        {
            pointers.push(format!("{list}{field}"));
        }
        calls.push(("discovery".to_owned(), url, soap.action.clone(), soap.envelope.clone(), pointers));
    }
    for stream in &entry.streams {
        let Some(spec) = &stream.report else { continue };
        let soap_action =
            |headers: &BTreeMap<String, String>| headers.get("SOAPAction").map(|a| a.trim_matches('"').to_owned());
        let (Some(action), Some(serde_json::Value::String(envelope))) = (soap_action(&spec.headers), &spec.body) else {
            continue;
        };
        let url = platform::api_url(entry, &stream.path, &vars).expect("report URL");
        let mut pointers = Vec::new();
        if let Some(job) = &spec.job {
            pointers.push(job.id_pointer.clone());
            let poll = job.poll_headers.as_ref().and_then(soap_action);
            if let (Some(poll), Some(serde_json::Value::String(body))) = (poll, &job.poll_body) {
                let poll_url = platform::api_url(entry, &job.poll_path, &vars).expect("poll URL");
                let answers = vec![job.status_pointer.clone(), job.url_pointer.clone()];
                calls.push((format!("report {} (poll)", stream.name), poll_url, poll, body.clone(), answers));
            }
        }
        calls.push((format!("report {}", stream.name), url, action, envelope.clone(), pointers));
    }
    calls
        .into_iter()
        .flat_map(|(what, url, action, envelope, pointers)| {
            soap_call_problems(entry, facts, &what, &url, &action, &envelope, &pointers)
        })
        .collect()
}

/// One SOAP call held to the WSDL: the operation at that address, the SOAP
/// headers it takes, its request element, and the answer's fields read.
fn soap_call_problems(
    entry: &PlatformEntry,
    facts: &PlatformFacts,
    what: &str,
    url: &url::Url,
    action: &str,
    envelope: &str,
    pointers: &[String],
) -> Vec<String> {
    let id = &entry.id;
    let Some(op) = facts
        .operations
        .iter()
        .find(|o| o.method == "SOAP" && o.action.as_deref() == Some(action) && matches(&o.url, url))
    else {
        return vec![format!("{id} {what}: SOAP {action} at {url} is not in the vendor's WSDL")];
    };
    let mut problems = Vec::new();
    let envelope = envelope.replace(['{', '}'], "");
    let Some(doc) = platform::document(envelope.as_bytes()) else {
        return vec![format!("{id} {what}: the SOAP envelope is not XML")];
    };
    for header in doc.pointer("/Envelope/Header").and_then(|h| h.as_object()).into_iter().flat_map(|h| h.keys()) {
        if !op.soap_headers.contains(header) {
            problems.push(format!("{id} {what}: the SOAP header {header} is not one {action} takes ({})", op.source));
        }
    }
    let request = format!("{action}Request");
    if doc.pointer(&format!("/Envelope/Body/{request}")).is_none() {
        problems.push(format!("{id} {what}: the SOAP body is not a {request}"));
    }
    for pointer in pointers {
        let inner = pointer.strip_prefix("/Envelope/Body").unwrap_or(pointer);
        // The answer's fields are described two levels deep: what is read
        // below that (an account's fields) is held to its parent's presence.
        let known: BTreeSet<&str> = op.response_pointers.iter().map(String::as_str).collect();
        if !described_pointer(&known, inner) {
            problems.push(format!("{id} {what}: {pointer} is not in the response of {action} ({})", op.source));
        }
    }
    problems
}

/// One request the catalog makes, as the production code builds it.
struct Request {
    what: String,
    method: String,
    /// The top-level fields of a JSON body.
    body_fields: Vec<String>,
    url: url::Url,
    headers: BTreeSet<String>,
    records_pointer: Option<String>,
    next_pointer: Option<String>,
    /// Other fields read from the answer (a report job's id, status, file).
    answers: Vec<(&'static str, String)>,
}

/// Where an answer says its next page is, when it says so in its body.
fn next_page_pointer(pagination: &Pagination) -> Option<String> {
    match pagination {
        Pagination::CursorInBody { next_pointer, .. } => Some(next_pointer.clone()),
        _ => None,
    }
}

fn requests(entry: &PlatformEntry) -> Vec<Request> {
    let vars = vars(entry);
    let creds = Credentials {
        values: ["access_token", "api_key", "client_id", "client_secret", "developer_token"]
            .into_iter()
            .map(|k| (k.to_owned(), secrecy::SecretString::from("x".to_owned())))
            .collect(),
    };
    let headers = |url: &url::Url| -> BTreeSet<String> {
        let r = platform::api_get(entry, url.clone(), &vars, &creds).expect("the request builds");
        r.headers().keys().map(|k| k.as_str().to_owned()).collect()
    };
    // A GET, its answer read for a list (and where the next page is).
    let get = |what: String, url: url::Url, records_pointer: Option<String>, pagination: Option<&Pagination>| {
        let next_pointer = pagination.and_then(next_page_pointer);
        let headers = headers(&url);
        Request {
            what,
            method: "GET".into(),
            body_fields: vec![],
            headers,
            url,
            records_pointer,
            next_pointer,
            answers: vec![],
        }
    };
    let mut out = Vec::new();
    if let Some(identity) = entry.identity.as_ref().filter(|i| i.graphql.is_none() && i.soap.is_none()) {
        let url = platform::api_url(entry, &identity.path, &vars).expect("identity URL");
        out.push(get("identity".into(), url, None, None));
    }
    if let Some(key) = &entry.api_key {
        let url = platform::api_url(entry, &key.validate.path, &vars).expect("key check URL");
        out.push(get("key check".into(), url, None, None));
    }
    // What a grant reaches (a SOAP discovery is held to its WSDL below).
    if let Some(spec) = entry.discovery.as_ref().filter(|d| d.soap.is_none()) {
        let url = platform::accounts::first_url(entry, spec, &vars, &creds).expect("discovery URL");
        out.push(get("discovery".into(), url, Some(spec.list_pointer.clone()), Some(&spec.pagination)));
    }
    for stream in entry.streams.iter().filter(|s| s.graphql.is_none()) {
        if let Some(spec) = &stream.report {
            let next_pointer = next_page_pointer(&stream.pagination);
            out.extend(report_requests(entry, stream, spec, &vars, &creds, next_pointer));
            continue;
        }
        let url = platform::stream_first_url(entry, stream, &vars, None).expect("stream URL");
        let records = Some(stream.records_pointer.clone());
        out.push(get(format!("stream {}", stream.name), url, records, Some(&stream.pagination)));
    }
    out
}

/// A report stream's requests for one window, as the engine sends them:
/// the report (or the job's creation), and the job's poll.
fn report_requests(
    entry: &PlatformEntry,
    stream: &shared::catalog::StreamSpec,
    spec: &shared::catalog::ReportSpec,
    vars: &BTreeMap<String, String>,
    creds: &Credentials,
    next_pointer: Option<String>,
) -> Vec<Request> {
    use platform::reports;
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let mut window = reports::window_vars(spec, vars, day("2026-11-01"), day("2026-11-07"));
    window.insert("job_id".into(), "job-1".into());
    let sent = |call: &reports::Call, what: String, records: Option<String>, next: Option<String>| {
        let r = reports::request(entry, call, vars, creds).expect("the report request builds");
        let body_fields = serde_json::from_slice::<serde_json::Value>(r.body())
            .ok()
            .and_then(|b| b.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        Request {
            what,
            method: call.method.as_str().to_owned(),
            body_fields,
            headers: r.headers().keys().map(|k| k.as_str().to_owned()).collect(),
            url: call.url.clone(),
            records_pointer: records,
            next_pointer: next,
            answers: vec![],
        }
    };
    let call = reports::call(entry, stream, spec, &window).expect("the report call");
    if call.envelope.is_some() {
        // A SOAP report: held to the WSDL by soap_problems.
        return Vec::new();
    }
    let mut out = Vec::new();
    match &spec.job {
        None => {
            out.push(sent(&call, format!("report {}", stream.name), Some(stream.records_pointer.clone()), next_pointer))
        }
        Some(job) => {
            let mut create = sent(&call, format!("report {} (create)", stream.name), None, None);
            create.answers = vec![("report id", job.id_pointer.clone())];
            out.push(create);
            let mut poll = call.clone();
            poll.method = http::Method::from_bytes(job.poll_method.as_bytes()).unwrap();
            poll.url = platform::api_url(entry, &job.poll_path, &window).unwrap();
            poll.body = None;
            let mut polled = sent(&poll, format!("report {} (poll)", stream.name), None, None);
            polled.answers = vec![("report status", job.status_pointer.clone()), ("file URL", job.url_pointer.clone())];
            out.push(polled);
        }
    }
    out
}

/// Whether `pointer` is in a response described by `known`: itself, or
/// under a described field the description says no more of (TikTok's
/// `data`, an object without properties). A `*` ends what can be checked.
fn described_pointer(known: &BTreeSet<&str>, pointer: &str) -> bool {
    let pointer = pointer.split("/*").next().unwrap_or(pointer);
    if pointer.is_empty() || known.contains(pointer) {
        return true;
    }
    let mut prefix = pointer;
    while let Some(cut) = prefix.rfind('/').filter(|c| *c > 0) {
        prefix = &prefix[..cut];
        if known.contains(prefix) {
            let deeper = format!("{prefix}/");
            return !known.iter().any(|k| k.starts_with(&deeper));
        }
    }
    false
}

/// What a platform's requests do against its facts: one line a problem.
fn conformance(entry: &PlatformEntry, facts: &PlatformFacts) -> Vec<String> {
    let mut problems = Vec::new();
    let described_hosts: BTreeSet<String> = facts.operations.iter().map(|o| split(&o.url).0).collect();
    for request in requests(entry) {
        let path = request.url.path().to_owned();
        if UNCOVERED.iter().any(|(p, suffix, _)| *p == entry.id.as_str() && path.ends_with(suffix)) {
            continue;
        }
        let (host, _) = split(request.url.as_str());
        if !described_hosts.contains(&host) && !described_hosts.iter().any(|h| h.starts_with('{')) {
            // Another service (an OpenID Connect userinfo endpoint, say):
            // nothing describes it here.
            continue;
        }
        let Some(op) = facts.operations.iter().find(|o| o.method == request.method && matches(&o.url, &request.url))
        else {
            problems.push(format!(
                "{} {}: {} {} is not in the vendor's description ({})",
                entry.id,
                request.what,
                request.method,
                request.url,
                facts.sources.join(", ")
            ));
            continue;
        };
        let sent: BTreeSet<String> = request.url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        for field in &request.body_fields {
            if !op.body_fields.is_empty() && !op.body_fields.contains(field) {
                problems.push(format!(
                    "{} {}: the body field {field} is not in the request the vendor describes ({})",
                    entry.id, request.what, op.source
                ));
            }
        }
        for q in &op.required_query {
            let as_header = QUERY_AS_HEADER.iter().any(|(p, name, _)| *p == entry.id.as_str() && name == q);
            if as_header && request.headers.contains(&q.to_ascii_lowercase()) {
                continue;
            }
            if !sent.contains(q) {
                problems.push(format!(
                    "{} {}: the required query parameter {q} is missing ({})",
                    entry.id, request.what, op.source
                ));
            }
        }
        for (name, value) in request.url.query_pairs() {
            let (Some(max), Ok(asked)) = (op.query_maxima.get(name.as_ref()), value.parse::<u64>()) else { continue };
            if asked > *max {
                problems.push(format!(
                    "{} {}: {name}={asked} is past the {max} the vendor documents ({})",
                    entry.id, request.what, op.source
                ));
            }
        }
        for h in &op.required_headers {
            if !request.headers.contains(h) && h != "content-type" {
                problems
                    .push(format!("{} {}: the required header {h} is missing ({})", entry.id, request.what, op.source));
            }
        }
        if !op.success.is_empty() && !op.success.contains(&200) {
            problems.push(format!(
                "{} {}: 200 is not a success status of {} ({:?})",
                entry.id, request.what, op.url, op.success
            ));
        }
        if !op.response_pointers.is_empty() {
            let known: BTreeSet<&str> = op.response_pointers.iter().map(String::as_str).collect();
            let listed =
                [("record list", request.records_pointer.clone()), ("next page", request.next_pointer.clone())];
            let answers = request.answers.iter().map(|(what, p)| (*what, Some(p.clone())));
            for (what, pointer) in listed.into_iter().chain(answers) {
                if let Some(p) = pointer.as_deref().filter(|p| !p.is_empty()) {
                    if !described_pointer(&known, p) {
                        problems.push(format!(
                            "{} {}: the {what} {p} is not in the response of {} ({})",
                            entry.id, request.what, op.url, op.source
                        ));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn every_catalog_request_is_one_the_vendor_describes() {
    let (facts, catalog) = (facts(), catalog());
    let mut problems = Vec::new();
    for entry in catalog.entries() {
        let described = |f: &&PlatformFacts| {
            f.operations.iter().any(|o| o.method == "GET" || o.method == "SOAP") || !f.graphql.is_empty()
        };
        match facts.platforms.get(entry.id.as_str()).filter(described) {
            Some(f) => {
                problems.extend(conformance(entry, f));
                problems.extend(graphql_problems(entry, f));
                problems.extend(soap_problems(entry, f));
            }
            None => assert!(
                UNDESCRIBED.iter().any(|(id, _)| *id == entry.id.as_str()),
                "{} has no conformance facts: add its vendor's description to the generator, or say why in UNDESCRIBED",
                entry.id
            ),
        }
    }
    assert!(problems.is_empty(), "the catalog disagrees with the vendors' descriptions:\n{}", problems.join("\n"));
}

/// A page size past what the vendor documents is found, on a stream and on
/// the discovery request (Pinterest takes at most 250 a page, GA4 200).
#[test]
fn a_page_size_past_the_documented_maximum_fails() {
    let (facts, catalog) = (facts(), catalog());
    for (platform, param, max) in [("pinterest_ads", "page_size", 250), ("google_analytics", "pageSize", 200)] {
        let good = catalog.get(platform).unwrap();
        assert!(conformance(good, &facts.platforms[platform]).is_empty());
        let mut entry = good.clone();
        entry.discovery.as_mut().unwrap().page_size = Some(max + 1);
        for stream in entry.streams.iter_mut().filter(|s| s.page_size_param.as_deref() == Some(param)) {
            stream.page_size = Some(max + 1);
        }
        let problems = conformance(&entry, &facts.platforms[platform]);
        let past = format!("{param}={} is past the {max} the vendor documents", max + 1);
        assert!(problems.iter().any(|p| p.contains(&format!("discovery: {past}"))), "{platform}: {problems:?}");
        assert!(problems.iter().any(|p| p.contains("stream") && p.contains(&past)), "{platform}: {problems:?}");
    }
}

#[test]
fn a_planted_soap_mistake_fails() {
    let (facts, catalog) = (facts(), catalog());
    let ms = &facts.platforms["microsoft_ads"];
    let good = catalog.get("microsoft_ads").unwrap();
    assert!(soap_problems(good, ms).is_empty(), "{:?}", soap_problems(good, ms));
    let plant = |change: &dyn Fn(&mut shared::catalog::RequestSpec)| {
        let mut entry = good.clone();
        change(entry.identity.as_mut().unwrap());
        soap_problems(&entry, ms)
    };
    let wrong_action = plant(&|i| i.soap.as_mut().unwrap().action = "GetUsers".into());
    assert!(
        wrong_action.iter().any(|p| p.contains("GetUsers") && p.contains("not in the vendor's WSDL")),
        "{wrong_action:?}"
    );
    let wrong_field = plant(&|i| i.account_name_pointer = Some("/Envelope/Body/GetUserResponse/User/Login".into()));
    assert!(wrong_field.iter().any(|p| p.contains("User/Login")), "{wrong_field:?}");
    let wrong_header = plant(&|i| {
        let s = i.soap.as_mut().unwrap();
        s.envelope = s.envelope.replace("DeveloperToken>", "DevToken>");
    });
    assert!(wrong_header.iter().any(|p| p.contains("SOAP header DevToken")), "{wrong_header:?}");
    let wrong_path = plant(&|i| i.path = "/CustomerManagement.svc".into());
    assert!(!wrong_path.is_empty());
    // The report's calls and the discovery are held the same way.
    let mut entry = good.clone();
    let spec = entry.streams[0].report.as_mut().unwrap();
    let body = spec.body.as_ref().unwrap().as_str().unwrap().replace("CustomerAccountId>", "AccountId>");
    spec.body = Some(serde_json::Value::String(body));
    spec.job.as_mut().unwrap().url_pointer = "/Envelope/Body/PollGenerateReportResponse/ReportRequestStatus/Url".into();
    let problems = soap_problems(&entry, ms);
    assert!(
        problems.iter().any(|p| p.contains("SOAP header AccountId is not one SubmitGenerateReport takes")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("ReportRequestStatus/Url")), "{problems:?}");
    let mut entry = good.clone();
    entry.discovery.as_mut().unwrap().soap.as_mut().unwrap().action = "SearchAccount".into();
    assert!(soap_problems(&entry, ms).iter().any(|p| p.contains("discovery: SOAP SearchAccount")));
}

#[test]
fn a_planted_mistake_fails() {
    let (facts, catalog) = (facts(), catalog());
    // A wrong path.
    let mut pinterest = catalog.get("pinterest_ads").unwrap().clone();
    pinterest.streams[0].path = "/ad_acounts".into();
    let problems = conformance(&pinterest, &facts.platforms["pinterest_ads"]);
    assert!(
        problems.iter().any(|p| p.contains("/ad_acounts") && p.contains("not in the vendor's description")),
        "{problems:?}"
    );
    // A missing required parameter.
    let mut seller = catalog.get("amazon_seller").unwrap().clone();
    let orders = seller.streams.iter_mut().find(|s| s.name == "orders").unwrap();
    orders.path = "/orders/v0/orders".into();
    let problems = conformance(&seller, &facts.platforms["amazon_seller"]);
    assert!(problems.iter().any(|p| p.contains("MarketplaceIds")), "{problems:?}");
    // A record list that is not where the response has it.
    let mut stripe = catalog.get("stripe").unwrap().clone();
    stripe.streams[0].records_pointer = "/items".into();
    let problems = conformance(&stripe, &facts.platforms["stripe"]);
    assert!(problems.iter().any(|p| p.contains("record list /items")), "{problems:?}");
    // A GraphQL field the published schema does not have.
    let mut shopify = catalog.get("shopify").unwrap().clone();
    let q = shopify.streams[0].graphql.as_mut().unwrap();
    q.query = q.query.replace("displayFinancialStatus", "financialStatuz");
    let problems = graphql_problems(&shopify, &facts.platforms["shopify"]);
    assert!(problems.iter().any(|p| p.contains("orders.financialStatuz")), "{problems:?}");
    assert_eq!(problems.len(), 1, "only the planted one: {problems:?}");
}

/// Warn this far ahead of a vendor's end of service for a pinned version.
const SUNSET_MARGIN_DAYS: i64 = 60;

/// What is wrong with an entry's pinned version, as of `today`.
fn version_problems(entry: &PlatformEntry, today: chrono::NaiveDate) -> Vec<String> {
    let mut problems = Vec::new();
    let versioned = entry.api.is_some() && !entry.sandbox;
    let Some(v) = &entry.api_version else {
        if versioned {
            problems.push(format!("{}: no api_version (the version it pins, its sunset and the source)", entry.id));
        }
        return problems;
    };
    // The version is the one the entry's URLs, paths or headers carry.
    let api = entry.api.as_ref().expect("a versioned entry has an api");
    let mut paths: Vec<&str> = entry.streams.iter().map(|s| s.path.as_str()).collect();
    paths.extend(entry.identity.as_ref().map(|i| i.path.as_str()));
    let segment = format!("/{}/", v.pinned);
    let carried = api.base_url.contains(&v.pinned)
        || api.headers.values().any(|h| h == &v.pinned)
        || paths.iter().any(|p| p.contains(&segment));
    if !carried {
        problems.push(format!("{}: pins {} but its URLs and headers carry no such version", entry.id, v.pinned));
    }
    if let Some(sunset) = v.sunset {
        let left = (sunset - today).num_days();
        if left < SUNSET_MARGIN_DAYS {
            problems.push(format!(
                "{}: version {} ends on {sunset} ({left} days from today): move to a current version ({})",
                entry.id, v.pinned, v.source
            ));
        }
    }
    problems
}

#[test]
fn pinned_api_versions_are_declared_carried_and_live_for_60_more_days() {
    let today = chrono::Utc::now().date_naive();
    let problems: Vec<String> = catalog().entries().flat_map(|e| version_problems(e, today)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_version_near_its_sunset_or_not_carried_fails() {
    let catalog = catalog();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    // Google Ads as the catalog had it: v21, sunset on 2026-08-05.
    let mut ads = catalog.get("google_ads").unwrap().clone();
    ads.api.as_mut().unwrap().base_url = "https://googleads.googleapis.com/v21".into();
    ads.api_version = Some(shared::catalog::ApiVersion {
        pinned: "v21".into(),
        sunset: chrono::NaiveDate::from_ymd_opt(2026, 8, 5),
        source: "developers.google.com/google-ads/api/docs/sunset-dates".into(),
    });
    assert!(version_problems(&ads, today).iter().any(|p| p.contains("ends on 2026-08-05")));
    // Within 60 days of its end is too late too.
    ads.api_version.as_mut().unwrap().sunset = chrono::NaiveDate::from_ymd_opt(2027, 1, 10);
    assert!(version_problems(&ads, today).iter().any(|p| p.contains("ends on 2027-01-10")));
    // A declared version the entry does not actually send.
    let mut klaviyo = catalog.get("klaviyo").unwrap().clone();
    klaviyo.api.as_mut().unwrap().headers.insert("revision".into(), "2025-07-15".into());
    assert!(version_problems(&klaviyo, today).iter().any(|p| p.contains("carry no such version")));
}

#[test]
fn a_region_chooses_every_host_and_the_default_marketplace() {
    let catalog = catalog();
    let seller = catalog.get("amazon_seller").unwrap();
    let mut eu = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
    seller.expand_params(&mut eu);
    let spec = seller.oauth.as_ref().unwrap();
    assert_eq!(
        platform::fill(&spec.authorize_url, &eu).unwrap(),
        "https://sellercentral-europe.amazon.com/apps/authorize/consent"
    );
    assert_eq!(platform::fill(&spec.token_url, &eu).unwrap(), "https://api.amazon.co.uk/auth/o2/token");
    let orders = seller.streams.iter().find(|s| s.name == "orders").unwrap();
    let url = platform::stream_first_url(seller, orders, &eu, None).unwrap();
    assert_eq!(url.host_str(), Some("sellingpartnerapi-eu.amazon.com"));
    assert!(url.query_pairs().any(|(k, v)| k == "MarketplaceIds" && v == "A1PA6795UKMFR9"), "{url}");
    let ads = catalog.get("amazon_ads").unwrap();
    let mut fe = BTreeMap::from([("region".to_owned(), "fe".to_owned())]);
    ads.expand_params(&mut fe);
    let spec = ads.oauth.as_ref().unwrap();
    assert_eq!(platform::fill(&spec.authorize_url, &fe).unwrap(), "https://apac.account.amazon.com/ap/oa");
    assert_eq!(platform::fill(&spec.token_url, &fe).unwrap(), "https://api.amazon.co.jp/auth/o2/token");
    assert_eq!(platform::api_url(ads, "/v2/profiles", &fe).unwrap().host_str(), Some("advertising-api-fe.amazon.com"));
}

// ------------------------------------------------- fakes of the descriptions

/// A field's value in a described record: the description's example where
/// it has one, else a value of its type (ids unique, dates and epochs rising).
fn described_value(field: &str, spec: &serde_json::Value, i: usize) -> serde_json::Value {
    use serde_json::json;
    let (kind, example) = match spec {
        serde_json::Value::Array(a) => (a.first().and_then(|k| k.as_str()).unwrap_or("string"), a.get(1).cloned()),
        other => (other.as_str().unwrap_or("string"), None),
    };
    if field == "id" || field.ends_with("Id") && field.len() > 2 && kind != "object" {
        return if kind == "integer" { json!(1000 + i) } else { json!(format!("{field}-{i}")) };
    }
    if let Some(example) = example.filter(|_| !matches!(kind, "date-time" | "date" | "integer")) {
        return example;
    }
    match kind {
        "integer" => json!(1_790_000_000 + i as i64 * 60),
        "number" => json!(1.5 + i as f64),
        "boolean" => json!(true),
        "date-time" => json!(format!("2026-11-{:02}T10:00:00Z", i + 1)),
        "date" => json!(format!("2026-11-{:02}", i + 1)),
        "object" => json!({}),
        "array" => json!([]),
        _ => json!(format!("{field}-{i}")),
    }
}

/// A page as the description gives it: the list at `pointer`, `n` records
/// of its described fields.
fn described_page(pointer: &str, fields: &BTreeMap<String, serde_json::Value>, n: usize) -> serde_json::Value {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::Value::Object(fields.iter().map(|(k, v)| (k.clone(), described_value(k, v, i))).collect()))
        .collect();
    let mut page = serde_json::Value::Array(records);
    for segment in pointer.split('/').skip(1).collect::<Vec<_>>().into_iter().rev() {
        page = serde_json::json!({ segment: page });
    }
    page
}

/// The streams a vendor's description gives a list shape for, with the
/// page it describes.
fn described_streams(entry: &PlatformEntry, facts: &PlatformFacts) -> Vec<(String, String, serde_json::Value)> {
    let vars = vars(entry);
    let mut out = Vec::new();
    for stream in entry.streams.iter().filter(|s| s.graphql.is_none() && s.report.is_none()) {
        let url = platform::stream_first_url(entry, stream, &vars, None).expect("stream URL");
        let op = facts.operations.iter().find(|o| o.method == "GET" && matches(&o.url, &url));
        let Some(fields) = op.and_then(|o| o.record_lists.get(&stream.records_pointer)) else { continue };
        out.push((stream.name.clone(), url.path().to_owned(), described_page(&stream.records_pointer, fields, 3)));
    }
    out
}

/// Syncs `streams` (name, request path, the page it answers) of `entry`
/// through the real engine, from a fake that answers each path's page once
/// and then an empty list; every host of the entry's API points at the
/// fake. Returns the connection after the run and each stream's records.
async fn sync_from_pages(
    entry: &PlatformEntry,
    streams: &[(String, String, serde_json::Value)],
) -> (shared::domain::Connection, BTreeMap<String, usize>) {
    use serde_json::json;
    use shared::domain::*;
    use std::sync::{Arc, Mutex};

    let pages: BTreeMap<String, (serde_json::Value, serde_json::Value)> = streams
        .iter()
        .map(|(name, path, page)| {
            let pointer = entry.streams.iter().find(|s| &s.name == name).unwrap().records_pointer.clone();
            (path.clone(), (page.clone(), described_page(&pointer, &BTreeMap::new(), 0)))
        })
        .collect();
    let asked: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let log = asked.clone();
    let fake = crate::harness::FakePlatform::start(move |r: &crate::harness::Recorded| {
        let Some((page, empty)) = pages.get(&r.path) else {
            return crate::harness::Reply::Json(404, json!({"error": "not described"}));
        };
        let mut asked = log.lock().unwrap();
        let n = asked.entry(r.path.clone()).or_default();
        *n += 1;
        crate::harness::Reply::Json(200, if *n == 1 { page.clone() } else { empty.clone() })
    })
    .await;
    let names: Vec<String> = streams.iter().map(|(name, _, _)| name.clone()).collect();
    let (app, ws, c) = connection_on_fake(crate::harness::Backend::Embedded, entry, &fake.base, &names).await;
    let a = &app.stack.app;
    let budget = shared::flows::sync::Budget::until(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let outcome = shared::entry::lambda::run_sync_job(a, shared::domain::messages::SyncJob::start(&c), budget).await;
    let after = a.repo.connection(&ws, &c.id).await.unwrap().value;
    assert!(outcome.is_ok() && after.status == Status::Connected, "{}: {outcome:?} {:?}", entry.id, after.last_error);
    let mut counts = BTreeMap::new();
    for (name, _, _) in streams {
        let prefix = format!("records/{}/{}/{name}/", ws, c.id);
        let mut records = 0;
        for key in a.sink.list(&prefix).await.unwrap() {
            records +=
                a.sink.get(&key).await.unwrap().unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        }
        counts.insert(name.clone(), records);
    }
    (after, counts)
}

/// Every stream whose list the vendor describes syncs, through the real
/// engine, from a fake that answers with that description's shape (fields,
/// types, examples), not with one we invented.
#[tokio::test]
async fn every_described_stream_syncs_from_a_fake_that_answers_as_the_description_says() {
    let (facts, catalog) = (facts(), catalog());
    let mut synced = Vec::new();
    for entry in catalog.entries() {
        let Some(f) = facts.platforms.get(entry.id.as_str()) else { continue };
        let streams = described_streams(entry, f);
        if streams.is_empty() {
            continue;
        }
        let (after, counts) = sync_from_pages(entry, &streams).await;
        for (name, _, _) in &streams {
            assert_eq!(counts[name], 3, "{} {name}: the described records", entry.id);
            // A cursor field the description gives is read, typed, as the new cursor.
            let spec = entry.streams.iter().find(|s| &s.name == name).unwrap();
            let described = f.operations.iter().flat_map(|o| o.record_lists.get(&spec.records_pointer)).next();
            if let (Some(field), Some(fields)) = (&spec.cursor_field, described) {
                if fields.contains_key(field.trim_start_matches('/')) {
                    let saved = after.cursors.get(name).and_then(|c| c.cursor.clone());
                    assert!(saved.is_some(), "{} {name}: no cursor from {field}", entry.id);
                }
            }
            synced.push(format!("{} {name}", entry.id));
        }
    }
    // The streams the stored descriptions give a list shape for, today.
    for expected in [
        "stripe charges",
        "pinterest_ads ad_accounts",
        "amazon_seller orders",
        "klaviyo profiles",
        "bigcommerce products",
    ] {
        assert!(synced.iter().any(|s| s == expected), "{expected} was not synced from its description: {synced:?}");
    }
}

/// The streams no stored description gives a list shape for (no published
/// description, or one without response schemas) sync from fixtures of the
/// vendor's documented answer (`tests/conformance/examples/`: each names
/// the page it follows). Every stream of the catalog is covered by one of
/// the two tests.
#[tokio::test]
async fn every_other_stream_syncs_from_the_example_its_vendor_documents() {
    #[derive(Deserialize)]
    struct Example {
        #[allow(dead_code)]
        source: String,
        records: usize,
        page: serde_json::Value,
    }
    let (facts, catalog) = (facts(), catalog());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/examples");
    let mut missing = Vec::new();
    for entry in catalog.entries() {
        let described: BTreeSet<String> = facts
            .platforms
            .get(entry.id.as_str())
            .map(|f| described_streams(entry, f).into_iter().map(|(n, _, _)| n).collect())
            .unwrap_or_default();
        let vars = vars(entry);
        let mut streams = Vec::new();
        let mut expected = BTreeMap::new();
        // Report streams are held to their examples in tests/report_streams.rs.
        let lists = entry.streams.iter().filter(|s| s.graphql.is_none() && s.report.is_none());
        for stream in lists.filter(|s| !described.contains(&s.name)) {
            let file = dir.join(format!("{}.{}.json", entry.id, stream.name));
            let Ok(text) = std::fs::read_to_string(&file) else {
                missing.push(format!("{} {}", entry.id, stream.name));
                continue;
            };
            let example: Example = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let url = platform::stream_first_url(entry, stream, &vars, None).expect("stream URL");
            streams.push((stream.name.clone(), url.path().to_owned(), example.page));
            expected.insert(stream.name.clone(), example.records);
        }
        if streams.is_empty() {
            continue;
        }
        let (_, counts) = sync_from_pages(entry, &streams).await;
        for (name, n) in expected {
            assert_eq!(counts[&name], n, "{} {name}: the documented example's records", entry.id);
        }
    }
    assert!(missing.is_empty(), "streams with neither a described shape nor a documented example: {missing:?}");
}

/// Report requests are held like the rest: their method and path, their
/// required query, their headers and their body's fields.
#[test]
fn a_planted_report_mistake_fails() {
    let (facts, catalog) = (facts(), catalog());
    let report = |entry: &mut PlatformEntry, name: &str| -> shared::catalog::ReportSpec {
        entry.streams.iter().find(|s| s.name == name).unwrap().report.clone().unwrap()
    };
    let plant = |id: &str, name: &str, change: &dyn Fn(&mut shared::catalog::ReportSpec)| {
        let mut entry = catalog.get(id).unwrap().clone();
        let mut spec = report(&mut entry, name);
        assert!(conformance(&entry, &facts.platforms[id]).is_empty(), "{id} conforms before the plant");
        change(&mut spec);
        entry.streams.iter_mut().find(|s| s.name == name).unwrap().report = Some(spec);
        conformance(&entry, &facts.platforms[id])
    };
    let no_token = plant("pinterest_ads", "campaign_analytics", &|s| {
        s.job.as_mut().unwrap().poll_path = "/ad_accounts/{account_id}/reports".into();
    });
    assert!(no_token.iter().any(|p| p.contains("query parameter token")), "{no_token:?}");
    let no_status = plant("pinterest_ads", "campaign_analytics", &|s| {
        s.job.as_mut().unwrap().status_pointer = "/status".into();
    });
    assert!(no_status.iter().any(|p| p.contains("report status /status")), "{no_status:?}");
    let bad_body = plant("google_analytics", "traffic_by_source", &|s| {
        let body = s.body.as_mut().unwrap().as_object_mut().unwrap();
        let ranges = body.remove("dateRanges").unwrap();
        body.insert("dateRange".into(), ranges);
    });
    assert!(bad_body.iter().any(|p| p.contains("body field dateRange")), "{bad_body:?}");
    let no_scope = plant("amazon_ads", "sponsored_products_campaigns", &|s| s.headers.clear());
    assert!(no_scope.iter().any(|p| p.contains("amazon-advertising-api-scope")), "{no_scope:?}");
    let wrong_method = plant("amazon_ads", "sponsored_products_campaigns", &|s| s.method = "PUT".into());
    assert!(wrong_method.iter().any(|p| p.contains("PUT")), "{wrong_method:?}");
}

/// A connection of `entry` (its grant or key in the vault) whose every API
/// host is the fake at `base`, syncing `streams`.
pub(crate) async fn connection_on_fake(
    backend: crate::harness::Backend,
    entry: &PlatformEntry,
    base: &str,
    streams: &[String],
) -> (crate::harness::TestApp, shared::domain::ids::WorkspaceId, shared::domain::Connection) {
    use serde_json::json;
    use shared::domain::ids::*;
    use shared::domain::tokens::TokenSet;
    use shared::domain::*;
    let selected: Vec<StreamSelection> =
        streams.iter().map(|name| StreamSelection { name: name.clone(), selected: true }).collect();
    let text = serde_json::to_string(entry).unwrap();
    let mut hosts: BTreeSet<String> = BTreeSet::new();
    let api_base = &entry.api.as_ref().unwrap().base_url;
    for url in std::iter::once(api_base.clone()).chain(entry.streams.iter().map(|s| s.path.clone())) {
        if let Some((scheme, rest)) = url.split_once("://") {
            hosts.insert(format!("{scheme}://{}", rest.split('/').next().unwrap()));
        }
    }
    let text = hosts.iter().fold(text, |t, h| t.replace(h.as_str(), base));
    let overrides =
        json!({"platforms": {entry.id.as_str(): serde_json::from_str::<serde_json::Value>(&text).unwrap()}});
    let app = crate::harness::spawn_app_on(backend, &[("CATALOG_OVERRIDES", overrides.to_string().as_str())]).await;
    let a = &app.stack.app;
    let (ws, now) = (WorkspaceId::parse("ws_described").unwrap(), app.clock_now());
    let params = vars(entry);
    let credential = if entry.oauth.is_some() {
        let id = AuthorizationId::generate();
        let secret = SecretRef::for_owner(&a.config.secret_prefix, &ws, id.as_str());
        let tokens = TokenSet {
            access_token: "described-token".into(),
            refresh_token: Some("rt".into()),
            expires_at: None,
            refresh_expires_at: None,
            scopes: vec![],
            obtained_at: now,
            token_secret: None,
        };
        a.vault.put(&secret.0, &tokens.to_secret()).await.unwrap();
        // The app's values some requests carry (TikTok's app id and secret).
        let app_secret = SecretRef::for_app(&a.config.secret_prefix, entry.id.as_str());
        let stored = json!({"client_id": "client-1", "client_secret": "secret-1", "developer_token": "dev-1"});
        a.vault.put(&app_secret.0, &secrecy::SecretString::from(stored.to_string())).await.unwrap();
        let mut auth = Authorization::new(
            id.clone(),
            ws.clone(),
            entry.id.clone(),
            "Described".into(),
            None,
            vec![],
            params.clone(),
            TokenExpiry::default(),
            None,
            secret,
            UserId::parse("u").unwrap(),
            now,
        );
        auth.status = Status::Connected;
        a.repo.create(&auth).await.unwrap();
        Credential::Authorization { authorization_id: id }
    } else {
        let secret = SecretRef::for_owner(&a.config.secret_prefix, &ws, "conn_key");
        let key = json!({"api_key": "pk_described", "consumer_key": "ck_described", "consumer_secret": "cs_described",
                         "store_url": base})
        .to_string();
        a.vault.put(&secret.0, &secrecy::SecretString::from(key)).await.unwrap();
        Credential::ApiKey { secret, hint: "…bed".into(), last_verified_at: now, fingerprint: String::new() }
    };
    let mut c = Connection::new(
        ws.clone(),
        entry.id.clone(),
        "Described".into(),
        ConnectionRole::Source,
        None,
        credential,
        selected,
        UserId::parse("u").unwrap(),
        now,
    );
    c.status = Status::InitialSyncInProgress;
    c.params = params;
    if entry.api_key.is_some() {
        c.params.insert("store_url".into(), base.to_owned());
    }
    a.repo.create(&c).await.unwrap();
    (app, ws, c)
}
