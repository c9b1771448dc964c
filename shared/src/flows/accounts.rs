//! Discovery: what a grant reaches. After a connect or a reconnect, and on
//! demand, the platform is asked (the catalog's discovery request: Google
//! Ads accessible customers, Meta ad accounts, Amazon Ads profiles, GA4
//! accounts, X Ads accounts); the answer is kept on the authorization and
//! offered, and a connection chooses the sub-account it syncs (one grant,
//! many connections, one per client). A sub-account that disappears
//! disconnects the connections that synced it, with the reason. Streams the
//! grant's scopes do not cover are shown as unavailable, with the reason.

use serde::Serialize;

use super::disconnect::disconnect_connection;
use super::grants::of_authorization;
use super::App;
use crate::domain::error::{Error, HttpError};
use crate::domain::ids::{AuthorizationId, WorkspaceId};
use crate::domain::*;
use crate::platform;
use crate::store::Change;

/// The connection parameter that names the sub-account it syncs (and the
/// `{account_id}` of the catalog's stream paths).
pub const ACCOUNT_PARAM: &str = "account_id";

/// The most pages of accounts read (Meta's 25 a page: 2,500 accounts).
pub const MAX_ACCOUNT_PAGES: usize = 100;

/// A stream of the platform, and whether this grant can read it.
#[derive(Clone, Debug, Serialize)]
pub struct StreamAvailability {
    pub name: String,
    pub available: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// What `GET /v1/authorizations/{id}/accounts` answers.
pub struct Reach {
    pub discovered: Option<Discovered>,
    pub streams: Vec<StreamAvailability>,
}

/// Asks the platform what the grant reaches, keeps it, and disconnects the
/// connections whose sub-account is gone.
pub async fn discover(app: &App, ws: &WorkspaceId, id: &AuthorizationId) -> Result<Discovered, Error> {
    let auth = app.repo.authorization(ws, id).await?.value;
    if let Status::Disconnected { reason } = auth.status {
        return Err(Error::ConnectionDisconnected { reason });
    }
    let entry = app.catalog.get(auth.platform.as_str())?;
    let spec = entry.discovery.as_ref().ok_or_else(|| {
        Error::invalid("authorization", format!("{} does not list the accounts a grant reaches", entry.name))
    })?;
    let (creds, vars, extra) = of_authorization(app, &auth).await?;
    let creds = creds.as_credentials(&extra);
    let base = platform::with_query_templates(
        &spec.credential_query,
        platform::api_url(entry, &spec.path, &vars)?,
        &vars,
        &creds,
    )?;
    // Every page, as the same endpoint's stream pages: a connection is
    // only found "gone" against the whole list.
    let mut accounts = Vec::new();
    let mut state = None;
    let mut whole = false;
    for _ in 0..MAX_ACCOUNT_PAGES {
        let url = super::sync::with_page(base.clone(), spec.paged(), state.as_ref())?;
        let request = match &spec.soap {
            Some(soap) => platform::soap_post(entry, url, &vars, &creds, soap)?,
            None => platform::api_get(entry, url, &vars, &creds)?,
        };
        let response = app.http.send(request).await?;
        if !response.status().is_success() {
            return Err(Error::Http(HttpError::Other(format!(
                "{} answered {} when asked for its accounts",
                entry.name,
                response.status()
            ))));
        }
        let doc = platform::document_with_lists(response.body())
            .ok_or_else(|| Error::MalformedPage("the accounts list".into()))?;
        let page = platform::accounts::sub_accounts(spec, &doc)
            .ok_or_else(|| Error::MalformedPage(format!("no list of accounts at {}", spec.list_pointer)))?;
        let count = page.len();
        accounts.extend(page);
        match super::sync::next_state(spec.paged(), state.as_ref(), &doc, response.headers(), count, |_| None) {
            Some(next) if count > 0 => state = Some(next),
            _ => {
                whole = true;
                break;
            }
        }
    }
    if !whole {
        tracing::warn!(authorization = %id, accounts = accounts.len(), "the accounts list has more pages than are read; none is taken as gone");
    }
    let discovered = Discovered { accounts, at: app.clock.now() };
    let kept = discovered.clone();
    app.repo
        .update_authorization(ws, id, move |a| {
            a.sub_accounts = Some(kept.clone());
            Ok(Change::Save(()))
        })
        .await?;
    for c in app.repo.connections_of(ws, id).await? {
        let gone = whole
            && c.value.params.get(ACCOUNT_PARAM).is_some_and(|sub| !discovered.accounts.iter().any(|a| &a.id == sub));
        if gone {
            disconnect_connection(app, &c.value, DisconnectReason::SubAccountGone).await?;
        }
        // The grant reaches one account: a connection that names none syncs it.
        if let ([only], true) = (discovered.accounts.as_slice(), whole) {
            if !c.value.params.contains_key(ACCOUNT_PARAM) {
                let params = account_params(only);
                app.repo
                    .update_from(c, move |conn| {
                        if conn.params.contains_key(ACCOUNT_PARAM) {
                            return Ok(Change::Keep(()));
                        }
                        conn.params.extend(params.clone());
                        Ok(Change::Save(()))
                    })
                    .await?;
            }
        }
    }
    tracing::info!(authorization = %id, accounts = discovered.accounts.len(), "accounts discovered");
    Ok(discovered)
}

/// What a grant reaches, as last discovered (discovered now if it never
/// was), and which streams its scopes allow.
pub async fn reach(app: &App, caller: &Caller, id: &AuthorizationId) -> Result<Reach, Error> {
    let auth = app.repo.authorization(&caller.workspace_id, id).await?.value;
    let entry = app.catalog.get(auth.platform.as_str())?;
    let discovered = match (&auth.sub_accounts, &entry.discovery) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(_)) if !matches!(auth.status, Status::Disconnected { .. }) => {
            Some(discover(app, &caller.workspace_id, id).await?)
        }
        _ => None,
    };
    let streams = entry
        .streams
        .iter()
        .map(|s| {
            let missing: Vec<&str> =
                s.required_scopes.iter().filter(|r| !auth.scopes.contains(r)).map(String::as_str).collect();
            StreamAvailability {
                name: s.name.clone(),
                available: missing.is_empty(),
                reason: (!missing.is_empty())
                    .then(|| format!("needs the scope {}, which this grant was not given", missing.join(", "))),
            }
        })
        .collect();
    Ok(Reach { discovered, streams })
}

/// `POST /v1/authorizations/{id}/discover` (staff): ask again now.
pub async fn rediscover(app: &App, caller: &Caller, id: &AuthorizationId) -> Result<Reach, Error> {
    caller.require(Role::Staff)?;
    discover(app, &caller.workspace_id, id).await?;
    reach(app, caller, id).await
}

/// The connection parameters that record the chosen account's name,
/// currency and time zone (the spend table's facts are in them).
pub const ACCOUNT_NAME_PARAM: &str = "account_name";
pub const ACCOUNT_CURRENCY_PARAM: &str = "account_currency";
pub const ACCOUNT_TIME_ZONE_PARAM: &str = "account_time_zone";

/// The connection parameters that name a chosen account and record its
/// name, currency and time zone.
pub fn account_params(account: &SubAccount) -> Vec<(String, String)> {
    let mut out = vec![(ACCOUNT_PARAM.to_owned(), account.id.clone())];
    out.extend(account.params.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (param, value) in [
        (ACCOUNT_NAME_PARAM, &account.name),
        (ACCOUNT_CURRENCY_PARAM, &account.currency),
        (ACCOUNT_TIME_ZONE_PARAM, &account.time_zone),
    ] {
        if let Some(v) = value {
            out.push((param.to_owned(), v.clone()));
        }
    }
    out
}

/// The sub-account a new connection syncs: one the grant reaches.
pub fn check_choice<'a>(auth: &'a Authorization, account_id: &str) -> Result<&'a SubAccount, Error> {
    let known = auth.sub_accounts.as_ref().and_then(|d| d.accounts.iter().find(|a| a.id == account_id));
    if let Some(account) = known {
        Ok(account)
    } else {
        Err(Error::invalid(
            ACCOUNT_PARAM,
            "is not among the accounts this authorization reaches; list them with GET /v1/authorizations/{id}/accounts (POST …/discover asks the platform again)",
        ))
    }
}
