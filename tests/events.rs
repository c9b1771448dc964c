//! Every function's handler, fed the JSON events in `events/` exactly as
//! Lambda would deliver them.

use aws_lambda_events::event::sqs::SqsEvent;
use std::path::{Path, PathBuf};

use shared::entry::http::{self as api, Function};
use shared::entry::lambda as jobs;

use crate::harness::{config, embedded_app, error_code};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(events_dir().join(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

/// (fixture, function, expected status, expected error code)
#[rustfmt::skip]
const HTTP_CASES: &[(&str, Function, u16, Option<&str>)] = &[
    ("connections-api/get-health.json", Function::ConnectionsApi, 200, None),
    ("connections-api/get-providers.json", Function::ConnectionsApi, 200, None),
    ("connections-api/list-connections.json", Function::ConnectionsApi, 200, None),
    ("connections-api/list-connections-no-claims.json", Function::ConnectionsApi, 401, Some("unauthenticated")),
    ("connections-api/get-connection-unknown.json", Function::ConnectionsApi, 404, Some("not_found")),
    ("connections-api/delete-connection-viewer.json", Function::ConnectionsApi, 403, Some("forbidden")),
    ("connections-api/list-authorizations.json", Function::ConnectionsApi, 200, None),
    ("connections-api/list-notifications.json", Function::ConnectionsApi, 200, None),
    ("connect-start/start-sandbox.json", Function::ConnectStart, 200, None),
    ("oauth-callback/callback-denied.json", Function::OauthCallback, 400, None),
    // The key's shape is checked before any platform request.
    ("api-key-connect/connect-klaviyo.json", Function::ApiKeyConnect, 422, Some("invalid_input")),
    ("csv-upload/upload-costs.json", Function::CsvUpload, 404, Some("not_found")),
    // Service routes: API Gateway's IAM identity, the workspace header.
    ("service-api/proxy-without-iam.json", Function::ServiceApi, 401, Some("unauthenticated")),
    ("service-api/proxy-without-workspace.json", Function::ServiceApi, 401, Some("unauthenticated")),
    ("service-api/proxy-unknown-connection.json", Function::ServiceApi, 404, Some("not_found")),
    ("service-api/credentials-off.json", Function::ServiceApi, 403, Some("credentials_route_disabled")),
];

const SQS_CASES: &[&str] =
    &["sync-worker/batch-with-poison.json", "notifier/batch.json", "notifier/email-feedback.json"];
const OTHER_CASES: &[&str] = &["expiry-sweep/scheduled.json", "upload-processor/object-created.json"];

fn body_json(r: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    match r.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        lambda_http::Body::Empty => serde_json::Value::Null,
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn http_events_reach_their_handlers() {
    let (app, _) =
        embedded_app(config(&[("SANDBOX_PLATFORMS", "true"), ("ALLOWED_ORIGINS", "https://app.example.com")]));
    local_stack::seed_sandbox_app(&app).await.unwrap();
    for (file, function, status, code) in HTTP_CASES {
        let request = lambda_http::request::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let response = api::handle(&app, *function, request).await;
        assert_eq!(response.status().as_u16(), *status, "{file}");
        if *function == Function::OauthCallback {
            // An HTML page that tells the opener; an unknown state tells nobody.
            assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8", "{file}");
            continue;
        }
        let body = body_json(&response);
        if let Some(code) = code {
            assert_eq!(error_code(&body), *code, "{file}");
        }
        assert_eq!(response.headers()["content-type"], "application/json", "{file}");
    }
}

#[tokio::test]
async fn a_function_serves_only_its_own_routes() {
    let (app, _) = embedded_app(config(&[]));
    let request = lambda_http::request::from_str(&read("connections-api/get-health.json")).unwrap();
    let response = api::handle(&app, Function::ConnectStart, request).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn sqs_batches_report_exactly_the_failed_messages() {
    let (app, _) = embedded_app(config(&[]));
    let event: SqsEvent = serde_json::from_str(&read("sync-worker/batch-with-poison.json")).unwrap();
    let response = jobs::sync_worker(
        &app,
        event,
        shared::flows::sync::Budget::until(std::time::Instant::now() + std::time::Duration::from_secs(60)),
    )
    .await;
    let mut failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    failed.sort();
    assert_eq!(failed, ["m-poison", "m-unknown"]);

    let event: SqsEvent = serde_json::from_str(&read("notifier/batch.json")).unwrap();
    let response = jobs::notifier(&app, event).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["n-poison"]);
    // The response is what Lambda expects back.
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json, serde_json::json!({"batchItemFailures": [{"itemIdentifier": "n-poison"}]}));
}

/// The template's rule puts SES's bounce and complaint events on the notify
/// queue in this shape (its InputTransformer); the notifier suppresses the
/// addresses (a complaint's bounce type is empty).
#[tokio::test]
async fn ses_feedback_on_the_notify_queue_suppresses_the_addresses() {
    let (app, _) = embedded_app(config(&[]));
    let event: SqsEvent = serde_json::from_str(&read("notifier/email-feedback.json")).unwrap();
    let response = jobs::notifier(&app, event).await;
    assert!(response.batch_item_failures.is_empty());
    for (address, reason) in [("gone@example.com", "bounced"), ("Angry@Example.com", "complained")] {
        let s = app.repo.email_suppression(address).await.unwrap();
        assert_eq!(s.map(|s| s.reason).as_deref(), Some(reason), "{address}");
    }
}

#[tokio::test]
async fn the_scheduled_sweep_event_runs_a_sweep() {
    let (app, _) = embedded_app(config(&[]));
    let _event: serde_json::Value = serde_json::from_str(&read("expiry-sweep/scheduled.json")).unwrap();
    let report = shared::flows::sweep::sweep(&app).await.unwrap();
    assert_eq!(report.items_read, 0);
}

#[tokio::test]
async fn an_object_created_event_no_upload_expects_is_ignored() {
    let (app, _) = embedded_app(config(&[]));
    let event: serde_json::Value = serde_json::from_str(&read("upload-processor/object-created.json")).unwrap();
    let out = jobs::upload_landed(&app, event).await.unwrap();
    assert!(out["ignored"].as_str().unwrap().starts_with("uploads/ws_demo/"));
    assert!(jobs::upload_landed(&app, serde_json::json!({"detail": {}})).await.is_err());
}

#[test]
fn every_event_fixture_is_exercised() {
    let mut covered: Vec<String> = HTTP_CASES.iter().map(|c| c.0.to_owned()).collect();
    covered.extend(SQS_CASES.iter().chain(OTHER_CASES).map(|s| s.to_string()));
    let mut found = Vec::new();
    for dir in std::fs::read_dir(events_dir()).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            found.push(format!(
                "{}/{}",
                dir.file_name().unwrap().to_string_lossy(),
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    for f in &found {
        assert!(covered.contains(f), "events/{f} is not used by a test");
    }
}
