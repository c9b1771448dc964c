//! Named authorizations: several per platform in a workspace, shared by the
//! connections (data sources and export destinations) that choose them.

use serde::Deserialize;

use crate::app::App;
use crate::catalog::AuthMethod;
use crate::domain::*;
use crate::error::Error;
use crate::ids::*;
use crate::jobs::{self, SyncJob};
use crate::ports::QueueKind;

/// The body of `POST /v1/connections`: a data source or destination on an
/// existing authorization. The member needs no platform permission of their
/// own: the connection uses the grant of the member who authorized.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub authorization_id: String,
    pub name: String,
    #[serde(default)]
    pub role: Option<ConnectionRole>,
    #[serde(default)]
    pub client: Option<crate::oauth::ClientInput>,
    #[serde(default)]
    pub selected_streams: Option<Vec<String>>,
}

pub async fn create_connection(app: &App, caller: &Caller, request: CreateRequest) -> Result<Connection, Error> {
    caller.require(Role::Staff)?;
    let auth =
        app.repo.authorization(&caller.workspace_id, &AuthorizationId::parse(&request.authorization_id)?).await?.value;
    let entry = app.catalog.get(auth.platform.as_str())?;
    let role = request.role.unwrap_or(ConnectionRole::Source);
    if !entry.roles.contains(&role) {
        return Err(Error::invalid("role", format!("{} does not take this role", entry.name)));
    }
    let mut streams = entry.default_streams();
    if let Some(selected) = &request.selected_streams {
        for name in selected {
            if !streams.iter().any(|s| &s.name == name) {
                return Err(Error::invalid("selected_streams", format!("{name} is not a stream of {}", entry.name)));
            }
        }
        for s in &mut streams {
            s.selected = selected.contains(&s.name);
        }
    }
    let now = app.clock.now();
    let client = match request.client {
        Some(cl) => Some(ClientRef { id: ClientId::parse(&cl.id)?, name: crate::api::check_name(&cl.name)? }),
        None => None,
    };
    // Destinations receive exports; they have nothing to sync.
    let streams = if role == ConnectionRole::Source { streams } else { vec![] };
    let name = crate::api::check_name(&request.name)?;
    let credential = Credential::Authorization { authorization_id: auth.id.clone() };
    let mut c = Connection::new(
        caller.workspace_id.clone(),
        auth.platform.clone(),
        name,
        role,
        client,
        credential,
        streams,
        caller.user_id.clone(),
        now,
    );
    match auth.status {
        Status::Connected => {
            c.apply(Event::CredentialsAccepted, now)?;
            if role == ConnectionRole::Destination {
                c.apply(Event::InitialSyncCompleted, now)?;
            }
        }
        Status::Disconnected { reason } => {
            c.apply(Event::CredentialsLost(reason), now)?;
        }
        _ => {}
    }
    app.repo.create(&c).await?;
    if c.status == Status::InitialSyncInProgress {
        jobs::enqueue(app, QueueKind::Sync, &SyncJob::start(&c, SyncKind::Initial), 0).await?;
    }
    Ok(c)
}

/// `PATCH /v1/authorizations/{id}`: rename in place.
pub async fn rename(app: &App, caller: &Caller, id: &AuthorizationId, name: &str) -> Result<Authorization, Error> {
    caller.require(Role::Staff)?;
    let current = app.repo.authorization(&caller.workspace_id, id).await?;
    let mut a = current.value;
    a.name = crate::api::check_name(name)?;
    a.updated_at = app.clock.now();
    app.repo.save(&a, current.version).await?;
    Ok(a)
}

/// `DELETE /v1/authorizations/{id}` (admin): disconnects what used it
/// (`authorization_removed`), revokes it at the platform where it can be,
/// deletes its secret, then the authorization.
pub async fn remove(app: &App, caller: &Caller, id: &AuthorizationId) -> Result<usize, Error> {
    caller.require(Role::Admin)?;
    let current = app.repo.authorization(&caller.workspace_id, id).await?;
    let auth = current.value.clone();
    let mut disconnected = 0;
    for c in app
        .repo
        .list::<Connection>(&caller.workspace_id)
        .await?
        .into_iter()
        .filter(|c| c.value.authorization_id() == Some(id))
    {
        let was = c.value.status;
        crate::tokens::disconnect_connection(app, c.value, c.version, DisconnectReason::AuthorizationRemoved).await?;
        if !matches!(was, Status::Disconnected { .. }) {
            disconnected += 1;
        }
    }
    if let Err(e) = revoke_at_platform(app, &auth).await {
        tracing::warn!(authorization = %id, error = %e, "revocation at the platform failed; the grant is removed here");
    }
    app.vault.delete(&auth.secret.0).await?;
    let latest = app.repo.authorization(&caller.workspace_id, id).await?;
    app.repo.delete(&latest.value, latest.version).await?;
    tracing::info!(authorization = %id, disconnected, "authorization removed");
    Ok(disconnected)
}

/// RFC 7009 revocation, where the catalog has a revoke URL.
async fn revoke_at_platform(app: &App, auth: &Authorization) -> Result<(), Error> {
    use secrecy::ExposeSecret;
    let entry = app.catalog.get(auth.platform.as_str())?;
    let (Some(spec), AuthMethod::Oauth2) = (&entry.oauth, entry.method) else { return Ok(()) };
    let Some(revoke_url) = &spec.revoke_url else { return Ok(()) };
    let Ok(tokens) = crate::tokens::tokens_of(app, auth).await else { return Ok(()) };
    let creds = crate::platform::AppCredentials::load(app, entry, &auth.workspace_id).await?;
    let token = tokens.refresh_token.clone().unwrap_or(tokens.access_token.clone());
    let mut fields = vec![("token".to_owned(), token)];
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri(crate::platform::fill(revoke_url, &auth.params)?)
        .header("content-type", "application/x-www-form-urlencoded");
    if spec.client_auth == crate::catalog::ClientAuth::Basic {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            creds.client_id,
            creds.client_secret.expose_secret()
        ));
        let mut v = http::HeaderValue::from_str(&format!("Basic {pair}"))
            .map_err(|_| Error::Config("bad client credentials".into()))?;
        v.set_sensitive(true);
        req = req.header("authorization", v);
    } else {
        fields.push((spec.client_id_param.clone(), creds.client_id.clone()));
        fields.push((spec.client_secret_param.clone(), creds.client_secret.expose_secret().to_owned()));
    }
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let response = app.http.send(req.body(bytes::Bytes::from(body)).map_err(|e| Error::Config(e.to_string()))?).await?;
    if !response.status().is_success() {
        return Err(Error::Http(crate::error::HttpError::Other(format!("revocation answered {}", response.status()))));
    }
    Ok(())
}
