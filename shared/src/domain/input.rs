//! Rules for what people type: names, clients, stream selections, email
//! addresses. Messages name the field and the expected shape, never the
//! value.

use serde::Deserialize;

use super::error::Error;
use super::ids::ClientId;
use super::model::{ClientRef, StreamSelection};

/// Characters a name must not hold although they are not control
/// characters: line and paragraph separators (they break email subjects and
/// headers) and bidirectional controls (they make a name read as another).
fn is_disguising(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A name people give (a data source, an authorization, a client, a member):
/// trimmed, 1 to 100 characters, no control characters, no line separators
/// and no bidirectional overrides.
pub fn check_name(name: &str) -> Result<String, Error> {
    // The length as sent (the documented maxLength), then trimmed.
    let sent = name.chars().count();
    let name = name.trim();
    if name.is_empty() || sent > 100 || name.chars().any(|c| c.is_control() || is_disguising(c)) {
        return Err(Error::invalid(
            "name",
            "must be 1 to 100 printable characters, without line breaks or direction controls",
        ));
    }
    Ok(name.to_owned())
}

/// One email address, trimmed: a local part, one `@`, a domain; nothing
/// that would make it a list or a display name (`,` `;` `<` `>` `"`).
/// A member's time zone: an IANA name ("Europe/Paris", "UTC").
pub fn check_time_zone(name: &str) -> Result<String, Error> {
    let name = name.trim();
    name.parse::<chrono_tz::Tz>().map(|tz| tz.name().to_owned()).map_err(|_| {
        Error::invalid("time_zone", "must be an IANA time zone name such as Europe/Paris or America/New_York")
    })
}

pub fn check_email(email: &str) -> Result<String, Error> {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.matches('@').count() == 1
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains("..")
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || is_disguising(c) || ",;<>\"()[]\\:".contains(c));
    if ok {
        Ok(e.to_owned())
    } else {
        Err(Error::invalid("email", "must be an email address"))
    }
}

/// The agency client a request names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    pub id: String,
    pub name: String,
}

impl ClientInput {
    pub fn check(&self) -> Result<ClientRef, Error> {
        Ok(ClientRef { id: ClientId::parse(&self.id)?, name: check_name(&self.name)? })
    }
}

/// An optional client, checked.
pub fn check_client(input: Option<&ClientInput>) -> Result<Option<ClientRef>, Error> {
    input.map(ClientInput::check).transpose()
}

/// Selects exactly the named streams; every name must be one of `streams`.
/// `owner` says whose streams they are, for the message.
pub fn select_streams(streams: &mut [StreamSelection], selected: &[String], owner: &str) -> Result<(), Error> {
    for name in selected {
        if !streams.iter().any(|s| &s.name == name) {
            return Err(Error::invalid("selected_streams", format!("{name} is not a stream of {owner}")));
        }
    }
    for s in streams.iter_mut() {
        s.selected = selected.contains(&s.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Acme ").unwrap(), "Acme");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
        assert!(check_name("a\u{7}b").is_err());
        for disguised in ["Acme\u{2028}Bcc: x", "Acme\u{2029}Inc", "\u{202E}gnp.exe", "A\u{2066}B\u{2069}", "A\u{200F}"]
        {
            assert!(check_name(disguised).is_err(), "{disguised:?}");
        }
        assert_eq!(check_name("Café Zoë — 北京").unwrap(), "Café Zoë — 北京");
    }

    #[test]
    fn an_email_is_one_address() {
        assert_eq!(check_email(" ops@example.com ").unwrap(), "ops@example.com");
        for many in [
            "a@example.com,b@example.com",
            "a@example.com;b@example.com",
            "Ops <ops@example.com>",
            "a@b@example.com",
            "\"a b\"@example.com",
            "a@example..com",
            "a@example.com.",
            "a@localhost",
        ] {
            assert!(check_email(many).is_err(), "{many}");
        }
    }

    #[test]
    fn stream_selection_names_known_streams_only() {
        let mut s = vec![
            StreamSelection { name: "orders".into(), selected: true },
            StreamSelection { name: "customers".into(), selected: true },
        ];
        select_streams(&mut s, &["customers".into()], "Shopify").unwrap();
        assert!(!s[0].selected && s[1].selected);
        let e = select_streams(&mut s, &["nope".into()], "Shopify").unwrap_err();
        assert!(e.to_string().contains("nope is not a stream of Shopify"));
    }
}
