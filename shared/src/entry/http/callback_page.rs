//! What the OAuth callback answers: a minimal HTML page that posts the
//! result to the exact opener origin and closes (popup mode), or a redirect
//! to `return_to` with the result in the query (redirect mode, or a popup
//! that lost its opener). No third-party resources, a strict CSP whose only
//! script is the one below (by hash), and `Referrer-Policy: no-referrer` so
//! the code in the URL goes nowhere.

use base64::Engine;
use http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::json;
use sha2::Digest;
use std::sync::LazyLock;

use crate::flows::connect_oauth::{CallbackError, CallbackResult, ReturnMode};

/// The page's only script: reads the result, posts it to the opener's
/// origin (never `*`) and closes; without an opener it follows `redirect`.
const SCRIPT: &str = r#"(function(){var r=JSON.parse(document.getElementById('result').textContent);if(window.opener&&r.origin){window.opener.postMessage(r.message,r.origin);window.close();}else if(r.redirect){window.location.replace(r.redirect);}})();"#;

static SCRIPT_HASH: LazyLock<String> =
    LazyLock::new(|| base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes())));

/// The message posted to the opener: the postMessage contract.
pub fn message(result: &CallbackResult) -> serde_json::Value {
    match &result.outcome {
        Ok(c) if !c.account_checked => {
            json!({"type": "connections:oauth", "status": "connected", "connection_id": c.connection_id,
                   "authorization_id": c.authorization_id, "error_code": null, "message": null,
                   "warning": "account_not_verified",
                   "warning_message": "The platform does not say which account signed in, so it could not be checked against the account this authorization belongs to. Check that the data is the one you expect."})
        }
        Ok(c) => {
            json!({"type": "connections:oauth", "status": "connected", "connection_id": c.connection_id,
                        "authorization_id": c.authorization_id, "error_code": null, "message": null})
        }
        Err(e) => json!({"type": "connections:oauth", "status": "error", "connection_id": null,
                         "authorization_id": null, "error_code": e.code(), "message": e.message(),
                         "action": e.action()}),
    }
}

/// `return_to` with `status`, `connection_id` / `error_code`, `message`
/// and `action` added.
pub fn redirect_url(result: &CallbackResult) -> Option<String> {
    let mut url = url::Url::parse(result.return_to.as_deref()?).ok()?;
    {
        let mut q = url.query_pairs_mut();
        match &result.outcome {
            Ok(c) => {
                q.append_pair("status", "connected");
                if let Some(id) = &c.connection_id {
                    q.append_pair("connection_id", id.as_str());
                }
                q.append_pair("authorization_id", c.authorization_id.as_str());
                if !c.account_checked {
                    q.append_pair("warning", "account_not_verified");
                }
            }
            Err(e) => {
                q.append_pair("status", "error");
                q.append_pair("error_code", e.code());
                q.append_pair("message", e.message());
                q.append_pair("action", e.action());
            }
        }
    }
    Some(url.to_string())
}

use crate::domain::email::escape as escape_html;

/// JSON safe inside a `<script>` element.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn secure(builder: http::response::Builder) -> http::response::Builder {
    builder
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
}

pub fn render(result: &CallbackResult) -> Response<Body> {
    let redirect = redirect_url(result);
    if result.mode == ReturnMode::Redirect {
        if let Some(location) = &redirect {
            return secure(Response::builder().status(StatusCode::FOUND))
                .header("location", location)
                .body(Body::Empty)
                .expect("valid response");
        }
    }
    let (title, text) = match &result.outcome {
        Ok(_) => ("Connected".to_owned(), "You can close this window.".to_owned()),
        Err(e) => ("Connection failed".to_owned(), format!("{} {}", e.message(), e.action())),
    };
    let data = json!({"origin": result.return_origin, "redirect": redirect, "message": message(result)});
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
<body><h1>{title}</h1><p>{text}</p><script type=\"application/json\" id=\"result\">{data}</script><script>{SCRIPT}</script></body></html>",
        title = escape_html(&title),
        text = escape_html(&text),
        data = script_json(&data),
    );
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        *SCRIPT_HASH
    );
    let status = match &result.outcome {
        Ok(_) => StatusCode::OK,
        Err(CallbackError::InvalidState) => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::OK,
    };
    secure(Response::builder().status(status))
        .header("content-type", "text/html; charset=utf-8")
        .header("content-security-policy", csp)
        .body(Body::Text(page))
        .expect("valid response")
}

/// The page an install the platform started ends on, inside the platform's
/// control panel (framed only by the hosts the catalog names): the link to
/// the frontend with the single-use claim in its fragment (never sent to a
/// server, never in a Referer), or what went wrong. No script at all.
pub fn install(
    result: &Result<crate::flows::installs::Received, CallbackError>,
    app_base_url: &str,
    frame_ancestors: &[String],
) -> Response<Body> {
    let body = match result {
        Ok(r) => {
            let link = format!("{}/#install={}", app_base_url.trim_end_matches('/'), r.claim);
            let account = r.account.as_ref().map(|a| a.name.clone().unwrap_or_else(|| a.id.clone()));
            format!(
                "<h1>{platform} is installed</h1><p>{what} To finish, open the link below and choose the workspace \
                 the data belongs to. It works once, until {until} (UTC).</p>\
                 <p><a href=\"{link}\" target=\"_blank\" rel=\"noopener noreferrer\">Finish connecting</a></p>",
                platform = escape_html(&r.platform),
                what = escape_html(&account.map(|a| format!("Store: {a}.")).unwrap_or_default()),
                until = r.expires_at.format("%Y-%m-%d %H:%M"),
                link = escape_html(&link),
            )
        }
        Err(e) => format!("<h1>Install failed</h1><p>{}</p>", escape_html(&format!("{} {}", e.message(), e.action()))),
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Install</title></head><body>{body}</body></html>"
    );
    let ancestors = if frame_ancestors.is_empty() { "'none'".to_owned() } else { frame_ancestors.join(" ") };
    let csp = format!("default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}");
    Response::builder()
        .status(if result.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST })
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("content-type", "text/html; charset=utf-8")
        .header("content-security-policy", csp)
        .body(Body::Text(page))
        .expect("valid response")
}
