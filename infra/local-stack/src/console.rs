//! The local console served at `/`: the reference integration of every call
//! a frontend makes (plain HTML, CSS and JavaScript; same origin only).

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("content-security-policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response")
}

/// The console's files, by path.
pub fn serve(path: &str) -> Option<Response<Full<Bytes>>> {
    match path {
        "/" | "/index.html" | "/reconnect" => Some(asset("text/html; charset=utf-8", INDEX)),
        "/console.js" => Some(asset("text/javascript; charset=utf-8", SCRIPT)),
        "/console.css" => Some(asset("text/css; charset=utf-8", STYLE)),
        _ => None,
    }
}
