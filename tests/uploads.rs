//! Custom costs uploads: a good file, each kind of bad row and bad file,
//! all-or-nothing, import of valid rows on request, duplicates, period
//! replacement, automation tokens, the schedule warning, spreadsheet-safe
//! export, and the large-file path by presigned URL (local and moto's S3).

use serde_json::{json, Value};
use shared::domain::error::SinkError;

use crate::harness::{error_code, spawn_app_on, spawn_app_with, Backend, TestApp};

const GOOD: &str = "date,category,description,amount,currency,sku\n\
2026-11-01,shipping,\"Courier, express\",12.50,EUR,SKU-1\n\
2026-11-02,tools,=HYPERLINK(\"http://evil\"),-3.25,USD,\n\
2026-11-03,agency fees,Monthly retainer,1500,EUR,@risk\n";

async fn file_connection(app: &TestApp, token: &str, extra: Value) -> String {
    let mut body = json!({"platform": "custom_costs", "name": "Costs"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let r = app.http.post(app.url("/v1/connections/file-upload")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["status"]["state"], "pending_authorization", "waiting for the first file");
    c["id"].as_str().unwrap().to_owned()
}

async fn upload(app: &TestApp, token: &str, id: &str, query: &str, csv: impl Into<Vec<u8>>) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(&format!("/v1/connections/{id}/uploads{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.into())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn export(app: &TestApp, token: &str, id: &str) -> String {
    let r =
        app.http.get(app.url(&format!("/v1/connections/{id}/costs/export"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    r.text().await.unwrap()
}

/// `POST …/uploads/presigned`: the upload waiting for its file, and its URL.
async fn presign(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .http
        .post(app.url(&format!("/v1/connections/{id}/uploads/presigned")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn connection(app: &TestApp, token: &str, id: &str) -> Value {
    app.get_json(&format!("/v1/connections/{id}"), token).await
}

both!(
    a_good_file_is_ingested_once_and_exported_safely,
    a_large_file_goes_through_a_presigned_url,
    a_presigned_file_over_the_limit_is_refused_before_it_is_read
);

async fn a_good_file_is_ingested_once_and_exported_safely(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let t = app.token("ws_u", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let (status, up) = upload(&app, &t, &id, "", GOOD).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(
        (up["state"].as_str(), up["rows"].as_u64(), up["valid_rows"].as_u64()),
        (Some("ingested"), Some(3), Some(3))
    );
    let c = connection(&app, &t, &id).await;
    assert_eq!(c["status"]["state"], "connected");
    assert!(c["last_synced_at"].is_string(), "the last upload time shows");
    assert_eq!(c["progress"]["costs"]["records"], 3);

    let csv = export(&app, &t, &id).await;
    assert!(
        csv.contains("'=HYPERLINK(\"\"http://evil\"\")") || csv.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
        "{csv}"
    );
    assert!(csv.contains("'@risk"));
    assert!(csv.contains(",12.50,\"EUR\",") && csv.contains(",-3.25,\"USD\","), "exact decimals: {csv}");
    assert_eq!(csv.lines().count(), 4);

    // The same bytes again: a duplicate, nothing new.
    let (status, dup) = upload(&app, &t, &id, "", GOOD).await;
    assert_eq!((status, dup["state"].as_str()), (200, Some("duplicate")));
    assert_eq!(dup["duplicate_of"], up["id"]);
    assert_eq!(export(&app, &t, &id).await.lines().count(), 4);
}

async fn a_large_file_goes_through_a_presigned_url(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let t = app.token("ws_big", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    // Over the direct limit.
    let mut big = String::from("date,category,description,amount,currency\n");
    let mut n = 0;
    while big.len() < 6 * 1024 * 1024 {
        big.push_str(&format!(
            "2026-11-{:02},shipping,Parcel {n} to a customer far away,{}.{:02},EUR\n",
            n % 28 + 1,
            n % 500,
            n % 100
        ));
        n += 1;
    }
    let (status, r) = upload(&app, &t, &id, "", big.clone()).await;
    assert_eq!((status, error_code(&r).as_str()), (413, "payload_too_large"));

    let presigned = presign(&app, &t, &id).await;
    assert_eq!(presigned["upload"]["state"], "awaiting_file");
    let url = presigned["upload_url"].as_str().unwrap();
    let put = app.http.put(url).body(big.clone()).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    if backend == Backend::Moto {
        // S3 tells the processor by an EventBridge event.
        let upload_id = presigned["upload"]["id"].as_str().unwrap();
        let event = json!({"detail-type": "Object Created", "source": "aws.s3",
                           "detail": {"object": {"key": format!("uploads/ws_big/{id}/{upload_id}.csv")}}});
        let done = shared::entry::lambda::upload_landed(&app.stack.app, event.clone()).await.unwrap();
        assert_eq!(done["state"], "ingested");
        // Redelivered: nothing happens twice.
        assert_eq!(shared::entry::lambda::upload_landed(&app.stack.app, event).await.unwrap()["state"], "ingested");
    }
    let upload_id = presigned["upload"]["id"].as_str().unwrap();
    let got: Value = app.get_json(&format!("/v1/connections/{id}/uploads/{upload_id}"), &t).await;
    assert_eq!(got["state"], "ingested", "{got}");
    assert_eq!(got["valid_rows"], n);
    assert_eq!(got["source"], "presigned");
    assert_eq!(connection(&app, &t, &id).await["progress"]["costs"]["records"], n);
    // Processed: the raw file is gone, and the URL used again (within its
    // 15 minutes) changes nothing.
    let raw = format!("uploads/ws_big/{id}/{upload_id}.csv");
    assert!(app.stack.app.sink.get(&raw).await.unwrap().is_none(), "the processed raw file is deleted");
    let replay = app.http.put(url).body("date,category,description,amount,currency\n").send().await.unwrap();
    if backend == Backend::Moto {
        assert!(replay.status().is_success());
        let event = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": raw}}});
        shared::entry::lambda::upload_landed(&app.stack.app, event).await.unwrap();
    }
    assert!(app.stack.app.sink.get(&raw).await.unwrap().is_none(), "a replayed file is discarded");
    let again: Value = app.get_json(&format!("/v1/connections/{id}/uploads/{upload_id}"), &t).await;
    assert_eq!((again["state"].clone(), again["valid_rows"].clone()), (json!("ingested"), json!(n)));
}

async fn a_presigned_file_over_the_limit_is_refused_before_it_is_read(backend: Backend) {
    let app = spawn_app_on(backend, &[("MAX_UPLOAD_BYTES", "1000")]).await;
    let t = app.token("ws_lim", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let presigned = presign(&app, &t, &id).await;
    assert_eq!(presigned["max_bytes"], 1000, "the limit is announced");
    let upload_id = presigned["upload"]["id"].as_str().unwrap();
    // S3 takes a presigned PUT of any size: the processor checks the size
    // before it reads a byte.
    let key = format!("uploads/ws_lim/{id}/{upload_id}.csv");
    let big = format!("date,category,description,amount,currency\n{}", "2026-11-01,x,y,1.00,EUR\n".repeat(100));
    app.stack.app.sink.put(&key, bytes::Bytes::from(big), "text/csv").await.unwrap();
    let done = shared::flows::file_uploads::process_landed(&app.stack.app, &key).await.unwrap().unwrap();
    assert_eq!(done.state, shared::domain::upload::UploadState::Rejected);
    assert_eq!(done.file_error.unwrap().code, "file_too_large");
    assert!(app.stack.app.sink.get(&key).await.unwrap().is_none(), "the refused file is deleted");
}

#[tokio::test]
async fn the_export_quotes_text_and_neutralises_full_width_formulas() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_q", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let csv = "date,category,description,amount,currency\n2026-11-01,shipping,x;=1+1,1.00,EUR\n2026-11-02,shipping,\u{FF1D}1+1,2.00,EUR\n";
    let (status, up) = upload(&app, &t, &id, "", csv).await;
    assert_eq!(status, 201, "{up}");
    let out = export(&app, &t, &id).await;
    assert!(out.contains("\"x;=1+1\""), "a ;-separated formula stays inside one quoted cell: {out}");
    assert!(out.contains("\"'\u{FF1D}1+1\""), "full-width = is neutralised: {out}");
}

#[tokio::test]
async fn bad_rows_reject_the_whole_file_unless_valid_rows_are_asked_for() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_bad", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let csv = "date,category,amount,currency\n2026-11-01,shipping,10.00,EUR\n2026-11-31,shipping,10,EUR\n2026-11-02,,10,EUR\n2026-11-03,x,1,2,EUR\n2026-11-04,x,\"1,000.00\",EUR\n2026-11-05,x,10,euro\n";
    let (status, r) = upload(&app, &t, &id, "", csv).await;
    assert_eq!((status, error_code(&r).as_str()), (422, "invalid_rows"));
    let errors: Vec<(u64, Option<&str>, &str)> = r["upload"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_str(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            (3, Some("date"), "invalid_date"),
            (4, Some("category"), "required"),
            (5, None, "ragged_row"),
            (6, Some("amount"), "invalid_amount"),
            (7, Some("currency"), "invalid_currency")
        ]
    );
    assert_eq!(r["upload"]["error_total"], 5);
    assert_eq!(export(&app, &t, &id).await.lines().count(), 1, "nothing imported");
    assert_eq!(connection(&app, &t, &id).await["status"]["state"], "pending_authorization");

    let (status, r) = upload(&app, &t, &id, "?import_valid_rows=true", csv).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!((r["valid_rows"].as_u64(), r["error_total"].as_u64()), (Some(1), Some(5)));
    assert_eq!(export(&app, &t, &id).await.lines().count(), 2);
}

#[tokio::test]
async fn bad_files_get_clear_codes() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_bf", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let utf16: Vec<u8> =
        [0xFF, 0xFE].into_iter().chain("date,amount".encode_utf16().flat_map(|u| u.to_le_bytes())).collect();
    for (body, status, code) in [
        (Vec::new(), 422, "empty_file"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), 422, "binary_file"),
        (utf16, 422, "wrong_encoding"),
        (b"date,category,amount\n2026-11-01,x,1\n".to_vec(), 422, "invalid_header"),
        (b"date,category,amount,currency\n".to_vec(), 422, "no_rows"),
    ] {
        let (s, r) = upload(&app, &t, &id, "", body).await;
        assert_eq!((s, error_code(&r).as_str()), (status, code));
        assert_eq!(r["upload"]["state"], "rejected");
    }
    let r = app
        .http
        .post(app.url(&format!("/v1/connections/{id}/uploads")))
        .bearer_auth(&t)
        .json(&json!({"rows": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (s, r) = upload(&app, &t, &id, "?period=2026-13", GOOD).await;
    assert_eq!((s, error_code(&r).as_str()), (422, "invalid_input"));
    // Another workspace cannot upload to it.
    let other = app.token("ws_other", "u", "admin").await;
    let (s, _) = upload(&app, &other, &id, "", GOOD).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn an_upload_for_a_period_replaces_the_earlier_one() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_p", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let first = "date,category,amount,currency\n2026-11-01,shipping,10,EUR\n2026-11-02,shipping,20,EUR\n";
    let second = "date,category,amount,currency\n2026-11-01,shipping,11,EUR\n";
    let (_, a) = upload(&app, &t, &id, "?period=2026-11", first).await;
    let (status, b) = upload(&app, &t, &id, "?period=2026-11", second).await;
    assert_eq!(status, 201);
    let csv = export(&app, &t, &id).await;
    assert!(csv.contains(",11,\"EUR\",") && !csv.contains(",10,\"EUR\","), "{csv}");
    let a_now: Value = app.get_json(&format!("/v1/connections/{id}/uploads/{}", a["id"].as_str().unwrap()), &t).await;
    assert_eq!((a_now["state"].as_str(), &a_now["replaced_by"]), (Some("replaced"), &b["id"]));
    // Rows must fall in the period.
    let (status, r) =
        upload(&app, &t, &id, "?period=2026-11", "date,category,amount,currency\n2026-12-01,x,1,EUR\n").await;
    assert_eq!(status, 422);
    assert_eq!(r["upload"]["errors"][0]["code"], "outside_period");
    // The earlier content, uploaded again, is not a duplicate of a replaced upload.
    let (status, again) = upload(&app, &t, &id, "?period=2026-11", first).await;
    assert_eq!((status, again["state"].as_str()), (201, Some("ingested")));
    let list: Value = app.get_json(&format!("/v1/connections/{id}/uploads"), &t).await;
    assert_eq!(list["uploads"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn automation_tokens_upload_for_one_connection_until_revoked() {
    let app = spawn_app_with(&[]).await;
    let admin = app.token("ws_a", "a", "admin").await;
    let staff = app.token("ws_a", "s", "staff").await;
    let id = file_connection(&app, &admin, json!({"upload_schedule": "monthly"})).await;
    let issue = |token: String| {
        app.http.post(app.url(&format!("/v1/connections/{id}/upload-tokens"))).bearer_auth(token).send()
    };
    assert_eq!(issue(staff.clone()).await.unwrap().status(), 403);
    let r = issue(admin.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let issued = r.json::<Value>().await.unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    let expires: chrono::DateTime<chrono::Utc> = issued["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((expires - app.clock_now()).num_days(), 365, "a year, shown at issue");
    assert!(!app.dump_state().await.contains(&token), "only a hash is kept");
    let push = |token: &str| {
        app.http
            .post(app.url("/v1/automation/uploads"))
            .bearer_auth(token.to_owned())
            .header("content-type", "text/csv")
            .body(GOOD)
            .send()
    };
    let r = push(&token).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["source"], "automation");
    assert_eq!(push("upl_not-a-real-token").await.unwrap().status(), 401);
    assert_eq!(push(&admin).await.unwrap().status(), 401, "a member JWT is not an upload token");

    // Monthly schedule: overdue once a month and a grace have passed.
    assert_eq!(connection(&app, &admin, &id).await["upload_overdue"], false);
    app.clock.advance(chrono::Duration::days(36));
    assert_eq!(connection(&app, &admin, &id).await["upload_overdue"], true);

    let r = app
        .http
        .delete(app.url(&format!("/v1/connections/{id}/upload-tokens")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(push(&token).await.unwrap().status(), 401);

    // A token stops at its expiry...
    let r = issue(admin.clone()).await.unwrap();
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(push(&token).await.unwrap().status(), 200, "the same file again: a duplicate");
    app.clock.advance(chrono::Duration::days(366));
    let r = push(&token).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("expired"));
    // ...and dies with its connection.
    let r = issue(admin.clone()).await.unwrap();
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let r = app.http.delete(app.url(&format!("/v1/connections/{id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(push(&token).await.unwrap().status(), 401);
    assert!(!app.dump_state().await.contains("UPTOKEN"), "no token item outlives its connection");
}

#[tokio::test]
async fn an_upload_schedule_is_cleared_with_null() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_null", "u", "staff").await;
    let id = file_connection(&app, &t, json!({"upload_schedule": "monthly"})).await;
    let r = app
        .http
        .patch(app.url(&format!("/v1/connections/{id}")))
        .bearer_auth(&t)
        .json(&json!({"upload_schedule": null}))
        .send()
        .await
        .unwrap();
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["upload_schedule"], Value::Null, "{c}");
    // An absent field changes nothing.
    let r = app
        .http
        .patch(app.url(&format!("/v1/connections/{id}")))
        .bearer_auth(&t)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["upload_schedule"], Value::Null);
}

/// A removed connection's uploads are gone with it (schemathesis found one
/// still readable).
#[tokio::test]
async fn a_removed_connections_uploads_are_not_readable() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_gone", "u", "admin").await;
    let id = file_connection(&app, &t, json!({})).await;
    let (status, up) = upload(&app, &t, &id, "", "date,category,amount,currency\n2026-11-01,shipping,10,EUR\n").await;
    assert_eq!(status, 201, "{up}");
    let path = format!("/v1/connections/{id}/uploads/{}", up["id"].as_str().unwrap());
    assert_eq!(app.http.get(app.url(&path)).bearer_auth(&t).send().await.unwrap().status(), 200);
    let deleted = app.http.delete(app.url(&format!("/v1/connections/{id}"))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let after = app.http.get(app.url(&path)).bearer_auth(&t).send().await.unwrap();
    assert_eq!(after.status(), 404);
}

/// Uploads left waiting an hour (the sweep): one whose file landed but whose
/// event was lost is processed; one whose file never came ends
/// `not_processed`; neither is looked at again.
#[tokio::test]
async fn the_sweep_ends_uploads_that_waited_an_hour() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_wait", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let upload_id = |v: Value| v["upload"]["id"].as_str().unwrap().to_owned();
    let (landed, never) = (upload_id(presign(&app, &t, &id).await), upload_id(presign(&app, &t, &id).await));
    // The file lands; its S3 event is lost.
    let key = format!("uploads/ws_wait/{id}/{landed}.csv");
    app.stack.app.sink.put(&key, bytes::Bytes::from(GOOD), "text/csv").await.unwrap();
    let app_ = &app.stack.app;
    assert_eq!(shared::flows::sweep::sweep(app_).await.unwrap().uploads_expired, 0, "within the hour");
    app.clock.advance(chrono::Duration::minutes(shared::store::keys::UPLOAD_WAIT_MINUTES + 1));
    let state = |upload: String| {
        let (app, t, id) = (&app, &t, &id);
        async move { app.get_json(&format!("/v1/connections/{id}/uploads/{upload}"), t).await }
    };
    // Its time for processing files spent, the sweep leaves the landed file
    // for the next one (and still ends the one that never came).
    let spent = std::time::Duration::ZERO;
    assert_eq!(shared::flows::file_uploads::expire_waiting(app_, spent).await.unwrap(), 1);
    assert_eq!(state(landed.clone()).await["state"], "awaiting_file", "deferred, not lost");
    assert_eq!(shared::flows::sweep::sweep(app_).await.unwrap().uploads_expired, 1);
    assert_eq!(state(landed).await["state"], "ingested", "the landed file is processed");
    let ended = state(never).await;
    assert_eq!(
        (ended["state"].as_str(), ended["file_error"]["code"].as_str()),
        (Some("rejected"), Some("not_processed"))
    );
    assert_eq!(shared::flows::sweep::sweep(app_).await.unwrap().uploads_expired, 0, "ended uploads leave the index");
}

/// The record sink, refusing to look at one object (as S3 answers a role
/// that may not read it: 403).
struct RefusesOne {
    inner: std::sync::Arc<dyn shared::ports::RecordSink>,
    key: String,
}

#[async_trait::async_trait]
impl shared::ports::RecordSink for RefusesOne {
    async fn put(&self, key: &str, body: bytes::Bytes, content_type: &str) -> Result<(), SinkError> {
        self.inner.put(key, body, content_type).await
    }
    async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>, SinkError> {
        self.inner.get(key).await
    }
    async fn size(&self, key: &str) -> Result<Option<u64>, SinkError> {
        if key == self.key {
            return Err(SinkError::Unavailable("S3 HeadObject answered 403 Forbidden: no error code".into()));
        }
        self.inner.size(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        self.inner.delete(key).await
    }
    async fn open(&self, key: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError> {
        self.inner.open(key).await
    }
    async fn presign_put(&self, key: &str, expires_in: std::time::Duration) -> Result<String, SinkError> {
        self.inner.presign_put(key, expires_in).await
    }
}

/// An upload the sweep cannot look at does not hold up the others: they
/// are ended, and it is ended by a later sweep that can.
#[tokio::test]
async fn an_upload_the_sweep_cannot_look_at_does_not_hold_up_the_others() {
    let app = spawn_app_with(&[]).await;
    let t = app.token("ws_wait2", "u", "staff").await;
    let id = file_connection(&app, &t, json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(presign(&app, &t, &id).await["upload"]["id"].as_str().unwrap().to_owned());
    }
    app.clock.advance(chrono::Duration::minutes(shared::store::keys::UPLOAD_WAIT_MINUTES + 1));
    let mut refusing = app.stack.app.clone();
    // Whichever the store lists first, one of the three.
    refusing.sink = std::sync::Arc::new(RefusesOne {
        inner: app.stack.app.sink.clone(),
        key: format!("uploads/ws_wait2/{id}/{}.csv", ids[1]),
    });
    assert_eq!(shared::flows::sweep::sweep(&refusing).await.unwrap().uploads_expired, 2, "the other two end");
    let paths: Vec<String> = ids.iter().map(|u| format!("/v1/connections/{id}/uploads/{u}")).collect();
    assert_eq!(app.get_json(&paths[1], &t).await["state"], "awaiting_file", "left for the next sweep");
    assert_eq!(app.get_json(&paths[0], &t).await["state"], "rejected");
    assert_eq!(app.get_json(&paths[2], &t).await["state"], "rejected");
    assert_eq!(shared::flows::sweep::sweep(&app.stack.app).await.unwrap().uploads_expired, 1);
    assert_eq!(app.get_json(&paths[1], &t).await["state"], "rejected");
}
