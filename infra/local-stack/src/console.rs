//! The local console served at `/`: a development sign-in, the drop-in
//! `<connections-panel>` of `frontend/` (its built ES modules, committed in
//! `frontend/dist/`: `/panel.js`, `/sdk.js` and the code they share,
//! `/shared.js`) and the spend table; same
//! origin only.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");
const PANEL: &str = include_str!("../../../frontend/dist/panel.js");
const SDK: &str = include_str!("../../../frontend/dist/sdk.js");
const SHARED: &str = include_str!("../../../frontend/dist/shared.js");

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
        // The pages emails' buttons lead to (APP_BASE_URL is the console locally).
        "/" | "/index.html" | "/reconnect" | "/replace-key" | "/upload" | "/sync" | "/settings/email" => {
            Some(asset("text/html; charset=utf-8", INDEX))
        }
        "/console.js" => Some(asset("text/javascript; charset=utf-8", SCRIPT)),
        "/console.css" => Some(asset("text/css; charset=utf-8", STYLE)),
        "/panel.js" => Some(asset("text/javascript; charset=utf-8", PANEL)),
        "/sdk.js" => Some(asset("text/javascript; charset=utf-8", SDK)),
        "/shared.js" => Some(asset("text/javascript; charset=utf-8", SHARED)),
        _ => None,
    }
}
