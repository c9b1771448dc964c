//! The pages of an email's unsubscribe link. A GET (a person, or a mail
//! scanner following links) only asks; the POST turns the email off: the
//! form on the page, or the mailbox's own one-click button (RFC 8058). No
//! script, no redirect, nothing framed.

use http::StatusCode;
use lambda_http::{Body, Response};

use super::error::Described;
use crate::domain::email::{escape, kind_words};
use crate::domain::AlertKind;

fn page(status: StatusCode, product: &str, title: &str, body: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title} · {product}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5;\">\
         <p>{product}</p><h1 style=\"font-size:1.4rem;\">{title}</h1>{body}</body></html>",
        product = escape(product),
        title = escape(title),
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header(
            "content-security-policy",
            "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        )
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .body(Body::Text(html))
        .expect("valid response")
}

/// The GET: what the link will do, and the button that does it.
pub fn confirm(product: &str, kind: AlertKind, email: &str, token: &str, preferences: &str) -> Response<Body> {
    let body = format!(
        "<p>Stop {words} by email to {email}? In-app notifications continue.</p>\
         <form method=\"post\" action=\"?token={token}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\" style=\"font-size:1rem;padding:.6rem 1.2rem;\">Stop these emails</button></form>\
         <p><a href=\"{prefs}\">Email preferences</a></p>",
        words = kind_words(kind),
        email = escape(email),
        token = escape(token),
        prefs = escape(preferences),
    );
    page(StatusCode::OK, product, "Stop these emails?", &body)
}

/// The POST, done.
pub fn done(product: &str, kind: AlertKind, email: &str, preferences: &str) -> Response<Body> {
    let body = format!(
        "<p>{email} gets no more {words} by email. In-app notifications continue.</p>\
         <p>Changed your mind? Turn them back on in <a href=\"{prefs}\">email preferences</a>.</p>",
        words = kind_words(kind),
        email = escape(email),
        prefs = escape(preferences),
    );
    page(StatusCode::OK, product, "Unsubscribed", &body)
}

/// A link that did not work, with the error's code, message and action.
pub fn failed(product: &str, d: &Described, preferences: &str) -> Response<Body> {
    let body = format!(
        "<p>{message}</p><p>{action}</p><p><a href=\"{prefs}\">Email preferences</a></p><p><small>Code: {code}</small></p>",
        message = escape(&d.message),
        action = escape(&d.action),
        prefs = escape(preferences),
        code = d.code,
    );
    page(d.status, product, "This link did not work", &body)
}
