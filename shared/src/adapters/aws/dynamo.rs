use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ReturnValue, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

use super::describe;
use crate::domain::error::StoreError;
use crate::ports::{Due, Item, Page, Precondition, StateStore};

/// The name of the sparse due-work index.
pub const DUE_INDEX: &str = "due";
/// The name of the sparse list index (partition `pk`, sort `lk`; keys only:
/// a write that leaves an item's list key as it was costs the index nothing).
pub const LIST_INDEX: &str = "list";
/// How often keys BatchGetItem leaves unprocessed (throttled) are asked again.
const BATCH_GET_ATTEMPTS: usize = 5;

/// The state store on one DynamoDB table. Attributes: `pk`, `sk`, `v`
/// (version), `body` (a map), `due_shard`/`due_at` (only on items with due
/// work: the sparse index), `ttl` (epoch seconds), `lk` (only on items in a
/// list index).
#[derive(Clone)]
pub struct DynamoStore {
    client: super::Lazy<Client>,
    table: String,
}

impl DynamoStore {
    pub fn new(client: super::Lazy<Client>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

type Attrs = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn shard_key(shard: u16) -> String {
    format!("DUE#{shard:02}")
}

fn to_attrs(item: &Item) -> Result<Attrs, StoreError> {
    let body: AttributeValue =
        serde_dynamo::to_attribute_value(&item.body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut a = Attrs::new();
    a.insert("pk".into(), s(&item.pk));
    a.insert("sk".into(), s(&item.sk));
    a.insert("v".into(), n(item.version));
    a.insert("body".into(), body);
    if let Some(d) = item.due {
        a.insert("due_shard".into(), s(shard_key(d.shard)));
        a.insert("due_at".into(), n(d.at));
    }
    if let Some(t) = item.expires_at {
        a.insert("ttl".into(), n(t));
    }
    if let Some(lk) = &item.list_key {
        a.insert("lk".into(), s(lk));
    }
    Ok(a)
}

fn get_s<'a>(a: &'a Attrs, k: &str) -> Result<&'a str, StoreError> {
    a.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| StoreError::Corrupt(format!("missing {k}")))
}

fn get_n<T: std::str::FromStr>(a: &Attrs, k: &str) -> Result<Option<T>, StoreError> {
    match a.get(k) {
        None => Ok(None),
        Some(v) => {
            let raw = v.as_n().map_err(|_| StoreError::Corrupt(format!("{k} is not a number")))?;
            raw.parse().map(Some).map_err(|_| StoreError::Corrupt(format!("{k} is out of range")))
        }
    }
}

fn from_attrs(a: Attrs) -> Result<Item, StoreError> {
    let due = match (a.get("due_shard").and_then(|v| v.as_s().ok()), get_n::<i64>(&a, "due_at")?) {
        (Some(shard), Some(at)) => {
            let shard = shard
                .strip_prefix("DUE#")
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("bad due_shard".into()))?;
            Some(Due { shard, at })
        }
        _ => None,
    };
    let body = match a.get("body") {
        Some(b) => serde_dynamo::from_attribute_value(b.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => serde_json::Value::Null,
    };
    Ok(Item {
        pk: get_s(&a, "pk")?.to_owned(),
        sk: get_s(&a, "sk")?.to_owned(),
        version: get_n(&a, "v")?.unwrap_or(0),
        body,
        due,
        expires_at: get_n(&a, "ttl")?,
        list_key: a.get("lk").and_then(|v| v.as_s().ok()).cloned(),
    })
}

/// The condition expression and values of a precondition.
fn condition(pre: Precondition) -> (Option<&'static str>, Option<(String, AttributeValue)>) {
    match pre {
        Precondition::None => (None, None),
        Precondition::Absent => (Some("attribute_not_exists(pk)"), None),
        Precondition::Exists => (Some("attribute_exists(pk)"), None),
        Precondition::Version(v) => (Some("v = :expected"), Some((":expected".into(), n(v)))),
    }
}

/// A query of partition `:pk` where `key` starts with `prefix` (the whole
/// partition for an empty one: DynamoDB takes no empty string in a key
/// condition).
fn within(
    req: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    key: &str,
    prefix: &str,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    if prefix.is_empty() {
        req.key_condition_expression("pk = :pk")
    } else {
        req.key_condition_expression(format!("pk = :pk AND begins_with({key}, :prefix)"))
            .expression_attribute_values(":prefix", s(prefix))
    }
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get()
            .await
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(from_attrs).transpose()
    }

    async fn put(&self, item: &Item, pre: Precondition) -> Result<(), StoreError> {
        let (expr, value) = condition(pre);
        let mut req = self.client.get().await.put_item().table_name(&self.table).set_item(Some(to_attrs(item)?));
        if let Some(expr) = expr {
            req = req.condition_expression(expr);
        }
        if let Some((k, v)) = value {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(StoreError::ConditionFailed)
            }
            // DynamoDB's own words for an item over its limit.
            Err(e)
                if e.as_service_error().and_then(|se| se.meta().message()).is_some_and(|m| m.contains("Item size")) =>
            {
                Err(StoreError::TooLarge(item.size()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, pk: &str, sk: &str, pre: Precondition) -> Result<Option<Item>, StoreError> {
        let (expr, value) = condition(pre);
        let mut req = self
            .client
            .get()
            .await
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .return_values(ReturnValue::AllOld);
        if let Some(expr) = expr {
            req = req.condition_expression(expr);
        }
        if let Some((k, v)) = value {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(out) => out.attributes.filter(|a| !a.is_empty()).map(from_attrs).transpose(),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(StoreError::ConditionFailed)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn query(&self, pk: &str, sk_prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let mut req = self
            .client
            .get()
            .await
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(pk))
            .limit(limit.clamp(1, 1000) as i32);
        req = within(req, "sk", sk_prefix);
        if let Some(after) = after {
            req = req.exclusive_start_key("pk", s(pk)).exclusive_start_key("sk", s(after));
        }
        let out = req.send().await.map_err(unavailable)?;
        let items = out.items.unwrap_or_default().into_iter().map(from_attrs).collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key.and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned());
        Ok(Page { items, next })
    }

    async fn due(&self, shard: u16, until: i64, limit: usize) -> Result<Vec<Item>, StoreError> {
        let out = self
            .client
            .get()
            .await
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_shard = :shard AND due_at <= :until")
            .expression_attribute_values(":shard", s(shard_key(shard)))
            .expression_attribute_values(":until", n(until))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        out.items.unwrap_or_default().into_iter().map(from_attrs).collect()
    }

    async fn listed(&self, pk: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let client = self.client.get().await;
        // The page's keys from the index, in its order...
        let mut req = client
            .query()
            .table_name(&self.table)
            .index_name(LIST_INDEX)
            .expression_attribute_values(":pk", s(pk))
            .limit(limit.clamp(1, 100) as i32);
        req = within(req, "lk", prefix);
        if let Some((lk, sk)) = after.and_then(crate::ports::split_list_position) {
            req =
                req.exclusive_start_key("pk", s(pk)).exclusive_start_key("sk", s(sk)).exclusive_start_key("lk", s(lk));
        }
        let out = req.send().await.map_err(unavailable)?;
        let next = out.last_evaluated_key.as_ref().and_then(|k| {
            let (lk, sk) = (k.get("lk")?.as_s().ok()?, k.get("sk")?.as_s().ok()?);
            Some(crate::ports::list_position(lk, sk))
        });
        let order: Vec<String> = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        // ...then the items as they are now (the index is eventually
        // consistent), read together.
        let mut found: HashMap<String, Item> = HashMap::new();
        let mut wanted: Vec<Attrs> =
            order.iter().map(|sk| Attrs::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])).collect();
        for _ in 0..BATCH_GET_ATTEMPTS {
            if wanted.is_empty() {
                break;
            }
            let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut wanted)))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let got = client.batch_get_item().request_items(&self.table, keys).send().await.map_err(unavailable)?;
            for a in got.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                let item = from_attrs(a)?;
                found.insert(item.sk.clone(), item);
            }
            wanted = got.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
        }
        if !wanted.is_empty() {
            return Err(StoreError::Unavailable("DynamoDB left keys of a list page unread (throttled)".into()));
        }
        let items = order
            .iter()
            .filter_map(|sk| found.remove(sk))
            .filter(|i| i.list_key.as_deref().is_some_and(|lk| lk.starts_with(prefix)))
            .collect();
        Ok(Page { items, next })
    }
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, String> {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(|e| e.to_string())
}

fn attr(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, String> {
    AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().map_err(|e| e.to_string())
}

/// Creates the table as `template.yaml` declares it (idempotent).
pub(crate) async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    let index = GlobalSecondaryIndex::builder()
        .index_name(DUE_INDEX)
        .key_schema(key("due_shard", KeyType::Hash)?)
        .key_schema(key("due_at", KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(|e| e.to_string())?;
    let list = GlobalSecondaryIndex::builder()
        .index_name(LIST_INDEX)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("lk", KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .map_err(|e| e.to_string())?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("sk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("due_shard", ScalarAttributeType::S)?)
        .attribute_definitions(attr("due_at", ScalarAttributeType::N)?)
        .attribute_definitions(attr("lk", ScalarAttributeType::S)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index)
        .global_secondary_indexes(list)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => return Ok(()),
        Err(e) => return Err(describe(&e)),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(())
}
