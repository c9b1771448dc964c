//! Property tests of the parsers of outside input (proptest): each holds
//! for every input proptest generates, and a failure prints the smallest
//! input it found. The cases a run tries: `PROPTEST_CASES` (default 256).
//!
//! - the costs CSV validator: never panics on any bytes, never accepts a
//!   row with a bad cell, accepts every valid row exactly (a spreadsheet's
//!   quote before formula-like text is not part of it), and a valid file
//!   comes back the same through the export (its `upload_id` column and the
//!   quote it puts before formula-like text are read back as written);
//! - list cursors: any text is refused or names a page, never a panic; the
//!   pages of any list cover it once;
//! - `Link` headers: the `next` target is found whatever else the header
//!   holds (commas and semicolons in targets, several relation types);
//! - platform error envelopes: any body of any catalog entry classifies;
//! - token claims: any claims give a caller or an unauthenticated error;
//! - webhook signatures: ours (of any JSON-like text) verify with the
//!   Standard Webhooks library, and any change of body, id or time fails
//!   them;
//! - catalog overrides: any JSON loads or is refused with a reason;
//! - the OAuth callback: any query and cookies are refused with
//!   `invalid_state` (no state was issued), never a panic, never a return
//!   address.

use proptest::prelude::*;
use shared::costs::{self, Limits, Options};
use std::collections::HashMap;

const LIMITS: Limits = Limits { max_bytes: 10_000_000, max_rows: 100_000 };

/// A valid row's fields as a person would type them.
#[derive(Clone, Debug)]
struct Row {
    date: chrono::NaiveDate,
    category: String,
    description: String,
    cents: u64,
    currency: &'static str,
    sku: String,
    recurrence: &'static str,
}

fn text(max: usize) -> impl Strategy<Value = String> {
    // Letters, digits, punctuation, quotes, separators and formula starters;
    // no leading or trailing space (the validator trims them).
    proptest::string::string_regex(&format!("[A-Za-z0-9=+@,;\"'é€ _.-]{{0,{max}}}"))
        .unwrap()
        .prop_map(|s| s.trim_matches(' ').to_owned())
}

fn row() -> impl Strategy<Value = Row> {
    (
        0i64..3000,
        text(64).prop_filter("a category is required", |s| !s.is_empty()),
        text(80),
        0u64..100_000_000_000,
        prop::sample::select(vec!["EUR", "USD", "GBP", "CHF"]),
        text(20),
        prop::sample::select(vec!["", "one_off", "daily", "weekly", "monthly", "quarterly", "yearly"]),
    )
        .prop_map(|(day, category, description, cents, currency, sku, recurrence)| Row {
            date: chrono::NaiveDate::from_ymd_opt(2018, 1, 1).unwrap() + chrono::Duration::days(day),
            category,
            description,
            cents,
            currency,
            sku,
            recurrence,
        })
}

fn csv_of(rows: &[Row]) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["date", "category", "description", "amount", "currency", "sku", "recurrence"]).unwrap();
    for r in rows {
        let amount = format!("{}.{:02}", r.cents / 100, r.cents % 100);
        out.write_record([&r.date.to_string(), &r.category, &r.description, &amount, r.currency, &r.sku, r.recurrence])
            .unwrap();
    }
    out.into_inner().unwrap()
}

/// The rows the validator accepts, as (date, category, description, amount, currency, sku, recurrence).
type Seen = (String, String, String, String, String, String, String);

fn validate(bytes: &[u8]) -> (Result<costs::Report, costs::FileError>, Vec<Seen>, Vec<[String; 9]>) {
    let mut seen = Vec::new();
    let mut exported = Vec::new();
    let report = costs::validate(bytes, LIMITS, &Options::default(), |r| {
        let e = costs::export_record(&r, "upl_x");
        seen.push((
            r.date.to_string(),
            r.category.to_string(),
            r.description.to_string(),
            r.amount.to_string(),
            r.currency.to_string(),
            r.sku.to_string(),
            e[7].clone(),
        ));
        exported.push(e);
        Ok(())
    });
    (report, seen, exported)
}

/// Text as the validator reads it: a spreadsheet's quote before
/// formula-like text marks it as text and is not part of it.
fn unquoted(s: &str) -> String {
    match s.strip_prefix('\'') {
        Some(rest) if costs::is_formula_like(rest) => rest.to_owned(),
        _ => s.to_owned(),
    }
}

fn expected(r: &Row) -> Seen {
    let recurrence = if r.recurrence.is_empty() { "one_off" } else { r.recurrence };
    (
        r.date.to_string(),
        unquoted(&r.category),
        unquoted(&r.description),
        format!("{}.{:02}", r.cents / 100, r.cents % 100),
        r.currency.to_owned(),
        unquoted(&r.sku),
        recurrence.to_owned(),
    )
}

proptest! {
    #[test]
    fn the_validator_never_panics_and_its_counts_agree(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (report, seen, _) = validate(&bytes);
        if let Ok(report) = report {
            prop_assert_eq!(report.valid_rows as usize, seen.len());
            prop_assert!(report.valid_rows <= report.rows);
            prop_assert!(report.errors.len() as u64 <= report.error_total);
        }
    }

    #[test]
    fn near_csv_text_never_panics(lines in prop::collection::vec("[0-9a-z,;\" .=-]{0,40}", 0..20)) {
        let body = format!("date,category,amount,currency\n{}", lines.join("\n"));
        let (report, seen, _) = validate(body.as_bytes());
        if let Ok(report) = report {
            prop_assert_eq!(report.valid_rows as usize, seen.len());
        }
    }

    #[test]
    fn every_valid_row_is_accepted_exactly(rows in prop::collection::vec(row(), 1..30)) {
        let (report, seen, _) = validate(&csv_of(&rows));
        let report = report.expect("a valid file");
        prop_assert_eq!(report.error_total, 0, "{:?}", report.errors);
        prop_assert_eq!(seen, rows.iter().map(expected).collect::<Vec<_>>());
    }

    #[test]
    fn a_row_with_a_bad_cell_is_never_accepted(
        rows in prop::collection::vec(row(), 1..20),
        pick in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![
            ("date", "2026-02-30"), ("date", "30/11/2026"), ("date", ""),
            ("amount", "1,50"), ("amount", "12.5.0"), ("amount", "abc"), ("amount", ""), ("amount", "1e5"),
            ("currency", "EURO"), ("currency", "XYZ"), ("currency", ""),
            ("category", ""), ("recurrence", "sometimes"),
        ]),
    ) {
        let at = pick.index(rows.len());
        let mut file = csv::Writer::from_writer(Vec::new());
        file.write_record(["date", "category", "amount", "currency", "recurrence"]).unwrap();
        for (i, r) in rows.iter().enumerate() {
            let amount = format!("{}.{:02}", r.cents / 100, r.cents % 100);
            let mut cells = [r.date.to_string(), r.category.clone(), amount, r.currency.to_owned(), r.recurrence.to_owned()];
            if i == at {
                let col = ["date", "category", "amount", "currency", "recurrence"].iter().position(|c| *c == bad.0).unwrap();
                cells[col] = bad.1.to_owned();
            }
            file.write_record(&cells).unwrap();
        }
        let (report, seen, _) = validate(&file.into_inner().unwrap());
        let report = report.expect("row errors are not file errors");
        prop_assert_eq!(seen.len(), rows.len() - 1);
        prop_assert_eq!(report.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![at as u64 + 2]);
    }

    #[test]
    fn a_valid_file_comes_back_the_same_through_the_export(rows in prop::collection::vec(row(), 1..30)) {
        let (_, first, exported) = validate(&csv_of(&rows));
        let mut export = csv::WriterBuilder::new().quote_style(csv::QuoteStyle::NonNumeric).from_writer(Vec::new());
        export.write_record(costs::EXPORT_HEADER).unwrap();
        for record in &exported {
            export.write_record(record).unwrap();
        }
        let (report, again, _) = validate(&export.into_inner().unwrap());
        let report = report.expect("the export is a valid upload");
        prop_assert_eq!(report.error_total, 0, "{:?}", report.errors);
        prop_assert_eq!(again, first);
    }

    #[test]
    fn any_cursor_is_refused_or_names_a_page(cursor in ".{0,60}", n in 0usize..50, limit in 1usize..10) {
        let items: Vec<usize> = (0..n).collect();
        let _ = shared::domain::paging::page(items, "shape", Some(&cursor), limit);
    }

    #[test]
    fn the_pages_of_any_list_cover_it_once(n in 0usize..200, limit in 1usize..40) {
        let items: Vec<usize> = (0..n).collect();
        let (mut all, mut cursor) = shared::domain::paging::page(items.clone(), "s", None, limit).unwrap();
        while let Some(c) = cursor {
            let (page, next) = shared::domain::paging::page(items.clone(), "s", Some(&c), limit).unwrap();
            prop_assert!(!page.is_empty() && page.len() <= limit);
            all.extend(page);
            cursor = next;
        }
        prop_assert_eq!(all, items);
    }

    #[test]
    fn the_next_link_is_found_whatever_else_the_header_holds(
        links in prop::collection::vec(
            ("[a-z0-9/?=&,;%._-]{1,40}", prop::sample::subsequence(vec!["prev", "first", "last", "next", "NEXT"], 0..3), any::<bool>()),
            0..5,
        ),
        garbage in any::<bool>(),
    ) {
        let mut parts = Vec::new();
        if garbage {
            parts.push("garbage without brackets".to_owned());
        }
        for (path, rels, quoted) in &links {
            let rel = rels.join(" ");
            let rel = if *quoted || rels.len() != 1 { format!("\"{rel}\"") } else { rel };
            parts.push(format!("<https://api.example.com/{path}>; rel={rel}"));
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::LINK, parts.join(", ").parse().unwrap());
        let want = links
            .iter()
            .find(|(_, rels, _)| rels.iter().any(|r| r.eq_ignore_ascii_case("next")))
            .map(|(path, _, _)| format!("https://api.example.com/{path}"));
        prop_assert_eq!(shared::platform::page::next_link(&headers), want);
    }

    #[test]
    fn any_error_body_classifies_for_every_platform(body in prop::collection::vec(any::<u8>(), 0..300), code in "[a-zA-Z0-9_]{0,12}") {
        let catalog = catalog();
        for entry in catalog.entries() {
            let _ = shared::platform::envelope(entry, &body);
            let json = format!(r#"{{"error":{{"code":"{code}","message":"m"}},"errors":[{{"code":"{code}"}}],"code":"{code}"}}"#);
            let _ = shared::platform::envelope(entry, json.as_bytes());
        }
    }

    #[test]
    fn any_claims_give_a_caller_or_unauthenticated(
        claims in prop::collection::hash_map("[a-z_:]{1,16}", ".{0,40}", 0..6),
        workspace in prop::option::of(".{0,30}"),
        role in prop::option::of(prop::sample::select(vec!["admin", "staff", "client_viewer", "root", ""])),
    ) {
        let config = shared::Config::from_lookup(|_| None).unwrap();
        let mut claims: HashMap<String, String> = claims;
        if let Some(w) = workspace { claims.insert(config.claim_workspace.clone(), w); }
        if let Some(r) = role { claims.insert(config.claim_role.clone(), r.to_owned()); }
        match shared::entry::http::identity::caller_from_claims(&claims, &config) {
            Ok(caller) => prop_assert!(["admin", "staff", "client_viewer"].contains(&claims[&config.claim_role].as_str()) && caller.workspace_id.as_str() == claims[&config.claim_workspace]),
            Err(e) => prop_assert!(matches!(e, shared::Error::Unauthenticated(_))),
        }
    }

    #[test]
    fn our_webhook_signatures_verify_and_any_change_breaks_them(
        body in ".{0,120}".prop_map(String::into_bytes),
        id in "[a-z0-9_]{1,20}",
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = shared::flows::events::new_webhook_secret();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = shared::flows::events::sign(&secret, &id, timestamp, &body).unwrap();
        let webhook = standardwebhooks::Webhook::new(secrecy::ExposeSecret::expose_secret(&secret)).unwrap();
        let headers = |id: &str, ts: i64| {
            let mut h = http::HeaderMap::new();
            h.insert("webhook-id", id.parse().unwrap());
            h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
            h.insert("webhook-signature", signature.parse().unwrap());
            h
        };
        prop_assert!(webhook.verify(&body, &headers(&id, timestamp)).is_ok());
        let mut changed = body.clone();
        if changed.is_empty() { changed.push(b'x') } else { let i = flip.index(changed.len()); changed[i] ^= 1; }
        prop_assert!(webhook.verify(&changed, &headers(&id, timestamp)).is_err());
        let other_id = id.clone() + "x";
        prop_assert!(webhook.verify(&body, &headers(&other_id, timestamp)).is_err());
        prop_assert!(webhook.verify(&body, &headers(&id, timestamp - 1)).is_err());
    }

    #[test]
    fn any_catalog_override_loads_or_is_refused(doc in override_json()) {
        let options = shared::catalog::CatalogOptions {
            public_base_url: "https://api.example.com".into(),
            include_sandbox: false,
            overrides: Some(doc),
        };
        let _ = shared::catalog::Catalog::load(&options);
    }
}

/// One app for the callback property (the state store in memory).
fn callback_app() -> &'static (tokio::runtime::Runtime, shared::App) {
    static APP: std::sync::OnceLock<(tokio::runtime::Runtime, shared::App)> = std::sync::OnceLock::new();
    APP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config =
            crate::harness::config(&[("SANDBOX_PLATFORMS", "true"), ("PUBLIC_BASE_URL", "https://api.example.com")]);
        let (app, _) = crate::harness::embedded_app(config);
        (runtime, app)
    })
}

proptest! {
    /// Whatever a browser (or an attacker) puts in the callback's query and
    /// cookies, the callback answers with a result and a known error code,
    /// never a panic, and a state it did not issue is always invalid_state.
    #[test]
    fn any_callback_query_is_refused_with_a_known_code(
        query in prop::collection::btree_map(
            prop::sample::select(vec!["state", "code", "error", "error_description", "iss", "oauth_token", "oauth_verifier", "denied", "shop", "hmac", "x"]),
            ".{0,80}",
            0..7,
        ),
        cookies in prop::collection::btree_map("[a-z_]{1,20}", ".{0,40}", 0..3),
    ) {
        let (runtime, app) = callback_app();
        let query: std::collections::BTreeMap<String, String> = query.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let result = runtime.block_on(shared::flows::connect_oauth::callback(app, &query, &cookies));
        match result.outcome {
            Ok(_) => prop_assert!(false, "a callback with a state nobody issued connected"),
            Err(e) => prop_assert_eq!(e.code(), "invalid_state"),
        }
        prop_assert!(result.return_to.is_none(), "no return address from an unknown state");
    }
}

fn catalog() -> shared::catalog::Catalog {
    shared::catalog::Catalog::load(&shared::catalog::CatalogOptions {
        public_base_url: "https://api.example.com".into(),
        include_sandbox: true,
        overrides: None,
    })
    .unwrap()
}

/// Inline override documents: well-formed around random leaves, and plain noise.
fn override_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "name",
                    "method",
                    "oauth",
                    "api",
                    "streams",
                    "shopify",
                    "x",
                    "platforms",
                    "token_url",
                    "base_url"
                ]),
                inner,
                0..4,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    });
    prop_oneof![value.prop_map(|v| format!("{{\"platforms\": [{v}]}}")), ".{0,40}".prop_map(|s| format!("{{{s}")),]
}
