//! Alert emails as a person reads them: what broke, for which client, when
//! (in the reader's time zone), why in plain words, who authorized it, and
//! one button. One HTML layout (tables and inline styles, no script, no web
//! font, readable in dark mode) and a plain-text part that stands alone.
//!
//! Pure: the alert flow gathers the facts ([`MailItem`]) and the links; this
//! module only writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use base64::Engine;

use super::error::Error;
use super::ids::{UserId, WorkspaceId};
use super::sealed::TokenKey;
use super::AlertKind;

/// The deployer's brand, from deployment parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brand {
    /// The product's name, in subjects' context, the header and the footer.
    pub product_name: String,
    /// The sender's display name ("Acme Alerts").
    pub sender_name: String,
    /// An https URL of the logo (shown 32 px high), if any.
    pub logo_url: Option<String>,
    /// `#rrggbb`: the button and the header rule.
    pub accent: String,
    /// The postal address mail law asks bulk senders to show.
    pub footer_address: String,
}

impl Default for Brand {
    fn default() -> Self {
        Self {
            product_name: "Connections".into(),
            sender_name: "Connections alerts".into(),
            logo_url: None,
            accent: "#2563eb".into(),
            footer_address: String::new(),
        }
    }
}

/// Whether `c` is a colour the layout takes (`#rrggbb`).
pub fn valid_accent(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The one thing to do about an item, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    /// "Reconnect", "Replace key", "Upload the file", "See the sync".
    pub label: String,
    pub url: String,
}

/// One data source (or grant) an email tells about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailItem {
    /// The platform's display name ("Google Ads").
    pub platform: String,
    /// The data source's name (or the authorization's, for a grant alone).
    pub data_source: String,
    pub client: Option<String>,
    /// The platform account, as the platform names it.
    pub account: Option<String>,
    /// When the problem began (or, for a recovery, when it ended).
    pub happened_at: DateTime<Utc>,
    /// What happened, in plain words.
    pub reason: String,
    /// What to do about it.
    pub todo: String,
    /// Who authorized the grant ("Dana Smith (dana@acme.com)").
    pub authorized_by: Option<String>,
    /// Who else may fix it.
    pub who_can_fix: Option<String>,
    pub button: Option<Button>,
    /// A recovery: how long data was missing, in minutes.
    pub missing_minutes: Option<i64>,
}

/// The reader of one email.
#[derive(Clone, Debug)]
pub struct Reader {
    pub name: Option<String>,
    pub time_zone: chrono_tz::Tz,
}

/// Where the footer's links go.
#[derive(Clone, Debug)]
pub struct FooterLinks {
    /// Turns this kind of email off for this reader (signed, no sign-in).
    pub unsubscribe: String,
    /// The frontend's email preferences.
    pub preferences: String,
}

/// A rendered email, before its sender and recipient are set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The reader's time zone from a member's setting (UTC when unset or unknown).
pub fn time_zone(name: Option<&str>) -> chrono_tz::Tz {
    name.and_then(|n| n.parse().ok()).unwrap_or(chrono_tz::UTC)
}

/// "Wed 25 Nov 2026, 16:21 CET".
pub fn local_time(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%a %-d %b %Y, %H:%M %Z").to_string()
}

/// "45 minutes", "about 3 hours", "2 days and 4 hours".
pub fn duration_words(minutes: i64) -> String {
    let plural = |n: i64, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
    let minutes = minutes.max(1);
    if minutes < 60 {
        plural(minutes, "minute")
    } else if minutes < 48 * 60 {
        let hours = (minutes + 30) / 60;
        format!("about {}", plural(hours, "hour"))
    } else {
        let (days, hours) = (minutes / (24 * 60), (minutes % (24 * 60) + 30) / 60);
        if hours == 0 || hours == 24 {
            plural(days + i64::from(hours == 24), "day")
        } else {
            format!("{} and {}", plural(days, "day"), plural(hours, "hour"))
        }
    }
}

fn what_happened(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Disconnected => "is disconnected",
        AlertKind::SyncFailed => "failed to sync",
        AlertKind::DataNotSyncing => "is not syncing",
        AlertKind::ExpiringSoon => "needs reconnecting soon",
        AlertKind::Recovered => "is connected again",
    }
}

/// " on {platform}", unless the data source is named after its platform.
fn on_platform(item: &MailItem) -> String {
    if item.data_source.trim().eq_ignore_ascii_case(item.platform.trim()) {
        String::new()
    } else {
        format!(" on {}", item.platform)
    }
}

fn item_title(item: &MailItem) -> String {
    match &item.client {
        Some(c) => format!("{c} · {}{}", item.data_source, on_platform(item)),
        None => format!("{}{}", item.data_source, on_platform(item)),
    }
}

/// The subject: one item names it; several are counted by client.
pub fn subject(kind: AlertKind, items: &[MailItem]) -> String {
    if let [item] = items {
        return format!("{} {}", item_title(item), what_happened(kind));
    }
    let mut clients: Vec<&str> = items.iter().filter_map(|i| i.client.as_deref()).collect();
    clients.sort_unstable();
    clients.dedup();
    let some_without = items.iter().any(|i| i.client.is_none());
    let whose = match (clients.as_slice(), some_without) {
        ([one], false) => format!(" of {one}"),
        ([], _) => String::new(),
        (many, _) => format!(" of {} clients", many.len() + usize::from(some_without)),
    };
    let n = items.len();
    match kind {
        AlertKind::Recovered => format!("{n} data sources{whose} are connected again"),
        _ => format!("{n} data sources{whose} need you"),
    }
}

/// The opening sentence, under the title.
fn lead(kind: AlertKind, n: usize) -> &'static str {
    match (kind, n) {
        (AlertKind::Disconnected, 1) => "A data source stopped: no new data arrives until it is fixed.",
        (AlertKind::Disconnected, _) => "These data sources stopped: no new data arrives until they are fixed.",
        (AlertKind::SyncFailed, _) => "A sync failed. It is retried on its own; look if it keeps failing.",
        (AlertKind::DataNotSyncing, _) => "Data has stopped arriving, though nothing reported a disconnection.",
        (AlertKind::ExpiringSoon, _) => "An authorization expires soon. Reconnect before then and nothing stops.",
        (AlertKind::Recovered, _) => "Good news: data is flowing again.",
    }
}

/// The items of one platform, by its name.
type ByPlatform<'a> = BTreeMap<&'a str, Vec<&'a MailItem>>;

/// Items grouped by client (no client last), then by platform.
fn grouped(items: &[MailItem]) -> Vec<(Option<&str>, ByPlatform<'_>)> {
    let mut by_client: BTreeMap<(bool, Option<&str>), ByPlatform<'_>> = BTreeMap::new();
    for item in items {
        let key = (item.client.is_none(), item.client.as_deref());
        by_client.entry(key).or_default().entry(item.platform.as_str()).or_default().push(item);
    }
    by_client.into_iter().map(|((_, client), platforms)| (client, platforms)).collect()
}

/// The facts of one item, as label and value rows.
fn facts(kind: AlertKind, item: &MailItem, tz: chrono_tz::Tz) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if let Some(a) = &item.account {
        rows.push(("Account", a.clone()));
    }
    let when = if kind == AlertKind::Recovered { "Back since" } else { "Since" };
    rows.push((when, local_time(item.happened_at, tz)));
    if let Some(m) = item.missing_minutes {
        rows.push((
            "Data missing",
            format!("{}; the sync picks up where it stopped, so the gap is backfilled", duration_words(m)),
        ));
    }
    if let Some(by) = &item.authorized_by {
        rows.push(("Authorized by", by.clone()));
    }
    rows
}

/// Escapes text for HTML (element content and quoted attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Renders an email of `kind` about `items` for `reader`.
pub fn render(brand: &Brand, kind: AlertKind, items: &[MailItem], reader: &Reader, links: &FooterLinks) -> Rendered {
    let subject = subject(kind, items);
    let parts = Parts { brand, kind, items, reader, links, subject: &subject };
    Rendered { text: text(&parts), html: html(&parts), subject }
}

/// What both parts of an email are written from.
#[derive(Clone, Copy)]
struct Parts<'a> {
    brand: &'a Brand,
    kind: AlertKind,
    items: &'a [MailItem],
    reader: &'a Reader,
    links: &'a FooterLinks,
    subject: &'a str,
}

/// What a kind of email is called ("stale data alerts").
pub fn kind_words(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Disconnected => "disconnection alerts",
        AlertKind::SyncFailed => "sync failure alerts",
        AlertKind::DataNotSyncing => "stale data alerts",
        AlertKind::ExpiringSoon => "expiry reminders",
        AlertKind::Recovered => "recovery notices",
    }
}

fn text(m: &Parts<'_>) -> String {
    let Parts { brand, kind, items, reader, links, subject } = *m;
    let mut t = String::new();
    if let Some(name) = &reader.name {
        t.push_str(&format!("Hello {name},\n\n"));
    }
    t.push_str(&format!("{subject}.\n{}\n", lead(kind, items.len())));
    for (client, platforms) in grouped(items) {
        if items.len() > 1 {
            let heading = client.unwrap_or("No client");
            t.push_str(&format!("\n{heading}\n{}\n", "=".repeat(heading.chars().count())));
        }
        for list in platforms.values() {
            for item in list {
                t.push_str(&format!("\n{}{}\n", item.data_source, on_platform(item)));
                t.push_str(&format!("{}\n", format!("{} {}", item.reason, item.todo).trim_end()));
                for (label, value) in facts(kind, item, reader.time_zone) {
                    t.push_str(&format!("  {label}: {value}\n"));
                }
                if let Some(who) = &item.who_can_fix {
                    t.push_str(&format!("  {who}\n"));
                }
                if let Some(b) = &item.button {
                    t.push_str(&format!("  {}: {}\n", b.label, b.url));
                }
            }
        }
    }
    t.push_str(&format!(
        "\n--\nSent by {} because you are an admin or staff member of this workspace.\n\
         Stop {} by email: {}\nEmail preferences: {}\n",
        brand.product_name,
        kind_words(kind),
        links.unsubscribe,
        links.preferences
    ));
    if !brand.footer_address.is_empty() {
        t.push_str(&format!("{}\n", brand.footer_address));
    }
    t
}

// Colours: light surfaces with dark text, set on every cell (clients that
// invert colours in dark mode then invert a consistent pair), and the
// accent only behind white text.
const INK: &str = "#1f2937";
const MUTED: &str = "#4b5563";
const PAGE: &str = "#f3f4f6";
const CARD: &str = "#ffffff";
const RULE: &str = "#e5e7eb";
const FONT: &str = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";

fn html(m: &Parts<'_>) -> String {
    let Parts { brand, kind, items, reader, links, subject } = *m;
    let accent = if valid_accent(&brand.accent) { brand.accent.as_str() } else { "#2563eb" };
    let mut h = String::with_capacity(8192);
    h.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\"><meta name=\"supported-color-schemes\" content=\"light dark\">\
         <title>{title}</title></head>\
         <body style=\"margin:0;padding:0;background:{PAGE};color:{INK};font-family:{FONT};\">\
         <div style=\"display:none;max-height:0;overflow:hidden;\">{preheader}</div>\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:{PAGE};\"><tr><td align=\"center\" style=\"padding:24px 12px;\">\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:600px;background:{CARD};border:1px solid {RULE};border-top:4px solid {accent};border-radius:6px;\">",
        title = escape(subject),
        preheader = escape(lead(kind, items.len())),
    ));
    // Header: logo (with its name as alt text) or the product's name.
    let mark = match &brand.logo_url {
        Some(url) => format!(
            "<img src=\"{}\" alt=\"{}\" height=\"32\" style=\"display:block;height:32px;border:0;\">",
            escape(url),
            escape(&brand.product_name)
        ),
        None => format!(
            "<span style=\"font-size:16px;font-weight:bold;color:{INK};\">{}</span>",
            escape(&brand.product_name)
        ),
    };
    h.push_str(&format!("<tr><td style=\"padding:20px 24px 0 24px;\">{mark}</td></tr>"));
    let greeting = reader.name.as_ref().map(|n| format!("Hello {},", escape(n))).unwrap_or_default();
    h.push_str(&format!(
        "<tr><td style=\"padding:16px 24px 0 24px;color:{INK};\">\
         {greet}<h1 style=\"margin:8px 0 8px 0;font-size:20px;line-height:28px;color:{INK};\">{title}</h1>\
         <p style=\"margin:0;font-size:15px;line-height:22px;color:{MUTED};\">{lead}</p></td></tr>",
        greet = if greeting.is_empty() {
            String::new()
        } else {
            format!("<p style=\"margin:0;font-size:15px;line-height:22px;color:{INK};\">{greeting}</p>")
        },
        title = escape(subject),
        lead = escape(lead(kind, items.len())),
    ));
    for (client, platforms) in grouped(items) {
        if items.len() > 1 {
            h.push_str(&format!(
                "<tr><td style=\"padding:20px 24px 0 24px;\"><h2 style=\"margin:0;font-size:16px;color:{INK};border-bottom:1px solid {RULE};padding-bottom:6px;\">{}</h2></td></tr>",
                escape(client.unwrap_or("No client"))
            ));
        }
        for list in platforms.values() {
            for item in list {
                h.push_str(&card(kind, item, reader.time_zone, accent));
            }
        }
    }
    let address =
        if brand.footer_address.is_empty() { String::new() } else { format!("<br>{}", escape(&brand.footer_address)) };
    h.push_str("<tr><td style=\"height:24px;line-height:24px;font-size:0;\">&nbsp;</td></tr>");
    h.push_str(&format!(
        "<tr><td style=\"padding:24px;border-top:1px solid {RULE};font-size:12px;line-height:18px;color:{MUTED};\">\
         Sent by {product} because you are an admin or staff member of this workspace.<br>\
         <a href=\"{unsub}\" style=\"color:{MUTED};text-decoration:underline;\">Stop {words} by email</a> · \
         <a href=\"{prefs}\" style=\"color:{MUTED};text-decoration:underline;\">Email preferences</a>{address}</td></tr>\
         </table></td></tr></table></body></html>",
        product = escape(&brand.product_name),
        unsub = escape(&links.unsubscribe),
        words = kind_words(kind),
        prefs = escape(&links.preferences),
    ));
    h
}

fn card(kind: AlertKind, item: &MailItem, tz: chrono_tz::Tz, accent: &str) -> String {
    let mut c = format!(
        "<tr><td style=\"padding:16px 24px 0 24px;\">\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"border:1px solid {RULE};border-radius:6px;background:{CARD};\">\
         <tr><td style=\"padding:16px;color:{INK};\">\
         <p style=\"margin:0;font-size:16px;font-weight:bold;color:{INK};\">{name} <span style=\"font-weight:normal;color:{MUTED};\">{platform}</span></p>\
         <p style=\"margin:8px 0 0 0;font-size:15px;line-height:22px;color:{INK};\">{reason} {todo}</p>\
         <table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" style=\"margin-top:10px;font-size:14px;line-height:20px;\">",
        name = escape(&item.data_source),
        platform = escape(&on_platform(item)),
        reason = escape(&item.reason),
        todo = escape(&item.todo),
    );
    for (label, value) in facts(kind, item, tz) {
        c.push_str(&format!(
            "<tr><td style=\"padding:2px 12px 2px 0;color:{MUTED};vertical-align:top;white-space:nowrap;\">{label}</td>\
             <td style=\"padding:2px 0;color:{INK};word-break:break-word;overflow-wrap:anywhere;\">{}</td></tr>",
            escape(&value)
        ));
    }
    c.push_str("</table>");
    if let Some(who) = &item.who_can_fix {
        c.push_str(&format!(
            "<p style=\"margin:10px 0 0 0;font-size:14px;line-height:20px;color:{MUTED};overflow-wrap:anywhere;\">{}</p>",
            escape(who)
        ));
    }
    if let Some(b) = &item.button {
        c.push_str(&format!(
            "<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" style=\"margin-top:16px;\"><tr>\
             <td style=\"background:{accent};border-radius:6px;\">\
             <a href=\"{url}\" style=\"display:inline-block;padding:12px 20px;font-size:15px;font-weight:bold;color:#ffffff;text-decoration:none;border-radius:6px;\">{label}</a>\
             </td></tr></table>",
            url = escape(&b.url),
            label = escape(&b.label),
        ));
    }
    c.push_str("</td></tr></table></td></tr>");
    c
}

/// A header value as mail headers carry text: as is when plain ASCII,
/// else one RFC 2047 encoded word (UTF-8, base64).
pub fn encode_words(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
    }
}

/// The text of a header value with RFC 2047 encoded words (UTF-8, base64)
/// decoded; anything else as is.
pub fn decode_words(value: &str) -> String {
    value
        .split(' ')
        .map(|w| {
            w.strip_prefix("=?UTF-8?B?")
                .and_then(|r| r.strip_suffix("?="))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_else(|| w.to_owned())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A mailbox's display name and address for the From header: quoted, and
/// RFC 2047-encoded when it is not plain ASCII.
pub fn from_header(name: &str, address: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    if name.trim().is_empty() {
        return address.to_owned();
    }
    if name.is_ascii() {
        format!("\"{}\" <{address}>", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("{} <{address}>", encode_words(&name))
    }
}

/// How long a one-click unsubscribe link works.
pub const UNSUBSCRIBE_DAYS: i64 = 90;

/// What a one-click unsubscribe link says: this member turns this kind of
/// email off, until the link expires. Signed, so it needs no sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub kind: AlertKind,
    pub expires_at: DateTime<Utc>,
}

impl Unsubscribe {
    fn message(&self) -> String {
        let kind = self.kind.as_str();
        format!("unsubscribe:v1\n{}\n{}\n{kind}\n{}", self.workspace_id, self.user_id, self.expires_at.timestamp())
    }

    /// The link's token: the message and its signature, URL-safe.
    pub fn token(&self, key: &TokenKey) -> String {
        let message = self.message();
        format!("{}.{}", B64URL.encode(message.as_bytes()), key.sign_link(message.as_bytes()))
    }

    /// Reads a token back: refused if it was altered or signed by another
    /// key, and once it has expired.
    pub fn read(token: &str, key: &TokenKey, now: DateTime<Utc>) -> Result<Self, Error> {
        let (message, signature) = token.split_once('.').ok_or(Error::EmailLinkInvalid)?;
        let message = B64URL.decode(message).map_err(|_| Error::EmailLinkInvalid)?;
        if !key.verify_link(&message, signature) {
            return Err(Error::EmailLinkInvalid);
        }
        let message = String::from_utf8(message).map_err(|_| Error::EmailLinkInvalid)?;
        let parts: Vec<&str> = message.split('\n').collect();
        let ["unsubscribe:v1", ws, user, kind, expires] = parts.as_slice() else {
            return Err(Error::EmailLinkInvalid);
        };
        let claim = Unsubscribe {
            workspace_id: WorkspaceId::parse(ws).map_err(|_| Error::EmailLinkInvalid)?,
            user_id: UserId::parse(user).map_err(|_| Error::EmailLinkInvalid)?,
            kind: serde_json::from_value(serde_json::Value::String((*kind).to_owned()))
                .map_err(|_| Error::EmailLinkInvalid)?,
            expires_at: expires
                .parse()
                .ok()
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .ok_or(Error::EmailLinkInvalid)?,
        };
        if claim.expires_at <= now {
            return Err(Error::EmailLinkExpired);
        }
        Ok(claim)
    }
}

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsubscribe_link_reads_back_until_it_expires_and_not_when_altered() {
        let key = TokenKey::from_secret(&TokenKey::generate()).unwrap();
        let now: DateTime<Utc> = "2026-11-25T15:04:00Z".parse().unwrap();
        let claim = Unsubscribe {
            workspace_id: WorkspaceId::parse("ws_acme").unwrap(),
            user_id: UserId::parse("user_dana").unwrap(),
            kind: AlertKind::DataNotSyncing,
            expires_at: now + chrono::Duration::days(UNSUBSCRIBE_DAYS),
        };
        let token = claim.token(&key);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe: {token}");
        assert_eq!(Unsubscribe::read(&token, &key, now).unwrap(), claim);
        let later = now + chrono::Duration::days(UNSUBSCRIBE_DAYS);
        assert!(matches!(Unsubscribe::read(&token, &key, later), Err(Error::EmailLinkExpired)));
        let other = Unsubscribe { user_id: UserId::parse("user_eve").unwrap(), ..claim.clone() }.token(&key);
        let forged = format!("{}.{}", other.split_once('.').unwrap().0, token.split_once('.').unwrap().1);
        assert!(matches!(Unsubscribe::read(&forged, &key, now), Err(Error::EmailLinkInvalid)));
        let stranger = TokenKey::from_secret(&TokenKey::generate()).unwrap();
        assert!(matches!(Unsubscribe::read(&token, &stranger, now), Err(Error::EmailLinkInvalid)));
        for junk in ["", ".", "abc", "abc.def", &token[..token.len() - 2]] {
            assert!(matches!(Unsubscribe::read(junk, &key, now), Err(Error::EmailLinkInvalid)), "{junk}");
        }
    }

    fn item(client: Option<&str>, platform: &str, name: &str) -> MailItem {
        MailItem {
            platform: platform.into(),
            data_source: name.into(),
            client: client.map(Into::into),
            account: Some("Acme Ads (123-456-7890)".into()),
            happened_at: "2026-11-25T15:04:00Z".parse().unwrap(),
            reason: "Access was revoked on the platform.".into(),
            todo: "Reconnect it.".into(),
            authorized_by: Some("Dana <dana@acme.test>".into()),
            who_can_fix: None,
            button: Some(Button { label: "Reconnect".into(), url: "https://app.test/reconnect?a=1&b=2".into() }),
            missing_minutes: None,
        }
    }

    #[test]
    fn subjects_name_one_and_count_several_by_client() {
        let one = [item(Some("Acme"), "Google Ads", "Search")];
        assert_eq!(subject(AlertKind::Disconnected, &one), "Acme · Search on Google Ads is disconnected");
        let named_after = [item(None, "Google Ads", "Google Ads")];
        assert_eq!(subject(AlertKind::Disconnected, &named_after), "Google Ads is disconnected", "not twice");
        let acme =
            [item(Some("Acme"), "Google Ads", "A"), item(Some("Acme"), "Meta", "B"), item(Some("Acme"), "Meta", "C")];
        assert_eq!(subject(AlertKind::Disconnected, &acme), "3 data sources of Acme need you");
        let mixed = [item(Some("Acme"), "Meta", "A"), item(Some("Beta"), "Meta", "B"), item(None, "Meta", "C")];
        assert_eq!(subject(AlertKind::Recovered, &mixed), "3 data sources of 3 clients are connected again");
    }

    #[test]
    fn times_are_the_readers_and_durations_are_words() {
        let at = "2026-11-25T15:04:00Z".parse().unwrap();
        assert_eq!(local_time(at, time_zone(Some("Europe/Paris"))), "Wed 25 Nov 2026, 16:04 CET");
        assert_eq!(local_time(at, time_zone(Some("Not/AZone"))), "Wed 25 Nov 2026, 15:04 UTC");
        assert_eq!(duration_words(45), "45 minutes");
        assert_eq!(duration_words(170), "about 3 hours");
        assert_eq!(duration_words(3 * 24 * 60 + 250), "3 days and 4 hours");
        assert_eq!(duration_words(2 * 24 * 60 + 5), "2 days");
    }

    #[test]
    fn digests_group_by_client_then_platform_and_escape_everything() {
        let mut evil = item(Some("Beta <b>"), "Meta", "x\" onmouseover=\"y");
        evil.button = Some(Button { label: "Reconnect".into(), url: "https://app.test/r?\"><script>".into() });
        let items = [item(Some("Acme"), "Meta", "M1"), evil, item(Some("Acme"), "Google Ads", "G1")];
        let reader = Reader { name: Some("Sam".into()), time_zone: chrono_tz::UTC };
        let links =
            FooterLinks { unsubscribe: "https://api.test/u?t=1".into(), preferences: "https://app.test/p".into() };
        let r = render(&Brand::default(), AlertKind::Disconnected, &items, &reader, &links);
        assert!(!r.html.contains("<script") && !r.html.contains("Beta <b>") && !r.html.contains("x\" on"));
        let (acme, beta) = (r.text.find("Acme\n====").unwrap(), r.text.find("Beta <b>\n").unwrap());
        let (g1, m1) = (r.text.find("G1 on Google Ads").unwrap(), r.text.find("M1 on Meta").unwrap());
        assert!(acme < g1 && g1 < m1 && m1 < beta, "{}", r.text);
        assert!(r.text.contains("Reconnect: https://app.test/reconnect?a=1&b=2"));
        assert!(r.html.contains("href=\"https://app.test/reconnect?a=1&amp;b=2\""));
        assert!(r.text.contains("https://api.test/u?t=1") && r.html.contains("Email preferences"));
    }

    #[test]
    fn sender_names_are_quoted_or_encoded() {
        assert_eq!(from_header("Acme \"Alerts\"", "a@x.test"), "\"Acme \\\"Alerts\\\"\" <a@x.test>");
        assert_eq!(from_header("Société", "a@x.test"), "=?UTF-8?B?U29jacOpdMOp?= <a@x.test>");
        assert_eq!(from_header(" ", "a@x.test"), "a@x.test");
        assert_eq!(decode_words(&encode_words("Acme · Search is disconnected")), "Acme · Search is disconnected");
        assert_eq!(encode_words("plain"), "plain");
    }
}
