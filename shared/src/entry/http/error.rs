//! The one place where errors become HTTP: status, machine code, message
//! and what to do. Messages never contain secret values (errors carry none).

use http::StatusCode;
use lambda_http::{Body, Response};

use crate::domain::error::{Error, KeyProblem};

/// An error as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub action: String,
    /// Seconds, passed on as `Retry-After`.
    pub retry_after: Option<u64>,
}

fn d(status: StatusCode, code: &'static str, message: impl Into<String>, action: impl Into<String>) -> Described {
    Described { status, code, message: message.into(), action: action.into(), retry_after: None }
}

#[rustfmt::skip]
fn key_problem(p: KeyProblem) -> Described {
    use StatusCode as S;
    match p {
        KeyProblem::Invalid => d(S::UNPROCESSABLE_ENTITY, "api_key_invalid", "The platform did not accept this API key.", "Check that you copied the whole key, or generate a new one on the platform."),
        KeyProblem::InsufficientScope => d(S::UNPROCESSABLE_ENTITY, "api_key_insufficient_scope", "The API key lacks permissions this data source needs.", "Generate a key with read access to the listed data (see the platform's key help), then try again."),
        KeyProblem::Expired => d(S::UNPROCESSABLE_ENTITY, "api_key_expired", "The API key has expired.", "Generate a new key on the platform and try again."),
        KeyProblem::NotFound => d(S::UNPROCESSABLE_ENTITY, "platform_endpoint_not_found", "The platform answered that the address does not exist.", "Check the store URL, and that the platform's REST API is enabled."),
        KeyProblem::PlatformUnavailable => d(S::BAD_GATEWAY, "platform_unavailable", "The platform could not be reached to check the key; the key was not judged.", "Try again in a few minutes."),
        KeyProblem::RateLimited { retry_after } => Described {
            retry_after,
            ..d(S::TOO_MANY_REQUESTS, "rate_limited", "The platform is limiting requests right now.", "Wait a moment, then try again.")
        },
    }
}

const RETRY: &str = "Retry in a moment; if it keeps failing, contact the operators of this service.";

#[rustfmt::skip]
pub fn describe(e: &Error) -> Described {
    use StatusCode as S;
    match e {
        Error::ApiKeyRejected(p) => key_problem(*p),
        Error::NotFound { kind } => d(
            S::NOT_FOUND,
            "not_found",
            format!("No such {kind} in this workspace."),
            "Check the id, or list them to find it.",
        ),
        Error::RouteNotFound => d(
            S::NOT_FOUND,
            "route_not_found",
            "There is no such route.",
            "See docs/openapi.json for the routes of this API.",
        ),
        Error::MethodNotAllowed { .. } => d(
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This route does not take that method.",
            "See docs/openapi.json for the methods of this route.",
        ),
        Error::Unauthenticated(why) => d(
            S::UNAUTHORIZED,
            "unauthenticated",
            format!("Authentication required: {why}."),
            "Send a valid bearer token in the Authorization header.",
        ),
        Error::Forbidden { needed } => d(
            S::FORBIDDEN,
            "forbidden",
            format!("This action needs the {needed} role."),
            "Ask an admin of the workspace.",
        ),
        Error::NotAMember => d(
            S::FORBIDDEN,
            "not_a_member",
            "You are not a member of this workspace.",
            "Ask an admin of the workspace to add you (PUT /v1/members/{user_id}).",
        ),
        Error::InvalidInput { field, reason } => d(
            S::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("Invalid {field}: {reason}."),
            format!("Correct {field} and send the request again."),
        ),
        Error::MalformedBody(why) => d(
            S::BAD_REQUEST,
            "malformed_body",
            format!("The request body could not be read: {why}."),
            "Send a JSON object as documented for this route.",
        ),
        Error::PayloadTooLarge { limit } => d(
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is larger than {limit} bytes."),
            "Send a smaller body.",
        ),
        Error::UnsupportedMediaType { expected } => d(
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("This route takes {expected}."),
            format!("Send the body with Content-Type: {expected}."),
        ),
        Error::UnknownPlatform(id) => d(
            S::UNPROCESSABLE_ENTITY,
            "unknown_platform",
            format!("There is no platform {id:?} in the catalog."),
            "GET /v1/providers lists the platforms.",
        ),
        Error::WrongAuthMethod { platform, method } => d(
            S::UNPROCESSABLE_ENTITY,
            "wrong_auth_method",
            format!("{platform} does not connect with {method}."),
            "GET /v1/providers shows how each platform connects.",
        ),
        Error::InvalidTransition {
            subject,
            from,
            event,
        } => d(
            S::CONFLICT,
            "invalid_transition",
            format!("A {subject} that is {from} cannot take {event}."),
            "Reload it and check its status first.",
        ),
        Error::Conflict { kind } => d(
            S::CONFLICT,
            "conflict",
            format!("The {kind} was changed at the same time by another request."),
            "Reload it and try again.",
        ),
                Error::MalformedPage(page) => d(S::BAD_GATEWAY, "malformed_response", format!("The platform sent a malformed page: {page}."), "It is retried; if it persists, contact support."),
        Error::PlatformFault { reason, detail } => d(S::BAD_GATEWAY, reason.code(), format!("The platform's answer cannot be used: {detail}."), "Contact the platform's support; retrying will not help."),
        Error::AddressNotAllowed { host } => d(S::UNPROCESSABLE_ENTITY, "address_not_allowed", format!("{host} is not a public internet address: it is (or resolves to) a private, loopback, link-local or otherwise internal address."), "Use the platform's public address (for a store, its public https URL)."),
        Error::SyncInProgress => d(S::CONFLICT, "sync_in_progress", "A sync of this connection is already running.", "Wait for it to finish; its progress shows on the connection."),
        Error::ReturnToNotAllowed => d(S::UNPROCESSABLE_ENTITY, "return_to_not_allowed", "return_to must be a URL on one of the deployment's allowed origins.", "Use your frontend's origin as configured in ALLOWED_ORIGINS (template parameter AllowedOrigins)."),
        Error::AppNotConfigured { platform, byo: true } => d(S::UNPROCESSABLE_ENTITY, "app_not_configured", format!("{platform} needs this workspace's own OAuth app (client id and secret)."), format!("An admin enters them with PUT /v1/providers/{{id}}/credentials, from the {platform} developer console.")),
        Error::AppNotConfigured { platform, byo: false } => d(S::SERVICE_UNAVAILABLE, "app_not_configured", format!("The OAuth app of {platform} is not set up in this deployment."), "The operators of this service must store its client id and secret in the vault."),
        Error::ConnectionDisconnected { reason } => d(S::CONFLICT, "connection_disconnected", format!("The connection is disconnected: {}", reason.message()), reason.action()),
        Error::NoPlatformApi => d(S::UNPROCESSABLE_ENTITY, "no_platform_api", "This connection has no platform API to call (file connections receive uploads).", "Use a connection of an OAuth or API-key platform."),
        Error::PathNotAllowed(why) => d(S::BAD_REQUEST, "path_not_allowed", format!("The path cannot be sent to the platform: {why}."), "Give the path below the platform's API base, without `.` or `..` segments, as the platform documents it."),
        Error::EmailLinkInvalid => d(S::BAD_REQUEST, "email_link_invalid", "This email link is not valid: it was changed or cut short.", "Open the link from the email again, or change your email preferences in the app."),
        Error::EmailLinkExpired => d(S::GONE, "email_link_expired", "This email link has expired.", "Use the link in a newer email, or change your email preferences in the app."),
        Error::CredentialsRouteDisabled => d(S::FORBIDDEN, "credentials_route_disabled", "This deployment does not hand out platform credentials.", "Call the platform through the proxy route, or have the operators set EnableCredentialsRoute=true (ENABLE_CREDENTIALS_ROUTE)."),
        Error::NotAnOAuthConnection => d(S::UNPROCESSABLE_ENTITY, "not_an_oauth_connection", "Only OAuth connections have an access token to hand out.", "Call the platform through the proxy route, which applies API keys too."),
        Error::RefreshPending => d(S::SERVICE_UNAVAILABLE, "refresh_pending", "The platform's token could not be renewed just now.", RETRY),
        Error::Config(_) => d(
            S::INTERNAL_SERVER_ERROR,
            "misconfigured",
            "The service is misconfigured.",
            "Contact the operators of this service; the logs name the setting.",
        ),
        Error::Store(_) | Error::Vault(_) | Error::Queue(_) | Error::Sink(_) | Error::Bus(_) => d(
            S::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "A backing service is unavailable.",
            RETRY,
        ),
        Error::Mail(_) => d(
            S::SERVICE_UNAVAILABLE,
            "mail_unavailable",
            "Email could not be sent.",
            RETRY,
        ),
        Error::Http(_) => d(
            S::BAD_GATEWAY,
            "platform_unavailable",
            "The platform could not be reached.",
            "Retry in a moment; the platform may be down.",
        ),
    }
}

/// The error response: `{"error": {"code", "message", "action"}}`.
pub fn response(e: &Error) -> Response<Body> {
    let described = describe(e);
    if described.status.is_server_error() {
        // The detail (never a secret) goes to the log, not to the caller.
        tracing::error!(code = described.code, detail = %e, "request failed");
    }
    let mut r = body(&described);
    // RFC 9110 §15.5.6: a 405 names the methods the route takes.
    if let Error::MethodNotAllowed { allow } = e {
        if let Ok(v) = http::HeaderValue::from_str(allow) {
            r.headers_mut().insert(http::header::ALLOW, v);
        }
    }
    r
}

pub fn body(d: &Described) -> Response<Body> {
    let mut r = super::json(
        d.status,
        &serde_json::json!({"error": {"code": d.code, "message": d.message, "action": d.action}}),
    );
    if let Some(seconds) = d.retry_after {
        r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::StoreError;

    #[test]
    fn infrastructure_detail_stays_out_of_the_response() {
        let e = Error::Store(StoreError::Unavailable("table connections-dev-state in 123456789012".into()));
        let r = describe(&e);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!r.message.contains("123456789012"));
    }
}
