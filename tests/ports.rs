//! The same behaviour cases against both adapter sets: `embedded` (in
//! memory) and `aws` (DynamoDB, Secrets Manager, SQS, SES v2 and S3 on
//! moto_server).

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use shared::domain::error::{StoreError, VaultError};
use shared::ports::{Due, Email, Item, Precondition, QueueKind};
use shared::wiring::Ports;

/// Generates `embedded::$case` and `aws::$case` from one async fn.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    let config = crate::harness::config(&[]);
                    let (_app, ports) = crate::harness::embedded_app(config);
                    let clock = Arc::new(shared::adapters::clock::SystemClock);
                    super::$case(ports.ports(clock)).await;
                }
            )*
            use std::sync::Arc;
        }
        mod aws {
            $(
                #[tokio::test]
                async fn $case() {
                    let mut config = crate::harness::config(&[]);
                    super::$case(crate::harness::aws_ports(&mut config).await).await;
                }
            )*
        }
    };
}

both!(
    store_conditional_writes,
    store_versions_race_safely,
    store_queries_one_partition_in_order_with_pages,
    store_due_index_is_sparse_and_sharded,
    store_round_trips_bodies,
    vault_stores_versions_and_deletes,
    queue_delivers_at_least_once_with_visibility,
    sink_writes_whole_objects_by_key,
    mailer_sends,
);

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn item(pk: &str, sk: &str, version: u64, body: serde_json::Value) -> Item {
    Item { pk: pk.into(), sk: sk.into(), version, body, due: None, expires_at: None }
}

async fn store_conditional_writes(p: Ports) {
    let pk = format!("WS#{}", unique());
    let s = &p.store;
    assert_eq!(s.get(&pk, "A").await.unwrap(), None);
    s.put(&item(&pk, "A", 1, json!({"n": 1})), Precondition::Absent).await.unwrap();
    assert_eq!(
        s.put(&item(&pk, "A", 1, json!({"n": 9})), Precondition::Absent).await,
        Err(StoreError::ConditionFailed),
        "create twice"
    );
    s.put(&item(&pk, "A", 2, json!({"n": 2})), Precondition::Version(1)).await.unwrap();
    assert_eq!(
        s.put(&item(&pk, "A", 2, json!({"n": 3})), Precondition::Version(1)).await,
        Err(StoreError::ConditionFailed),
        "stale version"
    );
    assert_eq!(
        s.put(&item(&pk, "B", 1, json!({})), Precondition::Exists).await,
        Err(StoreError::ConditionFailed),
        "update of a missing item"
    );
    let got = s.get(&pk, "A").await.unwrap().unwrap();
    assert_eq!((got.version, got.body), (2, json!({"n": 2})));
    assert_eq!(s.delete(&pk, "A", Precondition::Version(1)).await, Err(StoreError::ConditionFailed));
    let removed = s.delete(&pk, "A", Precondition::Version(2)).await.unwrap().unwrap();
    assert_eq!(removed.body, json!({"n": 2}));
    assert_eq!(s.get(&pk, "A").await.unwrap(), None);
    assert_eq!(s.delete(&pk, "A", Precondition::None).await.unwrap(), None, "deleting nothing is fine");
    assert_eq!(s.delete(&pk, "A", Precondition::Exists).await, Err(StoreError::ConditionFailed), "single use");
}

async fn store_versions_race_safely(p: Ports) {
    let pk = format!("WS#{}", unique());
    p.store.put(&item(&pk, "counter", 1, json!({"n": 0})), Precondition::Absent).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = p.store.clone();
        let pk = pk.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let cur = store.get(&pk, "counter").await.unwrap().unwrap();
                let n = cur.body["n"].as_i64().unwrap();
                let next = item(&pk, "counter", cur.version + 1, json!({"n": n + 1}));
                match store.put(&next, Precondition::Version(cur.version)).await {
                    Ok(()) => return,
                    Err(StoreError::ConditionFailed) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end = p.store.get(&pk, "counter").await.unwrap().unwrap();
    assert_eq!(end.body["n"], 8, "no increment lost");
    assert_eq!(end.version, 9);
}

async fn store_queries_one_partition_in_order_with_pages(p: Ports) {
    let (a, b) = (format!("WS#{}", unique()), format!("WS#{}", unique()));
    for sk in ["CONN#3", "CONN#1", "AUTH#1", "CONN#2"] {
        p.store.put(&item(&a, sk, 1, json!({"sk": sk})), Precondition::Absent).await.unwrap();
    }
    p.store.put(&item(&b, "CONN#9", 1, json!({})), Precondition::Absent).await.unwrap();
    let first = p.store.query(&a, "CONN#", None, 2).await.unwrap();
    let sks: Vec<_> = first.items.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(sks, ["CONN#1", "CONN#2"]);
    let next = first.next.expect("more pages");
    let second = p.store.query(&a, "CONN#", Some(&next), 2).await.unwrap();
    let rest: Vec<_> = second.items.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(rest, ["CONN#3"]);
    if let Some(after) = second.next {
        assert!(p.store.query(&a, "CONN#", Some(&after), 2).await.unwrap().items.is_empty());
    }
    let all = p.store.query(&a, "", None, 100).await.unwrap();
    assert_eq!(all.items.len(), 4, "the other partition stays out");
}

async fn store_due_index_is_sparse_and_sharded(p: Ports) {
    let pk = format!("WS#{}", unique());
    // Shards are shared by every test on this store: use far-future times
    // that only this test's items carry.
    let base = 4_000_000_000 + (rand_u32() as i64) * 1000;
    let put = |sk: &str, due: Option<Due>| {
        let mut i = item(&pk, sk, 1, json!({"sk": sk}));
        i.due = due;
        i
    };
    p.store.put(&put("AUTH#late", Some(Due { shard: 3, at: base + 50 })), Precondition::Absent).await.unwrap();
    p.store.put(&put("AUTH#early", Some(Due { shard: 3, at: base + 10 })), Precondition::Absent).await.unwrap();
    p.store.put(&put("AUTH#other", Some(Due { shard: 4, at: base + 10 })), Precondition::Absent).await.unwrap();
    p.store.put(&put("AUTH#never", None), Precondition::Absent).await.unwrap();
    let mine = |items: Vec<Item>| -> Vec<String> { items.into_iter().filter(|i| i.pk == pk).map(|i| i.sk).collect() };
    assert_eq!(mine(p.store.due(3, base + 100, 100).await.unwrap()), ["AUTH#early", "AUTH#late"]);
    assert_eq!(mine(p.store.due(3, base + 20, 100).await.unwrap()), ["AUTH#early"]);
    assert_eq!(mine(p.store.due(4, base + 100, 100).await.unwrap()), ["AUTH#other"]);
    // Moving an item out of the index (no due) removes it from the index.
    p.store.put(&put("AUTH#early", None), Precondition::Version(1)).await.unwrap();
    assert_eq!(mine(p.store.due(3, base + 100, 100).await.unwrap()), ["AUTH#late"]);
}

fn rand_u32() -> u32 {
    u32::from_str_radix(&unique()[..6], 16).unwrap()
}

async fn store_round_trips_bodies(p: Ports) {
    let pk = format!("WS#{}", unique());
    let body = json!({
        "text": "Ünïcødé — ✓", "empty": "", "int": 42, "neg": -7, "big": 9007199254740993u64, "float": 1.5,
        "null": null, "yes": true, "list": [1, "two", {"three": 3}], "nothing": [], "map": {"nested": {"deep": [null]}}
    });
    let mut i = item(&pk, "X", 1, body.clone());
    i.expires_at = Some(1_900_000_000);
    i.due = Some(Due { shard: 1, at: 5_000_000_000 });
    p.store.put(&i, Precondition::None).await.unwrap();
    let got = p.store.get(&pk, "X").await.unwrap().unwrap();
    assert_eq!(got, i);
}

async fn vault_stores_versions_and_deletes(p: Ports) {
    let name = format!("connections/test/ws_{}/auth_1", unique());
    let v = &p.vault;
    assert!(v.get(&name).await.unwrap().is_none());
    v.put(&name, &SecretString::from("first")).await.unwrap();
    v.put(&name, &SecretString::from("second")).await.unwrap();
    assert_eq!(v.get(&name).await.unwrap().unwrap().expose_secret(), "second");
    v.delete(&name).await.unwrap();
    assert!(v.get(&name).await.unwrap().is_none());
    v.delete(&name).await.unwrap();
    // Re-creating right after a delete works (no recovery window).
    v.put(&name, &SecretString::from("third")).await.unwrap();
    assert_eq!(v.get(&name).await.unwrap().unwrap().expose_secret(), "third");
    assert!(matches!(v.put("bad name!", &SecretString::from("x")).await, Err(VaultError::InvalidName)));
}

async fn queue_delivers_at_least_once_with_visibility(p: Ports) {
    let q = &p.queue;
    q.send(QueueKind::Sync, r#"{"n":1}"#, 0).await.unwrap();
    q.send(QueueKind::Sync, r#"{"n":2}"#, 900).await.unwrap();
    let got = q.receive(QueueKind::Sync, 10, 0).await.unwrap();
    assert_eq!(got.len(), 1, "the delayed one is not visible: {got:?}");
    assert_eq!((got[0].body.as_str(), got[0].receive_count), (r#"{"n":1}"#, 1));
    // Not acked, visibility 0: delivered again, counted.
    let again = q.receive(QueueKind::Sync, 10, 60).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    // Invisible while held.
    assert!(q.receive(QueueKind::Sync, 10, 60).await.unwrap().is_empty());
    q.ack(QueueKind::Sync, &again[0].receipt).await.unwrap();
    // Other queues are separate.
    assert!(q.receive(QueueKind::Notify, 10, 0).await.unwrap().is_empty());
    let too_big = "x".repeat(300 * 1024);
    assert!(q.send(QueueKind::Sync, &too_big, 0).await.is_err());
}

async fn sink_writes_whole_objects_by_key(p: Ports) {
    let prefix = format!("records/ws_{}/conn_1", unique());
    let s = &p.sink;
    s.put(&format!("{prefix}/orders/00001.jsonl"), Bytes::from_static(b"{\"a\":1}\n"), "application/x-ndjson")
        .await
        .unwrap();
    s.put(&format!("{prefix}/orders/00000.jsonl"), Bytes::from_static(b"{\"a\":0}\n"), "application/x-ndjson")
        .await
        .unwrap();
    // A redelivered batch rewrites the same object.
    s.put(&format!("{prefix}/orders/00001.jsonl"), Bytes::from_static(b"{\"a\":2}\n"), "application/x-ndjson")
        .await
        .unwrap();
    assert_eq!(
        s.list(&prefix).await.unwrap(),
        [format!("{prefix}/orders/00000.jsonl"), format!("{prefix}/orders/00001.jsonl")]
    );
    assert_eq!(
        s.get(&format!("{prefix}/orders/00001.jsonl")).await.unwrap().unwrap(),
        Bytes::from_static(b"{\"a\":2}\n")
    );
    assert!(s.get(&format!("{prefix}/missing")).await.unwrap().is_none());
    assert!(s.put("../escape", Bytes::new(), "text/plain").await.is_err());
}

async fn mailer_sends(p: Ports) {
    let email = Email {
        from: "alerts@example.com".into(),
        to: vec!["admin@example.com".into()],
        subject: "Shopify disconnected".into(),
        text: "Reconnect it.".into(),
        html: "<p>Reconnect it.</p>".into(),
        headers: vec![
            ("List-Unsubscribe".into(), "<https://api.example.com/v1/email/unsubscribe?token=t>".into()),
            ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
        ],
    };
    let id = p.mailer.send(&email).await.unwrap();
    assert!(!id.is_empty());
    let nobody = Email { to: vec![], ..email };
    assert!(p.mailer.send(&nobody).await.is_err());
}
