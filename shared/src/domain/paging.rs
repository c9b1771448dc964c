//! Pages of a list read whole (a workspace's authorizations, members,
//! notifications, a connection's uploads and connections): `limit` items
//! from the position an opaque cursor names. The cursor is bound to the
//! list's shape (its filters and order), so a cursor of another list is
//! refused rather than skipping or repeating items.

use base64::Engine;
use sha2::Digest;

use super::error::Error;

/// Items a page holds when the caller does not say.
pub const DEFAULT_PAGE: usize = 100;
/// The most items one page holds.
pub const MAX_PAGE: usize = 500;

/// What a caller asked of a paged list: from where, and how many.
#[derive(Clone, Debug, Default)]
pub struct PageAsk {
    /// The `next_cursor` of the page before (none: the first page).
    pub cursor: Option<String>,
    pub limit: usize,
}

/// A page size from the `limit` parameter.
pub fn limit(given: Option<&str>) -> Result<usize, Error> {
    match given {
        None => Ok(DEFAULT_PAGE),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(Error::invalid("limit", format!("must be a whole number from 1 to {MAX_PAGE}"))),
        },
    }
}

/// The page of `items` after `cursor`, and the next page's cursor (`None`
/// on the last page). `shape` names the list (what it is, its filters and
/// order).
pub fn page<T>(
    items: Vec<T>,
    shape: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<T>, Option<String>), Error> {
    let offset = offset_of(shape, cursor)?;
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let end = offset + page.len();
    Ok((page, (end < total).then(|| cursor_at(shape, end))))
}

fn fingerprint(shape: &str) -> String {
    hex::encode(&sha2::Sha256::digest(shape.as_bytes())[..8])
}

/// What a cursor of the list `shape` holds before its fingerprint (`None`
/// without one); a cursor of another list is refused.
fn decoded(shape: &str, cursor: Option<&str>) -> Result<Option<String>, Error> {
    let Some(c) = cursor else { return Ok(None) };
    let text = B64.decode(c).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(not_this_list)?;
    match text.rsplit_once('.') {
        Some((held, fp)) if fp == fingerprint(shape) => Ok(Some(held.to_owned())),
        _ => Err(not_this_list()),
    }
}

fn not_this_list() -> Error {
    Error::invalid("cursor", "is not a cursor of this list (same filters and sort); start again without it")
}

/// Where in the list `shape` a cursor points (0 without one); a cursor of
/// another list is refused.
pub fn offset_of(shape: &str, cursor: Option<&str>) -> Result<usize, Error> {
    match decoded(shape, cursor)? {
        None => Ok(0),
        Some(held) => held.parse::<usize>().map_err(|_| not_this_list()),
    }
}

/// The cursor of the list `shape` at `offset`.
pub fn cursor_at(shape: &str, offset: usize) -> String {
    B64.encode(format!("{offset}.{}", fingerprint(shape)))
}

/// The cursor of a page read from an index: the position it ended at,
/// bound to the list `shape`.
pub fn cursor_after(shape: &str, position: &str) -> String {
    B64.encode(format!("@{position}.{}", fingerprint(shape)))
}

/// The position a cursor of [`cursor_after`] names (`None` without one); a
/// cursor of another list, or of a list read whole, is refused.
pub fn position_of(shape: &str, cursor: Option<&str>) -> Result<Option<String>, Error> {
    match decoded(shape, cursor)? {
        None => Ok(None),
        Some(held) => held.strip_prefix('@').map(|p| Some(p.to_owned())).ok_or_else(not_this_list),
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_the_list_once_and_cursors_belong_to_their_list() {
        let items: Vec<u32> = (0..7).collect();
        let (first, next) = page(items.clone(), "a", None, 3).unwrap();
        assert_eq!(first, [0, 1, 2]);
        let (second, next) = page(items.clone(), "a", next.as_deref(), 3).unwrap();
        assert_eq!(second, [3, 4, 5]);
        let (last, next) = page(items.clone(), "a", next.as_deref(), 3).unwrap();
        assert_eq!((last, next), (vec![6], None));
        let (_, cursor) = page(items.clone(), "a", None, 3).unwrap();
        assert!(page(items.clone(), "b", cursor.as_deref(), 3).is_err(), "another list's cursor");
        assert!(page(items.clone(), "a", Some("garbage"), 3).is_err());
        assert_eq!(limit(None).unwrap(), DEFAULT_PAGE);
        assert!(limit(Some("0")).is_err() && limit(Some("501")).is_err() && limit(Some("x")).is_err());
        // A position in an index, bound to its list; an offset cursor is not one.
        let at = cursor_after("a", "K4.123\nx.y");
        assert_eq!(position_of("a", Some(&at)).unwrap().as_deref(), Some("K4.123\nx.y"));
        assert_eq!(position_of("a", None).unwrap(), None);
        assert!(position_of("b", Some(&at)).is_err(), "another list's");
        assert!(position_of("a", cursor.as_deref()).is_err(), "an offset cursor");
        assert!(offset_of("a", Some(&at)).is_err(), "a position is no offset");
    }
}
