//! The page served at `/` by the local stack.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

const INDEX: &str = include_str!("../console/index.html");

pub fn index() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(
            "content-security-policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
        )
        .body(Full::new(Bytes::from_static(INDEX.as_bytes())))
        .expect("static response")
}
