//! File connections: create, upload (by a member, by an automation token,
//! by a presigned URL), list and read uploads, export, upload tokens.

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use super::{connection_id, csv_body, json_body, param};
use crate::domain::error::Error;
use crate::domain::ids::UploadId;
use crate::domain::upload::{Upload, UploadOptions, UploadState};
use crate::domain::Caller;
use crate::entry::http::{json, views, Params};
use crate::flows::file_uploads::{self, UploadParts};
use crate::flows::App;

fn upload_options(request: &Request) -> Result<UploadOptions, Error> {
    let q = request.query_string_parameters();
    UploadOptions::from_query(q.first("period"), q.first("import_valid_rows"))
}

/// Parsed here, judged by the flow after the caller and the connection.
fn upload_parts(request: &Request) -> UploadParts {
    UploadParts { options: upload_options(request), body: csv_body(request) }
}

pub(super) async fn create_connection(app: &App, caller: &Caller, request: &Request) -> Result<Response<Body>, Error> {
    let c = file_uploads::create(app, caller, json_body(request)?).await?;
    Ok(json(StatusCode::CREATED, &views::connection(&c, app.clock.now())))
}

pub(super) async fn upload(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let id = connection_id(params)?;
    let upload = file_uploads::upload_as_member(app, caller, &id, upload_parts(request)).await?;
    Ok(upload_response(&upload))
}

pub(super) async fn automation_upload(app: &App, request: &Request) -> Result<Response<Body>, Error> {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Error::Unauthenticated("an upload token is required"))?
        .trim();
    let upload = file_uploads::upload_with_token(app, token, upload_parts(request)).await?;
    Ok(upload_response(&upload))
}

pub(super) async fn presign(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let p = file_uploads::presign(app, caller, &connection_id(params)?, upload_options(request)).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"upload": views::upload(&p.upload), "upload_url": p.url, "method": "PUT", "expires_at": p.expires_at,
                "max_bytes": app.config.max_upload_bytes}),
    ))
}

pub(super) async fn list(
    app: &App,
    caller: &Caller,
    params: &Params,
    request: &Request,
) -> Result<Response<Body>, Error> {
    let id = connection_id(params)?;
    let list = file_uploads::list(app, caller, &id).await?;
    let (list, next) = super::paged(request, &format!("uploads|{id}"), list)?;
    let items: Vec<_> = list.iter().map(views::upload).collect();
    Ok(json(StatusCode::OK, &json!({"uploads": items, "next_cursor": next})))
}

pub(super) async fn get(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let id = connection_id(params)?;
    let upload_id = UploadId::parse(param(params, "upload_id"))?;
    let upload = file_uploads::get(app, caller, &id, &upload_id).await?;
    Ok(json(StatusCode::OK, &views::upload(&upload)))
}

pub(super) async fn export(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let csv = file_uploads::export_costs(app, caller, &connection_id(params)?).await?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(http::header::CONTENT_DISPOSITION, "attachment; filename=\"custom-costs.csv\"")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Body::Binary(csv))
        .expect("static response parts"))
}

pub(super) async fn issue_token(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let issued = file_uploads::issue_token(app, caller, &connection_id(params)?).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"token": issued.token, "created_at": issued.created_at, "expires_at": issued.expires_at,
        "note": "Shown once. Send it as `Authorization: Bearer <token>` to POST /v1/automation/uploads."}),
    ))
}

pub(super) async fn revoke_tokens(app: &App, caller: &Caller, params: &Params) -> Result<Response<Body>, Error> {
    let n = file_uploads::revoke_tokens(app, caller, &connection_id(params)?).await?;
    Ok(json(StatusCode::OK, &json!({"revoked": n})))
}

/// 201 ingested, 200 duplicate, 413/422 rejected with the report.
fn upload_response(upload: &Upload) -> Response<Body> {
    let view = views::upload(upload);
    match upload.state {
        UploadState::Ingested => json(StatusCode::CREATED, &view),
        UploadState::Duplicate => json(StatusCode::OK, &view),
        _ => {
            let (status, code, message, action) = match &upload.file_error {
                Some(e) if e.code == "file_too_large" || e.code == "too_many_rows" => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    e.code.clone(),
                    e.message.clone(),
                    "Split the file, or use POST /v1/connections/{id}/uploads/presigned for large files.".to_owned(),
                ),
                Some(e) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.code.clone(),
                    e.message.clone(),
                    "Fix the file as described, then upload it again. Nothing was imported.".to_owned(),
                ),
                None => {
                    let total = upload.report.as_ref().map_or(0, |r| r.error_total);
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rows".to_owned(), if total == 1 { "1 row has errors; nothing was imported.".to_owned() } else { format!("{total} rows have errors; nothing was imported.") },
                     "Fix the rows listed in upload.errors and upload again, or upload with import_valid_rows=true to import only the valid rows.".to_owned())
                }
            };
            json(status, &json!({"error": {"code": code, "message": message, "action": action}, "upload": view}))
        }
    }
}
