//! Errors of the domain and of the ports. They carry no secret values: a
//! message may name a field, a platform or an id, never a token or key.
//! The mapping to HTTP status, error code and action lives in exactly one
//! place: [`crate::entry::http::error`].

use super::status::{Event, FailureReason, Status, Subject};

/// Everything a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} not found")]
    NotFound { kind: &'static str },
    #[error("no route for this method and path")]
    RouteNotFound,
    #[error("method not allowed")]
    /// The path exists with other methods (`allow`: them, for `Allow`).
    MethodNotAllowed { allow: String },
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    #[error("this action needs the {needed} role")]
    Forbidden { needed: &'static str },
    #[error("the caller is not a member of this workspace")]
    NotAMember,
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: String, reason: String },
    #[error("the request body is not valid JSON for this route: {0}")]
    MalformedBody(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type; expected {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("unknown platform {0}")]
    UnknownPlatform(String),
    #[error("platform {platform} does not connect with {method}")]
    WrongAuthMethod { platform: String, method: &'static str },
    #[error("a {subject} cannot go from {from} on {event}")]
    InvalidTransition { subject: Subject, from: String, event: String },
    #[error("the {kind} was changed by someone else; reload and retry")]
    Conflict { kind: &'static str },
    #[error("the platform did not accept the API key: {0:?}")]
    ApiKeyRejected(KeyProblem),
    #[error("return_to is not on an allowed origin")]
    ReturnToNotAllowed,
    #[error("a page of the platform was malformed: {0}")]
    MalformedPage(String),
    /// The platform answered in a way retrying cannot fix; the connection
    /// shows the reason and the job is not retried.
    #[error("the platform's answer cannot be used: {detail}")]
    PlatformFault { reason: FailureReason, detail: String },
    #[error("the address {host} is not a public address")]
    AddressNotAllowed { host: String },
    #[error("a sync of this connection is already running")]
    SyncInProgress,
    #[error("the connection is disconnected ({})", reason.code())]
    ConnectionDisconnected { reason: super::status::DisconnectReason },
    #[error("this connection has no platform API to call")]
    NoPlatformApi,
    #[error("the path is not a path of the platform's API: {0}")]
    PathNotAllowed(&'static str),
    #[error("the credentials route is off in this deployment")]
    CredentialsRouteDisabled,
    #[error("the email link is not valid")]
    EmailLinkInvalid,
    #[error("the email link has expired")]
    EmailLinkExpired,
    #[error("only OAuth connections have an access token")]
    NotAnOAuthConnection,
    #[error("the platform's token could not be renewed just now")]
    RefreshPending,
    #[error("the OAuth app of {platform} is not configured")]
    AppNotConfigured { platform: String, byo: bool },
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput { field: field.into(), reason: reason.into() }
    }

    pub fn invalid_transition(subject: Subject, from: &Status, event: &Event) -> Self {
        Error::InvalidTransition { subject, from: from.state_name().to_owned(), event: event.name().to_owned() }
    }
}

/// Why a platform did not accept an API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    Invalid,
    InsufficientScope,
    Expired,
    /// 5xx, timeout, refused connection, redirect: retryable, never "invalid".
    PlatformUnavailable,
    RateLimited {
        retry_after: Option<u64>,
    },
    /// The platform answered 404: the store URL (or base URL) is wrong.
    NotFound,
}

/// State store failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A conditional write found the item in another state (exists, missing,
    /// or at another version).
    #[error("state store: condition failed")]
    ConditionFailed,
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("state store item is corrupt: {0}")]
    Corrupt(String),
    /// The item is over DynamoDB's item limit (as DynamoDB sizes it): a
    /// write that can never succeed, told apart from an outage.
    #[error("state store: an item of {0} bytes is over the {max}-byte limit", max = crate::ports::MAX_ITEM_BYTES)]
    TooLarge(usize),
}

/// Secret vault failures. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("secret vault unavailable: {0}")]
    Unavailable(String),
    #[error("secret vault: invalid secret name")]
    InvalidName,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("queue message is too large ({0} bytes)")]
    TooLarge(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mailer throttled")]
    Throttled,
    #[error("mail rejected: {0}")]
    Rejected(String),
    #[error("mailer unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus throttled")]
    Throttled,
    #[error("event bus refused the event: {0}")]
    Rejected(String),
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("record sink unavailable: {0}")]
    Unavailable(String),
    #[error("record sink: invalid key")]
    InvalidKey,
}

/// Platform HTTP failures (transport level; HTTP statuses are responses).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The host is (or resolves only to) an internal address.
    #[error("the platform address {0} is not a public address")]
    ForbiddenAddress(String),
    #[error("platform request timed out")]
    Timeout,
    #[error("platform unreachable: {0}")]
    Connect(String),
    #[error("platform request failed: {0}")]
    Other(String),
}
