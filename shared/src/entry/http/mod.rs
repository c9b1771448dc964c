//! The HTTP API: one route table (served by API Gateway in AWS and by the
//! local gateway locally), identity from JWT-authorizer claims, JSON
//! everywhere, and one error shape.

pub mod callback_page;
pub mod email_page;
pub mod error;
mod handlers;
pub mod identity;
pub mod views;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::collections::HashMap;

use crate::domain::error::Error;
use crate::flows::App;

/// The HTTP Lambda functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    ConnectStart,
    OauthCallback,
    ApiKeyConnect,
    CsvUpload,
    ConnectionsApi,
    ServiceApi,
}

impl Function {
    pub const ALL: [Function; 6] = [
        Function::ConnectStart,
        Function::OauthCallback,
        Function::ApiKeyConnect,
        Function::CsvUpload,
        Function::ConnectionsApi,
        Function::ServiceApi,
    ];

    /// The folder under `functions/` and the binary name.
    pub fn name(self) -> &'static str {
        match self {
            Function::ConnectStart => "connect-start",
            Function::OauthCallback => "oauth-callback",
            Function::ApiKeyConnect => "api-key-connect",
            Function::CsvUpload => "csv-upload",
            Function::ConnectionsApi => "connections-api",
            Function::ServiceApi => "service-api",
        }
    }
}

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteId {
    Health,
    Providers,
    ConnectStart,
    OauthCallback,
    OauthLaunch,
    ApiKeyConnect,
    ListConnections,
    GetConnection,
    PatchConnection,
    DeleteConnection,
    Upload,
    ListAuthorizations,
    ListNotifications,
    ProviderCredentials,
    ReplaceApiKey,
    CreateFileConnection,
    PresignUpload,
    ListUploads,
    GetUpload,
    ExportCosts,
    IssueUploadToken,
    RevokeUploadTokens,
    AutomationUpload,
    SyncNow,
    ListRuns,
    ListMembers,
    UpsertMember,
    UpdateMe,
    GetMe,
    ReadNotification,
    ReadAllNotifications,
    CreateConnection,
    RenameAuthorization,
    RemoveAuthorization,
    Proxy,
    ServiceCredentials,
    ListAudit,
    DailySpend,
    LiftEmailSuppression,
    EmailUnsubscribePage,
    EmailUnsubscribe,
    ClaimInstall,
    AuthorizationAccounts,
    DiscoverAccounts,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (health, catalog, the OAuth callback, token-bearing uploads).
    Public,
    /// A person of a workspace, by a verified JWT.
    User,
    /// The deployer's own services, by AWS IAM (locally, the service token).
    Service,
}

/// One route: method, path template (`{name}` segments), the function that
/// serves it, and who may call it. A `{name+}` segment takes the rest of
/// the path.
#[derive(Clone, Debug)]
pub struct Route {
    pub id: RouteId,
    pub method: Method,
    pub path: &'static str,
    pub function: Function,
    pub auth: Auth,
}

const fn route(id: RouteId, method: Method, path: &'static str, function: Function, auth: bool) -> Route {
    Route { id, method, path, function, auth: if auth { Auth::User } else { Auth::Public } }
}

const fn service_route(id: RouteId, method: Method, path: &'static str) -> Route {
    Route { id, method, path, function: Function::ServiceApi, auth: Auth::Service }
}

/// The path of the proxy routes (one per method).
pub const PROXY_PATH: &str = "/v1/service/connections/{id}/proxy/{path+}";

/// Every route of the API. `docs/openapi.json` and `template.yaml` list the
/// same ones (a test checks).
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route(RouteId::Health, Method::GET, "/health", Function::ConnectionsApi, false),
    route(RouteId::Providers, Method::GET, "/v1/providers", Function::ConnectionsApi, false),
    route(RouteId::ConnectStart, Method::POST, "/v1/connect/start", Function::ConnectStart, true),
    route(RouteId::ProviderCredentials, Method::PUT, "/v1/providers/{id}/credentials", Function::ConnectStart, true),
    route(RouteId::OauthCallback, Method::GET, "/v1/oauth/callback", Function::OauthCallback, false),
    route(RouteId::OauthLaunch, Method::GET, "/v1/oauth/launch", Function::OauthCallback, false),
    route(RouteId::ClaimInstall, Method::POST, "/v1/installs/claim", Function::ConnectStart, true),
    route(RouteId::ApiKeyConnect, Method::POST, "/v1/connections/api-key", Function::ApiKeyConnect, true),
    route(RouteId::ReplaceApiKey, Method::PUT, "/v1/connections/{id}/api-key", Function::ApiKeyConnect, true),
        route(RouteId::ListConnections, Method::GET, "/v1/connections", Function::ConnectionsApi, true),
    route(RouteId::CreateConnection, Method::POST, "/v1/connections", Function::ConnectionsApi, true),
    route(RouteId::GetConnection, Method::GET, "/v1/connections/{id}", Function::ConnectionsApi, true),
    route(RouteId::PatchConnection, Method::PATCH, "/v1/connections/{id}", Function::ConnectionsApi, true),
        route(RouteId::DeleteConnection, Method::DELETE, "/v1/connections/{id}", Function::ConnectionsApi, true),
    route(RouteId::SyncNow, Method::POST, "/v1/connections/{id}/sync", Function::ConnectionsApi, true),
    route(RouteId::ListRuns, Method::GET, "/v1/connections/{id}/runs", Function::ConnectionsApi, true),
    route(RouteId::CreateFileConnection, Method::POST, "/v1/connections/file-upload", Function::CsvUpload, true),
    route(RouteId::Upload, Method::POST, "/v1/connections/{id}/uploads", Function::CsvUpload, true),
    route(RouteId::PresignUpload, Method::POST, "/v1/connections/{id}/uploads/presigned", Function::CsvUpload, true),
    route(RouteId::ListUploads, Method::GET, "/v1/connections/{id}/uploads", Function::CsvUpload, true),
    route(RouteId::GetUpload, Method::GET, "/v1/connections/{id}/uploads/{upload_id}", Function::CsvUpload, true),
    route(RouteId::ExportCosts, Method::GET, "/v1/connections/{id}/costs/export", Function::CsvUpload, true),
    route(RouteId::IssueUploadToken, Method::POST, "/v1/connections/{id}/upload-tokens", Function::CsvUpload, true),
    route(RouteId::RevokeUploadTokens, Method::DELETE, "/v1/connections/{id}/upload-tokens", Function::CsvUpload, true),
    route(RouteId::AutomationUpload, Method::POST, "/v1/automation/uploads", Function::CsvUpload, false),
        route(RouteId::ListAuthorizations, Method::GET, "/v1/authorizations", Function::ConnectionsApi, true),
    route(RouteId::RenameAuthorization, Method::PATCH, "/v1/authorizations/{id}", Function::ConnectionsApi, true),
    route(RouteId::RemoveAuthorization, Method::DELETE, "/v1/authorizations/{id}", Function::ConnectionsApi, true),
    route(RouteId::AuthorizationAccounts, Method::GET, "/v1/authorizations/{id}/accounts", Function::ConnectionsApi, true),
    route(RouteId::DiscoverAccounts, Method::POST, "/v1/authorizations/{id}/discover", Function::ConnectionsApi, true),
        route(RouteId::ListNotifications, Method::GET, "/v1/notifications", Function::ConnectionsApi, true),
    route(RouteId::ReadAllNotifications, Method::POST, "/v1/notifications/read-all", Function::ConnectionsApi, true),
    route(RouteId::ReadNotification, Method::POST, "/v1/notifications/{id}/read", Function::ConnectionsApi, true),
    route(RouteId::ListMembers, Method::GET, "/v1/members", Function::ConnectionsApi, true),
    route(RouteId::GetMe, Method::GET, "/v1/members/me", Function::ConnectionsApi, true),
    route(RouteId::UpdateMe, Method::PATCH, "/v1/members/me", Function::ConnectionsApi, true),
    route(RouteId::EmailUnsubscribePage, Method::GET, "/v1/email/unsubscribe", Function::ConnectionsApi, false),
    route(RouteId::EmailUnsubscribe, Method::POST, "/v1/email/unsubscribe", Function::ConnectionsApi, false),
    route(RouteId::UpsertMember, Method::PUT, "/v1/members/{user_id}", Function::ConnectionsApi, true),
    route(RouteId::LiftEmailSuppression, Method::DELETE, "/v1/members/{user_id}/email-suppression", Function::ConnectionsApi, true),
    route(RouteId::ListAudit, Method::GET, "/v1/audit", Function::ConnectionsApi, true),
    route(RouteId::DailySpend, Method::GET, "/v1/spend", Function::ConnectionsApi, true),
    service_route(RouteId::Proxy, Method::GET, PROXY_PATH),
    service_route(RouteId::Proxy, Method::POST, PROXY_PATH),
    service_route(RouteId::Proxy, Method::PUT, PROXY_PATH),
    service_route(RouteId::Proxy, Method::PATCH, PROXY_PATH),
    service_route(RouteId::Proxy, Method::DELETE, PROXY_PATH),
    service_route(RouteId::ServiceCredentials, Method::GET, "/v1/service/connections/{id}/credentials"),
];

/// The methods a browser may send cross-origin: every method of a route,
/// and the preflight's own. The template's `CorsConfiguration` lists the
/// same (a test checks).
pub fn cors_methods() -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = ROUTES.iter().map(|r| r.method.as_str()).collect();
    methods.push("OPTIONS");
    let order = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    methods.sort_by_key(|m| order.iter().position(|o| o == m).unwrap_or(order.len()));
    methods.dedup();
    methods
}

/// The request headers a browser may send cross-origin.
pub const CORS_HEADERS: &str = "authorization, content-type";

pub type Params = HashMap<&'static str, String>;

fn match_path(template: &'static str, path: &str) -> Option<Params> {
    let mut params = Params::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => {
                if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                    // Greedy: the rest of the path, at least one segment.
                    let rest: Vec<&str> = std::iter::once(ps).chain(p.by_ref()).collect();
                    if ps.is_empty() || t.next().is_some() {
                        return None;
                    }
                    params.insert(name, rest.join("/"));
                    return Some(params);
                }
                if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if ps.is_empty() {
                        return None;
                    }
                    // A path segment arrives percent-encoded (`u%40x` for `u@x`).
                    let decoded = percent_encoding::percent_decode_str(ps).decode_utf8().ok()?;
                    params.insert(name, decoded.into_owned());
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// Finds the route of a request: `RouteNotFound`, or `MethodNotAllowed` when
/// the path exists with other methods.
pub fn find_route(method: &Method, path: &str) -> Result<(&'static Route, Params), Error> {
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let mut allowed: Vec<&str> = Vec::new();
    // A path a route names literally (`/v1/connections/api-key`) is that
    // route's, never a `{id}` of another (`/v1/connections/{id}`).
    let literal = ROUTES.iter().any(|r| r.path == path);
    for r in ROUTES.iter().filter(|r| !literal || r.path == path) {
        if let Some(params) = match_path(r.path, path) {
            if r.method == method {
                return Ok((r, params));
            }
            allowed.push(r.method.as_str());
        }
    }
    if allowed.is_empty() {
        return Err(Error::RouteNotFound);
    }
    allowed.push("OPTIONS");
    allowed.dedup();
    Err(Error::MethodNotAllowed { allow: allowed.join(", ") })
}

/// JSON response with the given status.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_of(status, value)
}

/// JSON response of anything serializable, written straight to text (no
/// tree built first).
pub fn json_of<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Body::Text(serde_json::to_string(value).expect("responses serialize")))
        .expect("static response parts are valid")
}

/// Handles one request for one function: the entry point of every HTTP
/// Lambda and of the local gateway.
pub async fn handle(app: &App, function: Function, request: Request) -> Response<Body> {
    // Without PUBLIC_BASE_URL, the API's URL is the domain API Gateway
    // served the request on (the OAuth redirect URI is built from it).
    if app.config.public_base_url.is_empty() {
        use lambda_http::request::RequestContext;
        use lambda_http::RequestExt;
        if let Some(RequestContext::ApiGatewayV2(ctx)) = request.request_context_ref() {
            if let Some(domain) = &ctx.domain_name {
                app.config.learn_base_url(domain);
            }
        }
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let found = find_route(&method, &path).and_then(|(route, params)| {
        if route.function == function {
            Ok((route, params))
        } else {
            Err(Error::RouteNotFound)
        }
    });
    let (route_id, result) = match found {
        Ok((route, params)) => (Some(route.id), handlers::dispatch(app, route, params, request).await),
        Err(e) => (None, Err(e)),
    };
    let response = result.unwrap_or_else(|e| error::response(&e));
    tracing::info!(
        function = function.name(),
        method = %method,
        route = ?route_id,
        status = response.status().as_u16(),
        "request"
    );
    response
}

/// A `lambda_http` service for one function (what each HTTP `main` runs).
pub fn service(
    app: App,
    function: Function,
) -> impl lambda_http::Service<Request, Response = Response<Body>, Error = std::convert::Infallible, Future: Send> {
    lambda_http::service_fn(move |request: Request| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&app, function, request).await) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_exactly() {
        let (r, p) = find_route(&Method::GET, "/v1/connections/conn_1").unwrap();
        assert_eq!(r.id, RouteId::GetConnection);
        assert_eq!(p["id"], "conn_1");
        assert_eq!(find_route(&Method::GET, "/v1/connections/").unwrap().0.id, RouteId::ListConnections);
        assert_eq!(find_route(&Method::POST, "/v1/connections/api-key").unwrap().0.id, RouteId::ApiKeyConnect);
        assert!(
            matches!(find_route(&Method::PUT, "/v1/connections/x"), Err(Error::MethodNotAllowed { allow }) if allow == "GET, PATCH, DELETE, OPTIONS")
        );
        // Path parameters are percent-decoded.
        let (_, params) = find_route(&Method::DELETE, "/v1/members/u%40example/email-suppression").unwrap();
        assert_eq!(params["user_id"], "u@example");
        // A literal path is its own route's, not another's `{id}`.
        assert!(
            matches!(find_route(&Method::PATCH, "/v1/connections/api-key"), Err(Error::MethodNotAllowed { allow }) if allow == "POST, OPTIONS")
        );
        assert!(matches!(find_route(&Method::GET, "/v1/connections/x/y"), Err(Error::RouteNotFound)));
        assert!(matches!(find_route(&Method::GET, "/v2/providers"), Err(Error::RouteNotFound)));
        let (r, p) = find_route(&Method::POST, "/v1/service/connections/conn_1/proxy/v1/orders/7.json").unwrap();
        assert_eq!((r.id, r.auth, p["path"].as_str()), (RouteId::Proxy, Auth::Service, "v1/orders/7.json"));
        assert!(find_route(&Method::GET, "/v1/service/connections/conn_1/proxy/").is_err());
        assert!(find_route(&Method::GET, "/v1/service/connections/conn_1/proxy").is_err());
    }
}
