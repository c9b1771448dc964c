//! Discovery: what a grant reaches. After a connect or a reconnect, and on
//! demand, the platform is asked (the catalog's discovery request: Google
//! Ads accessible customers, Meta ad accounts, Amazon Ads profiles, GA4
//! accounts, X Ads accounts); the answer is kept in items of its own, named
//! on the authorization, and offered a page at a time; a connection chooses
//! the sub-account it syncs (one grant, many connections, one per client).
//! A sub-account that disappears disconnects the connections that synced
//! it, with the reason. Streams the grant's scopes do not cover are shown
//! as unavailable, with the reason.

use serde::Serialize;

use super::disconnect::disconnect_connection;
use super::grants::of_authorization;
use super::App;
use crate::domain::error::{Error, HttpError};
use crate::domain::ids::{AuthorizationId, WorkspaceId};
use crate::domain::paging;
use crate::domain::*;
use crate::platform;
use crate::store::Change;

/// The connection parameter that names the sub-account it syncs (and the
/// `{account_id}` of the catalog's stream paths).
pub const ACCOUNT_PARAM: &str = "account_id";

/// The most pages of accounts read (Meta's ad accounts asked 100 a page:
/// 10,000 accounts; Pinterest's 250, GA4's 200).
pub const MAX_ACCOUNT_PAGES: usize = 100;

/// How long discovery asked through the API reads pages (its function has
/// 15 seconds): past it, the list read so far is kept, marked incomplete,
/// rather than the function stopped with nothing kept.
pub const DISCOVERY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// A page of the accounts, as last discovered (`None`: never, and the
    /// platform cannot be asked).
    pub discovered: Option<AccountsPage>,
    pub streams: Vec<StreamAvailability>,
}

/// A page of the accounts a grant reaches.
pub struct AccountsPage {
    pub accounts: Vec<SubAccount>,
    /// The next page's (`None` on the last).
    pub next_cursor: Option<String>,
    /// When the platform was asked, and how many it listed.
    pub at: chrono::DateTime<chrono::Utc>,
    pub count: usize,
    /// Whether every page of the platform's list was read.
    pub complete: bool,
}

/// Asks the platform what the grant reaches, keeps it, and disconnects the
/// connections whose sub-account is gone. No page is asked for past
/// `deadline` (the first always is): the list read by then is kept,
/// incomplete, and no account is taken for gone against it.
pub async fn discover(
    app: &App,
    ws: &WorkspaceId,
    id: &AuthorizationId,
    deadline: tokio::time::Instant,
) -> Result<AccountsIndex, Error> {
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
    let base = platform::accounts::first_url(entry, spec, &vars, &creds)?;
    // Every page, as the same endpoint's stream pages: a connection is
    // only found "gone" against the whole list.
    let mut accounts = Vec::new();
    let mut state = None;
    let mut whole = false;
    for page in 0..MAX_ACCOUNT_PAGES {
        if page > 0 && tokio::time::Instant::now() >= deadline {
            break;
        }
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
        tracing::warn!(authorization = %id, accounts = accounts.len(), "the accounts list has more pages than were read in time; none is taken as gone");
    }
    let ids: std::collections::HashSet<String> = accounts.iter().map(|a| a.id.clone()).collect();
    let only = match accounts.as_slice() {
        [only] if whole => Some(only.clone()),
        _ => None,
    };
    // The list in items of its own first, then named on the grant; a
    // discovery that finds one of its generation or later named keeps that
    // one. Lists the named one supersedes are dropped after: a reader never
    // meets a half list, and a discovery that died leaves nothing the next
    // one keeps.
    let chunks = chunk_accounts(accounts, ACCOUNT_CHUNK_BYTES);
    let mut index = AccountsIndex::new_list(auth.accounts.as_ref(), app.clock.now(), &chunks);
    index.partial = !whole;
    app.repo.put_account_chunks(ws, id, &index.list, chunks).await?;
    let named = index.clone();
    let current = app
        .repo
        .update_authorization(ws, id, move |a| match &a.accounts {
            Some(current) if current.generation >= named.generation => Ok(Change::Keep(current.clone())),
            _ => {
                a.accounts = Some(named.clone());
                Ok(Change::Save(named.clone()))
            }
        })
        .await;
    let current = match current {
        Ok((current, _)) => current,
        Err(e) => {
            // Removed meanwhile: its lists go with it.
            if matches!(e, Error::NotFound { .. }) {
                app.repo.drop_account_lists(ws, id, None).await?;
            }
            return Err(e);
        }
    };
    app.repo.drop_account_lists(ws, id, Some(&current)).await?;
    if current.list != index.list {
        tracing::info!(authorization = %id, "another discovery's accounts list was named first and is kept");
        return Ok(index);
    }
    for c in app.repo.connections_of(ws, id).await? {
        let gone = whole && c.value.params.get(ACCOUNT_PARAM).is_some_and(|sub| !ids.contains(sub));
        if gone {
            disconnect_connection(app, &c.value, DisconnectReason::SubAccountGone).await?;
        }
        // The grant reaches one account: a connection that names none syncs it.
        if let Some(only) = &only {
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
    tracing::info!(authorization = %id, accounts = index.count(), chunks = index.chunks.len(), "accounts discovered");
    Ok(index)
}

/// Where a grant's accounts are kept, discovered now if they never were
/// (`None` when the platform lists none, or the grant is disconnected).
async fn kept_or_discovered(app: &App, auth: &Authorization) -> Result<Option<AccountsIndex>, Error> {
    let entry = app.catalog.get(auth.platform.as_str())?;
    match (&auth.accounts, &entry.discovery) {
        (Some(index), _) => Ok(Some(index.clone())),
        (None, Some(_)) if !matches!(auth.status, Status::Disconnected { .. }) => {
            let deadline = tokio::time::Instant::now() + DISCOVERY_BUDGET;
            Ok(Some(discover(app, &auth.workspace_id, &auth.id, deadline).await?))
        }
        _ => Ok(None),
    }
}

/// Reads `limit` accounts of a list from `offset` (`None` if one of its
/// chunks is gone: a later discovery replaced the list meanwhile).
async fn read_accounts(
    app: &App,
    auth: &Authorization,
    index: &AccountsIndex,
    mut offset: usize,
    limit: usize,
) -> Result<Option<Vec<SubAccount>>, Error> {
    let mut out = Vec::new();
    while out.len() < limit {
        let Some((chunk, from)) = index.locate(offset) else { break };
        let Some(accounts) = app.repo.account_chunk(&auth.workspace_id, &auth.id, &index.list, chunk).await? else {
            return Ok(None);
        };
        let taken: Vec<SubAccount> = accounts.into_iter().skip(from).take(limit - out.len()).collect();
        offset += taken.len();
        out.extend(taken);
    }
    Ok(Some(out))
}

/// A page of the accounts a grant reaches, after `cursor`.
async fn accounts_page(
    app: &App,
    auth: &Authorization,
    index: AccountsIndex,
    ask: &paging::PageAsk,
) -> Result<AccountsPage, Error> {
    let (cursor, limit) = (ask.cursor.as_deref(), ask.limit);
    let mut index = index;
    for _ in 0..2 {
        // A cursor is bound to the list it pages: after another discovery
        // it is refused, and the caller starts again.
        let shape = format!("accounts:{}:{}", auth.id, index.list);
        let offset = paging::offset_of(&shape, cursor)?;
        if let Some(accounts) = read_accounts(app, auth, &index, offset, limit).await? {
            let end = offset + accounts.len();
            let count = index.count();
            return Ok(AccountsPage {
                accounts,
                next_cursor: (end < count).then(|| paging::cursor_at(&shape, end)),
                at: index.at,
                count,
                complete: !index.partial,
            });
        }
        // Replaced while read: the first page again, of the list named now.
        match app.repo.authorization(&auth.workspace_id, &auth.id).await?.value.accounts {
            Some(now) if now.list != index.list && cursor.is_none() => index = now,
            _ => break,
        }
    }
    Err(Error::Conflict { kind: "accounts list" })
}

/// What a grant reaches, a page of it as last discovered (discovered now
/// if it never was), and which streams its scopes allow.
pub async fn reach(app: &App, caller: &Caller, id: &AuthorizationId, ask: &paging::PageAsk) -> Result<Reach, Error> {
    let auth = app.repo.authorization(&caller.workspace_id, id).await?.value;
    let entry = app.catalog.get(auth.platform.as_str())?;
    let discovered = match kept_or_discovered(app, &auth).await? {
        Some(index) => Some(accounts_page(app, &auth, index, ask).await?),
        None => None,
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
pub async fn rediscover(
    app: &App,
    caller: &Caller,
    id: &AuthorizationId,
    ask: &paging::PageAsk,
) -> Result<Reach, Error> {
    caller.require(Role::Staff)?;
    discover(app, &caller.workspace_id, id, tokio::time::Instant::now() + DISCOVERY_BUDGET).await?;
    reach(app, caller, id, ask).await
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

/// The sub-account a new connection syncs: one the grant reaches (asked
/// now if it never was).
pub async fn check_choice(app: &App, auth: &Authorization, account_id: &str) -> Result<SubAccount, Error> {
    if let Some(index) = kept_or_discovered(app, auth).await? {
        for chunk in 0..index.chunks.len() as u32 {
            let Some(accounts) = app.repo.account_chunk(&auth.workspace_id, &auth.id, &index.list, chunk).await? else {
                return Err(Error::Conflict { kind: "accounts list" });
            };
            if let Some(found) = accounts.into_iter().find(|a| a.id == account_id) {
                return Ok(found);
            }
        }
    }
    Err(Error::invalid(
        ACCOUNT_PARAM,
        "is not among the accounts this authorization reaches; list them with GET /v1/authorizations/{id}/accounts (POST …/discover asks the platform again)",
    ))
}
