//! `PUT /local/uploads/{key}?expires=..&signature=..`: the local stand-in
//! for a presigned S3 upload. The body streams to the data folder (never
//! buffered whole), then the file is processed as an S3 "Object Created"
//! event would have it processed.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

use shared::entry::http::{self as api, error};
use shared::Error;

use crate::gateway::Reply;
use crate::LocalStack;

fn fail(e: &Error) -> Reply {
    let (parts, body) = error::response(e).into_parts();
    let bytes = match body {
        lambda_http::Body::Text(t) => Bytes::from(t),
        _ => Bytes::new(),
    };
    Response::from_parts(parts, Full::new(bytes))
}

pub async fn presigned_put(stack: &LocalStack, request: Request<Incoming>) -> Reply {
    let Some(sink) = &stack.embedded_sink else { return fail(&Error::RouteNotFound) };
    let key = request.uri().path().trim_start_matches("/local/uploads/").to_owned();
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let expires = query.get("expires").and_then(|e| e.parse().ok()).unwrap_or(0);
    let signature = query.get("signature").map(String::as_str).unwrap_or("");
    let now = chrono::Utc::now().timestamp();
    if !sink.verify_presigned(&key, expires, signature, now) {
        return fail(&Error::Unauthenticated("the upload URL is invalid or expired"));
    }
    let limit = stack.app.config.max_upload_bytes;
    let mut body = request.into_body();
    let mut written: u64 = 0;
    match sink.path_of(&key) {
        Some(path) => {
            if let Some(dir) = path.parent() {
                if let Err(e) = tokio::fs::create_dir_all(dir).await {
                    return fail(&Error::Sink(shared::domain::error::SinkError::Unavailable(e.to_string())));
                }
            }
            let tmp = path.with_extension("part");
            let Ok(mut file) = tokio::fs::File::create(&tmp).await else {
                return fail(&Error::Sink(shared::domain::error::SinkError::Unavailable("cannot write".into())));
            };
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return fail(&Error::MalformedBody("the upload was interrupted".into())) };
                if let Some(chunk) = frame.data_ref() {
                    written += chunk.len() as u64;
                    if written > limit {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return fail(&Error::PayloadTooLarge { limit: limit as usize });
                    }
                    if file.write_all(chunk).await.is_err() {
                        return fail(&Error::Sink(shared::domain::error::SinkError::Unavailable(
                            "write failed".into(),
                        )));
                    }
                }
            }
            if file.flush().await.is_err() || tokio::fs::rename(&tmp, &path).await.is_err() {
                return fail(&Error::Sink(shared::domain::error::SinkError::Unavailable("write failed".into())));
            }
        }
        None => {
            // In memory (tests without a data folder).
            let Ok(collected) = http_body_util::Limited::new(body, limit as usize).collect().await else {
                return fail(&Error::PayloadTooLarge { limit: limit as usize });
            };
            if let Err(e) = shared::ports::RecordSink::put(&**sink, &key, collected.to_bytes(), "text/csv").await {
                return fail(&Error::Sink(e));
            }
        }
    }
    match shared::flows::file_uploads::process_landed(&stack.app, &key).await {
        Ok(Some(upload)) => {
            let (parts, body) =
                api::json(StatusCode::OK, &serde_json::json!({"upload_id": upload.id, "state": upload.state}))
                    .into_parts();
            let bytes = match body {
                lambda_http::Body::Text(t) => Bytes::from(t),
                _ => Bytes::new(),
            };
            Response::from_parts(parts, Full::new(bytes))
        }
        Ok(None) => fail(&Error::NotFound { kind: "upload" }),
        Err(e) => fail(&e),
    }
}
