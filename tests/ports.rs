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
    store_refuses_an_item_over_dynamodbs_limit,
    store_list_index_pages_in_list_key_order_and_follows_changes,
    vault_stores_versions_and_deletes,
    vault_keeps_named_versions,
    packs_hold_many_credentials_in_one_secret,
    packs_lose_no_write_to_a_race,
    packs_spill_what_does_not_fit,
    packs_keep_a_busy_credential_on_its_own,
    queue_delivers_at_least_once_with_visibility,
    sink_writes_whole_objects_by_key,
    mailer_sends,
);

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn item(pk: &str, sk: &str, version: u64, body: serde_json::Value) -> Item {
    Item { pk: pk.into(), sk: sk.into(), version, body, due: None, expires_at: None, list_key: None }
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

/// DynamoDB refuses an item over 400 KB; the embedded store refuses it too,
/// so a test meets the limit a deployment has (and the error says what it
/// is: no outage to wait out).
async fn store_refuses_an_item_over_dynamodbs_limit(p: Ports) {
    let pk = format!("WS#{}", unique());
    let under = item(&pk, "UNDER", 1, json!({"blob": "x".repeat(390_000)}));
    assert!(under.size() <= shared::ports::MAX_ITEM_BYTES);
    p.store.put(&under, Precondition::None).await.unwrap();
    let over = item(&pk, "OVER", 1, json!({"blob": "x".repeat(410_000)}));
    match p.store.put(&over, Precondition::None).await {
        Err(StoreError::TooLarge(size)) => assert_eq!(size, over.size()),
        other => panic!("an item of {} bytes: {other:?}", over.size()),
    }
    assert!(p.store.get(&pk, "OVER").await.unwrap().is_none(), "nothing of it is written");
}

/// The list index: a partition's items with a list key, in list-key order
/// (not sort-key order), under a prefix, paged; an item that changes its
/// list key moves, one that leaves it or is deleted is gone, and items
/// without one are not in it.
async fn store_list_index_pages_in_list_key_order_and_follows_changes(p: Ports) {
    let (pk, other) = (format!("WS#{}", unique()), format!("WS#{}", unique()));
    let s = &p.store;
    let listed =
        |sk: &str, lk: Option<&str>| Item { list_key: lk.map(str::to_owned), ..item(&pk, sk, 1, json!({"sk": sk})) };
    // Sort keys and list keys in opposite orders.
    for (sk, lk) in [("C#1", "A#3"), ("C#2", "A#2"), ("C#3", "A#1"), ("C#4", "B#1"), ("C#5", "B#0")] {
        s.put(&listed(sk, Some(lk)), Precondition::None).await.unwrap();
    }
    s.put(&listed("C#6", None), Precondition::None).await.unwrap();
    s.put(&Item { list_key: Some("A#0".into()), ..item(&other, "C#9", 1, json!({})) }, Precondition::None)
        .await
        .unwrap();
    let sks = |page: &shared::ports::Page| page.items.iter().map(|i| i.sk.clone()).collect::<Vec<_>>();
    let first = s.listed(&pk, "", None, 2).await.unwrap();
    assert_eq!(sks(&first), ["C#3", "C#2"]);
    assert_eq!(first.items[0].list_key.as_deref(), Some("A#1"));
    let second = s.listed(&pk, "", first.next.as_deref(), 2).await.unwrap();
    assert_eq!(sks(&second), ["C#1", "C#5"]);
    let last = s.listed(&pk, "", second.next.as_deref(), 2).await.unwrap();
    assert_eq!((sks(&last), last.next.is_none()), (vec!["C#4".to_owned()], true));
    let a = s.listed(&pk, "A#", None, 10).await.unwrap();
    assert_eq!((sks(&a), a.next), (vec!["C#3".to_owned(), "C#2".into(), "C#1".into()], None));
    // C#1 moves to B, C#2 leaves the index, C#3 is deleted.
    s.put(&Item { version: 2, ..listed("C#1", Some("B#9")) }, Precondition::Version(1)).await.unwrap();
    s.put(&Item { version: 2, ..listed("C#2", None) }, Precondition::Version(1)).await.unwrap();
    s.delete(&pk, "C#3", Precondition::None).await.unwrap();
    // The index may trail (DynamoDB's is eventually consistent; moto's and
    // the embedded store's are not): what it lists is read as it is now.
    let now = s.listed(&pk, "", None, 10).await.unwrap();
    assert_eq!(sks(&now), ["C#5", "C#4", "C#1"]);
    assert_eq!(now.items[2].version, 2);
    assert!(s.listed(&pk, "A#", None, 10).await.unwrap().items.is_empty());
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

async fn vault_keeps_named_versions(p: Ports) {
    let name = format!("connections/test/packs/auth-{}", unique());
    let v = &p.vault;
    let (one, two) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    assert!(v.get_version(&name, &one).await.unwrap().is_none(), "no secret yet");
    v.put_version(&name, &one, &SecretString::from("first")).await.unwrap();
    v.put_version(&name, &two, &SecretString::from("second")).await.unwrap();
    // The same version and value again (a retried request) changes nothing.
    v.put_version(&name, &two, &SecretString::from("second")).await.unwrap();
    assert_eq!(v.get_version(&name, &one).await.unwrap().unwrap().expose_secret(), "first");
    assert_eq!(v.get_version(&name, &two).await.unwrap().unwrap().expose_secret(), "second");
    assert!(v.get_version(&name, &uuid::Uuid::new_v4().to_string()).await.unwrap().is_none(), "an unknown version");
    v.delete(&name).await.unwrap();
    assert!(v.get_version(&name, &two).await.unwrap().is_none());
}

fn packed(p: &Ports, size: u64) -> shared::store::vault_packs::PackedVault {
    shared::store::vault_packs::PackedVault::new(p.vault.clone(), p.store.clone(), p.clock.clone(), size)
}

async fn packs_hold_many_credentials_in_one_secret(p: Ports) {
    use shared::ports::SecretVault;
    let prefix = format!("connections/t{}", unique());
    let packs = packed(&p, 3);
    let ws = shared::domain::ids::WorkspaceId::parse("ws_pack").unwrap();
    let mut names = Vec::new();
    for i in 0..4 {
        let name = packs.allocate(&prefix, &ws, &format!("auth_{i}")).await.unwrap();
        packs.put(&name.0, &SecretString::from(format!("tokens {i}"))).await.unwrap();
        names.push(name.0);
    }
    let key = packs.allocate(&prefix, &ws, "conn_1").await.unwrap();
    packs.put(&key.0, &SecretString::from("key")).await.unwrap();
    // Three to a pack, in order; keys in packs of their own kind.
    assert_eq!(names[0], format!("{prefix}/packs/auth-s3-0/ws/ws_pack/auth_0"));
    assert_eq!(names[2], format!("{prefix}/packs/auth-s3-0/ws/ws_pack/auth_2"));
    assert_eq!(names[3], format!("{prefix}/packs/auth-s3-1/ws/ws_pack/auth_3"));
    assert_eq!(key.0, format!("{prefix}/packs/conn-s3-0/ws/ws_pack/conn_1"));
    for (i, name) in names.iter().enumerate() {
        assert_eq!(packs.get(name).await.unwrap().unwrap().expose_secret(), &format!("tokens {i}"));
    }
    // The pack is one secret; its entries are nothing of their own.
    assert!(p.vault.get(&format!("{prefix}/packs/auth-s3-0")).await.unwrap().is_some());
    assert!(p.vault.get(&names[0]).await.unwrap().is_none());
    // A new version of one entry leaves the others as they were.
    packs.put(&names[1], &SecretString::from("rotated")).await.unwrap();
    assert_eq!(packs.get(&names[1]).await.unwrap().unwrap().expose_secret(), "rotated");
    assert_eq!(packs.get(&names[0]).await.unwrap().unwrap().expose_secret(), "tokens 0");
    // Deleted: gone, twice is fine, the rest stay.
    packs.delete(&names[0]).await.unwrap();
    packs.delete(&names[0]).await.unwrap();
    assert!(packs.get(&names[0]).await.unwrap().is_none());
    assert_eq!(packs.get(&names[2]).await.unwrap().unwrap().expose_secret(), "tokens 2");
    let mut held = packs.names_in(&format!("{prefix}/packs/auth-s3-0")).await.unwrap();
    held.sort();
    assert_eq!(held, vec![names[1].clone(), names[2].clone()]);
    // An entry never written reads as missing; other names are secrets of
    // their own, as before packing.
    assert!(packs.get(&format!("{prefix}/packs/auth-s3-0/ws/ws_pack/auth_9")).await.unwrap().is_none());
    let own = format!("{prefix}/apps/sandbox_oauth");
    packs.put(&own, &SecretString::from("client")).await.unwrap();
    assert_eq!(p.vault.get(&own).await.unwrap().unwrap().expose_secret(), "client");
    // Another pack size (a deployment that changes VAULT_PACK_SIZE) has
    // packs and a counter of its own: its slots never land in packs filled
    // at the old size, past their size.
    let resized = packed(&p, 2).allocate(&prefix, &ws, "auth_resized").await.unwrap();
    assert_eq!(resized.0, format!("{prefix}/packs/auth-s2-0/ws/ws_pack/auth_resized"));
    // A pack size of one: each credential in its own secret.
    let single = packed(&p, 1).allocate(&prefix, &ws, "auth_x").await.unwrap();
    assert_eq!(single.0, format!("{prefix}/ws/ws_pack/auth_x"));
    // Refresh tokens that rotate share packs of their own, few to a pack:
    // 18 writes a day each, three to a pack (three quarters of its 72).
    let mut busy = Vec::new();
    for i in 0..4 {
        busy.push(packed(&p, 40).allocate_for(&prefix, &ws, &format!("auth_r{i}"), 18).await.unwrap().0);
    }
    let mut families: Vec<&str> = busy.iter().map(|n| n.split("/ws/").next().unwrap()).collect();
    families.sort();
    families.dedup();
    assert_eq!(
        families,
        vec![format!("{prefix}/packs/auth-r3-0").as_str(), format!("{prefix}/packs/auth-r3-1").as_str()]
    );
    // Written more than 27 times a day: a secret each.
    assert_eq!(
        packed(&p, 40).allocate_for(&prefix, &ws, "auth_hot", 28).await.unwrap().0,
        format!("{prefix}/ws/ws_pack/auth_hot")
    );
}

async fn packs_lose_no_write_to_a_race(p: Ports) {
    use shared::ports::SecretVault;
    let prefix = format!("connections/t{}", unique());
    let packs = std::sync::Arc::new(packed(&p, 40));
    let ws = shared::domain::ids::WorkspaceId::parse("ws_race").unwrap();
    let mut names = Vec::new();
    for i in 0..8 {
        names.push(packs.allocate(&prefix, &ws, &format!("auth_{i}")).await.unwrap().0);
    }
    // Eight writers at once on one pack, twice each: every last write stays.
    let writers: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let packs = packs.clone();
            tokio::spawn(async move {
                for round in 0..2 {
                    packs.put(&name, &SecretString::from(format!("{name} {round}"))).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for name in &names {
        assert_eq!(packs.get(name).await.unwrap().unwrap().expose_secret(), &format!("{name} 1"));
    }
}

async fn packs_spill_what_does_not_fit(p: Ports) {
    use shared::ports::SecretVault;
    let prefix = format!("connections/t{}", unique());
    let packs = packed(&p, 40);
    let ws = shared::domain::ids::WorkspaceId::parse("ws_big").unwrap();
    let small = packs.allocate(&prefix, &ws, "auth_small").await.unwrap().0;
    let big = packs.allocate(&prefix, &ws, "auth_big").await.unwrap().0;
    packs.put(&small, &SecretString::from("small")).await.unwrap();
    let large = "x".repeat(shared::store::vault_packs::PACK_MAX_BYTES);
    packs.put(&big, &SecretString::from(large.clone())).await.unwrap();
    // Kept whole in a secret of its own, found through the pack.
    assert_eq!(packs.get(&big).await.unwrap().unwrap().expose_secret(), &large);
    assert_eq!(p.vault.get(&big).await.unwrap().unwrap().expose_secret(), &large);
    assert_eq!(packs.get(&small).await.unwrap().unwrap().expose_secret(), "small");
    // Its next version goes to the same place; deleting removes it.
    packs.put(&big, &SecretString::from("now small")).await.unwrap();
    assert_eq!(packs.get(&big).await.unwrap().unwrap().expose_secret(), "now small");
    packs.delete(&big).await.unwrap();
    assert!(packs.get(&big).await.unwrap().is_none());
    assert!(p.vault.get(&big).await.unwrap().is_none(), "the spilled secret is deleted");
    assert_eq!(packs.get(&small).await.unwrap().unwrap().expose_secret(), "small");
}

async fn packs_keep_a_busy_credential_on_its_own(p: Ports) {
    use shared::ports::SecretVault;
    use shared::store::vault_packs::PACK_DAILY_WRITES;
    let prefix = format!("connections/t{}", unique());
    let packs = packed(&p, 40);
    let ws = shared::domain::ids::WorkspaceId::parse("ws_busy").unwrap();
    let (busy, quiet) = (
        packs.allocate(&prefix, &ws, "auth_busy").await.unwrap().0,
        packs.allocate(&prefix, &ws, "auth_quiet").await.unwrap().0,
    );
    packs.put(&quiet, &SecretString::from("quiet")).await.unwrap();
    // A refresh token that rotates on every use: the pack takes a day's
    // writes, then the busy one is kept on its own (Secrets Manager keeps
    // every version younger than a day).
    for n in 1..PACK_DAILY_WRITES {
        packs.put(&busy, &SecretString::from(format!("rt {n}"))).await.unwrap();
    }
    assert!(p.vault.get(&busy).await.unwrap().is_none(), "still in the pack");
    packs.put(&busy, &SecretString::from("rt spilled")).await.unwrap();
    assert_eq!(p.vault.get(&busy).await.unwrap().unwrap().expose_secret(), "rt spilled", "on its own now");
    assert_eq!(packs.get(&busy).await.unwrap().unwrap().expose_secret(), "rt spilled");
    packs.put(&busy, &SecretString::from("rt later")).await.unwrap();
    assert_eq!(packs.get(&busy).await.unwrap().unwrap().expose_secret(), "rt later");
    assert_eq!(packs.get(&quiet).await.unwrap().unwrap().expose_secret(), "quiet");
    let pack = busy.rsplit_once("/ws/").unwrap().0;
    let mut held = packs.names_in(pack).await.unwrap();
    held.sort();
    assert_eq!(held, vec![busy.clone(), quiet.clone()]);
    packs.delete(&busy).await.unwrap();
    assert!(packs.get(&busy).await.unwrap().is_none());
    assert!(p.vault.get(&busy).await.unwrap().is_none(), "its own secret is deleted");
    assert_eq!(packs.get(&quiet).await.unwrap().unwrap().expose_secret(), "quiet");
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
