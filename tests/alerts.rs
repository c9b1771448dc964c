//! Alerts: one email per incident through retries, a recovery notice, a
//! digest when many break at once, opt-outs, client viewers excluded,
//! duplicate deliveries harmless, no secret in any email; in-app
//! notifications and their API. Embedded mailer and moto's SES v2.

use chrono::Utc;
use serde_json::{json, Value};

use shared::domain::ids::*;
use shared::domain::messages::AlertEvent;
use shared::domain::*;
use shared::ports::QueueKind;

use crate::harness::{spawn_app_on, Backend, TestApp};

/// (to, subject, text-or-html) of the emails sent to these addresses.
async fn sent(app: &TestApp, to_domain: &str) -> Vec<(String, String, String)> {
    match &app.mailer {
        Some(m) => m
            .sent()
            .into_iter()
            .filter(|(_, e)| e.to[0].ends_with(to_domain))
            .map(|(_, e)| (e.to[0].clone(), e.subject, format!("{}\n{}", e.text, e.html)))
            .collect(),
        None => {
            let data: Value = reqwest::get(format!("{}/moto-api/data.json", crate::harness::moto()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            data["ses"]["Message"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| {
                    let to = m["destinations"]["ToAddresses"][0].as_str()?.to_owned();
                    to.ends_with(to_domain).then(|| {
                        (
                            to,
                            m["subject"].as_str().unwrap_or("").to_owned(),
                            m["body"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                })
                .collect()
        }
    }
}

/// Runs the notifier until its queue is empty.
async fn notify(app: &TestApp) {
    let q = &app.stack.app.queue;
    for _ in 0..100 {
        let batch = q.receive(QueueKind::Notify, 10, 60).await.unwrap();
        if batch.is_empty() {
            return;
        }
        for m in batch {
            let event: AlertEvent = serde_json::from_str(&m.body).unwrap();
            shared::entry::lambda::deliver_alert(&app.stack.app, event).await.unwrap();
            q.ack(QueueKind::Notify, &m.receipt).await.unwrap();
        }
    }
}

struct World {
    app: TestApp,
    ws: WorkspaceId,
    domain: String,
    connections: Vec<Connection>,
}

async fn world(backend: Backend, n: usize) -> World {
    let app =
        spawn_app_on(backend, &[("DIGEST_WINDOW_SECONDS", "0"), ("APP_BASE_URL", "https://app.example.com")]).await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let ws = WorkspaceId::parse(&format!("ws_{tag}")).unwrap();
    let domain = format!("{tag}.example.com");
    let admin = app.token(ws.as_str(), "admin", "admin").await;
    for (user, role, opt_out) in [
        ("admin", "admin", json!([])),
        ("staff", "staff", json!([])),
        ("quiet", "staff", json!(["disconnected"])),
        ("viewer", "client_viewer", json!([])),
    ] {
        let r = app
            .http
            .put(app.url(&format!("/v1/members/{user}")))
            .bearer_auth(&admin)
            .json(&json!({"email": format!("{user}@{domain}"), "role": role, "email_opt_out": opt_out}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let now = Utc::now();
    let mut connections = Vec::new();
    for i in 0..n {
        let secret = SecretRef::for_owner(&app.stack.app.config.secret_prefix, &ws, &format!("key{i}"));
        app.stack
            .app
            .vault
            .put(&secret.0, &secrecy::SecretString::from(r#"{"api_key":"pk_SUPERSECRETKEY0123456789"}"#.to_owned()))
            .await
            .unwrap();
        let mut c = Connection::new(
            ws.clone(),
            PlatformId::parse("klaviyo").unwrap(),
            format!("Klaviyo {i}"),
            ConnectionRole::Source,
            Some(ClientRef { id: ClientId::parse(&format!("c{i}")).unwrap(), name: format!("Acme {i}") }),
            Credential::ApiKey { secret, hint: "6789".into(), last_verified_at: now, fingerprint: String::new() },
            vec![],
            UserId::parse("admin").unwrap(),
            now,
        );
        c.status = Status::Connected;
        c.initial_sync_done = true;
        c.last_synced_at = Some(now);
        app.stack.app.repo.create(&c).await.unwrap();
        connections.push(c);
    }
    World { app, ws, domain, connections }
}

/// Queues an alert as a flow would: after the change it tells of (the
/// notifier tells a disconnection only of a connection that is
/// disconnected).
async fn emit(w: &World, event: AlertEvent) {
    let app = &w.app.stack.app;
    if let AlertEvent::ConnectionDisconnected { workspace_id, connection_id, .. } = &event {
        let v = app.repo.connection(workspace_id, connection_id).await.unwrap();
        let mut c = v.value;
        if !matches!(c.status, Status::Disconnected { .. }) {
            c.status = Status::Disconnected { reason: DisconnectReason::ApiKeyInvalid };
            app.repo.save(&c, v.version).await.unwrap();
        }
    }
    app.send(&event, 0).await.unwrap();
}

fn disconnected(w: &World, i: usize) -> AlertEvent {
    AlertEvent::ConnectionDisconnected {
        workspace_id: w.ws.clone(),
        connection_id: w.connections[i].id.clone(),
        reason: "api_key_invalid".into(),
    }
}

both!(
    one_email_per_incident_then_a_recovery_notice,
    many_breaking_at_once_send_one_digest,
    a_hard_bounce_or_a_complaint_stops_email_until_an_admin_lifts_it,
);

/// SES's bounce and complaint events (as the template's rule reshapes them
/// onto the notify queue) suppress the address: the member still gets the
/// in-app notification, no email; GET /v1/members shows it; an admin lifts
/// it. A soft bounce changes nothing.
async fn a_hard_bounce_or_a_complaint_stops_email_until_an_admin_lifts_it(backend: Backend) {
    let w = world(backend, 2).await;
    let admin = w.app.token(w.ws.as_str(), "admin", "admin").await;
    let staff = format!("staff@{}", w.domain);
    let feedback = |event: &str, bounce: Option<&str>, to: &str| AlertEvent::EmailFeedback {
        event: event.into(),
        bounce_type: bounce.map(str::to_owned),
        addresses: vec![to.to_owned()],
    };
    emit(&w, feedback("Bounce", Some("Transient"), &staff)).await;
    emit(&w, feedback("Bounce", Some("Permanent"), &staff.to_uppercase())).await;
    emit(&w, feedback("Complaint", None, &format!("admin@{}", w.domain))).await;
    notify(&w.app).await;
    let members = w.app.get_json("/v1/members", &admin).await;
    let of = |user: &str| members["members"].as_array().unwrap().iter().find(|m| m["user_id"] == user).unwrap().clone();
    assert_eq!(of("staff")["email_suppressed"]["reason"], "bounced", "{members}");
    assert_eq!(of("admin")["email_suppressed"]["reason"], "complained");
    assert!(of("quiet")["email_suppressed"].is_null());
    // An alert: no email to the suppressed, the in-app notification all the same.
    emit(&w, disconnected(&w, 0)).await;
    notify(&w.app).await;
    let to: Vec<String> = sent(&w.app, &w.domain).await.into_iter().map(|(to, _, _)| to).collect();
    assert!(!to.contains(&staff) && !to.contains(&format!("admin@{}", w.domain)), "{to:?}");
    let staff_token = w.app.token(w.ws.as_str(), "staff", "staff").await;
    let notes = w.app.get_json("/v1/notifications", &staff_token).await;
    assert_eq!(notes["notifications"].as_array().unwrap().len(), 1, "{notes}");
    // Staff may not lift it; an admin may, and email flows again.
    let lift = |token: String| {
        let url = w.app.url("/v1/members/staff/email-suppression");
        let http = w.app.http.clone();
        async move { http.delete(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(lift(staff_token.clone()).await, 403);
    assert_eq!(lift(admin.clone()).await, 204);
    let members = w.app.get_json("/v1/members", &admin).await;
    assert!(members["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user_id"] == "staff" && m["email_suppressed"].is_null()));
    emit(&w, disconnected(&w, 1)).await;
    notify(&w.app).await;
    let to: Vec<String> = sent(&w.app, &w.domain).await.into_iter().map(|(to, _, _)| to).collect();
    assert!(to.contains(&staff), "mailed again after the lift: {to:?}");
}

async fn one_email_per_incident_then_a_recovery_notice(backend: Backend) {
    let w = world(backend, 1).await;
    // The same problem, reported three times (retries, redeliveries).
    for _ in 0..3 {
        emit(&w, disconnected(&w, 0)).await;
    }
    notify(&w.app).await;
    let mails = sent(&w.app, &w.domain).await;
    let mut to: Vec<&str> = mails.iter().map(|m| m.0.as_str()).collect();
    to.sort();
    assert_eq!(
        to,
        [format!("admin@{}", w.domain), format!("staff@{}", w.domain)],
        "once each; no viewer; opt-out respected"
    );
    let (_, subject, body) = &mails[0];
    assert!(
        subject.contains("Klaviyo 0") && subject.contains("Acme 0") && subject.contains("disconnected"),
        "{subject}"
    );
    assert!(body.contains("API key") && body.contains("https://app.example.com/reconnect"), "{body}");
    assert!(!body.contains("pk_SUPERSECRETKEY"), "no key in an email");

    // In the app: one notification, with the reconnect action.
    let staff = w.app.token(w.ws.as_str(), "staff", "staff").await;
    let list: Value = w.app.get_json("/v1/notifications", &staff).await;
    assert_eq!(list["notifications"].as_array().unwrap().len(), 1, "{list}");
    let n = &list["notifications"][0];
    assert_eq!(
        (n["data_source"].as_str(), n["client_name"].as_str(), n["reason_code"].as_str()),
        (Some("Klaviyo 0"), Some("Acme 0"), Some("api_key_invalid"))
    );
    assert_eq!(n["action"]["kind"], "replace_key");
    let viewer = w.app.token(w.ws.as_str(), "viewer", "client_viewer").await;
    assert_eq!(w.app.http.get(w.app.url("/v1/notifications")).bearer_auth(&viewer).send().await.unwrap().status(), 403);

    // Recovery closes the incident with a short notice.
    w.app.clock.advance(chrono::Duration::minutes(5));
    emit(&w, AlertEvent::Recovered { workspace_id: w.ws.clone(), connection_id: w.connections[0].id.clone() }).await;
    emit(&w, AlertEvent::Recovered { workspace_id: w.ws.clone(), connection_id: w.connections[0].id.clone() }).await;
    notify(&w.app).await;
    let mails = sent(&w.app, &w.domain).await;
    let recovered: Vec<_> = mails.iter().filter(|m| m.1.contains("recovered")).collect();
    assert_eq!(recovered.len(), 3, "admin, staff and the member who muted disconnections (recovered is on): {mails:?}");
    let list: Value = w.app.get_json("/v1/notifications", &staff).await;
    assert_eq!(list["notifications"][0]["kind"], "recovered");
    assert_eq!(list["unread"], 2);
    let r: Value = w
        .app
        .http
        .post(w.app.url("/v1/notifications/read-all"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["marked_read"], 2);
    // A new failure after recovery is a new incident: alerts again.
    emit(&w, disconnected(&w, 0)).await;
    notify(&w.app).await;
    assert_eq!(sent(&w.app, &w.domain).await.len(), mails.len() + 2);
}

async fn many_breaking_at_once_send_one_digest(backend: Backend) {
    let w = world(backend, 3).await;
    for i in 0..3 {
        emit(&w, disconnected(&w, i)).await;
    }
    notify(&w.app).await;
    let mails = sent(&w.app, &w.domain).await;
    assert_eq!(mails.len(), 2, "one digest each for admin and staff: {mails:?}");
    for (_, subject, body) in &mails {
        assert_eq!(subject, "3 data sources need attention");
        for i in 0..3 {
            assert!(body.contains(&format!("Klaviyo {i}")), "{body}");
        }
    }
}

#[tokio::test]
async fn a_redelivered_flush_sends_nothing_twice() {
    let w = world(Backend::Embedded, 1).await;
    emit(&w, disconnected(&w, 0)).await;
    // Deliver every message twice, as SQS may.
    let q = &w.app.stack.app.queue;
    loop {
        let batch = q.receive(QueueKind::Notify, 10, 60).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            for _ in 0..2 {
                let event: AlertEvent = serde_json::from_str(&m.body).unwrap();
                shared::entry::lambda::deliver_alert(&w.app.stack.app, event).await.unwrap();
            }
            q.ack(QueueKind::Notify, &m.receipt).await.unwrap();
        }
    }
    assert_eq!(sent(&w.app, &w.domain).await.len(), 2);
}

#[tokio::test]
async fn members_are_managed_by_admins_and_mute_their_own_email() {
    let w = world(Backend::Embedded, 0).await;
    let staff = w.app.token(w.ws.as_str(), "staff", "staff").await;
    let admin = w.app.token(w.ws.as_str(), "admin", "admin").await;
    assert_eq!(w.app.http.get(w.app.url("/v1/members")).bearer_auth(&staff).send().await.unwrap().status(), 403);
    let list: Value = w.app.get_json("/v1/members", &admin).await;
    assert_eq!(list["members"].as_array().unwrap().len(), 4);
    let bad = w
        .app
        .http
        .put(w.app.url("/v1/members/x"))
        .bearer_auth(&admin)
        .json(&json!({"email": "nope", "role": "staff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let r = w
        .app
        .http
        .patch(w.app.url("/v1/members/me"))
        .bearer_auth(&staff)
        .json(&json!({"email_opt_out": ["sync_failed", "recovered"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["email_opt_out"], json!(["sync_failed", "recovered"]));
    let stranger = w.app.token(w.ws.as_str(), "not_a_member", "staff").await;
    let r = w
        .app
        .http
        .patch(w.app.url("/v1/members/me"))
        .bearer_auth(&stranger)
        .json(&json!({"email_opt_out": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = w
        .app
        .http
        .post(w.app.url("/v1/notifications/ntf_00000000000000000000000000000000/read"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
