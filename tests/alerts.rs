//! Alerts: one email per incident through retries, a recovery notice, a
//! digest when many break at once, opt-outs, client viewers excluded,
//! duplicate deliveries harmless, no secret in any email; in-app
//! notifications and their API. Embedded mailer and moto's SES v2.

use chrono::Utc;
use serde_json::{json, Value};

use shared::domain::ids::*;
use shared::domain::messages::AlertEvent;
use shared::domain::*;
use shared::ports::{Clock, QueueKind};

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
            let data = crate::harness::moto_data().await;
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
    world_with(backend, n, &[]).await
}

async fn world_with(backend: Backend, n: usize, env: &[(&str, &str)]) -> World {
    let mut all = vec![("DIGEST_WINDOW_SECONDS", "0"), ("APP_BASE_URL", "https://app.example.com")];
    all.extend_from_slice(env);
    let app = spawn_app_on(backend, &all).await;
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
    let replace = format!("https://app.example.com/replace-key?connection_id={}", w.connections[0].id);
    assert!(body.contains("API key") && body.contains(&replace), "one button, to replace the key: {body}");
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
    let recovered: Vec<_> = mails.iter().filter(|m| m.1.contains("is connected again")).collect();
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
        assert_eq!(subject, "3 data sources of 3 clients need you");
        // Grouped by client (each a heading), in order.
        let at: Vec<usize> = (0..3).map(|i| body.find(&format!("Acme {i}")).expect("a client heading")).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{body}");
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

/// Where rendered emails are kept for the browser tests' screenshots.
pub(crate) fn keep_rendered(name: &str, email: &shared::ports::Email) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/emails");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.html")), &email.html).unwrap();
    std::fs::write(dir.join(format!("{name}.txt")), format!("Subject: {}\n\n{}", email.subject, email.text)).unwrap();
}

fn emails_to(app: &TestApp, to: &str) -> Vec<shared::ports::Email> {
    let sent = app.mailer.as_ref().expect("the embedded mailer").sent();
    sent.into_iter().map(|(_, e)| e).filter(|e| e.to.iter().any(|t| t == to)).collect()
}

fn header<'e>(e: &'e shared::ports::Email, name: &str) -> Option<&'e str> {
    e.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The deployer's brand, the reader's time zone, one button with the right
/// ids, and a one-click unsubscribe (RFC 8058) that works without signing
/// in, changes nothing on a GET, and explains an altered or expired link.
#[tokio::test]
async fn a_branded_email_in_the_readers_time_with_one_action_unsubscribes_in_one_click() {
    let w = world_with(
        Backend::Embedded,
        2,
        &[
            ("BRAND_PRODUCT_NAME", "Acme Insights"),
            ("BRAND_LOGO_URL", "https://cdn.acme.test/logo.png"),
            ("BRAND_ACCENT_COLOR", "#0f766e"),
            ("BRAND_FOOTER_ADDRESS", "Acme Inc., 1 Main Street, Springfield"),
        ],
    )
    .await;
    let (app, ws) = (&w.app, w.ws.as_str());
    let admin = app.token(ws, "admin", "admin").await;
    let patch = |body: Value| {
        let (http, url, token) = (app.http.clone(), app.url("/v1/members/me"), admin.clone());
        async move {
            let r = http.patch(url).bearer_auth(token).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, bad) = patch(json!({"time_zone": "Mars/Olympus_Mons"})).await;
    assert_eq!(status, 422, "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("Europe/Paris"), "says what a zone looks like: {bad}");
    let (status, null) = patch(json!({"email_opt_out": null})).await;
    assert!(status == 400 || status == 422, "a list or nothing: {status} {null}");
    let (status, me) = patch(json!({"time_zone": "Europe/Paris"})).await;
    assert_eq!((status, me["time_zone"].as_str(), me["email_opt_out"].clone()), (200, Some("Europe/Paris"), json!([])));

    let at = app.clock.now();
    emit(&w, disconnected(&w, 0)).await;
    notify(app).await;
    let mine = emails_to(app, &format!("admin@{}", w.domain));
    assert_eq!(mine.len(), 1);
    let e = &mine[0];
    keep_rendered("disconnected-api-key", e);
    assert_eq!(e.from, "\"Acme Insights alerts\" <alerts@example.com>");
    assert_eq!(e.subject, "Acme 0 · Klaviyo 0 on Klaviyo is disconnected");
    let paris = shared::domain::email::local_time(at, shared::domain::email::time_zone(Some("Europe/Paris")));
    assert!(paris.ends_with("CET") || paris.ends_with("CEST"), "{paris}");
    assert!(e.text.contains(&format!("Since: {paris}")), "the reader's time: {}", e.text);
    let replace = format!("Replace key: https://app.example.com/replace-key?connection_id={}", w.connections[0].id);
    assert!(e.text.contains(&replace), "one action, with its ids: {}", e.text);
    assert!(e.text.contains("The platform no longer accepts the API key."), "{}", e.text);
    assert!(e.text.contains(&format!("Authorized by: admin@{}", w.domain)), "{}", e.text);
    assert!(e.text.contains("can replace the key"), "{}", e.text);
    for part in [&e.html, &e.text] {
        assert!(part.contains("Acme Inc., 1 Main Street, Springfield"), "the footer address");
    }
    assert!(e.html.contains("https://cdn.acme.test/logo.png") && e.html.contains("#0f766e"), "the brand");
    assert!(!e.html.to_lowercase().contains("<script") && !e.html.contains("@import") && !e.html.contains("<link"));
    let everything = format!("{}{}{}{:?}", e.subject, e.text, e.html, e.headers);
    assert!(!everything.contains("pk_SUPERSECRET"), "no key in any part of an email");
    let staff = emails_to(app, &format!("staff@{}", w.domain));
    assert!(staff[0].text.contains(" UTC\n"), "a member with no zone reads UTC: {}", staff[0].text);

    // RFC 8058: the link in the header, and the one-click POST it takes.
    assert_eq!(header(e, "List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));
    let link = header(e, "List-Unsubscribe").unwrap().trim_matches(|c| c == '<' || c == '>').to_owned();
    assert!(link.starts_with(&app.url("/v1/email/unsubscribe?token=")), "{link}");
    assert!(e.text.contains(&link), "the plain part carries it too");
    let opt_out = || async {
        let members = app.get_json("/v1/members", &admin).await;
        let me = members["members"].as_array().unwrap().iter().find(|m| m["user_id"] == "admin").unwrap().clone();
        me["email_opt_out"].clone()
    };
    // A GET (a person, or a scanner following links) only asks.
    let page = app.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Stop disconnection alerts by email") && html.contains("method=\"post\""), "{html}");
    assert_eq!(opt_out().await, json!([]), "a GET changes nothing");
    let one_click = |url: String| {
        let http = app.http.clone();
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, done) = one_click(link.clone()).await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("no more disconnection alerts"), "{done}");
    assert_eq!(opt_out().await, json!(["disconnected"]));
    assert_eq!(one_click(link.clone()).await.0, 200, "twice is once");
    assert_eq!(opt_out().await, json!(["disconnected"]));

    // The next disconnection: no email to this member; others still; the
    // in-app notification all the same.
    emit(&w, disconnected(&w, 1)).await;
    notify(app).await;
    assert_eq!(emails_to(app, &format!("admin@{}", w.domain)).len(), 1, "unsubscribed");
    assert_eq!(emails_to(app, &format!("staff@{}", w.domain)).len(), 2);
    let notes = app.get_json("/v1/notifications", &admin).await;
    assert_eq!(notes["notifications"].as_array().unwrap().len(), 2);

    // An altered link, and one past its 90 days, say so (code, what to do).
    let mut altered = link.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, page) = one_click(altered).await;
    assert_eq!(status, 400);
    assert!(page.contains("email_link_invalid") && page.contains("email preferences"), "{page}");
    app.clock.advance(chrono::Duration::days(91));
    let (status, page) = one_click(link).await;
    assert_eq!(status, 410);
    assert!(page.contains("email_link_expired") && page.contains("newer email"), "{page}");
}

/// Every kind of alert, on an OAuth grant shared by two clients: the
/// platform's display name, data source and client, the account, who
/// authorized it and who can fix it, when, and one button with the right
/// ids; a recovery says how long data was missing. No token anywhere.
#[tokio::test]
async fn every_alert_kind_reads_well_with_its_facts_and_one_button() {
    let app =
        spawn_app_on(Backend::Embedded, &[("DIGEST_WINDOW_SECONDS", "0"), ("APP_BASE_URL", "https://app.example.com")])
            .await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let ws = format!("ws_kinds_{tag}");
    let admin = app.token(&ws, "admin", "admin").await;
    for (user, role, name) in [("admin", "admin", "Ada Admin"), ("u", "staff", "Uma Staff")] {
        let body = json!({"email": format!("{user}@kinds.test"), "role": role, "display_name": name});
        let r = app.http.put(app.url(&format!("/v1/members/{user}"))).bearer_auth(&admin).json(&body).send().await;
        assert_eq!(r.unwrap().status(), 200);
    }
    let account = format!("acct_kinds_{tag}");
    let (auth, conn) = crate::lifecycle::connect_sandbox(&app, &ws, &account).await;
    let secret = crate::lifecycle::tokens(&app, &auth).await;
    let repo = &app.stack.app.repo;
    let wsid = WorkspaceId::parse(&ws).unwrap();
    let v = repo.connection(&wsid, &conn.id).await.unwrap();
    let mut c = v.value;
    c.client = Some(ClientRef { id: ClientId::parse("globex").unwrap(), name: "Globex".into() });
    c.stale = Some(Staleness { reason: StaleReason::NoSuccessfulSync, since: app.clock.now() });
    repo.save(&c, v.version).await.unwrap();
    crate::harness::drain_notify(&app.stack.app).await;
    let q = &app.stack.app;
    let to_admin = |app: &TestApp| emails_to(app, "admin@kinds.test");
    let mut seen = 0;
    let mut next = |app: &TestApp| {
        let all = to_admin(app);
        let new: Vec<_> = all[seen..].to_vec();
        seen = all.len();
        new
    };
    let sync = format!("See the sync: https://app.example.com/sync?connection_id={}", c.id);
    let reconnect =
        format!("Reconnect: https://app.example.com/reconnect?connection_id={}&authorization_id={}", c.id, auth.id);
    let common = |e: &shared::ports::Email| {
        assert!(e.text.contains("Agency grant on Sandbox (OAuth 2.0)"), "display names: {}", e.text);
        assert!(e.text.contains(&format!("Account: Sandbox account {account} ({account})")), "{}", e.text);
        let all = format!("{}{}{}", e.subject, e.text, e.html);
        assert!(!all.contains(&secret.access_token) && !all.contains(secret.refresh_token.as_deref().unwrap()));
    };

    q.send(
        &AlertEvent::SyncFailed {
            workspace_id: wsid.clone(),
            connection_id: c.id.clone(),
            reason: "platform_unavailable".into(),
        },
        0,
    )
    .await
    .unwrap();
    notify(&app).await;
    let [e] = next(&app).try_into().expect("one email");
    keep_rendered("sync-failed", &e);
    common(&e);
    assert_eq!(e.subject, "Globex · Agency grant on Sandbox (OAuth 2.0) failed to sync");
    assert!(e.text.contains("the platform did not answer") && e.text.contains(&sync), "{}", e.text);

    q.send(
        &AlertEvent::DataNotSyncing {
            workspace_id: wsid.clone(),
            connection_id: c.id.clone(),
            reason: "no_successful_sync".into(),
        },
        0,
    )
    .await
    .unwrap();
    notify(&app).await;
    let [e] = next(&app).try_into().expect("one email");
    keep_rendered("stale-data", &e);
    common(&e);
    assert_eq!(e.subject, "Globex · Agency grant on Sandbox (OAuth 2.0) is not syncing");
    assert!(e.text.contains("No sync has succeeded") && e.text.contains(&sync), "{}", e.text);

    let expires = app.clock.now() + chrono::Duration::days(6);
    q.send(
        &AlertEvent::ExpiringSoon {
            workspace_id: wsid.clone(),
            authorization_id: auth.id.clone(),
            expires_at: expires,
        },
        0,
    )
    .await
    .unwrap();
    notify(&app).await;
    let [e] = next(&app).try_into().expect("one email");
    keep_rendered("expiring-soon", &e);
    assert!(e.subject.ends_with("needs reconnecting soon"), "{}", e.subject);
    assert!(e.text.contains(&expires.format("%Y-%m-%d").to_string()), "{}", e.text);
    assert!(e.text.contains("Authorized by: Uma Staff (u@kinds.test)"), "{}", e.text);

    // The platform revokes the grant; a second client's data source shares it.
    let mut second = c.clone();
    second.id = ConnectionId::generate();
    second.name = "Second store".into();
    second.client = Some(ClientRef { id: ClientId::parse("initech").unwrap(), name: "Initech".into() });
    second.stale = None;
    repo.create(&second).await.unwrap();
    let revoked_at = app.clock.now();
    app.http.post(app.url(&format!("/sandbox/control/revoke?account={account}"))).send().await.unwrap();
    app.clock.advance(chrono::Duration::minutes(61));
    shared::flows::sweep::sweep(q).await.unwrap();
    notify(&app).await;
    let mut got = next(&app);
    let e = got.pop().expect("the disconnection");
    keep_rendered("disconnected-digest", &e);
    common(&e);
    assert_eq!(e.subject, "2 data sources of 2 clients need you", "{:?}", got);
    assert!(e.text.find("Globex\n").unwrap() < e.text.find("Initech\n").unwrap(), "by client: {}", e.text);
    assert!(e.text.contains(&reconnect), "{}", e.text);
    assert!(e.text.contains("Authorized by: Uma Staff (u@kinds.test)"), "{}", e.text);
    assert!(
        e.text.contains("can reconnect it, signing in to Sandbox (OAuth 2.0) as someone with access to"),
        "{}",
        e.text
    );
    assert!(revoked_at <= app.clock.now());

    // Recovered three hours later: how long data was missing, and backfilled.
    app.clock.advance(chrono::Duration::hours(3));
    q.send(&AlertEvent::Recovered { workspace_id: wsid.clone(), connection_id: c.id.clone() }, 0).await.unwrap();
    notify(&app).await;
    let recovered: Vec<_> = next(&app).into_iter().filter(|e| e.subject.contains("connected again")).collect();
    let e = recovered.first().expect("a recovery notice");
    keep_rendered("recovered", e);
    assert!(e.text.contains("Data missing: about") && e.text.contains("the gap is backfilled"), "{}", e.text);
    assert_eq!(
        e.text.matches("\nAgency grant on Sandbox (OAuth 2.0)\n").count(),
        1,
        "each data source once: {}",
        e.text
    );
    assert!(e.text.contains("Email preferences: https://app.example.com/settings/email\n"), "{}", e.text);
    assert!(!e.text.contains("Reconnect:"), "nothing to do: {}", e.text);
}

/// A worker that claimed a send and died before sending leaves the claim
/// "sending": the flush is redelivered (others' emails go meanwhile), and
/// once the claim is older than any notifier runs, a redelivery takes it
/// over and sends. Before, the claim held every redelivery off: the email
/// was lost.
#[tokio::test]
async fn a_send_claimed_by_a_worker_that_died_is_taken_over() {
    let w = world(Backend::Embedded, 1).await;
    emit(&w, disconnected(&w, 0)).await;
    let app = &w.app.stack.app;
    let admin = format!("admin@{}", w.domain);
    let event = deliver_all_but_the_flush(&w.app).await.expect("a flush");
    let AlertEvent::Flush { flush_id, .. } = &event else { unreachable!() };
    let batch = format!("{flush_id}-Disconnected");
    let dead = app.repo.claim_send(&w.ws, &batch, &UserId::parse("admin").unwrap(), app.clock.now()).await.unwrap();
    assert_eq!(dead, shared::store::alerts::SendClaim::Mine(1));
    let first = shared::entry::lambda::deliver_alert(app, event.clone()).await;
    assert!(first.is_err(), "redelivered while the claim is fresh");
    assert_eq!(emails_to(&w.app, &admin).len(), 0);
    assert_eq!(emails_to(&w.app, &format!("staff@{}", w.domain)).len(), 1, "others are not held back");
    w.app.clock.advance(chrono::Duration::seconds(shared::store::alerts::SEND_CLAIM_STALE_SECONDS + 1));
    shared::entry::lambda::deliver_alert(app, event.clone()).await.unwrap();
    assert_eq!(emails_to(&w.app, &admin).len(), 1, "taken over and sent");
    shared::entry::lambda::deliver_alert(app, event).await.unwrap();
    assert_eq!(emails_to(&w.app, &admin).len(), 1, "sent once");
    assert_eq!(emails_to(&w.app, &format!("staff@{}", w.domain)).len(), 1);
}

/// A flush that never comes (its message lost, or dead-lettered after
/// failing) leaves its emails pending: once they are past the digest
/// window and a grace period, the sweep asks for another flush, which
/// sends them, once.
#[tokio::test]
async fn pending_emails_whose_flush_was_lost_are_sent_by_the_sweep() {
    let w = world(Backend::Embedded, 1).await;
    emit(&w, disconnected(&w, 0)).await;
    let app = &w.app.stack.app;
    deliver_all_but_the_flush(&w.app).await.expect("a flush, lost");
    let admin = format!("admin@{}", w.domain);
    assert_eq!(emails_to(&w.app, &admin).len(), 0);
    shared::flows::sweep::sweep(app).await.unwrap();
    notify(&w.app).await;
    assert_eq!(emails_to(&w.app, &admin).len(), 0, "not before its window and grace are over");
    w.app.clock.advance(chrono::Duration::minutes(shared::store::keys::PENDING_MAIL_GRACE_MINUTES + 2));
    let report = shared::flows::sweep::sweep(app).await.unwrap();
    assert_eq!(report.mail_flushes_requeued, 1);
    notify(&w.app).await;
    assert_eq!(emails_to(&w.app, &admin).len(), 1, "sent by the sweep's flush");
    w.app.clock.advance(chrono::Duration::minutes(shared::store::keys::PENDING_MAIL_GRACE_MINUTES + 2));
    assert_eq!(shared::flows::sweep::sweep(app).await.unwrap().mail_flushes_requeued, 0, "nothing left pending");
    notify(&w.app).await;
    assert_eq!(emails_to(&w.app, &admin).len(), 1, "once");
}

/// Delivers every queued alert but the flush, which it takes off the queue
/// (as if lost) and returns.
async fn deliver_all_but_the_flush(app: &TestApp) -> Option<AlertEvent> {
    let (app, mut flush) = (&app.stack.app, None);
    for _ in 0..10 {
        for m in app.queue.receive(QueueKind::Notify, 10, 60).await.unwrap() {
            let event: AlertEvent = serde_json::from_str(&m.body).unwrap();
            if matches!(event, AlertEvent::Flush { .. }) {
                flush = Some(event);
            } else {
                shared::entry::lambda::deliver_alert(app, event).await.unwrap();
            }
            app.queue.ack(QueueKind::Notify, &m.receipt).await.unwrap();
        }
    }
    flush
}

/// A flush that took its batch and died before sending (its message then
/// dead-lettered) is flushed again by the sweep under its own id: the
/// emails go, once.
#[tokio::test]
async fn a_batch_a_dead_flush_took_is_sent_by_the_sweep() {
    let w = world(Backend::Embedded, 1).await;
    emit(&w, disconnected(&w, 0)).await;
    let app = &w.app.stack.app;
    let Some(AlertEvent::Flush { flush_id, .. }) = deliver_all_but_the_flush(&w.app).await else { panic!("a flush") };
    let taken: Vec<Value> = app.repo.take_mail_batch(&w.ws, &flush_id, app.clock.now()).await.unwrap();
    assert_eq!(taken.len(), 1, "the dead flush took the email");
    let admin = format!("admin@{}", w.domain);
    w.app.clock.advance(chrono::Duration::minutes(shared::store::keys::PENDING_MAIL_GRACE_MINUTES + 1));
    assert_eq!(shared::flows::sweep::sweep(app).await.unwrap().mail_flushes_requeued, 1);
    notify(&w.app).await;
    assert_eq!(emails_to(&w.app, &admin).len(), 1, "sent by the flush the sweep asked for");
    w.app.clock.advance(chrono::Duration::minutes(shared::store::keys::PENDING_MAIL_GRACE_MINUTES + 1));
    assert_eq!(shared::flows::sweep::sweep(app).await.unwrap().mail_flushes_requeued, 0, "finished");
}
