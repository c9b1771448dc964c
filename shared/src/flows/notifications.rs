//! The in-app notification tray of a workspace.

use super::App;
use crate::domain::error::Error;
use crate::domain::ids::NotificationId;
use crate::domain::*;

/// Newest first, with the unread count. Client viewers get no alerts.
pub async fn list(app: &App, caller: &Caller) -> Result<(Vec<Notification>, usize), Error> {
    caller.require(Role::Staff)?;
    let mut list: Vec<Notification> =
        app.repo.list::<Notification>(&caller.workspace_id).await?.into_iter().map(|v| v.value).collect();
    list.reverse();
    let unread = list.iter().filter(|n| n.read_at.is_none()).count();
    Ok((list, unread))
}

/// Marks one notification (or all) read; returns how many changed.
pub async fn mark_read(app: &App, caller: &Caller, id: Option<&str>) -> Result<usize, Error> {
    caller.require(Role::Staff)?;
    let id = id.map(NotificationId::parse).transpose()?;
    let now = app.clock.now();
    let mut marked = 0;
    let mut known = false;
    for n in app.repo.list::<Notification>(&caller.workspace_id).await? {
        known |= id.as_ref() == Some(&n.value.id);
        if n.value.read_at.is_some() || id.as_ref().is_some_and(|i| *i != n.value.id) {
            continue;
        }
        let mut v = n.value;
        v.read_at = Some(now);
        app.repo.save(&v, n.version).await?;
        marked += 1;
    }
    // Either unknown or already read: tell them apart.
    if id.is_some() && !known {
        return Err(Error::NotFound { kind: "notification" });
    }
    Ok(marked)
}
