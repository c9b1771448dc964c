//! A page of records read without building a tree of every record: the
//! records pass through as the platform's own JSON text, and only what the
//! engine needs (paging fields, the cursor field of each record) is parsed.
//!
//! One pass over the page splits it: everything outside the record list
//! becomes a small [`serde_json::Value`] (the skeleton, where the next-page
//! pointers and totals are read), and the record list becomes borrowed
//! slices of the body ([`RawValue`]), never copied or re-encoded.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// A page split at its record list.
pub struct RawPage<'a> {
    /// The page without its record list (paging fields, totals).
    pub skeleton: Value,
    /// The records, as sent; `None` when nothing at the pointer is a list.
    pub records: Option<Vec<&'a RawValue>>,
}

/// The tokens of a JSON pointer (RFC 6901), unescaped.
fn tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer.trim_start_matches('/').split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
}

/// Splits a page at `records_pointer` in one pass.
pub fn split<'a>(body: &'a [u8], records_pointer: &str) -> Result<RawPage<'a>, serde_json::Error> {
    let path = tokens(records_pointer);
    let mut records = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let skeleton = Split { path: &path, out: &mut records }.deserialize(&mut de)?;
    de.end()?;
    Ok(RawPage { skeleton, records })
}

/// The value at `pointer` inside a record, read without building the record.
pub fn raw_at<'a>(raw: &'a RawValue, pointer: &str) -> Option<&'a RawValue> {
    if pointer.is_empty() {
        return Some(raw);
    }
    let path = tokens(pointer);
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Find { path: &path }.deserialize(&mut de).ok().flatten()
}

/// A string or number at `pointer` inside a record, as text (what
/// [`super::pointer_str`] gives for the parsed record).
pub fn raw_str(raw: &RawValue, pointer: &str) -> Option<String> {
    let leaf = raw_at(raw, pointer)?.get();
    // A plain string (the common cursor) needs no parsing.
    if let Some(s) = leaf.strip_prefix('"').and_then(|s| s.strip_suffix('"')).filter(|s| !s.contains('\\')) {
        return (!s.is_empty()).then(|| s.to_owned());
    }
    super::pointer_str(&serde_json::from_str::<Value>(leaf).ok()?, "")
}

/// Appends a record as one JSON Lines line. Line breaks inside a JSON text
/// can only be whitespace between tokens (inside strings they are escaped),
/// so they become spaces and the record stays byte-for-byte what was sent
/// otherwise.
pub fn push_line(out: &mut Vec<u8>, raw: &RawValue) {
    let start = out.len();
    out.extend_from_slice(raw.get().as_bytes());
    for b in &mut out[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    out.push(b'\n');
}

struct Split<'p, 's, 'a> {
    path: &'p [String],
    out: &'s mut Option<Vec<&'a RawValue>>,
}

impl<'de> DeserializeSeed<'de> for Split<'_, '_, 'de> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.path.is_empty() {
            d.deserialize_any(Leaf { out: self.out })
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Split<'_, '_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = if key == self.path[0] && self.out.is_none() {
                access.next_value_seed(Split { path: &self.path[1..], out: &mut *self.out })?
            } else {
                access.next_value::<Value>()?
            };
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let at: Option<usize> = self.path[0].parse().ok();
        let mut list = Vec::new();
        loop {
            let next = if at == Some(list.len()) && self.out.is_none() {
                access.next_element_seed(Split { path: &self.path[1..], out: &mut *self.out })?
            } else {
                access.next_element::<Value>()?
            };
            match next {
                Some(v) => list.push(v),
                None => return Ok(Value::Array(list)),
            }
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// The value at the record pointer: a list is kept as raw elements (and
/// left out of the skeleton); anything else is skipped (no records).
struct Leaf<'s, 'a> {
    out: &'s mut Option<Vec<&'a RawValue>>,
}

impl<'de> Visitor<'de> for Leaf<'_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut records = Vec::with_capacity(access.size_hint().unwrap_or(0));
        while let Some(r) = access.next_element::<&'de RawValue>()? {
            records.push(r);
        }
        *self.out = Some(records);
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        while access.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Finds the raw value at a path, skipping everything else unbuilt.
struct Find<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.path.is_empty() {
            <&'de RawValue>::deserialize(d).map(Some)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is) = access.next_key_seed(KeyIs(&self.path[0]))? {
            if is && found.is_none() {
                found = access.next_value_seed(Find { path: &self.path[1..] })?;
            } else {
                access.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let at: Option<usize> = self.path[0].parse().ok();
        let mut found = None;
        let mut i = 0usize;
        loop {
            if at == Some(i) {
                match access.next_element_seed(Find { path: &self.path[1..] })? {
                    Some(f) => found = f,
                    None => return Ok(found),
                }
            } else if access.next_element::<IgnoredAny>()?.is_none() {
                return Ok(found);
            }
            i += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Compares an object key with a token without allocating it.
struct KeyIs<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// The `rel="next"` target of a response's `Link` headers (RFC 8288), as
/// Shopify, Stripe-like and GitHub-like APIs page: a target may hold commas
/// and semicolons (it runs to its `>`), `rel` may list several relation
/// types (`rel="next last"`) in any case. `None` when no link is `next`.
pub fn next_link(headers: &http::HeaderMap) -> Option<String> {
    headers.get_all(http::header::LINK).iter().filter_map(|v| v.to_str().ok()).find_map(next_in)
}

fn next_in(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        // This link's parameters run to the next link's `<`.
        let end = after.find('<').unwrap_or(after.len());
        let is_next = after[..end].split([';', ',']).any(|param| {
            let Some((name, value)) = param.split_once('=') else { return false };
            name.trim().eq_ignore_ascii_case("rel")
                && value.trim().trim_matches('"').split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_owned());
        }
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_splits_into_its_paging_fields_and_raw_records() {
        let body = br#"{"data": {"orders": {"edges": [{"node": {"id": 1, "updated_at": "2026-01-02"}},
            {"node": {"id": 2,
              "updated_at": "2026-01-03", "note": "a\nb"}}], "pageInfo": {"hasNextPage": true, "endCursor": "c2"}}}}"#;
        let page = split(body, "/data/orders/edges").unwrap();
        let records = page.records.unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(page.skeleton.pointer("/data/orders/pageInfo/endCursor").unwrap(), "c2");
        assert_eq!(page.skeleton.pointer("/data/orders/edges"), Some(&Value::Null));
        let node = raw_at(records[1], "/node").unwrap();
        assert_eq!(raw_str(node, "/updated_at").as_deref(), Some("2026-01-03"));
        assert_eq!(raw_str(node, "/id").as_deref(), Some("2"));
        assert_eq!(raw_str(node, "/missing"), None);
        let mut out = Vec::new();
        push_line(&mut out, node);
        let line = std::str::from_utf8(&out).unwrap();
        assert_eq!(line.matches('\n').count(), 1, "one line a record: {line}");
        let back: Value = serde_json::from_str(line).unwrap();
        assert_eq!(back["note"], "a\nb");
        assert_eq!(back["id"], 2);
        // Numbers keep the platform's exact text (a tree would round them).
        let page = split(br#"{"d": [{"amount": 1.10, "big": 123456789012345678901234567890}]}"#, "/d").unwrap();
        let mut out = Vec::new();
        push_line(&mut out, page.records.unwrap()[0]);
        assert_eq!(out, b"{\"amount\": 1.10, \"big\": 123456789012345678901234567890}\n");
    }

    #[test]
    fn the_whole_body_may_be_the_list_and_a_non_list_gives_no_records() {
        let page = split(b"[{\"a\":1},{\"a\":2}]", "").unwrap();
        assert_eq!(page.records.unwrap().len(), 2);
        let page = split(br#"{"data": {"error": "x"}, "next": 5}"#, "/data").unwrap();
        assert!(page.records.is_none());
        assert_eq!(page.skeleton["next"], 5);
        assert!(split(br#"{"data": [1, 2"#, "/data").is_err(), "a cut page is refused");
        assert!(split(br#"{"data": []} trailing"#, "/data").is_err());
        // Pointer escapes and list indexes.
        let page = split(br#"{"a/b": [{"x": [7]}, {"x": [8, 9]}]}"#, "/a~1b/1/x").unwrap();
        assert_eq!(page.records.unwrap().len(), 2);
        let rec = RawValue::from_string(r#"{"list": [{"k": "v0"}, {"k": "v1"}]}"#.into()).unwrap();
        assert_eq!(raw_str(&rec, "/list/1/k").as_deref(), Some("v1"));
        let rec = RawValue::from_string(r#"{"escaped": "a\"b", "empty": "", "n": 7, "t": true}"#.into()).unwrap();
        assert_eq!(raw_str(&rec, "/escaped").as_deref(), Some("a\"b"));
        assert_eq!(raw_str(&rec, "/empty"), None);
        assert_eq!(raw_str(&rec, "/n").as_deref(), Some("7"));
        assert_eq!(raw_str(&rec, "/t"), None);
    }
}
