//! The local stack as `cargo run -p local-stack` boots it: embedded state
//! under a data folder that survives a restart, or the AWS adapters against
//! an endpoint (moto) with the resources provisioned.

use serde_json::{json, Value};
use std::collections::HashMap;

async fn boot(env: HashMap<&'static str, String>) -> (String, std::sync::Arc<local_stack::LocalStack>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let booted = local_stack::boot(&listener, |k| env.get(k).cloned()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    assert!(booted.banner.contains(&base), "{}", booted.banner);
    let stack = booted.stack.clone();
    tokio::spawn(local_stack::serve(listener, booted.stack));
    (base, stack)
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .post(format!("{base}/dev/token"))
        .json(&json!({"workspace_id": "ws_boot", "user_id": "u", "role": "admin", "email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// The sandbox OAuth flow as a browser runs it: start, approve as
/// `account`, follow the callback. Returns the callback page.
async fn connect_sandbox(http: &reqwest::Client, base: &str, token: &str, body: Value, account: &str) -> String {
    let started: Value = http
        .post(format!("{base}/v1/connect/start"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authorize = crate::harness::launch(http, &started).await;
    let r = http.get(format!("{authorize}&auto_approve={account}")).send().await.unwrap();
    http.get(r.headers()["location"].to_str().unwrap()).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn embedded_state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("connections-boot-{}", uuid::Uuid::new_v4().simple()));
    let env =
        HashMap::from([("DATA_DIR", dir.display().to_string()), ("ALLOWED_ORIGINS", "https://app.example.com".into())]);
    let http = crate::harness::browser();

    let (base, _first) = boot(env.clone()).await;
    let t = token(&http, &base).await;
    let page = connect_sandbox(
        &http,
        &base,
        &t,
        json!({"platform": "sandbox_oauth", "name": "Kept", "return_to": "https://app.example.com"}),
        "acct_kept",
    )
    .await;
    assert!(page.contains("\"status\":\"connected\""), "{page}");

    // A second stack on the same folder: the token (same dev key), the
    // connection and its secret are all still there.
    let (base2, second) = boot(env).await;
    let list: Value =
        http.get(format!("{base2}/v1/connections")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["connections"][0]["name"], "Kept", "{list}");
    let auths = second
        .app
        .repo
        .list::<shared::domain::Authorization>(&shared::domain::ids::WorkspaceId::parse("ws_boot").unwrap())
        .await
        .unwrap();
    assert!(second.app.vault.get(&auths[0].value.secret.0).await.unwrap().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_aws_backend_provisions_and_serves_against_an_endpoint() {
    let stage = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let env = HashMap::from([
        ("CONNECTIONS_BACKEND", "aws".to_owned()),
        ("AWS_ENDPOINT_URL", crate::harness::moto().to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("STAGE", stage),
    ]);
    let (base, stack) = boot(env).await;
    assert!(matches!(stack.app.config.backend, shared::config::Backend::Aws { .. }));
    let http = crate::harness::client();
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
    let t = token(&http, &base).await;
    let r = http.get(format!("{base}/v1/connections")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["connections"], json!([]));
}

#[tokio::test]
async fn a_sandbox_connection_syncs_to_connected_through_the_queue() {
    let env = HashMap::from([
        (
            "DATA_DIR",
            std::env::temp_dir()
                .join(format!("connections-sync-{}", uuid::Uuid::new_v4().simple()))
                .display()
                .to_string(),
        ),
        ("ALLOWED_ORIGINS", "https://app.example.com".into()),
    ]);
    let http = crate::harness::browser();
    let (base, stack) = boot(env.clone()).await;
    let t = token(&http, &base).await;
    let page = connect_sandbox(
        &http,
        &base,
        &t,
        json!({"platform": "sandbox_oauth", "name": "Sandbox store", "return_to": "https://app.example.com"}),
        "acct_sync",
    )
    .await;
    assert!(page.contains("connected"));
    // Whatever the background consumer has not taken yet, take now.
    local_stack::workers::drain(&stack, shared::ports::QueueKind::Sync).await.unwrap();
    let list: Value =
        http.get(format!("{base}/v1/connections")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    let c = &list["connections"][0];
    // The background consumer may still hold the last job: wait for its lease.
    let id = c["id"].as_str().unwrap().to_owned();
    let mut view = c.clone();
    for _ in 0..200 {
        if view["status"]["state"] == "connected" {
            break;
        }
        tokio::task::yield_now().await;
        local_stack::workers::drain(&stack, shared::ports::QueueKind::Sync).await.unwrap();
        view =
            http.get(format!("{base}/v1/connections/{id}")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    }
    assert_eq!(view["status"]["state"], "connected", "{view}");
    assert_eq!(view["progress"]["orders"]["records"], 2500);
    assert_eq!(view["progress"]["customers"]["records"], 2500);
    assert_eq!(view["progress"]["orders"]["percent"], 100);
    // The daily spend report: its date windows, newest first, all read.
    let spend = &view["progress"]["ad_spend"];
    assert_eq!((spend["windows_done"].as_u64(), spend["windows_planned"].as_u64()), (Some(5), Some(5)), "{spend}");
    assert_eq!(spend["percent"], 100);
}

#[tokio::test]
async fn the_whole_journey_connect_revoke_alert_reconnect_resume() {
    let dir = std::env::temp_dir().join(format!("connections-outbox-{}", uuid::Uuid::new_v4().simple()));
    let env = HashMap::from([
        ("DATA_DIR", dir.display().to_string()),
        ("ALLOWED_ORIGINS", "https://app.example.com".into()),
        ("DIGEST_WINDOW_SECONDS", "0".into()),
    ]);
    let http = crate::harness::browser();
    let (base, stack) = boot(env).await;
    let t = token(&http, &base).await;
    let r = http
        .put(format!("{base}/v1/members/u"))
        .bearer_auth(&t)
        .json(&json!({"email": "owner@example.com", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    connect_sandbox(
        &http,
        &base,
        &t,
        json!({"platform": "sandbox_oauth", "name": "Sandbox store", "return_to": "https://app.example.com"}),
        "acct_out",
    )
    .await;
    // The user revokes the app on the sandbox platform; a sweep notices.
    let revoked: Value = http
        .post(format!("{base}/sandbox/control/revoke?account=acct_out"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], 1);
    let ws = shared::domain::ids::WorkspaceId::parse("ws_boot").unwrap();
    let auth = stack.app.repo.list::<shared::domain::Authorization>(&ws).await.unwrap().pop().unwrap();
    let mut due = auth.value.clone();
    due.next_check_at = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    stack.app.repo.save(&due, auth.version).await.unwrap();
    let report = shared::flows::sweep::sweep(&stack.app).await.unwrap();
    assert_eq!(report.disconnected, 1, "{report:?}");
    local_stack::workers::drain(&stack, shared::ports::QueueKind::Notify).await.unwrap();
    let list: Value = http
        .get(format!("{base}/v1/connections?status=disconnected"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["connections"][0]["status"]["reason"], "token_revoked");
    let notes: Value =
        http.get(format!("{base}/v1/notifications")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    assert_eq!(notes["notifications"][0]["action"]["kind"], "reconnect", "{notes}");
    let outbox: Vec<_> = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(outbox.len(), 1);
    let eml = std::fs::read_to_string(&outbox[0]).unwrap();
    assert!(
        eml.contains("To: owner@example.com") && eml.contains("Subject: Sandbox store") && eml.contains("/reconnect?"),
        "{eml}"
    );

    // Reconnect from the notification's action, with the same account.
    let target = notes["notifications"][0]["action"]["connection_id"].as_str().unwrap().to_owned();
    let page = connect_sandbox(&http, &base, &t, json!({"platform": "sandbox_oauth", "return_to": "https://app.example.com", "reconnect": {"connection_id": target}}), "acct_out").await;
    assert!(page.contains("\"status\":\"connected\""), "{page}");
    local_stack::workers::drain(&stack, shared::ports::QueueKind::Sync).await.unwrap();
    local_stack::workers::drain(&stack, shared::ports::QueueKind::Notify).await.unwrap();
    let mut view: Value = Value::Null;
    for _ in 0..200 {
        view = http
            .get(format!("{base}/v1/connections/{target}"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["status"]["state"] == "connected" && view["sync"].is_null() {
            break;
        }
        tokio::task::yield_now().await;
        local_stack::workers::drain(&stack, shared::ports::QueueKind::Sync).await.unwrap();
    }
    assert_eq!(view["status"]["state"], "connected", "{view}");
    assert_eq!(view["progress"]["orders"]["records"], 2500);
    let notes: Value =
        http.get(format!("{base}/v1/notifications")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    assert!(notes["notifications"].as_array().unwrap().iter().any(|n| n["kind"] == "recovered"), "{notes}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The done-when of the events: in the local stack, a connected sandbox
/// source's events reach a loopback webhook, signed with the secret the
/// stack keeps in its data folder, and the JSON-lines file.
#[tokio::test]
async fn a_loopback_webhook_receives_signed_events_from_the_running_stack() {
    use crate::harness::{FakePlatform, Recorded, Reply};
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let signal = arrived.clone();
    let hook = FakePlatform::start(move |r: &Recorded| {
        if r.body.contains("\"sync.completed\"") {
            signal.notify_one();
        }
        Reply::Empty(204)
    })
    .await;
    let dir = std::env::temp_dir().join(format!("connections-hook-{}", uuid::Uuid::new_v4().simple()));
    let env = HashMap::from([
        ("DATA_DIR", dir.display().to_string()),
        ("ALLOWED_ORIGINS", "https://app.example.com".into()),
        ("WEBHOOK_URL", format!("{}/hook", hook.base)),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let booted = local_stack::boot(&listener, |k| env.get(k).cloned()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    assert!(booted.banner.contains("events.jsonl") && booted.banner.contains("webhook-secret"), "{}", booted.banner);
    tokio::spawn(local_stack::serve(listener, booted.stack));
    let http = crate::harness::browser();
    let t = token(&http, &base).await;
    let body = json!({"platform": "sandbox_oauth", "name": "Hooked", "return_to": "https://app.example.com"});
    let page = connect_sandbox(&http, &base, &t, body, "acct_hook").await;
    assert!(page.contains("\"status\":\"connected\""), "{page}");
    // The stack's own workers sync it and deliver the events.
    tokio::time::timeout(std::time::Duration::from_secs(20), arrived.notified()).await.expect("sync.completed arrived");
    let secret = std::fs::read_to_string(dir.join("webhook-secret")).unwrap();
    assert!(secret.starts_with("whsec_"));
    let webhook = standardwebhooks::Webhook::new(&secret).unwrap();
    let received = hook.requests_to("/hook");
    for r in &received {
        webhook.verify(r.body.as_bytes(), &r.headers).expect("signed with the data folder's secret");
    }
    let lines = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    for r in &received {
        let id = serde_json::from_str::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned();
        assert!(lines.contains(&id), "every delivered event is in events.jsonl");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("webhook-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The local outbox in a browser: the emails the embedded mailer wrote,
/// newest first, subjects decoded; each opens as its HTML part (no script
/// may run) or as the whole message with its headers; nothing else is read.
#[tokio::test]
async fn the_local_outbox_lists_sent_emails_and_opens_each() {
    let dir = std::env::temp_dir().join(format!("connections-outbox-{}", uuid::Uuid::new_v4().simple()));
    let (base, stack) = boot(HashMap::from([("DATA_DIR", dir.display().to_string())])).await;
    let http = crate::harness::client();
    let empty = http.get(format!("{base}/local/outbox")).send().await.unwrap().text().await.unwrap();
    assert!(empty.contains("No email yet"), "{empty}");
    let email = shared::ports::Email {
        from: "\"Connections alerts\" <alerts@example.com>".into(),
        to: vec!["admin@example.com".into()],
        subject: "Acme · Search on Google Ads is disconnected".into(),
        text: "Reconnect it.".into(),
        html: "<p>Reconnect <b>it</b>.</p>".into(),
        headers: vec![("List-Unsubscribe".into(), "<http://127.0.0.1/v1/email/unsubscribe?token=t>".into())],
    };
    stack.app.mailer.send(&email).await.unwrap();
    let list = http.get(format!("{base}/local/outbox/")).send().await.unwrap().text().await.unwrap();
    assert!(
        list.contains("Acme · Search on Google Ads is disconnected") && list.contains("admin@example.com"),
        "{list}"
    );
    let html_link = list.split("href=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let part = http.get(format!("{base}{html_link}")).send().await.unwrap();
    let csp = part.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'") && !csp.contains("script"), "{csp}");
    assert_eq!(part.text().await.unwrap(), "<p>Reconnect <b>it</b>.</p>");
    let eml =
        http.get(format!("{base}{}", html_link.replace(".html", ".eml"))).send().await.unwrap().text().await.unwrap();
    assert!(eml.contains("List-Unsubscribe: <http://127.0.0.1/v1/email/unsubscribe?token=t>"), "{eml}");
    assert!(eml.contains("Subject: =?UTF-8?B?"), "a non-ASCII subject is an encoded word: {eml}");
    for bad in ["/local/outbox/..%2Fservice-token", "/local/outbox/service-token", "/local/outbox/.hidden.html"] {
        assert_eq!(http.get(format!("{base}{bad}")).send().await.unwrap().status(), 404, "{bad}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
