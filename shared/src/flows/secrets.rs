//! Where a grant's tokens and a key live in the vault, and keeping them
//! there tidy:
//! - the slot a new grant's tokens take ([`grant_secret`]: a credential
//!   pack among grants written as often, [`crate::store::vault_packs`]);
//! - moving credentials stored before packs into one ([`pack_grant`],
//!   [`pack_key`]);
//! - secrets no item holds: a writer that stored a grant's tokens or a key
//!   and then died (or could neither write its item nor take the secret
//!   back) leaves a secret behind; its intent
//!   ([`crate::store::secret_intents`]) comes due for the sweep, which
//!   deletes the secret unless the item it was for holds it now
//!   ([`forget_orphans`]).

use super::App;
use crate::domain::error::Error;
use crate::domain::ids::{AuthorizationId, ConnectionId, WorkspaceId};
use crate::domain::policy;
use crate::domain::tokens::TokenSet;
use crate::domain::{Credential, SecretRef};
use secrecy::SecretString;

/// How long after its write a secret's intent comes due (every writer is
/// done with its item by then, or dead).
pub const INTENT_DUE_MINUTES: i64 = 15;

/// Deletes the secrets of due intents that no item holds; returns how many
/// intents were dealt with. A secret whose holder cannot be told from its
/// name (an install's, kept until the install expires) is left alone.
pub async fn forget_orphans(app: &App) -> Result<usize, Error> {
    let due = app.repo.due_secret_intents(app.clock.now(), 100).await?;
    let n = due.len();
    // Named by position: a secret's name is no log's business.
    super::each_of(
        "secrets written ahead of their items",
        due,
        |i, _| format!("#{i}"),
        |intent| async move {
            if !held(app, &intent.secret).await? {
                app.vault.delete(&intent.secret.0).await?;
                tracing::warn!("removed a secret whose item was never written");
            }
            app.repo.drop_due_intent(&intent).await?;
            Ok(())
        },
    )
    .await;
    Ok(n)
}

/// The name a new grant's tokens are stored under: a slot in a credential
/// pack, among grants that change as often as its platform's do.
pub async fn grant_secret(
    app: &App,
    ws: &WorkspaceId,
    id: &AuthorizationId,
    entry: &crate::catalog::PlatformEntry,
) -> Result<SecretRef, Error> {
    let writes = grant_writes_per_day(app, entry);
    Ok(app.packs.allocate_for(&app.config.secret_prefix, ws, id.as_str(), writes).await?)
}

/// Whether a platform's grants share credential packs (those whose refresh
/// token rotates too often keep a secret each).
pub fn grants_packed(app: &App, entry: &crate::catalog::PlatformEntry) -> bool {
    app.packs.pack_size_for(grant_writes_per_day(app, entry)) > 1
}

/// Whether a grant's tokens are stored as before credential packs (a
/// secret of their own) and its platform's grants share packs now: the
/// sweep moves such a grant ([`pack_grant`]).
pub fn grant_unpacked(app: &App, auth: &crate::domain::Authorization) -> bool {
    crate::store::vault_packs::split(&auth.secret.0).is_none()
        && app.catalog.get(auth.platform.as_str()).is_ok_and(|entry| grants_packed(app, entry))
}

/// The secret of an API key stored as before credential packs, if the
/// connection has one: the scheduler moves it ([`pack_key`]).
pub fn unpacked_key(c: &crate::domain::Connection) -> Option<&SecretRef> {
    match &c.credential {
        Credential::ApiKey { secret, .. } if crate::store::vault_packs::split(&secret.0).is_none() => Some(secret),
        _ => None,
    }
}

fn grant_writes_per_day(app: &App, entry: &crate::catalog::PlatformEntry) -> u32 {
    let quickest = policy::sync_interval(None, entry.quickest_sync_interval(), app.config.sync_interval_floor_minutes);
    entry.oauth.as_ref().map_or(0, |spec| policy::vault_writes_per_day(spec, quickest))
}

/// Moves a grant's tokens stored before packing (a secret of their own)
/// into a credential pack; the sweep does it for each grant it looks at, so
/// within a day every grant is packed. Holding the grant's refresh lease
/// (no refresher writes meanwhile): the tokens are copied into their slot,
/// the grant saved with the new name (on the condition nothing changed
/// it), and the old secret deleted. Intents for both names come first: a
/// crash anywhere leaves the grant on one name, whole, and the sweep
/// deletes the other. Returns whether it moved.
pub async fn pack_grant(app: &App, ws: &WorkspaceId, id: &AuthorizationId) -> Result<bool, Error> {
    if app.config.vault_pack_size <= 1 {
        return Ok(false);
    }
    let current = app.repo.authorization(ws, id).await?;
    let entry = app.catalog.get(current.value.platform.as_str())?;
    let old = current.value.secret.clone();
    let now = app.clock.now();
    if !grant_unpacked(app, &current.value)
        || !current.value.status.has_credentials()
        || crate::domain::Lease::held_by_other(&current.value.refresh_lease, "", now)
    {
        return Ok(false);
    }
    let me = format!("pack-{}", uuid::Uuid::new_v4());
    let mut leased = current.value.clone();
    leased.refresh_lease =
        Some(crate::domain::Lease { owner: me, until: now + chrono::Duration::seconds(super::refresh::LEASE_SECONDS) });
    let version = match app.repo.save(&leased, current.version).await {
        Ok(v) => v,
        Err(Error::Conflict { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let moved = async {
        let new = grant_secret(app, ws, id, entry).await?;
        let value = stored(app, &old).await?;
        // A grant stored before sealed access tokens keeps its access token
        // in the vault: the pack gets what a refresh would store now (no
        // renewable access token; it moves, sealed, into the item).
        // Anything else is copied as it is.
        let (value, sealed) = match TokenSet::from_secret(&value) {
            Ok(tokens) if leased.access.is_none() && !tokens.access_token.is_empty() => {
                match super::refresh::vault_copy(app, id, &tokens).await {
                    (copy, Some(sealed)) => (copy.to_secret(), Some(sealed)),
                    (_, None) => (value, None),
                }
            }
            _ => (value, None),
        };
        move_into_pack(app, &new, &old, &value, |new| {
            let mut packed = leased.clone();
            packed.secret = new;
            packed.refresh_lease = None;
            if sealed.is_some() {
                packed.access = sealed;
            }
            async move { app.repo.save(&packed, version).await.map(|_| ()) }
        })
        .await
    }
    .await;
    if let Err(e) = moved {
        super::refresh::release(app, &mut leased, version).await;
        return Err(e);
    }
    tracing::info!(authorization = %id, "tokens moved into a credential pack");
    Ok(true)
}

/// Moves an API key stored before packing into a pack, as [`pack_grant`]
/// does a grant's tokens, holding the connection's sync lease (no run
/// reads the key meanwhile; one that comes finds the connection busy and
/// comes again). The scheduler does it for each key connection it finds
/// due. Returns whether it moved.
pub async fn pack_key(app: &App, ws: &WorkspaceId, id: &ConnectionId) -> Result<bool, Error> {
    if app.config.vault_pack_size <= 1 {
        return Ok(false);
    }
    let me = format!("pack-{}", uuid::Uuid::new_v4());
    let now = app.clock.now();
    let Some(lease) = app.repo.acquire_sync_lease(ws, id, &me, now, chrono::Duration::seconds(60)).await? else {
        return Ok(false);
    };
    let moved = async {
        let current = app.repo.connection(ws, id).await?;
        let Some(old) = unpacked_key(&current.value).cloned() else { return Ok(false) };
        let new = app.packs.allocate(&app.config.secret_prefix, ws, id.as_str()).await?;
        let value = stored(app, &old).await?;
        move_into_pack(app, &new, &old, &value, |new| {
            let mut packed = current.value.clone();
            if let Credential::ApiKey { secret, .. } = &mut packed.credential {
                *secret = new;
            }
            async move { app.repo.save(&packed, current.version).await.map(|_| ()) }
        })
        .await
        .map(|_| true)
    }
    .await;
    app.repo.release_sync_lease(ws, id, lease).await;
    if matches!(moved, Ok(true)) {
        tracing::info!(connection = %id, "API key moved into a credential pack");
    }
    moved
}

/// What is stored under `name`, which must be there.
async fn stored(app: &App, name: &SecretRef) -> Result<SecretString, Error> {
    app.vault.get(&name.0).await?.ok_or(Error::NotFound { kind: "secret" })
}

/// The move itself, for an owner the caller holds still: intents for both
/// names, `value` (what the old name holds, as the pack is to keep it)
/// written into the owner's slot, the item switched to the new name by
/// `switch` (a conditional save), then the old secret deleted.
async fn move_into_pack<F, Fut>(
    app: &App,
    new: &SecretRef,
    old: &SecretRef,
    value: &SecretString,
    switch: F,
) -> Result<(), Error>
where
    F: FnOnce(SecretRef) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    if new == old {
        // Callers move only what packs (a copy onto itself, then the old
        // name deleted, would lose it).
        return Err(Error::Config(format!("{} is already where a move would put it", old.0)));
    }
    let due = app.clock.now() + chrono::Duration::minutes(INTENT_DUE_MINUTES);
    app.repo.put_secret_intent(new, due).await?;
    app.repo.put_secret_intent(old, due).await?;
    app.vault.put(&new.0, value).await?;
    switch(new.clone()).await?;
    // Left to the sweep (by its intent) if this fails.
    if app.vault.delete(&old.0).await.is_ok() {
        let _ = app.repo.drop_secret_intent(old).await;
    }
    let _ = app.repo.drop_secret_intent(new).await;
    Ok(())
}

/// Whether the item the secret was written for holds it.
async fn held(app: &App, secret: &SecretRef) -> Result<bool, Error> {
    let Some((ws, owner)) = owner_of(secret) else { return Ok(true) };
    let found = if let Ok(id) = AuthorizationId::parse(owner) {
        app.repo.authorization(&ws, &id).await.map(|a| a.value.secret == *secret)
    } else if let Ok(id) = ConnectionId::parse(owner) {
        app.repo
            .connection(&ws, &id)
            .await
            .map(|c| matches!(&c.value.credential, Credential::ApiKey { secret: s, .. } if s == secret))
    } else {
        return Ok(true);
    };
    match found {
        Ok(holds) => Ok(holds),
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The workspace and owner a grant's or key's secret name ends with
/// (`…/ws/{workspace}/{owner}`, packed or not).
fn owner_of(secret: &SecretRef) -> Option<(WorkspaceId, &str)> {
    let (_, rest) = secret.0.rsplit_once("/ws/")?;
    let (ws, owner) = rest.split_once('/')?;
    Some((WorkspaceId::parse(ws).ok()?, owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_read_from_packed_and_unpacked_names() {
        let own = SecretRef("connections/dev/ws/ws_1/auth_abc".into());
        let packed = SecretRef("connections/dev/packs/conn-s64-3/ws/ws_1/conn_abc".into());
        assert_eq!(owner_of(&own).map(|(w, o)| (w.as_str().to_owned(), o)), Some(("ws_1".into(), "auth_abc")));
        assert_eq!(owner_of(&packed).map(|(w, o)| (w.as_str().to_owned(), o)), Some(("ws_1".into(), "conn_abc")));
        assert!(owner_of(&SecretRef("connections/dev/installs/inst_1".into())).is_none());
    }
}
