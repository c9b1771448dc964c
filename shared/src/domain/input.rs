//! Rules for what people type: names, clients, stream selections, email
//! addresses. Messages name the field and the expected shape, never the
//! value.

use serde::Deserialize;

use super::error::Error;
use super::ids::ClientId;
use super::model::{ClientRef, StreamSelection};

/// A name people give (a data source, an authorization, a client, a member):
/// trimmed, 1 to 100 characters, no control characters.
pub fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "must be 1 to 100 printable characters"));
    }
    Ok(name.to_owned())
}

/// An email address, trimmed.
pub fn check_email(email: &str) -> Result<String, Error> {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
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
