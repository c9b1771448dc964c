//! Parsed identifier newtypes: a value of one of these types is always valid.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::error::Error;

/// A string newtype that is valid by construction: the struct, serde
/// through its `parse`, `as_str`, `Display` and the conversion to `String`.
/// Each kind writes its own `parse`.
macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Identifiers minted by the service: a fixed prefix and 32 lowercase hex digits.
macro_rules! minted_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        string_newtype!($(#[$doc])* $name);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new random identifier (122 bits of randomness).
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::new_v4().simple()))
            }

            pub fn parse(s: &str) -> Result<Self, Error> {
                let ok = s
                    .strip_prefix(concat!($prefix, "_"))
                    .is_some_and(|rest| {
                        rest.len() == 32
                            && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    });
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(Error::NotFound { kind: $kind })
                }
            }
        }
    };
}

minted_id!(
    /// A connection: one data source or export destination.
    ConnectionId,
    "conn",
    "connection"
);
minted_id!(
    /// An authorization: one credential grant, shared by many connections.
    AuthorizationId,
    "auth",
    "authorization"
);
minted_id!(
    /// One run of a sync.
    SyncRunId,
    "run",
    "sync run"
);
minted_id!(
    /// One in-app notification.
    NotificationId,
    "ntf",
    "notification"
);
minted_id!(
    /// One uploaded file.
    UploadId,
    "upl",
    "upload"
);

/// Identifiers that come from outside (the identity provider, the product):
/// 1 to 64 characters of `[A-Za-z0-9_.:@-]`.
macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        string_newtype!($(#[$doc])* $name);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, Error> {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(Error::invalid($field, "must be 1 to 64 characters of letters, digits and _.:@-"))
                }
            }
        }
    };
}

external_id!(
    /// A workspace (tenant).
    WorkspaceId,
    "workspace_id"
);
external_id!(
    /// A member of a workspace (the identity provider's subject).
    UserId,
    "user_id"
);
external_id!(
    /// A client of an agency workspace.
    ClientId,
    "client_id"
);

string_newtype!(
    /// A platform catalog id: `[a-z0-9_]{1,40}`.
    PlatformId
);

impl PlatformId {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::UnknownPlatform(s.chars().take(40).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_round_trip_and_reject_foreign_shapes() {
        let id = ConnectionId::generate();
        assert_eq!(ConnectionId::parse(id.as_str()).unwrap(), id);
        assert!(ConnectionId::parse("auth_0123456789abcdef0123456789abcdef").is_err());
        assert!(ConnectionId::parse("conn_0123").is_err());
        assert!(ConnectionId::parse("conn_0123456789ABCDEF0123456789ABCDEF").is_err());
    }

    #[test]
    fn external_ids_reject_key_separators() {
        assert!(WorkspaceId::parse("ws-1").is_ok());
        assert!(WorkspaceId::parse("ws#1").is_err());
        assert!(WorkspaceId::parse("").is_err());
        assert!(WorkspaceId::parse(&"a".repeat(65)).is_err());
        assert!(PlatformId::parse("google_ads").is_ok());
        assert!(PlatformId::parse("Google").is_err());
    }
}
