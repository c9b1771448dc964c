//! Who is calling. In AWS the API Gateway HTTP API JWT authorizer verifies
//! the token (issuer and audience are template parameters) and passes its
//! claims in the request context; the local gateway verifies a token signed
//! by the local development key and passes the claims the same way.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use std::collections::HashMap;

use crate::config::Config;
use crate::domain::error::Error;
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::{Caller, Role};

/// The verified claims of the request, if any.
pub fn claims(request: &Request) -> Option<HashMap<String, String>> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?.jwt.as_ref().map(|j| j.claims.clone()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The caller, from the verified claims: workspace, user (`sub`), role, email.
pub fn caller(request: &Request, config: &Config) -> Result<Caller, Error> {
    let claims = claims(request).ok_or(Error::Unauthenticated("no verified token"))?;
    caller_from_claims(&claims, config)
}

pub fn caller_from_claims(claims: &HashMap<String, String>, config: &Config) -> Result<Caller, Error> {
    let claim = |name: &str| claims.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let workspace = claim(&config.claim_workspace).ok_or(Error::Unauthenticated("the token names no workspace"))?;
    let user = claim("sub").ok_or(Error::Unauthenticated("the token names no user"))?;
    let role = claim(&config.claim_role).ok_or(Error::Unauthenticated("the token names no role"))?;
    Ok(Caller {
        workspace_id: WorkspaceId::parse(workspace)
            .map_err(|_| Error::Unauthenticated("the token's workspace id is malformed"))?,
        user_id: UserId::parse(user).map_err(|_| Error::Unauthenticated("the token's user id is malformed"))?,
        role: Role::parse(role).map_err(|_| Error::Unauthenticated("the token's role is unknown"))?,
        email: claim("email").map(str::to_owned),
        clients: None,
    })
}

/// The deployer's service calling a service route: the IAM identity API
/// Gateway verified (`AWS_IAM` route authorization; the local gateway puts
/// `local-service-token` there for the local service token). There is no
/// other way in: without it the route answers 401.
pub fn service_caller(request: &Request) -> Result<String, Error> {
    let iam = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref()),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    let iam = iam.ok_or(Error::Unauthenticated("no verified AWS IAM caller"))?;
    iam.user_arn
        .clone()
        .or_else(|| iam.caller_id.clone())
        .filter(|c| !c.is_empty())
        .ok_or(Error::Unauthenticated("no verified AWS IAM caller"))
}
