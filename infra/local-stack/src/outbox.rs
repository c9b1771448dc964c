//! The local outbox in a browser: `/local/outbox` lists the alert emails
//! the embedded mailer wrote (newest first), and each opens as its HTML part
//! (`…/{name}.html`) or as the whole message with its headers (`….eml`).

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;
use shared::config::Backend;
use shared::domain::email::escape;

use crate::gateway::Reply;
use crate::LocalStack;

fn dir(stack: &LocalStack) -> Option<std::path::PathBuf> {
    match &stack.app.config.backend {
        Backend::Embedded { data_dir: Some(d) } => Some(d.join("outbox")),
        _ => None,
    }
}

fn page(status: StatusCode, content_type: &str, csp: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header("content-security-policy", csp)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(body.into()))
        .expect("static response parts")
}

/// A header's value in an `.eml` the embedded mailer wrote (RFC 2047 words decoded).
fn header_of(eml: &str, name: &str) -> String {
    let prefix = format!("{name}: ");
    let raw = eml.lines().take_while(|l| !l.is_empty()).find_map(|l| l.strip_prefix(&prefix)).unwrap_or("");
    shared::domain::email::decode_words(raw)
}

/// Serves `/local/outbox` and its files; `None` for other paths.
pub fn serve(stack: &LocalStack, path: &str) -> Option<Reply> {
    let rest = path.strip_prefix("/local/outbox")?;
    let Some(dir) = dir(stack) else {
        let text = "The outbox is kept on disk when the local stack runs with DATA_DIR (the default .local/data).";
        return Some(page(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "default-src 'none'", text));
    };
    if rest.is_empty() || rest == "/" {
        return Some(list(&dir));
    }
    let name = rest.strip_prefix('/')?;
    let safe = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.')
        && (name.ends_with(".html") || name.ends_with(".eml"));
    let file = safe.then(|| std::fs::read(dir.join(name)).ok()).flatten();
    Some(match file {
        // An email's own HTML: no script runs; its inline styles and https images show.
        Some(body) if name.ends_with(".html") => page(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'none'",
            body,
        ),
        Some(body) => page(StatusCode::OK, "text/plain; charset=utf-8", "default-src 'none'", body),
        None => page(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "default-src 'none'", "no such email"),
    })
}

fn list(dir: &std::path::Path) -> Reply {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.retain(|n| n.ends_with(".eml"));
    names.sort_unstable_by(|a, b| b.cmp(a)); // the name starts with the time
    let mut rows = String::new();
    for name in &names {
        let eml = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let stem = name.trim_end_matches(".eml");
        rows.push_str(&format!(
            "<tr><td>{when}</td><td>{to}</td><td><a href=\"/local/outbox/{stem}.html\">{subject}</a></td>\
             <td><a href=\"/local/outbox/{name}\">headers and text</a></td></tr>",
            when = escape(stem.get(..15).unwrap_or(stem)),
            to = escape(&header_of(&eml, "To")),
            subject = escape(&header_of(&eml, "Subject")),
        ));
    }
    if rows.is_empty() {
        rows =
            "<tr><td colspan=\"4\">No email yet. Alerts go to admin and staff members with an email address.</td></tr>"
                .into();
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Local outbox</title></head><body style=\"font-family:system-ui,sans-serif;margin:2rem;\">\
         <h1>Local outbox</h1><p>The alert emails this local stack sent ({count}), newest first, as written to {dir}.</p>\
         <table style=\"border-collapse:collapse;\" cellpadding=\"6\"><thead><tr><th align=\"left\">Sent (UTC)</th><th align=\"left\">To</th>\
         <th align=\"left\">Subject</th><th align=\"left\">Message</th></tr></thead><tbody>{rows}</tbody></table></body></html>",
        count = names.len(),
        dir = escape(&dir.display().to_string()),
    );
    page(StatusCode::OK, "text/html; charset=utf-8", "default-src 'none'; style-src 'unsafe-inline'", html)
}
