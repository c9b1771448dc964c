//! The members of a workspace, as the product keeps them: who gets alerts,
//! and which kinds of email each turned off.

use serde::Deserialize;

use super::App;
use crate::domain::error::Error;
use crate::domain::ids::{ClientId, UserId};
use crate::domain::input::{check_email, check_name, check_time_zone};
use crate::domain::*;

/// The body of `PUT /v1/members/{user_id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    pub email: String,
    pub role: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email_opt_out: Vec<AlertKind>,
    /// The time zone of times in emails (IANA name; UTC when absent).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// For a client viewer: the clients they may see.
    #[serde(default)]
    pub client_ids: Vec<String>,
}

/// Who the verified caller is in the workspace. With `REQUIRE_MEMBERSHIP`
/// the caller must be a member and the member's role counts; a workspace
/// with no member yet takes its first admin from the token, so that admin
/// can add the others. A client viewer is given the clients of their member
/// record (none without one).
pub async fn authenticate(app: &App, mut caller: Caller) -> Result<Caller, Error> {
    let member = match app.repo.member(&caller.workspace_id, &caller.user_id).await {
        Ok(m) => Some(m.value),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    if app.config.require_membership {
        match &member {
            Some(m) => caller.role = m.role,
            None => {
                let bootstrap =
                    caller.role == Role::Admin && app.repo.list::<Member>(&caller.workspace_id).await?.is_empty();
                if !bootstrap {
                    return Err(Error::NotAMember);
                }
                tracing::warn!(workspace = %caller.workspace_id, "a workspace with no members takes its first admin from the token");
            }
        }
    }
    if caller.role == Role::ClientViewer {
        caller.clients = Some(member.map(|m| m.client_ids).unwrap_or_default());
    }
    Ok(caller)
}

/// Every member (admin).
pub async fn list(app: &App, caller: &Caller) -> Result<Vec<Member>, Error> {
    caller.require(Role::Admin)?;
    Ok(app.repo.list::<Member>(&caller.workspace_id).await?.into_iter().map(|v| v.value).collect())
}

/// Adds or replaces a member (admin).
pub async fn upsert(app: &App, caller: &Caller, user_id: UserId, input: MemberInput) -> Result<Member, Error> {
    caller.require(Role::Admin)?;
    let member = Member {
        workspace_id: caller.workspace_id.clone(),
        user_id,
        email: check_email(&input.email)?,
        display_name: input.display_name.as_deref().map(check_name).transpose()?,
        role: Role::parse(&input.role)?,
        email_opt_out: input.email_opt_out,
        time_zone: input.time_zone.as_deref().map(check_time_zone).transpose()?,
        client_ids: input.client_ids.iter().map(|c| ClientId::parse(c)).collect::<Result<_, _>>()?,
        updated_at: app.clock.now(),
    };
    app.repo.upsert(&member).await?;
    Ok(member)
}

/// A member's address, if SES said it must not be mailed any more.
pub async fn suppression(app: &App, member: &Member) -> Result<Option<EmailSuppression>, Error> {
    app.repo.email_suppression(&member.email).await
}

/// `DELETE /v1/members/{user_id}/email-suppression` (admin): the address
/// works again (its owner fixed the mailbox, or the complaint was a mistake).
pub async fn lift_suppression(app: &App, caller: &Caller, user_id: &UserId) -> Result<(), Error> {
    caller.require(Role::Admin)?;
    let member = app.repo.member(&caller.workspace_id, user_id).await?.value;
    app.repo.lift_suppression(&member.email).await?;
    tracing::info!(member = %member.user_id, "email suppression lifted");
    Ok(())
}

/// SES's bounce and complaint events: a hard bounce or a complaint
/// suppresses the address everywhere; a soft bounce is SES's to retry.
pub async fn email_feedback(
    app: &App,
    event: &str,
    bounce_type: Option<&str>,
    addresses: &[String],
) -> Result<(), Error> {
    let reason = match (event, bounce_type) {
        ("Bounce", Some("Permanent")) => "bounced",
        ("Complaint", _) => "complained",
        _ => return Ok(()),
    };
    let s = EmailSuppression { reason: reason.into(), at: app.clock.now() };
    for address in addresses.iter().filter(|a| !a.trim().is_empty()) {
        app.repo.suppress_email(address, &s).await?;
    }
    tracing::info!(reason, count = addresses.len(), "email addresses suppressed");
    Ok(())
}

/// The caller's own member record (their email settings).
pub async fn me(app: &App, caller: &Caller) -> Result<Member, Error> {
    match app.repo.member(&caller.workspace_id, &caller.user_id).await {
        Ok(m) => Ok(m.value),
        Err(Error::NotFound { .. }) => Err(Error::NotFound { kind: "member (an admin adds members first)" }),
        Err(e) => Err(e),
    }
}

/// What a member changes of their own settings (absent: unchanged).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySettings {
    /// Alert kinds to get no email of (a list: `null` is refused).
    #[serde(default, deserialize_with = "serde_with_null::list")]
    pub email_opt_out: Option<Vec<AlertKind>>,
    /// The time zone of times in emails; `null` is UTC.
    #[serde(default, with = "serde_with_null")]
    pub time_zone: Option<Option<String>>,
}

/// Tells a field sent as `null` from one not sent.
mod serde_with_null {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }

    /// A field that, when sent, must be a list.
    pub fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Vec<T>>, D::Error> {
        Vec::<T>::deserialize(d).map(Some)
    }
}

/// A member turns email off (or on) per alert kind, and sets their time zone.
pub async fn update_me(app: &App, caller: &Caller, settings: MySettings) -> Result<Member, Error> {
    let time_zone = match settings.time_zone {
        Some(Some(tz)) => Some(Some(check_time_zone(&tz)?)),
        other => other,
    };
    let current = app
        .repo
        .member(&caller.workspace_id, &caller.user_id)
        .await
        .map_err(|_| Error::NotFound { kind: "member (an admin adds members first)" })?;
    let mut me = current.value;
    if let Some(opt_out) = settings.email_opt_out {
        me.email_opt_out = opt_out;
    }
    if let Some(tz) = time_zone {
        me.time_zone = tz;
    }
    me.updated_at = app.clock.now();
    app.repo.save(&me, current.version).await?;
    Ok(me)
}

/// What a signed unsubscribe link names: its claim, read and checked.
async fn unsubscribe_claim(app: &App, token: &str) -> Result<crate::domain::email::Unsubscribe, Error> {
    let key = super::refresh::token_key(app).await?;
    crate::domain::email::Unsubscribe::read(token, key, app.clock.now())
}

/// What an unsubscribe link would turn off, for its page to ask (changes nothing).
pub async fn unsubscribe_preview(app: &App, token: &str) -> Result<(Member, AlertKind), Error> {
    let claim = unsubscribe_claim(app, token).await?;
    Ok((app.repo.member(&claim.workspace_id, &claim.user_id).await?.value, claim.kind))
}

/// A one-click unsubscribe (RFC 8058): the signed link's member gets no
/// more email of the link's kind. No sign-in; applying it twice is the same
/// as once. Returns the member and the kind turned off.
pub async fn unsubscribe(app: &App, token: &str) -> Result<(Member, AlertKind), Error> {
    let claim = unsubscribe_claim(app, token).await?;
    loop {
        let current = app.repo.member(&claim.workspace_id, &claim.user_id).await?;
        let mut me = current.value;
        if me.email_opt_out.contains(&claim.kind) {
            return Ok((me, claim.kind));
        }
        me.email_opt_out.push(claim.kind);
        me.email_opt_out.sort_unstable();
        me.updated_at = app.clock.now();
        match app.repo.save(&me, current.version).await {
            Ok(_) => {
                tracing::info!(member = %me.user_id, kind = ?claim.kind, "unsubscribed by email link");
                return Ok((me, claim.kind));
            }
            Err(Error::Conflict { .. }) => continue, // changed meanwhile: read again
            Err(e) => return Err(e),
        }
    }
}
