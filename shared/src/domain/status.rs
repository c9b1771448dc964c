//! The one status state machine of connections and authorizations.
//!
//! Every status change of either goes through [`next`]; a transition that is
//! not in its table is rejected with [`Error::InvalidTransition`].

use serde::{Deserialize, Serialize};
use std::fmt;

use super::error::Error;

/// What the machine is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Connection,
    Authorization,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::Connection => "connection",
            Subject::Authorization => "authorization",
        })
    }
}

/// Why a connection or authorization lost its credentials. Fixed by a person
/// (reconnect, new key), never by retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The grant was revoked on the platform (or the password changed).
    TokenRevoked,
    /// The token or refresh token reached its end of life.
    TokenExpired,
    /// Refreshing kept failing past the tolerated bound.
    RefreshFailed,
    /// The grant lacks a scope the platform entry requires.
    InsufficientScope,
    /// The platform requires the user to authorize again (yearly consent,
    /// long-lived tokens that cannot be refreshed).
    ReauthorizationRequired,
    /// The API key was refused by the platform.
    ApiKeyInvalid,
    /// The API key passed its expiry.
    ApiKeyExpired,
    /// The authorization this connection used was removed.
    AuthorizationRemoved,
    /// A member disconnected it on purpose.
    UserDisconnected,
    /// The sub-account it synced (an ad account, a customer, a profile) is
    /// no longer among what its authorization reaches.
    SubAccountGone,
}

impl DisconnectReason {
    pub fn code(self) -> &'static str {
        match self {
            DisconnectReason::TokenRevoked => "token_revoked",
            DisconnectReason::TokenExpired => "token_expired",
            DisconnectReason::RefreshFailed => "refresh_failed",
            DisconnectReason::InsufficientScope => "insufficient_scope",
            DisconnectReason::ReauthorizationRequired => "reauthorization_required",
            DisconnectReason::ApiKeyInvalid => "api_key_invalid",
            DisconnectReason::ApiKeyExpired => "api_key_expired",
            DisconnectReason::AuthorizationRemoved => "authorization_removed",
            DisconnectReason::UserDisconnected => "user_disconnected",
            DisconnectReason::SubAccountGone => "sub_account_gone",
        }
    }

    /// What happened, for people.
    pub fn message(self) -> &'static str {
        match self {
            DisconnectReason::TokenRevoked => {
                "Access was revoked on the platform, or the password of the authorizing account changed."
            }
            DisconnectReason::TokenExpired => "The platform's authorization expired.",
            DisconnectReason::RefreshFailed => "The platform kept refusing to renew the authorization.",
            DisconnectReason::InsufficientScope => "The authorization lacks permissions this data source needs.",
            DisconnectReason::ReauthorizationRequired => "The platform requires the account to authorize again.",
            DisconnectReason::ApiKeyInvalid => "The platform no longer accepts the API key.",
            DisconnectReason::ApiKeyExpired => "The API key expired.",
            DisconnectReason::AuthorizationRemoved => "The authorization this data source used was removed.",
            DisconnectReason::UserDisconnected => "A member of the workspace disconnected it.",
            DisconnectReason::SubAccountGone => {
                "The account this data source synced is no longer reachable with its authorization."
            }
        }
    }

    /// What to do about it.
    pub fn action(self) -> &'static str {
        match self {
            DisconnectReason::ApiKeyInvalid | DisconnectReason::ApiKeyExpired => {
                "Generate a new API key on the platform and replace the key of this data source."
            }
            DisconnectReason::InsufficientScope => {
                "Reconnect and accept every requested permission, with an account that has the required role."
            }
            DisconnectReason::AuthorizationRemoved => {
                "Choose another authorization for this data source, or reconnect."
            }
            DisconnectReason::SubAccountGone => {
                "Reconnect with a user who can reach the account, or create a data source for another account."
            }
            _ => "Reconnect: all history and sync progress are kept.",
        }
    }
}

/// Why a connection is in error: transient or operational, retried by the
/// service, no credential lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    PlatformUnavailable,
    RateLimited,
    MalformedResponse,
    PermissionDenied,
    RetriesExhausted,
    /// The platform's next-page link points to another host: following it
    /// would send the credentials there. Retrying cannot help.
    NextPageOnAnotherHost,
    /// The platform's address is (or resolves to) an internal address.
    AddressNotAllowed,
    Internal,
}

impl FailureReason {
    pub fn code(self) -> &'static str {
        match self {
            FailureReason::PlatformUnavailable => "platform_unavailable",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::MalformedResponse => "malformed_response",
            FailureReason::PermissionDenied => "permission_denied",
            FailureReason::RetriesExhausted => "retries_exhausted",
            FailureReason::NextPageOnAnotherHost => "next_page_on_another_host",
            FailureReason::AddressNotAllowed => "address_not_allowed",
            FailureReason::Internal => "internal",
        }
    }
}

/// The status of a connection or an authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    PendingAuthorization,
    InitialSyncInProgress,
    Connected,
    Disconnected { reason: DisconnectReason },
    Error { reason: FailureReason },
}

impl Status {
    pub fn state_name(&self) -> &'static str {
        match self {
            Status::PendingAuthorization => "pending_authorization",
            Status::InitialSyncInProgress => "initial_sync_in_progress",
            Status::Connected => "connected",
            Status::Disconnected { .. } => "disconnected",
            Status::Error { .. } => "error",
        }
    }

    /// The reason code, for disconnected and error.
    pub fn reason_code(&self) -> Option<&'static str> {
        match self {
            Status::Disconnected { reason } => Some(reason.code()),
            Status::Error { reason } => Some(reason.code()),
            _ => None,
        }
    }

    /// Whether credentials are usable (a sync may run, a refresh may happen).
    pub fn has_credentials(&self) -> bool {
        matches!(self, Status::InitialSyncInProgress | Status::Connected | Status::Error { .. })
    }
}

/// Something that happened to a connection or authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Credentials were granted and tested (OAuth callback, API key
    /// validated, file connection created).
    CredentialsAccepted,
    /// The first full sync finished.
    InitialSyncCompleted,
    /// A later sync finished.
    SyncSucceeded,
    /// A sync failed for a reason the service retries.
    SyncFailed(FailureReason),
    /// The credentials are gone (revoked, expired, removed).
    CredentialsLost(DisconnectReason),
    /// A person reconnected (new tokens, new key).
    Reconnected { initial_sync_done: bool },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::CredentialsAccepted => "credentials_accepted",
            Event::InitialSyncCompleted => "initial_sync_completed",
            Event::SyncSucceeded => "sync_succeeded",
            Event::SyncFailed(_) => "sync_failed",
            Event::CredentialsLost(_) => "credentials_lost",
            Event::Reconnected { .. } => "reconnected",
        }
    }
}

/// The transition table. `Ok(next)` or an invalid-transition error.
pub fn next(subject: Subject, from: &Status, event: &Event) -> Result<Status, Error> {
    use Status as S;
    let to = match (subject, from, event) {
        // Connections.
        (Subject::Connection, S::PendingAuthorization, Event::CredentialsAccepted) => Some(S::InitialSyncInProgress),
        (Subject::Connection, S::InitialSyncInProgress, Event::InitialSyncCompleted) => Some(S::Connected),
        (Subject::Connection, S::Connected | S::Error { .. }, Event::SyncSucceeded) => Some(S::Connected),
        // The initial sync ending in error: the retry that succeeds completes it.
        (Subject::Connection, S::Error { .. }, Event::InitialSyncCompleted) => Some(S::Connected),
        (Subject::Connection, S::InitialSyncInProgress | S::Connected | S::Error { .. }, Event::SyncFailed(reason)) => {
            Some(S::Error { reason: *reason })
        }
        (Subject::Connection, S::Disconnected { .. }, Event::Reconnected { initial_sync_done })
        | (Subject::Connection, S::Error { .. }, Event::Reconnected { initial_sync_done }) => {
            Some(if *initial_sync_done { S::Connected } else { S::InitialSyncInProgress })
        }

        // Authorizations: a grant is pending until the callback, then
        // connected until it is lost; reconnecting replaces its tokens.
        (Subject::Authorization, S::PendingAuthorization, Event::CredentialsAccepted) => Some(S::Connected),
        (Subject::Authorization, S::Connected | S::Disconnected { .. }, Event::Reconnected { .. }) => {
            Some(S::Connected)
        }

        // Both: losing credentials. Losing them again keeps the first reason,
        // so one incident is one reason.
        (_, S::Disconnected { reason }, Event::CredentialsLost(_)) => Some(S::Disconnected { reason: *reason }),
        (
            _,
            S::PendingAuthorization | S::InitialSyncInProgress | S::Connected | S::Error { .. },
            Event::CredentialsLost(reason),
        ) => Some(S::Disconnected { reason: *reason }),
        _ => None,
    };
    to.ok_or_else(|| Error::invalid_transition(subject, from, event))
}

/// Whether the table's events move `from` to `to` (staying counts; one
/// write may apply two, as a file connection's first upload does: accepted,
/// then its first import complete): how a stored history of statuses is
/// checked for changes made around the machine.
pub fn reachable(subject: Subject, from: &Status, to: &Status) -> bool {
    let mut events = vec![
        Event::CredentialsAccepted,
        Event::InitialSyncCompleted,
        Event::SyncSucceeded,
        Event::Reconnected { initial_sync_done: true },
        Event::Reconnected { initial_sync_done: false },
    ];
    match to {
        Status::Error { reason } => events.push(Event::SyncFailed(*reason)),
        Status::Disconnected { reason } => events.push(Event::CredentialsLost(*reason)),
        _ => {}
    }
    let step = |s: &Status| -> Vec<Status> { events.iter().filter_map(|e| next(subject, s, e).ok()).collect() };
    from == to || step(from).iter().any(|s| s == to || step(s).contains(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REVOKED: DisconnectReason = DisconnectReason::TokenRevoked;

    #[test]
    fn reachable_follows_the_table() {
        let c = Subject::Connection;
        assert!(reachable(c, &Status::PendingAuthorization, &Status::InitialSyncInProgress));
        assert!(reachable(c, &Status::Connected, &Status::Disconnected { reason: REVOKED }));
        assert!(reachable(c, &Status::Connected, &Status::Connected));
        assert!(reachable(c, &Status::PendingAuthorization, &Status::Connected), "a first upload: two events");
        assert!(!reachable(c, &Status::Disconnected { reason: REVOKED }, &Status::PendingAuthorization));
        assert!(!reachable(c, &Status::Connected, &Status::PendingAuthorization), "never pending again");
        assert!(!reachable(
            Subject::Authorization,
            &Status::Disconnected { reason: REVOKED },
            &Status::InitialSyncInProgress
        ));
    }

    #[test]
    fn connection_happy_path() {
        let s = Status::PendingAuthorization;
        let s = next(Subject::Connection, &s, &Event::CredentialsAccepted).unwrap();
        assert_eq!(s, Status::InitialSyncInProgress);
        let s = next(Subject::Connection, &s, &Event::InitialSyncCompleted).unwrap();
        assert_eq!(s, Status::Connected);
        let s = next(Subject::Connection, &s, &Event::SyncSucceeded).unwrap();
        assert_eq!(s, Status::Connected);
    }

    #[test]
    fn disconnect_and_reconnect_resume_where_the_sync_was() {
        let lost = Event::CredentialsLost(REVOKED);
        let s = next(Subject::Connection, &Status::Connected, &lost).unwrap();
        assert_eq!(s, Status::Disconnected { reason: REVOKED });
        let again = next(Subject::Connection, &s, &Event::CredentialsLost(DisconnectReason::TokenExpired)).unwrap();
        assert_eq!(again, s, "the first reason stays");
        let back = next(Subject::Connection, &s, &Event::Reconnected { initial_sync_done: true }).unwrap();
        assert_eq!(back, Status::Connected);
        let back = next(Subject::Connection, &s, &Event::Reconnected { initial_sync_done: false }).unwrap();
        assert_eq!(back, Status::InitialSyncInProgress);
    }

    #[test]
    fn errors_recover_on_success() {
        let e = Status::Error { reason: FailureReason::PlatformUnavailable };
        assert_eq!(next(Subject::Connection, &e, &Event::SyncSucceeded).unwrap(), Status::Connected);
        let f = next(Subject::Connection, &Status::Connected, &Event::SyncFailed(FailureReason::RateLimited)).unwrap();
        assert_eq!(f.reason_code(), Some("rate_limited"));
    }

    #[test]
    fn invalid_transitions_are_rejected() {
        let cases = [
            (Subject::Connection, Status::PendingAuthorization, Event::InitialSyncCompleted),
            (Subject::Connection, Status::Connected, Event::CredentialsAccepted),
            (Subject::Connection, Status::Disconnected { reason: REVOKED }, Event::SyncSucceeded),
            (Subject::Connection, Status::Disconnected { reason: REVOKED }, Event::SyncFailed(FailureReason::Internal)),
            (Subject::Connection, Status::Connected, Event::Reconnected { initial_sync_done: true }),
            (Subject::Authorization, Status::Connected, Event::InitialSyncCompleted),
            (Subject::Authorization, Status::Connected, Event::SyncFailed(FailureReason::Internal)),
            (Subject::Authorization, Status::PendingAuthorization, Event::Reconnected { initial_sync_done: true }),
        ];
        for (subject, from, event) in cases {
            let err = next(subject, &from, &event).unwrap_err();
            assert!(matches!(err, Error::InvalidTransition { .. }), "{subject} {from:?} {event:?}");
        }
    }

    #[test]
    fn status_serializes_with_state_and_reason() {
        let s = Status::Disconnected { reason: REVOKED };
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json, serde_json::json!({"state": "disconnected", "reason": "token_revoked"}));
        assert_eq!(serde_json::from_value::<Status>(json).unwrap(), s);
        // The code() table and serde agree for every reason.
        for r in [
            DisconnectReason::TokenRevoked,
            DisconnectReason::TokenExpired,
            DisconnectReason::RefreshFailed,
            DisconnectReason::InsufficientScope,
            DisconnectReason::ReauthorizationRequired,
            DisconnectReason::ApiKeyInvalid,
            DisconnectReason::ApiKeyExpired,
            DisconnectReason::AuthorizationRemoved,
            DisconnectReason::UserDisconnected,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.code()));
        }
    }
}
