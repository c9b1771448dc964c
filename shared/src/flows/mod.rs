//! The journeys, one a file, named after what a person does or what the
//! system does on its own. They speak the domain, persist through the
//! store, reach platforms through the platform layer, and know nothing of
//! HTTP routes, Lambda events or how the adapters were built.
//!
//! | file | journey |
//! |---|---|
//! | [`connect_oauth`] | start an OAuth connect, and its callback |
//! | [`reconnect`] | new tokens for a grant: every connection that uses it comes back |
//! | [`connect_api_key`] | connect with an API key, replace a key |
//! | [`file_uploads`] | file connections: upload, ingest, export, automation tokens |
//! | [`connections`] | list, read, change and remove connections; sync now |
//! | [`authorizations`] | named grants: connect a source on one, rename, remove |
//! | [`providers`] | the catalog, and a workspace's own OAuth app |
//! | [`members`] | who gets alerts, and their email settings |
//! | [`notifications`] | the in-app tray |
//! | [`refresh`] | renew a grant's tokens (single flight) |
//! | [`disconnect`] | a grant or connection is lost: once, with one alert |
//! | [`sync`] | one sync job: page through streams into the sink |
//! | [`schedule`] | the next incremental runs, and runs that stalled |
//! | [`sweep`] | the scheduled look at grants that are due |
//! | [`alerts`] | incidents become notifications and emails, once |

pub mod accounts;
pub mod alerts;
pub mod authorizations;
pub mod connect_api_key;
pub mod connect_oauth;
pub mod connect_oauth1;
pub mod connections;
pub mod disconnect;
pub mod events;
pub mod file_uploads;
pub mod grants;
pub mod installs;
pub mod members;
pub mod notifications;
pub mod providers;
pub mod reconnect;
pub mod refresh;
pub mod reports;
pub mod schedule;
pub mod secrets;
pub mod service;
pub mod spend;
pub mod sweep;
pub mod sync;

use secrecy::SecretString;
use std::future::Future;
use std::sync::Arc;

use crate::catalog::{LazyCatalog, PlatformEntry};
use crate::config::Config;
use crate::domain::error::Error;
use crate::domain::ids::WorkspaceId;
use crate::domain::SecretRef;
use crate::platform::token_client::TokenClient;
use crate::platform::AppCredentials;
use crate::ports::{Clock, EventBus, JobQueue, Mailer, PlatformHttp, RecordSink, SecretVault};
use crate::store::queues::{self, Message};
use crate::store::Repo;

/// How long an alert's intent waits before the sweep queues it (the worker
/// that wrote it queues it within seconds unless it died).
pub const ALERT_INTENT_MINUTES: i64 = 5;

/// How long a process keeps the deployment's app credentials (a client
/// secret rotated in Secrets Manager is in use everywhere within this).
pub const APP_CACHE_SECONDS: u64 = 300;

/// The ports and settings the journeys run on, built once per cold start
/// by `wiring`. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub catalog: Arc<LazyCatalog>,
    pub repo: Repo,
    /// Every secret: packed credentials in their packs, the rest on their own.
    pub vault: Arc<dyn SecretVault>,
    /// The same vault, for handing out the name of a new credential.
    pub packs: Arc<crate::store::vault_packs::PackedVault>,
    pub queue: Arc<dyn JobQueue>,
    pub mailer: Arc<dyn Mailer>,
    pub sink: Arc<dyn RecordSink>,
    pub events: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub http: Arc<dyn PlatformHttp>,
    /// The deployment's own OAuth apps, read from the vault at most every
    /// [`APP_CACHE_SECONDS`] by a process (each sync run and refresh needs
    /// one: half the vault's reads before).
    pub app_cache: Arc<std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, AppCredentials)>>>,
    /// The key access tokens are sealed with, read from the vault once.
    pub token_key: Arc<tokio::sync::OnceCell<crate::domain::sealed::TokenKey>>,
    /// Workspaces whose list index this process found trusted (it stays
    /// so): their listings read no marker.
    pub lists_trusted: Arc<std::sync::Mutex<std::collections::HashSet<WorkspaceId>>>,
}

impl App {
    /// Sends a queue message (a sync job or an alert event).
    pub async fn send<M: Message>(&self, message: &M, delay_seconds: u32) -> Result<String, Error> {
        queues::send(self.queue.as_ref(), message, delay_seconds).await
    }

    /// Queues a notify-queue message (an alert, an event). A queue that
    /// refuses it gets it later: it is kept in the table under `key` and the
    /// sweep queues it. Each is tried three times (found by the fault
    /// harness, seed 110 of the sign-in journey: one refusal of each lost
    /// an event); only when all refuse is it lost (logged); the change it
    /// tells of stands either way.
    pub async fn send_or_keep(&self, message: &crate::domain::messages::AlertEvent, key: &str, what: &str) {
        let mut refused = None;
        for _ in 0..3 {
            match self.send(message, 0).await {
                Ok(_) => return,
                Err(e) => refused = Some(e),
            }
        }
        if let Some(e) = &refused {
            tracing::warn!(error = %e, "the queue refused a {what}; kept for the sweep");
        }
        for _ in 0..3 {
            match self.repo.keep_in_outbox(key, message, self.clock.now()).await {
                Ok(()) => return,
                Err(e) => refused = Some(e),
            }
        }
        if let Some(e) = refused {
            tracing::error!(error = %e, "a {what} was lost: neither the queue nor the table took it");
        }
    }

    /// Queues an alert, kept for the sweep if the queue refuses it.
    pub async fn alert(&self, event: &crate::domain::messages::AlertEvent, what: &str) {
        self.send_or_keep(event, &uuid::Uuid::new_v4().to_string(), what).await;
    }

    /// Keeps an alert in the table before the change it tells of is written
    /// (due a few minutes on): a worker that dies after the change and
    /// before the alert is queued leaves it there for the sweep. The
    /// notifier checks the change happened before it tells anyone.
    pub async fn intend_alert(&self, event: &crate::domain::messages::AlertEvent) -> Result<String, Error> {
        let key = uuid::Uuid::new_v4().to_string();
        let due = self.clock.now() + chrono::Duration::minutes(ALERT_INTENT_MINUTES);
        self.repo.keep_in_outbox(&key, event, due).await?;
        Ok(key)
    }

    /// Queues an intended alert and forgets the intent; a queue that refuses
    /// it leaves the intent for the sweep.
    pub async fn alert_intended(&self, key: &str, event: &crate::domain::messages::AlertEvent, what: &str) {
        match self.send(event, 0).await {
            Ok(_) => {
                if let Err(e) = self.repo.forget_key(key).await {
                    tracing::warn!(error = %e, "a queued {what} stays kept; the sweep may queue it again (told once)");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the queue refused a {what}; kept for the sweep"),
        }
    }

    /// Sends a message whose loss a later step makes good; a failure is logged.
    pub async fn send_or_log<M: Message>(&self, message: &M, what: &str) {
        if let Err(e) = self.send(message, 0).await {
            tracing::error!(error = %e, "{what} not queued");
        }
    }

    /// The OAuth app of a platform for a workspace. The deployment's own
    /// apps, which operators change in Secrets Manager, are kept by the
    /// process for a few minutes; a workspace's own (BYO) app, which its
    /// admins change through the API, is read every time.
    pub async fn app_credentials(&self, entry: &PlatformEntry, ws: &WorkspaceId) -> Result<AppCredentials, Error> {
        let load = || AppCredentials::load(self.vault.as_ref(), &self.config.secret_prefix, entry, ws);
        if entry.credentials != crate::catalog::CredentialSource::Preconfigured {
            return load().await;
        }
        let key = entry.id.to_string();
        let fresh = std::time::Duration::from_secs(APP_CACHE_SECONDS);
        if let Some((_, app)) =
            self.app_cache.lock().expect("app cache").get(&key).filter(|(read_at, _)| read_at.elapsed() < fresh)
        {
            return Ok(app.clone());
        }
        let app = load().await?;
        self.app_cache.lock().expect("app cache").insert(key, (std::time::Instant::now(), app.clone()));
        Ok(app)
    }

    /// The token-endpoint client, with this deployment's redirect URI.
    pub fn token_client(&self) -> TokenClient<'_> {
        TokenClient { http: self.http.as_ref(), clock: self.clock.as_ref(), redirect_uri: self.config.callback_url() }
    }

    /// Stores a secret, then does `write`. When `write` fails, `undo` takes
    /// its items back, and only once they are gone is the secret deleted
    /// (an item is never left without its secret); a vault write that
    /// failed is taken back too (it may have happened, its answer lost).
    pub async fn vault_first<T>(
        &self,
        secret: &SecretRef,
        value: &SecretString,
        write: impl Future<Output = Result<T, Error>>,
        undo: impl Future<Output = bool>,
    ) -> Result<T, Error> {
        // First a note that the secret is coming: whatever happens after,
        // the sweep deletes it if no item ends up holding it.
        let due = self.clock.now() + chrono::Duration::minutes(secrets::INTENT_DUE_MINUTES);
        self.repo.put_secret_intent(secret, due).await?;
        if let Err(e) = self.vault.put(&secret.0, value).await {
            self.forget_secret(secret).await;
            return Err(e.into());
        }
        match write.await {
            Ok(t) => {
                let _ = self.repo.drop_secret_intent(secret).await;
                Ok(t)
            }
            Err(e) => {
                if undo.await {
                    self.forget_secret(secret).await;
                } else {
                    tracing::error!("the items of a failed write could not be removed; the sweep removes their secret if they are gone");
                }
                Err(e)
            }
        }
    }

    /// Deletes a secret no item holds, tried again while the vault fails
    /// (and else left to the sweep, by its intent).
    async fn forget_secret(&self, secret: &SecretRef) {
        for _ in 0..3 {
            if self.vault.delete(&secret.0).await.is_ok() {
                let _ = self.repo.drop_secret_intent(secret).await;
                return;
            }
        }
        tracing::error!("a secret no item holds could not be removed yet; the sweep will");
    }
}

/// Works through a batch the sweep took: an item that fails is said (by its
/// `id`, from its position and itself, never its contents) and left for the
/// next sweep, and the others are done all the same, so one that keeps
/// failing holds nothing up. Answers how many were done.
pub(crate) async fn each_of<T, F, Fut>(what: &str, items: Vec<T>, id: impl Fn(usize, &T) -> String, work: F) -> usize
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut done = 0;
    for (i, item) in items.into_iter().enumerate() {
        let name = id(i, &item);
        match work(item).await {
            Ok(()) => done += 1,
            Err(e) => {
                tracing::warn!(item = %name, error = %e, "{what}: one could not be handled yet; the next sweep tries again")
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_item_that_fails_holds_up_none_of_the_others() {
        let seen = std::sync::Mutex::new(Vec::new());
        let done = each_of(
            "numbers",
            vec![1, 2, 3],
            |_, n| n.to_string(),
            |n| {
                seen.lock().unwrap().push(n);
                async move {
                    if n == 1 {
                        Err(Error::Config("no".into()))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        assert_eq!(done, 2);
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3], "the ones after a failure are done");
    }
}
